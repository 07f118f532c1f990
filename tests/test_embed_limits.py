"""Limits and guest failures on embedded calls: per-call timeout and fuel, per-instance memory,
traps and exits mapped to the same errors (and wording) as the CLI."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

import wasmgate
from wasmgate import EngineSettings, GuestExit, GuestTrap, LimitExceeded, Limits, UsageError

Guest = Callable[[str], Path]


@pytest.fixture(scope="module")
def limits_wasm(guest: Guest) -> Path:
    return guest("embed_limits")


def test_timeout_stops_a_call_and_the_next_call_gets_a_fresh_deadline(limits_wasm: Path) -> None:
    inst = wasmgate.instantiate(limits_wasm, limits=Limits(timeout=0.2))
    started = time.monotonic()
    with pytest.raises(LimitExceeded) as err:
        inst.exports.spin()
    assert 0.15 < time.monotonic() - started < 2
    assert err.value.kind == "timeout"
    assert str(err.value) == "guest timed out after 200ms (wall clock)"
    assert err.value.exit_code == 124
    time.sleep(0.3)  # longer than the timeout: a deadline per instance would have passed
    assert inst.exports.count() == 1


def test_fuel_is_a_budget_per_call(limits_wasm: Path) -> None:
    inst = wasmgate.instantiate(limits_wasm, limits=Limits(fuel=20_000))
    assert inst.exports.burn(1000) == 1000
    used = inst.fuel_consumed
    assert used is not None
    assert 1000 < used < 20_000
    for _ in range(50):  # 50 calls use more than one budget in total
        assert inst.exports.burn(1000) == 1000
    with pytest.raises(LimitExceeded) as err:
        inst.exports.burn(1_000_000)
    assert err.value.kind == "fuel"
    assert str(err.value) == "guest ran out of fuel (20000 units)"
    assert inst.exports.burn(10) == 10  # refilled for the next call


def test_fuel_needs_a_fuel_metering_engine(limits_wasm: Path) -> None:
    plain = wasmgate.load(limits_wasm)
    with pytest.raises(UsageError, match="EngineSettings\\(consume_fuel=True\\)"):
        wasmgate.instantiate(plain, limits=Limits(fuel=100))
    metered = wasmgate.load(limits_wasm, settings=EngineSettings(consume_fuel=True))
    assert wasmgate.instantiate(metered, limits=Limits(fuel=10_000)).exports.burn(5) == 5
    assert wasmgate.instantiate(plain).fuel_consumed is None


def test_memory_limit_refuses_growth(limits_wasm: Path) -> None:
    inst = wasmgate.instantiate(limits_wasm, limits=Limits(max_memory=4 * 65536))
    assert inst.exports.grow(3) == 1
    assert inst.exports.grow(1) == -1  # past the cap: refused, as wasm reports it
    assert inst.memory.size == 4 * 65536


def test_failure_at_the_memory_cap_keeps_its_kind_and_gets_a_hint(limits_wasm: Path) -> None:
    inst = wasmgate.instantiate(limits_wasm, limits=Limits(max_memory=8 * 65536))
    with pytest.raises(GuestTrap) as err:
        inst.exports.grow_or_trap(100)
    assert err.value.kind == "wasm `unreachable` instruction executed"
    assert err.value.exit_code == 134
    assert err.value.hint == (
        "its linear memory was 64KiB, near its limit of 512KiB (Limits.max_memory): "
        "a refused memory.grow may be the cause"
    )
    inst.exports.grow(0)  # the instance is still usable, and a later trap is its own
    with pytest.raises(GuestTrap):
        inst.exports.grow_or_trap(100)


def test_initial_memory_over_the_limit() -> None:
    with pytest.raises(LimitExceeded) as err:
        wasmgate.instantiate("(module (memory 10))", limits=Limits(max_memory=65536))
    assert err.value.kind == "memory"


def test_trap_is_a_guest_trap_with_a_backtrace(limits_wasm: Path) -> None:
    inst = wasmgate.instantiate(limits_wasm)
    with pytest.raises(GuestTrap) as err:
        inst.exports.trap()
    assert err.value.kind == "integer divide by zero"
    assert str(err.value) == "guest trapped: integer divide by zero"
    assert err.value.exit_code == 134
    assert "<wasm function" in err.value.backtrace
    assert err.value.__notes__ == ["wasm backtrace:\n" + err.value.backtrace]
    assert inst.exports.count() == 1  # a core instance can still be called after a trap


def test_proc_exit(limits_wasm: Path) -> None:
    inst = wasmgate.instantiate(limits_wasm)
    with pytest.raises(GuestExit) as err:
        inst.exports.exit(3)
    assert err.value.code == 3
    assert inst.exports.exit(0) is None  # exit status 0 is success


def test_limits_apply_to_instantiation() -> None:
    with pytest.raises(LimitExceeded) as err:
        wasmgate.instantiate(
            "(module (func $s (loop $l (br $l))) (start $s))", limits=Limits(timeout=0.1)
        )
    assert err.value.kind == "timeout"
