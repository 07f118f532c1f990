// counter: a WAGI handler that counts its requests in a key-value store.
//
// GET /counter            -> "count=N" (the store "default", key "hits", incremented by one)
// GET /counter?store=X    -> the same in store X; a store the route is not granted answers 403
//                            with "error=2", one not configured 404 with "error=1", a backend
//                            that is down 503 with "error=7".
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wasmgate_kv.h"

int main(void) {
    const char *store = "default";
    char buf[64];
    const char *query = getenv("QUERY_STRING");
    if (query && strncmp(query, "store=", 6) == 0) {
        snprintf(buf, sizeof buf, "%s", query + 6);
        store = buf;
    }
    int64_t count = 0;
    int32_t rc = kv_increment(store, strlen(store), "hits", 4, 1, &count);
    if (rc != KV_OK) {
        int status = rc == KV_ACCESS_DENIED ? 403 : rc == KV_NO_SUCH_STORE ? 404 : 503;
        printf("Status: %d\nContent-Type: text/plain\n\nerror=%d\n", status, (int)rc);
        return 0;
    }
    printf("Content-Type: text/plain\n\ncount=%lld\n", (long long)count);
    return 0;
}
