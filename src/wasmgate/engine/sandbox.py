"""The sandbox: the only module that builds a guest's store and its WASI configuration, so the
only place that grants a guest anything or applies its limits.

Rules:
- Start from an empty ``WasiConfig`` (wasmtime's default grants nothing: no env, no preopens,
  stdio closed) and add exactly what ``Capabilities`` lists. Nothing is inherited implicitly.
- Every store gets every limit at once (``new_store``): an epoch deadline (the real one, or
  ``NO_DEADLINE`` ticks: an engine with epoch interruption traps a store without one), fuel on a
  fuel-metering engine, the memory cap, and the deadline of its host calls on this thread
  (``deadline.set_host_deadline``). ``arm_call`` gives a long-lived store (the embedding API) the
  same allowance afresh before each call.
- WASI preview1 is always linked with the bounded host calls (``deadline.define_wasi``). A
  component gets WASI preview2 from its caller's host (``program``: wasmgate's own, in Python,
  whose waits end by the deadline; its store has no WASI configuration) or, when the caller
  brings none, Wasmtime's own preview2 configured here like preview1 (whose host calls the
  deadline cannot bound: see ``program``).
- In-memory stdin goes to WASI straight from memory where the binding allows it; otherwise it is
  staged in a file in the process's private directory, unlinked as soon as the store has opened
  it (when the configuration is set), so it never outlives the run on disk.
- A served request's shape (stdin bytes, stdout and stderr files) is set up and
  run in one C call where the ``_crossing`` extension is built (``run_command``): the same
  limits and grants as ``open_store`` (``_deadline_and_fuel`` is shared), the same engine calls
  in the same order, none of the Python objects around them.
- argv and the environment go to WASI in two calls where the binding allows it
  (``lowlevel.set_args_env``): a served request sets some thirty variables. A guest that cannot
  read them (a core module importing neither ``args_get`` nor ``environ_get``: wasi-libc links
  ``environ_get`` only when ``getenv`` or ``environ`` is used, and a ``main(void)`` never reads
  argv) gets neither (``open_store``'s ``args``/``env``): WASI would copy every string into
  every store for nothing, about a fifth of a WAGI hello's cost in process. Nothing it could
  observe differs.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import wasmtime

from ..capabilities import INHERIT, Capabilities, write_stream
from ..errors import UsageError
from ..limits import Limits
from . import lowlevel
from .capture import private_dir
from .deadline import define_wasi, set_host_deadline
from .engine import EPOCH_TICK, NO_DEADLINE, UNLIMITED_FUEL, EngineHandle
from .lowlevel import CommandRun, set_args_env, set_file_wasi, set_stdin_bytes
from .lowlevel import new_store as lowlevel_store

if TYPE_CHECKING:  # the component types load only when a component does (start-up)
    from wasmtime import component as cm

__all__ = [
    "arm_call",
    "component_linker",
    "core_linker",
    "deadline_ticks",
    "new_store",
    "open_store",
    "run_command",
]


def deadline_ticks(timeout: float) -> int:
    """Epoch ticks for ``timeout`` seconds. +1: the current tick may be about to end, so one tick
    of slack keeps the guest's full allowance; the deadline is then reached at most one tick
    late."""
    return max(1, math.ceil(timeout / EPOCH_TICK)) + 1


def new_store(
    engine: EngineHandle, limits: Limits, *, timeout: float | None = None
) -> wasmtime.Store:
    """A fresh store with ``limits`` applied (``timeout``, if given, replaces the limit's own:
    a caller's shorter budget)."""
    ticks, fuel = _deadline_and_fuel(engine, limits, timeout)
    store = lowlevel_store(engine.engine, ticks, limits.max_memory)
    if store is None:
        store = wasmtime.Store(engine.engine)
        store.set_epoch_deadline(ticks)
        if limits.max_memory is not None:
            store.set_limits(memory_size=limits.max_memory)
    if fuel is not None:
        store.set_fuel(fuel)
    return store


def _deadline_and_fuel(
    engine: EngineHandle, limits: Limits, timeout: float | None
) -> tuple[int, int | None]:
    """A new store's epoch deadline (in ticks) and fuel (None: the engine meters none), with the
    deadline of host calls on this thread set to match."""
    if timeout is None:
        timeout = limits.timeout
    set_host_deadline(timeout)
    ticks = NO_DEADLINE if timeout is None else deadline_ticks(timeout) + engine.ensure_ticker()
    if not engine.settings.consume_fuel:
        return ticks, None
    return ticks, limits.fuel if limits.fuel is not None else UNLIMITED_FUEL


def arm_call(
    store: wasmtime.Store, engine: EngineHandle, limits: Limits, *, host_calls: bool = True
) -> None:
    """Before each call into a long-lived store: a fresh deadline (for the wasm and, with
    ``host_calls``, for its host calls on this thread) and a full fuel budget."""
    timeout = limits.timeout
    if host_calls:
        set_host_deadline(timeout)
    if timeout is not None:
        lag = engine.ensure_ticker()
        store.set_epoch_deadline(deadline_ticks(timeout) + lag)
    if limits.fuel is not None:
        store.set_fuel(limits.fuel)


def open_store(
    engine: EngineHandle,
    caps: Capabilities,
    limits: Limits,
    *,
    timeout: float | None = None,
    args: bool = True,
    env: bool = True,
) -> wasmtime.Store:
    """``new_store`` with WASI granting exactly ``caps``; ``args``/``env`` False: the guest
    cannot read its argv/environment (it does not import the functions that would), so WASI
    is not given them."""
    store = new_store(engine, limits, timeout=timeout)
    staged = _set_wasi(store, caps, args, env)
    if staged is not None:
        with contextlib.suppress(OSError):
            os.unlink(staged)
    return store


def run_command(
    engine: EngineHandle,
    caps: Capabilities,
    limits: Limits,
    pre: wasmtime.InstancePre,
    entries: tuple[str, ...],
    *,
    timeout: float | None = None,
    args: bool = True,
    env: bool = True,
    keep_store: bool = False,
) -> CommandRun | None:
    """``open_store``, then an instance of ``pre`` and a call of each of ``entries``, in one C
    call where the binding allows it (``lowlevel.run_command``), for a served request's shape
    (stdin bytes, stdout and stderr files): the store gets exactly what ``open_store`` gives
    it. None otherwise: the caller opens the store and runs the usual way."""
    io = caps.stdio
    out, err, stdin = io.stdout, io.stderr, io.stdin
    if type(stdin) is not bytes or not isinstance(out, Path):
        return None
    if not isinstance(err, Path) or lowlevel.native() is None:
        return None
    dirs = tuple((str(g.host).encode(), g.guest.encode(), not g.read_only) for g in caps.dirs)
    ticks, fuel = _deadline_and_fuel(engine, limits, timeout)
    try:
        return lowlevel.run_command(
            engine.engine,
            pre,
            epoch_deadline=ticks,
            memory_size=limits.max_memory,
            fuel=fuel,
            argv=caps.args if args else None,
            env=_env_mapping(caps.env) if env else None,
            dirs=dirs,
            stdin=stdin,
            stdout=os.fsencode(out),
            stderr=os.fsencode(err),
            entries=entries,
            keep_store=keep_store,
        )
    except lowlevel.PreopenFailed as e:
        raise UsageError(f"cannot preopen directory {caps.dirs[e.index].host}") from None


def _set_wasi(store: wasmtime.Store, caps: Capabilities, args: bool, env: bool) -> str | None:
    """Configure WASI on ``store``; returns the path of a staged stdin file to remove, if any."""
    io = caps.stdio
    out, err, stdin = io.stdout, io.stderr, io.stdin
    if (  # a served request's shape: one call through the C API where the binding has it
        not caps.dirs
        and type(stdin) is bytes
        and isinstance(out, Path)
        and isinstance(err, Path)
        and set_file_wasi(
            store,
            caps.args if args else None,
            _env_mapping(caps.env) if env else None,
            stdin,
            os.fsencode(out),
            os.fsencode(err),
        )
    ):
        return None
    cfg = wasmtime.WasiConfig()
    if args or env:
        argv = caps.args if args else ()
        environ = _env_mapping(caps.env) if env else {}
        if not set_args_env(cfg, argv, environ):
            cfg.argv = list(argv)
            cfg.env = list(environ.items())
    for grant in caps.dirs:
        try:
            cfg.preopen_dir(str(grant.host), grant.guest, not grant.read_only)
        except wasmtime.WasmtimeError:
            raise UsageError(f"cannot preopen directory {grant.host}") from None
    staged = None
    if stdin is not None and not isinstance(stdin, bytes | str | Path):
        data = stdin.read()  # a file-like object: what it holds now is the guest's stdin
        stdin = data.encode() if isinstance(data, str) else bytes(data)
    if isinstance(stdin, bytes):
        if not set_stdin_bytes(cfg, stdin):
            staged = _stage(stdin)
            cfg.stdin_file = staged
    elif stdin == INHERIT:
        cfg.inherit_stdin()
    elif stdin is not None:
        try:
            cfg.stdin_file = stdin
        except wasmtime.WasmtimeError:
            raise UsageError(f"cannot open stdin file {stdin}") from None
    # Spelled out for both streams: a shared helper naming the setters by string cost the
    # gateway 2% of its time when every request came this way (measured with py-spy).
    if out is not None:
        if isinstance(out, str):  # INHERIT (CAPTURE became a Captured)
            cfg.inherit_stdout()
        elif isinstance(out, Path):
            cfg.stdout_file = out
        else:
            cfg.stdout_custom = _writer(out)
    if err is not None:
        if isinstance(err, str):
            cfg.inherit_stderr()
        elif isinstance(err, Path):
            cfg.stderr_file = err
        else:
            cfg.stderr_custom = _writer(err)
    try:
        store.set_wasi(cfg)
    except BaseException:
        if staged is not None:
            with contextlib.suppress(OSError):
                os.unlink(staged)
        raise
    return staged


def _env_mapping(env: tuple[tuple[str, str], ...] | Mapping[str, str]) -> Mapping[str, str]:
    if type(env) is dict or isinstance(env, Mapping):  # the first test is the cheap one
        return env
    return dict(env)


_EIO = 5


def _writer(stream: Any) -> Callable[[bytes], int | None]:
    """A WASI output callback writing to ``stream`` (binary, or text decoded as UTF-8). It never
    raises (the binding would print the error): a failed write is EIO to the guest."""

    def write(data: bytes) -> int | None:
        return None if write_stream(stream, data) else -_EIO

    return write


def _stage(data: bytes) -> str:
    """A private file holding ``data``; the caller unlinks it once WASI has opened it."""
    import tempfile  # here: most runs never need it (start-up time)

    fd, path = tempfile.mkstemp(prefix="wasmgate-stdin-", dir=private_dir())
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def core_linker(engine: EngineHandle) -> wasmtime.Linker:
    """A linker for core modules with WASI preview1 (host calls bounded by the deadline)."""
    linker = wasmtime.Linker(engine.engine)
    define_wasi(linker)
    return linker


def component_linker(engine: EngineHandle, *, wasip2: bool = True) -> cm.Linker:
    """A linker for components, with Wasmtime's WASI preview2 if ``wasip2`` (else empty: the
    caller's host links WASI)."""
    from wasmtime import component as cm

    linker = cm.Linker(engine.engine)
    if wasip2:
        linker.add_wasip2()
    return linker
