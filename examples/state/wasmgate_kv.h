// wasmgate_kv.h: the `wasmgate_kv` host module for WAGI guests (key-value stores).
// The ABI and its codes are documented in the README ("State") and in wasmgate's state.wagi_kv.
#ifndef WASMGATE_KV_H
#define WASMGATE_KV_H
#include <stddef.h>
#include <stdint.h>

#define KV(name) __attribute__((import_module("wasmgate_kv"), import_name(name)))

enum {
    KV_OK = 0,
    KV_NO_SUCH_STORE = 1,
    KV_ACCESS_DENIED = 2,
    KV_NOT_FOUND = 3,
    KV_BUFFER_TOO_SMALL = 4,
    KV_MEMORY = 5,
    KV_UTF8 = 6,
    KV_STORE_ERROR = 7,
    KV_RUNTIME_ERROR = 8,
};

KV("get")
int32_t kv_get(const char *store, size_t store_len, const char *key, size_t key_len,
               uint8_t *buf, size_t buf_len, uint32_t *len_out);
KV("set")
int32_t kv_set(const char *store, size_t store_len, const char *key, size_t key_len,
               const uint8_t *value, size_t value_len);
KV("delete")
int32_t kv_delete(const char *store, size_t store_len, const char *key, size_t key_len);
KV("exists")
int32_t kv_exists(const char *store, size_t store_len, const char *key, size_t key_len,
                  uint32_t *out);
KV("increment")
int32_t kv_increment(const char *store, size_t store_len, const char *key, size_t key_len,
                     int64_t delta, int64_t *out);
#endif
