// A WAGI handler in C: the query string, the X-Greeting header and the request body, as JSON.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *env(const char *name) {
    const char *value = getenv(name);
    return value ? value : "";
}

// A JSON string: quotes and backslashes escaped, control characters as \u00XX, the rest as is.
static void json_string(const char *s, size_t n) {
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

static void json_field(const char *name, const char *s, size_t n) {
    printf(",\"%s\":", name);
    json_string(s, n);
}

int main(void) {
    size_t len = 0, cap = 4096;
    char *body = malloc(cap);
    for (size_t got; body && (got = fread(body + len, 1, cap - len, stdin)) > 0;) {
        len += got;
        if (len == cap) {
            char *bigger = realloc(body, cap *= 2);
            if (!bigger) free(body);
            body = bigger;
        }
    }
    if (!body) {
        fputs("Status: 500 Internal Server Error\n\n", stdout);
        return 1;
    }
    const char *method = env("REQUEST_METHOD"), *query = env("QUERY_STRING");
    const char *greeting = env("HTTP_X_GREETING");
    printf("Content-Type: application/json\n\n{\"language\":\"C\"");
    json_field("method", method, strlen(method));
    json_field("query", query, strlen(query));
    json_field("greeting", greeting, strlen(greeting));
    printf(",\"length\":%zu", len);
    json_field("body", body, len);
    printf("}\n");
    free(body);
    return 0;
}
