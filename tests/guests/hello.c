// hello: prints its argv, its environment and its stdin, then exits with $EXIT_CODE (default 0).
#include <stdio.h>
#include <stdlib.h>

extern char **environ;

int main(int argc, char **argv) {
    for (int i = 0; i < argc; i++) printf("argv[%d]=%s\n", i, argv[i]);
    for (char **e = environ; *e; e++) printf("env %s\n", *e);
    char buf[4096];
    size_t n, total = 0;
    while ((n = fread(buf, 1, sizeof buf, stdin)) > 0) {
        if (total == 0) fputs("stdin=", stdout);
        fwrite(buf, 1, n, stdout);
        total += n;
    }
    if (total) fputs("\n", stdout);
    fprintf(stderr, "hello on stderr\n");
    const char *code = getenv("EXIT_CODE");
    return code ? atoi(code) : 0;
}
