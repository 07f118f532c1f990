// cpu_spin: a CPU-bound WAGI guest. Runs a fixed number of rounds of pure integer arithmetic
// (no host calls, no memory traffic), then prints the result as a CGI response, so the compiler
// cannot drop the work. The round count comes from QUERY_STRING ("n=ROUNDS" or a bare number);
// the default (3 million) takes about 6 ms under Wasmtime on a current x86-64 core.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_ROUNDS 3000000UL
#define MAX_ROUNDS 4000000000UL

static unsigned long rounds_from_query(const char *query) {
    if (query == NULL) return DEFAULT_ROUNDS;
    if (strncmp(query, "n=", 2) == 0) query += 2;
    char *end;
    unsigned long n = strtoul(query, &end, 10);
    if (end == query || n == 0 || n > MAX_ROUNDS) return DEFAULT_ROUNDS;
    return n;
}

int main(void) {
    unsigned long rounds = rounds_from_query(getenv("QUERY_STRING"));
    // xorshift64* steps: each depends on the one before, and there is no closed form to fold.
    uint64_t x = 0x9E3779B97F4A7C15ULL;
    for (unsigned long i = 0; i < rounds; i++) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x *= 0x2545F4914F6CDD1DULL;
    }
    printf("Content-Type: text/plain\n\n");  // the blank line ends the headers
    printf("rounds=%lu result=%016llx\n", rounds, (unsigned long long)x);
    return 0;
}
