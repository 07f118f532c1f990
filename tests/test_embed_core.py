"""Embedding core modules: instantiate, call exports with numbers, memory, strings and bytes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from guestbuild import build

import wasmgate
from conftest import GUESTS
from wasmgate import Capabilities, GuestMemoryError, HostFunctions, LinkError, UsageError
from wasmgate.embed import Instance

Guest = Callable[[str], Path]


@pytest.fixture(scope="module")
def plugin_wasm() -> Path:
    """tests/guests/embed_plugin.c built as a reactor (a plugin: exports, no main)."""
    return build(GUESTS / "embed_plugin.c", ["-mexec-model=reactor"])


def plugin_host(received: list[object] | None = None) -> HostFunctions:
    host = HostFunctions()
    sink: list[object] = received if received is not None else []

    @host.function
    def print_int(value: int) -> None:
        sink.append(value)

    @host.function
    def log(memory: wasmgate.GuestMemory, ptr: int, length: int) -> None:
        sink.append(memory.read_str(ptr, length))

    @host.function
    def fail(code: int) -> int:
        return code * 10

    return host


@pytest.fixture
def plugin(plugin_wasm: Path) -> Instance:
    return wasmgate.instantiate(plugin_wasm, imports=plugin_host())


@pytest.fixture(scope="module")
def limits_wasm(guest: Guest) -> Path:
    return guest("embed_limits")


def test_numbers_in_and_out(plugin: Instance) -> None:
    assert plugin.exports.add(2, 3) == 5
    assert plugin.call("add", -7, 3) == -4
    assert plugin.exports["mul64"](2**40, 3) == 3 * 2**40
    assert plugin.exports.average(1.0, 2.0) == 1.5
    assert plugin.exports.average(1, 2) == 1.5  # ints are fine for float parameters


def test_i32_accepts_unsigned_spelling_and_returns_signed(plugin: Instance) -> None:
    assert plugin.exports.add(0xFFFFFFFF, 0) == -1
    assert plugin.exports.add(2**31 - 1, 1) == -(2**31)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((1,), "takes 2 argument(s) (func(i32, i32) -> i32), but 1 was given"),
        (("1", 2), "argument 0: expected i32, got str"),
        ((1, 2**32), "argument 1: expected i32, got 4294967296 (out of range)"),
        ((1, -(2**31) - 1), "out of range"),
        ((1.5, 2), "argument 0: expected i32, got float"),
        ((None, 2), "expected i32, got NoneType"),
    ],
)
def test_bad_arguments_fail_before_wasm_runs(
    plugin: Instance, args: tuple[object, ...], message: str
) -> None:
    with pytest.raises(TypeError, match="add") as err:
        plugin.exports.add(*args)
    assert message in str(err.value)


def test_multi_value_results_are_tuples(limits_wasm: Path) -> None:
    inst = wasmgate.instantiate(limits_wasm)
    assert inst.exports.pair(-3) == (-3, -3)
    assert inst.exports.fadd(0.5, 0.25) == 0.75
    assert inst.exports.spin.type.params == []


def test_state_persists_between_calls(limits_wasm: Path) -> None:
    inst = wasmgate.instantiate(limits_wasm)
    assert [inst.exports.count() for _ in range(3)] == [1, 2, 3]
    other = wasmgate.instantiate(limits_wasm)
    assert other.exports.count() == 1


def test_sources_path_str_bytes_wat_and_loaded_guest(limits_wasm: Path) -> None:
    wat = '(module (func (export "seven") (result i32) i32.const 7))'
    assert wasmgate.instantiate(wat).exports.seven() == 7
    assert wasmgate.instantiate(wat.encode()).exports.seven() == 7
    assert wasmgate.instantiate(str(limits_wasm)).exports.count() == 1
    loaded = wasmgate.load(limits_wasm)
    first, second = wasmgate.instantiate(loaded), wasmgate.instantiate(loaded)
    assert (first.exports.count(), first.exports.count(), second.exports.count()) == (1, 2, 1)


def test_exports_namespace(plugin: Instance) -> None:
    exports = plugin.exports
    assert "add" in exports
    assert "memory" not in exports
    assert "nope" not in exports
    assert "greet" in list(exports)
    assert "add" in dir(exports)
    assert exports.add is exports.add  # looked up once
    with pytest.raises(AttributeError, match=r"export 'nope' does not exist \(exported functions"):
        _ = exports.nope
    with pytest.raises(LinkError, match="'memory' is not a function"):
        plugin.func("memory")
    assert "func(i32, i32) -> i32" in repr(exports.add)


def test_component_is_refused_with_advice() -> None:
    with pytest.raises(UsageError, match=r"is a component; use wasmgate\.instantiate_component"):
        wasmgate.instantiate(GUESTS / "comp_types.wat")


def test_reactor_initialize_runs_once(plugin: Instance) -> None:
    # _initialize ran at instantiation (wasi-libc's constructors): malloc works on the first call
    assert plugin.call_str("greet", "x") == "Hello, x!"


def test_call_str_and_post_function(plugin: Instance) -> None:
    assert plugin.call_str("greet", "world") == "Hello, world!"
    assert plugin.call_str("greet", "") == "Hello, !"
    assert plugin.call_str("greet", "żółw 🐢") == "Hello, żółw 🐢!"
    # every result was handed back through cabi_post_greet
    assert plugin.exports.outstanding() == 0


def test_call_bytes_and_mixed_arguments(plugin: Instance) -> None:
    assert plugin.call_bytes("reverse", b"\x00\x01\xff") == b"\xff\x01\x00"
    assert plugin.call_bytes("reverse", bytearray(b"ab")) == b"ba"
    assert plugin.call_str("join", "left", b"right", ord("+")) == "left+right"


def test_out_of_bounds_result_is_refused(plugin: Instance) -> None:
    with pytest.raises(GuestMemoryError, match="out of bounds: 64 bytes at 0xfffffff0"):
        plugin.call_str("bad_string")


def test_call_str_needs_an_i64_result(plugin: Instance) -> None:
    with pytest.raises(UsageError, match=r"add returns func\(i32, i32\) -> i32"):
        plugin.call_str("add", 1, 2)


def test_alloc_convention_and_invalid_utf8(limits_wasm: Path) -> None:
    inst = wasmgate.instantiate(limits_wasm)
    assert inst.call_str("shout", "quiet please") == "QUIET PLEASE"
    with pytest.raises(GuestMemoryError, match="invalid UTF-8"):
        inst.call_str("not_utf8")
    assert inst.call_bytes("not_utf8") == b"\xff\xfe"


def test_strings_need_an_allocator() -> None:
    inst = wasmgate.instantiate(
        '(module (memory (export "memory") 1) (func (export "f") (param i32 i32) (result i64)'
        " i64.const 0))"
    )
    with pytest.raises(LinkError, match="needs an exported allocator"):
        inst.call_str("f", "x")


def test_memory_helpers(limits_wasm: Path) -> None:
    inst = wasmgate.instantiate(limits_wasm)
    mem = inst.memory
    assert mem.size == 65536
    mem.write(100, b"hello")
    assert mem.read(100, 5) == b"hello"
    assert mem.read_str(100, 5) == "hello"
    mem.pack(200, "<Iq", 7, -1)
    assert mem.unpack("<Iq", 200) == (7, -1)
    assert mem.read(0, 0) == b""
    ptr, length = inst.copy_in("ünï")
    assert mem.read_str(ptr, length) == "ünï"


@pytest.mark.parametrize(("ptr", "length"), [(65536, 1), (65530, 7), (-1, 1), (0, -1), (2**40, 1)])
def test_memory_bounds(limits_wasm: Path, ptr: int, length: int) -> None:
    mem = wasmgate.instantiate(limits_wasm).memory
    with pytest.raises(GuestMemoryError, match="out of bounds"):
        mem.read(ptr, length)
    if length > 0:
        with pytest.raises(GuestMemoryError, match="out of bounds"):
            mem.write(ptr, b"x" * length)


def test_memory_grows_and_bounds_follow(limits_wasm: Path) -> None:
    inst = wasmgate.instantiate(limits_wasm)
    inst.exports.grow(1)
    inst.memory.write(65536 + 10, b"ok")
    assert inst.memory.read(65536 + 10, 2) == b"ok"


def test_no_memory_export() -> None:
    inst = wasmgate.instantiate('(module (func (export "f")))')
    with pytest.raises(GuestMemoryError, match="exports no memory"):
        _ = inst.memory


def test_capabilities_reach_the_guest_and_nothing_else(plugin_wasm: Path) -> None:
    caps = Capabilities(env=(("GREETING", "hi"),))
    inst = wasmgate.instantiate(plugin_wasm, imports=plugin_host(), capabilities=caps)
    assert inst.call_str("env_value", "GREETING") == "hi"
    assert inst.call_str("env_value", "PATH") == ""
    sealed = wasmgate.instantiate(plugin_wasm, imports=plugin_host())
    assert sealed.call_str("env_value", "GREETING") == ""


def test_close_frees_the_store(limits_wasm: Path) -> None:
    with wasmgate.instantiate(limits_wasm) as inst:
        assert inst.exports.count() == 1
    inst.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        inst.exports.count()


def test_wasi_can_be_left_out(limits_wasm: Path) -> None:
    with pytest.raises(wasmgate.MissingImports, match="wasi_snapshot_preview1::proc_exit"):
        wasmgate.instantiate(limits_wasm, wasi=False)
