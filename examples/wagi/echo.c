// echo.c - answers with the request body, byte for byte, under the request's Content-Type.
//
// Shows how a WAGI guest receives a request body (on standard input) and streams a response of any
// size and content: the body is copied in fixed-size chunks, so memory use does not grow with the
// request, and nothing is treated as text, so binary data survives unchanged.
//
//   curl --data-binary @photo.png -H 'Content-Type: image/png' http://127.0.0.1:3000/echo > same.png
//
// Linked with a 64 KiB stack (wasi-sdk's default; zig cc's is 16 MiB): examples/wagi/README.md
// says why a small guest starts faster.
// guestbuild: -Wl,-z,stack-size=65536
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// The media type to answer with. CGI passes the request's Content-Type in CONTENT_TYPE; some
// gateways only set HTTP_CONTENT_TYPE (every request header also arrives as HTTP_<NAME>), so look
// there too. A value that could break out of its header line is not trusted.
static const char *content_type(void) {
    const char *names[] = {"CONTENT_TYPE", "HTTP_CONTENT_TYPE"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *v = getenv(names[i]);
        if (v && *v && !strpbrk(v, "\r\n")) return v;
    }
    return "application/octet-stream";
}

// Write all of buf to fd, retrying after short writes and interruptions.
static int write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

int main(void) {
    // The headers go out before any of the body has been read: the response streams.
    printf("Content-Type: %s\n\n", content_type());
    if (fflush(stdout) != 0) return 1;

    static char buf[64 * 1024];
    for (;;) {
        ssize_t n = read(0, buf, sizeof buf);
        if (n == 0) break;  // end of the request body
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("echo: reading the request body");
            return 1;
        }
        if (write_all(1, buf, (size_t)n) != 0) {
            perror("echo: writing the response body");
            return 1;
        }
    }
    return 0;
}
