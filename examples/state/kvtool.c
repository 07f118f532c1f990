// kvtool: drives the wasmgate_kv imports from its stdin (the request body), one command per line,
// and prints one line per call so tests can check exact codes and exactly what was written.
//
//   get STORE KEY BUFLEN      get rc=R len=L value=BYTES   (len/value only as the host wrote them)
//   set STORE KEY VALUE       set rc=R
//   setn STORE KEY N          setn rc=R                    (a value of N bytes 'x')
//   del STORE KEY             del rc=R
//   exists STORE KEY          exists rc=R out=O
//   incr STORE KEY DELTA      incr rc=R value=V
//   badkey STORE              badkey rc=R                  (a key that is not UTF-8)
//   oob STORE KEY             oob rc=R                     (a value range past the memory)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wasmgate_kv.h"

static uint8_t big[2 * 1024 * 1024];

int main(void) {
    printf("Content-Type: text/plain\n\n");
    char line[4096];
    while (fgets(line, sizeof line, stdin)) {
        char op[16] = {0}, store[256] = {0}, key[1024] = {0}, arg[2048] = {0};
        int n = sscanf(line, "%15s %255s %1023s %2047s", op, store, key, arg);
        if (n < 2) continue;
        size_t sl = strlen(store), kl = strlen(key);
        if (!strcmp(op, "get")) {
            size_t cap = (size_t)atol(arg);
            uint32_t len = 0xAAAAAAAA;
            memset(big, 0, cap + 1 < sizeof big ? cap + 1 : sizeof big);
            int32_t rc = kv_get(store, sl, key, kl, big, cap, &len);
            printf("get rc=%d len=%u value=", (int)rc, (unsigned)len);
            if (rc == 0) fwrite(big, 1, len, stdout);
            printf("\n");
        } else if (!strcmp(op, "set")) {
            printf("set rc=%d\n", (int)kv_set(store, sl, key, kl, (uint8_t *)arg, strlen(arg)));
        } else if (!strcmp(op, "setn")) {
            size_t size = (size_t)atol(arg);
            if (size > sizeof big) size = sizeof big;
            memset(big, 'x', size);
            printf("setn rc=%d\n", (int)kv_set(store, sl, key, kl, big, size));
        } else if (!strcmp(op, "del")) {
            printf("del rc=%d\n", (int)kv_delete(store, sl, key, kl));
        } else if (!strcmp(op, "exists")) {
            uint32_t out = 7;
            int32_t rc = kv_exists(store, sl, key, kl, &out);
            printf("exists rc=%d out=%u\n", (int)rc, (unsigned)out);
        } else if (!strcmp(op, "incr")) {
            int64_t value = -1;
            int32_t rc = kv_increment(store, sl, key, kl, atoll(arg), &value);
            printf("incr rc=%d value=%lld\n", (int)rc, (long long)value);
        } else if (!strcmp(op, "badkey")) {
            printf("badkey rc=%d\n", (int)kv_delete(store, sl, "\xff\xfe", 2));
        } else if (!strcmp(op, "oob")) {
            printf("oob rc=%d\n",
                   (int)kv_set(store, sl, key, kl, (uint8_t *)0xFFFFFF00u, 0x1000));
        }
    }
    return 0;
}
