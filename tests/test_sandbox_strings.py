"""argv and the environment reach WASI only for a guest that can read them (engine/sandbox): a
core module importing neither ``args_get`` nor ``environ_get`` is not given them (copying them
into every store was about a fifth of a WAGI hello's cost); a guest that imports them gets every
one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import wasmtime

from wasmgate import Capabilities, Limits
from wasmgate.capabilities import CAPTURE, Stdio
from wasmgate.engine import Program, get_engine, load_guest, sandbox

WASI = "wasi_snapshot_preview1"
ARGS = ("prog", "é ✓", "")
ENV = {"A": "1", "EQ": "a=b", "UNI": "ünï 🎉"}


def _sizes_module(*funcs: str) -> str:
    """A guest exporting ``<func>`` for each WASI ``*_sizes_get`` named: it returns the count."""
    imports = "".join(
        f'(import "{WASI}" "{f}" (func ${f} (param i32 i32) (result i32)))' for f in funcs
    )
    exports = "".join(
        f'(func (export "{f}") (result i32) (drop (call ${f} (i32.const 0) (i32.const 4)))'
        "(i32.load (i32.const 0)))"
        for f in funcs
    )
    return f'(module {imports} (memory (export "memory") 1) {exports})'


def _counts(wat: str, funcs: tuple[str, ...], **flags: bool) -> dict[str, int]:
    engine = get_engine()
    caps = Capabilities(args=ARGS, env=ENV)
    store = sandbox.open_store(engine, caps, Limits(timeout=5), **flags)
    linker = sandbox.core_linker(engine)
    instance = linker.instantiate(store, wasmtime.Module(engine.engine, wat))
    exports = instance.exports(store)
    return {f: exports[f](store) for f in funcs}  # type: ignore[operator]


BOTH = ("args_sizes_get", "environ_sizes_get")


def test_open_store_leaves_out_only_what_it_is_told() -> None:
    wat = _sizes_module(*BOTH)
    assert _counts(wat, BOTH) == {"args_sizes_get": 3, "environ_sizes_get": 3}
    assert _counts(wat, BOTH, args=False) == {"args_sizes_get": 0, "environ_sizes_get": 3}
    assert _counts(wat, BOTH, env=False) == {"args_sizes_get": 3, "environ_sizes_get": 0}


@pytest.mark.parametrize(
    "funcs",
    [("args_sizes_get",), ("environ_sizes_get",), BOTH],
)
def test_a_guest_gets_what_it_imports(funcs: tuple[str, ...]) -> None:
    """Through the engine entry: whatever a guest can ask for, it gets in full."""
    engine = get_engine()
    program = Program(load_guest(_sizes_module(*funcs).encode(), engine, name="probe"))
    caps = Capabilities(args=ARGS, env=ENV)
    for func in funcs:
        outcome = program.run(caps, Limits(timeout=5), entry=func, results=True)
        assert outcome.status == "ok", outcome
        assert outcome.results == (3,)


def test_a_c_guest_reads_them_through_libc(guest: Callable[[str], Path]) -> None:
    """wasi-libc's own start-up (``argv``, ``environ``, ``getenv``), through the engine entry."""
    program = Program(load_guest(guest("hello"), get_engine()))
    caps = Capabilities(
        args=("hello", "é", ""),
        env={"GREETING": "héllo=1", "EXIT_CODE": "7"},
        stdio=Stdio(stdout=CAPTURE),
    )
    outcome = program.run(caps, Limits(timeout=5))
    assert (outcome.status, outcome.exit_code) == ("exit", 7), outcome
    assert caps.stdio.stdout.getvalue().decode() == (  # type: ignore[union-attr]
        "argv[0]=hello\nargv[1]=é\nargv[2]=\nenv GREETING=héllo=1\nenv EXIT_CODE=7\n"
    )


def test_a_guest_that_imports_neither_still_runs_with_its_grants() -> None:
    """Leaving argv and the environment out changes nothing else: its stdout still works (the
    WAT guest writes a line; its module imports only fd_write)."""
    wat = f"""(module
      (import "{WASI}" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 16) "hi\\n")
      (func (export "_start")
        (i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const 3))
        (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"""
    program = Program(load_guest(wat.encode(), get_engine(), name="writer"))
    caps = Capabilities(args=ARGS, env=ENV, stdio=Stdio(stdout=CAPTURE))
    assert program.run(caps, Limits(timeout=5)).status == "ok"
    assert caps.stdio.stdout.getvalue() == b"hi\n"  # type: ignore[union-attr]
