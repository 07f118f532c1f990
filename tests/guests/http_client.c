// http_client: drives the wasi_experimental_http imports from its arguments and prints one line
// per call, so tests can check exact error codes and exactly what the host wrote.
//
// Arguments are a sequence of commands. H is a handle number, or "@" for the handle returned by
// the last successful req. Byte strings in the output escape '\\' and every byte outside 0x20-0x7e
// as \xHH.
//
//   req METHOD URL HEADERS BODY  req rc=R status=S handle=N status_tail=aaaa
//                                (on error: req rc=R status_slot=S handle_slot=S, S untouched|written)
//   header H NAME BUFLEN         header rc=R len=N value=BYTES
//                                (on error: header rc=R written=S buf=S)
//   all H BUFLEN                 all rc=R len=N text=BYTES   (on error: all rc=R written=S buf=S)
//   read H BUFLEN                read rc=R n=N data=BYTES    (one body_read call)
//   body H CHUNK                 body sizes=A,B,...,0 rc=0 again=R/N data=BYTES
//                                (body_read until it returns 0, then once more: again=rc/n;
//                                on an error: body [sizes=...] rc=R)
//   close H                      close rc=R
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WXH(name) __attribute__((import_module("wasi_experimental_http"), import_name(name)))

WXH("req")
int32_t wxh_req(const char *url, size_t url_len, const char *method, size_t method_len,
                const char *headers, size_t headers_len, const char *body, size_t body_len,
                uint8_t *status_out, uint8_t *handle_out);
WXH("close") int32_t wxh_close(uint32_t handle);
WXH("header_get")
int32_t wxh_header_get(uint32_t handle, const char *name, size_t name_len, uint8_t *value,
                       size_t value_len, uint8_t *written_out);
WXH("headers_get_all")
int32_t wxh_headers_get_all(uint32_t handle, uint8_t *buf, size_t buf_len, uint8_t *written_out);
WXH("body_read")
int32_t wxh_body_read(uint32_t handle, uint8_t *buf, size_t buf_len, uint8_t *written_out);

#define SENTINEL 0xAA

static uint32_t last_handle;

static uint32_t load_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int untouched(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != SENTINEL) return 0;
    return 1;
}

static const char *slot_state(const uint8_t *p, size_t n) {
    return untouched(p, n) ? "untouched" : "written";
}

static void put_bytes(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (p[i] >= 0x20 && p[i] <= 0x7e && p[i] != '\\')
            putchar(p[i]);
        else
            printf("\\x%02x", p[i]);
    }
}

static uint32_t parse_handle(const char *arg) {
    return strcmp(arg, "@") == 0 ? last_handle : (uint32_t)strtoul(arg, NULL, 10);
}

static uint8_t *sentinel_buffer(size_t n) {
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) {
        fputs("out of memory\n", stderr);
        exit(3);
    }
    memset(buf, SENTINEL, n ? n : 1);
    return buf;
}

static void cmd_req(char **a) {
    uint8_t slots[8];
    memset(slots, SENTINEL, sizeof slots);
    int32_t rc = wxh_req(a[1], strlen(a[1]), a[0], strlen(a[0]), a[2], strlen(a[2]), a[3],
                         strlen(a[3]), slots, slots + 4);
    if (rc == 0) {
        last_handle = load_u32(slots + 4);
        printf("req rc=0 status=%u handle=%u status_tail=%02x%02x\n",
               (unsigned)(slots[0] | slots[1] << 8), (unsigned)last_handle, slots[2], slots[3]);
    } else {
        printf("req rc=%d status_slot=%s handle_slot=%s\n", (int)rc, slot_state(slots, 4),
               slot_state(slots + 4, 4));
    }
}

static void cmd_header(char **a) {
    size_t cap = strtoul(a[2], NULL, 10);
    uint8_t *buf = sentinel_buffer(cap);
    uint8_t written[4];
    memset(written, SENTINEL, sizeof written);
    int32_t rc = wxh_header_get(parse_handle(a[0]), a[1], strlen(a[1]), buf, cap, written);
    if (rc == 0) {
        uint32_t n = load_u32(written);
        printf("header rc=0 len=%u value=", (unsigned)n);
        put_bytes(buf, n);
        putchar('\n');
    } else {
        printf("header rc=%d written=%s buf=%s\n", (int)rc, slot_state(written, 4),
               slot_state(buf, cap));
    }
    free(buf);
}

static void cmd_all(char **a) {
    size_t cap = strtoul(a[1], NULL, 10);
    uint8_t *buf = sentinel_buffer(cap);
    uint8_t written[4];
    memset(written, SENTINEL, sizeof written);
    int32_t rc = wxh_headers_get_all(parse_handle(a[0]), buf, cap, written);
    if (rc == 0) {
        uint32_t n = load_u32(written);
        printf("all rc=0 len=%u text=", (unsigned)n);
        put_bytes(buf, n);
        putchar('\n');
    } else {
        printf("all rc=%d written=%s buf=%s\n", (int)rc, slot_state(written, 4),
               slot_state(buf, cap));
    }
    free(buf);
}

static void cmd_read(char **a) {
    size_t cap = strtoul(a[1], NULL, 10);
    uint8_t *buf = sentinel_buffer(cap);
    uint8_t written[4];
    int32_t rc = wxh_body_read(parse_handle(a[0]), buf, cap, written);
    uint32_t n = rc == 0 ? load_u32(written) : 0;
    printf("read rc=%d n=%u data=", (int)rc, (unsigned)n);
    put_bytes(buf, n);
    putchar('\n');
    free(buf);
}

static void cmd_body(char **a) {
    uint32_t handle = parse_handle(a[0]);
    size_t chunk = strtoul(a[1], NULL, 10);
    uint8_t *buf = sentinel_buffer(chunk);
    uint8_t *all = NULL;
    size_t total = 0;
    uint8_t written[4];
    int32_t rc = 0;
    printf("body ");
    for (int i = 0; i < (1 << 20); i++) {
        rc = wxh_body_read(handle, buf, chunk, written);
        if (rc != 0) break;
        uint32_t n = load_u32(written);
        printf(i ? ",%u" : "sizes=%u", (unsigned)n);
        if (n == 0) break;
        all = realloc(all, total + n);
        if (!all) {
            fputs("out of memory\n", stderr);
            exit(3);
        }
        memcpy(all + total, buf, n);
        total += n;
    }
    if (rc != 0) {
        printf("rc=%d\n", (int)rc);
    } else {
        int32_t again_rc = wxh_body_read(handle, buf, chunk, written);
        printf(" rc=0 again=%d/%u data=", (int)again_rc, (unsigned)load_u32(written));
        put_bytes(all, total);
        putchar('\n');
    }
    free(all);
    free(buf);
}

static void cmd_close(char **a) {
    printf("close rc=%d\n", (int)wxh_close(parse_handle(a[0])));
}

struct command {
    const char *name;
    int nargs;
    void (*run)(char **args);
};

static const struct command COMMANDS[] = {
    {"req", 4, cmd_req},   {"header", 3, cmd_header}, {"all", 2, cmd_all},
    {"read", 2, cmd_read}, {"body", 2, cmd_body},     {"close", 1, cmd_close},
};

int main(int argc, char **argv) {
    int i = 1;
    while (i < argc) {
        const struct command *cmd = NULL;
        for (size_t c = 0; c < sizeof COMMANDS / sizeof COMMANDS[0]; c++)
            if (strcmp(argv[i], COMMANDS[c].name) == 0) cmd = &COMMANDS[c];
        if (!cmd || i + cmd->nargs >= argc) {
            fprintf(stderr, "usage error at argument %d\n", i);
            return 2;
        }
        cmd->run(argv + i + 1);
        i += 1 + cmd->nargs;
    }
    return 0;
}
