"""The few engine features wasmtime-py 50 has in its C library but not in its Python API.

Rules:
- Each function here calls the binding's own ctypes layer (``wasmtime._ffi``), checks that
  the symbol exists, and returns False (or does nothing) when it does not: a new binding version
  may drop or rename these, and then wasmgate must get slower, never wrong. Callers always have a
  public-API fallback.
- Pinned to the binding: the package pins ``wasmtime==50.*``; ``tests/test_lowlevel.py`` checks
  each function against the public-API behaviour it replaces.
- Nothing else in wasmgate touches ``wasmtime._ffi`` or the binding's private attributes.
"""

from __future__ import annotations

import abc
import array
import contextlib
import ctypes
import importlib
import itertools
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from itertools import accumulate
from typing import Any, cast

import wasmtime

__all__ = [
    "COMPONENT_QUICK_CALLS",
    "QUICK_CALLS",
    "PoolingLimits",
    "call_export",
    "caller_store_id",
    "enable_pooling",
    "hold_gil_in_quick_calls",
    "instantiate",
    "interrupt_caller",
    "new_store",
    "set_args_env",
    "set_file_wasi",
    "set_stdin_bytes",
]

_CHAR_PP = ctypes.POINTER(ctypes.POINTER(ctypes.c_char))
_ffi: Any
_bindings: Any
_last_exception: Any
try:
    from wasmtime import (
        _bindings,
        _ffi,  # the ctypes layer (_bindings) plus its constants
    )
    from wasmtime._func import maybe_raise_last_exn as _last_exception
except ImportError:  # pragma: no cover - binding layout changed
    _ffi = _bindings = _last_exception = None


@cache
def _has(*names: str) -> bool:
    # Cached: several per-request calls ask it (the answer cannot change in a process).
    return _ffi is not None and all(hasattr(_ffi, n) for n in names)


@cache
def _c_function(name: str) -> Any:
    """The binding's ctypes function ``name`` itself (its wrapper's callee: the GIL-holding one
    once ``_hold_gil`` switched it), for calls made many times a request."""
    return getattr(_bindings, "_" + name, None) or getattr(_ffi, name)


@dataclass(frozen=True, slots=True)
class PoolingLimits:
    """Sizes of the instance pool. Slots cost virtual address space only until used."""

    total_core_instances: int = 1000
    total_memories: int = 1000
    total_tables: int = 1000
    max_memory_size: int = 4 * 1024**3
    max_unused_warm_slots: int = 100
    # Bytes at the start of a recycled memory slot reset with memset instead of being returned to
    # the kernel (madvise), so that the next instance finds them mapped: no page faults, and no
    # TLB flush that interrupts the other cores. wasmtime memsets at most the memory's current
    # size, so a small guest pays only for what it has. 256 KiB holds the whole memory of a C
    # guest linked with a 64 KiB stack (wasi-sdk's default: stack, data and heap in 2-4 pages);
    # measured on such a hello against 64 KiB (bench_gateway --baseline, same run): 1.09x the
    # requests a second with the access log, 1.22x without. A guest whose used pages lie further
    # in (zig cc puts a 16 MiB stack first) pays the memset of 256 KiB it never touches (~2 µs).
    linear_memory_keep_resident: int = 256 * 1024
    table_keep_resident: int = 64 * 1024


_POOLING_SYMBOLS = (
    "wasmtime_pooling_allocation_config_new",
    "wasmtime_pooling_allocation_config_delete",
    "wasmtime_pooling_allocation_config_total_core_instances_set",
    "wasmtime_pooling_allocation_config_total_memories_set",
    "wasmtime_pooling_allocation_config_total_tables_set",
    "wasmtime_pooling_allocation_config_max_memory_size_set",
    "wasmtime_pooling_allocation_config_max_unused_warm_slots_set",
    "wasmtime_pooling_allocation_config_linear_memory_keep_resident_set",
    "wasmtime_pooling_allocation_config_table_keep_resident_set",
    "wasmtime_pooling_allocation_strategy_set",
)


def enable_pooling(config: wasmtime.Config, limits: PoolingLimits = PoolingLimits()) -> bool:
    """Switch ``config`` to the pooling instance allocator: instances and linear memories are
    taken from pre-reserved slots and recycled (copy-on-write data images stay mapped), instead of
    being mmap'ed and unmapped for every instance. Returns False if the binding lacks it."""
    if not _has(*_POOLING_SYMBOLS):
        return False
    assert _ffi is not None
    pool: Any = _ffi.wasmtime_pooling_allocation_config_new()
    try:
        _ffi.wasmtime_pooling_allocation_config_total_core_instances_set(
            pool, limits.total_core_instances
        )
        _ffi.wasmtime_pooling_allocation_config_total_memories_set(pool, limits.total_memories)
        _ffi.wasmtime_pooling_allocation_config_total_tables_set(pool, limits.total_tables)
        _ffi.wasmtime_pooling_allocation_config_max_memory_size_set(pool, limits.max_memory_size)
        _ffi.wasmtime_pooling_allocation_config_max_unused_warm_slots_set(
            pool, limits.max_unused_warm_slots
        )
        _ffi.wasmtime_pooling_allocation_config_linear_memory_keep_resident_set(
            pool, limits.linear_memory_keep_resident
        )
        _ffi.wasmtime_pooling_allocation_config_table_keep_resident_set(
            pool, limits.table_keep_resident
        )
        _ffi.wasmtime_pooling_allocation_strategy_set(config.ptr(), pool)
    finally:
        _ffi.wasmtime_pooling_allocation_config_delete(pool)
    return True


def set_stdin_bytes(wasi: wasmtime.WasiConfig, data: bytes) -> bool:
    """Give the guest ``data`` as stdin straight from memory (no file). False if unsupported."""
    if not _has("wasi_config_set_stdin_bytes", "wasm_byte_vec_new", "wasm_byte_vec_t"):
        return False
    _set_stdin_bytes(wasi.ptr(), data)
    return True


def _set_stdin_bytes(ptr: Any, data: bytes) -> None:
    assert _ffi is not None
    vec = _ffi.wasm_byte_vec_t()
    buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data) if data else None
    # The vector copies ``buf``; WASI then takes ownership of the vector's copy.
    _ffi.wasm_byte_vec_new(ctypes.byref(vec), len(data), buf)
    _ffi.wasi_config_set_stdin_bytes(ptr, ctypes.byref(vec))


def _c_strings(items: Sequence[bytes]) -> tuple[Any, ...]:
    """A ``char **`` over ``items`` and the objects that must stay alive while it is used: one
    buffer of NUL-terminated strings and an array of pointers into it (two allocations, where
    a ``c_char_p`` array converts every item on its own)."""
    joined = b"\0".join(items) + b"\0"
    if joined.count(0) != max(1, len(items)):
        raise wasmtime.WasmtimeError(_WASI_FAILURES["nul"])
    buf = ctypes.create_string_buffer(joined, len(joined))
    base = ctypes.addressof(buf)
    starts = array.array("Q", accumulate([len(i) + 1 for i in items], initial=base))
    if items:  # (an empty list still gets a valid, unread pointer: never NULL)
        starts.pop()
    return ctypes.cast(starts.buffer_info()[0], _CHAR_PP), buf, starts


@lru_cache(maxsize=256)
def _names(names: tuple[str, ...]) -> tuple[Any, ...]:
    # A route's requests mostly share one set of variable names: build their array once.
    return _c_strings([n.encode() for n in names])


def set_args_env(wasi: wasmtime.WasiConfig, argv: Sequence[str], env: Mapping[str, str]) -> bool:
    """Set the guest's argv and environment in two calls (the public setters cost ~2 µs per
    string). Strings are UTF-8, as the public setters encode them; a NUL in any of them is a
    ``WasmtimeError``. False if unsupported."""
    if not _has("wasi_config_set_argv", "wasi_config_set_env"):
        return False
    _set_args_env(wasi.ptr(), argv, env)
    return True


def _set_args_env(ptr: Any, argv: Sequence[str], env: Mapping[str, str]) -> None:
    assert _ffi is not None
    argv_p, *keep_argv = _c_strings([a.encode() for a in argv])
    if not _ffi.wasi_config_set_argv(ptr, len(argv), argv_p):
        raise wasmtime.WasmtimeError("failed to configure argv")
    names_p, *_ = _names(tuple(env))
    values_p, *keep_values = _c_strings([v.encode() for v in env.values()])
    if not _ffi.wasi_config_set_env(ptr, len(env), names_p, values_p):
        raise wasmtime.WasmtimeError("failed to configure environment variables")
    del keep_argv, keep_values  # the C side has copied the strings


_FILE_WASI_SYMBOLS = (
    "wasi_config_new",
    "wasi_config_delete",
    "wasi_config_set_argv",
    "wasi_config_set_env",
    "wasi_config_set_stdin_bytes",
    "wasi_config_set_stdout_file",
    "wasi_config_set_stderr_file",
    "wasm_byte_vec_new",
    "wasm_byte_vec_t",
    "wasmtime_context_set_wasi",
)


def set_file_wasi(
    store: wasmtime.Store,
    argv: Sequence[str] | None,
    env: Mapping[str, str] | None,
    stdin: bytes,
    stdout: bytes,
    stderr: bytes,
) -> bool:
    """Give ``store`` a WASI configuration with ``argv`` and ``env`` (None: none), ``stdin``
    from memory and stdout and stderr written to the files at the paths ``stdout`` and
    ``stderr``, and nothing else: what ``WasiConfig`` and ``Store.set_wasi`` do for a served
    request, straight through the C API (no configuration object, no path conversions; a few
    microseconds a request; empty ``stdin`` is left to WASI's default, which reads as the same
    end of file, checked in the tests). A file that cannot be opened is a ``WasmtimeError``, as
    the public setters raise. False if unsupported."""
    if not _has(*_FILE_WASI_SYMBOLS):
        return False
    assert _ffi is not None
    fast = native()
    if fast is not None:  # the same calls, made in C
        argv, env = _c_args(argv, env)
        code, error, _ = fast.wasi_files(store._context(), argv, env, (), stdin, stdout, stderr)
        if code:
            _raise_wasi_failure(fast.WASI_CODES[code], error, 0)
        return True
    if b"\0" in stdout or b"\0" in stderr:  # C would read a shorter path: refused, as in C
        raise wasmtime.WasmtimeError(_WASI_FAILURES["nul"])
    f = _ffi
    cfg = f.wasi_config_new()
    try:
        if argv is not None or env is not None:
            _set_args_env(cfg, argv or (), env or {})
        if stdin:  # none (a request without a body): WASI's own stdin reads as end of file
            _set_stdin_bytes(cfg, stdin)
        if not f.wasi_config_set_stdout_file(cfg, stdout):
            raise wasmtime.WasmtimeError("failed to set stdout file")
        if not f.wasi_config_set_stderr_file(cfg, stderr):
            raise wasmtime.WasmtimeError("failed to set stderr file")
    except BaseException:
        f.wasi_config_delete(cfg)
        raise
    error = f.wasmtime_context_set_wasi(store._context(), cfg)  # takes the configuration
    if error:
        raise wasmtime.WasmtimeError._from_ptr(error)
    return True


_WASI_FAILURES = {
    "nul": "argv, environment and file path strings cannot contain NUL",
    "argv": "failed to configure argv",
    "env": "failed to configure environment variables",
    "stdout": "failed to set stdout file",
    "stderr": "failed to set stderr file",
}


def _c_args(
    argv: Sequence[str] | None, env: Mapping[str, str] | None
) -> tuple[Sequence[str] | None, Mapping[str, str] | None]:
    """``argv`` and ``env`` in the shapes the extension reads (a list or tuple, a dict)."""
    if argv is not None and type(argv) not in (list, tuple):
        argv = list(argv)
    if env is not None and type(env) is not dict:
        env = dict(env)
    return argv, env


class PreopenFailed(wasmtime.WasmtimeError):
    """Directory ``index`` of a ``run_command``'s ``dirs`` could not be preopened (what
    ``WasiConfig.preopen_dir`` raises as a ``WasmtimeError``)."""

    def __init__(self, index: int) -> None:
        super().__init__("failed to add preopen dir")
        self.index = index


def _raise_wasi_failure(step: str, error: int, index: int) -> None:
    """Raise what the Python path raises where the C one failed at ``step`` (``index``: the
    directory, for a preopen)."""
    if step == "dir":
        raise PreopenFailed(index)
    if step == "set":
        raise wasmtime.WasmtimeError._from_ptr(_pointer(error, "wasmtime_error_t"))
    raise wasmtime.WasmtimeError(_WASI_FAILURES[step])


_STORE_SYMBOLS = (
    "wasmtime_store_new",
    "wasmtime_store_context",
    "wasmtime_store_limiter",
    "wasmtime_context_set_epoch_deadline",
)


def new_store(
    engine: wasmtime.Engine, epoch_deadline: int, memory_size: int | None
) -> wasmtime.Store | None:
    """``wasmtime.Store(engine)`` with ``set_epoch_deadline(epoch_deadline)`` and, unless
    ``memory_size`` is None, ``set_limits(memory_size=memory_size)``: the same store, made in
    four C calls without the binding's per-store type check and null-finalizer cast (half the
    cost). The store is an ordinary ``wasmtime.Store`` (freed the same way). None if
    unsupported."""
    if not _has(*_STORE_SYMBOLS) or not _store_private(engine):
        return None
    assert _ffi is not None
    f = _ffi
    ptr = f.wasmtime_store_new(engine.ptr(), None, _null_finalizer())
    store = _wrap_store(engine, ptr)
    f.wasmtime_context_set_epoch_deadline(store._context(), epoch_deadline)
    if memory_size is not None:
        f.wasmtime_store_limiter(ptr, memory_size, -1, -1, -1, -1)
    return store


def _wrap_store(engine: wasmtime.Engine, ptr: Any) -> wasmtime.Store:
    """An ordinary ``wasmtime.Store`` owning the C store ``ptr`` (freed the same way)."""
    store = object.__new__(wasmtime.Store)
    store._set_ptr(ptr)
    setattr(store, _STORE_CONTEXT, _ffi.wasmtime_store_context(ptr))
    store.engine = engine
    return store


_STORE_CONTEXT = "_Store__context"  # where Store keeps its context pointer (name-mangled)


@cache
def _store_private(engine: wasmtime.Engine) -> bool:
    """Whether ``Store`` still keeps its context where ``new_store`` puts it (asked once per
    engine: a store of the engine at hand is the probe)."""
    probe = wasmtime.Store(engine)
    try:
        return getattr(probe, _STORE_CONTEXT, None) is not None
    finally:
        probe.close()


@cache
def _null_finalizer() -> Any:
    return ctypes.cast(0, ctypes.CFUNCTYPE(None, ctypes.c_void_p))


_CALL_SYMBOLS = (
    "wasmtime_instance_export_get",
    "wasmtime_func_call",
    "wasmtime_extern_t",
    "wasm_trap_t",
    "WASMTIME_EXTERN_FUNC",
)


def call_export(store: wasmtime.Store, instance: wasmtime.Instance, name: str) -> bool:
    """Call the instance's export ``name`` with no arguments and no results, raising exactly
    what ``instance.exports(store)[name](store)`` raises (``Trap``, ``ExitTrap``,
    ``WasmtimeError``, a host function's exception), ``KeyError`` if there is no such function.
    Skips building the export map (~12 µs), the call's type checks and the binding's context
    manager. False if unsupported."""
    if _last_exception is None or not _has(*_CALL_SYMBOLS):
        return False
    assert _ffi is not None
    raw = name.encode()
    item = _ffi.wasmtime_extern_t()
    context = store._context()
    found = _ffi.wasmtime_instance_export_get(
        context, ctypes.byref(instance._instance), raw, len(raw), ctypes.byref(item)
    )
    if not found or item.kind != _ffi.WASMTIME_EXTERN_FUNC.value:
        raise KeyError(name)
    trap = _trap_pointer()()
    error = _ffi.wasmtime_func_call(
        context, ctypes.byref(item.of.func), None, 0, None, 0, ctypes.byref(trap)
    )
    if error or trap:
        _raise_failure(error, trap)
    return True


_INSTANTIATE_SYMBOLS = ("wasmtime_instance_pre_instantiate", "wasmtime_instance_t", "wasm_trap_t")


def instantiate(store: wasmtime.Store, pre: wasmtime.InstancePre) -> wasmtime.Instance | None:
    """``pre.instantiate(store)``, raising exactly what it raises, in one C call (the binding
    wraps it in a context manager: a generator and four Python calls). None if unsupported."""
    if _last_exception is None or not _has(*_INSTANTIATE_SYMBOLS):
        return None
    assert _ffi is not None
    raw = _ffi.wasmtime_instance_t()
    trap = _trap_pointer()()
    error = _ffi.wasmtime_instance_pre_instantiate(
        pre.ptr(), store._context(), ctypes.byref(raw), ctypes.byref(trap)
    )
    if error or trap:
        _raise_failure(error, trap)
    return wasmtime.Instance._from_raw(raw)


@cache
def _trap_pointer() -> Any:
    return ctypes.POINTER(_ffi.wasm_trap_t)


def _raise_failure(error: Any, trap: Any) -> None:
    """Raise what the binding's ``enter_wasm`` raises for a call that returned ``error`` or
    ``trap``: a host function's pending exception first (with the engine's error as its
    context), else the error (an ``ExitTrap`` for ``proc_exit``), else the trap."""
    try:
        if error:
            raise wasmtime.WasmtimeError._from_ptr(error)
        failure = wasmtime.Trap._from_ptr(trap)
        _last_exception()
        raise failure
    except wasmtime.WasmtimeError:
        _last_exception()
        raise


# The C functions a request calls that take microseconds, never block and never run wasm. The
# binding loads its library with ``ctypes.CDLL``, whose every call releases the GIL and takes it
# back: with a server's event loop and guest threads all wanting the GIL, each of the ~14 such
# calls per request is a chance to lose it to another thread (and wait up to the switch interval,
# 5 ms, to get it back). Calls that run guest code (``wasmtime_func_call``, instantiation, which
# runs start functions) or compile keep releasing it: they are where threads run in parallel.
QUICK_CALLS = (
    "wasmtime_store_new",
    "wasmtime_store_context",
    "wasmtime_store_limiter",
    "wasmtime_store_delete",
    "wasmtime_context_set_epoch_deadline",
    "wasmtime_context_set_fuel",
    "wasmtime_context_get_fuel",
    "wasmtime_context_set_wasi",
    "wasi_config_new",
    "wasi_config_delete",
    "wasi_config_set_argv",
    "wasi_config_set_env",
    "wasi_config_set_stdin_bytes",
    "wasi_config_set_stdin_file",
    "wasi_config_set_stdout_file",
    "wasi_config_set_stderr_file",
    "wasi_config_preopen_dir",
    "wasm_byte_vec_new",
    "wasm_byte_vec_delete",
    "wasmtime_instance_export_get",
    "wasmtime_instance_export_nth",
    "wasmtime_memory_data",
    "wasmtime_memory_data_size",
    "wasmtime_error_message",
    "wasmtime_error_exit_status",
    "wasmtime_error_delete",
    "wasm_trap_delete",
)

_held: list[str] = []


def hold_gil_in_quick_calls() -> list[str]:
    """Make the binding call the ``QUICK_CALLS`` without releasing the GIL (through a
    ``ctypes.PyDLL`` handle on the same library, with the same signatures). Idempotent; returns
    the names switched (those the binding has)."""
    return _hold_gil(QUICK_CALLS, _held)


def _hold_gil(names: Sequence[str], held_names: list[str]) -> list[str]:
    """Switch ``names`` to GIL-holding calls once; ``held_names`` records what was switched."""
    if held_names or _bindings is None or _ffi is None or not hasattr(_ffi, "dll"):
        return list(held_names)
    library = ctypes.PyDLL(_ffi.dll._name, handle=_ffi.dll._handle)
    for name in names:
        private = "_" + name
        released = getattr(_bindings, private, None)
        if released is None or not hasattr(library, name):
            continue
        held = getattr(library, name)
        held.argtypes = released.argtypes
        held.restype = released.restype
        setattr(_bindings, private, held)
        held_names.append(name)
    _c_function.cache_clear()  # hand out the switched ones from now on
    return list(held_names)


def caller_store_id(caller: wasmtime.Caller) -> int | None:
    """An identity for the store a host function was called from, stable for the store's life
    (its context pointer), or None where the binding does not expose it (then callers cache
    nothing per store)."""
    context = getattr(caller, "_context", None)
    if context is None:
        return None
    try:
        return ctypes.cast(context(), ctypes.c_void_p).value or None
    except Exception:  # pragma: no cover - binding layout changed
        return None


def interrupt_caller(caller: wasmtime.Caller) -> bool:
    """Set the calling store's epoch deadline to "now", so its guest stops at its next epoch
    check. False where the binding cannot (the store's own deadline still applies)."""
    if getattr(caller, "_context", None) is None:
        return False
    try:
        wasmtime.Store.set_epoch_deadline(cast(Any, caller), 0)
    except Exception:  # pragma: no cover - binding layout changed
        return False
    return True


# --- Component host functions without the binding's per-call reflection ---------------------
#
# The binding's ``LinkerInstance.add_func`` reflects the function's type on every call (a
# ``FuncType`` object, a ``ValType`` per parameter) and converts values through those objects:
# for the wasi:http hello that is most of a request's cost, and ``list<u8>`` goes byte by byte
# (~45 ms for 64 KiB). ``add_raw_func`` registers a callback that gets the raw value array, and
# ``raw_codec`` compiles, once per type, a lift (C value -> Python) and a lower (Python -> C
# value) for it. The Python shapes (shared with the public-API fallback in ``wasihttp/codec``):
#
#   bool, integers, floats, char, string, enum -> bool, int, float, str;  flags -> frozenset
#   list<u8> -> bytes;  list<T> -> list;  tuple -> tuple;  record -> dict by WIT field name
#   variant -> (case, payload);  result -> ("ok", v) / ("err", e);  option<T> -> None or T
#   own/borrow -> whatever ``ResourceBridge`` makes of the (rep, type) pair
#
# The callee does not own its arguments (wasmtime drops them after the call) and hands the
# results' memory to wasmtime (allocated with the C API's own constructors).

# Callable[[data, context_ptr, type_ptr, args_ptr, nargs, results_ptr, nresults], int]
RawCallback = Any
Lift = Any  # Callable[[context_ptr, wasmtime_component_val_t], Any]
Lower = Any  # Callable[[context_ptr, Any, wasmtime_component_val_t], None]

_RAW_FUNC_SYMBOLS = (
    "wasmtime_component_linker_instance_add_func",
    "wasmtime_component_func_callback_t",
    "wasmtime_component_val_t",
    "wasmtime_component_val_new",
    "wasmtime_component_vallist_new_uninit",
    "wasmtime_component_valrecord_new_uninit",
    "wasmtime_component_valtuple_new_uninit",
    "wasmtime_component_valflags_new_uninit",
    "wasmtime_component_resource_any_to_host",
    "wasmtime_component_resource_host_new",
    "wasmtime_component_resource_host_to_any",
    "wasmtime_component_resource_host_rep",
    "wasmtime_component_resource_host_delete",
    "wasm_byte_vec_new_uninitialized",
)


def raw_funcs_supported() -> bool:
    """Whether ``add_raw_func`` and ``raw_codec`` can work with this binding."""
    return _bindings is not None and _has(*_RAW_FUNC_SYMBOLS)


class ResourceBridge(abc.ABC):
    """How resources cross a raw host call; subclassed by the host that owns the tables."""

    def lift(self, rep: int, owned: bool) -> Any:
        return rep

    def lifter(self, owned: bool) -> Callable[[int], Any]:
        """``lift`` for one ownership, as a one-argument function (a codec calls it for every
        resource crossing; a subclass may return a leaner one)."""
        lift = self.lift
        return lambda rep: lift(rep, owned)

    @abc.abstractmethod
    def lower(self, value: Any) -> tuple[int, int]:
        """(rep, host resource type id) of a new own handle for ``value``."""


# The ctypes thunks must outlive the linker that calls them: each is kept here under a key the
# linker hands back to ``_finalize`` when it drops the definition (a reloaded route's linker).
_raw_callbacks: dict[int, Any] = {}
_raw_keys = itertools.count(1)


def _keep(cb: Any) -> int:
    key = next(_raw_keys)
    _raw_callbacks[key] = cb
    return key


def add_raw_func(instance: Any, name: str, callback: RawCallback) -> bool:
    """Define ``name`` in a ``component.LinkerInstance`` with a raw callback: ``callback(data,
    context, type, args, nargs, results, nresults)`` returns 0, or ``raw_trap(message)`` to
    make the call trap. It must never raise: ctypes would print the exception and report
    success, so the callback catches everything (as ``wasihttp.host`` builds its callbacks: the
    lifting, the call and the lowering in one frame, without a guard's frame per call). False
    if unsupported."""
    if not raw_funcs_supported():
        return False
    assert _ffi is not None
    cb = _ffi.wasmtime_component_func_callback_t(callback)
    key = _keep(cb)
    raw = name.encode()
    err = _ffi.wasmtime_component_linker_instance_add_func(
        instance.ptr(), ctypes.create_string_buffer(raw), len(raw), cb, key, _finalizer
    )
    if err:
        raise wasmtime.WasmtimeError._from_ptr(err)
    return True


def raw_trap(message: str) -> int:
    """What a raw callback returns to make its call trap with ``message`` (a new error the engine
    takes over)."""
    err = wasmtime.WasmtimeError(message)
    return ctypes.cast(err._consume(), ctypes.c_void_p).value or 0


def _finalize(key: int | None) -> None:
    _raw_callbacks.pop(key or 0, None)


_finalizer: Any = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(_finalize)


@cache
def _kind(name: str) -> int:
    return int(getattr(_ffi, "WASMTIME_COMPONENT_" + name).value)


def _new_bytes(data: bytes) -> Any:
    vec = _ffi.wasm_byte_vec_t()
    _ffi.wasm_byte_vec_new_uninitialized(ctypes.byref(vec), len(data))
    if data:
        ctypes.memmove(vec.data, data, len(data))
    return vec


_PyBUF_WRITE = 0x200


@cache
def _memory_view_function() -> Any:
    function = ctypes.pythonapi.PyMemoryView_FromMemory
    function.restype = ctypes.py_object
    function.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_int)
    return function


def _writable_memory(address: int, size: int) -> memoryview:
    """A writable byte view of ``size`` bytes of C memory at ``address`` (valid only while that
    memory is; released by the caller), made without a ctypes array type for the size."""
    view: memoryview = _memory_view_function()(address, size, _PyBUF_WRITE)
    return view


def _read_bytes(vec: Any) -> bytes:
    return ctypes.string_at(vec.data, vec.size) if vec.size else b""


def raw_codec(ty: Any, bridge: ResourceBridge) -> tuple[Lift, Lower]:
    """The (lift, lower) pair for the binding's ``component.ValType`` ``ty``."""
    from wasmtime import component as cm

    f = _ffi
    val_t = f.wasmtime_component_val_t
    byref = ctypes.byref
    scalars = {
        cm.Bool: ("BOOL", "boolean"),
        cm.S8: ("S8", "s8"),
        cm.U8: ("U8", "u8"),
        cm.S16: ("S16", "s16"),
        cm.U16: ("U16", "u16"),
        cm.S32: ("S32", "s32"),
        cm.U32: ("U32", "u32"),
        cm.S64: ("S64", "s64"),
        cm.U64: ("U64", "u64"),
        cm.F32: ("F32", "f32"),
        cm.F64: ("F64", "f64"),
    }
    spec = scalars.get(type(ty))
    if spec is not None:
        kind, field = _kind(spec[0]), spec[1]

        def lift_scalar(ctx: Any, v: Any) -> Any:
            return getattr(v.of, field)

        def lower_scalar(ctx: Any, value: Any, v: Any) -> None:
            v.kind = kind
            setattr(v.of, field, value)

        return lift_scalar, lower_scalar
    if isinstance(ty, cm.Char):
        k_char = _kind("CHAR")

        def lift_char(ctx: Any, v: Any) -> Any:
            return chr(v.of.character)

        def lower_char(ctx: Any, value: Any, v: Any) -> None:
            v.kind = k_char
            v.of.character = ord(value)

        return lift_char, lower_char
    if isinstance(ty, cm.String | cm.EnumType):
        is_enum = isinstance(ty, cm.EnumType)
        k_str = _kind("ENUM" if is_enum else "STRING")

        def lift_str(ctx: Any, v: Any) -> Any:
            return _read_bytes(v.of.enumeration if is_enum else v.of.string).decode()

        def lower_str(ctx: Any, value: Any, v: Any) -> None:
            v.kind = k_str
            if is_enum:
                v.of.enumeration = _new_bytes(value.encode())
            else:
                v.of.string = _new_bytes(value.encode())

        return lift_str, lower_str
    if isinstance(ty, cm.ListType):
        element = ty.element
        k_list = _kind("LIST")
        size = ctypes.sizeof(val_t)
        if isinstance(element, cm.U8):
            off = val_t.of.offset
            k_u8 = bytes([_kind("U8")])

            def lift_bytes(ctx: Any, v: Any) -> Any:
                n = v.of.list.size
                return ctypes.string_at(v.of.list.data, n * size)[off::size] if n else b""

            def lower_bytes(ctx: Any, value: Any, v: Any) -> None:
                n = len(value)
                raw = f.wasmtime_component_vallist_t()
                f.wasmtime_component_vallist_new_uninit(byref(raw), n)
                if n:  # each element's kind and byte, written in place (4x less than a copy)
                    at = ctypes.cast(raw.data, ctypes.c_void_p).value
                    assert at is not None  # the C API aborts rather than return no memory
                    elements = _writable_memory(at, n * size)
                    elements[0::size] = k_u8 * n
                    elements[off::size] = value
                    elements.release()
                v.kind = k_list
                v.of.list = raw

            return lift_bytes, lower_bytes
        e_lift, e_lower = raw_codec(element, bridge)

        def lift_list(ctx: Any, v: Any) -> Any:
            data = v.of.list.data
            return [e_lift(ctx, data[i]) for i in range(v.of.list.size)]

        def lower_list(ctx: Any, value: Any, v: Any) -> None:
            raw = f.wasmtime_component_vallist_t()
            f.wasmtime_component_vallist_new_uninit(byref(raw), len(value))
            _fill(raw, value, e_lower, ctx)
            v.kind = k_list
            v.of.list = raw

        return lift_list, lower_list
    if isinstance(ty, cm.TupleType):
        parts = [raw_codec(t, bridge) for t in ty.elements]
        k_tuple = _kind("TUPLE")

        def lift_tuple(ctx: Any, v: Any) -> Any:
            data = v.of.tuple.data
            return tuple(lift(ctx, data[i]) for i, (lift, _) in enumerate(parts))

        def lower_tuple(ctx: Any, value: Any, v: Any) -> None:
            raw = f.wasmtime_component_valtuple_t()
            f.wasmtime_component_valtuple_new_uninit(byref(raw), len(parts))
            data = raw.data
            for i, (_, lower) in enumerate(parts):
                data[i].kind = 0
                lower(ctx, value[i], data[i])
            v.kind = k_tuple
            v.of.tuple = raw

        return lift_tuple, lower_tuple
    if isinstance(ty, cm.RecordType):
        fields = [(n, *raw_codec(t, bridge)) for n, t in ty.fields]
        k_record = _kind("RECORD")

        def lift_record(ctx: Any, v: Any) -> Any:
            data = v.of.record.data
            return {name: lift(ctx, data[i].val) for i, (name, lift, _) in enumerate(fields)}

        def lower_record(ctx: Any, value: Any, v: Any) -> None:
            raw = f.wasmtime_component_valrecord_t()
            f.wasmtime_component_valrecord_new_uninit(byref(raw), len(fields))
            data = raw.data
            for i, (name, _, lower) in enumerate(fields):
                entry = data[i]
                entry.name = _new_bytes(name.encode())
                entry.val.kind = 0
                lower(ctx, value[name], entry.val)
            v.kind = k_record
            v.of.record = raw

        return lift_record, lower_record
    if isinstance(ty, cm.FlagsType):
        k_flags = _kind("FLAGS")

        def lift_flags(ctx: Any, v: Any) -> Any:
            data = v.of.flags.data
            return frozenset(_read_bytes(data[i]).decode() for i in range(v.of.flags.size))

        def lower_flags(ctx: Any, value: Any, v: Any) -> None:
            raw = f.wasmtime_component_valflags_t()
            names = sorted(value)
            f.wasmtime_component_valflags_new_uninit(byref(raw), len(names))
            for i, name in enumerate(names):
                raw.data[i] = _new_bytes(name.encode())
            v.kind = k_flags
            v.of.flags = raw

        return lift_flags, lower_flags
    if isinstance(ty, cm.OptionType):
        if isinstance(ty.payload, cm.OptionType):
            raise TypeError("option<option<T>> is not supported by raw_codec")
        p_lift, p_lower = raw_codec(ty.payload, bridge)
        k_option = _kind("OPTION")

        def lift_option(ctx: Any, v: Any) -> Any:
            p = v.of.option
            return p_lift(ctx, p.contents) if p else None

        def lower_option(ctx: Any, value: Any, v: Any) -> None:
            v.kind = k_option
            v.of.option = None if value is None else _boxed(ctx, value, p_lower)

        return lift_option, lower_option
    if isinstance(ty, cm.ResultType | cm.VariantType):
        is_result = isinstance(ty, cm.ResultType)
        cases: list[tuple[str, Any]] = (
            [("ok", ty.ok), ("err", ty.err)] if isinstance(ty, cm.ResultType) else ty.cases
        )
        codecs = {name: (None if t is None else raw_codec(t, bridge)) for name, t in cases}
        k_case = _kind("RESULT" if is_result else "VARIANT")

        def lift_case(ctx: Any, v: Any) -> Any:
            if is_result:
                tag = "ok" if v.of.result.is_ok else "err"
                p = v.of.result.val
            else:
                tag = _read_bytes(v.of.variant.discriminant).decode()
                p = v.of.variant.val
            codec = codecs[tag]
            return (tag, None if codec is None or not p else codec[0](ctx, p.contents))

        def lower_case(ctx: Any, value: Any, v: Any) -> None:
            tag, payload = value
            codec = codecs[tag]
            boxed = None if codec is None else _boxed(ctx, payload, codec[1])
            v.kind = k_case
            if is_result:
                v.of.result.is_ok = tag == "ok"
                v.of.result.val = boxed
            else:
                v.of.variant.discriminant = _new_bytes(tag.encode())
                v.of.variant.val = boxed

        return lift_case, lower_case
    if isinstance(ty, cm.OwnType | cm.BorrowType):
        k_res = _kind("RESOURCE")
        host_p = ctypes.POINTER(f.wasmtime_component_resource_host_t)
        lift_rep = bridge.lifter(isinstance(ty, cm.OwnType))
        # The ctypes functions themselves, not the binding's wrappers: a frame fewer for each
        # of the three calls every resource crossing makes (GIL-holding where switched so).
        any_to_host = _c_function("wasmtime_component_resource_any_to_host")
        host_rep = _c_function("wasmtime_component_resource_host_rep")
        host_delete = _c_function("wasmtime_component_resource_host_delete")

        def lift_resource(ctx: Any, v: Any) -> Any:
            host = host_p()
            err = any_to_host(ctx, v.of.resource, byref(host))
            if err:
                raise wasmtime.WasmtimeError._from_ptr(err)
            rep = host_rep(host)
            host_delete(host)
            return lift_rep(rep)

        def lower_resource(ctx: Any, value: Any, v: Any) -> None:
            rep, type_id = bridge.lower(value)
            v.kind = k_res
            v.of.resource = _owned_any(ctx, rep, type_id)

        return lift_resource, lower_resource
    raise TypeError(f"raw_codec: unsupported type {type(ty).__name__}")


# An owned host resource value is only its (rep, type) pair, which ``host_to_any`` reads and does
# not take: those of the low reps every request's table hands out again are made once and kept
# (a request lowers a handful; two C calls fewer each), the rest made and deleted per use.
_KEPT_HOSTS = 64
_hosts: dict[tuple[int, int], Any] = {}


def _owned_host(rep: int, type_id: int) -> Any:
    host = _hosts.get((rep, type_id))
    if host is None:
        host = _ffi.wasmtime_component_resource_host_new(True, rep, type_id)
        if rep < _KEPT_HOSTS:
            kept = _hosts.setdefault((rep, type_id), host)
            if kept is not host:  # another thread made it first
                _ffi.wasmtime_component_resource_host_delete(host)
            host = kept
    return host


@cache
def _any_pointer_type() -> Any:
    return ctypes.POINTER(_ffi.wasmtime_component_resource_any_t)


def _owned_any(context: Any, rep: int, type_id: int) -> Any:
    """A new ``resource_any`` owning host resource ``rep`` of type ``type_id`` in ``context``'s
    store (what the guest is handed)."""
    host = _owned_host(rep, type_id)
    out = _any_pointer_type()()
    err = _c_function("wasmtime_component_resource_host_to_any")(context, host, ctypes.byref(out))
    if rep >= _KEPT_HOSTS:
        _ffi.wasmtime_component_resource_host_delete(host)
    if err:
        raise wasmtime.WasmtimeError._from_ptr(err)
    return out


def _fill(raw: Any, items: Any, lower: Lower, ctx: Any) -> None:
    data = raw.data
    for i, item in enumerate(items):
        slot = data[i]
        slot.kind = 0
        lower(ctx, item, slot)


def _boxed(ctx: Any, value: Any, lower: Lower) -> Any:
    tmp = _ffi.wasmtime_component_val_t()
    lower(ctx, value, tmp)
    return _ffi.wasmtime_component_val_new(ctypes.byref(tmp))


# The component-value calls a wasi:http request makes dozens of times: like ``QUICK_CALLS``,
# they take microseconds, never block and never run wasm, so they keep the GIL.
COMPONENT_QUICK_CALLS = (
    "wasmtime_component_resource_any_to_host",
    "wasmtime_component_resource_host_new",
    "wasmtime_component_resource_host_to_any",
    "wasmtime_component_resource_host_rep",
    "wasmtime_component_resource_host_delete",
    "wasmtime_component_resource_any_delete",
    "wasmtime_component_vallist_new_uninit",
    "wasmtime_component_valrecord_new_uninit",
    "wasmtime_component_valtuple_new_uninit",
    "wasmtime_component_valflags_new_uninit",
    "wasmtime_component_val_new",
    "wasmtime_component_val_delete",
    "wasm_byte_vec_new_uninitialized",
    "wasmtime_component_instance_get_func",
)
_held_component: list[str] = []


def hold_gil_in_component_calls() -> list[str]:
    """``hold_gil_in_quick_calls`` for ``COMPONENT_QUICK_CALLS``. Instantiation is not among
    them: a component's start functions are guest code, which may run until its deadline.
    Idempotent; returns the names switched."""
    return _hold_gil(COMPONENT_QUICK_CALLS, _held_component)


def add_raw_resource(instance: Any, name: str, type_id: int, dropped: Any) -> bool:
    """Define host resource ``name`` (type ``ResourceType.host(type_id)``) in a
    ``component.LinkerInstance`` whose destructor calls ``dropped(rep)`` straight from the C
    callback (the binding's ``add_resource`` builds a store context object and an exception
    guard per drop). An exception from ``dropped`` is swallowed: a drop cannot fail. False if
    unsupported."""
    if not _has(
        "wasmtime_component_linker_instance_add_resource",
        "wasmtime_component_resource_destructor_t",
        "wasmtime_component_resource_type_new_host",
    ):
        return False

    def thunk(_data: Any, _context: Any, rep: int) -> int:
        with contextlib.suppress(BaseException):  # a drop cannot fail
            dropped(rep)
        return 0

    cb = _ffi.wasmtime_component_resource_destructor_t(thunk)
    _add_resource(instance, name, type_id, cb, _keep(cb), _finalizer)
    return True


def _add_resource(
    instance: Any, name: str, type_id: int, destructor: Any, data: int, finalizer: Any
) -> None:
    from wasmtime import component as cm

    ty = cm.ResourceType.host(type_id)  # alive through the call: it owns what ptr() gives
    raw = name.encode()
    err = _ffi.wasmtime_component_linker_instance_add_resource(
        instance.ptr(), ctypes.create_string_buffer(raw), len(raw), ty.ptr(),
        destructor, data, finalizer,
    )  # fmt: skip
    if err:
        raise wasmtime.WasmtimeError._from_ptr(err)


_HANDLER_CALL_SYMBOLS = (
    "wasmtime_component_instance_get_func",
    "wasmtime_component_func_call",
    "wasmtime_component_func_t",
    "wasmtime_component_resource_host_new",
    "wasmtime_component_resource_host_to_any",
    "wasmtime_component_resource_host_delete",
    "wasmtime_component_val_delete",
)


@cache
def _component_entry() -> tuple[Any, Any] | None:
    """The binding's component-call error path: (``WasmtimeError``, the function raising a
    host callback's pending exception), or None where its layout differs."""
    try:
        from wasmtime.component._enter import maybe_raise_last_exn
    except ImportError:  # pragma: no cover - binding layout changed
        return None
    return wasmtime.WasmtimeError, maybe_raise_last_exn


def call_with_own_resources(
    store: Any, instance: Any, index: Any, handles: Sequence[tuple[int, int]]
) -> bool:
    """Call the function export ``index`` of the component ``instance`` (no results) with new
    ``own`` host resources ``(rep, type_id)`` as its arguments, raising what ``func(store,
    *[ResourceHost.own(rep, ty) ...])`` raises (``func = instance.get_func(store, index)``),
    without the binding's wrappers or its per-call type reflection: the function looked up and
    called in two C calls. ``LookupError`` if the export is not a function. False if
    unsupported."""
    entry = _component_entry()
    if entry is None or not _has(*_HANDLER_CALL_SYMBOLS):
        return False
    error_type, raise_pending = entry
    f = _ffi
    byref = ctypes.byref
    context = store._context()
    func = f.wasmtime_component_func_t()
    if not f.wasmtime_component_instance_get_func(
        byref(instance._instance), context, index.ptr(), byref(func)
    ):
        raise LookupError("the component's export is not a function")
    n = len(handles)
    params = (f.wasmtime_component_val_t * n)()
    kind = _kind("RESOURCE")
    for i, (rep, type_id) in enumerate(handles):
        params[i].kind = kind
        params[i].of.resource = _owned_any(context, rep, type_id)
    try:
        error = f.wasmtime_component_func_call(byref(func), context, params, n, None, 0)
    finally:
        for i in range(n):
            f.wasmtime_component_val_delete(byref(params[i]))
    if error:  # as the binding's ``enter_wasm``: a host callback's exception comes first
        failure = error_type._from_ptr(error)
        raise_pending()
        raise failure
    return True


# --- the ``_crossing`` extension: the hot crossings between Python and the engine, in C ---------

NATIVE_VARIABLE = "WASMGATE_NATIVE"  # "0": stay on the pure-Python paths


def optional_extension(name: str) -> Any:
    """The optional C extension ``wasmgate.<name>``, or None: not built (no C compiler at
    install) or turned off (``WASMGATE_NATIVE=0``). Its callers keep a Python path for None."""
    if os.environ.get(NATIVE_VARIABLE, "1") == "0":
        return None
    try:
        return importlib.import_module("wasmgate." + name)
    except ImportError:
        return None


@cache
def native() -> Any:
    """The ``wasmgate._crossing`` extension, given this binding's engine functions, or None:
    not built, turned off (``optional_extension``), or written for a value layout other than
    this binding's. Callers keep their Python path for None."""
    module = optional_extension("_crossing") if _ffi is not None else None
    if module is None:
        return None
    if value_layout() != module.LAYOUT:
        return None
    addresses = tuple(function_address(name) for name in module.FUNCTIONS)
    kinds = tuple(value_kind(name) for name in module.KIND_NAMES)
    if None in addresses or None in kinds or not _has("WASMTIME_EXTERN_FUNC"):
        return None
    module.init(addresses, kinds, _ffi.WASMTIME_EXTERN_FUNC.value)
    return module


def function_address(name: str) -> int | None:
    """The address of the engine's C function ``name`` in the binding's own library, or None."""
    if _ffi is None:
        return None
    function = getattr(_ffi.dll, name, None)
    return None if function is None else ctypes.cast(function, ctypes.c_void_p).value


def engine_address(engine: wasmtime.Engine) -> int | None:
    """The address of ``engine``'s C object (what the engine's C functions take), or None."""
    if _ffi is None:
        return None
    return ctypes.cast(engine.ptr(), ctypes.c_void_p).value


def value_kind(name: str) -> int | None:
    """The C API's component value kind ``WASMTIME_COMPONENT_<name>``, or None."""
    if not _has("WASMTIME_COMPONENT_" + name):
        return None
    return _kind(name)


def value_layout() -> dict[str, int]:
    """Sizes and offsets of the C API's component value structures, as the binding lays them
    out (the keys of ``_crossing.LAYOUT``); empty if the binding has none."""
    if not _has(
        "wasmtime_component_val_t",
        "wasmtime_component_valrecord_entry",
        "wasmtime_instance_t",
        "wasmtime_extern_t",
    ):
        return {}
    f = _ffi
    val = f.wasmtime_component_val_t
    union = f.wasmtime_component_valunion
    entry = f.wasmtime_component_valrecord_entry
    return {
        "instance": ctypes.sizeof(f.wasmtime_instance_t),
        "func": ctypes.sizeof(f.wasmtime_func_t),
        "extern": ctypes.sizeof(f.wasmtime_extern_t),
        "extern.of": f.wasmtime_extern_t.of.offset,
        "val": ctypes.sizeof(val),
        "val.of": val.of.offset,
        "record_entry": ctypes.sizeof(entry),
        "record_entry.val": entry.val.offset,
        "variant.val": f.wasmtime_component_valvariant.val.offset + union.variant.offset,
        "result.val": f.wasmtime_component_valresult.val.offset + union.result.offset,
        "byte_vec": ctypes.sizeof(f.wasm_byte_vec_t),
        "list": ctypes.sizeof(f.wasmtime_component_vallist_t),
        "flags": ctypes.sizeof(f.wasmtime_component_valflags_t),
        "record": ctypes.sizeof(f.wasmtime_component_valrecord_t),
    }


_C_FUNC_SYMBOLS = (
    "wasmtime_component_linker_instance_add_func",
    "wasmtime_component_linker_instance_add_resource",
    "wasmtime_component_func_callback_t",
    "wasmtime_component_resource_destructor_t",
    "wasmtime_component_resource_type_new_host",
)


def c_funcs_supported() -> bool:
    """Whether ``add_c_func`` and ``add_c_resource`` can work with this binding."""
    return _has(*_C_FUNC_SYMBOLS)


@lru_cache(maxsize=8)
def _c_pointer(kind: str, address: int) -> Any:
    """A ctypes function pointer of the binding's ``kind`` at a C function's ``address``."""
    if kind == "release":
        return ctypes.CFUNCTYPE(None, ctypes.c_void_p)(address)
    return getattr(_ffi, kind)(address)


def add_c_func(instance: Any, name: str, callback: int, data: int, release: int) -> None:
    """Define ``name`` in a ``component.LinkerInstance`` as the C callback at ``callback`` with
    ``data``; the engine calls ``release(data)`` when it lets the definition go (not if this
    raises: the caller still owns ``data`` then)."""
    raw = name.encode()
    err = _ffi.wasmtime_component_linker_instance_add_func(
        instance.ptr(),
        ctypes.create_string_buffer(raw),
        len(raw),
        _c_pointer("wasmtime_component_func_callback_t", callback),
        data,
        _c_pointer("release", release),
    )
    if err:
        raise wasmtime.WasmtimeError._from_ptr(err)


def add_c_resource(
    instance: Any, name: str, type_id: int, destructor: int, data: int, release: int
) -> None:
    """Define host resource ``name`` (type ``ResourceType.host(type_id)``) whose destructor is
    the C callback at ``destructor`` with ``data`` (released as ``add_c_func``'s)."""
    callback = _c_pointer("wasmtime_component_resource_destructor_t", destructor)
    _add_resource(instance, name, type_id, callback, data, _c_pointer("release", release))


@dataclass(frozen=True, slots=True)
class CommandRun:
    """How ``run_command`` ended: ``failure`` the exception ``instantiate`` or ``call_export``
    raises for a trap or an engine error (None after a clean run), ``store`` the store (None
    after a clean run not asked to keep it), ``instance`` the instance (once instantiated, when
    the store is there)."""

    store: wasmtime.Store | None
    instance: wasmtime.Instance | None
    failure: wasmtime.WasmtimeError | wasmtime.Trap | None


def run_command(
    engine: wasmtime.Engine,
    pre: wasmtime.InstancePre,
    *,
    epoch_deadline: int,
    memory_size: int | None,
    fuel: int | None,
    argv: Sequence[str] | None,
    env: Mapping[str, str] | None,
    dirs: tuple[tuple[bytes, bytes, bool], ...],
    stdin: bytes,
    stdout: bytes,
    stderr: bytes,
    entries: Sequence[str],
    keep_store: bool,
) -> CommandRun | None:
    """``new_store`` (with ``set_fuel`` unless ``fuel`` is None), ``set_file_wasi`` (with the
    preopened ``dirs``: host path, guest path, writable, as ``WasiConfig.preopen_dir``), then
    ``instantiate`` and ``call_export`` of each entry in turn, in one C call (the ``_crossing``
    extension): the same C functions in the same order, the GIL released while guest code runs.
    Raises what those raise outside a run's own failure (a WASI configuration refused, a
    missing entry's ``KeyError``, a host function's exception); a trap or engine error of
    instantiation or of a call is returned. None if unsupported."""
    fast = native()
    if fast is None:
        return None
    argv, env = _c_args(argv, env)
    names = tuple(name.encode() for name in entries)
    phase, detail, error, trap, address, store_id, index = fast.run_command(
        engine.ptr(), pre.ptr(), epoch_deadline, memory_size, fuel,
        argv, env, dirs, stdin, stdout, stderr, names, keep_store,
    )  # fmt: skip
    step = fast.RUN_PHASES[phase]
    store = None if not address else _wrap_store(engine, _pointer(address, "wasmtime_store_t"))
    if step == "ok":
        return CommandRun(store, _instance(store_id, index) if store is not None else None, None)
    if step == "setup":
        raise wasmtime.WasmtimeError._from_ptr(_pointer(error, "wasmtime_error_t"))
    if step == "wasi":
        _raise_wasi_failure(fast.WASI_CODES[detail], error, index)
    if step == "missing":
        raise KeyError(entries[detail])
    instance = _instance(store_id, index) if step == "call" else None
    try:
        _raise_failure(_pointer(error, "wasmtime_error_t"), _pointer(trap, "wasm_trap_t"))
    except (wasmtime.WasmtimeError, wasmtime.Trap) as failure:
        return CommandRun(store, instance, failure)
    raise AssertionError("_raise_failure returned")  # pragma: no cover


def _pointer(address: int, type_name: str) -> Any:
    """A ctypes pointer to the binding's ``type_name`` at ``address`` (None for 0)."""
    if not address:
        return None
    return ctypes.cast(address, ctypes.POINTER(getattr(_ffi, type_name)))


def _instance(store_id: int, index: int) -> wasmtime.Instance:
    raw = _ffi.wasmtime_instance_t()
    raw.store_id = store_id
    setattr(raw, "__private", index)
    return wasmtime.Instance._from_raw(raw)
