"""Host calls bounded by the guest's deadline.

Epoch interruption only stops running wasm code; a guest blocked in ``poll_oneoff`` (``sleep``,
``nanosleep``, a timed ``poll``) is in the host, where nothing can interrupt it, so it could hold
its thread for as long as it asked (``sleep(1 << 62)``: forever, and a server could not even shut
down).

Rules:
- ``define_wasi`` defines WASI preview1 with a ``poll_oneoff`` that shortens every clock
  subscription to end at the deadline of the calling thread's current guest
  (``set_host_deadline``, which the sandbox calls for each new store and each armed call), then
  runs WASI's own ``poll_oneoff``. The guest's subscriptions are restored afterwards; a poll that
  ends before the deadline behaves exactly as WASI's.
- If a poll was shortened and the deadline has passed when it returns, the run has timed out:
  ``cut_off()`` says so until the next deadline is set, and the store's epoch deadline is moved to
  "now", so the guest stops at its next epoch check (a function entry or loop). A guest that
  returns (or exits) before any such check is still reported as timed out by the engine entry.
- Never raise from the host function: wasmtime-py hands a host function's exception to whichever
  thread next leaves wasm. Anything unexpected is an errno.
- Host calls written in Python (the WASI preview2 host, ``wasihttp``) wait through ``wait_until``
  and ``time_left``: the same deadline, the same ``cut_off``. A component's host function may
  raise (the binding turns it into a trap of that call), so they stop the guest at once.
"""

from __future__ import annotations

import struct
import threading
import time
from functools import partial
from typing import cast

import wasmtime

from .lowlevel import caller_store_id, interrupt_caller

__all__ = [
    "cut_off",
    "define_wasi",
    "host_deadline",
    "mark_cut_off",
    "set_host_deadline",
    "time_left",
    "wait_until",
]


_WASI = "wasi_snapshot_preview1"
# The real WASI functions look the caller's "memory" export up, so they cannot be called from
# Python directly: this shim (compiled once per engine, instantiated once per store, both at the
# first poll) exports the guest's memory and calls them from wasm.
_SHIM_WAT = """(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "guest" "memory" (memory 0))
  (export "memory" (memory 0))
  (func (export "poll") (param i32 i32 i32 i32) (result i32)
    (call $poll (local.get 0) (local.get 1) (local.get 2) (local.get 3)))
  (func (export "clock") (param i32 i64 i32) (result i32)
    (call $clock (local.get 0) (local.get 1) (local.get 2))))"""
_SUBSCRIPTION = 48  # sizeof(__wasi_subscription_t)
_EVENTTYPE_CLOCK = 0
_SUBCLOCKFLAGS_ABSTIME = 1
_ERRNO_INVAL = 28
_ERRNO_NOTSUP = 58
_MAX_SUBSCRIPTIONS = 65536


class _Shim:
    __slots__ = ("clock", "context", "memory", "poll")

    def __init__(
        self, context: int | None, instance: wasmtime.Instance, caller: wasmtime.Caller
    ) -> None:
        exports = instance.exports(caller)
        self.context = context
        self.poll = cast(wasmtime.Func, exports["poll"])
        self.clock = cast(wasmtime.Func, exports["clock"])
        self.memory = cast(wasmtime.Memory, exports["memory"])


class _HostState(threading.local):
    deadline: float | None = None
    shim: _Shim | None = None
    cut_off: bool = False


_host = _HostState()
_shim_modules: dict[int, wasmtime.Module] = {}
_shim_lock = threading.Lock()


def set_host_deadline(timeout: float | None) -> None:
    """The guest about to run on this thread must leave every host call within ``timeout``
    seconds from now (``None``: no deadline). Called for each new store and each armed call."""
    _host.deadline = None if timeout is None else time.monotonic() + timeout
    _host.shim = None
    _host.cut_off = False


def cut_off() -> bool:
    """Whether a host call of the guest now running on this thread was cut short at its deadline
    (then the run timed out, however the guest went on: it may well return at once)."""
    return _host.cut_off


def host_deadline() -> float | None:
    """When the host calls of the guest running on this thread must end (``time.monotonic()``
    seconds; None: no deadline)."""
    return _host.deadline


def time_left() -> float | None:
    """Seconds left before the deadline of the guest running on this thread (None: no deadline;
    never negative)."""
    deadline = _host.deadline
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def mark_cut_off() -> None:
    """A host call of the guest running on this thread ended at its deadline: it timed out."""
    _host.cut_off = True


def wait_until(when: float) -> bool:
    """Sleep until ``when`` (``time.monotonic()`` seconds) or the deadline of the guest running
    on this thread, whichever comes first; False (and ``cut_off()`` from then on) if the
    deadline came first."""
    deadline = _host.deadline
    cut = deadline is not None and when >= deadline
    if cut:
        assert deadline is not None
        when = deadline
    delay = when - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    if cut:
        _host.cut_off = True
    return not cut


def define_wasi(linker: wasmtime.Linker) -> None:
    """``linker.define_wasi()``, with ``poll_oneoff`` bounded by the guest's deadline."""
    linker.define_wasi()
    engine = linker.engine
    wasi = wasmtime.Linker(engine)
    wasi.define_wasi()
    i32 = wasmtime.ValType.i32()
    # A new FuncType each time: wasmtime panics if one is used with two engines.
    poll_type = wasmtime.FuncType([i32, i32, i32, i32], [i32])
    linker.allow_shadowing = True
    try:
        poll = partial(_bounded_poll_oneoff, wasi, engine)
        linker.define_func(_WASI, "poll_oneoff", poll_type, poll, access_caller=True)
    finally:
        linker.allow_shadowing = False


def _shim_module(engine: wasmtime.Engine) -> wasmtime.Module:
    """The shim compiled for ``engine``, once per process, at its first poll (compiling it costs
    more than many a whole run that never polls)."""
    module = _shim_modules.get(id(engine))
    if module is None:
        with _shim_lock:
            module = _shim_modules.get(id(engine))
            if module is None:
                module = _shim_modules[id(engine)] = wasmtime.Module(engine, _SHIM_WAT)
    return module


def _shim(caller: wasmtime.Caller, wasi: wasmtime.Linker, engine: wasmtime.Engine) -> _Shim | None:
    context = caller_store_id(caller)
    shim = _host.shim
    if shim is not None and context is not None and shim.context == context:
        return shim
    memory = caller.get("memory")
    if not isinstance(memory, wasmtime.Memory):
        return None
    imports = [wasi.get(caller, _WASI, "poll_oneoff"), wasi.get(caller, _WASI, "clock_time_get")]
    instance = wasmtime.Instance(caller, _shim_module(engine), [*imports, memory])
    shim = _host.shim = _Shim(context, instance, caller)
    return shim


def _bounded_poll_oneoff(
    wasi: wasmtime.Linker,
    engine: wasmtime.Engine,
    caller: wasmtime.Caller,
    in_ptr: int,
    out_ptr: int,
    nsubs: int,
    nevents_ptr: int,
) -> int:
    # Never raise: wasmtime-py hands a host function's exception to whichever thread next
    # leaves wasm. Anything unexpected is an errno; a passed deadline still stops the guest at
    # its next epoch check.
    try:
        shim = _shim(caller, wasi, engine)
        if shim is None:
            return _ERRNO_NOTSUP
        deadline = _host.deadline
        if deadline is None:
            return int(shim.poll(caller, in_ptr, out_ptr, nsubs, nevents_ptr))
        if nsubs > _MAX_SUBSCRIPTIONS:
            return _ERRNO_INVAL
        saved = _shorten_clocks(shim, caller, in_ptr, out_ptr, nsubs, deadline)
        try:
            result = int(shim.poll(caller, in_ptr, out_ptr, nsubs, nevents_ptr))
        finally:
            for offset, original in saved:
                shim.memory.write(caller, original, in_ptr + offset)
        if saved and time.monotonic() >= deadline:
            # Interrupt at the guest's next epoch check, as the deadline would have in wasm; a
            # guest that returns first still timed out (``cut_off``).
            _host.cut_off = True
            interrupt_caller(caller)
        return result
    except Exception:
        return _ERRNO_INVAL


def _shorten_clocks(
    shim: _Shim, caller: wasmtime.Caller, in_ptr: int, out_ptr: int, nsubs: int, deadline: float
) -> list[tuple[int, bytes]]:
    """Rewrite clock subscriptions ending after ``deadline`` into relative ones ending at it;
    return the original bytes of each rewritten subscription (offset, bytes)."""
    size = nsubs * _SUBSCRIPTION
    memory = shim.memory
    if nsubs <= 0 or in_ptr < 0 or in_ptr + size > memory.data_len(caller):
        return []  # WASI reports the bad arguments itself
    raw = bytes(memory.read(caller, in_ptr, in_ptr + size))
    left = max(0, int((deadline - time.monotonic()) * 1e9))
    saved: list[tuple[int, bytes]] = []
    for offset in range(0, size, _SUBSCRIPTION):
        if raw[offset + 8] != _EVENTTYPE_CLOCK:
            continue
        (clock_id,) = struct.unpack_from("<I", raw, offset + 16)
        (timeout,) = struct.unpack_from("<Q", raw, offset + 24)
        (flags,) = struct.unpack_from("<H", raw, offset + 40)
        if flags & _SUBCLOCKFLAGS_ABSTIME:
            now = _clock_now(shim, caller, clock_id, out_ptr)
            wait = left + 1 if now is None else max(0, timeout - now)
        else:
            wait = timeout
        if wait <= left:
            continue
        saved.append((offset, raw[offset : offset + _SUBSCRIPTION]))
        memory.write(caller, struct.pack("<Q", left), in_ptr + offset + 24)
        memory.write(
            caller, struct.pack("<H", flags & ~_SUBCLOCKFLAGS_ABSTIME), in_ptr + offset + 40
        )
    return saved


def _clock_now(shim: _Shim, caller: wasmtime.Caller, clock_id: int, scratch: int) -> int | None:
    """The guest's clock ``clock_id`` now, read into 8 bytes at ``scratch`` (the events buffer,
    which poll_oneoff overwrites anyway); None if it cannot be read."""
    if scratch % 8 or scratch < 0 or scratch + 8 > shim.memory.data_len(caller):
        return None
    if int(shim.clock(caller, clock_id, 1, scratch)) != 0:
        return None
    value: int = struct.unpack("<Q", bytes(shim.memory.read(caller, scratch, scratch + 8)))[0]
    return value
