"""Host functions for tests/guests/embed_plugin.c, as `wasmgate call --host` loads them."""

from __future__ import annotations

import wasmgate

host = wasmgate.HostFunctions()


@host.function
def print_int(value: int) -> None:
    print("print_int", value, flush=True)


@host.function
def log(memory: wasmgate.GuestMemory, ptr: int, length: int) -> None:
    print("log", memory.read(ptr, length).decode(), flush=True)


@host.function
def fail(code: int) -> int:
    raise RuntimeError(f"guest asked to fail with {code}")
