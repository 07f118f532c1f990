"""Limits around each embedded call, and the mapping of guest failures to wasmgate errors.

Rules:
- One store per instance, made by the engine entry (``Program.instantiate``) with the same
  limits as every face. ``max_memory`` is a store limit, so it bounds the instance for its whole
  life (memory persists between calls). ``timeout`` and ``fuel`` are per call: before every call
  the store gets a fresh deadline (``engine.arm_call``: for its wasm, and for its host calls if it
  imports WASI's ``poll_oneoff`` or wasmgate's WASI preview2 host) and its fuel is reset to the
  full ``fuel`` budget, so one slow call cannot starve the next and the budget is easy to reason
  about.
- A component linked with the WASI host has a ``session`` (the host's state for the instance's
  life: its resources, its granted stdio and folders); the caller makes it current around each
  call, and it says first what a trap raised by a host call stands for (``wasi:cli/exit``,
  a misuse of the interface, a failure of the host).
- Arming costs one or two FFI calls and only when the limit is set; unlimited instances pay
  nothing per call (their store was given a deadline of centuries when it was created).
- A failure is classified by ``engine.classify_failure``, so the wording, the exception and its
  ``hint`` are the CLI's: ``GuestTrap``, ``LimitExceeded`` (timeout, fuel, memory) or
  ``GuestExit``. ``proc_exit(0)`` ends the call successfully with no result. A call whose host
  call was cut off at the deadline is a timeout, however the guest went on.
- An exception raised by a Python host function during the call is the failure: it is kept in
  ``pending`` by the host-function wrapper and re-raised as the very same object, after the wasm
  stack has unwound. It wins over whatever trap or error wasmtime reports for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import wasmtime

from ..capabilities import Capabilities
from ..engine import (
    EngineHandle,
    Program,
    Session,
    arm_call,
    classify_failure,
    cut_off,
    timed_out,
)
from ..errors import WasmgateError
from ..limits import Limits

__all__ = ["CallGuard"]


class CallGuard:
    """State shared by every export of one store: its limits, and the pending host error."""

    __slots__ = (
        "_armed",
        "_engine",
        "_host_calls",
        "_memory_size",
        "_store",
        "limits",
        "pending",
        "session",
    )

    def __init__(self, engine: EngineHandle, limits: Limits, *, host_calls: bool) -> None:
        self._engine = engine
        self._store: wasmtime.Store | None = None
        self.limits = limits
        # Whether the guest can block in a host call that the deadline bounds (poll_oneoff).
        self._host_calls = host_calls
        self._armed = limits.timeout is not None or limits.fuel is not None or host_calls
        self._memory_size: Callable[[], int | None] = lambda: None
        self.pending: BaseException | None = None
        self.session: Session | None = None

    def start(self, program: Program, capabilities: Capabilities) -> tuple[wasmtime.Store, Any]:
        """Instantiate ``program`` through the engine entry under these limits and keep its
        store (and its host's session); a host function's exception raised meanwhile wins over
        the failure it caused."""
        session = program.session(capabilities)
        try:
            store, raw = program.instantiate(capabilities, self.limits, session=session)
        except BaseException as e:
            if session is not None:
                session.close()
            if not isinstance(e, WasmgateError):
                self.pending = None
                raise
            pending = self.take_pending()
            if pending is not None:
                raise pending from None
            raise
        self._store = store
        self.session = session
        return store, raw

    def set_memory_probe(self, memory_size: Callable[[], int | None]) -> None:
        self._memory_size = memory_size

    def arm(self) -> None:
        """Give the next call its own deadline and fuel budget."""
        if self._armed:
            assert self._store is not None
            arm_call(self._store, self._engine, self.limits, host_calls=self._host_calls)

    def fuel_consumed(self) -> int | None:
        """Fuel the last call burnt, or None without a fuel limit."""
        if self.limits.fuel is None or self._store is None:
            return None
        return self.limits.fuel - self._store.get_fuel()

    def finished(self) -> None:
        """After a call returned normally: raise if its deadline cut a host call short."""
        if self._host_calls and cut_off():
            error = timed_out(self.limits).error()
            assert error is not None
            raise error

    def failure(self, err: wasmtime.WasmtimeError | wasmtime.Trap) -> BaseException | None:
        """The exception to raise for ``err`` (None: the guest exited with status 0)."""
        pending = self.take_pending()
        session = self.session
        explained = None if session is None else session.outcome(err)
        if pending is not None:
            return pending
        outcome = explained or classify_failure(err, self.limits, memory_size=self._memory_size())
        if self._host_calls and outcome.status != "timeout" and cut_off():
            outcome = timed_out(self.limits)
        if outcome.ok:
            return None
        error = outcome.error()
        assert error is not None
        if outcome.status == "trap" and outcome.backtrace and isinstance(error, WasmgateError):
            error.add_note("wasm backtrace:\n" + outcome.backtrace)
        return error

    def take_pending(self) -> BaseException | None:
        pending, self.pending = self.pending, None
        return pending
