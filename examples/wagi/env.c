// env.c - shows everything the gateway hands a WAGI guest: argv, the environment and the body.
//
// Under WAGI, argv[0] is the request path and each '&'-separated piece of the query string is one
// more argument (not URL-decoded). The environment holds the CGI variables (REQUEST_METHOD,
// PATH_INFO, QUERY_STRING, CONTENT_TYPE, ...), every request header as HTTP_<NAME>, and the
// module's own `environment` from modules.toml. The request body arrives on standard input; this
// guest only counts its bytes.
//
// Linked with a 64 KiB stack (wasi-sdk's default; zig cc's is 16 MiB): examples/wagi/README.md
// says why a small guest starts faster.
// guestbuild: -Wl,-z,stack-size=65536
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv) {
    printf("Content-Type: text/plain; charset=utf-8\n\n");

    printf("argv (%d):\n", argc);
    for (int i = 0; i < argc; i++) printf("  argv[%d] = %s\n", i, argv[i]);

    // Sort a copy of the environment so the output is easy to scan and to compare.
    size_t count = 0;
    while (environ[count]) count++;
    char **sorted = malloc((count ? count : 1) * sizeof *sorted);
    if (!sorted) return 1;
    memcpy(sorted, environ, count * sizeof *sorted);
    qsort(sorted, count, sizeof *sorted, by_name);
    printf("\nenvironment (%zu):\n", count);
    for (size_t i = 0; i < count; i++) printf("  %s\n", sorted[i]);
    free(sorted);

    const char *greeting = getenv("GREETING");
    if (greeting) printf("\nGREETING from modules.toml: %s\n", greeting);

    char buf[16 * 1024];
    unsigned long long total = 0;
    ssize_t n;
    while ((n = read(0, buf, sizeof buf)) > 0) total += (unsigned long long)n;
    printf("\nstdin: %llu bytes\n", total);
    return 0;
}
