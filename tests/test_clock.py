"""The process's clock (engine/clock.py): alarms, engines' epochs, idling and fork, the same on
the C clock and the Python one; and what it buys: short guests never wake the output pump."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
import wasmtime

from process_support import child_exit_code
from wasihttp_support import IN_CI
from wasmgate.engine import engine as engine_module
from wasmgate.engine.capture import ADOPT_AFTER, OutputPump
from wasmgate.engine.clock import IDLE_AFTER, TICK, Clock, PyClock, native_clock, process_clock
from wasmgate.engine.engine import EngineHandle, EngineSettings
from wasmgate.engine.sandbox import new_store
from wasmgate.limits import Limits

CLOCKS = ("c", "python")
LOOP = '(module (func (export "_start") (loop (br 0))))'


def _make(kind: str, tick: float = TICK) -> Clock:
    if kind == "python":
        return PyClock(tick)
    made = native_clock(tick)
    if made is None:
        message = "wasmgate._clock is not built (pip install -e . needs a C compiler)"
        if IN_CI:  # setup always builds it there: the C clock must not go untested
            pytest.fail(message)
        pytest.skip(message)
    return made


@pytest.fixture(params=CLOCKS)
def clock(request: pytest.FixtureRequest) -> Iterator[Clock]:
    made = _make(request.param)
    yield made
    made.close()


@pytest.fixture
def wake_pipe() -> Iterator[tuple[int, int]]:
    r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    yield r, w
    os.close(r)
    os.close(w)


def _bytes_in(fd: int) -> int:
    try:
        return len(os.read(fd, 4096))
    except BlockingIOError:
        return 0


def _wait_for(condition: Any, limit: float = 5.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "not within the limit"
        time.sleep(0.002)


def test_an_alarm_writes_one_byte_once_at_or_after_its_time(
    clock: Clock, wake_pipe: tuple[int, int]
) -> None:
    r, w = wake_pipe
    due = time.monotonic() + 0.05
    token = clock.alarm(w, due)
    assert clock.armed == 1
    _wait_for(lambda: clock.fired == 1)
    assert time.monotonic() >= due
    assert _bytes_in(r) == 1
    time.sleep(3 * TICK)
    assert _bytes_in(r) == 0  # once
    assert (clock.fired, clock.armed) == (1, 0)
    assert clock.cancel(token) is True  # it had fired
    assert clock.cancel(token) is False  # and is gone


def test_a_cancelled_alarm_never_fires(clock: Clock, wake_pipe: tuple[int, int]) -> None:
    r, w = wake_pipe
    token = clock.alarm(w, time.monotonic() + 2 * TICK)
    assert clock.cancel(token) is False
    time.sleep(6 * TICK)
    assert (_bytes_in(r), clock.fired, clock.armed) == (0, 0, 0)


def test_alarms_fire_in_any_order_of_setting_and_tokens_are_never_reused(
    clock: Clock, wake_pipe: tuple[int, int]
) -> None:
    r, w = wake_pipe
    now = time.monotonic()
    tokens = [clock.alarm(w, now + d) for d in (0.06, 0.02, 0.04)]
    kept = clock.alarm(w, now + 60)
    _wait_for(lambda: clock.fired == 3)
    assert _bytes_in(r) == 3
    seen = set(tokens) | {kept}
    for token in tokens:
        assert clock.cancel(token) is True
    for _ in range(200):  # freed slots are reused, tokens never
        token = clock.alarm(w, time.monotonic() + 60)
        assert token not in seen
        seen.add(token)
        clock.cancel(token)
    assert clock.armed == 1  # `kept`
    assert clock.cancel(kept) is False


def test_a_full_pipe_already_holds_a_wake_up(clock: Clock, wake_pipe: tuple[int, int]) -> None:
    _, w = wake_pipe
    while True:
        try:
            os.write(w, b"x" * 65536)
        except BlockingIOError:
            break
    token = clock.alarm(w, time.monotonic())
    _wait_for(lambda: clock.fired == 1)
    assert clock.cancel(token) is True
    assert clock.alarm(w, time.monotonic() + 60) > token  # the clock goes on


def test_an_idle_clock_never_wakes_and_an_alarm_rouses_it(
    clock: Clock, wake_pipe: tuple[int, int]
) -> None:
    r, w = wake_pipe
    time.sleep(0.1)
    idle = clock.wakeups
    assert idle <= 1  # made idle: no engines, no alarms
    time.sleep(0.2)
    assert clock.wakeups == idle
    started = time.monotonic()
    token = clock.alarm(w, started + 0.03)
    _wait_for(lambda: _bytes_in(r) == 1)
    assert time.monotonic() - started < 0.03 + 1.0  # woken at once, not at some later tick
    clock.cancel(token)
    busy = clock.wakeups
    assert busy > idle
    # Ticking for IDLE_AFTER after the last alarm, then idle again.
    time.sleep(IDLE_AFTER + 0.3)
    settled = clock.wakeups
    time.sleep(0.2)
    assert clock.wakeups == settled


def _engine() -> wasmtime.Engine:
    config = wasmtime.Config()
    config.epoch_interruption = True
    return wasmtime.Engine(config)


def test_an_engine_is_ticked_with_the_clock(clock: Clock) -> None:
    engine = _engine()
    index = clock.add_engine(engine)
    store = wasmtime.Store(engine)
    store.set_epoch_deadline(1000)
    module = wasmtime.Module(engine, LOOP)
    instance = wasmtime.Instance(store, module, [])
    started = time.monotonic()
    # Ten ticks from now, about 0.1 s: plus the ticks the epoch lags behind the clock, which a
    # late thread would add at once (as sandbox.new_store does).
    store.set_epoch_deadline(10 + clock.lag(index))
    with pytest.raises(wasmtime.Trap):
        instance.exports(store)["_start"](store)  # type: ignore[operator]
    took = time.monotonic() - started
    assert 8 * TICK <= took < 9 * TICK + 2.0  # a busy machine may be late, never early
    assert 0 <= clock.lag(index) <= 5
    with pytest.raises(IndexError):
        clock.lag(index + 1)


def test_an_engine_keeps_the_clock_awake(clock: Clock) -> None:
    clock.add_engine(_engine())
    time.sleep(0.1)
    before = clock.wakeups
    time.sleep(IDLE_AFTER + 0.2)
    assert clock.wakeups > before + 10  # still ticking: deadlines need it


@pytest.mark.parametrize("kind", CLOCKS)
def test_deadlines_hold_on_either_clock(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    made = _make(kind)
    monkeypatch.setattr(engine_module, "process_clock", lambda: made)
    handle = EngineHandle(EngineSettings())
    try:
        module = wasmtime.Module(handle.engine, LOOP)
        store = new_store(handle, Limits(timeout=0.2))
        instance = wasmtime.Instance(store, module, [])
        started = time.monotonic()
        with pytest.raises(wasmtime.Trap):
            instance.exports(store)["_start"](store)  # type: ignore[operator]
        assert 0.15 <= time.monotonic() - started < 2.0
        assert made.wakeups > 0
    finally:
        made.close()


@pytest.mark.parametrize("kind", CLOCKS)
def test_bad_arguments_and_a_closed_clock_are_refused(kind: str) -> None:
    with pytest.raises(ValueError, match="tick"):
        _make(kind, tick=0.0)
    with pytest.raises(ValueError, match="tick"):
        _make(kind, tick=120.0)
    made = _make(kind)
    with pytest.raises(ValueError, match="bad fd"):
        made.alarm(-1, time.monotonic())
    with pytest.raises(ValueError, match="due time"):
        made.alarm(1, float("nan"))
    made.close()
    made.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        made.alarm(1, time.monotonic())
    with pytest.raises(ValueError, match="closed"):
        made.add_engine(_engine())


@pytest.mark.parametrize("kind", CLOCKS)
def test_a_forked_child_refuses_the_parent_clock_and_gets_its_own(kind: str) -> None:
    parent = _make(kind)
    first = process_clock()
    r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # the child: report through the exit status only
        signal.alarm(10)
        ok = False
        try:
            try:
                parent.alarm(w, time.monotonic())
            except ValueError as e:
                refused = "another process" in str(e)
            else:
                refused = False
            own = process_clock()
            own.alarm(w, time.monotonic() + 0.02)
            deadline = time.monotonic() + 5
            while own.fired == 0 and time.monotonic() < deadline:
                time.sleep(0.005)
            ok = refused and own is not first and own.fired == 1 and os.read(r, 8) == b"\1"
            del parent  # freed without joining a thread that is not here
        finally:
            os._exit(0 if ok else 1)
    try:
        assert child_exit_code(pid) == 0
        assert process_clock() is first  # the parent's is untouched
        token = parent.alarm(w, time.monotonic())
        _wait_for(lambda: parent.fired == 1)
        parent.cancel(token)
    finally:
        parent.close()
        os.close(r)
        os.close(w)


def test_the_process_clock_is_the_c_one_where_built() -> None:
    expected = native_clock() is not None
    made = process_clock()
    assert isinstance(made, PyClock) is not expected
    if os.environ.get("WASMGATE_NATIVE") != "0" and IN_CI:
        assert expected  # CI builds the extension


def test_short_captures_never_wake_the_pump_thread() -> None:
    pump = OutputPump()
    first = pump.open(64)  # starts the pump thread
    os.write(os.open(first.path, os.O_WRONLY), b"x")
    assert first.finish() == b"x"
    time.sleep(3 * TICK)
    woken = pump.wakeups
    slow = 0  # captures not short after all (this process descheduled: a busy machine)
    until = time.monotonic() + 0.3
    while time.monotonic() < until:  # thirty ticks of a steady stream of short guests
        opened = time.monotonic()
        cap = pump.open(64)
        fd = os.open(cap.path, os.O_WRONLY)
        os.write(fd, b"quick")
        os.close(fd)
        assert cap.finish() == b"quick"
        slow += time.monotonic() - opened >= ADOPT_AFTER
    time.sleep(3 * TICK)
    assert pump.wakeups - woken <= slow  # the old pump woke every ADOPT_AFTER: about 30 times
    assert process_clock().armed == 0  # every alarm cancelled by finish()
