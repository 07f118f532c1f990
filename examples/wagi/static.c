// static.c - a static file server: answers GET and HEAD with files from the directory /static.
//
// The guest sees only what the gateway preopens for it. modules.toml maps a host folder onto the
// guest path /static with `volumes = { "/static" = "public" }`, so this module can read that
// folder and nothing else: the WASI sandbox is the real confinement. The module still refuses
// ".." segments itself (400 Bad Request) and never serves hidden files (names starting with '.'),
// as a second line of defence and so it stays safe under a more generous host.
//
// PATH_INFO (the request path after the route, already URL-decoded by the gateway) names the file:
// "/" and any path ending in '/' serve that folder's index.html, a folder without the trailing
// slash is redirected to it, and a missing file is 404. The Content-Type comes from the extension.
//
// Linked with a 64 KiB stack (wasi-sdk's default; zig cc's is 16 MiB): examples/wagi/README.md
// says why a small guest starts faster.
// guestbuild: -Wl,-z,stack-size=65536
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define ROOT "/static"
#define MAX_PATH 1024

static const struct {
    const char *ext, *type;
} TYPES[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"json", "application/json"},
    {"txt", "text/plain; charset=utf-8"},
    {"md", "text/markdown; charset=utf-8"},
    {"csv", "text/csv; charset=utf-8"},
    {"xml", "application/xml"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"avif", "image/avif"},
    {"ico", "image/x-icon"},
    {"wasm", "application/wasm"},
    {"pdf", "application/pdf"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"ttf", "font/ttf"},
    {"mp3", "audio/mpeg"},
    {"mp4", "video/mp4"},
    {"webm", "video/webm"},
    {"zip", "application/zip"},
    {"gz", "application/gzip"},
};

static const char *type_for(const char *path) {
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(path, '.');
    if (dot && (!slash || dot > slash)) {
        for (size_t i = 0; i < sizeof TYPES / sizeof TYPES[0]; i++)
            if (strcasecmp(dot + 1, TYPES[i].ext) == 0) return TYPES[i].type;
    }
    return "application/octet-stream";
}

static void error_response(const char *status, const char *extra) {
    printf("Status: %s\n", status);
    if (extra) fputs(extra, stdout);
    printf("Content-Type: text/plain; charset=utf-8\n\n%s\n", status);
}

// Append src to dst (capacity MAX_PATH) percent-encoding every byte a URL path cannot hold as is.
static int url_path_append(char *dst, size_t *len, const char *src) {
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)src; *p; p++) {
        int plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                    (*p >= '0' && *p <= '9') || strchr("/-._~!$&'()*+,;=:@", *p);
        if (*len + 4 > MAX_PATH) return -1;
        if (plain) {
            dst[(*len)++] = (char)*p;
        } else {
            dst[(*len)++] = '%';
            dst[(*len)++] = hex[*p >> 4];
            dst[(*len)++] = hex[*p & 15];
        }
    }
    dst[*len] = '\0';
    return 0;
}

// Redirect to SCRIPT_NAME + rel + "/", so that relative links inside the folder's index.html work.
static void redirect_to_folder(const char *rel) {
    char location[MAX_PATH];
    size_t len = 0;
    const char *script = getenv("SCRIPT_NAME");
    if (url_path_append(location, &len, script ? script : "") != 0 ||
        url_path_append(location, &len, rel) != 0 || url_path_append(location, &len, "/") != 0) {
        error_response("404 Not Found", NULL);
        return;
    }
    printf("Status: 301 Moved Permanently\nLocation: %s\n", location);
    printf("Content-Type: text/plain; charset=utf-8\n\nMoved to %s\n", location);
}

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
    const char *method = getenv("REQUEST_METHOD");
    if (!method) method = "GET";
    int head = strcmp(method, "HEAD") == 0;
    if (!head && strcmp(method, "GET") != 0) {
        error_response("405 Method Not Allowed", "Allow: GET, HEAD\n");
        return 0;
    }

    const char *path = getenv("PATH_INFO");
    if (!path) path = "";
    const char *script = getenv("SCRIPT_NAME");
    if (*path == '\0' && script && *script) {
        // "/static" was asked for under a "/static/..." route: send the browser to "/static/",
        // or the relative links in index.html would resolve against the parent folder.
        redirect_to_folder("");
        return 0;
    }

    // Rebuild the path one segment at a time: "" and "." segments are dropped, ".." is refused
    // and hidden names are not served. rel is the clean path relative to the volume, "/a/b".
    char rel[MAX_PATH] = "";
    size_t rel_len = 0;
    for (const char *seg = path; *seg;) {
        while (*seg == '/') seg++;
        size_t n = strcspn(seg, "/");
        if (n == 0) break;
        if (n == 2 && seg[0] == '.' && seg[1] == '.') {
            error_response("400 Bad Request", NULL);
            return 0;
        }
        if (!(n == 1 && seg[0] == '.')) {
            if (seg[0] == '.' || rel_len + 1 + n + sizeof "/index.html" > sizeof rel) {
                error_response("404 Not Found", NULL);
                return 0;
            }
            rel[rel_len++] = '/';
            memcpy(rel + rel_len, seg, n);
            rel_len += n;
            rel[rel_len] = '\0';
        }
        seg += n;
    }
    int want_folder = *path == '\0' || path[strlen(path) - 1] == '/';

    char file[sizeof ROOT + MAX_PATH];
    snprintf(file, sizeof file, "%s%s%s", ROOT, rel, want_folder ? "/index.html" : "");

    int fd = open(file, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        struct stat root;
        if (stat(ROOT, &root) != 0) {
            // Not a missing file: the gateway did not give this module its folder at all.
            fprintf(stderr, "static: %s is not mounted; add volumes = {\"%s\" = \"<folder>\"}\n",
                    ROOT, ROOT);
            error_response("500 Internal Server Error", NULL);
        } else {
            error_response("404 Not Found", NULL);
        }
        return 0;
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        redirect_to_folder(rel);
        return 0;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        error_response("404 Not Found", NULL);
        return 0;
    }

    printf("Content-Type: %s\nX-Content-Type-Options: nosniff\n\n", type_for(file));
    if (fflush(stdout) != 0 || head) return 0;

    static char buf[64 * 1024];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n == 0) break;
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("static: reading the file");
            return 1;
        }
        if (write_all(1, buf, (size_t)n) != 0) return 1;
    }
    close(fd);
    return 0;
}
