// embed_plugin: a reactor (plugin) guest for the embedding API tests.
// Built with -mexec-model=reactor. Imports host functions from "env" and exports the string
// convention wasmgate documents: strings are (ptr, len) in, a packed i64 (ptr << 32 | len) out,
// memory from cabi_realloc, results released by cabi_post_<name>.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define IMPORT(name) __attribute__((import_module("env"), import_name(name)))
#define EXPORT(name) __attribute__((export_name(name)))

IMPORT("print_int") void print_int(int32_t value);
IMPORT("log") void host_log(const char *ptr, int32_t len);
IMPORT("fail") int32_t host_fail(int32_t code);

EXPORT("cabi_realloc")
void *cabi_realloc(void *old, size_t old_size, size_t align, size_t new_size) {
    (void)old_size;
    (void)align;  // malloc's alignment (16) covers every alignment the host asks for
    return realloc(old, new_size ? new_size : 1);
}

static int64_t pack(const char *ptr, size_t len) {
    return (int64_t)(((uint64_t)(uintptr_t)ptr << 32) | (uint64_t)len);
}

// Calls print_int(1..n) and returns the sum: the seed example.
EXPORT("count")
int32_t count(int32_t n) {
    int32_t sum = 0;
    for (int32_t i = 1; i <= n; i++) {
        print_int(i);
        sum += i;
    }
    return sum;
}

EXPORT("add")
int32_t add(int32_t a, int32_t b) { return a + b; }

EXPORT("mul64")
int64_t mul64(int64_t a, int64_t b) { return a * b; }

EXPORT("average")
double average(double a, double b) { return (a + b) / 2; }

static int32_t live_results = 0;

// "Hello, NAME!" for the string convention; takes ownership of its argument.
EXPORT("greet")
int64_t greet(char *name, int32_t len) {
    static const char prefix[] = "Hello, ";
    size_t n = sizeof prefix - 1;
    char *out = malloc(n + (size_t)len + 1);
    memcpy(out, prefix, n);
    memcpy(out + n, name, (size_t)len);
    out[n + (size_t)len] = '!';
    free(name);
    live_results++;
    return pack(out, n + (size_t)len + 1);
}

EXPORT("cabi_post_greet")
void post_greet(int64_t packed) {
    free((void *)(uintptr_t)((uint64_t)packed >> 32));
    live_results--;
}

// Bytes reversed in place; the result is the argument's own memory.
EXPORT("reverse")
int64_t reverse(uint8_t *data, int32_t len) {
    for (int32_t i = 0, j = len - 1; i < j; i++, j--) {
        uint8_t t = data[i];
        data[i] = data[j];
        data[j] = t;
    }
    return pack((const char *)data, (size_t)len);
}

EXPORT("cabi_post_reverse")
void post_reverse(int64_t packed) { free((void *)(uintptr_t)((uint64_t)packed >> 32)); }

// Joins two strings with a separator byte: two string arguments and one integer.
EXPORT("join")
int64_t join(char *a, int32_t alen, char *b, int32_t blen, int32_t sep) {
    char *out = malloc((size_t)alen + (size_t)blen + 1);
    memcpy(out, a, (size_t)alen);
    out[alen] = (char)sep;
    memcpy(out + alen + 1, b, (size_t)blen);
    free(a);
    free(b);
    return pack(out, (size_t)alen + (size_t)blen + 1);
}

// A result pointing outside linear memory: the host must refuse it.
EXPORT("bad_string")
int64_t bad_string(void) { return pack((const char *)(uintptr_t)0xfffffff0u, 64); }

EXPORT("log_message")
void log_message(void) {
    static const char msg[] = "hello from the guest";
    host_log(msg, sizeof msg - 1);
}

EXPORT("call_fail")
int32_t call_fail(int32_t code) { return host_fail(code) + 1; }

// The value of environment variable NAME ("" when unset): what the sandbox granted.
EXPORT("env_value")
int64_t env_value(char *name, int32_t len) {
    char *key = malloc((size_t)len + 1);
    memcpy(key, name, (size_t)len);
    key[len] = 0;
    free(name);
    const char *value = getenv(key);
    free(key);
    if (!value) value = "";
    size_t n = strlen(value);
    char *out = malloc(n + 1);
    memcpy(out, value, n + 1);
    return pack(out, n);
}

// How many greet results the host has not released through cabi_post_greet.
EXPORT("outstanding")
int32_t outstanding(void) { return live_results; }
