"""The process-wide wasmtime engines, their epochs ticked by the process's clock.

Rules:
- One ``wasmtime.Engine`` per distinct ``EngineSettings`` per process, created on first use and
  kept for the life of the process: compiled code is tied to the engine that compiled it, and an
  engine is expensive. In practice a process holds one or two (with and without fuel metering,
  because fuel metering costs every guest ~1.4x whether or not it has a budget).
- Every engine has epoch interruption enabled, so any store can be given a wall-clock deadline.
  A store on such an engine traps at once unless it has a deadline, so ``sandbox.new_store`` (the
  one place stores are made) always sets one: the real deadline, or ``NO_DEADLINE`` ticks.
- The epoch is ticked by the process's clock (``clock.py``: one thread for all engines, in C
  without the GIL where built), from the first time a store on the engine asks for a real
  deadline, by one for every ``EPOCH_TICK`` seconds of wall clock (catching up after a late
  wake-up). Never a timer per call. The tick is 10 ms: a deadline stops its guest at most two
  ticks late (one of slack, ``sandbox.deadline_ticks``, one of resolution). Finer costs a busy
  server: on the Python clock every wake-up takes the GIL from the thread running the event
  loop and guests; at 5 ms that cost 6-14% of ``wasmgate serve``'s throughput.
  A forked child ticks on a clock of its own (threads do not survive a fork). Compiling in a forked
  child can hang once the parent has compiled (wasmtime's compile threads do not survive it
  either): servers that fork should load guests after the fork, as ``wasmgate serve`` does by
  spawning its workers.
"""

from __future__ import annotations

import os
import platform
import threading
from dataclasses import dataclass

import wasmtime

from .._metadata import distribution_version
from .clock import TICK, Clock, process_clock
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

EPOCH_TICK = TICK
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


def _after_fork_in_child() -> None:
    for handle in list(_engines.values()):
        handle.after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class EngineHandle:
    """A wasmtime engine plus its settings and epoch; hands out stores with limits applied."""

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
        self._clock: Clock | None = None  # ticking this engine, from its first deadline on
        self._index = 0
        self._lock = threading.Lock()

    def after_fork_in_child(self) -> None:
        # The parent's clock does not tick here: the next deadline adds the engine to the
        # child's own.
        self._lock = threading.Lock()
        self._clock = None

    def ensure_ticker(self) -> int:
        """Have the process's clock tick this engine if no store has needed a deadline yet;
        returns the ticks the epoch lags behind the clock (see ``clock.Clock.lag``)."""
        clock = self._clock
        if clock is None:
            with self._lock:
                if self._clock is None:
                    clock = process_clock()
                    self._index = clock.add_engine(self.engine)
                    self._clock = clock
            clock = self._clock
        return clock.lag(self._index)


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
