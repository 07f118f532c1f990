"""Host functions for core modules: the env.print_int seed example, type hints, the caller's
memory, exceptions crossing the guest unchanged, and the full list of missing imports."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import wasmtime
from guestbuild import build

import wasmgate
from conftest import GUESTS
from wasmgate import GuestMemory, HostFunctions, MissingImports, UsageError, f32, f64, i32, i64

Guest = Callable[[str], Path]


@pytest.fixture(scope="module")
def plugin_wasm() -> Path:
    return build(GUESTS / "embed_plugin.c", ["-mexec-model=reactor"])


class Boom(Exception):
    pass


def make_host(received: list[object], fail: Callable[[int], int] | None = None) -> HostFunctions:
    host = HostFunctions()

    @host.function("env", "print_int")
    def record(value: int) -> None:
        received.append(value)

    @host.function
    def log(memory: GuestMemory, ptr: int, length: int) -> None:
        received.append(memory.read_str(ptr, length))

    host.add("env", "fail", fail or (lambda code: code), params=[int], results=[int])
    return host


def test_seed_example_guest_calls_env_print_int(plugin_wasm: Path) -> None:
    received: list[object] = []
    inst = wasmgate.instantiate(plugin_wasm, imports=make_host(received))
    assert inst.exports.count(5) == 15
    assert received == [1, 2, 3, 4, 5]


def test_host_function_reads_the_callers_memory(plugin_wasm: Path) -> None:
    received: list[object] = []
    inst = wasmgate.instantiate(plugin_wasm, imports=make_host(received))
    inst.exports.log_message()
    assert received == ["hello from the guest"]


def test_host_function_result_reaches_the_guest(plugin_wasm: Path) -> None:
    inst = wasmgate.instantiate(plugin_wasm, imports=make_host([], fail=lambda c: c * 100))
    assert inst.exports.call_fail(4) == 401


def test_exception_reaches_the_caller_unchanged(plugin_wasm: Path) -> None:
    raised: list[BaseException] = []

    def fail(code: int) -> int:
        err = Boom(f"refused {code}")
        raised.append(err)
        raise err

    inst = wasmgate.instantiate(plugin_wasm, imports=make_host([], fail=fail))
    with pytest.raises(Boom) as caught:
        inst.exports.call_fail(3)
    assert caught.value is raised[0]
    assert str(caught.value) == "refused 3"
    assert any(entry.name == "fail" for entry in caught.traceback)  # the host frame is kept
    # the guest unwound cleanly: the instance still works and no stale error leaks
    assert inst.exports.add(1, 1) == 2


def test_exception_types_are_not_wrapped(plugin_wasm: Path) -> None:
    for exc in (KeyError("k"), ValueError("v"), wasmgate.LimitExceeded("fuel", "mine")):

        def fail(code: int, exc: Exception = exc) -> int:
            raise exc

        inst = wasmgate.instantiate(plugin_wasm, imports=make_host([], fail=fail))
        with pytest.raises(type(exc)) as caught:
            inst.exports.call_fail(1)
        assert caught.value is exc


def test_wasmtime_error_raised_by_host_function_is_not_taken_for_a_guest_failure(
    plugin_wasm: Path,
) -> None:
    err = wasmtime.WasmtimeError("from the host")

    def fail(code: int) -> int:
        raise err

    inst = wasmgate.instantiate(plugin_wasm, imports=make_host([], fail=fail))
    with pytest.raises(wasmtime.WasmtimeError) as caught:
        inst.exports.call_fail(1)
    assert caught.value is err


WAT_TYPES = """(module
  (import "env" "wide" (func $wide (param i64 f32 f64) (result f64)))
  (import "env" "two" (func $two (param i32) (result i32 i64)))
  (import "env" "flag" (func $flag (param i32) (result i32)))
  (func (export "wide") (param i64 f32 f64) (result f64)
    (call $wide (local.get 0) (local.get 1) (local.get 2)))
  (func (export "two") (param i32) (result i32 i64) (call $two (local.get 0)))
  (func (export "flag") (param i32) (result i32) (call $flag (local.get 0))))"""


def test_type_hints_pick_the_wasm_types() -> None:
    host = HostFunctions()
    seen: list[tuple[object, ...]] = []

    @host.function
    def wide(a: i64, b: f32, c: float) -> f64:
        seen.append((a, b, c))
        return 1  # an int for a float result is converted

    @host.function
    def two(x: i32) -> tuple[i32, i64]:
        return x, x * 2**33

    @host.function
    def flag(x: int) -> bool:
        return x > 0

    inst = wasmgate.instantiate(WAT_TYPES, imports=host)
    assert inst.exports.wide(2**40, 0.5, 2.25) == 1.0
    assert seen == [(2**40, 0.5, 2.25)]
    assert inst.exports.two(3) == (3, 3 * 2**33)
    assert (inst.exports.flag(5), inst.exports.flag(-5)) == (1, 0)


def test_explicit_spec_and_unannotated_functions() -> None:
    host = HostFunctions()
    host.add("env", "wide", lambda a, b, c: a + b + c, params=["i64", f32, "f64"], results=[f64])
    host.add("env", "two", lambda x: (x, x))  # no hints: the guest's declaration is taken
    host.add("env", "flag", lambda x: x)
    inst = wasmgate.instantiate(WAT_TYPES, imports=host)
    assert inst.exports.wide(1, 0.5, 0.25) == 1.75
    assert inst.exports.two(9) == (9, 9)


def test_signature_mismatch_is_reported_with_both_types() -> None:
    host = HostFunctions()

    @host.function
    def wide(a: int) -> int:
        return a

    host.add("env", "two", lambda x: (x, x))
    host.add("env", "flag", lambda x: x)
    with pytest.raises(MissingImports) as err:
        wasmgate.instantiate(WAT_TYPES, imports=host)
    assert err.value.missing == (
        "env::wide: guest expects func(i64, f32, f64) -> f64, host function has func(i32) -> i32",
    )


def test_partial_hints_and_unknown_types_are_refused() -> None:
    host = HostFunctions()

    @host.function
    def wide(a: i64, b, c) -> float:  # type: ignore[no-untyped-def]
        return 0.0

    with pytest.raises(UsageError, match="parameter 'b' has no type hint"):
        wasmgate.instantiate(WAT_TYPES, imports=host)

    host2 = HostFunctions()

    @host2.function
    def flag(x: dict) -> int:  # type: ignore[type-arg]
        return 0

    with pytest.raises(UsageError, match="type 'dict' is not a core wasm type"):
        wasmgate.instantiate(
            '(module (import "env" "flag" (func (param i32) (result i32))))', imports=host2
        )


def test_all_missing_imports_are_listed(guest: Guest) -> None:
    with pytest.raises(MissingImports) as err:
        wasmgate.instantiate(guest("embed_missing"))
    assert err.value.missing == (
        "env::foo: func(i32)",
        "env::bar: func() -> i64",
        "env::table: table(funcref, 1)",
        "other::baz: func(f64, f64) -> f32",
    )
    assert "embed_missing.wasm: 4 imports are not provided by the host: env::foo: func(i32); " in (
        str(err.value)
    )
    assert err.value.exit_code == 1


def test_missing_imports_of_the_c_plugin(plugin_wasm: Path) -> None:
    host = HostFunctions()
    host.add("env", "print_int", lambda v: None)
    with pytest.raises(MissingImports) as err:
        wasmgate.instantiate(plugin_wasm, imports=host)
    assert err.value.missing == ("env::log: func(i32, i32)", "env::fail: func(i32) -> i32")


def test_namespaces() -> None:
    host = HostFunctions(module="math")
    host.add("math", "double", lambda x: x * 2, params=[int], results=[int])
    inst = wasmgate.instantiate(
        '(module (import "math" "double" (func $d (param i32) (result i32)))'
        ' (func (export "f") (param i32) (result i32) (call $d (local.get 0))))',
        imports=host,
    )
    assert inst.exports.f(21) == 42
    assert len(host) == 1
    assert host.namespaces() == {"math"}


def test_duplicate_registration_is_an_error() -> None:
    host = HostFunctions()
    host.add("env", "f", lambda: None)
    with pytest.raises(UsageError, match="env::f is already defined"):
        host.add("env", "f", lambda: None)


def test_caller_parameter_gives_the_raw_caller() -> None:
    host = HostFunctions()
    seen: list[object] = []

    @host.function
    def peek(caller: wasmtime.Caller) -> int:
        mem = caller.get("memory")
        assert isinstance(mem, wasmtime.Memory)
        seen.append(mem.data_len(caller))
        return 1

    inst = wasmgate.instantiate(
        '(module (import "env" "peek" (func $p (result i32))) (memory (export "memory") 2)'
        ' (func (export "f") (result i32) (call $p)))',
        imports=host,
    )
    assert inst.exports.f() == 1
    assert seen == [2 * 65536]


def test_guest_memory_without_memory_export_raises_in_the_host_function() -> None:
    host = HostFunctions()

    @host.function
    def peek(memory: GuestMemory) -> None:
        raise AssertionError("not reached")

    inst = wasmgate.instantiate(
        '(module (import "env" "peek" (func $p)) (func (export "f") (call $p)))', imports=host
    )
    with pytest.raises(wasmgate.GuestMemoryError, match="does not export a memory"):
        inst.exports.f()


def test_exception_during_instantiation_start_function() -> None:
    host = HostFunctions()
    err = Boom("at start")

    @host.function
    def hook() -> None:
        raise err

    with pytest.raises(Boom) as caught:
        wasmgate.instantiate('(module (import "env" "hook" (func $h)) (start $h))', imports=host)
    assert caught.value is err
