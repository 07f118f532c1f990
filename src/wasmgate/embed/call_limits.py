"""Limits around each embedded call, and the mapping of guest failures to wasmgate errors.

Rules:
- One store per instance. ``max_memory`` is a store limit, so it bounds the instance for its whole
  life (memory persists between calls). ``timeout`` and ``fuel`` are per call: before every call
  the store gets a fresh epoch deadline (``timeout`` from now) and its fuel is reset to the full
  ``fuel`` budget, so one slow call cannot starve the next and the budget is easy to reason about.
  Instantiation (start function, ``_initialize``) runs under the same per-call allowance.
- Arming costs one or two FFI calls and only when the limit is set; unlimited instances pay
  nothing per call (their store was given a deadline of centuries when it was created).
- A failure is classified by ``engine.outcome.classify_failure``, so the wording is the CLI's:
  ``GuestTrap``, ``LimitExceeded`` (timeout, fuel, memory) or ``GuestExit``. ``proc_exit(0)`` ends
  the call successfully with no result.
- An exception raised by a Python host function during the call is the failure: it is kept in
  ``pending`` by the host-function wrapper and re-raised as the very same object, after the wasm
  stack has unwound. It wins over whatever trap or error wasmtime reports for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import wasmtime

from ..engine.engine import EPOCH_TICK
from ..engine.outcome import classify_failure
from ..errors import WasmgateError
from ..limits import Limits

__all__ = ["CallGuard", "deadline_ticks"]


def deadline_ticks(timeout: float) -> int:
    """Epoch ticks for ``timeout`` seconds, with the same one tick of slack as ``new_store``."""
    return max(1, math.ceil(timeout / EPOCH_TICK)) + 1


class CallGuard:
    """State shared by every export of one store: its limits, and the pending host error."""

    __slots__ = ("_fuel", "_memory_size", "_store", "_ticks", "limits", "pending")

    def __init__(
        self,
        store: wasmtime.Store,
        limits: Limits,
        memory_size: Callable[[], int | None] = lambda: None,
    ) -> None:
        self._store = store
        self.limits = limits
        self._ticks = deadline_ticks(limits.timeout) if limits.timeout is not None else 0
        self._fuel = limits.fuel or 0
        self._memory_size = memory_size
        self.pending: BaseException | None = None

    def set_memory_probe(self, memory_size: Callable[[], int | None]) -> None:
        self._memory_size = memory_size

    def arm(self) -> None:
        """Give the next call its own deadline and fuel budget."""
        if self._ticks:
            self._store.set_epoch_deadline(self._ticks)
        if self._fuel:
            self._store.set_fuel(self._fuel)

    def fuel_consumed(self) -> int | None:
        """Fuel the last call burnt, or None without a fuel limit."""
        if not self._fuel:
            return None
        return self._fuel - self._store.get_fuel()

    def failure(self, err: wasmtime.WasmtimeError | wasmtime.Trap) -> BaseException | None:
        """The exception to raise for ``err`` (None: the guest exited with status 0)."""
        pending = self.take_pending()
        if pending is not None:
            return pending
        limits = self.limits
        outcome = classify_failure(
            err,
            timeout=limits.timeout,
            fuel=limits.fuel,
            max_memory=limits.max_memory,
            memory_size=self._memory_size(),
        )
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
