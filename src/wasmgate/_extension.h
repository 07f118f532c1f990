/* What wasmgate's optional C extensions that run a thread of their own share (_clock.c,
 * _accesslog.c): the id of the process they run in, and their module's making.
 *
 * Rules:
 * - this_process is getpid() of the process now, kept by a fork handler (no system call per
 *   use): an object whose owner is not this_process was made in a parent and has no thread
 *   here.
 * - extension_module(def, type, name) registers that handler, readies `type` and makes the
 *   module from `def` with `type` in it as `name`; NULL with an exception set on failure.
 * - A thread's condition counts its timed waits in CLOCK_MONOTONIC (monotonic_cond_init), as
 *   time.monotonic() does, so a change of the wall clock never moves a wake-up.
 * - start_thread(thread, run, arg) starts run(arg); -1 with OSError set if it cannot.
 * Each extension includes this file once, as it is built on its own (each is optional).
 */
#ifndef WASMGATE_EXTENSION_H
#define WASMGATE_EXTENSION_H

#include <Python.h>
#include <errno.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

static pid_t this_process;

static void forked_child(void) { this_process = getpid(); }

static PyObject *extension_module(PyModuleDef *def, PyTypeObject *type, const char *name)
{
    this_process = getpid();
    if (pthread_atfork(NULL, NULL, forked_child) != 0) {
        PyErr_SetString(PyExc_ImportError, "pthread_atfork failed");
        return NULL;
    }
    if (PyType_Ready(type) < 0)
        return NULL;
    PyObject *module = PyModule_Create(def);
    if (module == NULL)
        return NULL;
    Py_INCREF(type);
    if (PyModule_AddObject(module, name, (PyObject *)type) < 0) {
        Py_DECREF(type);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}

static void monotonic_cond_init(pthread_cond_t *cond)
{
    pthread_condattr_t attributes;
    pthread_condattr_init(&attributes);
    pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC);
    pthread_cond_init(cond, &attributes);
    pthread_condattr_destroy(&attributes);
}

static int start_thread(pthread_t *thread, void *(*run)(void *), void *arg)
{
    int rc = pthread_create(thread, NULL, run, arg);
    if (rc != 0) {
        errno = rc;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

#endif
