/* wasmgate._accesslog: the access log's writer, in C (see wasmgate/gateway/accesslog.py).
 *
 * Under load the access log's Python (the record's f-string, the line's prefix, the queue's lock
 * and list) cost a served request about a tenth of its time: run between wasm instantiations its
 * code and data are cold. Here one call formats the line into a buffer and a thread of the
 * writer's own, which never takes the GIL, writes the batches.
 *
 * Rules this file keeps (the pure-Python BatchWriter keeps the same; tests compare the two):
 * - A line is the one logging's handler would write: "<asctime>,<msec><tail><json>\n" with asctime
 *   as logging.Formatter's default ("%Y-%m-%d %H:%M:%S", local time) and the JSON object of
 *   format_record: the same fields in the same order, strings escaped to ASCII as
 *   json.encoder.encode_basestring_ascii does, durations as accesslog._ms writes them.
 * - The caller only appends under a mutex that nobody holds across a system call; the first line
 *   of a batch wakes the thread, which writes what gathered `interval` seconds later, sooner once
 *   `soft` bytes wait. Past `hard` bytes the caller writes the batch itself (with the GIL
 *   released), so memory stays bounded and nothing is dropped.
 * - One writer of the fd at a time (`writing`), taken before the batch is: batches stay in order.
 *   Each write(2) carries whole lines: the whole batch where `chunk` is 0 (a regular file), else
 *   as many whole lines as fit in `chunk` bytes (PIPE_BUF), a longer line alone (cut_at).
 * - close() writes what is left and joins the thread; a line written after close() is written
 *   at once. The thread does not survive fork(): accesslog.py forgets the writer in a child,
 *   where freeing it neither joins nor writes (its lines and its mutexes are the parent's).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "_extension.h"
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    char *data;
    size_t len, cap;
} buffer;

static int reserve(buffer *b, size_t more)
{
    if (b->cap - b->len >= more)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < more) {
        if (cap > ((size_t)-1) / 2)
            return -1;
        cap *= 2;
    }
    char *data = realloc(b->data, cap);
    if (data == NULL)
        return -1;
    b->data = data;
    b->cap = cap;
    return 0;
}

/* ---- the line (GIL held) ------------------------------------------------------------------ */

static int put(buffer *b, const char *text, size_t n)
{
    if (reserve(b, n) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(b->data + b->len, text, n);
    b->len += n;
    return 0;
}

#define PUT(b, literal) put((b), (literal), sizeof(literal) - 1)

static const char hexdigits[] = "0123456789abcdef";

static char *escape_unit(char *out, Py_UCS4 c)
{
    *out++ = '\\';
    *out++ = 'u';
    *out++ = hexdigits[(c >> 12) & 0xf];
    *out++ = hexdigits[(c >> 8) & 0xf];
    *out++ = hexdigits[(c >> 4) & 0xf];
    *out++ = hexdigits[c & 0xf];
    return out;
}

/* A JSON string of `text`, in ASCII: what json.encoder.encode_basestring_ascii returns. */
static int put_string(buffer *b, PyObject *text)
{
    if (!PyUnicode_Check(text)) {
        PyErr_Format(PyExc_TypeError, "an access record's field must be str, not %.100s",
                     Py_TYPE(text)->tp_name);
        return -1;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    if (reserve(b, 2 + (size_t)n * 12) < 0) { /* a surrogate pair is 12 characters */
        PyErr_NoMemory();
        return -1;
    }
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    char *out = b->data + b->len;
    *out++ = '"';
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c >= ' ' && c <= '~' && c != '\\' && c != '"') {
            *out++ = (char)c;
            continue;
        }
        *out++ = '\\';
        switch (c) {
        case '\\': *out++ = '\\'; break;
        case '"': *out++ = '"'; break;
        case '\b': *out++ = 'b'; break;
        case '\f': *out++ = 'f'; break;
        case '\n': *out++ = 'n'; break;
        case '\r': *out++ = 'r'; break;
        case '\t': *out++ = 't'; break;
        default:
            out--;
            if (c >= 0x10000) {
                Py_UCS4 v = c - 0x10000;
                out = escape_unit(out, 0xd800 | ((v >> 10) & 0x3ff));
                out = escape_unit(out, 0xdc00 | (v & 0x3ff));
            }
            else {
                out = escape_unit(out, c);
            }
        }
    }
    *out++ = '"';
    b->len = (size_t)(out - b->data);
    return 0;
}

/* Append str(x) or repr(x) as made by the caller: `text`, a new reference (NULL: the error of
 * making it), is released. Such text is ASCII. */
static int put_text(buffer *b, PyObject *text)
{
    if (text == NULL)
        return -1;
    Py_ssize_t n;
    const char *utf8 = PyUnicode_AsUTF8AndSize(text, &n);
    int rc = utf8 == NULL ? -1 : put(b, utf8, (size_t)n);
    Py_DECREF(text);
    return rc;
}

static int put_int(buffer *b, PyObject *number)
{
    if (!PyLong_Check(number)) {
        PyErr_Format(PyExc_TypeError, "an access record's count must be int, not %.100s",
                     Py_TYPE(number)->tp_name);
        return -1;
    }
    int overflow = 0;
    long long value = PyLong_AsLongLongAndOverflow(number, &overflow);
    if (value == -1 && PyErr_Occurred())
        return -1;
    if (overflow == 0) {
        char text[32];
        int n = snprintf(text, sizeof text, "%lld", value);
        return put(b, text, (size_t)n);
    }
    return put_text(b, PyObject_Str(number));
}

/* Milliseconds as accesslog._ms writes them: repr(round(seconds * 1000, 3)). */
static int put_millis(buffer *b, PyObject *seconds)
{
    double value = PyFloat_AsDouble(seconds);
    if (value == -1.0 && PyErr_Occurred())
        return -1;
    double millis = value * 1000;
    char *text;
    if (millis >= 0 && millis < 1e12) {
        text = PyOS_double_to_string(millis, 'f', 3, 0, NULL);
        if (text == NULL)
            return -1;
        size_t n = strlen(text);
        while (n > 0 && text[n - 1] == '0')
            n--;
        int rc = put(b, text, n);
        if (rc == 0 && text[n - 1] == '.')
            rc = PUT(b, "0");
        PyMem_Free(text);
        return rc;
    }
    /* Out of that range (never a real duration): Python's own round and repr. */
    PyObject *builtins = PyEval_GetBuiltins();
    PyObject *round = builtins ? PyDict_GetItemString(builtins, "round") : NULL;
    if (round == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "no builtin round");
        return -1;
    }
    PyObject *rounded = PyObject_CallFunction(round, "di", millis, 3);
    PyObject *repr = rounded ? PyObject_Repr(rounded) : NULL;
    Py_XDECREF(rounded);
    return put_text(b, repr);
}

/* ---- the writer ---------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    pthread_mutex_t lock; /* waiting, urgent, closing: the thread waits on `wake` with it */
    pthread_cond_t wake;
    pthread_mutex_t writing; /* one writer of fd at a time; the batch being written */
    bool ready;              /* the mutexes and the condition exist */
    bool orphan;             /* freed in a forked child: not to be used */
    buffer waiting;          /* lines not written yet (lock) */
    buffer batch;            /* the lines being written (writing) */
    bool urgent, closing;
    bool started, closed; /* the thread (GIL) */
    pthread_t thread;
    pid_t owner; /* the process whose thread it is */
    int fd;
    size_t chunk, soft, hard;
    double interval;
    buffer line; /* record()'s line, reused (GIL) */
    char *tail;  /* what follows the time stamp */
    size_t tail_len;
    time_t second; /* the second `stamp` shows (GIL) */
    char stamp[64];
    size_t stamp_len;
    unsigned long long errors, writes; /* (writing) */
} Writer;

/* Where the write(2) that begins at `start` ends: see the rules. */
static size_t cut_at(const char *data, size_t start, size_t len, size_t chunk)
{
    if (chunk == 0 || len - start <= chunk)
        return len;
    for (size_t i = start + chunk; i > start; i--)
        if (data[i - 1] == '\n')
            return i;
    const char *newline = memchr(data + start + chunk, '\n', len - start - chunk);
    return newline ? (size_t)(newline - data) + 1 : len;
}

static void write_all(Writer *self, const char *data, size_t n)
{
    self->writes++;
    while (n > 0) {
        ssize_t done = write(self->fd, data, n);
        if (done < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) { /* made non-blocking: wait */
                struct timespec pause = {0, 10 * 1000 * 1000};
                nanosleep(&pause, NULL);
                continue;
            }
            self->errors++; /* stderr is gone: there is nowhere left to say so */
            return;
        }
        data += done;
        n -= (size_t)done;
    }
}

/* Write every line waiting, in order. Without the GIL. */
static void flush_lines(Writer *self)
{
    pthread_mutex_lock(&self->writing);
    pthread_mutex_lock(&self->lock);
    buffer taken = self->waiting;
    self->waiting = self->batch; /* empty: its memory is reused */
    self->batch = taken;
    pthread_mutex_unlock(&self->lock);
    for (size_t start = 0; start < taken.len;) {
        size_t end = cut_at(taken.data, start, taken.len, self->chunk);
        write_all(self, taken.data + start, end - start);
        start = end;
    }
    self->batch.len = 0;
    if (self->batch.cap > 4 * 1024 * 1024) { /* a burst: give its memory back */
        free(self->batch.data);
        self->batch = (buffer){NULL, 0, 0};
    }
    pthread_mutex_unlock(&self->writing);
}

static void *run(void *arg)
{
    Writer *self = arg;
    pthread_mutex_lock(&self->lock);
    for (;;) {
        while (self->waiting.len == 0 && !self->closing)
            pthread_cond_wait(&self->wake, &self->lock);
        if (self->closing)
            break;
        struct timespec deadline;
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        double whole = (double)(long long)self->interval;
        deadline.tv_sec += (time_t)whole;
        deadline.tv_nsec += (long)((self->interval - whole) * 1e9);
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec += 1;
            deadline.tv_nsec -= 1000000000L;
        }
        while (!self->urgent && !self->closing)
            if (pthread_cond_timedwait(&self->wake, &self->lock, &deadline) == ETIMEDOUT)
                break;
        self->urgent = false;
        pthread_mutex_unlock(&self->lock);
        flush_lines(self);
        pthread_mutex_lock(&self->lock);
    }
    pthread_mutex_unlock(&self->lock);
    return NULL;
}

static bool usable(Writer *self)
{
    if (self->ready && !self->orphan && self->owner == this_process)
        return true;
    PyErr_SetString(PyExc_ValueError, self->ready ? "a Writer of another process"
                                                  : "a Writer that was not initialised");
    return false;
}

/* Queue n bytes of whole lines (GIL held). */
static int append(Writer *self, const char *data, size_t n)
{
    pthread_mutex_lock(&self->lock);
    size_t before = self->waiting.len;
    if (reserve(&self->waiting, n) < 0) {
        pthread_mutex_unlock(&self->lock);
        PyErr_NoMemory();
        return -1;
    }
    memcpy(self->waiting.data + before, data, n);
    size_t size = self->waiting.len = before + n;
    bool crossed = size >= self->soft && before < self->soft;
    if (crossed)
        self->urgent = true;
    if (before == 0 || crossed)
        pthread_cond_signal(&self->wake);
    pthread_mutex_unlock(&self->lock);
    if (size >= self->hard || self->closed) {
        Py_BEGIN_ALLOW_THREADS
        flush_lines(self);
        Py_END_ALLOW_THREADS
    }
    return 0;
}

static int put_stamp(Writer *self, buffer *b)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    if (now.tv_sec != self->second) { /* logging.Formatter's default asctime, once a second */
        struct tm local;
        if (localtime_r(&now.tv_sec, &local) == NULL) {
            PyErr_SetString(PyExc_OSError, "localtime failed");
            return -1;
        }
        self->stamp_len = strftime(self->stamp, sizeof self->stamp, "%Y-%m-%d %H:%M:%S", &local);
        self->second = now.tv_sec;
    }
    char millis[8];
    snprintf(millis, sizeof millis, ",%03ld", now.tv_nsec / 1000000L);
    if (put(b, self->stamp, self->stamp_len) < 0 || put(b, millis, 4) < 0)
        return -1;
    return put(b, self->tail, self->tail_len);
}

static const char *const RECORD_FIELDS =
    "record(id, method, path, route, status, cause, seconds, guest_seconds, inline, "
    "bytes_in, bytes_out, client)";

static PyObject *Writer_record(Writer *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 12) {
        PyErr_Format(PyExc_TypeError, "%s takes 12 arguments (%zd given)", RECORD_FIELDS, nargs);
        return NULL;
    }
    if (!usable(self))
        return NULL;
    buffer *b = &self->line;
    b->len = 0;
    int inline_ = PyObject_IsTrue(args[8]);
    if (inline_ < 0 || put_stamp(self, b) < 0 || PUT(b, "{\"id\":") < 0 ||
        put_string(b, args[0]) < 0 || PUT(b, ",\"method\":") < 0 || put_string(b, args[1]) < 0 ||
        PUT(b, ",\"path\":") < 0 || put_string(b, args[2]) < 0 || PUT(b, ",\"route\":") < 0 ||
        put_string(b, args[3]) < 0 || PUT(b, ",\"status\":") < 0 || put_int(b, args[4]) < 0 ||
        PUT(b, ",\"cause\":") < 0 || put_string(b, args[5]) < 0 || PUT(b, ",\"ms\":") < 0 ||
        put_millis(b, args[6]) < 0 || PUT(b, ",\"guest_ms\":") < 0 ||
        (args[7] == Py_None ? PUT(b, "null") : put_millis(b, args[7])) < 0 ||
        (inline_ ? PUT(b, ",\"inline\":true") : PUT(b, ",\"inline\":false")) < 0 ||
        PUT(b, ",\"bytes_in\":") < 0 || put_int(b, args[9]) < 0 ||
        PUT(b, ",\"bytes_out\":") < 0 || put_int(b, args[10]) < 0 ||
        PUT(b, ",\"client\":") < 0 ||
        (args[11] == Py_None ? PUT(b, "null") : put_string(b, args[11])) < 0 ||
        PUT(b, "}\n") < 0)
        return NULL;
    if (append(self, b->data, b->len) < 0)
        return NULL;
    if (b->cap > 64 * 1024) { /* a huge path: do not keep its buffer */
        free(b->data);
        *b = (buffer){NULL, 0, 0};
    }
    Py_RETURN_NONE;
}

static PyObject *Writer_write(Writer *self, PyObject *line)
{
    if (!usable(self))
        return NULL;
    if (!PyUnicode_Check(line)) {
        PyErr_Format(PyExc_TypeError, "write() takes str, not %.100s", Py_TYPE(line)->tp_name);
        return NULL;
    }
    PyObject *data = PyUnicode_AsEncodedString(line, "utf-8", "backslashreplace");
    if (data == NULL)
        return NULL;
    int rc = append(self, PyBytes_AS_STRING(data), (size_t)PyBytes_GET_SIZE(data));
    Py_DECREF(data);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *Writer_flush(Writer *self, PyObject *Py_UNUSED(ignored))
{
    if (!usable(self))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    flush_lines(self);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static void stop(Writer *self)
{
    if (!self->ready || self->orphan)
        return;
    self->closed = true;
    if (self->owner != this_process) { /* a forked child: no thread here, and the lines, the
                                      mutexes' state included, are the parent's */
        self->started = false;
        self->orphan = true;
        return;
    }
    Py_BEGIN_ALLOW_THREADS
    if (self->started) {
        pthread_mutex_lock(&self->lock);
        self->closing = true;
        pthread_cond_signal(&self->wake);
        pthread_mutex_unlock(&self->lock);
        pthread_join(self->thread, NULL);
    }
    flush_lines(self);
    Py_END_ALLOW_THREADS
    self->started = false;
}

static PyObject *Writer_close(Writer *self, PyObject *Py_UNUSED(ignored))
{
    stop(self);
    Py_RETURN_NONE;
}

static int Writer_init(Writer *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"fd", "chunk", "interval", "soft", "hard", "tail", NULL};
    int fd;
    Py_ssize_t chunk, soft, hard;
    double interval;
    const char *tail;
    Py_ssize_t tail_len;
    if (self->ready) {
        PyErr_SetString(PyExc_RuntimeError, "a Writer is initialised once");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "indnns#", names, &fd, &chunk, &interval,
                                     &soft, &hard, &tail, &tail_len))
        return -1;
    if (fd < 0 || chunk < 0 || soft < 0 || hard < 0 || !(interval > 0 && interval <= 3600)) {
        PyErr_SetString(PyExc_ValueError, "Writer: a bad fd, chunk, interval or limit");
        return -1;
    }
    self->tail = PyMem_Malloc((size_t)tail_len + 1);
    if (self->tail == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(self->tail, tail, (size_t)tail_len + 1);
    self->tail_len = (size_t)tail_len;
    self->fd = fd;
    self->chunk = (size_t)chunk;
    self->soft = (size_t)soft;
    self->hard = (size_t)hard;
    self->interval = interval;
    self->second = (time_t)-1;
    pthread_mutex_init(&self->lock, NULL);
    pthread_mutex_init(&self->writing, NULL);
    monotonic_cond_init(&self->wake);
    self->ready = true;
    self->owner = this_process;
    if (start_thread(&self->thread, run, self) < 0)
        return -1;
    self->started = true;
    return 0;
}

static void Writer_dealloc(Writer *self)
{
    stop(self); /* the thread uses self: it ends first */
    if (self->ready && !self->orphan) {
        pthread_mutex_destroy(&self->lock);
        pthread_mutex_destroy(&self->writing);
        pthread_cond_destroy(&self->wake);
    }
    free(self->waiting.data);
    free(self->batch.data);
    free(self->line.data);
    PyMem_Free(self->tail);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Writer_waiting(Writer *self, void *Py_UNUSED(closure))
{
    if (!usable(self))
        return NULL;
    pthread_mutex_lock(&self->lock);
    size_t n = self->waiting.len;
    pthread_mutex_unlock(&self->lock);
    return PyLong_FromSize_t(n);
}

static PyObject *Writer_count(Writer *self, void *closure)
{
    if (!usable(self))
        return NULL;
    unsigned long long value;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&self->writing);
    value = closure ? self->writes : self->errors;
    pthread_mutex_unlock(&self->writing);
    Py_END_ALLOW_THREADS
    return PyLong_FromUnsignedLongLong(value);
}

static PyMethodDef Writer_methods[] = {
    {"record", (PyCFunction)(void (*)(void))Writer_record, METH_FASTCALL,
     "record(id, method, path, route, status, cause, seconds, guest_seconds, inline, bytes_in, "
     "bytes_out, client): queue the request's line (see accesslog.format_record)."},
    {"write", (PyCFunction)Writer_write, METH_O, "write(line): queue a line (ending with \\n)."},
    {"flush", (PyCFunction)Writer_flush, METH_NOARGS, "Write every line queued so far."},
    {"close", (PyCFunction)Writer_close, METH_NOARGS,
     "Write what is left and stop the thread (idempotent)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Writer_getset[] = {
    {"waiting", (getter)Writer_waiting, NULL, "Bytes queued and not yet written.", NULL},
    {"errors", (getter)Writer_count, NULL, "Writes that failed (stderr closed...).", NULL},
    {"writes", (getter)Writer_count, NULL, "write(2) calls begun.", (void *)1},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject WriterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "wasmgate._accesslog.Writer",
    .tp_doc = "Writer(fd, chunk, interval, soft, hard, tail): access lines written in batches "
              "by a thread of its own (see wasmgate.gateway.accesslog).",
    .tp_basicsize = sizeof(Writer),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Writer_init,
    .tp_dealloc = (destructor)Writer_dealloc,
    .tp_methods = Writer_methods,
    .tp_getset = Writer_getset,
};

static PyObject *accesslog_cuts(PyObject *Py_UNUSED(module), PyObject *args)
{
    const char *data;
    Py_ssize_t len, chunk;
    if (!PyArg_ParseTuple(args, "y#n", &data, &len, &chunk))
        return NULL;
    if (chunk < 0) {
        PyErr_SetString(PyExc_ValueError, "chunk < 0");
        return NULL;
    }
    PyObject *ends = PyList_New(0);
    for (size_t start = 0; ends != NULL && start < (size_t)len;) {
        size_t end = cut_at(data, start, (size_t)len, (size_t)chunk);
        PyObject *item = PyLong_FromSize_t(end);
        if (item == NULL || PyList_Append(ends, item) < 0)
            Py_CLEAR(ends);
        Py_XDECREF(item);
        start = end;
    }
    return ends;
}

static PyMethodDef methods[] = {
    {"cuts", accesslog_cuts, METH_VARARGS,
     "cuts(data, chunk) -> [end, ...]: where a Writer's write(2) calls of data end."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "wasmgate._accesslog",
    .m_doc = "The access log's writer in C (see wasmgate.gateway.accesslog).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__accesslog(void)
{
    return extension_module(&module_def, &WriterType, "Writer");
}
