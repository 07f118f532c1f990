"""Component imports provided by Python functions (root functions and WIT interfaces), exceptions
and ``ComponentError`` across the guest, missing imports, WASI preview2 capabilities, and limits."""

from __future__ import annotations

import time
from typing import Any

import pytest

import wasmgate
from conftest import GUESTS
from wasmgate import (
    Capabilities,
    ComponentError,
    ComponentInstance,
    EngineSettings,
    GuestTrap,
    HostFunctions,
    LimitExceeded,
    Limits,
    MissingImports,
)

HOST = GUESTS / "comp_host.wat"
TYPES = GUESTS / "comp_types.wat"


class Boom(Exception):
    pass


def make_host(store: dict[str, str], log: list[str], check: Any = None) -> HostFunctions:
    host = HostFunctions()

    def log_(msg: str) -> None:
        log.append(msg)

    host.add("env", "log", log_)

    @host.function
    def oldest(people: list[Any]) -> Any:
        return max(people, key=lambda p: p.age) if people else None

    host.add("env", "check", check or (lambda n: n * 2))

    @host.function("test:host/kv")
    def get(key: str) -> str | None:
        return store.get(key)

    @host.function("test:host/kv")
    def put(key: str, value: str) -> None:
        store[key] = value

    return host


def instance(check: Any = None) -> tuple[ComponentInstance, dict[str, str], list[str]]:
    store: dict[str, str] = {}
    log: list[str] = []
    inst = wasmgate.instantiate_component(HOST, imports=make_host(store, log, check))
    return inst, store, log


def test_root_and_interface_imports() -> None:
    inst, store, log = instance()
    inst.exports.call_log("hello")
    assert log == ["hello"]
    inst.exports.call_put("lang", "python")
    assert store == {"lang": "python"}
    assert inst.exports.call_get("lang") == "python"
    assert inst.exports.call_get("none") is None
    assert inst.exports.call_check(21) == 42


def test_records_reach_host_functions_as_objects_and_come_back() -> None:
    inst, _, _ = instance()
    Person = inst.types["person-out"]
    result = inst.exports.call_oldest([{"name": "ann", "age": 30}, {"name": "bo", "age": 41}])
    assert result == Person("bo", 41)
    assert inst.exports.call_oldest([]) is None


def test_component_error_from_a_host_function_is_an_err() -> None:
    def check(n: int) -> int:
        if n > 10:
            raise ComponentError(f"{n} is too big")
        return n

    inst, _, _ = instance(check)
    with pytest.raises(ComponentError) as err:
        inst.exports.call_check(11)
    assert err.value.value == "11 is too big"
    assert inst.exports.call_check(3) == 3  # an err is a value, not a trap: the instance lives on


def test_host_exception_reaches_the_caller_unchanged() -> None:
    err = Boom("from python")

    def check(n: int) -> int:
        raise err

    inst, _, _ = instance(check)
    with pytest.raises(Boom) as caught:
        inst.exports.call_check(1)
    assert caught.value is err
    # the component model forbids re-entering an instance that trapped; the error says so
    with pytest.raises(GuestTrap, match=r"trapped in an earlier call.*instantiate the component"):
        inst.exports.call_check(1)


def test_base_exceptions_cross_too() -> None:
    def check(n: int) -> int:
        raise KeyboardInterrupt

    inst, _, _ = instance(check)
    with pytest.raises(KeyboardInterrupt):
        inst.exports.call_check(1)


def test_bad_return_value_from_a_host_function() -> None:
    inst, _, _ = instance(lambda n: "not a number")
    with pytest.raises(TypeError, match="host function check: return value<ok>: expected u32"):
        inst.exports.call_check(1)


def test_all_missing_imports_are_listed() -> None:
    with pytest.raises(MissingImports) as err:
        wasmgate.instantiate_component(HOST)
    assert err.value.missing == (
        "log: func(msg: string)",
        "check: func(n: u32) -> result<u32, string>",
        "oldest: func(people: list<person-out>) -> option<person-out>",
        "test:host/kv#get: func(key: string) -> option<string>",
        "test:host/kv#put: func(key: string, value: string)",
    )
    host = make_host({}, [])
    partial = HostFunctions()
    for hf in host:
        if hf.name != "put":
            partial.add(hf.module, hf.name, hf.fn)
    with pytest.raises(MissingImports) as err:
        wasmgate.instantiate_component(HOST, imports=partial)
    assert err.value.missing == ("test:host/kv#put: func(key: string, value: string)",)


def test_unknown_interface_import_is_listed() -> None:
    wat = '(component (import "example:missing/api" (instance (export "f" (func)))))'
    with pytest.raises(MissingImports, match="example:missing/api#f: func\\(\\)"):
        wasmgate.instantiate_component(wat)


def test_wasi_preview2_grants_exactly_the_capabilities() -> None:
    caps = Capabilities(args=("plugin", "--x"), env=(("TOKEN", "t0"),))
    inst = wasmgate.instantiate_component(GUESTS / "comp_wasi.wat", capabilities=caps)
    assert inst.exports.environment() == [("TOKEN", "t0")]
    assert inst.exports.arguments() == ["plugin", "--x"]
    sealed = wasmgate.instantiate_component(GUESTS / "comp_wasi.wat")
    assert sealed.exports.environment() == []
    assert sealed.exports.arguments() == []
    with pytest.raises(MissingImports, match=r"wasi:cli/environment@0\.2\.0#get-environment"):
        wasmgate.instantiate_component(GUESTS / "comp_wasi.wat", wasi=False)


def test_component_timeout_per_call() -> None:
    inst = wasmgate.instantiate_component(TYPES, limits=Limits(timeout=0.2))
    time.sleep(0.3)  # the deadline is per call, not per instance
    assert inst.exports.add(1, 2) == 3
    with pytest.raises(LimitExceeded) as err:
        inst.exports.spin()
    assert err.value.kind == "timeout"
    assert str(err.value) == "guest timed out after 200ms (wall clock)"


def test_component_fuel_per_call() -> None:
    inst = wasmgate.instantiate_component(TYPES, limits=Limits(fuel=5000))
    for _ in range(20):
        assert inst.exports.greet("x") == "Hello, x!"
    assert inst.fuel_consumed is not None
    assert 0 < inst.fuel_consumed < 5000
    with pytest.raises(LimitExceeded) as err:
        inst.exports.spin()
    assert err.value.kind == "fuel"
    plain = wasmgate.load(TYPES)
    with pytest.raises(wasmgate.UsageError, match="consume_fuel"):
        wasmgate.instantiate_component(plain, limits=Limits(fuel=10))
    metered = wasmgate.load(TYPES, settings=EngineSettings(consume_fuel=True))
    assert wasmgate.instantiate_component(metered, limits=Limits(fuel=10_000)).exports.add(1, 1)


def test_component_memory_limit() -> None:
    inst = wasmgate.instantiate_component(TYPES, limits=Limits(max_memory=4 * 65536))
    assert inst.exports.grow(3) == 1
    assert inst.exports.grow(1) == -1


def test_component_trap() -> None:
    inst = wasmgate.instantiate_component(TYPES)
    with pytest.raises(GuestTrap) as err:
        inst.exports.trap()
    assert err.value.kind == "wasm `unreachable` instruction executed"
