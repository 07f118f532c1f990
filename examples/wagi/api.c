// api.c - a small JSON API and an HTML form handler, routed on PATH_INFO and REQUEST_METHOD.
//
// Mounted as `route = "/api/..."`, the gateway passes the part of the path after /api in
// PATH_INFO, so this one module answers:
//
//   GET  /api                 JSON list of the endpoints below
//   GET  /api/add?a=1&b=2     {"sum":3}               (64-bit integers; 400 on bad input)
//   POST /api/reverse         {"text":"abc"} -> {"text":"cba"}   (reversed by code point)
//   GET  /api/form            an HTML form
//   POST /api/form            the submitted application/x-www-form-urlencoded fields, as HTML
//
// Anything else is 404; a known path with the wrong method is 405. Errors are JSON
// ({"error":"..."}) for the JSON endpoints and HTML for the form. Every response is built in memory
// first, so the right Status line can still be chosen when something goes wrong half-way.
// Request bodies are capped at 1 MiB (413 beyond that).
//
// Linked with a 64 KiB stack (wasi-sdk's default; zig cc's is 16 MiB): examples/wagi/README.md
// says why a small guest starts faster.
// guestbuild: -Wl,-z,stack-size=65536
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_BODY (1024 * 1024)
#define MAX_JSON_DEPTH 64

// ---- growable byte buffer --------------------------------------------------------------------

typedef struct {
    char *data;
    size_t len, cap;
} Buf;

static void out_of_memory(void) {
    fputs("Status: 500 Internal Server Error\nContent-Type: text/plain\n\nout of memory\n", stdout);
    exit(1);
}

static void buf_add(Buf *b, const void *p, size_t n) {
    if (n > SIZE_MAX - b->len - 1) out_of_memory();
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) {
            if (cap > SIZE_MAX / 2) out_of_memory();
            cap *= 2;
        }
        char *data = realloc(b->data, cap);
        if (!data) out_of_memory();
        b->data = data;
        b->cap = cap;
    }
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';  // always NUL-terminated, though it may also hold NULs
}

static void buf_str(Buf *b, const char *s) { buf_add(b, s, strlen(s)); }

static void buf_byte(Buf *b, char c) { buf_add(b, &c, 1); }

__attribute__((format(printf, 2, 3))) static void buf_printf(Buf *b, const char *fmt, ...) {
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof small) {
        buf_add(b, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) out_of_memory();
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    buf_add(b, big, (size_t)n);
    free(big);
}

// ---- UTF-8 -----------------------------------------------------------------------------------

// Decode one code point from s[*i..len). Strict: overlong forms, surrogates and values past
// U+10FFFF are invalid. On success stores it in *cp and advances *i; on failure advances *i by one
// byte and returns -1.
static int utf8_next(const unsigned char *s, size_t len, size_t *i, uint32_t *cp) {
    unsigned char c = s[*i];
    size_t need;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        *i += 1;
        return 0;
    } else if ((c & 0xE0) == 0xC0) {
        need = 1, v = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        need = 2, v = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        need = 3, v = c & 0x07, min = 0x10000;
    } else {
        *i += 1;
        return -1;
    }
    if (len - *i <= need) {
        *i += 1;
        return -1;
    }
    for (size_t k = 1; k <= need; k++) {
        if ((s[*i + k] & 0xC0) != 0x80) {
            *i += 1;
            return -1;
        }
        v = (v << 6) | (s[*i + k] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
        *i += 1;
        return -1;
    }
    *cp = v;
    *i += need + 1;
    return 0;
}

static void utf8_put(Buf *b, uint32_t cp) {
    char o[4];
    size_t n;
    if (cp < 0x80) {
        o[0] = (char)cp, n = 1;
    } else if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6)), o[1] = (char)(0x80 | (cp & 0x3F)), n = 2;
    } else if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)), o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F)), n = 3;
    } else {
        o[0] = (char)(0xF0 | (cp >> 18)), o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), o[3] = (char)(0x80 | (cp & 0x3F)), n = 4;
    }
    buf_add(b, o, n);
}

// ---- escaping for output ---------------------------------------------------------------------

// Append s as a JSON string literal (with quotes). Invalid UTF-8 becomes U+FFFD, so the output is
// always valid JSON whatever bytes came in.
static void json_string(Buf *b, const char *s, size_t len) {
    const unsigned char *u = (const unsigned char *)s;
    buf_byte(b, '"');
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        if (utf8_next(u, len, &i, &cp) != 0) cp = 0xFFFD;
        switch (cp) {
        case '"': buf_str(b, "\\\""); break;
        case '\\': buf_str(b, "\\\\"); break;
        case '\n': buf_str(b, "\\n"); break;
        case '\r': buf_str(b, "\\r"); break;
        case '\t': buf_str(b, "\\t"); break;
        case '\b': buf_str(b, "\\b"); break;
        case '\f': buf_str(b, "\\f"); break;
        default:
            if (cp < 0x20 || cp == 0x7F) buf_printf(b, "\\u%04x", (unsigned)cp);
            else utf8_put(b, cp);
        }
    }
    buf_byte(b, '"');
}

// Append s as HTML text, safe both between tags and inside a quoted attribute value. Invalid UTF-8
// and NUL (which HTML forbids) become U+FFFD.
static void html_text(Buf *b, const char *s, size_t len) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        if (utf8_next(u, len, &i, &cp) != 0 || cp == 0) cp = 0xFFFD;
        switch (cp) {
        case '&': buf_str(b, "&amp;"); break;
        case '<': buf_str(b, "&lt;"); break;
        case '>': buf_str(b, "&gt;"); break;
        case '"': buf_str(b, "&quot;"); break;
        case '\'': buf_str(b, "&#39;"); break;
        default: utf8_put(b, cp);
        }
    }
}

// ---- the request -----------------------------------------------------------------------------

static const char *env_or(const char *name, const char *fallback) {
    const char *v = getenv(name);
    return v ? v : fallback;
}

// The request's media type: CONTENT_TYPE, or HTTP_CONTENT_TYPE from gateways that set only that.
static const char *request_content_type(void) {
    const char *v = getenv("CONTENT_TYPE");
    if (v && *v) return v;
    return env_or("HTTP_CONTENT_TYPE", "");
}

// Does the media type `value` name `type`? Case-insensitive, parameters (";charset=...") ignored.
static int media_type_is(const char *value, const char *type) {
    while (*value == ' ' || *value == '\t') value++;
    size_t n = strlen(type);
    if (strncasecmp(value, type, n) != 0) return 0;
    char next = value[n];
    return next == '\0' || next == ';' || next == ' ' || next == '\t';
}

// Read the whole request body into out. Returns 0, or the HTTP status that explains the failure.
static int read_body(Buf *out) {
    const char *cl = getenv("CONTENT_LENGTH");
    if (cl && isdigit((unsigned char)*cl)) {
        char *end;
        errno = 0;
        unsigned long long declared = strtoull(cl, &end, 10);
        if (*end == '\0' && (errno == ERANGE || declared > MAX_BODY)) return 413;
    }
    char chunk[16 * 1024];
    for (;;) {
        ssize_t n = read(0, chunk, sizeof chunk);
        if (n == 0) return 0;
        if (n < 0) {
            if (errno == EINTR) continue;
            return 500;
        }
        if (out->len + (size_t)n > MAX_BODY) return 413;
        buf_add(out, chunk, (size_t)n);
    }
}

static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Decode one application/x-www-form-urlencoded component: '+' is a space, %XX is a byte. A '%' that
// does not start a valid escape is kept as it is, as browsers and most servers do.
static void form_decode(Buf *out, const char *s, size_t len) {
    out->len = 0;
    buf_add(out, "", 0);
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '+') {
            buf_byte(out, ' ');
        } else if (s[i] == '%' && i + 2 < len && hex_value(s[i + 1]) >= 0 &&
                   hex_value(s[i + 2]) >= 0) {
            buf_byte(out, (char)(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2])));
            i += 2;
        } else {
            buf_byte(out, s[i]);
        }
    }
}

// Call fn(name, value) for each field of a urlencoded string ("a=1&b=two+words"), decoded.
typedef void (*field_fn)(const Buf *name, const Buf *value, void *ctx);

static void each_field(const char *s, size_t len, field_fn fn, void *ctx) {
    Buf name = {0}, value = {0};
    size_t start = 0;
    while (start <= len) {
        const char *amp = memchr(s + start, '&', len - start);
        size_t end = amp ? (size_t)(amp - s) : len;
        if (end > start) {  // skip empty pieces ("a=1&&b=2")
            const char *eq = memchr(s + start, '=', end - start);
            size_t name_end = eq ? (size_t)(eq - s) : end;
            form_decode(&name, s + start, name_end - start);
            if (eq) form_decode(&value, eq + 1, end - name_end - 1);
            else form_decode(&value, "", 0);
            fn(&name, &value, ctx);
        }
        start = end + 1;
    }
    free(name.data);
    free(value.data);
}

// ---- responses -------------------------------------------------------------------------------

static int head_only;  // a HEAD request gets the headers of the GET response and no body

// Write the whole response. status is e.g. "400 Bad Request" (NULL means 200), extra is zero or
// more complete header lines ("Allow: GET\n") or NULL.
static void respond(const char *status, const char *extra, const char *type, const Buf *body) {
    if (status) printf("Status: %s\n", status);
    if (extra) fputs(extra, stdout);
    printf("Content-Type: %s\n\n", type);
    if (!head_only && body->len) fwrite(body->data, 1, body->len, stdout);
}

static void respond_json(const char *status, const char *extra, const Buf *body) {
    respond(status, extra, "application/json", body);
}

static void json_error(const char *status, const char *extra, const char *message) {
    Buf b = {0};
    buf_str(&b, "{\"error\":");
    json_string(&b, message, strlen(message));
    buf_str(&b, "}\n");
    respond_json(status, extra, &b);
    free(b.data);
}

static const char *status_text(int code) {
    switch (code) {
    case 413: return "413 Content Too Large";
    case 415: return "415 Unsupported Media Type";
    default: return "500 Internal Server Error";
    }
}

static const char *HTML_HEAD =
    "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<title>%s</title>\n<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem "
    "auto;padding:0 1rem}label{display:block;margin-top:.8rem}input,textarea{width:100%%}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3rem .6rem;"
    "text-align:left;vertical-align:top;white-space:pre-wrap}</style>\n</head>\n<body>\n";

static void html_error(const char *status, const char *extra, const char *message) {
    Buf b = {0};
    buf_printf(&b, HTML_HEAD, "Error");
    buf_str(&b, "<h1>");
    html_text(&b, status, strlen(status));
    buf_str(&b, "</h1>\n<p>");
    html_text(&b, message, strlen(message));
    buf_str(&b, "</p>\n<p><a href=\"form\">Back to the form</a></p>\n</body>\n</html>\n");
    respond(status, extra, "text/html; charset=utf-8", &b);
    free(b.data);
}

// ---- GET /api --------------------------------------------------------------------------------

static void handle_index(void) {
    Buf b = {0};
    buf_str(&b,
            "{\"endpoints\":["
            "{\"method\":\"GET\",\"path\":\"/add?a=1&b=2\",\"returns\":{\"sum\":3}},"
            "{\"method\":\"POST\",\"path\":\"/reverse\",\"body\":{\"text\":\"abc\"},"
            "\"returns\":{\"text\":\"cba\"}},"
            "{\"method\":\"GET\",\"path\":\"/form\",\"returns\":\"an HTML form\"},"
            "{\"method\":\"POST\",\"path\":\"/form\",\"returns\":\"the submitted fields\"}"
            "]}\n");
    respond_json(NULL, NULL, &b);
    free(b.data);
}

// ---- GET /api/add?a=1&b=2 --------------------------------------------------------------------

typedef struct {
    Buf a, b;
    int have_a, have_b;
} AddArgs;

static void collect_add_arg(const Buf *name, const Buf *value, void *ctx) {
    AddArgs *args = ctx;
    Buf *dst = NULL;
    if (name->len == 1 && name->data[0] == 'a') dst = &args->a, args->have_a = 1;
    if (name->len == 1 && name->data[0] == 'b') dst = &args->b, args->have_b = 1;
    if (dst) {  // the last a= (or b=) wins
        dst->len = 0;
        buf_add(dst, value->data, value->len);
    }
}

// Parse a whole decimal integer ("-12"): no spaces, no '+', no fraction. Returns 0 on success.
static int parse_int(const Buf *s, long long *out) {
    size_t i = 0;
    int negative = 0;
    if (s->len > 0 && s->data[0] == '-') negative = 1, i = 1;
    if (i == s->len) return -1;
    unsigned long long magnitude = 0;
    const unsigned long long limit = negative ? (unsigned long long)LLONG_MAX + 1 : LLONG_MAX;
    for (; i < s->len; i++) {
        if (s->data[i] < '0' || s->data[i] > '9') return -1;
        unsigned digit = (unsigned)(s->data[i] - '0');
        if (magnitude > (limit - digit) / 10) return -1;
        magnitude = magnitude * 10 + digit;
    }
    if (!negative) *out = (long long)magnitude;
    else if (magnitude == 0) *out = 0;
    else *out = -(long long)(magnitude - 1) - 1;  // reaches LLONG_MIN without overflow
    return 0;
}

static void handle_add(void) {
    const char *qs = env_or("QUERY_STRING", "");
    AddArgs args = {0};
    each_field(qs, strlen(qs), collect_add_arg, &args);
    long long a, b, sum;
    char message[160];
    if (!args.have_a || !args.have_b) {
        json_error("400 Bad Request", NULL, "query parameters a and b are required, e.g. ?a=1&b=2");
    } else if (parse_int(&args.a, &a) != 0) {
        snprintf(message, sizeof message, "a must be a 64-bit integer, got \"%.60s\"", args.a.data);
        json_error("400 Bad Request", NULL, message);
    } else if (parse_int(&args.b, &b) != 0) {
        snprintf(message, sizeof message, "b must be a 64-bit integer, got \"%.60s\"", args.b.data);
        json_error("400 Bad Request", NULL, message);
    } else if (__builtin_add_overflow(a, b, &sum)) {
        json_error("400 Bad Request", NULL, "the sum does not fit in a 64-bit integer");
    } else {
        Buf body = {0};
        buf_printf(&body, "{\"sum\":%lld}\n", sum);
        respond_json(NULL, NULL, &body);
        free(body.data);
    }
    free(args.a.data);
    free(args.b.data);
}

// ---- POST /api/reverse: a small strict JSON reader --------------------------------------------

typedef struct {
    const unsigned char *p, *start, *end;
    int depth;
} Json;

static void json_ws(Json *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static int json_hex4(Json *j, uint32_t *v) {
    if (j->end - j->p < 4) return -1;
    *v = 0;
    for (int k = 0; k < 4; k++) {
        int h = hex_value((char)j->p[k]);
        if (h < 0) return -1;
        *v = *v * 16 + (uint32_t)h;
    }
    j->p += 4;
    return 0;
}

// Read a string (j->p at the opening quote), decoding it as UTF-8 into out (if not NULL).
static int json_read_string(Json *j, Buf *out) {
    if (out) out->len = 0;
    j->p++;  // the opening quote
    while (j->p < j->end) {
        unsigned char c = *j->p;
        if (c == '"') {
            j->p++;
            if (out) buf_add(out, "", 0);
            return 0;
        }
        if (c < 0x20) return -1;  // raw control characters must be escaped
        uint32_t cp;
        if (c == '\\') {
            if (j->end - j->p < 2) return -1;
            char e = (char)j->p[1];
            j->p += 2;
            switch (e) {
            case '"': cp = '"'; break;
            case '\\': cp = '\\'; break;
            case '/': cp = '/'; break;
            case 'b': cp = '\b'; break;
            case 'f': cp = '\f'; break;
            case 'n': cp = '\n'; break;
            case 'r': cp = '\r'; break;
            case 't': cp = '\t'; break;
            case 'u':
                if (json_hex4(j, &cp) != 0) return -1;
                if (cp >= 0xDC00 && cp <= 0xDFFF) return -1;  // a lone low surrogate
                if (cp >= 0xD800 && cp <= 0xDBFF) {          // must be followed by a low one
                    uint32_t low;
                    if (j->end - j->p < 2 || j->p[0] != '\\' || j->p[1] != 'u') return -1;
                    j->p += 2;
                    if (json_hex4(j, &low) != 0 || low < 0xDC00 || low > 0xDFFF) return -1;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                }
                break;
            default: return -1;
            }
        } else {
            size_t i = (size_t)(j->p - j->start);
            if (utf8_next(j->start, (size_t)(j->end - j->start), &i, &cp) != 0) return -1;
            j->p = j->start + i;
        }
        if (out) utf8_put(out, cp);
    }
    return -1;  // no closing quote
}

static int json_skip_number(Json *j) {
    const unsigned char *p = j->p, *e = j->end;
    if (p < e && *p == '-') p++;
    if (p < e && *p == '0') {
        p++;
    } else if (p < e && *p >= '1' && *p <= '9') {
        while (p < e && isdigit(*p)) p++;
    } else {
        return -1;
    }
    if (p < e && *p == '.') {
        p++;
        if (!(p < e && isdigit(*p))) return -1;
        while (p < e && isdigit(*p)) p++;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < e && (*p == '+' || *p == '-')) p++;
        if (!(p < e && isdigit(*p))) return -1;
        while (p < e && isdigit(*p)) p++;
    }
    j->p = p;
    return 0;
}

static int json_skip_value(Json *j);

// Walk an object (j->p at '{'). If text is not NULL, the string value of its "text" member is
// decoded into it and *found is set; a "text" member of another type is an error (-2).
static int json_object(Json *j, Buf *text, int *found) {
    if (++j->depth > MAX_JSON_DEPTH) return -1;
    j->p++;  // '{'
    json_ws(j);
    if (j->p < j->end && *j->p == '}') {
        j->p++;
        j->depth--;
        return 0;
    }
    Buf key = {0};
    int rc = -1;
    for (;;) {
        json_ws(j);
        if (!(j->p < j->end && *j->p == '"') || json_read_string(j, &key) != 0) break;
        json_ws(j);
        if (!(j->p < j->end && *j->p == ':')) break;
        j->p++;
        json_ws(j);
        if (text && key.len == 4 && memcmp(key.data, "text", 4) == 0) {
            if (!(j->p < j->end && *j->p == '"')) {
                if (json_skip_value(j) == 0) rc = -2;
                break;
            }
            if (json_read_string(j, text) != 0) break;
            *found = 1;
        } else if (json_skip_value(j) != 0) {
            break;
        }
        json_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == '}') {
            j->p++;
            j->depth--;
            rc = 0;
        }
        break;
    }
    free(key.data);
    return rc;
}

static int json_array(Json *j) {
    if (++j->depth > MAX_JSON_DEPTH) return -1;
    j->p++;  // '['
    json_ws(j);
    if (j->p < j->end && *j->p == ']') {
        j->p++;
        j->depth--;
        return 0;
    }
    for (;;) {
        json_ws(j);
        if (json_skip_value(j) != 0) return -1;
        json_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == ']') {
            j->p++;
            j->depth--;
            return 0;
        }
        return -1;
    }
}

static int json_literal(Json *j, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0) return -1;
    j->p += n;
    return 0;
}

static int json_skip_value(Json *j) {
    if (j->p >= j->end) return -1;
    switch (*j->p) {
    case '{': return json_object(j, NULL, NULL);
    case '[': return json_array(j);
    case '"': return json_read_string(j, NULL);
    case 't': return json_literal(j, "true");
    case 'f': return json_literal(j, "false");
    case 'n': return json_literal(j, "null");
    default: return json_skip_number(j);
    }
}

static void handle_reverse(void) {
    Buf body = {0}, text = {0};
    int status = read_body(&body);
    if (status != 0) {
        json_error(status_text(status), NULL,
                   status == 413 ? "the request body is larger than 1 MiB" : "could not read the body");
        goto done;
    }
    Json j = {(const unsigned char *)body.data, (const unsigned char *)body.data,
              (const unsigned char *)body.data + body.len, 0};
    int found = 0, rc = -1;
    json_ws(&j);
    if (j.p < j.end && *j.p == '{') {
        rc = json_object(&j, &text, &found);
        if (rc == 0) {
            json_ws(&j);
            if (j.p != j.end) rc = -1;  // trailing garbage after the object
        }
    } else if (json_skip_value(&j) == 0 && (json_ws(&j), j.p == j.end)) {
        rc = -3;  // valid JSON, but not an object
    }
    char message[96];
    if (rc == -1) {
        snprintf(message, sizeof message, "invalid JSON at byte %zu",
                 (size_t)(j.p - j.start));
        json_error("400 Bad Request", NULL, message);
    } else if (rc == -2 || rc == -3 || !found) {
        json_error("400 Bad Request", NULL, "expected a JSON object like {\"text\":\"abc\"}");
    } else {
        // Reverse by code point: walk the (valid) UTF-8 backwards, one sequence at a time.
        Buf reversed = {0};
        buf_add(&reversed, "", 0);
        size_t end = text.len;
        while (end > 0) {
            size_t start = end - 1;
            while (start > 0 && (text.data[start] & 0xC0) == 0x80) start--;
            buf_add(&reversed, text.data + start, end - start);
            end = start;
        }
        Buf out = {0};
        buf_str(&out, "{\"text\":");
        json_string(&out, reversed.data, reversed.len);
        buf_str(&out, "}\n");
        respond_json(NULL, NULL, &out);
        free(out.data);
        free(reversed.data);
    }
done:
    free(body.data);
    free(text.data);
}

// ---- GET and POST /api/form ------------------------------------------------------------------

static void handle_form_get(void) {
    Buf b = {0};
    buf_printf(&b, HTML_HEAD, "A WAGI form");
    buf_str(&b,
            "<h1>A form handled by WebAssembly</h1>\n"
            "<form method=\"post\" action=\"form\" accept-charset=\"utf-8\">\n"
            "<label>Name <input name=\"name\" value=\"Ada &amp; Grace\"></label>\n"
            "<label>Favourite number <input name=\"number\" type=\"number\" value=\"42\"></label>\n"
            "<label>Message <textarea name=\"message\" rows=\"4\">"
            "&lt;b&gt;HTML in here is shown, not run&lt;/b&gt;</textarea></label>\n"
            "<label><input type=\"checkbox\" name=\"topping\" value=\"cheese\" checked "
            "style=\"width:auto\"> cheese</label>\n"
            "<label><input type=\"checkbox\" name=\"topping\" value=\"olives\" checked "
            "style=\"width:auto\"> olives</label>\n"
            "<p><button type=\"submit\">Send</button></p>\n"
            "</form>\n</body>\n</html>\n");
    respond(NULL, NULL, "text/html; charset=utf-8", &b);
    free(b.data);
}

typedef struct {
    Buf *html;
    int count;
} FormRows;

static void add_form_row(const Buf *name, const Buf *value, void *ctx) {
    FormRows *rows = ctx;
    buf_str(rows->html, "<tr><td>");
    html_text(rows->html, name->data, name->len);
    buf_str(rows->html, "</td><td>");
    html_text(rows->html, value->data, value->len);
    buf_str(rows->html, "</td></tr>\n");
    rows->count++;
}

static void handle_form_post(void) {
    if (!media_type_is(request_content_type(), "application/x-www-form-urlencoded")) {
        html_error("415 Unsupported Media Type", NULL,
                   "Send the fields as application/x-www-form-urlencoded, as an HTML form does.");
        return;
    }
    Buf body = {0};
    int status = read_body(&body);
    if (status != 0) {
        html_error(status_text(status), NULL, status == 413 ? "The form data is larger than 1 MiB."
                                                      : "The form data could not be read.");
        free(body.data);
        return;
    }
    Buf rows_html = {0};
    FormRows rows = {&rows_html, 0};
    each_field(body.data ? body.data : "", body.len, add_form_row, &rows);

    Buf b = {0};
    buf_printf(&b, HTML_HEAD, "Form received");
    buf_printf(&b, "<h1>Received %d field%s</h1>\n", rows.count, rows.count == 1 ? "" : "s");
    if (rows.count) {
        buf_str(&b, "<table>\n<tr><th>name</th><th>value</th></tr>\n");
        buf_add(&b, rows_html.data, rows_html.len);
        buf_str(&b, "</table>\n");
    }
    buf_str(&b, "<p><a href=\"form\">Back to the form</a></p>\n</body>\n</html>\n");
    respond(NULL, NULL, "text/html; charset=utf-8", &b);
    free(b.data);
    free(rows_html.data);
    free(body.data);
}

// ---- routing ---------------------------------------------------------------------------------

static int method_is(const char *method, const char *name) { return strcmp(method, name) == 0; }

int main(void) {
    const char *method = env_or("REQUEST_METHOD", "GET");
    const char *path = env_or("PATH_INFO", "");
    int get = method_is(method, "GET") || method_is(method, "HEAD");
    head_only = method_is(method, "HEAD");

    if (strcmp(path, "") == 0 || strcmp(path, "/") == 0) {
        if (get) handle_index();
        else json_error("405 Method Not Allowed", "Allow: GET, HEAD\n", "use GET");
    } else if (strcmp(path, "/add") == 0) {
        if (get) handle_add();
        else json_error("405 Method Not Allowed", "Allow: GET, HEAD\n", "use GET");
    } else if (strcmp(path, "/reverse") == 0) {
        if (method_is(method, "POST")) handle_reverse();
        else json_error("405 Method Not Allowed", "Allow: POST\n", "use POST with a JSON body");
    } else if (strcmp(path, "/form") == 0) {
        if (get) handle_form_get();
        else if (method_is(method, "POST")) handle_form_post();
        else html_error("405 Method Not Allowed", "Allow: GET, HEAD, POST\n",
                        "Use GET to see the form and POST to send it.");
    } else {
        Buf b = {0};
        buf_str(&b, "{\"error\":\"not found\",\"path\":");
        json_string(&b, path, strlen(path));
        buf_str(&b, "}\n");
        respond_json("404 Not Found", NULL, &b);
        free(b.data);
    }
    return 0;
}
