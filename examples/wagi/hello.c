// hello.c - the "hello world" WAGI guest in C.
//
// WAGI is CGI for WASI: the gateway runs the module's _start (here: main) once per request and
// turns what it prints into the HTTP response. Headers come first, one per line, then a blank
// line, then the body. Content-Type (or Location, or Status) is the minimum a response needs.
//
// Linked with a 64 KiB stack (wasi-sdk's default; zig cc's is 16 MiB): examples/wagi/README.md
// says why a small guest starts faster.
// guestbuild: -Wl,-z,stack-size=65536
#include <stdio.h>

int main(void) {
    fputs("Content-Type: text/plain\n", stdout);
    fputs("\n", stdout);  // the blank line ends the headers
    fputs("Hello from WebAssembly!\n", stdout);
    return 0;  // returning from main flushes stdout
}
