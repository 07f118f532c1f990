"""Embedded components get wasmgate's WASI preview2 host (the one wasi:http routes use): its
waits end at each call's deadline, and it grants exactly the capabilities, with the embedding
API's stdio semantics.

Guests: tests/guests/p2_sleeper.wat (asleep in wasi:io/poll or pollable.block) and
tests/guests/comp_stdio.wat (stdin, stdout, stderr, exit and preopens through the interfaces).
"""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import wasmgate
from conftest import GUESTS
from wasmgate import CAPTURE, Capabilities, DirGrant, Limits, Stdio
from wasmgate.errors import GuestExit, LimitExceeded, UsageError, WasmgateError

SLEEPER = GUESTS / "p2_sleeper.wat"
STDIO = GUESTS / "comp_stdio.wat"
TEN_SECONDS = 10_000_000_000  # ns


@pytest.mark.parametrize("export", ["sleep", "block"])
def test_a_component_asleep_in_a_wasi_wait_is_stopped_at_its_timeout(export: str) -> None:
    inst = wasmgate.instantiate_component(SLEEPER, limits=Limits(timeout=1))
    started = time.monotonic()
    with pytest.raises(LimitExceeded) as err:
        inst.exports[export](TEN_SECONDS)
    elapsed = time.monotonic() - started
    assert err.value.kind == "timeout"
    assert str(err.value) == "guest timed out after 1s (wall clock)"
    assert elapsed < 1.5, elapsed


def test_the_deadline_is_per_call() -> None:
    inst = wasmgate.instantiate_component(SLEEPER, limits=Limits(timeout=0.5))
    started = time.monotonic()
    for _ in range(3):  # 0.9 s in all: each call has its own 0.5 s
        inst.exports.sleep(300_000_000)
    assert time.monotonic() - started >= 0.9
    unlimited = wasmgate.instantiate_component(SLEEPER)
    started = time.monotonic()
    unlimited.exports.block(200_000_000)
    assert 0.2 <= time.monotonic() - started < 5


def test_polling_two_pollables_is_an_error_the_binding_causes(tmp_path: Path) -> None:
    # wasmtime-py 50 fails to lift a second borrowed handle into a Python host function: the
    # call fails with a host error saying so, not with the engine's internal-bug text.
    inst = wasmgate.instantiate_component(SLEEPER)
    with pytest.raises(WasmgateError) as err:
        inst.exports.sleep_two(TEN_SECONDS)
    assert type(err.value) is WasmgateError
    assert "more than one borrowed handle" in str(err.value)
    assert "poll on several pollables" in str(err.value)


def test_stdin_bytes_stdout_and_stderr_captured() -> None:
    caps = Capabilities(stdio=Stdio(stdin=b"hello stdin", stdout=CAPTURE, stderr=CAPTURE))
    inst = wasmgate.instantiate_component(STDIO, capabilities=caps)
    assert inst.exports.echo() == 11
    assert inst.stdout == b"hello stdin"
    assert inst.stderr == b"to stderr\n"
    assert inst.exports.echo() == 0  # stdin is at its end: the stream stays one stream
    assert inst.stderr == b"to stderr\nto stderr\n"


def test_file_like_streams_and_files(tmp_path: Path) -> None:
    out, err = io.BytesIO(), io.StringIO()  # a text stream gets UTF-8
    caps = Capabilities(stdio=Stdio(stdin=io.BytesIO(b"from a reader"), stdout=out, stderr=err))
    inst = wasmgate.instantiate_component(STDIO, capabilities=caps)
    assert inst.exports.echo() == 13
    assert out.getvalue() == b"from a reader"
    assert err.getvalue() == "to stderr\n"
    (tmp_path / "in.txt").write_bytes(b"from a file")
    (tmp_path / "out.txt").write_bytes(b"old content, truncated")
    stdio = Stdio(stdin=tmp_path / "in.txt", stdout=tmp_path / "out.txt", stderr=None)
    with wasmgate.instantiate_component(STDIO, capabilities=Capabilities(stdio=stdio)) as inst:
        assert inst.exports.echo() == 11
    assert (tmp_path / "out.txt").read_bytes() == b"from a file"


def test_nothing_granted_by_default() -> None:
    inst = wasmgate.instantiate_component(STDIO)
    assert inst.exports.echo() == 0  # stdin empty; stdout and stderr accept and discard
    assert inst.exports.preopens() == []
    with pytest.raises(ValueError, match="stdout is not captured"):
        _ = inst.stdout


def test_preopens_with_read_only(tmp_path: Path) -> None:
    (tmp_path / "rw").mkdir()
    (tmp_path / "ro").mkdir()
    dirs = (DirGrant(tmp_path / "rw", "/rw"), DirGrant(tmp_path / "ro", "/ro", read_only=True))
    inst = wasmgate.instantiate_component(STDIO, capabilities=Capabilities(dirs=dirs))
    folders = inst.exports.preopens()
    assert [guest for _, guest in folders] == ["/rw", "/ro"]
    read, mutate = 1, 1 << 5  # descriptor-flags: a folder is never open for "write"
    assert [inst.exports.flags(handle) for handle, _ in folders] == [read | mutate, read]
    missing = Capabilities(dirs=(DirGrant(tmp_path / "missing", "/m"),))
    with pytest.raises(UsageError, match="cannot preopen directory"):
        wasmgate.instantiate_component(STDIO, capabilities=missing)


def test_exit() -> None:
    inst = wasmgate.instantiate_component(STDIO)
    assert inst.exports.quit(True) is None  # exit(ok) ends the call normally
    inst = wasmgate.instantiate_component(STDIO)
    with pytest.raises(GuestExit) as err:
        inst.exports.quit(False)
    assert err.value.code == 1


def test_inherited_stdio(tmp_path: Path) -> None:
    code = f"""
        import wasmgate
        from wasmgate import INHERIT, Capabilities, Stdio
        caps = Capabilities(stdio=Stdio(INHERIT, INHERIT, INHERIT))
        inst = wasmgate.instantiate_component({str(STDIO)!r}, capabilities=caps)
        print(inst.exports.echo(), flush=True)
        """
    (tmp_path / "in").write_bytes(b"piped in")
    with open(tmp_path / "in", "rb") as stdin:
        r = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)], stdin=stdin, capture_output=True
        )
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"piped in8\n"
    assert r.stderr == b"to stderr\n"


def test_a_blocking_read_of_inherited_stdin_ends_at_the_deadline() -> None:
    code = f"""
        import time, wasmgate
        from wasmgate import INHERIT, Capabilities, Limits, Stdio
        caps = Capabilities(stdio=Stdio(stdin=INHERIT))
        inst = wasmgate.instantiate_component(
            {str(STDIO)!r}, capabilities=caps, limits=Limits(timeout=0.5)
        )
        started = time.monotonic()
        try:
            inst.exports.echo()
        except wasmgate.LimitExceeded as e:
            print(e.kind, time.monotonic() - started < 1.0)
        """
    # stdin is a pipe nobody writes to, kept open: the guest's read would wait forever
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    assert proc.stderr is not None
    try:
        out = proc.stdout.read()  # until the child exits, its stdin still open
        err = proc.stderr.read()
    finally:
        proc.stdin.close()
        proc.kill()
        proc.wait()
    assert out == b"timeout True\n", err
