// fs: one filesystem operation per invocation, chosen by argv, so tests can probe the sandbox.
//   fs read PATH | write PATH TEXT | ls DIR | rename FROM TO | link FROM TO | symlink TARGET PATH
//      | mkdir PATH | unlink PATH | stat PATH
// Prints "ok ..." and exits 0, or "err OP: <strerror>" and exits 1.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int fail(const char *op) {
    printf("err %s: %s\n", op, strerror(errno));
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: fs OP PATH [ARG]\n");
        return 2;
    }
    const char *op = argv[1], *path = argv[2], *arg = argc > 3 ? argv[3] : "";
    if (!strcmp(op, "read")) {
        FILE *f = fopen(path, "rb");
        if (!f) return fail(op);
        char buf[4096];
        size_t n;
        fputs("ok ", stdout);
        while ((n = fread(buf, 1, sizeof buf, f)) > 0) fwrite(buf, 1, n, stdout);
        fclose(f);
        return 0;
    }
    if (!strcmp(op, "write")) {
        FILE *f = fopen(path, "wb");
        if (!f) return fail(op);
        if (fputs(arg, f) < 0 || fclose(f) != 0) return fail(op);
        puts("ok");
        return 0;
    }
    if (!strcmp(op, "ls")) {
        DIR *d = opendir(path);
        if (!d) return fail(op);
        fputs("ok", stdout);
        struct dirent *e;
        while ((e = readdir(d))) printf(" %s", e->d_name);
        puts("");
        closedir(d);
        return 0;
    }
    if (!strcmp(op, "rename")) return rename(path, arg) ? fail(op) : (puts("ok"), 0);
    if (!strcmp(op, "link")) return link(path, arg) ? fail(op) : (puts("ok"), 0);
    if (!strcmp(op, "symlink")) return symlink(path, arg) ? fail(op) : (puts("ok"), 0);
    if (!strcmp(op, "mkdir")) return mkdir(path, 0755) ? fail(op) : (puts("ok"), 0);
    if (!strcmp(op, "unlink")) return unlink(path) ? fail(op) : (puts("ok"), 0);
    if (!strcmp(op, "stat")) {
        struct stat st;
        if (stat(path, &st)) return fail(op);
        printf("ok size=%lld\n", (long long)st.st_size);
        return 0;
    }
    fprintf(stderr, "unknown op %s\n", op);
    return 2;
}
