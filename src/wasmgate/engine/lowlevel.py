"""The few engine features wasmtime-py 50 has in its C library but not in its Python API.

Rules:
- Each function here calls the binding's own ctypes layer (``wasmtime._bindings``), checks that
  the symbol exists, and returns False (or does nothing) when it does not: a new binding version
  may drop or rename these, and then wasmgate must get slower, never wrong. Callers always have a
  public-API fallback.
- Pinned to the binding: the package pins ``wasmtime==50.*``; ``tests/test_lowlevel.py`` checks
  each function against the public-API behaviour it replaces.
- Nothing else in wasmgate touches ``wasmtime._bindings``.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any

import wasmtime

__all__ = ["PoolingLimits", "enable_pooling", "set_stdin_bytes"]

_ffi: Any
try:
    from wasmtime import _bindings as _ffi
except ImportError:  # pragma: no cover - binding layout changed
    _ffi = None


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
    # kernel: cheap for the small heaps typical of per-request guests.
    linear_memory_keep_resident: int = 1024 * 1024
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
