"""`wasmgate run` on WASI preview2 command components (hand-written WAT components)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import Result

Run = Callable[..., Result]

COMMAND = """(component
  (core module $m
    (func (export "run") (result i32) {body}))
  (core instance $i (instantiate $m))
  (func $run (result (result)) (canon lift (core func $i "run")))
  (instance $inst (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $inst)))"""


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ("i32.const 0", 0, ""),
        ("i32.const 1", 1, ""),
        ("unreachable", 134, "guest trapped"),
        ("(loop br 0) i32.const 0", 124, "timed out"),
    ],
)
def test_command_component(
    wasmgate: Run, tmp_path: Path, body: str, status: int, message: str
) -> None:
    path = tmp_path / "cmd.wat"
    path.write_text(COMMAND.format(body=body))
    r = wasmgate("run", "--timeout", "300ms", path)
    assert r.returncode == status, r.stderr
    assert message in r.stderr
    assert "Traceback" not in r.stderr


def test_component_without_run_export(wasmgate: Run, tmp_path: Path) -> None:
    path = tmp_path / "lib.wat"
    path.write_text("(component)")
    r = wasmgate("run", path)
    assert r.returncode == 1
    assert "does not export wasi:cli/run" in r.stderr


def test_component_with_unknown_import(wasmgate: Run, tmp_path: Path) -> None:
    path = tmp_path / "imp.wat"
    path.write_text('(component (import "example:missing/api" (instance)))')
    r = wasmgate("run", path)
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1
