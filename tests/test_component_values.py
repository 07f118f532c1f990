"""Component exports called with Python values: every WIT type both ways (the guest echoes its
argument), records and their classes, results as exceptions, and wrong values refused with the
path inside the value before any wasm runs."""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

import wasmgate
from conftest import GUESTS
from wasmgate import ComponentError, ComponentInstance, Err, Ok, Some, Variant
from wasmgate.engine.introspect import describe

COMP = GUESTS / "comp_types.wat"


@pytest.fixture(scope="module")
def comp() -> ComponentInstance:
    return wasmgate.instantiate_component(COMP)


@dataclasses.dataclass
class Person:
    name: str
    age: int


def echo(comp: ComponentInstance, name: str) -> Callable[..., Any]:
    return comp.func(name, raise_errors=False)


@pytest.mark.parametrize(
    ("func", "value", "expected"),
    [
        ("echo-bool", True, True),
        ("echo-bool", False, False),
        ("echo-s8", -128, -128),
        ("echo-u16", 65535, 65535),
        ("echo-s64", -(2**63), -(2**63)),
        ("echo-u64", 2**64 - 1, 2**64 - 1),
        ("echo-f64", 2.5, 2.5),
        ("echo-f64", 3, 3.0),
        ("echo-f32", 0.5, 0.5),
        ("echo-char", "☃", "☃"),
        ("echo-string", "héllo 🐢", "héllo 🐢"),
        ("echo-string", "", ""),
        ("echo-bytes", b"\x00\xff", b"\x00\xff"),
        ("echo-bytes", bytearray(b"ab"), b"ab"),
        ("echo-bytes", [1, 2, 255], b"\x01\x02\xff"),
        ("echo-bytes", (7,), b"\x07"),
        ("echo-strings", ["a", "b"], ["a", "b"]),
        ("echo-strings", ("x",), ["x"]),
        ("echo-strings", [], []),
        ("echo-tuple", (3, "x"), (3, "x")),
        ("echo-tuple", [4, "y"], (4, "y")),
        ("echo-color", "green", "green"),
        ("echo-perms", {"read", "exec"}, {"read", "exec"}),
        ("echo-perms", frozenset(), set()),
        ("echo-perms", ["write"], {"write"}),
        ("echo-option", None, None),
        ("echo-option", 5, 5),
        ("echo-option", Some(6), 6),
        ("echo-option-string", "s", "s"),
        ("echo-option-string", None, None),
        ("echo-nested", None, None),
        ("echo-nested", Some(None), Some(None)),
        ("echo-nested", 7, Some(7)),
        ("echo-nested", Some(Some(8)), Some(8)),
        ("echo-result", Ok(3), Ok(3)),
        ("echo-result", Err("bad"), Err("bad")),
        ("echo-maybe", Ok(None), Ok(None)),
        ("echo-maybe", Ok(9), Ok(9)),
        ("echo-shape", "empty", Variant("empty", None)),
        ("echo-shape", Variant("empty"), Variant("empty", None)),
        ("echo-shape", Variant("num", -5), Variant("num", -5)),
        ("echo-shape", Variant("text", "hi"), Variant("text", "hi")),
    ],
)
def test_round_trip(comp: ComponentInstance, func: str, value: object, expected: object) -> None:
    result = echo(comp, func)(value)
    assert result == expected
    assert type(result) is type(expected)


def test_f32_is_rounded_to_32_bits(comp: ComponentInstance) -> None:
    assert comp.exports.echo_f32(0.1) == pytest.approx(0.1, rel=1e-7)
    assert comp.exports.echo_f32(0.1) != 0.1
    assert math.isnan(comp.exports.echo_f64(math.nan))
    assert comp.exports.echo_f64(-math.inf) == -math.inf


def test_records_in_every_shape_and_a_class_out(comp: ComponentInstance) -> None:
    Out = comp.types["person"]
    given = [
        Person("dataclass", 1),
        {"name": "dict", "age": 2},
        SimpleNamespace(name="object", age=3),
        Out(name="own class", age=4),
    ]
    result = comp.exports.echo_people(given)
    assert result == [
        Out("dataclass", 1),
        Out("dict", 2),
        Out("object", 3),
        Out("own class", 4),
    ]
    assert all(type(r) is Out for r in result)
    assert Out.__name__ == "Person"
    assert dataclasses.is_dataclass(Out)
    assert comp.exports.echo_person(Person("solo", 40)) == Out("solo", 40)
    assert comp.exports.sum_ages([Person("a", 2**32 - 1)] * 3) == 3 * (2**32 - 1)


def test_a_thousand_records(comp: ComponentInstance) -> None:
    people = [Person(f"p{i}", i) for i in range(1000)]
    result = comp.exports.echo_people(people)
    assert [(p.name, p.age) for p in result] == [(p.name, p.age) for p in people]


def test_enum_members_and_snake_case_names(comp: ComponentInstance) -> None:
    class Color(enum.Enum):
        RED = "red"

    assert comp.exports.echo_color(Color.RED) == "red"
    assert comp.exports.echo_perms({"read"}) == {"read"}


def test_top_level_result_is_a_value_or_component_error(comp: ComponentInstance) -> None:
    assert comp.exports.divide(7, 2) == 3
    with pytest.raises(ComponentError) as err:
        comp.exports.divide(1, 0)
    assert err.value.value == "division by zero"
    assert str(err.value) == "component returned an error: 'division by zero'"
    assert comp.func("divide", raise_errors=False)(1, 0) == Err("division by zero")


def test_keyword_and_positional_arguments(comp: ComponentInstance) -> None:
    assert comp.exports.add(1, b=2) == 3
    assert comp.exports.add(b=5, a=1) == 6
    assert comp.call("add", 2, 2) == 4
    assert comp.exports["add"](3, 3) == 6


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda e: e.echo_people([Person("a", 1), Person("b", 2), Person("c", "x")]),
            "echo-people: people[2].age: expected u32, got str",
        ),
        (lambda e: e.add(-1, 2), "add: a: expected u32, got -1 (out of range)"),
        (lambda e: e.add(1, True), "add: b: expected u32, got bool"),
        (lambda e: e.add(1.0, 2), "add: a: expected u32, got float"),
        (lambda e: e.echo_s8(128), "echo-s8: v: expected s8, got 128 (out of range)"),
        (lambda e: e.echo_u64(2**64), "out of range"),
        (lambda e: e.echo_bool(1), "echo-bool: b: expected bool, got int"),
        (lambda e: e.echo_f64("1"), "echo-f64: v: expected f64, got str"),
        (lambda e: e.echo_char("ab"), "echo-char: c: expected char, got str of length 2"),
        (lambda e: e.echo_string(b"x"), "echo-string: s: expected string, got bytes"),
        (lambda e: e.echo_string("\ud800"), "lone surrogate"),
        (lambda e: e.echo_bytes("x"), "echo-bytes: b: expected list<u8>, got str"),
        (lambda e: e.echo_bytes([1, 300]), "echo-bytes: b[1]: expected u8, got 300 (out of range)"),
        (lambda e: e.echo_bytes([1, "2"]), "echo-bytes: b[1]: expected u8, got str"),
        (lambda e: e.echo_strings("ab"), "echo-strings: s: expected list<string>, got str"),
        (lambda e: e.echo_strings(["a", 2]), "echo-strings: s[1]: expected string, got int"),
        (lambda e: e.echo_tuple((1,)), "echo-tuple: t: expected tuple<u32, string>, got tuple of"),
        (lambda e: e.echo_tuple((1, 2)), "echo-tuple: t[1]: expected string, got int"),
        (lambda e: e.echo_person({"name": "x"}), "echo-person: p: missing field 'age' of person"),
        (
            lambda e: e.echo_person({"name": "x", "age": 1, "extra": 2}),
            "echo-person: p: unknown field 'extra' for person",
        ),
        (lambda e: e.echo_person(SimpleNamespace(name="x")), "missing field 'age' of person in"),
        (lambda e: e.echo_person("x"), "echo-person: p: expected person, got str"),
        (lambda e: e.echo_color("pink"), "echo-color: c: expected color, got 'pink' (not a case)"),
        (lambda e: e.echo_color(1), "echo-color: c: expected color, got int"),
        (lambda e: e.echo_perms({"foo"}), "echo-perms: p: expected perms, got 'foo' (not a flag)"),
        (lambda e: e.echo_perms("read"), "echo-perms: p: expected perms, got str"),
        (lambda e: e.echo_option("x"), "echo-option: o: expected u32, got str"),
        (lambda e: e.echo_shape("num"), "case 'num' of shape needs a payload"),
        (lambda e: e.echo_shape(Variant("num", "x")), "echo-shape: s<num>: expected s64, got str"),
        (lambda e: e.echo_shape(Variant("square", 1)), "got case 'square' (not a case)"),
        (lambda e: e.echo_shape(Variant("empty", 1)), "case 'empty' of shape has no payload"),
        (lambda e: e.echo_shape(3), "echo-shape: s: expected shape, got int"),
        (lambda e: e.add(1), "add: missing argument 'b'"),
        (lambda e: e.add(1, 2, 3), "add: takes 2 argument(s) (a, b), but 3 were given"),
        (lambda e: e.add(1, c=3), "add: missing argument 'b'"),
        (lambda e: e.add(1, 2, c=3), "add: unexpected argument 'c'"),
    ],
)
def test_wrong_values_name_the_path_and_type(
    comp: ComponentInstance, call: Callable[[Any], object], message: str
) -> None:
    heap = comp.exports.heap()
    with pytest.raises(TypeError) as err:
        call(comp.exports)
    assert message in str(err.value)
    assert comp.exports.heap() == heap  # nothing reached the guest


@pytest.mark.parametrize(
    ("func", "value", "message"),
    [
        ("echo-result", 3, "r: expected result<u32, string> (wasmgate.Ok or wasmgate.Err)"),
        ("echo-result", Ok("x"), "r<ok>: expected u32, got str"),
        ("echo-result", Err(5), "r<err>: expected string, got int"),
        # wasmtime-py 50 would read this err as the (untagged) ok case: refused, never mis-sent
        ("echo-maybe", Err("x"), "cannot pass case 'err' of result<option<u32>, string>"),
    ],
)
def test_wrong_nested_results(
    comp: ComponentInstance, func: str, value: object, message: str
) -> None:
    with pytest.raises(TypeError) as err:
        echo(comp, func)(value)
    assert message in str(err.value)


def test_untagged_results_come_back_as_the_right_case(comp: ComponentInstance) -> None:
    # result<u32, string> travels untagged through the binding: the case is told by type
    assert echo(comp, "echo-result")(Err("5")) == Err("5")
    assert echo(comp, "echo-result")(Ok(5)) == Ok(5)


def test_exports_namespace(comp: ComponentInstance) -> None:
    assert "echo-people" in comp.exports
    assert "echo_people" in dir(comp.exports)
    assert "greet" in list(comp.exports)
    assert comp.exports.greet is comp.exports.greet
    with pytest.raises(AttributeError, match="no exported function 'nope'"):
        _ = comp.exports.nope
    with pytest.raises(wasmgate.LinkError, match="no exported function 'nope'"):
        comp.func("nope")
    assert "func(name: string) -> string" in repr(comp.exports.greet)


def test_greet_allocates_in_the_guest(comp: ComponentInstance) -> None:
    assert comp.exports.greet("world") == "Hello, world!"
    assert comp.exports.greet("ü" * 1000) == "Hello, " + "ü" * 1000 + "!"


def test_core_module_is_refused_with_advice() -> None:
    with pytest.raises(wasmgate.UsageError, match=r"is a core module; use wasmgate\.instantiate"):
        wasmgate.instantiate_component("(module)")


def test_inspect_names_the_types() -> None:
    info = describe(wasmgate.load(COMP))
    types = {e["name"]: e["type"] for e in info["exports"]}
    assert types["person"] == "record { name: string, age: u32 }"
    assert types["shape"] == "variant { empty, num(s64), text(string) }"
    assert types["echo-people"] == "func(people: list<person>) -> list<person>"
    assert types["echo-maybe"] == (
        "func(r: result<option<u32>, string>) -> result<option<u32>, string>"
    )
    assert types["spin"] == "func()"
