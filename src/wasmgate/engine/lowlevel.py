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

import array
import ctypes
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate
from typing import Any, cast

import wasmtime

__all__ = [
    "QUICK_CALLS",
    "PoolingLimits",
    "call_export",
    "caller_store_id",
    "enable_pooling",
    "hold_gil_in_quick_calls",
    "interrupt_caller",
    "set_args_env",
    "set_stdin_bytes",
]

_CHAR_PP = ctypes.POINTER(ctypes.POINTER(ctypes.c_char))
_ffi: Any
_bindings: Any
_enter_wasm: Any
try:
    from wasmtime import (
        _bindings,
        _ffi,  # the ctypes layer (_bindings) plus its constants
    )
    from wasmtime._func import enter_wasm as _enter_wasm
except ImportError:  # pragma: no cover - binding layout changed
    _ffi = _bindings = _enter_wasm = None


def _has(*names: str) -> bool:
    return _ffi is not None and all(hasattr(_ffi, n) for n in names)


@dataclass(frozen=True, slots=True)
class PoolingLimits:
    """Sizes of the instance pool. Slots cost virtual address space only until used."""

    total_core_instances: int = 1000
    total_memories: int = 1000
    total_tables: int = 1000
    max_memory_size: int = 4 * 1024**3
    max_unused_warm_slots: int = 100
    # Bytes of a recycled memory/table slot reset with memset instead of being returned to the
    # kernel. Measured on a hello guest: 1 MiB costs ~9 µs per instance in memset; 64 KiB covers
    # the stack and static data of a small C guest and costs ~0.5 µs.
    linear_memory_keep_resident: int = 64 * 1024
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
    assert _ffi is not None
    vec = _ffi.wasm_byte_vec_t()
    buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data) if data else None
    # The vector copies ``buf``; WASI then takes ownership of the vector's copy.
    _ffi.wasm_byte_vec_new(ctypes.byref(vec), len(data), buf)
    _ffi.wasi_config_set_stdin_bytes(wasi.ptr(), ctypes.byref(vec))
    return True


def _c_strings(items: Sequence[bytes]) -> tuple[Any, ...]:
    """A ``char **`` over ``items`` and the objects that must stay alive while it is used: one
    buffer of NUL-terminated strings and an array of pointers into it (two allocations, where
    a ``c_char_p`` array converts every item on its own)."""
    joined = b"\0".join(items) + b"\0"
    if joined.count(0) != max(1, len(items)):
        raise wasmtime.WasmtimeError("argv and environment strings cannot contain NUL")
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
    assert _ffi is not None
    ptr = wasi.ptr()
    argv_p, *keep_argv = _c_strings([a.encode() for a in argv])
    if not _ffi.wasi_config_set_argv(ptr, len(argv), argv_p):
        raise wasmtime.WasmtimeError("failed to configure argv")
    names_p, *_ = _names(tuple(env))
    values_p, *keep_values = _c_strings([v.encode() for v in env.values()])
    if not _ffi.wasi_config_set_env(ptr, len(env), names_p, values_p):
        raise wasmtime.WasmtimeError("failed to configure environment variables")
    del keep_argv, keep_values  # the C side has copied the strings
    return True


_CALL_SYMBOLS = (
    "wasmtime_instance_export_get",
    "wasmtime_func_call",
    "wasmtime_extern_t",
    "WASMTIME_EXTERN_FUNC",
)


def call_export(store: wasmtime.Store, instance: wasmtime.Instance, name: str) -> bool:
    """Call the instance's export ``name`` with no arguments and no results, raising exactly
    what ``instance.exports(store)[name](store)`` raises (``Trap``, ``ExitTrap``,
    ``WasmtimeError``, a host function's exception), ``KeyError`` if there is no such function.
    Skips building the export map (~12 µs) and the call's type checks. False if unsupported."""
    if _enter_wasm is None or not _has(*_CALL_SYMBOLS):
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
    with _enter_wasm(store) as trap:
        error = _ffi.wasmtime_func_call(context, ctypes.byref(item.of.func), None, 0, None, 0, trap)
        if error:
            raise wasmtime.WasmtimeError._from_ptr(error)
    return True


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
    if _held or _bindings is None or _ffi is None or not hasattr(_ffi, "dll"):
        return list(_held)
    library = ctypes.PyDLL(_ffi.dll._name, handle=_ffi.dll._handle)
    for name in QUICK_CALLS:
        private = "_" + name
        released = getattr(_bindings, private, None)
        if released is None or not hasattr(library, name):
            continue
        held = getattr(library, name)
        held.argtypes = released.argtypes
        held.restype = released.restype
        setattr(_bindings, private, held)
        _held.append(name)
    return list(_held)


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
