"""A bounds-checked view of a guest's linear memory.

Rules:
- Every access is checked against the memory's size *at the time of the access* (memory can grow
  during any call): a range that is not entirely inside linear memory raises ``GuestMemoryError``
  naming the range and the size. Nothing is ever clipped, wrapped or partially read.
- Reads return copies (``bytes``); the host never keeps a pointer into guest memory, because a
  ``memory.grow`` may move it.
- A view is only as valid as the store context it was made with: the one handed to a host
  function (``GuestMemory`` parameter) is valid for that host call only.
"""

from __future__ import annotations

import ctypes
import struct
from typing import Any

import wasmtime

from ..errors import WasmgateError

__all__ = ["GuestMemory", "GuestMemoryError"]


class GuestMemoryError(WasmgateError):
    """Guest memory could not be accessed as asked: out of bounds, missing, or not valid text."""


class GuestMemory:
    """Read and write a guest's linear memory by address, with bounds checks."""

    __slots__ = ("_memory", "_store")

    def __init__(self, memory: wasmtime.Memory, store: wasmtime.Store | wasmtime.Caller) -> None:
        self._memory = memory
        self._store = store

    @classmethod
    def of_caller(cls, caller: wasmtime.Caller) -> GuestMemory:
        """The exported ``memory`` of the instance that called a host function."""
        mem = caller.get("memory")
        if not isinstance(mem, wasmtime.Memory):
            raise GuestMemoryError("the calling guest does not export a memory named 'memory'")
        return cls(mem, caller)

    @property
    def size(self) -> int:
        """Current size in bytes."""
        return self._memory.data_len(self._store)

    def _address(self, ptr: int, length: int) -> int:
        size = self._memory.data_len(self._store)
        if ptr < 0 or length < 0 or ptr + length > size:
            raise GuestMemoryError(
                f"guest memory access out of bounds: {length} bytes at 0x{ptr:x} "
                f"(memory is {size} bytes)"
            )
        base = ctypes.cast(self._memory.data_ptr(self._store), ctypes.c_void_p).value
        assert base is not None
        return base + ptr

    def read(self, ptr: int, length: int) -> bytes:
        """A copy of ``length`` bytes at ``ptr``."""
        address = self._address(ptr, length)
        return ctypes.string_at(address, length) if length else b""

    def write(self, ptr: int, data: bytes | bytearray | memoryview) -> None:
        """Copy ``data`` into guest memory at ``ptr``."""
        data = bytes(data)
        address = self._address(ptr, len(data))
        if data:
            ctypes.memmove(address, data, len(data))

    def read_str(self, ptr: int, length: int) -> str:
        """UTF-8 text of ``length`` bytes at ``ptr`` (invalid UTF-8 is an error, not replaced)."""
        raw = self.read(ptr, length)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise GuestMemoryError(
                f"guest string at 0x{ptr:x} is not valid UTF-8 (byte {e.start})"
            ) from None

    def unpack(self, fmt: str, ptr: int) -> tuple[Any, ...]:
        """``struct.unpack(fmt, ...)`` of the bytes at ``ptr`` (use ``<`` formats: wasm is LE)."""
        return struct.unpack(fmt, self.read(ptr, struct.calcsize(fmt)))

    def pack(self, ptr: int, fmt: str, *values: Any) -> None:
        """Write ``struct.pack(fmt, *values)`` at ``ptr``."""
        self.write(ptr, struct.pack(fmt, *values))
