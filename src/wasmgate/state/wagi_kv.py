"""The ``wasmgate_kv`` host module: key-value stores for WAGI (core module) guests.

ABI
- Five functions under the import module ``wasmgate_kv``. Pointers and lengths are ``i32`` read
  as unsigned 32-bit; ``delta`` is an ``i64``; every function returns one ``i32`` code
  (``KvCode``). Strings (store label, key) are UTF-8; integers in memory are little-endian::

    get(store_ptr, store_len, key_ptr, key_len, buf_ptr, buf_len, len_out_ptr) -> code
    set(store_ptr, store_len, key_ptr, key_len, value_ptr, value_len) -> code
    delete(store_ptr, store_len, key_ptr, key_len) -> code
    exists(store_ptr, store_len, key_ptr, key_len, out_ptr) -> code     (u32 1 or 0 at out_ptr)
    increment(store_ptr, store_len, key_ptr, key_len, delta, out_ptr) -> code  (i64 at out_ptr)

- ``get`` of an absent key is ``NOT_FOUND`` and writes nothing. A value longer than ``buf_len``
  is ``BUFFER_TOO_SMALL`` and writes only its length (u32 at ``len_out_ptr``), so the guest can
  retry with a buffer that size; otherwise the value is copied to ``buf_ptr`` and its length
  written.
- Codes: 0 ok; 1 no-such-store and 2 access-denied (the grants of ``state.grants``: a label not in
  the route's ``key_value_stores`` is 2); 3 not found; 4 buffer too small; 5 memory (no ``memory``
  export, or a range outside it); 6 a label or key that is not UTF-8; 7 store error (a limit of
  the store, a value ``increment`` cannot read as an integer, a backend that is down: the
  host's log has the reason, never a value); 8 unexpected host failure (logged).
- No Python exception ever reaches the engine: every failure is a code, never a trap. The route's
  grants come from the ``RouteState`` made current for the run (``grants.active``).
"""

from __future__ import annotations

import enum
import logging
import struct
from collections.abc import Callable

import wasmtime

from .backends import Backend, StoreError
from .grants import current

__all__ = ["IMPORT_MODULE", "KvCode", "define_wagi_kv"]

IMPORT_MODULE = "wasmgate_kv"
_log = logging.getLogger(__name__)
_U32 = 0xFFFFFFFF


class KvCode(enum.IntEnum):
    OK = 0
    NO_SUCH_STORE = 1
    ACCESS_DENIED = 2
    NOT_FOUND = 3
    BUFFER_TOO_SMALL = 4
    MEMORY = 5
    UTF8 = 6
    STORE_ERROR = 7
    RUNTIME_ERROR = 8


class _Fault(Exception):
    def __init__(self, code: KvCode, detail: str = "") -> None:
        super().__init__(detail)
        self.code = code


class _Memory:
    def __init__(self, caller: wasmtime.Caller) -> None:
        memory = caller.get("memory")
        if not isinstance(memory, wasmtime.Memory):
            raise _Fault(KvCode.MEMORY, "the guest exports no memory named 'memory'")
        self.caller = caller
        self.memory = memory

    def read(self, ptr: int, length: int) -> bytes:
        end = ptr + length
        if end > int(self.memory.data_len(self.caller)):
            raise _Fault(KvCode.MEMORY, "input outside memory")
        return bytes(self.memory.read(self.caller, ptr, end))

    def text(self, ptr: int, length: int) -> str:
        try:
            return self.read(ptr, length).decode("utf-8")
        except UnicodeDecodeError:
            raise _Fault(KvCode.UTF8, "a label or key is not UTF-8") from None

    def write(self, ptr: int, data: bytes) -> None:
        if ptr + len(data) > int(self.memory.data_len(self.caller)):
            raise _Fault(KvCode.MEMORY, "output outside memory")
        if data:
            self.memory.write(self.caller, data, ptr)


def _store(mem: _Memory, store_ptr: int, store_len: int) -> Backend:
    label = mem.text(store_ptr, store_len)
    return current().open(label)


def _get(
    mem: _Memory, sp: int, sl: int, kp: int, kl: int, buf: int, buf_len: int, len_out: int
) -> None:
    store = _store(mem, sp, sl)
    value = store.get(mem.text(kp, kl))
    if value is None:
        raise _Fault(KvCode.NOT_FOUND)
    if len(value) > buf_len:
        mem.write(len_out, struct.pack("<I", len(value)))
        raise _Fault(KvCode.BUFFER_TOO_SMALL)
    mem.write(buf, value)
    mem.write(len_out, struct.pack("<I", len(value)))


def _set(mem: _Memory, sp: int, sl: int, kp: int, kl: int, vp: int, vl: int) -> None:
    store = _store(mem, sp, sl)
    store.set(mem.text(kp, kl), mem.read(vp, vl))


def _delete(mem: _Memory, sp: int, sl: int, kp: int, kl: int) -> None:
    _store(mem, sp, sl).delete(mem.text(kp, kl))


def _exists(mem: _Memory, sp: int, sl: int, kp: int, kl: int, out: int) -> None:
    found = _store(mem, sp, sl).exists(mem.text(kp, kl))
    mem.write(out, struct.pack("<I", 1 if found else 0))


def _increment(mem: _Memory, sp: int, sl: int, kp: int, kl: int, delta: int, out: int) -> None:
    value = _store(mem, sp, sl).increment(mem.text(kp, kl), delta)
    mem.write(out, struct.pack("<q", value))


_I32 = wasmtime.ValType.i32()
_I64 = wasmtime.ValType.i64()
_FUNCTIONS: tuple[tuple[str, list[wasmtime.ValType], Callable[..., None]], ...] = (
    ("get", [_I32] * 7, _get),
    ("set", [_I32] * 6, _set),
    ("delete", [_I32] * 4, _delete),
    ("exists", [_I32] * 5, _exists),
    ("increment", [_I32] * 4 + [_I64, _I32], _increment),
)
_KINDS = {
    "no-such-store": KvCode.NO_SUCH_STORE,
    "access-denied": KvCode.ACCESS_DENIED,
    "other": KvCode.STORE_ERROR,
}


def define_wagi_kv(linker: wasmtime.Linker) -> None:
    """Define the ``wasmgate_kv`` functions on ``linker`` (once per linker)."""
    for name, params, impl in _FUNCTIONS:
        func_type = wasmtime.FuncType(params, [_I32])
        linker.define_func(
            IMPORT_MODULE, name, func_type, _guarded(name, impl, params), access_caller=True
        )


def _guarded(
    name: str, impl: Callable[..., None], params: list[wasmtime.ValType]
) -> Callable[..., int]:
    unsigned = [str(p) == str(_I32) for p in params]

    def host_function(caller: wasmtime.Caller, *args: int) -> int:
        try:
            mem = _Memory(caller)
            impl(mem, *(a & _U32 if u else a for a, u in zip(args, unsigned, strict=True)))
        except _Fault as fault:
            return int(fault.code)
        except StoreError as e:
            if e.kind == "other":
                _log.warning("%s.%s: %s", IMPORT_MODULE, name, e.message)
            return int(_KINDS[e.kind])
        except Exception:
            _log.exception("%s.%s failed unexpectedly", IMPORT_MODULE, name)
            return int(KvCode.RUNTIME_ERROR)
        return int(KvCode.OK)

    host_function.__name__ = f"{IMPORT_MODULE}_{name}"
    return host_function
