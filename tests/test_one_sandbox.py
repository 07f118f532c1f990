"""One sandbox: every face (run, call, the embedding API for modules and components, a served
route) reports each limit the same way, and within the same time.

The guests (tests/guests/faces_core.wat, faces_component.wat) spin, sleep 10 s in one host
call, or grow their memory until refused and then either exit with (pages grown / 64) or divide
by zero. Under a 64 MiB cap a guest starting with one page grows 1023 pages: it exits with 15.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import wasmtime

import wasmgate
from wasihttp_support import require_native
from wasmgate.api import run as api_run
from wasmgate.capabilities import Capabilities, DirGrant, Stdio, request_capabilities
from wasmgate.config import GatewayConfig, RunConfig
from wasmgate.engine import EngineSettings, load, lowlevel
from wasmgate.engine.program import Program
from wasmgate.errors import EXIT_STATUS, GuestExit, GuestTrap, LimitExceeded, UsageError
from wasmgate.gateway import create_app
from wasmgate.gateway.app import BLOCKED_GRACE
from wasmgate.limits import CLI_NAMES, Limits
from wasmgate.wasihttp.host import WasiHost

GUESTS = Path(__file__).resolve().parent / "guests"
TIMEOUT = 1.0
SLACK = 0.5  # every timeout ends within TIMEOUT + SLACK
MEMORY = "64MiB"
FUEL = 1_000_000

# behaviour -> (limits, the outcome every face reports: "timeout"/"fuel"/"exit 15"/"trap ...")
CASES: dict[str, tuple[dict[str, Any], str]] = {
    "spin": ({"timeout": TIMEOUT}, "timeout"),
    "sleep": ({"timeout": TIMEOUT}, "timeout"),
    "spin-fuel": ({"fuel": FUEL}, "fuel"),
    "grow_exit": ({"max_memory": MEMORY}, "exit 15"),
    "grow_divzero": ({"max_memory": MEMORY}, "trap integer divide by zero"),
}


def _export(case: str) -> str:
    return "spin" if case == "spin-fuel" else case


@pytest.fixture(scope="module")
def commands(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``commands("sleep")``: faces_core.wat with ``_start`` running that behaviour."""
    folder = tmp_path_factory.mktemp("faces")
    source = (GUESTS / "faces_core.wat").read_text()

    def get(case: str) -> Path:
        path = folder / f"{case}.wat"
        if not path.exists():
            start = f'(export "_start" (func ${_export(case)}))'
            path.write_text(source.replace(";; START", start))
        return path

    return get


def _timed(fn: Callable[[], str]) -> tuple[str, float]:
    started = time.monotonic()
    result = fn()
    return result, time.monotonic() - started


def _check(case: str, result: str, elapsed: float, startup: float = 0.0) -> None:
    """``startup``: what a subprocess face spends before its guest starts (Python, imports)."""
    assert result == CASES[case][1]
    if result == "timeout":
        assert elapsed < TIMEOUT + SLACK + startup, f"{case}: {elapsed:.2f}s"


def _of_error(err: BaseException) -> str:
    if isinstance(err, LimitExceeded):
        return err.kind
    if isinstance(err, GuestExit):
        return f"exit {err.code}"
    if isinstance(err, GuestTrap):
        return f"trap {err.kind}"
    raise AssertionError(f"unexpected {err!r}")


def _of_status(code: int, stderr: str = "") -> str:
    by_status = {v: k for k, v in EXIT_STATUS.items()}
    kind = by_status.get(code)
    if kind == "trap":
        return "trap " + stderr.split("guest trapped: ", 1)[1].splitlines()[0]
    return kind if kind in ("timeout", "fuel", "memory") else f"exit {code}"


@pytest.mark.parametrize("case", list(CASES))
def test_run_in_process(case: str, commands: Callable[[str], Path]) -> None:
    limits = Limits(**CASES[case][0])
    config = RunConfig(module=commands(case), limits=limits, stdio=Stdio())
    outcome, elapsed = _timed(lambda: _outcome_text(api_run(config)))
    _check(case, outcome, elapsed)


def _outcome_text(outcome: wasmgate.Outcome) -> str:
    if outcome.status == "exit":
        return f"exit {outcome.exit_code}"
    if outcome.status == "trap":
        return f"trap {outcome.trap_kind}"
    return outcome.status


@pytest.mark.parametrize("case", list(CASES))
def test_embed_core(case: str, commands: Callable[[str], Path]) -> None:
    limits = Limits(**CASES[case][0])
    inst = wasmgate.instantiate(commands(case), limits=limits)

    def call() -> str:
        with pytest.raises(wasmgate.WasmgateError) as err:
            inst.call(_export(case))
        return _of_error(err.value)

    result, elapsed = _timed(call)
    _check(case, result, elapsed)


@pytest.mark.parametrize("case", ["spin", "spin-fuel", "grow_divzero"])
def test_embed_component(case: str) -> None:
    limits = Limits(**CASES[case][0])
    inst = wasmgate.instantiate_component(GUESTS / "faces_component.wat", limits=limits)

    def call() -> str:
        with pytest.raises(wasmgate.WasmgateError) as err:
            inst.exports[_export(case).replace("_", "-")]()
        return _of_error(err.value)

    result, elapsed = _timed(call)
    _check(case, result, elapsed)


def test_embed_component_asleep_in_a_host_call() -> None:
    # p2_sleeper.wat sleeps in wasi:io/poll, a host call of wasmgate's WASI preview2 host
    inst = wasmgate.instantiate_component(GUESTS / "p2_sleeper.wat", limits=Limits(timeout=TIMEOUT))

    def call() -> str:
        with pytest.raises(wasmgate.WasmgateError) as err:
            inst.exports.sleep(10_000_000_000)
        return _of_error(err.value)

    result, elapsed = _timed(call)
    _check("sleep", result, elapsed)


def test_embed_component_keeps_the_guests_own_answer_at_the_memory_cap() -> None:
    inst = wasmgate.instantiate_component(
        GUESTS / "faces_component.wat", limits=Limits(max_memory=MEMORY)
    )
    assert inst.exports.grow_pages() == 15


@pytest.mark.parametrize("case", list(CASES))
def test_run_cli(case: str, commands: Callable[[str], Path], wasmgate: Any) -> None:
    flags = [f"{CLI_NAMES[k]}={v}" for k, v in CASES[case][0].items()]
    started = time.monotonic()
    r = wasmgate("run", *flags, commands(case))
    _check(case, _of_status(r.returncode, r.stderr), time.monotonic() - started, _startup())


@pytest.mark.parametrize("case", list(CASES))
def test_call_cli(case: str, commands: Callable[[str], Path], wasmgate: Any) -> None:
    flags = [f"{CLI_NAMES[k]}={v}" for k, v in CASES[case][0].items()]
    started = time.monotonic()
    r = wasmgate("call", *flags, commands(case), _export(case))
    _check(case, _of_status(r.returncode, r.stderr), time.monotonic() - started, _startup())


def test_call_cli_component_asleep_in_a_host_call(wasmgate: Any) -> None:
    started = time.monotonic()
    r = wasmgate("call", "--timeout=1", GUESTS / "p2_sleeper.wat", "sleep", "10000000000")
    elapsed = time.monotonic() - started
    _check("sleep", _of_status(r.returncode, r.stderr), elapsed, _startup())


def test_run_cli_component_asleep_in_a_host_call(wasmgate: Any) -> None:
    # `run` links Wasmtime's own WASI preview2 for commands (see engine/program.py): nothing
    # interrupts its host calls, and the watchdog ends the process BLOCKED_GRACE after the
    # deadline with the same status.
    started = time.monotonic()
    r = wasmgate("run", "--timeout=1", GUESTS / "p2_sleeper.wat")
    elapsed = time.monotonic() - started
    assert _of_status(r.returncode, r.stderr) == "timeout", r.stderr
    assert elapsed < TIMEOUT + BLOCKED_GRACE + SLACK + _startup(), elapsed


_STARTUP: list[float] = []


def _startup() -> float:
    """Allowance for a subprocess face: twice what a `wasmgate` that runs nothing takes (the
    machine may be busy), at least a second. Still far below a 10 s sleep."""
    if not _STARTUP:
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "wasmgate", "--version"], capture_output=True)
        _STARTUP.append(max(1.0, 2 * (time.monotonic() - started)))
    return _STARTUP[0]


@pytest.fixture(scope="module")
def served(commands: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("served")
    entries = []
    for case, (limits, _) in CASES.items():
        lines = [f'[[module]]\nroute = "/{case}"\nmodule = "{commands(case)}"']
        for key, value in limits.items():
            lines.append(f"{key} = {value!r}".replace("'", '"'))
        entries.append("\n".join(lines))
    toml = folder / "modules.toml"
    toml.write_text("\n\n".join(entries) + "\n")
    return toml


@pytest.fixture(scope="module")
def app(served: Path) -> Iterator[Any]:
    application = create_app(GatewayConfig(modules_toml=served, threads=2))
    yield application
    application.close()


SERVED_REASON = {
    "timeout": "guest timed out after 1s",
    "fuel": "guest ran out of fuel",
    "exit 15": "guest exited with status 15",
    "trap integer divide by zero": "guest trapped: integer divide by zero",
}


@pytest.mark.anyio
@pytest.mark.parametrize("case", list(CASES))
async def test_serve(case: str, app: Any, caplog: pytest.LogCaptureFixture) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        started = time.monotonic()
        r = await client.get(f"/{case}")
        elapsed = time.monotonic() - started
    expected = CASES[case][1]
    assert r.status_code == (504 if expected == "timeout" else 500)
    logged = "\n".join(rec.getMessage() for rec in caplog.records)
    assert SERVED_REASON[expected] in logged, logged
    if expected == "timeout":
        assert elapsed < TIMEOUT + SLACK
    if case.startswith("grow"):  # the guest's own failure, and a hint naming the setting
        assert f'(max_memory of route "/{case}" in modules.toml)' in logged


def test_embed_component_whose_start_outlives_its_deadline() -> None:
    """The deadline interrupting a component's instantiation (its start function) is a timeout,
    not a link error."""

    def instantiate() -> str:
        with pytest.raises(wasmgate.WasmgateError) as err:
            wasmgate.instantiate_component(
                GUESTS / "slow_start_component.wat", limits=Limits(timeout=TIMEOUT)
            )
        return _of_error(err.value)

    result, elapsed = _timed(instantiate)
    assert result == "timeout", result
    assert elapsed < TIMEOUT + 0.5


def test_a_run_whose_instantiation_outlives_its_deadline_is_a_timeout() -> None:
    """The per-run path of served wasi:http routes (``Program.run`` with wasmgate's WASI host): an
    instantiation the deadline interrupts (here a spinning start function; under load, any slow
    one inline) is a timeout outcome (504), never a ``LinkError`` escaping the request."""
    guest = load(GUESTS / "slow_start_component.wat")
    component = guest.as_component()
    host = WasiHost(component, guest.engine.engine, label="slow-start")
    program = Program(guest, host=host)
    started = time.monotonic()
    outcome = program.run(Capabilities(), Limits(timeout=TIMEOUT), invoke=lambda s, i: None)
    assert outcome.status == "timeout", outcome
    assert outcome.http_status == 504
    assert time.monotonic() - started < TIMEOUT + 0.5


# --- a served run in one C call (sandbox.run_command) against the usual path ---------------


def _served_run(
    program: Program,
    limits: Limits,
    folder: Path,
    how: str,
    monkeypatch: pytest.MonkeyPatch,
    entry: str = "_start",
    dirs: tuple[DirGrant, ...] = (),
) -> tuple[Any, bytes]:
    """(outcome, stdout) of one run in a served request's shape (argv, an environment, stdin
    bytes, stdout and stderr files), made in C (``how="c"``) or on the usual path."""
    with monkeypatch.context() as patch:
        if how == "python":
            patch.setattr(lowlevel, "native", lambda: None)
        else:
            require_native()
        out, err = folder / f"out-{how}", folder / f"err-{how}"
        caps = request_capabilities(["/route", "a=1"], {"K": "v"}, dirs, b"body", out, err)
        outcome = program.run(caps, limits, entry=entry)
    return outcome, out.read_bytes()


def _metering(limits: Limits) -> EngineSettings:
    """The engine a route with ``limits`` runs on: one metering fuel when it has a fuel limit."""
    return EngineSettings(consume_fuel=limits.fuel is not None)


def _same_outcome(c: Any, python: Any) -> None:
    fields = ("status", "exit_code", "message", "trap_kind", "memory_size", "hint")
    assert [getattr(c, f) for f in fields] == [getattr(python, f) for f in fields]
    assert (c.fuel_consumed is None) == (python.fuel_consumed is None)


@pytest.mark.parametrize("case", list(CASES))
def test_a_served_run_ends_the_same_in_c_and_in_python(
    case: str, commands: Callable[[str], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    limits = Limits(**CASES[case][0])
    program = Program(load(commands(case), settings=_metering(limits)))
    c, _ = _served_run(program, limits, tmp_path, "c", monkeypatch)
    python, _ = _served_run(program, limits, tmp_path, "python", monkeypatch)
    _same_outcome(c, python)
    assert _outcome_text(c) == CASES[case][1]


ENTRIES = """(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $inits (mut i32) (i32.const 0))
  (func $say (param $text i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $text))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "_initialize") (global.set $inits (i32.add (global.get $inits) (i32.const 1))))
  (func (export "_start")
    ;; echo stdin, then the argument count as one digit
    (i32.store (i32.const 0) (i32.const 100))
    (i32.store (i32.const 4) (i32.const 64))
    (drop (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $say (i32.const 100) (i32.load (i32.const 8)))
    (drop (call $args (i32.const 16) (i32.const 20)))
    (i32.store8 (i32.const 24) (i32.add (i32.const 48) (i32.load (i32.const 16))))
    (call $say (i32.const 24) (i32.const 1)))
  (func (export "other")
    ;; its own name and how many times _initialize ran before it
    (i32.store8 (i32.const 24) (i32.add (i32.const 48) (global.get $inits)))
    (call $say (i32.const 24) (i32.const 1)))
  (func (export "not_a_function_table") unreachable)
  (table (export "table") 1 funcref))
"""


@pytest.mark.parametrize(
    ("entry", "fuel", "stdout"),
    [("_start", None, b"body2"), ("_start", FUEL, b"body2"), ("other", None, b"1")],
)
def test_a_served_run_gives_the_same_output_and_fuel_in_c_and_in_python(
    entry: str, fuel: int | None, stdout: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # stdin, argv and the entry run (after _initialize, once) as on the usual path; with a
    # fuel limit the store is kept to say what was consumed
    limits = Limits(fuel=fuel, timeout=5.0)
    program = Program(load(ENTRIES.encode(), settings=_metering(limits)))
    c, c_out = _served_run(program, limits, tmp_path, "c", monkeypatch, entry)
    python, python_out = _served_run(program, limits, tmp_path, "python", monkeypatch, entry)
    _same_outcome(c, python)
    assert c.status == "ok", c
    assert c_out == python_out == stdout
    assert c.fuel_consumed == python.fuel_consumed
    assert (c.fuel_consumed is not None) == (fuel is not None)


@pytest.mark.parametrize("how", ["c", "python"])
def test_a_served_run_refuses_what_it_cannot_run_alike(
    how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    program = Program(load(ENTRIES.encode()))
    limits = Limits(timeout=5.0)
    for entry in ("missing", "table"):  # no such export; not a function
        with pytest.raises(KeyError, match=entry):
            _served_run(program, limits, tmp_path, how, monkeypatch, entry)
    with monkeypatch.context() as patch:  # a capture file that cannot be opened
        if how == "python":
            patch.setattr(lowlevel, "native", lambda: None)
        out = tmp_path / "no" / "such" / "dir"
        caps = request_capabilities([], {}, (), b"", out, tmp_path / "err")
        with pytest.raises(wasmtime.WasmtimeError, match="stdout"):
            program.run(caps, limits)


# Opens a.txt in the preopened directory (fd 3) and copies it to stdout, then tries to create
# new.txt there and writes the errno of that as two digits.
VOLUME = """(module
  (import "wasi_snapshot_preview1" "path_open" (func $open
    (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 200) "a.txt")
  (data (i32.const 220) "new.txt")
  (func $out (param $at i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $at))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "_start") (local $errno i32)
    (if (i32.eqz (call $open (i32.const 3) (i32.const 0) (i32.const 200) (i32.const 5)
          (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 300)))
      (then
        (i32.store (i32.const 0) (i32.const 400))
        (i32.store (i32.const 4) (i32.const 64))
        (drop (call $read (i32.load (i32.const 300)) (i32.const 0) (i32.const 1) (i32.const 8)))
        (call $out (i32.const 400) (i32.load (i32.const 8)))))
    (local.set $errno (call $open (i32.const 3) (i32.const 0) (i32.const 220) (i32.const 7)
      (i32.const 1) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 304)))
    (i32.store8 (i32.const 500)
      (i32.add (i32.const 48) (i32.div_u (local.get $errno) (i32.const 10))))
    (i32.store8 (i32.const 501)
      (i32.add (i32.const 48) (i32.rem_u (local.get $errno) (i32.const 10))))
    (call $out (i32.const 500) (i32.const 2))))
"""


@pytest.mark.parametrize("read_only", [False, True], ids=["writable", "read-only"])
def test_a_served_run_with_a_volume_is_the_same_in_c_and_in_python(
    read_only: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    program = Program(load(VOLUME.encode()))
    limits = Limits(timeout=5.0)
    outputs = []
    for how in ("c", "python"):
        volume = tmp_path / f"volume-{how}"
        volume.mkdir()
        (volume / "a.txt").write_bytes(b"hello")
        grant = DirGrant(volume, "/data", read_only=read_only)
        outcome, out = _served_run(program, limits, tmp_path, how, monkeypatch, dirs=(grant,))
        assert outcome.status == "ok", outcome
        outputs.append((out, (volume / "new.txt").exists()))
    assert outputs[0] == outputs[1]
    # a read-only volume refuses the create: EPERM (63), and nothing is made
    assert outputs[0] == ((b"hello63", False) if read_only else (b"hello00", True))


@pytest.mark.parametrize("how", ["c", "python"])
def test_a_served_run_refuses_a_volume_it_cannot_open_alike(
    how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    program = Program(load(VOLUME.encode()))
    grant = DirGrant(tmp_path / "missing", "/data")
    with pytest.raises(UsageError, match=r"cannot preopen directory .*missing"):
        _served_run(program, Limits(timeout=5.0), tmp_path, how, monkeypatch, dirs=(grant,))
