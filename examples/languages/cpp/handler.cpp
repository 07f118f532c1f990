// A WAGI handler in C++: the query string, the X-Greeting header and the request body, as JSON.
// Built with -fno-exceptions (wasm32-wasi has no exception support), so nothing here throws.
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <iterator>
#include <string>
#include <string_view>

namespace {

std::string env(const char *name) {
    const char *value = std::getenv(name);
    return value ? value : "";
}

// A JSON string: quotes and backslashes escaped, control characters as \u00XX, the rest as is.
std::string json(std::string_view s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20) {
            char escaped[7];
            std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
            out += escaped;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out + '"';
}

}  // namespace

int main() {
    std::ios::sync_with_stdio(false);
    std::string body{std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()};
    std::cout << "Content-Type: application/json\n\n"
              << "{\"language\":\"C++\""
              << ",\"method\":" << json(env("REQUEST_METHOD"))
              << ",\"query\":" << json(env("QUERY_STRING"))
              << ",\"greeting\":" << json(env("HTTP_X_GREETING"))
              << ",\"length\":" << body.size()
              << ",\"body\":" << json(body) << "}\n";
}
