"""``wasmgate call``: component functions with WAVE values, core exports with numbers, through
the real command line (``main``, which maps errors to exit statuses)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import GUESTS
from wasmgate import cli
from wasmgate.cli.call import call

COMP = GUESTS / "comp_types.wat"
Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(capfd: pytest.CaptureFixture[str], cache_dir: Path) -> Iterator[Run]:
    registered = "call" in cli.cli.commands
    if not registered:
        cli.cli.add_command(call)

    def invoke(*args: str | Path) -> tuple[int, str, str]:
        status = cli.main(["call", "--cache-dir", str(cache_dir), *map(str, args)])
        out, err = capfd.readouterr()
        return status, out, err

    yield invoke
    if not registered:
        del cli.cli.commands["call"]


@pytest.mark.parametrize(
    ("args", "out"),
    [
        (['greet("world")'], '"Hello, world!"'),
        (["greet", '"world"'], '"Hello, world!"'),
        (["add(1, 2)"], "3"),
        (["add", "1", "2"], "3"),
        (
            ['echo-people([{name: "a", age: 1}, {name: "b", age: 2}])'],
            '[{name: "a", age: 1}, {name: "b", age: 2}]',
        ),
        (['echo-tuple((7, "x"))'], '(7, "x")'),
        (["echo-perms({write, read})"], "{read, write}"),
        (["echo-option(none)"], "none"),
        (["echo-option(3)"], "some(3)"),
        (["echo-shape(num(-2))"], "num(-2)"),
        (["echo-char('\\u{2603}')"], "'☃'"),
        (["echo-f32(0.1)"], "0.1"),
        (["divide(7, 2)"], "ok(3)"),
        (["spin", "--help"], None),
    ],
)
def test_component_call(run: Run, args: list[str], out: str | None) -> None:
    if out is None:  # after FUNCTION, everything is an argument, even what looks like a flag
        status, _, err = run(COMP, *args)
        assert status == 2
        assert "expected 0 argument(s), got 1" in err
        return
    status, stdout, stderr = run(COMP, *args)
    assert (status, stdout, stderr) == (0, out + "\n", "")


def test_component_err_is_printed_and_fails(run: Run) -> None:
    status, out, err = run(COMP, "divide(1, 0)")
    assert (status, out) == (1, 'err("division by zero")\n')
    assert err == "wasmgate: error: divide returned an error\n"


def test_function_without_result_prints_nothing(run: Run) -> None:
    assert run(COMP, "heap()")[1].strip().isdigit()
    status, out, err = run(COMP, "--timeout", "100ms", "spin()")
    assert status == 1  # options come before MODULE, as for `run`: this is a function name
    assert "no exported function '--timeout'" in err
    status, out, err = run("--timeout", "100ms", COMP, "spin()")
    assert (status, out) == (124, "")
    assert "wasmgate: error: guest timed out after 100ms" in err


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (['add("x", 1)'], 2, "add: column 2: expected u32, found '\"x\", 1)'"),
        (["add(1)"], 2, "add: expected 2 argument(s), got 1"),
        (["add", "1"], 2, "add: expected 2 argument(s), got 1"),
        (["add(1, 2)", "3"], 2, "give the arguments inside the call"),
        (["nope()"], 1, "no exported function 'nope'"),
        (["trap()"], 134, "guest trapped: wasm `unreachable` instruction executed"),
    ],
)
def test_component_call_errors(run: Run, args: list[str], status: int, message: str) -> None:
    code, _out, err = run(COMP, *args)
    assert code == status
    assert message in err
    assert "Traceback" not in err


def test_component_limits_from_flags(run: Run) -> None:
    status, _, err = run("--fuel", "1000", COMP, "spin()")
    assert status == 152
    assert "ran out of fuel (1000 units)" in err
    status, out, _ = run("--max-memory", "256KiB", COMP, "grow(10)")
    assert (status, out) == (0, "-1\n")


def test_component_capabilities_from_flags(run: Run) -> None:
    status, out, _ = run("--env", "A=1", GUESTS / "comp_wasi.wat", "environment()")
    assert (status, out) == (0, '[("A", "1")]\n')
    status, out, _ = run(GUESTS / "comp_wasi.wat", "arguments()")
    assert (status, out) == (0, '["comp_wasi.wat"]\n')


def test_component_with_unprovided_imports(run: Run) -> None:
    status, _, err = run(GUESTS / "comp_host.wat", 'call-log("x")')
    assert status == 1
    assert "5 imports are not provided by the host: log: func(msg: string);" in err


@pytest.fixture(scope="module")
def limits_wasm(guest: Callable[[str], Path]) -> Path:
    return guest("embed_limits")


def test_core_module_call(run: Run, limits_wasm: Path) -> None:
    assert run(limits_wasm, "burn", "5") == (0, "5\n", "")
    assert run(limits_wasm, "pair", "-3") == (0, "-3\n-3\n", "")
    assert run(limits_wasm, "pair(4)") == (0, "4\n4\n", "")
    assert run(limits_wasm, "fadd", "0.5", "0.25") == (0, "0.75\n", "")
    assert run(limits_wasm, "spin()".replace("spin", "count"))[1] == "1\n"


def test_core_module_call_errors(run: Run, limits_wasm: Path) -> None:
    status, _, err = run(limits_wasm, "burn", "x")
    assert status == 2
    assert "burn: argument 0 'x' is not a valid i32" in err
    status, _, err = run(limits_wasm, "nope")
    assert status == 1
    assert "export 'nope' does not exist" in err
    status, _, err = run(limits_wasm, "exit", "3")
    assert status == 3
    status, _, err = run("--timeout", "100ms", limits_wasm, "spin")
    assert status == 124
    status, _, err = run(GUESTS / "embed_missing.wat", "noop")
    assert status == 1
    assert "env::foo: func(i32); env::bar: func() -> i64" in err
