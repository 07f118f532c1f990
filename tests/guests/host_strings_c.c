// host_strings_c: the C twin of host_strings.wat. Its imports take and return strings and bytes
// through the string convention: (ptr, len) in, (ptr << 32) | len out, in memory the host got
// from this module's cabi_realloc. Built with -mexec-model=reactor.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define IMPORT(name) __attribute__((import_module("env"), import_name(name)))
#define EXPORT(name) __attribute__((export_name(name)))

IMPORT("upper") uint64_t upper(const char *text, size_t len);
IMPORT("reverse") uint64_t reverse(const uint8_t *data, size_t len);
IMPORT("count") int32_t count(const char *text, size_t len, int32_t ch);

EXPORT("cabi_realloc")
void *cabi_realloc(void *old, size_t old_size, size_t align, size_t new_size) {
    (void)old_size;
    (void)align;
    return realloc(old, new_size);
}

// Calls upper() on its argument and answers "<upper> (<n> vowels a)": the host's string is the
// guest's to use and free.
EXPORT("shout")
uint64_t shout(char *text, size_t len) {
    uint64_t packed = upper(text, len);
    char *up = (char *)(uintptr_t)(packed >> 32);
    size_t up_len = (size_t)(packed & 0xffffffffu);
    int32_t a = count(text, len, 'a');
    free(text);
    char *out = malloc(up_len + 32);
    memcpy(out, up, up_len);
    size_t n = up_len;
    const char *mid = " (";
    memcpy(out + n, mid, 2);
    n += 2;
    out[n++] = (char)('0' + (a % 10));
    const char *tail = " a)";
    memcpy(out + n, tail, 3);
    n += 3;
    free(up);
    return ((uint64_t)(uintptr_t)out << 32) | n;
}

EXPORT("flip")
uint64_t flip(uint8_t *data, size_t len) {
    uint64_t packed = reverse(data, len);
    free(data);
    return packed;  // the host's bytes, handed on (the caller frees them)
}

// The host has copied a result out: free it.
EXPORT("cabi_post_shout")
void cabi_post_shout(uint64_t packed) { free((void *)(uintptr_t)(packed >> 32)); }

EXPORT("cabi_post_flip")
void cabi_post_flip(uint64_t packed) { free((void *)(uintptr_t)(packed >> 32)); }
