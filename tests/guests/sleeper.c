// sleeper: sleeps ARGV[1] seconds inside a host call (poll_oneoff), where epoch interruption
// cannot reach it, then prints "awake" as a CGI response (so the gateway can serve it too).
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
    sleep(argc > 1 ? (unsigned)atoi(argv[1]) : 60);
    fputs("Content-Type: text/plain\n\nawake\n", stdout);
    return 0;
}
