"""Host functions that take and return str and bytes: moved through the caller's memory with
the same string convention as exports (the guest's allocator, (ptr, len), packed i64)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import wasmgate

Guest = Callable[[str], Path]


def _host(calls: list[object]) -> wasmgate.HostFunctions:
    host = wasmgate.HostFunctions()

    @host.function
    def upper(text: str) -> str:
        calls.append(text)
        return text.upper()

    @host.function
    def reverse(data: bytes) -> bytes:
        return data[::-1]

    @host.function
    def count(text: str, char: int) -> int:
        return text.count(chr(char))

    return host


def test_host_functions_take_and_return_strings(guest: Guest) -> None:
    calls: list[object] = []
    inst = wasmgate.instantiate(guest("host_strings"), imports=_host(calls))
    assert inst.call_str("shout", "héllo, wasm") == "HÉLLO, WASM"
    assert calls == ["héllo, wasm"]
    assert inst.call_bytes("flip", b"\x00\x01\xff") == b"\xff\x01\x00"
    assert inst.call_str("shout", "") == ""
    ptr, length = inst.copy_in("banana")
    assert inst.exports.count_char(ptr, length, ord("a")) == 3


def test_a_wrong_result_type_reaches_the_caller(guest: Guest) -> None:
    host = wasmgate.HostFunctions()

    @host.function
    def upper(text: str) -> str:
        return 42  # type: ignore[return-value]

    @host.function
    def reverse(data: bytes) -> bytes:
        return data

    @host.function
    def count(text: str, char: int) -> int:
        return 0

    inst = wasmgate.instantiate(guest("host_strings"), imports=host)
    with pytest.raises(TypeError, match="returned int, not str"):
        inst.call_str("shout", "x")


def test_invalid_utf8_from_the_guest_is_the_host_functions_error(guest: Guest) -> None:
    inst = wasmgate.instantiate(guest("host_strings"), imports=_host([]))
    with pytest.raises(UnicodeDecodeError):
        inst.call_bytes("shout", b"\xff\xfe")


def test_a_c_guest_uses_the_hosts_strings_and_frees_them() -> None:
    from guestbuild import build

    from conftest import GUESTS

    plugin = build(GUESTS / "host_strings_c.c", ["-mexec-model=reactor"])
    calls: list[object] = []
    inst = wasmgate.instantiate(plugin, imports=_host(calls))
    assert inst.call_str("shout", "banana") == "BANANA (3 a)"
    assert calls == ["banana"]
    assert inst.call_bytes("flip", b"abc\x00") == b"\x00cba"
    before = inst.memory.size
    for _ in range(2000):  # every string is freed by the guest: memory stays put
        inst.call_str("shout", "x" * 1000)
    assert inst.memory.size <= before + 4 * 65536
