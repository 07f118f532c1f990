/* wasmgate._crossing: the hot crossings between Python and the engine, in C.
 *
 * Both directions of a served request cross Wasmtime's C API many times, and through ctypes each
 * crossing costs microseconds of Python: most of a request's time in process.
 * - Into Python: a host function that a component imports is a C callback that gets the guest's
 *   arguments as component values and writes its results as component values. The pure-Python
 *   path (engine.lowlevel.add_raw_func + raw_codec) is a ctypes callback that reads and writes
 *   them through ctypes structures. Here the callback, the lifting and the lowering are C; only
 *   the host function itself (and a resource's lifter/lowerer) is Python.
 * - Into the engine: a served command's run (a store with its limits, its WASI, the instance and
 *   the entry's call) is a dozen C calls through ctypes, with Python objects for each; here it
 *   is one call (run_command), or the WASI part alone (wasi_files). engine.sandbox decides what
 *   the store gets; this file only makes the calls engine.lowlevel would make, in its order.
 *
 * Rules this file keeps:
 * - No Wasmtime headers and no link against Wasmtime: the layouts below are the C API's of the
 *   pinned engine, checked against the binding's ctypes layouts (LAYOUT) before anything runs,
 *   and every engine function is a pointer handed to init() by the binding's own library.
 * - The values mean what raw_codec's values mean (tests compare the two on every type): a
 *   string is str, list<u8> bytes, a record a dict, flags a frozenset, an option None or its
 *   payload, a result or variant a (case, payload) pair, a resource what the plan's lifter
 *   returns for its rep.
 * - A plan (how one type crosses) is a tuple built once per function type by crossing.py; it is
 *   trusted for its shape, and each value's kind is checked against it before its union is read.
 * - Whatever fails (a value of the wrong shape, the host function's exception) becomes the
 *   guest's trap, with the text the host's on_error makes of the exception.
 * - Results are always droppable: every list, record, tuple or flags array is zeroed before it is
 *   filled and attached before its elements are, so the engine's drop of a half-written result
 *   (it drops them after a trap too) frees exactly what was written; a boxed payload is freed
 *   here when its lowering fails.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ---- the C API's layouts (wasmtime 50) --------------------------------------------------- */

typedef struct {
    size_t size;
    uint8_t *data;
} byte_vec; /* wasm_byte_vec_t, wasm_name_t */

typedef struct val val;
typedef struct record_entry record_entry;

typedef struct {
    size_t size;
    val *data;
} val_vec; /* vallist, valtuple */

typedef struct {
    size_t size;
    record_entry *data;
} record_vec;

typedef struct {
    size_t size;
    byte_vec *data;
} flags_vec;

struct val {
    uint8_t kind;
    union {
        bool boolean;
        int8_t s8;
        uint8_t u8;
        int16_t s16;
        uint16_t u16;
        int32_t s32;
        uint32_t u32;
        int64_t s64;
        uint64_t u64;
        float f32;
        double f64;
        uint32_t character;
        byte_vec string;
        val_vec list;
        record_vec record;
        val_vec tuple;
        struct {
            byte_vec discriminant;
            val *payload;
        } variant;
        byte_vec enumeration;
        val *option;
        struct {
            bool is_ok;
            val *payload;
        } result;
        flags_vec flags;
        void *resource;
    } of;
};

struct record_entry {
    byte_vec name;
    val value;
};

typedef void *error_ptr; /* wasmtime_error_t * */

/* The engine functions, in the order of FUNCTIONS. */
static struct {
    error_ptr (*error_new)(const char *);
    error_ptr (*any_to_host)(void *ctx, void *any, void **host_out);
    uint32_t (*host_rep)(void *host);
    void (*host_delete)(void *host);
    void *(*host_new)(bool owned, uint32_t rep, uint32_t type);
    error_ptr (*host_to_any)(void *ctx, void *host, void **any_out);
    void (*byte_vec_new_uninit)(byte_vec *out, size_t size);
    void (*vallist_new_uninit)(val_vec *out, size_t size);
    void (*valrecord_new_uninit)(record_vec *out, size_t size);
    void (*valtuple_new_uninit)(val_vec *out, size_t size);
    void (*valflags_new_uninit)(flags_vec *out, size_t size);
    val *(*val_new)(val *from);
    void (*val_delete)(val *v);
    void (*error_message)(error_ptr, byte_vec *out);
    void (*error_delete)(error_ptr);
    void (*byte_vec_delete)(byte_vec *v);
    void *(*wasi_config_new)(void);
    void (*wasi_config_delete)(void *cfg);
    bool (*wasi_config_set_argv)(void *cfg, size_t argc, const char *const *argv);
    bool (*wasi_config_set_env)(void *cfg, size_t envc, const char *const *names,
                                const char *const *values);
    void (*byte_vec_new)(byte_vec *out, size_t size, const uint8_t *data);
    void (*wasi_config_set_stdin_bytes)(void *cfg, byte_vec *bytes);
    bool (*wasi_config_set_stdout_file)(void *cfg, const char *path);
    bool (*wasi_config_set_stderr_file)(void *cfg, const char *path);
    error_ptr (*context_set_wasi)(void *ctx, void *cfg);
    bool (*wasi_config_preopen_dir)(void *cfg, const char *path, const char *guest_path,
                                    bool mutable_);
    void *(*store_new)(void *engine, void *data, void (*finalizer)(void *));
    void *(*store_context)(void *store);
    void (*context_set_epoch_deadline)(void *ctx, uint64_t ticks);
    void (*store_limiter)(void *store, int64_t memory_size, int64_t table_elements,
                          int64_t instances, int64_t tables, int64_t memories);
    error_ptr (*context_set_fuel)(void *ctx, uint64_t fuel);
    error_ptr (*instance_pre_instantiate)(void *pre, void *ctx, void *instance_out,
                                          void **trap_out);
    bool (*instance_export_get)(void *ctx, const void *instance, const char *name, size_t len,
                                void *item_out);
    error_ptr (*func_call)(void *ctx, const void *func, const void *args, size_t nargs,
                           void *results, size_t nresults, void **trap_out);
    void (*store_delete)(void *store);
} api;

static const char *const FUNCTION_NAMES[] = {
    "wasmtime_error_new",
    "wasmtime_component_resource_any_to_host",
    "wasmtime_component_resource_host_rep",
    "wasmtime_component_resource_host_delete",
    "wasmtime_component_resource_host_new",
    "wasmtime_component_resource_host_to_any",
    "wasm_byte_vec_new_uninitialized",
    "wasmtime_component_vallist_new_uninit",
    "wasmtime_component_valrecord_new_uninit",
    "wasmtime_component_valtuple_new_uninit",
    "wasmtime_component_valflags_new_uninit",
    "wasmtime_component_val_new",
    "wasmtime_component_val_delete",
    "wasmtime_error_message",
    "wasmtime_error_delete",
    "wasm_byte_vec_delete",
    "wasi_config_new",
    "wasi_config_delete",
    "wasi_config_set_argv",
    "wasi_config_set_env",
    "wasm_byte_vec_new",
    "wasi_config_set_stdin_bytes",
    "wasi_config_set_stdout_file",
    "wasi_config_set_stderr_file",
    "wasmtime_context_set_wasi",
    "wasi_config_preopen_dir",
    "wasmtime_store_new",
    "wasmtime_store_context",
    "wasmtime_context_set_epoch_deadline",
    "wasmtime_store_limiter",
    "wasmtime_context_set_fuel",
    "wasmtime_instance_pre_instantiate",
    "wasmtime_instance_export_get",
    "wasmtime_func_call",
    "wasmtime_store_delete",
};
#define N_FUNCTIONS ((Py_ssize_t)(sizeof(FUNCTION_NAMES) / sizeof(FUNCTION_NAMES[0])))

/* ---- plans --------------------------------------------------------------------------------- */

enum code {
    C_BOOL, C_S8, C_U8, C_S16, C_U16, C_S32, C_U32, C_S64, C_U64, C_F32, C_F64, C_CHAR,
    C_STRING, C_ENUM, C_BYTES, C_LIST, C_TUPLE, C_RECORD, C_FLAGS, C_OPTION, C_RESULT,
    C_VARIANT, C_OWN, C_BORROW, N_CODES
};

/* The C API's kind of each code's values (KIND_NAMES), set by init(). */
static const char *const KIND_NAMES[N_CODES] = {
    "BOOL", "S8", "U8", "S16", "U16", "S32", "U32", "S64", "U64", "F32", "F64", "CHAR",
    "STRING", "ENUM", "LIST", "LIST", "TUPLE", "RECORD", "FLAGS", "OPTION", "RESULT",
    "VARIANT", "RESOURCE", "RESOURCE",
};
static const char *const CODE_NAMES[N_CODES] = {
    "BOOL", "S8", "U8", "S16", "U16", "S32", "U32", "S64", "U64", "F32", "F64", "CHAR",
    "STRING", "ENUM", "BYTES", "LIST", "TUPLE", "RECORD", "FLAGS", "OPTION", "RESULT",
    "VARIANT", "OWN", "BORROW",
};
static uint8_t kinds[N_CODES];
static bool ready = false;

static PyObject *str_ok, *str_err; /* "ok", "err" */

/* A plan is a tuple whose item 0 is its code:
 *   scalars, CHAR, STRING, ENUM, BYTES, FLAGS: (code,)
 *   LIST: (code, element)          TUPLE: (code, (element, ...))
 *   RECORD: (code, (name, ...), (field plan, ...))      OPTION: (code, payload)
 *   RESULT: (code, ok plan or None, err plan or None)
 *   VARIANT: (code, (case name, ...), (payload plan or None, ...))
 *   OWN, BORROW: (code, lift(rep) -> object, lower(object) -> (rep, type id))
 */
#define PLAN_ITEM(plan, i) PyTuple_GET_ITEM((plan), (i))

static int plan_code(PyObject *plan)
{
    if (!PyTuple_CheckExact(plan) || PyTuple_GET_SIZE(plan) < 1) {
        PyErr_SetString(PyExc_SystemError, "crossing: malformed plan");
        return -1;
    }
    long code = PyLong_AsLong(PLAN_ITEM(plan, 0));
    if (code < 0 || code >= N_CODES) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_SystemError, "crossing: unknown plan code");
        return -1;
    }
    return (int)code;
}

static int check_kind(const val *v, int code)
{
    if (v->kind != kinds[code]) {
        PyErr_Format(PyExc_TypeError, "component value of kind %d where %s was expected",
                     (int)v->kind, CODE_NAMES[code]);
        return -1;
    }
    return 0;
}

static PyObject *error_to_exception(error_ptr err, const char *what)
{
    byte_vec message = {0, NULL};
    api.error_message(err, &message);
    PyErr_Format(PyExc_RuntimeError, "%s: %.*s", what, (int)message.size,
                 message.data ? (const char *)message.data : "");
    api.byte_vec_delete(&message);
    api.error_delete(err);
    return NULL;
}

/* ---- lifting: component value -> Python ----------------------------------------------------- */

static PyObject *lift(PyObject *plan, void *ctx, const val *v);

static PyObject *lift_name(const byte_vec *name)
{
    return PyUnicode_DecodeUTF8(name->size ? (const char *)name->data : "",
                                (Py_ssize_t)name->size, NULL);
}

static PyObject *lift_payload(PyObject *plan, void *ctx, const val *payload)
{
    if (plan == Py_None || payload == NULL)
        Py_RETURN_NONE;
    return lift(plan, ctx, payload);
}

static PyObject *lift(PyObject *plan, void *ctx, const val *v)
{
    int code = plan_code(plan);
    if (code < 0 || check_kind(v, code) < 0)
        return NULL;
    switch (code) {
    case C_BOOL:
        return PyBool_FromLong(v->of.boolean);
    case C_S8:
        return PyLong_FromLong(v->of.s8);
    case C_U8:
        return PyLong_FromLong(v->of.u8);
    case C_S16:
        return PyLong_FromLong(v->of.s16);
    case C_U16:
        return PyLong_FromLong(v->of.u16);
    case C_S32:
        return PyLong_FromLong(v->of.s32);
    case C_U32:
        return PyLong_FromUnsignedLong(v->of.u32);
    case C_S64:
        return PyLong_FromLongLong(v->of.s64);
    case C_U64:
        return PyLong_FromUnsignedLongLong(v->of.u64);
    case C_F32:
        return PyFloat_FromDouble((double)v->of.f32);
    case C_F64:
        return PyFloat_FromDouble(v->of.f64);
    case C_CHAR:
        return PyUnicode_FromOrdinal((int)v->of.character);
    case C_STRING:
        return lift_name(&v->of.string);
    case C_ENUM:
        return lift_name(&v->of.enumeration);
    case C_BYTES: {
        size_t n = v->of.list.size;
        PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n);
        if (out == NULL)
            return NULL;
        char *to = PyBytes_AS_STRING(out);
        const val *items = v->of.list.data;
        uint8_t k_u8 = kinds[C_U8];
        for (size_t i = 0; i < n; i++) {
            if (items[i].kind != k_u8) {
                Py_DECREF(out);
                return PyErr_Format(PyExc_TypeError, "list<u8> element of kind %d",
                                    (int)items[i].kind);
            }
            to[i] = (char)items[i].of.u8;
        }
        return out;
    }
    case C_LIST: {
        PyObject *element = PLAN_ITEM(plan, 1);
        size_t n = v->of.list.size;
        PyObject *out = PyList_New((Py_ssize_t)n);
        if (out == NULL)
            return NULL;
        for (size_t i = 0; i < n; i++) {
            PyObject *item = lift(element, ctx, &v->of.list.data[i]);
            if (item == NULL) {
                Py_DECREF(out);
                return NULL;
            }
            PyList_SET_ITEM(out, (Py_ssize_t)i, item);
        }
        return out;
    }
    case C_TUPLE: {
        PyObject *elements = PLAN_ITEM(plan, 1);
        Py_ssize_t n = PyTuple_GET_SIZE(elements);
        if (v->of.tuple.size != (size_t)n)
            return PyErr_Format(PyExc_TypeError, "tuple of %zu elements where %zd expected",
                                v->of.tuple.size, n);
        PyObject *out = PyTuple_New(n);
        if (out == NULL)
            return NULL;
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *item = lift(PyTuple_GET_ITEM(elements, i), ctx, &v->of.tuple.data[i]);
            if (item == NULL) {
                Py_DECREF(out);
                return NULL;
            }
            PyTuple_SET_ITEM(out, i, item);
        }
        return out;
    }
    case C_RECORD: {
        PyObject *names = PLAN_ITEM(plan, 1), *fields = PLAN_ITEM(plan, 2);
        Py_ssize_t n = PyTuple_GET_SIZE(fields);
        if (v->of.record.size != (size_t)n)
            return PyErr_Format(PyExc_TypeError, "record of %zu fields where %zd expected",
                                v->of.record.size, n);
        PyObject *out = PyDict_New();
        if (out == NULL)
            return NULL;
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *item = lift(PyTuple_GET_ITEM(fields, i), ctx, &v->of.record.data[i].value);
            if (item == NULL || PyDict_SetItem(out, PyTuple_GET_ITEM(names, i), item) < 0) {
                Py_XDECREF(item);
                Py_DECREF(out);
                return NULL;
            }
            Py_DECREF(item);
        }
        return out;
    }
    case C_FLAGS: {
        PyObject *names = PyFrozenSet_New(NULL);
        if (names == NULL)
            return NULL;
        for (size_t i = 0; i < v->of.flags.size; i++) {
            PyObject *name = lift_name(&v->of.flags.data[i]);
            if (name == NULL || PySet_Add(names, name) < 0) {
                Py_XDECREF(name);
                Py_DECREF(names);
                return NULL;
            }
            Py_DECREF(name);
        }
        return names;
    }
    case C_OPTION:
        return lift_payload(PLAN_ITEM(plan, 1), ctx, v->of.option);
    case C_RESULT: {
        bool ok = v->of.result.is_ok;
        PyObject *payload = lift_payload(PLAN_ITEM(plan, ok ? 1 : 2), ctx, v->of.result.payload);
        if (payload == NULL)
            return NULL;
        PyObject *out = PyTuple_Pack(2, ok ? str_ok : str_err, payload);
        Py_DECREF(payload);
        return out;
    }
    case C_VARIANT: {
        PyObject *names = PLAN_ITEM(plan, 1), *payloads = PLAN_ITEM(plan, 2);
        const byte_vec *tag = &v->of.variant.discriminant;
        Py_ssize_t n = PyTuple_GET_SIZE(names);
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *name = PyTuple_GET_ITEM(names, i);
            Py_ssize_t len;
            const char *text = PyUnicode_AsUTF8AndSize(name, &len);
            if (text == NULL)
                return NULL;
            if ((size_t)len == tag->size && memcmp(text, tag->data, tag->size) == 0) {
                PyObject *payload =
                    lift_payload(PyTuple_GET_ITEM(payloads, i), ctx, v->of.variant.payload);
                if (payload == NULL)
                    return NULL;
                PyObject *out = PyTuple_Pack(2, name, payload);
                Py_DECREF(payload);
                return out;
            }
        }
        return PyErr_Format(PyExc_TypeError, "variant case %.*s is not the type's",
                            (int)tag->size, tag->size ? (const char *)tag->data : "");
    }
    case C_OWN:
    case C_BORROW: {
        void *host = NULL;
        error_ptr err = api.any_to_host(ctx, v->of.resource, &host);
        if (err != NULL)
            return error_to_exception(err, "resource");
        uint32_t rep = api.host_rep(host);
        api.host_delete(host);
        PyObject *number = PyLong_FromUnsignedLong(rep);
        if (number == NULL)
            return NULL;
        PyObject *out = PyObject_CallOneArg(PLAN_ITEM(plan, 1), number);
        Py_DECREF(number);
        return out;
    }
    }
    PyErr_SetString(PyExc_SystemError, "crossing: unhandled plan code");
    return NULL;
}

/* ---- lowering: Python -> component value --------------------------------------------------- */

static int lower(PyObject *plan, void *ctx, PyObject *value, val *v);

static int lower_text(PyObject *value, byte_vec *out)
{
    Py_ssize_t len;
    const char *text = PyUnicode_AsUTF8AndSize(value, &len);
    if (text == NULL)
        return -1;
    api.byte_vec_new_uninit(out, (size_t)len);
    if (len)
        memcpy(out->data, text, (size_t)len);
    return 0;
}

static int lower_signed(PyObject *value, long long low, long long high, long long *out)
{
    long long number = PyLong_AsLongLong(value);
    if (number == -1 && PyErr_Occurred())
        return -1;
    if (number < low || number > high) {
        PyErr_Format(PyExc_OverflowError, "%lld is out of range [%lld, %lld]", number, low, high);
        return -1;
    }
    *out = number;
    return 0;
}

/* The range of each integer code that fits a long long (u64 is lowered on its own). */
static const struct {
    long long low, high;
} INT_RANGES[N_CODES] = {
    [C_S8] = {INT8_MIN, INT8_MAX},   [C_U8] = {0, UINT8_MAX},
    [C_S16] = {INT16_MIN, INT16_MAX}, [C_U16] = {0, UINT16_MAX},
    [C_S32] = {INT32_MIN, INT32_MAX}, [C_U32] = {0, UINT32_MAX},
    [C_S64] = {INT64_MIN, INT64_MAX},
};

static void store_int(val *v, int code, long long n)
{
    switch (code) {
    case C_S8: v->of.s8 = (int8_t)n; break;
    case C_U8: v->of.u8 = (uint8_t)n; break;
    case C_S16: v->of.s16 = (int16_t)n; break;
    case C_U16: v->of.u16 = (uint16_t)n; break;
    case C_S32: v->of.s32 = (int32_t)n; break;
    case C_U32: v->of.u32 = (uint32_t)n; break;
    default: v->of.s64 = (int64_t)n; break;
    }
}

/* A payload boxed on the heap (option, result, variant): NULL with no error for None payload
 * plans; on failure NULL with the error set and nothing left allocated. */
static val *lower_boxed(PyObject *plan, void *ctx, PyObject *value, int *failed)
{
    val tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.kind = kinds[C_BOOL];
    if (lower(plan, ctx, value, &tmp) < 0) {
        api.val_delete(&tmp);
        *failed = 1;
        return NULL;
    }
    return api.val_new(&tmp);
}

static int lower_case(PyObject *value, PyObject **tag, PyObject **payload)
{
    if (!PyTuple_Check(value) || PyTuple_GET_SIZE(value) != 2) {
        PyErr_SetString(PyExc_TypeError, "a result or variant is a (case, payload) pair");
        return -1;
    }
    *tag = PyTuple_GET_ITEM(value, 0);
    *payload = PyTuple_GET_ITEM(value, 1);
    return 0;
}

static int lower(PyObject *plan, void *ctx, PyObject *value, val *v)
{
    int code = plan_code(plan);
    if (code < 0)
        return -1;
    long long n = 0;
    switch (code) {
    case C_BOOL: {
        int truth = PyObject_IsTrue(value);
        if (truth < 0)
            return -1;
        v->kind = kinds[code];
        v->of.boolean = truth;
        return 0;
    }
    case C_S8:
    case C_U8:
    case C_S16:
    case C_U16:
    case C_S32:
    case C_U32:
    case C_S64:
        if (lower_signed(value, INT_RANGES[code].low, INT_RANGES[code].high, &n) < 0)
            return -1;
        store_int(v, code, n);
        break;
    case C_U64: {
        unsigned long long u = PyLong_AsUnsignedLongLong(value);
        if (u == (unsigned long long)-1 && PyErr_Occurred())
            return -1;
        v->of.u64 = (uint64_t)u;
        break;
    }
    case C_F32:
    case C_F64: {
        double d = PyFloat_AsDouble(value);
        if (d == -1.0 && PyErr_Occurred())
            return -1;
        if (code == C_F32)
            v->of.f32 = (float)d;
        else
            v->of.f64 = d;
        break;
    }
    case C_CHAR: {
        if (!PyUnicode_Check(value) || PyUnicode_GET_LENGTH(value) != 1) {
            PyErr_SetString(PyExc_TypeError, "a char is a one-character str");
            return -1;
        }
        Py_UCS4 c = PyUnicode_READ_CHAR(value, 0);
        if (c >= 0xD800 && c <= 0xDFFF) {
            PyErr_SetString(PyExc_ValueError, "a char is a Unicode scalar value");
            return -1;
        }
        v->of.character = (uint32_t)c;
        break;
    }
    case C_STRING:
    case C_ENUM: {
        byte_vec text;
        if (lower_text(value, &text) < 0)
            return -1;
        v->kind = kinds[code];
        if (code == C_STRING)
            v->of.string = text;
        else
            v->of.enumeration = text;
        return 0;
    }
    case C_BYTES: {
        Py_buffer view;
        if (PyObject_GetBuffer(value, &view, PyBUF_SIMPLE) < 0)
            return -1;
        val_vec items;
        api.vallist_new_uninit(&items, (size_t)view.len);
        uint8_t k_u8 = kinds[C_U8];
        const uint8_t *from = view.buf;
        for (Py_ssize_t i = 0; i < view.len; i++) {
            memset(&items.data[i], 0, sizeof(val));
            items.data[i].kind = k_u8;
            items.data[i].of.u8 = from[i];
        }
        PyBuffer_Release(&view);
        v->kind = kinds[code];
        v->of.list = items;
        return 0;
    }
    case C_LIST:
    case C_TUPLE: {
        PyObject *seq = PySequence_Fast(value, "a list or tuple value must be a sequence");
        if (seq == NULL)
            return -1;
        Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
        if (code == C_TUPLE && count != PyTuple_GET_SIZE(PLAN_ITEM(plan, 1))) {
            Py_DECREF(seq);
            PyErr_Format(PyExc_TypeError, "tuple of %zd elements where %zd expected", count,
                         PyTuple_GET_SIZE(PLAN_ITEM(plan, 1)));
            return -1;
        }
        val_vec items;
        if (code == C_LIST)
            api.vallist_new_uninit(&items, (size_t)count);
        else
            api.valtuple_new_uninit(&items, (size_t)count);
        if (count)
            memset(items.data, 0, (size_t)count * sizeof(val));
        for (Py_ssize_t i = 0; i < count; i++)
            items.data[i].kind = kinds[C_BOOL];
        v->kind = kinds[code];
        if (code == C_LIST)
            v->of.list = items;
        else
            v->of.tuple = items;
        PyObject **objects = PySequence_Fast_ITEMS(seq);
        for (Py_ssize_t i = 0; i < count; i++) {
            PyObject *element =
                code == C_LIST ? PLAN_ITEM(plan, 1) : PyTuple_GET_ITEM(PLAN_ITEM(plan, 1), i);
            if (lower(element, ctx, objects[i], &items.data[i]) < 0) {
                Py_DECREF(seq);
                return -1;
            }
        }
        Py_DECREF(seq);
        return 0;
    }
    case C_RECORD: {
        PyObject *names = PLAN_ITEM(plan, 1), *fields = PLAN_ITEM(plan, 2);
        Py_ssize_t count = PyTuple_GET_SIZE(fields);
        record_vec entries;
        api.valrecord_new_uninit(&entries, (size_t)count);
        if (count)
            memset(entries.data, 0, (size_t)count * sizeof(record_entry));
        for (Py_ssize_t i = 0; i < count; i++)
            entries.data[i].value.kind = kinds[C_BOOL];
        v->kind = kinds[code];
        v->of.record = entries;
        for (Py_ssize_t i = 0; i < count; i++) {
            PyObject *name = PyTuple_GET_ITEM(names, i);
            if (lower_text(name, &entries.data[i].name) < 0)
                return -1;
            PyObject *item = PyObject_GetItem(value, name);
            if (item == NULL)
                return -1;
            int failed = lower(PyTuple_GET_ITEM(fields, i), ctx, item, &entries.data[i].value);
            Py_DECREF(item);
            if (failed < 0)
                return -1;
        }
        return 0;
    }
    case C_FLAGS: {
        PyObject *names = PySequence_List(value);
        if (names == NULL || PyList_Sort(names) < 0) {
            Py_XDECREF(names);
            return -1;
        }
        Py_ssize_t count = PyList_GET_SIZE(names);
        flags_vec flags;
        api.valflags_new_uninit(&flags, (size_t)count);
        if (count)
            memset(flags.data, 0, (size_t)count * sizeof(byte_vec));
        v->kind = kinds[code];
        v->of.flags = flags;
        for (Py_ssize_t i = 0; i < count; i++) {
            if (lower_text(PyList_GET_ITEM(names, i), &flags.data[i]) < 0) {
                Py_DECREF(names);
                return -1;
            }
        }
        Py_DECREF(names);
        return 0;
    }
    case C_OPTION: {
        val *boxed = NULL;
        int failed = 0;
        if (value != Py_None) {
            boxed = lower_boxed(PLAN_ITEM(plan, 1), ctx, value, &failed);
            if (failed)
                return -1;
        }
        v->kind = kinds[code];
        v->of.option = boxed;
        return 0;
    }
    case C_RESULT:
    case C_VARIANT: {
        PyObject *tag, *payload;
        if (lower_case(value, &tag, &payload) < 0)
            return -1;
        Py_ssize_t index = -1;
        PyObject *payload_plan = Py_None;
        if (code == C_RESULT) {
            int is_ok = PyUnicode_Check(tag) ? PyUnicode_Compare(tag, str_ok) == 0 : 0;
            int is_err = PyUnicode_Check(tag) ? PyUnicode_Compare(tag, str_err) == 0 : 0;
            if (PyErr_Occurred())
                return -1;
            if (!is_ok && !is_err) {
                PyErr_Format(PyExc_ValueError, "a result's case is 'ok' or 'err', not %R", tag);
                return -1;
            }
            index = is_ok ? 0 : 1;
            payload_plan = PLAN_ITEM(plan, is_ok ? 1 : 2);
        } else {
            PyObject *names = PLAN_ITEM(plan, 1);
            for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(names); i++) {
                int same = PyObject_RichCompareBool(PyTuple_GET_ITEM(names, i), tag, Py_EQ);
                if (same < 0)
                    return -1;
                if (same) {
                    index = i;
                    break;
                }
            }
            if (index < 0) {
                PyErr_Format(PyExc_ValueError, "%R is not a case of the variant", tag);
                return -1;
            }
            payload_plan = PyTuple_GET_ITEM(PLAN_ITEM(plan, 2), index);
        }
        val *boxed = NULL;
        int failed = 0;
        if (payload_plan != Py_None) {
            boxed = lower_boxed(payload_plan, ctx, payload, &failed);
            if (failed)
                return -1;
        }
        v->kind = kinds[code];
        if (code == C_RESULT) {
            v->of.result.is_ok = index == 0;
            v->of.result.payload = boxed;
        } else {
            memset(&v->of.variant.discriminant, 0, sizeof(byte_vec));
            v->of.variant.payload = boxed;
            if (lower_text(tag, &v->of.variant.discriminant) < 0)
                return -1;
        }
        return 0;
    }
    case C_OWN:
    case C_BORROW: {
        PyObject *pair = PyObject_CallOneArg(PLAN_ITEM(plan, 2), value);
        if (pair == NULL)
            return -1;
        unsigned long rep = 0, type = 0;
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
            Py_DECREF(pair);
            PyErr_SetString(PyExc_TypeError, "a resource lowers to a (rep, type id) pair");
            return -1;
        }
        rep = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(pair, 0));
        if (!PyErr_Occurred())
            type = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(pair, 1));
        Py_DECREF(pair);
        if (PyErr_Occurred())
            return -1;
        if (rep > UINT32_MAX || type > UINT32_MAX) {
            PyErr_SetString(PyExc_OverflowError, "a resource's rep and type id are u32");
            return -1;
        }
        void *host = api.host_new(true, (uint32_t)rep, (uint32_t)type);
        void *any = NULL;
        error_ptr err = api.host_to_any(ctx, host, &any);
        api.host_delete(host);
        if (err != NULL) {
            error_to_exception(err, "resource");
            return -1;
        }
        v->kind = kinds[code];
        v->of.resource = any;
        return 0;
    }
    default:
        PyErr_SetString(PyExc_SystemError, "crossing: unhandled plan code");
        return -1;
    }
    v->kind = kinds[code]; /* the scalars, written above */
    return 0;
}

/* ---- the callbacks ------------------------------------------------------------------------ */

/* A host function's data: (impl, current, on_error, (param plan, ...), result plan or None).
 * impl is called as impl(current(), *arguments). */
enum { F_IMPL, F_CURRENT, F_ON_ERROR, F_PARAMS, F_RESULT, F_SIZE };


static error_ptr trap_from_exception(PyObject *on_error)
{
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    if (value != NULL && traceback != NULL)
        PyException_SetTraceback(value, traceback);
    PyObject *text = value != NULL ? PyObject_CallOneArg(on_error, value) : NULL;
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(traceback);
    const char *message = text != NULL && PyUnicode_Check(text) ? PyUnicode_AsUTF8(text) : NULL;
    if (message == NULL) {
        PyErr_Clear();
        message = "host error";
    }
    error_ptr trap = api.error_new(message);
    Py_XDECREF(text);
    return trap;
}

#define STACK_ARGS 8

static error_ptr func_callback(void *data, void *ctx, const void *type, val *args, size_t nargs,
                               val *results, size_t nresults)
{
    (void)type;
    PyGILState_STATE gil = PyGILState_Ensure();
    PyObject *f = (PyObject *)data;
    PyObject *params = PyTuple_GET_ITEM(f, F_PARAMS);
    PyObject *result_plan = PyTuple_GET_ITEM(f, F_RESULT);
    Py_ssize_t count = PyTuple_GET_SIZE(params);
    PyObject *stack[STACK_ARGS + 1];
    PyObject **argv = stack;
    Py_ssize_t made = 0;
    error_ptr trap = NULL;

    if (nargs != (size_t)count || nresults != (size_t)(result_plan != Py_None)) {
        PyErr_Format(PyExc_TypeError, "host call with %zu arguments and %zu results", nargs,
                     nresults);
        goto failed;
    }
    if (count > STACK_ARGS) {
        argv = PyMem_Malloc(((size_t)count + 1) * sizeof(PyObject *));
        if (argv == NULL) {
            PyErr_NoMemory();
            goto failed;
        }
    }
    argv[0] = PyObject_CallNoArgs(PyTuple_GET_ITEM(f, F_CURRENT));
    if (argv[0] == NULL)
        goto failed;
    made = 1;
    for (Py_ssize_t i = 0; i < count; i++) {
        argv[i + 1] = lift(PyTuple_GET_ITEM(params, i), ctx, &args[i]);
        if (argv[i + 1] == NULL)
            goto failed;
        made++;
    }
    PyObject *out = PyObject_Vectorcall(PyTuple_GET_ITEM(f, F_IMPL), argv, (size_t)count + 1, NULL);
    if (out == NULL)
        goto failed;
    if (result_plan != Py_None) {
        int lowered = lower(result_plan, ctx, out, &results[0]);
        Py_DECREF(out);
        if (lowered < 0) {
            api.val_delete(&results[0]);
            memset(&results[0], 0, sizeof(val));
            results[0].kind = kinds[C_BOOL];
            goto failed;
        }
    } else {
        Py_DECREF(out);
    }
    goto done;
failed:
    trap = trap_from_exception(PyTuple_GET_ITEM(f, F_ON_ERROR));
done:
    for (Py_ssize_t i = 0; i < made; i++)
        Py_DECREF(argv[i]);
    if (argv != stack)
        PyMem_Free(argv);
    PyGILState_Release(gil);
    return trap;
}

/* A resource type's data is its drop hook, dropped(rep); a drop cannot fail, so its exception
 * is discarded. */
static error_ptr destructor_callback(void *data, void *ctx, uint32_t rep)
{
    (void)ctx;
    PyGILState_STATE gil = PyGILState_Ensure();
    PyObject *number = PyLong_FromUnsignedLong(rep);
    PyObject *out = number != NULL ? PyObject_CallOneArg((PyObject *)data, number) : NULL;
    Py_XDECREF(number);
    if (out == NULL)
        PyErr_Clear();
    Py_XDECREF(out);
    PyGILState_Release(gil);
    return NULL;
}

/* The engine lets go of a definition's data (its linker is gone). */
static void release_callback(void *data)
{
    if (data == NULL || !Py_IsInitialized())
        return; /* at exit: the interpreter is gone, nothing to give back */
    PyGILState_STATE gil = PyGILState_Ensure();
    Py_DECREF((PyObject *)data);
    PyGILState_Release(gil);
}

/* ---- a served command's WASI, in one call ---------------------------------------------------- */

/* What engine.sandbox gives a served request's store through ctypes (a dozen calls and the
 * strings' arrays built in Python): a WASI configuration with argv, the environment, the
 * preopened directories, stdin from memory and stdout/stderr written to files, given to a store.
 * The result says which step failed, so the caller raises what the Python path raises. */
enum {
    WASI_OK, WASI_NUL, WASI_ARGV, WASI_ENV, WASI_STDOUT, WASI_STDERR, WASI_SET, WASI_DIR,
    N_WASI_CODES
};
static const char *const WASI_CODE_NAMES[N_WASI_CODES] = {
    "ok", "nul", "argv", "env", "stdout", "stderr", "set", "dir",
};

/* The UTF-8 of a str (cached in the object: valid while it lives), or NULL with *nul set if it
 * holds a NUL, or NULL with an exception. */
static const char *c_string(PyObject *text, int *nul)
{
    Py_ssize_t len;
    const char *utf8 = PyUnicode_AsUTF8AndSize(text, &len);
    if (utf8 != NULL && strlen(utf8) != (size_t)len) {
        *nul = 1;
        return NULL;
    }
    return utf8;
}

static void *pointer_of(PyObject *number);
static int check_ready(void);

/* Whether dirs is a tuple of (host path bytes, guest path bytes, mutable bool) triples. */
static int check_dirs(PyObject *dirs)
{
    if (!PyTuple_CheckExact(dirs))
        return 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(dirs); i++) {
        PyObject *grant = PyTuple_GET_ITEM(dirs, i);
        if (!PyTuple_CheckExact(grant) || PyTuple_GET_SIZE(grant) != 3 ||
            !PyBytes_CheckExact(PyTuple_GET_ITEM(grant, 0)) ||
            !PyBytes_CheckExact(PyTuple_GET_ITEM(grant, 1)) ||
            !PyBool_Check(PyTuple_GET_ITEM(grant, 2)))
            return 0;
    }
    return 1;
}

static int nul_inside(PyObject *bytes)
{
    return strlen(PyBytes_AS_STRING(bytes)) != (size_t)PyBytes_GET_SIZE(bytes);
}

/* Give the store at ctx its WASI: a WASI_* code (with *error set for WASI_SET, *failed_dir for
 * WASI_DIR), or -1 with an exception for arguments of the wrong types. */
static int configure_wasi(void *ctx, PyObject *argv, PyObject *env, PyObject *dirs,
                          PyObject *stdin_bytes, PyObject *stdout_path, PyObject *stderr_path,
                          error_ptr *error, Py_ssize_t *failed_dir)
{
    *error = NULL;
    *failed_dir = 0;
    if ((argv != Py_None && !PyList_CheckExact(argv) && !PyTuple_CheckExact(argv)) ||
        (env != Py_None && !PyDict_CheckExact(env)) || !check_dirs(dirs) ||
        !PyBytes_CheckExact(stdin_bytes) || !PyBytes_CheckExact(stdout_path) ||
        !PyBytes_CheckExact(stderr_path)) {
        PyErr_SetString(PyExc_TypeError, "WASI takes list|tuple|None, dict|None, "
                                         "((bytes, bytes, bool), ...), bytes, bytes, bytes");
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(dirs); i++) {
        PyObject *grant = PyTuple_GET_ITEM(dirs, i);
        if (nul_inside(PyTuple_GET_ITEM(grant, 0)) || nul_inside(PyTuple_GET_ITEM(grant, 1)))
            return WASI_NUL;
    }
    const char *out_path = PyBytes_AS_STRING(stdout_path);
    const char *err_path = PyBytes_AS_STRING(stderr_path);
    if (strlen(out_path) != (size_t)PyBytes_GET_SIZE(stdout_path) ||
        strlen(err_path) != (size_t)PyBytes_GET_SIZE(stderr_path))
        return WASI_NUL;

    Py_ssize_t argc = argv == Py_None ? 0 : PySequence_Fast_GET_SIZE(argv);
    Py_ssize_t envc = env == Py_None ? 0 : PyDict_GET_SIZE(env);
    const char **strings = PyMem_Malloc(((size_t)(argc + 2 * envc) + 1) * sizeof(char *));
    if (strings == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    const char **names = strings + argc, **values = strings + argc + envc;
    int nul = 0, code = WASI_OK;
    PyObject **items = argv == Py_None ? NULL : PySequence_Fast_ITEMS(argv);
    for (Py_ssize_t i = 0; i < argc; i++) {
        if (!PyUnicode_Check(items[i]) || (strings[i] = c_string(items[i], &nul)) == NULL)
            goto strings_failed;
    }
    Py_ssize_t pos = 0, at = 0;
    PyObject *key, *value;
    while (env != Py_None && PyDict_Next(env, &pos, &key, &value)) {
        if (!PyUnicode_Check(key) || !PyUnicode_Check(value) ||
            (names[at] = c_string(key, &nul)) == NULL ||
            (values[at] = c_string(value, &nul)) == NULL)
            goto strings_failed;
        at++;
    }

    void *cfg = api.wasi_config_new();
    if (argv != Py_None || env != Py_None) {
        if (!api.wasi_config_set_argv(cfg, (size_t)argc, strings))
            code = WASI_ARGV;
        else if (!api.wasi_config_set_env(cfg, (size_t)envc, names, values))
            code = WASI_ENV;
    }
    for (Py_ssize_t i = 0; code == WASI_OK && i < PyTuple_GET_SIZE(dirs); i++) {
        PyObject *grant = PyTuple_GET_ITEM(dirs, i);
        if (!api.wasi_config_preopen_dir(cfg, PyBytes_AS_STRING(PyTuple_GET_ITEM(grant, 0)),
                                         PyBytes_AS_STRING(PyTuple_GET_ITEM(grant, 1)),
                                         PyTuple_GET_ITEM(grant, 2) == Py_True)) {
            code = WASI_DIR;
            *failed_dir = i;
        }
    }
    Py_ssize_t size = PyBytes_GET_SIZE(stdin_bytes);
    if (code == WASI_OK && size) { /* none: WASI's own stdin reads as end of file */
        byte_vec data;
        api.byte_vec_new(&data, (size_t)size, (const uint8_t *)PyBytes_AS_STRING(stdin_bytes));
        api.wasi_config_set_stdin_bytes(cfg, &data); /* takes the vector */
    }
    if (code == WASI_OK && !api.wasi_config_set_stdout_file(cfg, out_path))
        code = WASI_STDOUT;
    if (code == WASI_OK && !api.wasi_config_set_stderr_file(cfg, err_path))
        code = WASI_STDERR;
    PyMem_Free(strings);
    if (code != WASI_OK) {
        api.wasi_config_delete(cfg);
        return code;
    }
    *error = api.context_set_wasi(ctx, cfg); /* takes the configuration */
    return *error == NULL ? WASI_OK : WASI_SET;

strings_failed:
    PyMem_Free(strings);
    if (nul)
        return WASI_NUL;
    if (!PyErr_Occurred())
        PyErr_SetString(PyExc_TypeError, "argv and environment are str");
    return -1;
}

static PyObject *crossing_wasi_files(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 7)
        return PyErr_Format(PyExc_TypeError, "wasi_files takes 7 arguments");
    if (check_ready() < 0)
        return NULL;
    void *ctx = pointer_of(args[0]);
    if (ctx == NULL)
        return PyErr_Occurred() ? NULL : PyErr_Format(PyExc_ValueError, "no context");
    error_ptr error;
    Py_ssize_t failed_dir;
    int code = configure_wasi(ctx, args[1], args[2], args[3], args[4], args[5], args[6], &error,
                              &failed_dir);
    if (code < 0)
        return NULL;
    return Py_BuildValue("(iNn)", code, PyLong_FromVoidPtr(error), failed_dir);
}

/* ---- a served command's run, in one call -------------------------------------------------- */

/* What engine.program runs for a served request through lowlevel's ctypes functions: a store
 * with its deadline, memory cap and fuel (new_store), its WASI (set_file_wasi), the instance
 * (instantiate) and the calls of its entries (call_export), the store deleted after a clean run
 * unless kept. The GIL is released while guest code runs (instantiation runs start functions),
 * as the binding's calls release it. The result says where a run stopped, with what the caller
 * needs to raise or classify exactly what the Python path gives:
 *   (phase, detail, error address, trap address, store address, instance store id, index)
 * phase RUN_OK: detail 0; the store's address if kept, else 0.
 * RUN_SETUP: setting the fuel failed (error).  RUN_WASI: detail is the WASI_* code (for
 * WASI_DIR the failed directory's index is in the instance index's place).
 * RUN_INSTANTIATE, RUN_CALL: error or trap (RUN_CALL: detail is the entry's index).
 * RUN_MISSING: entry number detail is not an exported function.
 * The store (and the instance, past RUN_INSTANTIATE) is returned whenever the run did not end
 * cleanly: the caller owns it then. */
typedef struct {
    uint64_t store_id;
    size_t index;
} instance_t;

typedef struct {
    uint64_t store_id;
    void *index;
} func_t;

typedef struct {
    uint8_t kind;
    union {
        func_t func;
        uint8_t other[24];
    } of;
} extern_t;

enum { RUN_OK, RUN_SETUP, RUN_WASI, RUN_INSTANTIATE, RUN_MISSING, RUN_CALL, N_RUN_PHASES };
static const char *const RUN_PHASE_NAMES[N_RUN_PHASES] = {
    "ok", "setup", "wasi", "instantiate", "missing", "call",
};
static uint8_t extern_func_kind;

static PyObject *run_result(int phase, Py_ssize_t detail, error_ptr error, void *trap, void *store,
                            const instance_t *instance)
{
    return Py_BuildValue("(inNNNKn)", phase, detail, PyLong_FromVoidPtr(error),
                         PyLong_FromVoidPtr(trap), PyLong_FromVoidPtr(store),
                         (unsigned long long)(instance ? instance->store_id : 0),
                         (Py_ssize_t)(instance ? instance->index : 0));
}

static PyObject *crossing_run_command(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    /* engine, pre, deadline ticks, memory cap or None, fuel or None, argv, env, dirs, stdin,
       stdout path, stderr path, (entry name bytes, ...), keep the store */
    if (nargs != 13)
        return PyErr_Format(PyExc_TypeError, "run_command takes 13 arguments");
    if (check_ready() < 0)
        return NULL;
    void *engine = pointer_of(args[0]);
    void *pre = engine != NULL ? pointer_of(args[1]) : NULL;
    if (engine == NULL || pre == NULL)
        return PyErr_Occurred() ? NULL : PyErr_Format(PyExc_ValueError, "no engine or pre");
    unsigned long long ticks = PyLong_AsUnsignedLongLong(args[2]);
    long long memory = args[3] == Py_None ? -1 : PyLong_AsLongLong(args[3]);
    unsigned long long fuel = args[4] == Py_None ? 0 : PyLong_AsUnsignedLongLong(args[4]);
    int keep = PyObject_IsTrue(args[12]);
    if (PyErr_Occurred() || keep < 0)
        return NULL;
    PyObject *entries = args[11];
    if (!PyTuple_CheckExact(entries))
        return PyErr_Format(PyExc_TypeError, "entries are a tuple of bytes");
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(entries); i++)
        if (!PyBytes_CheckExact(PyTuple_GET_ITEM(entries, i)))
            return PyErr_Format(PyExc_TypeError, "entries are a tuple of bytes");

    void *store = api.store_new(engine, NULL, NULL);
    void *ctx = api.store_context(store);
    api.context_set_epoch_deadline(ctx, (uint64_t)ticks);
    if (memory >= 0)
        api.store_limiter(store, memory, -1, -1, -1, -1);
    if (args[4] != Py_None) {
        error_ptr error = api.context_set_fuel(ctx, (uint64_t)fuel);
        if (error != NULL)
            return run_result(RUN_SETUP, 0, error, NULL, store, NULL);
    }
    error_ptr error;
    Py_ssize_t failed_dir;
    int code = configure_wasi(ctx, args[5], args[6], args[7], args[8], args[9], args[10], &error,
                              &failed_dir);
    if (code < 0) {
        api.store_delete(store);
        return NULL;
    }
    if (code != WASI_OK) { /* the failed directory's index where the instance's would be */
        instance_t where = {0, (size_t)failed_dir};
        return run_result(RUN_WASI, code, error, NULL, store, &where);
    }

    instance_t instance;
    void *trap = NULL;
    Py_BEGIN_ALLOW_THREADS
    error = api.instance_pre_instantiate(pre, ctx, &instance, &trap);
    Py_END_ALLOW_THREADS
    if (error != NULL || trap != NULL)
        return run_result(RUN_INSTANTIATE, 0, error, trap, store, NULL);
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(entries); i++) {
        PyObject *name = PyTuple_GET_ITEM(entries, i);
        extern_t item;
        if (!api.instance_export_get(ctx, &instance, PyBytes_AS_STRING(name),
                                     (size_t)PyBytes_GET_SIZE(name), &item) ||
            item.kind != extern_func_kind)
            return run_result(RUN_MISSING, i, NULL, NULL, store, &instance);
        Py_BEGIN_ALLOW_THREADS
        error = api.func_call(ctx, &item.of.func, NULL, 0, NULL, 0, &trap);
        Py_END_ALLOW_THREADS
        if (error != NULL || trap != NULL)
            return run_result(RUN_CALL, i, error, trap, store, &instance);
    }
    if (!keep) {
        api.store_delete(store);
        store = NULL;
    }
    return run_result(RUN_OK, 0, NULL, NULL, store, keep ? &instance : NULL);
}

/* ---- the module ----------------------------------------------------------------------------- */

static PyObject *address_of(void *pointer)
{
    return PyLong_FromVoidPtr(pointer);
}

/* An address: an int, None (NULL), or a ctypes pointer object (its buffer holds the address). */
static void *pointer_of(PyObject *number)
{
    if (number == Py_None)
        return NULL;
    if (PyLong_Check(number))
        return PyLong_AsVoidPtr(number);
    Py_buffer view;
    if (PyObject_GetBuffer(number, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    void *address = NULL;
    if (view.len == (Py_ssize_t)sizeof(void *))
        memcpy(&address, view.buf, sizeof(void *));
    else
        PyErr_SetString(PyExc_TypeError, "an address is an int or a ctypes pointer");
    PyBuffer_Release(&view);
    return address;
}

static PyObject *crossing_init(PyObject *module, PyObject *args)
{
    PyObject *addresses, *kind_values;
    int func_kind;
    if (!PyArg_ParseTuple(args, "O!O!i:init", &PyTuple_Type, &addresses, &PyTuple_Type,
                          &kind_values, &func_kind))
        return NULL;
    if (func_kind < 0 || func_kind > 255)
        return PyErr_Format(PyExc_ValueError, "bad extern kind %d", func_kind);
    if (PyTuple_GET_SIZE(addresses) != N_FUNCTIONS || PyTuple_GET_SIZE(kind_values) != N_CODES)
        return PyErr_Format(PyExc_ValueError, "init takes %zd addresses and %d kinds",
                            N_FUNCTIONS, (int)N_CODES);
    void *pointers[N_FUNCTIONS];
    for (Py_ssize_t i = 0; i < N_FUNCTIONS; i++) {
        pointers[i] = PyLong_AsVoidPtr(PyTuple_GET_ITEM(addresses, i));
        if (pointers[i] == NULL) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_ValueError, "no address for %s", FUNCTION_NAMES[i]);
            return NULL;
        }
    }
    uint8_t values[N_CODES];
    for (int i = 0; i < N_CODES; i++) {
        long kind = PyLong_AsLong(PyTuple_GET_ITEM(kind_values, i));
        if (kind < 0 || kind > 255)
            return PyErr_Occurred() ? NULL : PyErr_Format(PyExc_ValueError, "bad kind %ld", kind);
        values[i] = (uint8_t)kind;
    }
    _Static_assert(sizeof api == sizeof pointers, "one address per engine function");
    memcpy(&api, pointers, sizeof api);
    memcpy(kinds, values, sizeof kinds);
    extern_func_kind = (uint8_t)func_kind;
    ready = true;
    Py_RETURN_NONE;
}

static int check_ready(void)
{
    if (!ready)
        PyErr_SetString(PyExc_RuntimeError, "crossing: init() has not run");
    return ready ? 0 : -1;
}

static PyObject *crossing_func_data(PyObject *module, PyObject *args)
{
    PyObject *impl, *current, *on_error, *params, *result;
    if (!PyArg_ParseTuple(args, "OOOO!O:func_data", &impl, &current, &on_error, &PyTuple_Type,
                          &params, &result))
        return NULL;
    if (check_ready() < 0)
        return NULL;
    if (!PyCallable_Check(impl) || !PyCallable_Check(current) || !PyCallable_Check(on_error))
        return PyErr_Format(PyExc_TypeError, "impl, current and on_error must be callable");
    PyObject *data = PyTuple_Pack(F_SIZE, impl, current, on_error, params, result);
    if (data == NULL)
        return NULL;
    return address_of(data); /* the reference goes to the engine, back by release() */
}

static PyObject *crossing_resource_data(PyObject *module, PyObject *dropped)
{
    if (check_ready() < 0)
        return NULL;
    if (!PyCallable_Check(dropped))
        return PyErr_Format(PyExc_TypeError, "dropped must be callable");
    Py_INCREF(dropped);
    return address_of(dropped);
}

static PyObject *crossing_release(PyObject *module, PyObject *address)
{
    PyObject *data = pointer_of(address);
    if (data == NULL && PyErr_Occurred())
        return NULL;
    Py_XDECREF(data);
    Py_RETURN_NONE;
}

static PyObject *crossing_lift(PyObject *module, PyObject *args)
{
    PyObject *plan, *context, *address;
    if (!PyArg_ParseTuple(args, "OOO:lift", &plan, &context, &address))
        return NULL;
    if (check_ready() < 0)
        return NULL;
    void *ctx = pointer_of(context);
    val *v = pointer_of(address);
    if (PyErr_Occurred())
        return NULL;
    if (v == NULL)
        return PyErr_Format(PyExc_ValueError, "no value");
    return lift(plan, ctx, v);
}

static PyObject *crossing_lower(PyObject *module, PyObject *args)
{
    PyObject *plan, *context, *value, *address;
    if (!PyArg_ParseTuple(args, "OOOO:lower", &plan, &context, &value, &address))
        return NULL;
    if (check_ready() < 0)
        return NULL;
    void *ctx = pointer_of(context);
    val *v = pointer_of(address);
    if (PyErr_Occurred())
        return NULL;
    if (v == NULL)
        return PyErr_Format(PyExc_ValueError, "no value");
    if (lower(plan, ctx, value, v) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"init", crossing_init, METH_VARARGS,
     "init(addresses, kinds, extern func kind): the engine functions (in FUNCTIONS order), the "
     "value kind of each plan code (in KIND_NAMES order) and WASMTIME_EXTERN_FUNC."},
    {"func_data", crossing_func_data, METH_VARARGS,
     "func_data(impl, current, on_error, params, result) -> address: a host function's data "
     "for CALLBACK (one reference, given back by RELEASE or release())."},
    {"resource_data", crossing_resource_data, METH_O,
     "resource_data(dropped) -> address: a resource type's data for DESTRUCTOR."},
    {"release", crossing_release, METH_O,
     "release(address): give back data the engine did not take."},
    {"wasi_files", (PyCFunction)(void (*)(void))crossing_wasi_files, METH_FASTCALL,
     "wasi_files(context, argv, env, dirs, stdin, stdout path, stderr path) -> (code, error "
     "address, failed dir index): engine.lowlevel.set_file_wasi in one call (code: WASI_CODES)."},
    {"run_command", (PyCFunction)(void (*)(void))crossing_run_command, METH_FASTCALL,
     "run_command(engine, pre, ticks, memory, fuel, argv, env, dirs, stdin, stdout, stderr, entries, "
     "keep) -> (phase, detail, error, trap, store, instance store id, instance index): a served "
     "command's store, WASI, instance and calls in one call (phase: RUN_PHASES)."},
    {"lift", crossing_lift, METH_VARARGS,
     "lift(plan, context address or None, value address) -> object."},
    {"lower", crossing_lower, METH_VARARGS,
     "lower(plan, context address or None, object, value address): write the value."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "wasmgate._crossing",
    .m_doc = "Component host calls crossed in C (see wasmgate.engine.crossing).",
    .m_size = -1,
    .m_methods = methods,
};

static int add_names(PyObject *module, const char *name, const char *const *items, Py_ssize_t n)
{
    PyObject *tuple = PyTuple_New(n);
    if (tuple == NULL)
        return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *text = PyUnicode_FromString(items[i]);
        if (text == NULL) {
            Py_DECREF(tuple);
            return -1;
        }
        PyTuple_SET_ITEM(tuple, i, text);
    }
    return PyModule_AddObject(module, name, tuple) < 0 ? (Py_DECREF(tuple), -1) : 0;
}

PyMODINIT_FUNC PyInit__crossing(void)
{
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL)
        return NULL;
    str_ok = PyUnicode_InternFromString("ok");
    str_err = PyUnicode_InternFromString("err");
    PyObject *layout = Py_BuildValue(
        "{s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n}", "instance",
        (Py_ssize_t)sizeof(instance_t), "func", (Py_ssize_t)sizeof(func_t), "extern",
        (Py_ssize_t)sizeof(extern_t), "extern.of", (Py_ssize_t)offsetof(extern_t, of), "val", (Py_ssize_t)sizeof(val), "val.of",
        (Py_ssize_t)offsetof(val, of), "record_entry", (Py_ssize_t)sizeof(record_entry),
        "record_entry.val", (Py_ssize_t)offsetof(record_entry, value), "variant.val",
        (Py_ssize_t)offsetof(val, of.variant.payload) - (Py_ssize_t)offsetof(val, of),
        "result.val", (Py_ssize_t)offsetof(val, of.result.payload) - (Py_ssize_t)offsetof(val, of),
        "byte_vec", (Py_ssize_t)sizeof(byte_vec), "list", (Py_ssize_t)sizeof(val_vec), "flags",
        (Py_ssize_t)sizeof(flags_vec), "record", (Py_ssize_t)sizeof(record_vec));
    if (str_ok == NULL || str_err == NULL || layout == NULL ||
        PyModule_AddObject(module, "LAYOUT", layout) < 0 ||
        add_names(module, "FUNCTIONS", FUNCTION_NAMES, N_FUNCTIONS) < 0 ||
        add_names(module, "KIND_NAMES", KIND_NAMES, N_CODES) < 0 ||
        add_names(module, "CODES", CODE_NAMES, N_CODES) < 0 ||
        add_names(module, "WASI_CODES", WASI_CODE_NAMES, N_WASI_CODES) < 0 ||
        add_names(module, "RUN_PHASES", RUN_PHASE_NAMES, N_RUN_PHASES) < 0 ||
        PyModule_AddObject(module, "CALLBACK", address_of((void *)func_callback)) < 0 ||
        PyModule_AddObject(module, "DESTRUCTOR", address_of((void *)destructor_callback)) < 0 ||
        PyModule_AddObject(module, "RELEASE", address_of((void *)release_callback)) < 0) {
        Py_XDECREF(layout);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
