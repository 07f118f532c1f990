"""`wasmgate run` end to end: the real CLI in a subprocess, real guests built from source."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import Result

Run = Callable[..., Result]
Guest = Callable[[str], Path]


def test_args_stdin_and_success(wasmgate: Run, guest: Guest) -> None:
    r = wasmgate("run", guest("hello"), "one", "two words", "--env", input=b"piped")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[:4] == [
        "argv[0]=hello.wasm",
        "argv[1]=one",
        "argv[2]=two words",
        "argv[3]=--env",
    ]
    assert "stdin=piped" in r.stdout
    assert "hello on stderr" in r.stderr


def test_env_only_as_granted(wasmgate: Run, guest: Guest) -> None:
    r = wasmgate(
        "run",
        "--env",
        "A=1",
        "--env",
        "B=x=y",
        "--env",
        "HOST_SECRET",
        guest("hello"),
        env={"OTHER_HOST_VAR": "nope"},
    )
    assert r.returncode == 0, r.stderr
    envs = sorted(line for line in r.stdout.splitlines() if line.startswith("env "))
    assert envs == ["env A=1", "env B=x=y", "env HOST_SECRET=do-not-leak"]


def test_no_host_env_by_default(wasmgate: Run, guest: Guest) -> None:
    r = wasmgate("run", guest("hello"))
    assert r.returncode == 0
    assert "env " not in r.stdout
    assert "do-not-leak" not in r.stdout


def test_env_copy_of_unset_host_variable_is_a_usage_error(wasmgate: Run, guest: Guest) -> None:
    r = wasmgate("run", "--env", "NOT_SET_ANYWHERE", guest("hello"))
    assert r.returncode == 2
    assert "NOT_SET_ANYWHERE is not set" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("code", [1, 3, 42, 125])
def test_exit_status_is_the_guests(wasmgate: Run, guest: Guest, code: int) -> None:
    r = wasmgate("run", "--env", f"EXIT_CODE={code}", guest("hello"))
    assert r.returncode == code
    assert "Traceback" not in r.stderr


def test_proc_exit_zero_and_invalid_status(wasmgate: Run, tmp_path: Path) -> None:
    src = """(module (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      (memory (export "memory") 1)
      (func (export "_start") (call $exit (i32.const {code}))))"""
    zero = tmp_path / "zero.wat"
    zero.write_text(src.format(code=0))
    assert wasmgate("run", zero).returncode == 0
    bad = tmp_path / "bad.wat"
    bad.write_text(src.format(code=300))
    r = wasmgate("run", bad)
    assert r.returncode == 1
    assert "invalid status" in r.stderr


# --- directories -----------------------------------------------------------------------------


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    """A granted dir `data/` with a file, a secret beside it, and a symlink pointing out."""
    (tmp_path / "secret.txt").write_text("host secret")
    data = tmp_path / "data"
    data.mkdir()
    (data / "in.txt").write_text("inside")
    (data / "sub").mkdir()
    (data / "evil").symlink_to(tmp_path / "secret.txt")
    (data / "evil_dir").symlink_to(tmp_path)
    (data / "abs").symlink_to("/etc/passwd")
    return tmp_path


def fs(wasmgate: Run, guest: Guest, grant: list[str], *args: str) -> Result:
    return wasmgate("run", *grant, guest("fs"), *args)


def test_dir_read_write(wasmgate: Run, guest: Guest, sandbox: Path) -> None:
    grant = ["--dir", f"{sandbox / 'data'}::/data"]
    assert fs(wasmgate, guest, grant, "read", "/data/in.txt").stdout == "ok inside"
    assert fs(wasmgate, guest, grant, "write", "/data/out.txt", "new").returncode == 0
    assert (sandbox / "data" / "out.txt").read_text() == "new"
    assert fs(wasmgate, guest, grant, "rename", "/data/out.txt", "/data/sub/o.txt").returncode == 0
    assert (sandbox / "data" / "sub" / "o.txt").exists()
    listing = fs(wasmgate, guest, grant, "ls", "/data").stdout
    assert "in.txt" in listing
    assert "sub" in listing


def test_dir_guest_path_defaults_to_host_path(wasmgate: Run, guest: Guest, sandbox: Path) -> None:
    data = sandbox / "data"
    r = fs(wasmgate, guest, ["--dir", str(data)], "read", f"{data}/in.txt")
    assert r.stdout == "ok inside"


def test_read_only_dir(wasmgate: Run, guest: Guest, sandbox: Path) -> None:
    grant = ["--dir-ro", f"{sandbox / 'data'}::/data"]
    assert fs(wasmgate, guest, grant, "read", "/data/in.txt").stdout == "ok inside"
    for args in (
        ("write", "/data/x.txt", "x"),
        ("write", "/data/in.txt", "overwrite"),
        ("mkdir", "/data/newdir"),
        ("unlink", "/data/in.txt"),
        ("rename", "/data/in.txt", "/data/moved.txt"),
    ):
        r = fs(wasmgate, guest, grant, *args)
        assert r.returncode == 1, (args, r.stdout)
        assert r.stdout.startswith("err ")
    assert (sandbox / "data" / "in.txt").read_text() == "inside"
    assert sorted(p.name for p in (sandbox / "data").iterdir()) == [
        "abs",
        "evil",
        "evil_dir",
        "in.txt",
        "sub",
    ]


@pytest.mark.parametrize(
    "args",
    [
        ("read", "/data/../secret.txt"),
        ("read", "/data/sub/../../secret.txt"),
        ("read", "/data/evil"),
        ("read", "/data/evil_dir/secret.txt"),
        ("read", "/data/abs"),
        ("read", "/etc/passwd"),
        ("read", "/proc/self/environ"),
        ("ls", "/"),
        ("ls", "/data/.."),
        ("write", "/data/../escaped.txt", "x"),
        ("write", "/data/evil", "overwrite"),
        ("rename", "/data/in.txt", "/data/../moved.txt"),
        ("link", "/data/in.txt", "/data/../linked.txt"),
        ("symlink", "/data/in.txt", "/data/../sl.txt"),
        ("mkdir", "/data/../newdir"),
    ],
)
def test_escape_attempts_fail(
    wasmgate: Run, guest: Guest, sandbox: Path, args: tuple[str, ...]
) -> None:
    before = sorted(p.name for p in sandbox.iterdir())
    r = fs(wasmgate, guest, ["--dir", f"{sandbox / 'data'}::/data"], *args)
    assert r.returncode == 1, r.stdout
    assert r.stdout.startswith("err "), r.stdout
    assert "host secret" not in r.stdout
    assert "root:" not in r.stdout
    assert sorted(p.name for p in sandbox.iterdir()) == before
    assert (sandbox / "secret.txt").read_text() == "host secret"


def test_no_dirs_by_default(wasmgate: Run, guest: Guest, sandbox: Path) -> None:
    r = fs(wasmgate, guest, [], "read", str(sandbox / "secret.txt"))
    assert r.returncode == 1
    assert r.stdout.startswith("err ")


def test_dir_must_exist(wasmgate: Run, guest: Guest, tmp_path: Path) -> None:
    r = wasmgate("run", "--dir", f"{tmp_path / 'missing'}::/x", guest("fs"), "ls", "/x")
    assert r.returncode == 2
    assert "directory not found" in r.stderr


# --- limits ----------------------------------------------------------------------------------

LOOP = '(module (memory (export "memory") 1) (func (export "_start") (loop br 0)))'


def test_timeout(wasmgate: Run, tmp_path: Path) -> None:
    loop = tmp_path / "loop.wat"
    loop.write_text(LOOP)
    started = time.monotonic()
    r = wasmgate("run", "--timeout", "300ms", loop)
    assert r.returncode == 124
    assert "timed out after 300ms" in r.stderr
    assert time.monotonic() - started < 10


def test_timeout_while_blocked_in_host_call(wasmgate: Run, guest: Guest) -> None:
    started = time.monotonic()
    r = wasmgate("run", "--timeout", "500ms", guest("sleeper"), "30")
    assert r.returncode == 124
    assert "timed out" in r.stderr
    assert time.monotonic() - started < 10


def test_fuel(wasmgate: Run, tmp_path: Path, guest: Guest) -> None:
    loop = tmp_path / "loop.wat"
    loop.write_text(LOOP)
    r = wasmgate("run", "--fuel", "100000", loop)
    assert r.returncode == 152
    assert "ran out of fuel" in r.stderr
    # a guest that fits its budget is unaffected
    assert wasmgate("run", "--fuel", "100000000", guest("hello")).returncode == 0


def test_max_memory(wasmgate: Run, guest: Guest) -> None:
    r = wasmgate("run", "--max-memory", "24MiB", guest("memhog"))
    # The guest saw malloc fail and exited 1 its own way: that status stands, with a hint.
    assert r.returncode == 1, r.stdout + r.stderr
    assert "out of memory after" in r.stdout
    assert "wasmgate: hint: " in r.stderr
    assert "near its limit of 24MiB (--max-memory)" in r.stderr
    ok = wasmgate("run", "--max-memory", "64MiB", guest("memhog"), "4")
    assert ok.returncode == 0
    assert "allocated 4 MiB" in ok.stdout


def test_max_memory_below_initial_memory(wasmgate: Run, guest: Guest) -> None:
    r = wasmgate("run", "--max-memory", "1MiB", guest("hello"))
    assert r.returncode == 137
    assert "initial memory is larger" in r.stderr


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--timeout", "0", "greater than zero"),
        ("--timeout", "soon", "invalid duration"),
        ("--fuel", "-5", "greater than zero"),
        ("--fuel", "lots", "invalid number"),
        ("--max-memory", "1.5 parsecs", "invalid size"),
    ],
)
def test_bad_limit_flags(wasmgate: Run, guest: Guest, flag: str, value: str, message: str) -> None:
    r = wasmgate("run", flag, value, guest("hello"))
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr


# --- traps -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ("unreachable", "unreachable"),
        ("(drop (i32.div_s (i32.const 1) (i32.const 0)))", "integer divide by zero"),
        ("(drop (i32.load (i32.const 0x7ffffff0)))", "out of bounds memory access"),
        ("(call $start)", "call stack exhausted"),
    ],
)
def test_trap_exit_134_with_backtrace(wasmgate: Run, tmp_path: Path, body: str, kind: str) -> None:
    wat = tmp_path / "trap.wat"
    wat.write_text(f'(module (memory (export "memory") 1) (func $start (export "_start") {body}))')
    r = wasmgate("run", wat)
    assert r.returncode == 134
    first = r.stderr.splitlines()[0]
    assert first.startswith("wasmgate: error: guest trapped:")
    assert kind in first
    assert "wasm backtrace:" in r.stderr
    assert "Traceback" not in r.stderr
    assert len(r.stderr.splitlines()) < 25


def test_trap_in_start_function(wasmgate: Run, tmp_path: Path) -> None:
    wat = tmp_path / "start.wat"
    wat.write_text('(module (func $s unreachable) (start $s) (func (export "_start")))')
    r = wasmgate("run", wat)
    assert r.returncode == 134
    assert "unreachable" in r.stderr


# --- bad inputs ------------------------------------------------------------------------------


def test_missing_file(wasmgate: Run, tmp_path: Path) -> None:
    r = wasmgate("run", tmp_path / "nope.wasm")
    assert r.returncode == 1
    assert r.stderr.strip() == f"wasmgate: error: {tmp_path / 'nope.wasm'}: no such file"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not a WebAssembly module"),
        (b"hello world, not wasm", "not a WebAssembly module"),
        (b"\x00asm", "truncated"),
        (b"\x00asm\x01\x00\x00\x00\x01\x05", "invalid module"),
        (b"\x00asm\x02\x00\x00\x00", "unsupported WebAssembly binary version"),
        (b'(module (func (export "_start") (i32.bogus)))', "invalid WAT"),
        (b'(module (func (export "_start") (i32.add)))', "type mismatch"),
        (bytes(range(256)) * 4, "not a WebAssembly module"),
    ],
)
def test_bad_modules(wasmgate: Run, tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.wasm"
    path.write_bytes(content)
    r = wasmgate("run", path)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert message in lines[0]


def test_truncated_real_module(wasmgate: Run, guest: Guest, tmp_path: Path) -> None:
    data = guest("hello").read_bytes()
    path = tmp_path / "cut.wasm"
    path.write_bytes(data[: len(data) // 2])
    r = wasmgate("run", path)
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1
    assert "invalid module" in r.stderr


def test_unknown_import(wasmgate: Run, tmp_path: Path) -> None:
    wat = tmp_path / "imp.wat"
    wat.write_text('(module (import "env" "missing" (func)) (func (export "_start")))')
    r = wasmgate("run", wat)
    assert r.returncode == 1
    assert "env::missing" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_no_start_export(wasmgate: Run, tmp_path: Path) -> None:
    wat = tmp_path / "lib.wat"
    wat.write_text('(module (func (export "add") (param i32 i32) (result i32) local.get 0))')
    r = wasmgate("run", wat)
    assert r.returncode == 1
    assert "no exported function '_start'" in r.stderr
    assert "add" in r.stderr


def test_bad_flag_and_directory_module(wasmgate: Run, tmp_path: Path) -> None:
    r = wasmgate("run", "--no-such-flag", "x.wasm")
    assert r.returncode == 2
    assert "No such option" in r.stderr
    r = wasmgate("run", tmp_path)
    assert r.returncode in (1, 2)
    assert "Traceback" not in r.stderr


# --- invoke ----------------------------------------------------------------------------------

CALC = """(module
  (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
  (func (export "mix") (param i64 f64) (result i64 f64) (local.get 0) (local.get 1))
  (func (export "nothing")))"""


@pytest.mark.parametrize(
    ("args", "out"),
    [
        (("add", "1", "2"), "3\n"),
        (("add", "-5", "0x10"), "11\n"),
        (("add", "2147483647", "1"), "-2147483648\n"),
        (("mix", "9007199254740993", "2.5"), "9007199254740993\n2.5\n"),
        (("nothing",), ""),
    ],
)
def test_invoke(wasmgate: Run, tmp_path: Path, args: tuple[str, ...], out: str) -> None:
    wat = tmp_path / "calc.wat"
    wat.write_text(CALC)
    r = wasmgate("run", "--invoke", args[0], wat, *args[1:])
    assert r.returncode == 0, r.stderr
    assert r.stdout == out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("add", "1"), "takes 2 argument(s) (i32, i32), but 1 was given"),
        (("add", "1", "x"), "'x' is not a valid i32"),
        (("add", "1", "99999999999"), "is not a valid i32"),
        (("sub", "1", "2"), "no exported function 'sub'"),
    ],
)
def test_invoke_errors(wasmgate: Run, tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    wat = tmp_path / "calc.wat"
    wat.write_text(CALC)
    r = wasmgate("run", "--invoke", args[0], wat, *args[1:])
    assert r.returncode in (1, 2)
    assert message in r.stderr


def test_invoke_calls_reactor_initialize_first(wasmgate: Run, tmp_path: Path) -> None:
    wat = tmp_path / "reactor.wat"
    wat.write_text("""(module (global $g (mut i32) (i32.const 0))
      (func (export "_initialize") (global.set $g (i32.const 41)))
      (func (export "get") (result i32) (i32.add (global.get $g) (i32.const 1))))""")
    r = wasmgate("run", "--invoke", "get", wat)
    assert r.stdout == "42\n"


# --- version, compile, inspect ---------------------------------------------------------------


def test_version(wasmgate: Run) -> None:
    r = wasmgate("--version")
    assert r.returncode == 0
    assert r.stdout.startswith("wasmgate ")
    assert "wasmtime 50." in r.stdout


def test_compile_and_allow_precompiled(wasmgate: Run, guest: Guest, tmp_path: Path) -> None:
    out = tmp_path / "hello.cwasm"
    r = wasmgate("compile", guest("hello"), "-o", out)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:4] == b"\x7fELF"
    refused = wasmgate("run", out)
    assert refused.returncode == 1
    assert "--allow-precompiled" in refused.stderr
    ok = wasmgate("run", "--allow-precompiled", out, "x")
    assert ok.returncode == 0, ok.stderr
    assert "argv[1]=x" in ok.stdout


def test_precompiled_for_other_settings_is_refused(
    wasmgate: Run, guest: Guest, tmp_path: Path
) -> None:
    out = tmp_path / "fuel.cwasm"
    assert wasmgate("compile", "--fuel-metering", guest("hello"), "-o", out).returncode == 0
    r = wasmgate("run", "--allow-precompiled", out)
    assert r.returncode == 1
    assert "not usable by this engine" in r.stderr
    assert wasmgate("run", "--allow-precompiled", "--fuel", "10000000", out).returncode == 0


def test_corrupt_precompiled_is_refused(wasmgate: Run, guest: Guest, tmp_path: Path) -> None:
    out = tmp_path / "x.cwasm"
    assert wasmgate("compile", guest("hello"), "-o", out).returncode == 0
    out.write_bytes(out.read_bytes()[:200])
    r = wasmgate("run", "--allow-precompiled", out)
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1


def test_inspect_module(wasmgate: Run, tmp_path: Path) -> None:
    wat = tmp_path / "i.wat"
    wat.write_text("""(module (import "env" "log" (func (param i32 i64)))
      (memory (export "memory") 1 2)
      (func (export "add") (param i32 i32) (result i32) local.get 0))""")
    r = wasmgate("inspect", wat)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "i.wat: module",
        "imports (1):",
        "  env::log: func(i32, i64)",
        "exports (2):",
        "  memory: memory(1, 2 pages)",
        "  add: func(i32, i32) -> i32",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run"], "Missing argument 'MODULE'."),
        (["run", "--bogus", "x.wasm"], "No such option '--bogus'"),
        (["run", "--timeout", "0", "x.wasm"], "--timeout: invalid duration '0'"),
        (["run", "--max-memory", "lots", "x.wasm"], "--max-memory: invalid size 'lots'"),
        (["serve", "--threads", "x"], "--threads: invalid"),
    ],
)
def test_usage_errors_are_one_line_with_status_2(
    wasmgate: Callable[..., Any], args: list[str], message: str
) -> None:
    r = wasmgate(*args)
    assert r.returncode == 2
    assert r.stderr.startswith(f"wasmgate: error: {message}"), r.stderr
    assert len(r.stderr.splitlines()) == 1
