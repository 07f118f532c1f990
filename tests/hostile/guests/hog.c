// hog: one hostile behaviour per invocation, chosen by argv[1], for `wasmgate run` and (through
// WAGI's default argv, `/route?MODE&ARG`) for `wasmgate serve` alike.
//
//   loop              spin forever in wasm code
//   recurse           unbounded recursion (stack overflow)
//   grow              memory.grow one page at a time until refused, then touch past the end
//   alloc [MiB]       malloc + touch 1 MiB blocks until malloc fails (or MiB are held), then
//                     print a CGI answer saying how much it got
//   spew-out          write to stdout forever;  spew-err: the same on stderr
//   bigwrite [MiB]    one single fd_write of MiB (default 16) bytes to stdout
//   clock             call clock_time_get in a loop forever
//   sleep [ms]        sleep ms milliseconds (default: ~36 years) in one poll_oneoff
//   nap               sleep 10 ms a thousand times (poll_oneoff in a loop)
//   divzero | oob | trap   integer divide by zero, out-of-bounds load, unreachable
//   ok                print a small CGI answer
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <wasi/api.h>

static volatile int sink;

__attribute__((noinline)) static int recurse(int n) {
    volatile char pad[256];
    pad[n & 255] = (char)n;
    return recurse(n + 1) + pad[(n + 1) & 255];
}

static void cgi_ok(const char *text) {
    printf("Content-Type: text/plain\n\n%s\n", text);
    fflush(stdout);
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "ok";
    long arg = argc > 2 ? atol(argv[2]) : -1;
    if (!strcmp(mode, "loop")) {
        for (;;) sink++;
    }
    if (!strcmp(mode, "recurse")) return recurse(0);
    if (!strcmp(mode, "grow")) {
        size_t pages = __builtin_wasm_memory_size(0);
        while (__builtin_wasm_memory_grow(0, 1) != (size_t)-1) pages++;
        fprintf(stderr, "memory.grow refused at %zu pages\n", pages);
        volatile uint8_t *past = (volatile uint8_t *)(uintptr_t)(pages * 65536);
        past[16] = 1;  // one page past the end: must trap
        cgi_ok("touched memory past the end and lived");
        return 0;
    }
    if (!strcmp(mode, "alloc")) {
        long got = 0;
        void *volatile head = NULL;
        while (arg < 0 || got < arg) {
            char *p = malloc(1 << 20);
            if (!p) break;
            memset(p, 1, 1 << 20);
            *(void **)p = head;
            head = p;
            got++;
        }
        char msg[64];
        snprintf(msg, sizeof msg, "allocated %ld MiB", got);
        fprintf(stderr, "%s\n", msg);
        if (arg >= 0 && got < arg) return 1;
        cgi_ok(msg);
        return 0;
    }
    if (!strcmp(mode, "spew-out") || !strcmp(mode, "spew-err")) {
        static char buf[65536];
        memset(buf, 'x', sizeof buf);
        int fd = mode[5] == 'o' ? 1 : 2;
        if (fd == 1) cgi_ok("spewing");
        for (;;) {
            if (write(fd, buf, sizeof buf) < 0) return 3;
        }
    }
    if (!strcmp(mode, "bigwrite")) {
        size_t size = (size_t)(arg > 0 ? arg : 16) << 20;
        char *buf = malloc(size);
        if (!buf) return 4;
        memset(buf, 'y', size);
        static const char head[] = "Content-Type: text/plain\n\n";
        memcpy(buf, head, sizeof head - 1);
        __wasi_ciovec_t iov = {(const uint8_t *)buf, size};
        __wasi_size_t written = 0;
        __wasi_errno_t err = __wasi_fd_write(1, &iov, 1, &written);
        fprintf(stderr, "bigwrite: errno %d, wrote %zu of %zu\n", err, (size_t)written, size);
        return err ? 5 : 0;
    }
    if (!strcmp(mode, "clock")) {
        __wasi_timestamp_t t;
        for (;;) {
            __wasi_clock_time_get(__WASI_CLOCKID_MONOTONIC, 1, &t);
            sink += (int)t;
        }
    }
    if (!strcmp(mode, "sleep")) {
        __wasi_subscription_t sub = {0};
        sub.u.tag = __WASI_EVENTTYPE_CLOCK;
        sub.u.u.clock.id = __WASI_CLOCKID_MONOTONIC;
        sub.u.u.clock.timeout = arg >= 0 ? (uint64_t)arg * 1000000ull : UINT64_MAX / 4;
        __wasi_event_t ev;
        __wasi_size_t n;
        __wasi_poll_oneoff(&sub, &ev, 1, &n);
        cgi_ok("awake");
        return 0;
    }
    if (!strcmp(mode, "nap")) {
        for (int i = 0; i < 1000; i++) {
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        cgi_ok("rested");
        return 0;
    }
    if (!strcmp(mode, "divzero")) {
        volatile int seven = 7, zero = 0;
        return seven / zero;
    }
    if (!strcmp(mode, "oob")) {
        volatile uint8_t *far = (volatile uint8_t *)(uintptr_t)0xFFFFFFF0u;
        return *far;
    }
    if (!strcmp(mode, "trap")) __builtin_trap();
    cgi_ok("ok");
    return 0;
}
