"""Stdio for embedded guests: captured in memory, written to any file-like object, read from one;
anything else refused at once, in every face that takes a Stdio."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest

import wasmgate
from wasmgate import CAPTURE, Capabilities, Stdio
from wasmgate.api import run
from wasmgate.config import RunConfig

Guest = Callable[[str], Path]


def test_capture_keeps_output_on_the_instance(guest: Guest) -> None:
    caps = Capabilities(args=("hello", "a1"), stdio=Stdio(stdin=b"in!", stdout=CAPTURE))
    # hello prints its argv, env and stdin from _start; run it as a command.
    outcome = run(RunConfig(module=guest("hello"), args=("a1",), stdio=caps.stdio))
    assert outcome.ok
    out = caps.stdio.stdout
    assert isinstance(out, wasmgate.Captured)
    assert b"argv[1]=a1" in out.getvalue()
    assert b"stdin=in!" in out.getvalue()


def test_file_like_objects_both_ways(guest: Guest) -> None:
    sink, errors = io.BytesIO(), io.StringIO()
    stdio = Stdio(stdin=io.BytesIO(b"from a file object"), stdout=sink, stderr=errors)
    assert run(RunConfig(module=guest("hello"), stdio=stdio)).ok
    assert b"stdin=from a file object" in sink.getvalue()


def test_instance_exposes_captured_streams() -> None:
    wat = """(module
      (import "wasi_snapshot_preview1" "fd_write"
        (func $w (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 16) "hi there\\n")
      (func (export "say") (param $fd i32)
        (i32.store (i32.const 0) (i32.const 16))
        (i32.store (i32.const 4) (i32.const 9))
        (drop (call $w (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8)))))"""
    caps = Capabilities(stdio=Stdio(stdout=CAPTURE, stderr=CAPTURE))
    inst = wasmgate.instantiate(wat, capabilities=caps)
    inst.exports.say(1)
    inst.exports.say(2)
    inst.exports.say(1)
    assert inst.stdout == b"hi there\nhi there\n"
    assert inst.stderr == b"hi there\n"
    plain = wasmgate.instantiate(wat)
    with pytest.raises(ValueError, match="stdout is not captured"):
        _ = plain.stdout


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"stdout": 42}, "stdout must be INHERIT, CAPTURE, None, a Path or a file-like"),
        ({"stderr": "stderr.txt"}, "got str"),
        ({"stdin": 3.5}, "stdin must be INHERIT, None, bytes, a Path or a file-like"),
    ],
)
def test_anything_else_is_a_type_error_at_once(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(TypeError, match=message):
        Stdio(**kwargs)  # type: ignore[arg-type]
