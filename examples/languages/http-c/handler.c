// A wasi:http handler in C: the query string, the X-Greeting header and the request body, as JSON.
// There is no bindings generator here (wit-bindgen is not packaged), so the proxy world's imports
// are declared by hand in the canonical ABI: resources are i32 handles, a string or list is a
// (pointer, length) pair, and a function with more than one result value writes them to a
// return area whose address is its last parameter. libc's allocator and string functions need
// no WASI imports, so the core module imports only wasi:http and wasi:io (no adapter).
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IMPORT(module, name) __attribute__((import_module(module), import_name(name)))
#define HTTP "wasi:http/types@0.2.12"
#define IO "wasi:io/streams@0.2.12"
typedef int32_t handle;

IMPORT(HTTP, "[method]incoming-request.method") void request_method(handle, void *ret);
IMPORT(HTTP, "[method]incoming-request.path-with-query") void request_path(handle, void *ret);
IMPORT(HTTP, "[method]incoming-request.headers") handle request_headers(handle);
IMPORT(HTTP, "[method]incoming-request.consume") void request_consume(handle, void *ret);
IMPORT(HTTP, "[method]incoming-body.stream") void body_stream(handle, void *ret);
IMPORT(HTTP, "[method]fields.get") void fields_get(handle, const char *, size_t, void *ret);
IMPORT(HTTP, "[constructor]fields") handle fields_new(void);
IMPORT(HTTP, "[method]fields.append")
void fields_append(handle, const char *, size_t, const char *, size_t, void *ret);
IMPORT(HTTP, "[constructor]outgoing-response") handle response_new(handle headers);
IMPORT(HTTP, "[method]outgoing-response.body") void response_body(handle, void *ret);
IMPORT(HTTP, "[method]outgoing-body.write") void body_write(handle, void *ret);
IMPORT(HTTP, "[static]outgoing-body.finish") void body_finish(handle, int32_t, handle, void *ret);
// result<outgoing-response, error-code> flattens to 9 values; ok(response) uses the first two.
IMPORT(HTTP, "[static]response-outparam.set")
void outparam_set(handle, int32_t is_err, handle, int32_t, int64_t, int32_t, int32_t, int32_t,
                  int32_t);
IMPORT(IO, "[method]input-stream.blocking-read") void stream_read(handle, int64_t, void *ret);
IMPORT(IO, "[method]output-stream.blocking-write-and-flush")
void stream_write(handle, const char *, size_t, void *ret);
IMPORT(IO, "[resource-drop]output-stream") void output_stream_drop(handle);

// The host allocates the strings and lists it returns with this export.
__attribute__((export_name("cabi_realloc")))
void *cabi_realloc(void *old, size_t old_size, size_t align, size_t new_size) {
    return realloc(old, new_size);  // malloc's 16-byte alignment is enough for every type
}

static _Alignas(8) uint8_t ret[64];  // the return area
#define RET_I32(offset) (*(int32_t *)(ret + (offset)))
#define RET_PTR(offset) ((char *)(uintptr_t)RET_I32(offset))
static void check(int ok) { if (!ok) __builtin_trap(); }

typedef struct { char *data; size_t len, cap; } buffer;

static void put(buffer *b, const char *s, size_t n) {
    if (n == 0) return;
    if (b->len + n > b->cap) check((b->data = realloc(b->data, b->cap = 2 * (b->len + n))) != 0);
    memcpy(b->data + b->len, s, n);
    b->len += n;
}

// A JSON string: quotes and backslashes escaped, control characters as \u00XX, the rest as is.
static void json_field(buffer *b, const char *name, const char *s, size_t n) {
    char text[16];
    put(b, text, (size_t)snprintf(text, sizeof text, ",\"%s\":\"", name));
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') put(b, "\\", 1), put(b, s + i, 1);
        else if (c < 0x20) put(b, text, (size_t)snprintf(text, sizeof text, "\\u%04x", c));
        else put(b, s + i, 1);
    }
    put(b, "\"", 1);
}

static const char *const METHODS[] = {"GET",     "HEAD",    "POST",  "PUT",  "DELETE",
                                      "CONNECT", "OPTIONS", "TRACE", "PATCH"};

__attribute__((export_name("wasi:http/incoming-handler@0.2.12#handle")))
void handle_request(handle request, handle response_out) {
    request_method(request, ret);  // variant: case @0, other(string) @4
    const char *method = ret[0] < 9 ? METHODS[ret[0]] : RET_PTR(4);
    size_t method_len = ret[0] < 9 ? strlen(method) : (size_t)RET_I32(8);

    request_path(request, ret);  // option<string>: some @0, pointer @4, length @8
    const char *path = ret[0] ? RET_PTR(4) : "", *end = path + (ret[0] ? RET_I32(8) : 0);
    const char *query = memchr(path, '?', (size_t)(end - path));
    query = query ? query + 1 : end;

    fields_get(request_headers(request), "x-greeting", 10, ret);  // list<list<u8>>
    const int32_t *value = (const int32_t *)RET_PTR(0);  // the first one: pointer, length
    const char *greeting = RET_I32(4) ? (const char *)(uintptr_t)value[0] : "";
    size_t greeting_len = RET_I32(4) ? (size_t)value[1] : 0;

    buffer body = {0};
    request_consume(request, ret);  // result<incoming-body>: error @0, handle @4
    check(ret[0] == 0);
    body_stream(RET_I32(4), ret);
    check(ret[0] == 0);
    handle in = RET_I32(4);
    for (;;) {
        stream_read(in, 65536, ret);  // result<list<u8>, stream-error>: error @0, list @4
        if (ret[0]) break;            // stream-error.closed: the end of the body
        put(&body, RET_PTR(4), (size_t)RET_I32(8));
        free(RET_PTR(4));
    }

    buffer json = {0};
    put(&json, "{\"language\":\"C\"", 15);
    json_field(&json, "method", method, method_len);
    json_field(&json, "query", query, (size_t)(end - query));
    json_field(&json, "greeting", greeting, greeting_len);
    char length[32];
    put(&json, length, (size_t)snprintf(length, sizeof length, ",\"length\":%zu", body.len));
    json_field(&json, "body", body.data, body.len);
    put(&json, "}\n", 2);

    handle headers = fields_new();
    fields_append(headers, "content-type", 12, "application/json", 16, ret);
    check(ret[0] == 0);
    handle response = response_new(headers);
    response_body(response, ret);  // result<outgoing-body>: error @0, handle @4
    check(ret[0] == 0);
    handle out_body = RET_I32(4);
    outparam_set(response_out, 0, response, 0, 0, 0, 0, 0, 0);
    body_write(out_body, ret);
    check(ret[0] == 0);
    handle out = RET_I32(4);
    for (size_t at = 0; at < json.len; at += 4096) {  // at most 4096 bytes a call
        stream_write(out, json.data + at, json.len - at < 4096 ? json.len - at : 4096, ret);
        check(ret[0] == 0);
    }
    output_stream_drop(out);  // a stream goes before its body is finished
    body_finish(out_body, 0, 0, ret);
    check(ret[0] == 0);
}
