// routes.c - one module, several routes: WAGI's `_routes` convention.
//
// Besides _start, this module exports `_routes` and one function per route. At start-up the
// gateway calls `_routes` once; each line it prints is "<subroute> <export-name>", and the
// subroute is appended to the module's own route from modules.toml. Mounted at "/routes":
//
//   /routes               -> _start  (main below: lists the routes)
//   /routes/hello         -> hello
//   /routes/goodbye/...   -> goodbye (and everything under it; PATH_INFO is the rest)
//
// This is an ordinary command module (built without -mexec-model=reactor), and the gateway calls
// `_routes`, `hello` and `goodbye` directly on a fresh instance, without going through _start.
// That has two consequences for C code, both handled below:
//   - C constructors may not have run: with zig cc, used here, only _start runs them (wasm-ld
//     from wasi-sdk wraps every export so that they do). So these functions depend on none;
//     wasi-libc sets up what they use (the environment, stdio, preopened folders) lazily, on
//     first use, so getenv and printf work either way.
//   - Nothing calls exit() afterwards, so nothing flushes stdout: each function ends with
//     fflush(stdout), or its last buffered bytes would be lost.
// Each function returns normally (never exit()), because WAGI treats a trap as a failed request.
//
// Linked with a 64 KiB stack (wasi-sdk's default; zig cc's is 16 MiB): examples/wagi/README.md
// says why a small guest starts faster.
// guestbuild: -Wl,-z,stack-size=65536
#include <stdio.h>
#include <stdlib.h>

#define EXPORT(name) __attribute__((export_name(name)))

// Called by the gateway at start-up, with no request: prints the route table, one per line.
EXPORT("_routes") void routes(void) {
    fputs("/hello hello\n", stdout);
    fputs("/goodbye/... goodbye\n", stdout);
    fflush(stdout);
}

EXPORT("hello") void hello(void) {
    printf("Content-Type: text/plain; charset=utf-8\n\n");
    printf("Hello from the exported function `hello`, via _routes.\n");
    fflush(stdout);
}

EXPORT("goodbye") void goodbye(void) {
    const char *rest = getenv("PATH_INFO");
    printf("Content-Type: text/plain; charset=utf-8\n\n");
    printf("Goodbye from the exported function `goodbye`.\n");
    printf("PATH_INFO (the path below /goodbye): \"%s\"\n", rest ? rest : "");
    fflush(stdout);
}

// The module's own route still runs _start, that is main.
int main(void) {
    const char *base = getenv("SCRIPT_NAME");
    if (!base) base = "";
    printf("Content-Type: text/plain; charset=utf-8\n\n");
    printf("This module declares its own routes through the _routes export:\n\n");
    printf("  %s/hello        -> hello\n", base);
    printf("  %s/goodbye/...  -> goodbye\n", base);
    return 0;
}
