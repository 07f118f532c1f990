// memhog: allocates and touches 1 MiB blocks until malloc fails or ARGV[1] MiB are held.
// Prints how many MiB it got; exits 0 if it reached its target, 1 if memory ran out.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    long target = argc > 1 ? atol(argv[1]) : 1L << 30;
    long got = 0;
    void *volatile head = NULL;  // keeps every block reachable so the allocations stay real
    while (got < target) {
        char *p = malloc(1 << 20);
        if (!p) {
            printf("out of memory after %ld MiB\n", got);
            return 1;
        }
        memset(p, 1, 1 << 20);
        *(void **)p = head;
        head = p;
        got++;
    }
    printf("allocated %ld MiB\n", got);
    return 0;
}
