"""The command line as users of the `wasmtime` CLI and of Extism expect it: -W/-S option groups,
--invoke with WAVE on components (the same code as `call`), string arguments for core exports
that follow the string convention, host functions from a Python file, and errors that name the
file or value once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import GUESTS

Run = Callable[..., Any]
COMP = GUESTS / "comp_types.wat"
SPIN = '(module (func (export "_start") (loop $l (br $l))))'


@pytest.fixture
def spin(tmp_path: Path) -> Path:
    path = tmp_path / "spin.wat"
    path.write_text(SPIN)
    return path


@pytest.mark.parametrize(
    ("flags", "status", "text"),
    [
        (["-W", "timeout=200ms"], 124, "timed out after 200ms"),
        (["-W", "fuel=1000"], 152, "ran out of fuel (1000 units)"),
        (["-W", "fuel=1000,timeout=5s"], 152, "ran out of fuel"),
    ],
)
def test_wasm_option_group_sets_the_limits(
    wasmgate: Run, spin: Path, flags: list[str], status: int, text: str
) -> None:
    r = wasmgate("run", *flags, spin)
    assert r.returncode == status, r.stderr
    assert text in r.stderr


@pytest.mark.parametrize(
    ("flags", "text"),
    [
        (["-W", "simd=y"], "simd: not a -W option wasmgate takes (it takes fuel, timeout,"),
        (["-W", "fuel"], "fuel needs a value"),
        (["-W", "fuel=1", "--fuel", "2"], "--fuel is given twice (a flag and -W)"),
        (["-S", "http"], "http: a command gets no network"),
        (["-S", "nope"], "nope: not a -S option wasmgate takes"),
    ],
)
def test_option_groups_refuse_what_they_do_not_take(
    wasmgate: Run, spin: Path, flags: list[str], text: str
) -> None:
    r = wasmgate("run", *flags, spin)
    assert r.returncode == 2
    assert text in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_inherit_env_grants_the_host_environment(
    wasmgate: Run, guest: Callable[[str], Path]
) -> None:
    denied = wasmgate("run", guest("hello"))
    assert "HOST_SECRET" not in denied.stdout
    granted = wasmgate("run", "-S", "inherit-env", guest("hello"))
    assert "env HOST_SECRET=do-not-leak" in granted.stdout


def test_invoke_takes_wave_on_components(wasmgate: Run) -> None:
    r = wasmgate("run", "--invoke", 'greet("Ada")', COMP)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == '"Hello, Ada!"'
    r = wasmgate("run", "--invoke", "add", COMP, "1", "2")
    assert r.stdout.strip() == "3"


def test_call_passes_strings_to_core_exports(wasmgate: Run, guest: Callable[[str], Path]) -> None:
    plugin = guest("embed_plugin")
    host = GUESTS.parent / "host_plugin.py"
    r = wasmgate("call", "--host", host, plugin, "greet", '"Ada"')
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == '"Hello, Ada!"'
    r = wasmgate("call", "--host", host, plugin, 'greet("wasm \\"fan\\"")')
    assert r.stdout.strip() == '"Hello, wasm \\"fan\\"!"'


def test_call_host_functions_from_a_python_file(
    wasmgate: Run, guest: Callable[[str], Path]
) -> None:
    plugin = guest("embed_plugin")
    r = wasmgate("call", "--host", GUESTS.parent / "host_plugin.py", plugin, "count", "3")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["print_int 1", "print_int 2", "print_int 3", "6"]
    missing = wasmgate("call", plugin, "count", "3")
    assert missing.returncode == 1
    for name in ("env::print_int", "env::log", "env::fail"):
        assert name in missing.stderr
    bad = wasmgate("call", "--host", GUESTS.parent / "nope.py", plugin, "count", "3")
    assert bad.returncode == 2
    assert "nope.py: no such file" in bad.stderr


def test_a_string_for_a_numbers_export_names_call_str(
    wasmgate: Run, guest: Callable[[str], Path]
) -> None:
    import wasmgate as api

    inst = api.instantiate(guest("embed_plugin"), imports=_plugin_host())
    with pytest.raises(TypeError, match="call_str"):
        inst.exports.greet("Ada")


def _plugin_host() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("host_plugin", GUESTS.parent / "host_plugin.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.host


def test_errors_name_the_file_once(wasmgate: Run, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("just text")
    r = wasmgate("run", notes)
    assert r.returncode == 1
    assert r.stderr.count("notes.txt") == 1
    assert "not a WebAssembly module or component" in r.stderr
    r = wasmgate("run", "--env", "WASMGATE_SURELY_UNSET", notes)
    assert r.returncode == 2
    assert r.stderr.count("--env") == 1
    assert "WASMGATE_SURELY_UNSET is not set in the host environment" in r.stderr


@pytest.mark.parametrize(
    ("flag", "hint"),
    [
        ("--mapdir", "--dir HOST::GUEST"),
        ("-O", "default optimisation settings"),
        ("--tcplisten", "no sockets"),
    ],
)
def test_other_wasmtime_flags_get_a_hint(wasmgate: Run, spin: Path, flag: str, hint: str) -> None:
    r = wasmgate("run", flag, "x", spin)
    assert r.returncode == 2
    assert r.stderr.startswith(f"wasmgate: error: no such option {flag}: ")
    assert hint in r.stderr


def test_long_spellings_of_the_option_groups(wasmgate: Run, spin: Path) -> None:
    r = wasmgate("run", "--wasm", "timeout=100ms", spin)
    assert r.returncode == 124


@pytest.mark.parametrize("command", ["run", "call", "serve", "compile", "inspect"])
def test_every_flag_has_a_help_line(command: str) -> None:
    import click

    from wasmgate.cli.main import cli

    ctx = click.Context(cli)
    cmd = cli.get_command(ctx, command)
    assert cmd is not None
    for param in cmd.params:
        if isinstance(param, click.Option):
            assert param.help, f"{command} {param.opts[0]} has no help line"
