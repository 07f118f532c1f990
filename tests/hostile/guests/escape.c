// escape: tries to reach outside its sandbox; one operation per invocation, chosen by argv (so
// `wasmgate run escape.wasm OP PATH [ARG]` and, through WAGI's default argv, `/route?OP&PATH&ARG`
// do the same). Always answers as a CGI script: "ok ..." or "err OP: <strerror>" in the body.
//
//   read PATH | write PATH TEXT | ls DIR | rename FROM TO | link FROM TO | linkf FROM TO
//   | symlink TARGET PATH
//   | mkdir PATH | unlink PATH
//   naive            read "/vol" + PATH_INFO with no checks at all (what a careless file server
//                    does): the sandbox alone must keep it inside the volume
//   env              print every environment variable the guest can see
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

static int fail(const char *op) {
    printf("err %s: %s\n", op, strerror(errno));
    return 0;
}

static int cat(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return fail("read");
    char buf[4096];
    size_t n;
    fputs("ok ", stdout);
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) fwrite(buf, 1, n, stdout);
    fclose(f);
    return 0;
}

int main(int argc, char **argv) {
    fputs("Content-Type: text/plain\n\n", stdout);
    const char *op = argc > 1 ? argv[1] : "";
    const char *path = argc > 2 ? argv[2] : "", *arg = argc > 3 ? argv[3] : "";
    if (!strcmp(op, "env")) {
        for (char **e = environ; *e; e++) printf("%s\n", *e);
        return 0;
    }
    if (!strcmp(op, "naive")) {
        const char *info = getenv("PATH_INFO");
        char full[4096];
        snprintf(full, sizeof full, "/vol%s", info ? info : "");
        return cat(full);
    }
    if (!strcmp(op, "read")) return cat(path);
    if (!strcmp(op, "write")) {
        FILE *f = fopen(path, "wb");
        if (!f) return fail(op);
        if (fputs(arg, f) < 0 || fclose(f) != 0) return fail(op);
        return puts("ok"), 0;
    }
    if (!strcmp(op, "ls")) {
        DIR *d = opendir(path);
        if (!d) return fail(op);
        fputs("ok", stdout);
        struct dirent *e;
        while ((e = readdir(d))) printf(" %s", e->d_name);
        puts("");
        return closedir(d), 0;
    }
    if (!strcmp(op, "rename")) return rename(path, arg) ? fail(op) : (puts("ok"), 0);
    if (!strcmp(op, "link")) return link(path, arg) ? fail(op) : (puts("ok"), 0);
    if (!strcmp(op, "linkf"))  // hard link following a symlink: must not pull in its target
        return linkat(AT_FDCWD, path, AT_FDCWD, arg, AT_SYMLINK_FOLLOW) ? fail(op)
                                                                        : (puts("ok"), 0);
    if (!strcmp(op, "symlink")) return symlink(path, arg) ? fail(op) : (puts("ok"), 0);
    if (!strcmp(op, "mkdir")) return mkdir(path, 0755) ? fail(op) : (puts("ok"), 0);
    if (!strcmp(op, "unlink")) return unlink(path) ? fail(op) : (puts("ok"), 0);
    printf("err unknown op %s\n", op);
    return 0;
}
