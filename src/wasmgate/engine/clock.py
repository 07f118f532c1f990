"""The process's clock: one thread that advances the engines' epochs and fires alarms.

Two things need a wake-up on a fixed tick while guests run: every engine's epoch (a store's
deadline is counted in its ticks, ``engine.py``) and the output pump's adoption of a capture
still open after ``capture.ADOPT_AFTER`` (``capture.py``). One thread does both, so a process
wakes once a tick for all of them, and where the ``wasmgate._clock`` extension is built that
thread is C and never takes the GIL. That matters on a server: a Python thread's wake-up takes
the GIL from the thread running the event loop and the guests, a hand-off that waits until the
waking thread gets a core, so on a busy machine every wake-up could stall the whole worker.
Measured side by side on a served hello (``benchmarks/bench_gateway.py``) against the two
Python threads this replaces (an epoch ticker and the pump's own 10 ms timer): one worker
serves 1.13x the requests a second at 114 against 135 us of CPU each, p99 6.1 against 8.7 ms;
with two workers the difference is within the machine's noise (0.94x-1.08x).

Rules (both clocks keep them; the tests run each rule on both):
- ``add_engine(engine)`` ticks the engine's epoch once for every ``tick`` seconds of the
  monotonic clock since it was added, catching up after a late wake-up: the epoch follows the
  clock, not the number of wake-ups. ``lag(index)`` is how many ticks it is behind the clock
  now (a new deadline adds them, or the catching-up thread would end it that much early).
  Engines are never removed; the clock keeps them alive.
- ``alarm(fd, due)`` writes one byte to ``fd`` at the first tick at or after ``due`` (seconds of
  ``time.monotonic()``), once, unless ``cancel(token)`` came first; ``cancel`` says whether it
  had fired. ``fd`` is the caller's non-blocking wake-up pipe: a full pipe already holds a
  wake-up. Tokens are never reused.
- The thread ticks while the clock has engines, or alarms set, or had one set in the last
  ``IDLE_AFTER`` seconds; otherwise it waits without a timeout until the next alarm or engine.
  An idle process is never woken, and setting an alarm costs no system call.
- Fork: a clock belongs to the process that made it. In a forked child it refuses every call
  (``ValueError``) and ``process_clock()`` makes the child its own; the engines are added to it
  again as their stores need deadlines.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from functools import cache
from typing import Any, Protocol

import wasmtime

from . import lowlevel

__all__ = ["IDLE_AFTER", "TICK", "Clock", "PyClock", "native_clock", "process_clock"]

TICK = 0.01  # seconds: the epoch's resolution, and how often due alarms are looked for
IDLE_AFTER = 1.0  # seconds without alarms before an engine-less clock stops ticking


class Clock(Protocol):
    """What the engines and the output pump use (see the rules)."""

    @property
    def wakeups(self) -> int: ...
    @property
    def fired(self) -> int: ...
    @property
    def armed(self) -> int: ...
    def add_engine(self, engine: wasmtime.Engine) -> int: ...
    def lag(self, index: int, /) -> int: ...
    def alarm(self, fd: int, due: float, /) -> int: ...
    def cancel(self, token: int, /) -> bool: ...
    def close(self) -> None: ...


class PyClock:
    """The clock as a Python thread (no C compiler at install, or ``WASMGATE_NATIVE=0``)."""

    def __init__(self, tick: float = TICK) -> None:
        if not 1e-4 <= tick <= 60:
            raise ValueError("Clock: tick must be between 0.0001 and 60 seconds")
        self._tick = tick
        self._cond = threading.Condition(threading.Lock())
        self._engines: list[list[Any]] = []  # [engine, started, ticks]
        self._alarms: dict[int, list[Any]] = {}  # token -> [fd, due, fired]
        self._armed = 0
        self._sequence = 0
        self._last_alarm = -IDLE_AFTER  # long ago: the thread starts idle
        self._idle = False
        self._closing = False
        self._owner = os.getpid()
        self._wakeups = self._fired = 0
        self._thread = threading.Thread(target=self._run, name="wasmgate-clock", daemon=True)
        self._thread.start()

    @property
    def wakeups(self) -> int:
        return self._wakeups if self._owner == os.getpid() else 0

    @property
    def fired(self) -> int:
        return self._fired if self._owner == os.getpid() else 0

    @property
    def armed(self) -> int:
        return self._armed if self._owner == os.getpid() else 0

    def _usable(self) -> None:
        if self._owner != os.getpid():
            raise ValueError("a Clock of another process")
        if self._closing:
            raise ValueError("a closed Clock")

    def _rouse(self) -> None:
        if self._idle:
            self._idle = False
            self._cond.notify()

    def add_engine(self, engine: wasmtime.Engine) -> int:
        self._usable()
        with self._cond:
            self._engines.append([engine, time.monotonic(), 0])
            self._rouse()
            return len(self._engines) - 1

    def lag(self, index: int, /) -> int:
        self._usable()
        with self._cond:
            _, started, ticks = self._engines[index]
        return max(0, int((time.monotonic() - started) / self._tick) - int(ticks))

    def alarm(self, fd: int, due: float, /) -> int:
        self._usable()
        if fd < 0 or due != due:
            raise ValueError("alarm: a bad fd or due time")
        with self._cond:
            self._sequence += 1
            token = self._sequence
            self._alarms[token] = [fd, due, False]
            self._armed += 1
            self._last_alarm = time.monotonic()
            self._rouse()
        return token

    def cancel(self, token: int, /) -> bool:
        self._usable()
        with self._cond:
            entry = self._alarms.pop(token, None)
            if entry is None:
                return False
            if not entry[2]:
                self._armed -= 1
            return bool(entry[2])

    def close(self) -> None:
        if self._owner != os.getpid() or self._closing:
            return
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join()

    def _run(self) -> None:
        with self._cond:
            while not self._closing:
                self._wakeups += 1
                now = time.monotonic()
                for entry in self._engines:
                    due = int((now - entry[1]) / self._tick)
                    while entry[2] < due:
                        entry[0].increment_epoch()
                        entry[2] += 1
                if self._armed:
                    for alarm in self._alarms.values():
                        if not alarm[2] and alarm[1] <= now:
                            alarm[2] = True
                            self._armed -= 1
                            self._fired += 1
                            # Full (a wake-up is waiting already) or gone: nothing to do.
                            with contextlib.suppress(OSError):
                                os.write(alarm[0], b"\1")
                if not self._engines and not self._armed and now - self._last_alarm >= IDLE_AFTER:
                    self._idle = True
                    while self._idle and not self._closing:
                        self._cond.wait()
                    continue
                self._cond.wait(self._tick)


def native_clock(tick: float = TICK) -> Clock | None:
    """The clock in C (``wasmgate._clock``), or None: not built, turned off
    (``WASMGATE_NATIVE=0``), or a binding that gives no address to tick an engine by."""
    module = lowlevel.optional_extension("_clock")
    kind = None if module is None else _native_type(module)
    if kind is None:
        return None
    clock: Clock = kind(tick)
    return clock


@cache
def _native_type(module: Any) -> Any:
    """``module``'s ``Clock`` taking an engine in ``add_engine``, or None where the binding
    gives no address to tick an engine by."""
    increment = lowlevel.function_address("wasmtime_engine_increment_epoch")
    if increment is None:
        return None

    class NativeClock(module.Clock):  # type: ignore[misc]
        __slots__ = ()

        def add_engine(self, engine: wasmtime.Engine) -> int:
            address = lowlevel.engine_address(engine)
            if address is None:
                raise ValueError("add_engine: an engine without an address")
            return int(super().add_engine(increment, address, engine))

    return NativeClock


_process: list[Clock] = []  # this process's clock, made on first use
_process_lock = threading.Lock()


def process_clock() -> Clock:
    """This process's clock: in C where it can be, else in Python (see ``native_clock``)."""
    if _process:
        return _process[0]
    with _process_lock:
        if not _process:
            _process.append(native_clock() or PyClock())
    return _process[0]


def _after_fork_in_child() -> None:
    global _process_lock
    _process_lock = threading.Lock()
    _process.clear()  # the parent's clock refuses calls here; the child makes its own


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
