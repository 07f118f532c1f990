// An embedding plugin in C (see ../plugins.py): `greet(name) -> string`. It asks the host how
// many times it has seen the name through the imported `env.visits`. Strings follow wasmgate's
// convention: in as (ptr, len) in memory from the exported cabi_realloc, out as one i64,
// (ptr << 32) | len, freed by cabi_post_greet once the host has copied it.
// Built as a reactor (-mexec-model=reactor): a library with no main.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

__attribute__((import_module("env"), import_name("visits")))
int32_t visits(const char *name, size_t len);

__attribute__((export_name("cabi_realloc")))
void *cabi_realloc(void *old, size_t old_size, size_t align, size_t new_size) {
    (void)old_size, (void)align;  // malloc's 16-byte alignment covers what the host asks for
    return realloc(old, new_size ? new_size : 1);
}

__attribute__((export_name("greet")))
uint64_t greet(char *name, size_t len) {
    int32_t count = visits(name, len);
    size_t cap = len + 64;
    char *out = malloc(cap);
    int n = snprintf(out, cap, "Hello, %.*s! (C, visit %d)", (int)len, name, (int)count);
    free(name);  // the argument is ours to free
    return ((uint64_t)(uintptr_t)out << 32) | (uint32_t)n;
}

__attribute__((export_name("cabi_post_greet")))
void cabi_post_greet(uint64_t result) { free((void *)(uintptr_t)(result >> 32)); }
