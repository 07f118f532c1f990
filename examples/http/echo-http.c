// echo-http.c - a wasi:http/proxy@0.2.12 component in C (canonical ABI lowered by hand, no libc):
// answers every request with 200, the request's method, path and headers as response headers
// (x-method, x-path, x-echo-<name>) and the request body, streamed back byte for byte.
//
// A few paths make it misbehave, for tests of the host's rules:
//   /trap           traps (unreachable)             /no-response   returns without answering
//   /set-twice      answers twice (the 2nd traps)   /error         answers err(internal-error("boom"))
//   /spin           loops forever                   /grow          grows memory until refused, then traps
//   /exit           wasi:cli/exit(err)              /exit-ok       answers, then wasi:cli/exit(ok)
//   /status/NNN     answers with status NNN         /big/N         answers N bytes of 'x'
//   /env            answers its environment         /log           writes "to the log" to stderr
//   /unfinished     takes the body, never finishes it
//   /sleep          waits a minute on a pollable (wasi:io/poll), then answers
//   /hog/handles    makes fields resources forever   /hog/fields    appends 4 KiB values forever
//   /fs/read/NAME   answers file NAME of the first preopened folder (wasi:filesystem)
//   /fs/write/NAME  writes the request body to NAME there, answers "wrote=N\n"
//   /fs/list        answers the folder's entries, one name a line
//                   (a filesystem failure answers "error=N\n", N: the error-code case)
//   /clock          answers "ok" if the clocks and random numbers look right
//   /stream/N       answers N lines "event I", waiting 100 ms after each (a streamed response),
//                   then ends with the trailer x-events: N
//   /trailers       answers "body" and ends with the trailer x-checksum: 42
//   /request-trailers  reads the whole body, then answers "bytes=N" and each request trailer
//                   as a line "NAME: VALUE"
//   /fetch/AUTHORITY/PATH   GETs http://AUTHORITY/PATH (wasi:http/outgoing-handler) and answers
//                   "status=NNN\n" and the body it got, or "error=N\n" (N: the error-code case)
// A path /t/NAME/REST is read as /REST (so a server can mount it under routes with other limits).
//
// Build: examples/http/build.py (zig cc to a reactor core module, then jco's wasm-tools).
#include <stddef.h>
#include <stdint.h>

#define IMPORT(mod, name) __attribute__((import_module(mod), import_name(name)))
#define EXPORT(name) __attribute__((export_name(name)))
#define HTTP "wasi:http/types@0.2.12"
#define IO "wasi:io/streams@0.2.12"

typedef int32_t h32;  // a resource handle

// ---- wasi:http/types (>1 flat result values => the last parameter is a return-area pointer) ----
IMPORT(HTTP, "[method]incoming-request.method") void req_method(h32, void *ret);
IMPORT(HTTP, "[method]incoming-request.path-with-query") void req_path(h32, void *ret);
IMPORT(HTTP, "[method]incoming-request.headers") h32 req_headers(h32);
IMPORT(HTTP, "[method]incoming-request.consume") void req_consume(h32, void *ret);
IMPORT(HTTP, "[resource-drop]incoming-request") void req_drop(h32);
IMPORT(HTTP, "[method]incoming-body.stream") void inbody_stream(h32, void *ret);
IMPORT(HTTP, "[resource-drop]incoming-body") void inbody_drop(h32);
IMPORT(HTTP, "[static]incoming-body.finish") h32 inbody_finish(h32);
IMPORT(HTTP, "[method]future-trailers.subscribe") h32 trailers_subscribe(h32);
IMPORT(HTTP, "[method]future-trailers.get") void trailers_get(h32, void *ret);
IMPORT(HTTP, "[constructor]fields") h32 fields_new(void);
IMPORT(HTTP, "[method]fields.append")
void fields_append(h32, const char *n, size_t nlen, const uint8_t *v, size_t vlen, void *ret);
IMPORT(HTTP, "[method]fields.entries") void fields_entries(h32, void *ret);
IMPORT(HTTP, "[resource-drop]fields") void fields_drop(h32);
IMPORT(HTTP, "[constructor]outgoing-response") h32 resp_new(h32 headers);
IMPORT(HTTP, "[method]outgoing-response.set-status-code") int32_t resp_set_status(h32, int32_t);
IMPORT(HTTP, "[method]outgoing-response.body") void resp_body(h32, void *ret);
IMPORT(HTTP, "[method]outgoing-body.write") void outbody_write(h32, void *ret);
IMPORT(HTTP, "[static]outgoing-body.finish") void outbody_finish(h32, int32_t has, h32 t, void *ret);
// result<own<outgoing-response>, error-code> flattens to 8 values (see hello-http.c)
IMPORT(HTTP, "[static]response-outparam.set")
void outparam_set(h32 param, int32_t is_err, int32_t a, int32_t b, int64_t c, int32_t d, int32_t e,
                  int32_t f, int32_t g);
IMPORT(HTTP, "[constructor]outgoing-request") h32 oreq_new(h32 headers);
// option<scheme> flattens to (is_some, case, string ptr, string len)
IMPORT(HTTP, "[method]outgoing-request.set-scheme")
int32_t oreq_set_scheme(h32, int32_t some, int32_t scheme, const char *p, size_t n);
IMPORT(HTTP, "[method]outgoing-request.set-authority")
int32_t oreq_set_authority(h32, int32_t some, const uint8_t *p, size_t n);
IMPORT(HTTP, "[method]outgoing-request.set-path-with-query")
int32_t oreq_set_path(h32, int32_t some, const uint8_t *p, size_t n);
IMPORT(HTTP, "[method]future-incoming-response.get") void future_get(h32, void *ret);
IMPORT(HTTP, "[method]incoming-response.status") int32_t iresp_status(h32);
IMPORT(HTTP, "[method]incoming-response.consume") void iresp_consume(h32, void *ret);
// result<own<future-incoming-response>, error-code>: tag @0, payload @8 (error-code aligns to 8)
IMPORT("wasi:http/outgoing-handler@0.2.12", "handle")
void outgoing_handle(h32 request, int32_t has_options, h32 options, void *ret);
// ---- wasi:filesystem ----
#define FS "wasi:filesystem/types@0.2.12"
IMPORT("wasi:filesystem/preopens@0.2.12", "get-directories") void get_dirs(void *ret);
IMPORT(FS, "[method]descriptor.open-at")
void fs_open_at(h32, int32_t path_flags, const uint8_t *p, size_t n, int32_t open_flags,
                int32_t flags, void *ret);
IMPORT(FS, "[method]descriptor.read") void fs_read(h32, int64_t len, int64_t off, void *ret);
IMPORT(FS, "[method]descriptor.write")
void fs_write(h32, const uint8_t *p, size_t n, int64_t off, void *ret);
IMPORT(FS, "[method]descriptor.read-directory") void fs_read_dir(h32, void *ret);
IMPORT(FS, "[method]directory-entry-stream.read-directory-entry") void fs_next(h32, void *ret);
IMPORT(FS, "[resource-drop]descriptor") void fs_drop(h32);
IMPORT(FS, "[resource-drop]directory-entry-stream") void fs_dir_drop(h32);
// ---- wasi:io/streams ----
IMPORT(IO, "[method]input-stream.blocking-read") void in_read(h32, int64_t len, void *ret);
IMPORT(IO, "[resource-drop]input-stream") void in_drop(h32);
IMPORT(IO, "[method]output-stream.check-write") void out_check(h32, void *ret);
IMPORT(IO, "[method]output-stream.write") void out_write(h32, const uint8_t *p, size_t n, void *ret);
IMPORT(IO, "[method]output-stream.blocking-flush") void out_flush(h32, void *ret);
IMPORT(IO, "[resource-drop]output-stream") void out_drop(h32);
// ---- wasi:cli, wasi:clocks, wasi:random ----
IMPORT("wasi:cli/environment@0.2.12", "get-environment") void get_env(void *ret);
IMPORT("wasi:cli/stderr@0.2.12", "get-stderr") h32 get_stderr(void);
IMPORT("wasi:cli/exit@0.2.12", "exit") void cli_exit(int32_t is_err);
IMPORT("wasi:clocks/monotonic-clock@0.2.12", "now") int64_t mono_now(void);
IMPORT("wasi:clocks/monotonic-clock@0.2.12", "subscribe-duration") h32 subscribe_duration(int64_t ns);
IMPORT("wasi:io/poll@0.2.12", "[method]pollable.block") void pollable_block(h32);
IMPORT("wasi:io/poll@0.2.12", "[resource-drop]pollable") void pollable_drop(h32);
IMPORT("wasi:clocks/wall-clock@0.2.12", "now") void wall_now(void *ret);
IMPORT("wasi:random/random@0.2.12", "get-random-bytes") void random_bytes(int64_t len, void *ret);

// ---- memory: a bump allocator over memory.grow, reset between body chunks ----
extern uint8_t __heap_base;
static uintptr_t heap_top, heap_end;

EXPORT("cabi_realloc")
void *cabi_realloc(void *old, size_t old_size, size_t align, size_t new_size) {
    if (!heap_top) heap_top = heap_end = (uintptr_t)&__heap_base;
    uintptr_t p = (heap_top + align - 1) & ~(uintptr_t)(align - 1);
    while (p + new_size > heap_end) {
        size_t pages = (p + new_size - heap_end + 65535) / 65536;
        if (__builtin_wasm_memory_grow(0, pages) == (size_t)-1) __builtin_trap();
        heap_end += pages * 65536;
    }
    heap_top = p + new_size;
    uint8_t *dst = (uint8_t *)p;
    for (size_t i = 0; old && i < old_size && i < new_size; i++) dst[i] = ((uint8_t *)old)[i];
    return dst;
}

static uint8_t RET[64] __attribute__((aligned(8)));
#define RET32(off) (*(int32_t *)(RET + (off)))
#define RET64(off) (*(int64_t *)(RET + (off)))

static size_t slen(const char *s) { size_t n = 0; while (s[n]) n++; return n; }
static int prefix(const uint8_t *s, size_t n, const char *p) {
    size_t k = slen(p);
    if (n < k) return 0;
    for (size_t i = 0; i < k; i++) if (s[i] != (uint8_t)p[i]) return 0;
    return 1;
}
static int same(const uint8_t *s, size_t n, const char *p) { return n == slen(p) && prefix(s, n, p); }
static uint32_t number(const uint8_t *s, size_t n) {
    uint32_t v = 0;
    for (size_t i = 0; i < n && s[i] >= '0' && s[i] <= '9'; i++) v = v * 10 + (s[i] - '0');
    return v;
}
static void check(int ok) { if (!ok) __builtin_trap(); }

static void append(h32 fields, const char *name, size_t nlen, const uint8_t *v, size_t vlen) {
    fields_append(fields, name, nlen, v, vlen, RET);
    check(RET[0] == 0);
}

// Write all of [p, p+n) with check-write + write (what wasmtime's rules allow), then flush.
static void write_all(h32 out, const uint8_t *p, size_t n) {
    while (n > 0) {
        out_check(out, RET);
        check(RET[0] == 0);
        uint64_t permit = (uint64_t)RET64(8);
        size_t k = n < permit ? n : (size_t)permit;
        if (k == 0) continue;
        out_write(out, p, k, RET);
        check(RET[0] == 0);
        p += k;
        n -= k;
    }
}

static const char METHODS[][8] = {"GET", "HEAD", "POST", "PUT", "DELETE",
                                  "CONNECT", "OPTIONS", "TRACE", "PATCH"};

static size_t decimal(uint32_t v, char *out) {  // out: at least 10 bytes
    char tmp[10];
    size_t n = 0;
    do { tmp[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    for (size_t i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
    return n;
}

// Copy an incoming body to an output stream, chunk by chunk.
static void copy_body(h32 inbody, h32 out) {
    inbody_stream(inbody, RET);
    check(RET[0] == 0);
    h32 in = RET32(4);
    uintptr_t mark = heap_top;
    for (;;) {
        in_read(in, 65536, RET);  // result<list<u8>, stream-error>: ptr @4, len @8
        if (RET[0] != 0) {
            check(RET[4] == 1);  // stream-error.closed: the end of the body
            break;
        }
        write_all(out, (const uint8_t *)(uintptr_t)RET32(4), (size_t)RET32(8));
        heap_top = mark;  // the chunk is written: reuse its memory
    }
    in_drop(in);
    inbody_drop(inbody);
}

// GET http://AUTHORITY/PATH for /fetch/AUTHORITY/PATH and write what came back to out.
static void fetch(const uint8_t *spec, size_t n, h32 out) {
    size_t i = 0;
    while (i < n && spec[i] != '/') i++;
    h32 req = oreq_new(fields_new());
    check(oreq_set_scheme(req, 1, 0, 0, 0) == 0);  // some(HTTP)
    check(oreq_set_authority(req, 1, spec, i) == 0);
    check(oreq_set_path(req, 1, spec + i, n - i) == 0);
    char text[32];
    outgoing_handle(req, 0, 0, RET);
    if (RET[0] != 0) {
        size_t k = decimal(RET[8], text + 6);
        for (size_t j = 0; j < 6; j++) text[j] = "error="[j];
        text[6 + k] = '\n';
        write_all(out, (const uint8_t *)text, 7 + k);
        return;
    }
    h32 future = RET32(8);
    // option<result<result<own<incoming-response>, error-code>>>: some @0, ok @8, ok @16, handle @24
    future_get(future, RET);
    check(RET[0] == 1 && RET[8] == 0);
    if (RET[16] != 0) {
        size_t k = decimal(RET[24], text + 6);
        for (size_t j = 0; j < 6; j++) text[j] = "error="[j];
        text[6 + k] = '\n';
        write_all(out, (const uint8_t *)text, 7 + k);
        return;
    }
    h32 resp = RET32(24);
    size_t k = decimal((uint32_t)iresp_status(resp), text + 7);
    for (size_t j = 0; j < 7; j++) text[j] = "status="[j];
    text[7 + k] = '\n';
    write_all(out, (const uint8_t *)text, 8 + k);
    iresp_consume(resp, RET);
    check(RET[0] == 0);
    copy_body(RET32(4), out);
}

static void write_error(h32 out, uint32_t code) {
    char text[20] = "error=";
    size_t k = decimal(code, text + 6);
    text[6 + k] = '\n';
    write_all(out, (const uint8_t *)text, 7 + k);
}

// The first preopened folder, or -1.
static h32 first_dir(void) {
    get_dirs(RET);  // list<tuple<own<descriptor>, string>>: ptr @0, len @4; 12 bytes each
    if (RET32(4) == 0) return -1;
    return *(const int32_t *)(uintptr_t)RET32(0);
}

// /fs/read/NAME, /fs/write/NAME, /fs/list (NAME relative to the first preopen).
static void files(const uint8_t *cmd, size_t n, h32 request, h32 out) {
    h32 dir = first_dir();
    if (dir < 0) {
        write_all(out, (const uint8_t *)"error=none\n", 11);
        return;
    }
    if (same(cmd, n, "list")) {
        fs_read_dir(dir, RET);  // result<own<directory-entry-stream>, error-code>
        if (RET[0]) { write_error(out, RET[4]); return; }
        h32 entries = RET32(4);
        for (;;) {
            fs_next(entries, RET);  // result<option<directory-entry>>: some @4, name @12/@16
            if (RET[0]) { write_error(out, RET[4]); break; }
            if (!RET[4]) break;
            write_all(out, (const uint8_t *)(uintptr_t)RET32(12), (size_t)RET32(16));
            write_all(out, (const uint8_t *)"\n", 1);
        }
        fs_dir_drop(entries);
        return;
    }
    int writing = prefix(cmd, n, "write/");
    size_t skip = writing ? 6 : prefix(cmd, n, "read/") ? 5 : 0;
    if (!skip) { write_all(out, (const uint8_t *)"error=usage\n", 12); return; }
    // open-flags: create 1, truncate 8; descriptor-flags: read 1, write 2
    fs_open_at(dir, 0, cmd + skip, n - skip, writing ? 1 | 8 : 0, writing ? 3 : 1, RET);
    if (RET[0]) { write_error(out, RET[4]); return; }
    h32 file = RET32(4);
    uint64_t offset = 0;
    if (writing) {
        req_consume(request, RET);
        check(RET[0] == 0);
        h32 inbody = RET32(4);
        inbody_stream(inbody, RET);
        check(RET[0] == 0);
        h32 in = RET32(4);
        for (;;) {
            in_read(in, 65536, RET);
            if (RET[0] != 0) break;
            const uint8_t *p = (const uint8_t *)(uintptr_t)RET32(4);
            size_t len = (size_t)RET32(8);
            fs_write(file, p, len, (int64_t)offset, RET);  // result<filesize, error-code>: @8
            if (RET[0]) { write_error(out, RET[8]); in_drop(in); inbody_drop(inbody); fs_drop(file); return; }
            offset += (uint64_t)RET64(8);
        }
        in_drop(in);
        inbody_drop(inbody);
        char text[24] = "wrote=";
        size_t k = decimal((uint32_t)offset, text + 6);
        text[6 + k] = '\n';
        write_all(out, (const uint8_t *)text, 7 + k);
    } else {
        uintptr_t mark = heap_top;
        for (;;) {
            fs_read(file, 65536, (int64_t)offset, RET);  // result<tuple<list<u8>, bool>>
            if (RET[0]) { write_error(out, RET[4]); break; }
            size_t len = (size_t)RET32(8);
            write_all(out, (const uint8_t *)(uintptr_t)RET32(4), len);
            heap_top = mark;
            offset += len;
            if (RET[12] || len == 0) break;  // end of file
        }
    }
    fs_drop(file);
}

static void sleep_ms(int64_t ms) {
    h32 p = subscribe_duration(ms * 1000 * 1000);
    pollable_block(p);
    pollable_drop(p);
}

// Each "NAME: VALUE" line of a fields resource's entries.
static void write_fields(h32 fields, h32 out) {
    fields_entries(fields, RET);
    const int32_t *entries = (const int32_t *)(uintptr_t)RET32(0);
    size_t count = (size_t)RET32(4);
    for (size_t i = 0; i < count; i++) {
        const int32_t *e = entries + 4 * i;
        write_all(out, (const uint8_t *)(uintptr_t)e[0], (size_t)e[1]);
        write_all(out, (const uint8_t *)": ", 2);
        write_all(out, (const uint8_t *)(uintptr_t)e[2], (size_t)e[3]);
        write_all(out, (const uint8_t *)"\n", 1);
    }
}

// /request-trailers: count the body, then wait for its trailers and write them.
static void request_trailers(h32 request, h32 out) {
    req_consume(request, RET);
    check(RET[0] == 0);
    h32 inbody = RET32(4);
    inbody_stream(inbody, RET);
    check(RET[0] == 0);
    h32 in = RET32(4);
    uint32_t total = 0;
    uintptr_t mark = heap_top;
    for (;;) {
        in_read(in, 65536, RET);
        if (RET[0] != 0) break;
        total += (uint32_t)RET32(8);
        heap_top = mark;
    }
    in_drop(in);
    char text[24] = "bytes=";
    size_t k = decimal(total, text + 6);
    text[6 + k] = '\n';
    write_all(out, (const uint8_t *)text, 7 + k);
    h32 future = inbody_finish(inbody);
    h32 ready = trailers_subscribe(future);
    pollable_block(ready);
    pollable_drop(ready);
    // option<result<result<option<own<trailers>>, error-code>>>: some @0, ok @8, ok @16,
    // some @24, handle @28
    trailers_get(future, RET);
    check(RET[0] == 1 && RET[8] == 0);
    if (RET[16] != 0) { write_all(out, (const uint8_t *)"error\n", 6); return; }
    if (RET[24]) write_fields(RET32(28), out);
}

static void set_ok(h32 outparam, h32 resp) { outparam_set(outparam, 0, resp, 0, 0, 0, 0, 0, 0); }

EXPORT("wasi:http/incoming-handler@0.2.12#handle")
void handle(h32 request, h32 outparam) {
    // method: variant tag @0, other(string) ptr @4 len @8
    req_method(request, RET);
    const uint8_t *method;
    size_t mlen;
    if (RET[0] < 9) {
        method = (const uint8_t *)METHODS[RET[0]];
        mlen = slen(METHODS[RET[0]]);
    } else {
        method = (const uint8_t *)(uintptr_t)RET32(4);
        mlen = (size_t)RET32(8);
    }
    // path-with-query: option tag @0, ptr @4, len @8
    req_path(request, RET);
    const uint8_t *path = (const uint8_t *)"";
    size_t plen = 0;
    if (RET[0]) {
        path = (const uint8_t *)(uintptr_t)RET32(4);
        plen = (size_t)RET32(8);
    }
    const uint8_t *full = path;
    size_t flen = plen;
    if (prefix(path, plen, "/t/")) {  // /t/NAME/REST -> /REST
        size_t i = 3;
        while (i < plen && path[i] != '/') i++;
        path += i;
        plen -= i;
    }

    if (same(path, plen, "/trap")) __builtin_trap();
    if (same(path, plen, "/spin")) for (volatile int i = 0;; i++) {}
    if (same(path, plen, "/grow")) {
        while (__builtin_wasm_memory_grow(0, 16) != (size_t)-1) {}
        __builtin_trap();
    }
    if (same(path, plen, "/exit")) cli_exit(1);
    if (same(path, plen, "/no-response")) return;
    if (same(path, plen, "/sleep")) {
        h32 p = subscribe_duration(60LL * 1000 * 1000 * 1000);
        pollable_block(p);
        pollable_drop(p);
    }
    if (same(path, plen, "/hog/handles")) for (;;) fields_new();
    if (same(path, plen, "/hog/fields")) {
        static uint8_t value[4096];
        for (size_t i = 0; i < sizeof value; i++) value[i] = 'v';
        h32 f = fields_new();
        for (;;) append(f, "x-hog", 5, value, sizeof value);
    }
    if (same(path, plen, "/error")) {
        static const char boom[] = "boom";  // internal-error (case 38), some("boom")
        outparam_set(outparam, 1, 38, 1, (int64_t)(uintptr_t)boom, 4, 0, 0, 0);
        return;
    }

    h32 headers = fields_new();
    append(headers, "x-method", 8, method, mlen);
    append(headers, "x-path", 6, full, flen);
    // echo request headers as x-echo-<name>: entries -> list<tuple<string, list<u8>>> @0 ptr, @4 len
    h32 in_headers = req_headers(request);
    fields_entries(in_headers, RET);
    const int32_t *entries = (const int32_t *)(uintptr_t)RET32(0);
    size_t count = (size_t)RET32(4);
    static char name[256];
    for (size_t i = 0; i < count; i++) {
        const int32_t *e = entries + 4 * i;  // name ptr, name len, value ptr, value len
        size_t nlen = (size_t)e[1];
        if (nlen + 7 > sizeof name) continue;
        for (size_t j = 0; j < 7; j++) name[j] = "x-echo-"[j];
        for (size_t j = 0; j < nlen; j++) name[7 + j] = ((const char *)(uintptr_t)e[0])[j];
        append(headers, name, 7 + nlen, (const uint8_t *)(uintptr_t)e[2], (size_t)e[3]);
    }
    fields_drop(in_headers);

    h32 resp = resp_new(headers);
    if (prefix(path, plen, "/status/")) check(resp_set_status(resp, (int32_t)number(path + 8, plen - 8)) == 0);
    resp_body(resp, RET);
    check(RET[0] == 0);
    h32 body = RET32(4);
    set_ok(outparam, resp);
    if (same(path, plen, "/set-twice")) set_ok(outparam, resp);  // the handle is gone: traps

    outbody_write(body, RET);
    check(RET[0] == 0);
    h32 out = RET32(4);
    const char *trailer_name = 0, *trailer_value = 0;
    size_t trailer_len = 0;

    if (prefix(path, plen, "/big/")) {
        static uint8_t xs[4096];
        for (size_t i = 0; i < sizeof xs; i++) xs[i] = 'x';
        for (uint32_t left = number(path + 5, plen - 5); left > 0;) {
            uint32_t k = left < sizeof xs ? left : sizeof xs;
            out_check(out, RET);
            if (RET[0] != 0) break;  // closed: the host's limit
            out_write(out, xs, k, RET);
            if (RET[0] != 0) break;
            left -= k;
        }
    } else if (same(path, plen, "/env")) {
        get_env(RET);  // list<tuple<string, string>>
        const int32_t *env = (const int32_t *)(uintptr_t)RET32(0);
        size_t n = (size_t)RET32(4);
        for (size_t i = 0; i < n; i++) {
            const int32_t *e = env + 4 * i;
            write_all(out, (const uint8_t *)(uintptr_t)e[0], (size_t)e[1]);
            write_all(out, (const uint8_t *)"=", 1);
            write_all(out, (const uint8_t *)(uintptr_t)e[2], (size_t)e[3]);
            write_all(out, (const uint8_t *)"\n", 1);
        }
    } else if (same(path, plen, "/log")) {
        h32 err = get_stderr();
        write_all(err, (const uint8_t *)"to the log\n", 11);
        out_drop(err);
    } else if (same(path, plen, "/clock")) {
        int64_t t0 = mono_now();
        wall_now(RET);  // datetime { seconds: u64 @0, nanoseconds: u32 @8 }
        int ok = RET64(0) > 1700000000;
        random_bytes(16, RET);  // list<u8>: ptr @0, len @4
        ok = ok && RET32(4) == 16 && mono_now() >= t0;
        write_all(out, (const uint8_t *)(ok ? "ok" : "bad"), ok ? 2 : 3);
    } else if (prefix(path, plen, "/fs/")) {
        files(path + 4, plen - 4, request, out);
    } else if (prefix(path, plen, "/fetch/")) {
        fetch(path + 7, plen - 7, out);
    } else if (prefix(path, plen, "/stream/")) {
        uint32_t n = number(path + 8, plen - 8);
        for (uint32_t i = 0; i < n; i++) {
            char text[24] = "event ";
            size_t k = decimal(i, text + 6);
            text[6 + k] = '\n';
            write_all(out, (const uint8_t *)text, 7 + k);
            sleep_ms(100);
        }
        static char count[10];
        trailer_value = count;
        trailer_len = decimal(n, count);
        trailer_name = "x-events";
    } else if (same(path, plen, "/trailers")) {
        write_all(out, (const uint8_t *)"body\n", 5);
        trailer_name = "x-checksum";
        trailer_value = "42";
        trailer_len = 2;
    } else if (same(path, plen, "/request-trailers")) {
        request_trailers(request, out);
    } else {
        // the request body, chunk by chunk, straight back
        req_consume(request, RET);
        check(RET[0] == 0);
        copy_body(RET32(4), out);
    }
    out_flush(out, RET);
    check(RET[0] == 0);
    out_drop(out);
    if (same(path, plen, "/unfinished")) return;
    if (trailer_name) {
        h32 trailers = fields_new();
        append(trailers, trailer_name, slen(trailer_name), (const uint8_t *)trailer_value, trailer_len);
        outbody_finish(body, 1, trailers, RET);
    } else {
        outbody_finish(body, 0, 0, RET);
    }
    check(RET[0] == 0);
    if (same(path, plen, "/exit-ok")) cli_exit(0);
}
