/* wasmgate._clock: the process's clock thread, in C, without the GIL.
 *
 * Two things in a process need a wake-up on a fixed tick while guests run: the engines' epochs
 * (a store's deadline is counted in them, engine.py) and the output pump's adoption of a capture
 * still open after a while (capture.py). As Python threads, each wake-up took the GIL from the
 * thread running the event loop and the guests: a hand-off that waits for the waking thread to
 * get a core, on a busy server a stall of the whole worker. Here one thread does both, and never
 * takes the GIL (measured in wasmgate.engine.clock).
 *
 * Rules this file keeps (wasmgate.engine.clock states them for both of its clocks):
 * - An engine added is ticked once for every `tick` seconds of CLOCK_MONOTONIC since it was
 *   added, catching up after a late wake-up (the epoch follows the clock, not the wake-ups).
 *   lag(index) is how many ticks it is behind the clock now. Engines are never removed: the
 *   clock keeps a reference to each one's `keep` object, so the engine outlives the thread.
 * - An alarm is a byte written to a file descriptor at the first tick at or after `due`
 *   (seconds of the same clock as time.monotonic()), once, unless cancelled first. The
 *   descriptor is the caller's, non-blocking; a full pipe already holds a wake-up, so EAGAIN
 *   is not an error. A cancelled or fired alarm's token is never reused.
 * - The thread ticks while it has engines, or alarms, or had an alarm set in the last
 *   IDLE_AFTER seconds; otherwise it waits without a timeout, and the next alarm wakes it. So an
 *   idle process is never woken, and a busy one costs no system call per alarm.
 * - Every method is called with the GIL; the data they share with the thread is under `lock`,
 *   held for O(engines + alarms) work, never across a wait.
 * - A forked child has no thread: a Clock made in its parent refuses every call there
 *   (ValueError) and is freed without a join (its mutex may be in any state).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "_extension.h"
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#define IDLE_AFTER 1.0   /* seconds without alarms before an engine-less clock stops ticking */
#define INDEX_BITS 20    /* an alarm token: its sequence number above, its slot below */
#define MAX_SLOTS (1u << INDEX_BITS)

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9; /* as time.monotonic() */
}

typedef void (*increment_fn)(void *engine);

typedef struct {
    increment_fn increment;
    void *engine;
    PyObject *keep; /* what keeps the engine alive */
    double started;
    uint64_t ticks;
} ticked;

typedef struct {
    uint64_t token; /* 0: a free slot */
    double due;
    int fd;
    bool fired;
} alarm_slot;

typedef struct {
    PyObject_HEAD
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool ready, orphan, started, closing, idle; /* idle: the thread waits without a timeout */
    pthread_t thread;
    pid_t owner;
    double tick;
    ticked *engines; /* lock */
    size_t n_engines, engines_cap;
    alarm_slot *slots; /* lock */
    size_t slots_len, slots_cap;
    uint32_t *free_slots; /* a stack of free slot indexes (lock) */
    size_t n_free;
    size_t armed;       /* alarms set, not fired, not cancelled (lock) */
    uint64_t sequence;  /* alarms ever set (lock) */
    double last_alarm;  /* when the last alarm was set (lock) */
    unsigned long long wakeups, fired; /* (lock) */
} Clock;

static void *run(void *arg)
{
    Clock *self = arg;
    pthread_mutex_lock(&self->lock);
    while (!self->closing) {
        self->wakeups++;
        double t = now();
        for (size_t i = 0; i < self->n_engines; i++) {
            ticked *e = &self->engines[i];
            double elapsed = t - e->started;
            uint64_t due = elapsed > 0 ? (uint64_t)(elapsed / self->tick) : 0;
            while (e->ticks < due) {
                e->increment(e->engine);
                e->ticks++;
            }
        }
        if (self->armed > 0) {
            for (size_t i = 0; i < self->slots_len; i++) {
                alarm_slot *a = &self->slots[i];
                if (a->token != 0 && !a->fired && a->due <= t) {
                    a->fired = true;
                    self->armed--;
                    self->fired++;
                    ssize_t rc;
                    do
                        rc = write(a->fd, "\1", 1);
                    while (rc < 0 && errno == EINTR);
                }
            }
        }
        if (self->n_engines == 0 && self->armed == 0 && t - self->last_alarm >= IDLE_AFTER) {
            self->idle = true;
            while (self->idle && !self->closing)
                pthread_cond_wait(&self->wake, &self->lock);
            continue;
        }
        double next = t + self->tick;
        struct timespec deadline;
        deadline.tv_sec = (time_t)next;
        deadline.tv_nsec = (long)((next - (double)deadline.tv_sec) * 1e9);
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec += 1;
            deadline.tv_nsec -= 1000000000L;
        }
        while (!self->closing)
            if (pthread_cond_timedwait(&self->wake, &self->lock, &deadline) == ETIMEDOUT)
                break;
    }
    pthread_mutex_unlock(&self->lock);
    return NULL;
}

static bool usable(Clock *self)
{
    if (self->ready && !self->orphan && self->owner == this_process && !self->closing)
        return true;
    PyErr_SetString(PyExc_ValueError, !self->ready                  ? "a Clock not initialised"
                                      : self->owner != this_process ? "a Clock of another process"
                                                                    : "a closed Clock");
    return false;
}

/* Wake the thread if it waits without a timeout (lock held). */
static void rouse(Clock *self)
{
    if (self->idle) {
        self->idle = false;
        pthread_cond_signal(&self->wake);
    }
}

static PyObject *Clock_add_engine(Clock *self, PyObject *args)
{
    PyObject *increment, *engine, *keep;
    if (!PyArg_ParseTuple(args, "O!O!O:add_engine", &PyLong_Type, &increment, &PyLong_Type,
                          &engine, &keep))
        return NULL;
    void *fn = PyLong_AsVoidPtr(increment), *ptr = PyLong_AsVoidPtr(engine);
    if (PyErr_Occurred())
        return NULL;
    if (fn == NULL || ptr == NULL) {
        PyErr_SetString(PyExc_ValueError, "add_engine: a null address");
        return NULL;
    }
    if (!usable(self))
        return NULL;
    pthread_mutex_lock(&self->lock);
    if (self->n_engines == self->engines_cap) {
        size_t cap = self->engines_cap ? 2 * self->engines_cap : 4;
        ticked *grown = realloc(self->engines, cap * sizeof *grown);
        if (grown == NULL) {
            pthread_mutex_unlock(&self->lock);
            return PyErr_NoMemory();
        }
        self->engines = grown;
        self->engines_cap = cap;
    }
    size_t index = self->n_engines;
    Py_INCREF(keep);
    self->engines[index] = (ticked){(increment_fn)fn, ptr, keep, now(), 0};
    self->n_engines++;
    rouse(self);
    pthread_mutex_unlock(&self->lock);
    return PyLong_FromSize_t(index);
}

static PyObject *Clock_lag(Clock *self, PyObject *arg)
{
    Py_ssize_t index = PyLong_AsSsize_t(arg);
    if (index == -1 && PyErr_Occurred())
        return NULL;
    if (!usable(self))
        return NULL;
    pthread_mutex_lock(&self->lock);
    if (index < 0 || (size_t)index >= self->n_engines) {
        pthread_mutex_unlock(&self->lock);
        PyErr_SetString(PyExc_IndexError, "no such engine");
        return NULL;
    }
    ticked *e = &self->engines[index];
    double elapsed = now() - e->started;
    uint64_t due = elapsed > 0 ? (uint64_t)(elapsed / self->tick) : 0;
    uint64_t lag = due > e->ticks ? due - e->ticks : 0;
    pthread_mutex_unlock(&self->lock);
    return PyLong_FromUnsignedLongLong(lag);
}

static PyObject *Clock_alarm(Clock *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "alarm(fd, due) takes 2 arguments");
        return NULL;
    }
    long fd = PyLong_AsLong(args[0]);
    if (fd == -1 && PyErr_Occurred())
        return NULL;
    double due = PyFloat_AsDouble(args[1]);
    if (due == -1.0 && PyErr_Occurred())
        return NULL;
    if (fd < 0 || fd > INT_MAX || due != due) {
        PyErr_SetString(PyExc_ValueError, "alarm: a bad fd or due time");
        return NULL;
    }
    if (!usable(self))
        return NULL;
    pthread_mutex_lock(&self->lock);
    uint32_t index;
    if (self->n_free > 0) {
        index = self->free_slots[--self->n_free];
    } else {
        if (self->slots_len == MAX_SLOTS) {
            pthread_mutex_unlock(&self->lock);
            PyErr_SetString(PyExc_RuntimeError, "alarm: too many alarms set at once");
            return NULL;
        }
        if (self->slots_len == self->slots_cap) {
            size_t cap = self->slots_cap ? 2 * self->slots_cap : 64;
            alarm_slot *grown = realloc(self->slots, cap * sizeof *grown);
            uint32_t *stack = grown ? realloc(self->free_slots, cap * sizeof *stack) : NULL;
            if (grown != NULL)
                self->slots = grown;
            if (stack == NULL) {
                pthread_mutex_unlock(&self->lock);
                return PyErr_NoMemory();
            }
            self->free_slots = stack;
            self->slots_cap = cap;
        }
        index = (uint32_t)self->slots_len++;
    }
    uint64_t token = (++self->sequence << INDEX_BITS) | index;
    self->slots[index] = (alarm_slot){token, due, (int)fd, false};
    self->armed++;
    self->last_alarm = now();
    rouse(self);
    pthread_mutex_unlock(&self->lock);
    return PyLong_FromUnsignedLongLong(token);
}

static PyObject *Clock_cancel(Clock *self, PyObject *arg)
{
    unsigned long long token = PyLong_AsUnsignedLongLong(arg);
    if (token == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    if (!usable(self))
        return NULL;
    pthread_mutex_lock(&self->lock);
    size_t index = (size_t)(token & (MAX_SLOTS - 1));
    bool fired = false;
    if (token != 0 && index < self->slots_len && self->slots[index].token == token) {
        alarm_slot *a = &self->slots[index];
        fired = a->fired;
        if (!fired)
            self->armed--;
        a->token = 0;
        self->free_slots[self->n_free++] = (uint32_t)index;
    }
    pthread_mutex_unlock(&self->lock);
    return PyBool_FromLong(fired);
}

static void stop(Clock *self)
{
    if (!self->ready || self->orphan)
        return;
    if (self->owner != this_process) { /* a forked child: no thread here */
        self->started = false;
        self->orphan = true;
        return;
    }
    if (self->started) {
        Py_BEGIN_ALLOW_THREADS
        pthread_mutex_lock(&self->lock);
        self->closing = true;
        pthread_cond_signal(&self->wake);
        pthread_mutex_unlock(&self->lock);
        pthread_join(self->thread, NULL);
        Py_END_ALLOW_THREADS
        self->started = false;
    }
    self->closing = true;
}

static PyObject *Clock_close(Clock *self, PyObject *Py_UNUSED(ignored))
{
    stop(self);
    Py_RETURN_NONE;
}

static int Clock_init(Clock *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"tick", NULL};
    double tick;
    if (self->ready) {
        PyErr_SetString(PyExc_RuntimeError, "a Clock is initialised once");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "d", names, &tick))
        return -1;
    if (!(tick >= 1e-4 && tick <= 60)) {
        PyErr_SetString(PyExc_ValueError, "Clock: tick must be between 0.0001 and 60 seconds");
        return -1;
    }
    self->tick = tick;
    self->last_alarm = -IDLE_AFTER; /* as if the last alarm were long ago: start idle */
    pthread_mutex_init(&self->lock, NULL);
    monotonic_cond_init(&self->wake);
    self->ready = true;
    self->owner = this_process;
    if (start_thread(&self->thread, run, self) < 0)
        return -1;
    self->started = true;
    return 0;
}

static void Clock_dealloc(Clock *self)
{
    stop(self); /* the thread uses self and the engines: it ends first */
    if (self->ready && !self->orphan) {
        pthread_mutex_destroy(&self->lock);
        pthread_cond_destroy(&self->wake);
    }
    for (size_t i = 0; i < self->n_engines; i++)
        Py_XDECREF(self->engines[i].keep);
    free(self->engines);
    free(self->slots);
    free(self->free_slots);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Clock_count(Clock *self, void *closure)
{
    if (!self->ready || self->orphan || self->owner != this_process)
        return PyLong_FromLong(0);
    pthread_mutex_lock(&self->lock);
    unsigned long long value = closure == NULL        ? self->wakeups
                               : closure == (void *)1 ? self->fired
                                                      : (unsigned long long)self->armed;
    pthread_mutex_unlock(&self->lock);
    return PyLong_FromUnsignedLongLong(value);
}

static PyMethodDef Clock_methods[] = {
    {"add_engine", (PyCFunction)Clock_add_engine, METH_VARARGS,
     "add_engine(increment, engine, keep) -> index: tick the engine at `engine` by calling the "
     "function at `increment` with it, from now on; `keep` is held while the clock lives."},
    {"lag", (PyCFunction)Clock_lag, METH_O,
     "lag(index) -> ticks the engine's epoch is behind the clock now."},
    {"alarm", (PyCFunction)(void (*)(void))Clock_alarm, METH_FASTCALL,
     "alarm(fd, due) -> token: write one byte to fd at the first tick at or after due."},
    {"cancel", (PyCFunction)Clock_cancel, METH_O,
     "cancel(token) -> whether the alarm had fired; nothing for a token not set."},
    {"close", (PyCFunction)Clock_close, METH_NOARGS, "Stop the thread (idempotent)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Clock_getset[] = {
    {"wakeups", (getter)Clock_count, NULL, "Times the thread has woken up.", NULL},
    {"fired", (getter)Clock_count, NULL, "Alarms fired.", (void *)1},
    {"armed", (getter)Clock_count, NULL, "Alarms set, not fired and not cancelled.", (void *)2},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject ClockType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "wasmgate._clock.Clock",
    .tp_doc = "Clock(tick): the engines' epochs and the alarms, on a thread of its own that never "
              "takes the GIL (see wasmgate.engine.clock).",
    .tp_basicsize = sizeof(Clock),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Clock_init,
    .tp_dealloc = (destructor)Clock_dealloc,
    .tp_methods = Clock_methods,
    .tp_getset = Clock_getset,
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "wasmgate._clock",
    .m_doc = "The process's clock thread in C (see wasmgate.engine.clock).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__clock(void)
{
    PyObject *module = extension_module(&module_def, &ClockType, "Clock");
    if (module == NULL)
        return NULL;
    if (PyModule_AddObject(module, "IDLE_AFTER", PyFloat_FromDouble(IDLE_AFTER)) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
