"""The process-wide wasmtime engines and the one epoch ticker each of them owns.

Rules:
- One ``wasmtime.Engine`` per distinct ``EngineSettings`` per process, created on first use and
  kept for the life of the process: compiled code is tied to the engine that compiled it, and an
  engine is expensive. In practice a process holds one or two (with and without fuel metering,
  because fuel metering costs every guest ~1.4x whether or not it has a budget).
- Every engine has epoch interruption enabled, so any store can be given a wall-clock deadline.
  A store on such an engine traps at once unless it has a deadline, so ``sandbox.new_store`` (the
  one place stores are made) always sets one: the real deadline, or ``NO_DEADLINE`` ticks.
- The ticker is ONE daemon thread per engine, started lazily the first time a store asks for a
  real deadline, advancing the epoch by one for every ``EPOCH_TICK`` seconds of wall clock
  (catching up after a late wake-up). Never a timer per call. The tick is 10 ms: a deadline
  stops its guest at most two ticks late (one of slack, ``sandbox.deadline_ticks``, one of
  resolution). Finer costs a busy server dearly: every wake-up takes the GIL from the thread
  running the event loop and guests (a hand-off of two context switches); at 5 ms the ticker cost
  6-14% of ``wasmgate serve``'s throughput (``bench_gateway.py``, same run).
  A forked child starts its own ticker (threads do not survive a fork). Compiling in a forked
  child can hang once the parent has compiled (wasmtime's compile threads do not survive it
  either): servers that fork should load guests after the fork, as ``wasmgate serve`` does by
  spawning its workers.
"""

from __future__ import annotations

import os
import platform
import threading
import time
import weakref
from dataclasses import dataclass

import wasmtime

from .._metadata import distribution_version
from .lowlevel import enable_pooling, hold_gil_in_quick_calls

__all__ = [
    "EPOCH_TICK",
    "NO_DEADLINE",
    "UNLIMITED_FUEL",
    "EngineHandle",
    "EngineSettings",
    "engine_version",
    "get_engine",
]

EPOCH_TICK = 0.01
NO_DEADLINE = 2**62
UNLIMITED_FUEL = 2**63 - 1


def engine_version() -> str:
    """The installed wasmtime-py version (read once per process, cheaply: it keys every cache)."""
    return distribution_version("wasmtime")


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """Engine-wide settings. Each distinct value gets its own engine (and cache namespace)."""

    consume_fuel: bool = False
    max_wasm_stack: int = 512 * 1024
    pooling: bool = False

    def fingerprint(self) -> str:
        """Identifies compiled-code compatibility: engine version, settings and the host CPU."""
        return (
            f"wasmtime-{engine_version()}|{platform.machine()}|{platform.system()}"
            f"|fuel={int(self.consume_fuel)}|epoch=1|stack={self.max_wasm_stack}"
            f"|pooling={int(self.pooling)}"
        )


class _EpochTicker:
    def __init__(self, engine: wasmtime.Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._started = time.monotonic()
        self._ticks = 0
        _tickers.add(self)

    def after_fork_in_child(self) -> None:
        # The thread did not survive the fork: the next deadline starts a new one.
        self._lock = threading.Lock()
        self._thread = None
        self._started = time.monotonic()
        self._ticks = 0

    def ensure_running(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                t = threading.Thread(target=self._run, name="wasmgate-epoch", daemon=True)
                t.start()
                self._thread = t

    def _run(self) -> None:
        # The epoch follows the clock, not the number of wake-ups: on a busy machine a sleep of
        # one tick can last many, and a deadline counted in wake-ups would stretch with them.
        engine = self._engine
        self._started = time.monotonic()
        while True:
            time.sleep(EPOCH_TICK)
            due = int((time.monotonic() - self._started) / EPOCH_TICK)
            while self._ticks < due:
                engine.increment_epoch()
                self._ticks += 1

    def lag(self) -> int:
        """Ticks the epoch is behind the clock now (the ticker has not run for a while): a new
        deadline adds them, or the catching-up ticker would end it that much early."""
        if self._thread is None:
            return 0
        return max(0, int((time.monotonic() - self._started) / EPOCH_TICK) - self._ticks)


_tickers: weakref.WeakSet[_EpochTicker] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for ticker in list(_tickers):
        ticker.after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class EngineHandle:
    """A wasmtime engine plus its settings and ticker; hands out stores with limits applied."""

    def __init__(self, settings: EngineSettings) -> None:
        hold_gil_in_quick_calls()  # once per process; see lowlevel.QUICK_CALLS
        cfg = wasmtime.Config()
        cfg.epoch_interruption = True
        cfg.consume_fuel = settings.consume_fuel
        cfg.max_wasm_stack = settings.max_wasm_stack
        cfg.wasm_component_model = True
        # A server creates an instance per request: the pooling allocator recycles instance and
        # memory slots instead of mapping and unmapping them each time.
        self.pooling = settings.pooling and enable_pooling(cfg)
        self.settings = settings
        self.engine = wasmtime.Engine(cfg)
        self.fingerprint = settings.fingerprint()
        self._ticker = _EpochTicker(self.engine)

    def ensure_ticker(self) -> int:
        """Start the epoch ticker if no store has needed a deadline yet; returns the ticks the
        epoch lags behind the clock (see ``_EpochTicker.lag``)."""
        ticker = self._ticker
        ticker.ensure_running()
        return ticker.lag()


_engines: dict[EngineSettings, EngineHandle] = {}
_engines_lock = threading.Lock()


def get_engine(settings: EngineSettings | None = None) -> EngineHandle:
    """The process-wide engine for ``settings`` (default: no fuel metering)."""
    settings = settings or EngineSettings()
    handle = _engines.get(settings)
    if handle is None:
        with _engines_lock:
            handle = _engines.get(settings)
            if handle is None:
                handle = _engines[settings] = EngineHandle(settings)
    return handle
