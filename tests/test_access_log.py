"""The access log off the request path (issue 16): records formatted as before, written in batches
of whole lines, none lost under load with several workers, none torn, complete after SIGTERM,
flushed within the flush interval while idle, and still a logger's records under another host."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway_support import free_port, running_server, wat_guest
from wasihttp_support import IN_CI
from wasmgate.engine.lowlevel import NATIVE_VARIABLE
from wasmgate.gateway import accesslog
from wasmgate.gateway.accesslog import (
    FLUSH_INTERVAL,
    PIPE_BUF,
    BatchWriter,
    LineWriter,
    format_record,
)

LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO (?:\[worker (\d+)\] )?wasmgate\.access: (\{.*\})$"
)


# --- the record --------------------------------------------------------------------------------


PATHS = [
    "/hello",
    '/q"uote\\back',
    "/ctl\x00\x1f\x7f",
    "/caf\u00e9/\u2028/\U0001f600",
    "/" + "x" * 9000,
]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("guest", [None, 0.0004567, 2.5])
def test_a_record_is_what_json_dumps_wrote(path: str, guest: float | None) -> None:
    fields = dict(
        id="1a2b-3c",
        method="GET",
        path=path,
        route="/...",
        status=200,
        cause="ok",
        ms=round(0.0123456 * 1000, 3),
        guest_ms=round(guest * 1000, 3) if guest is not None else None,
        inline=guest is None,
        bytes_in=7,
        bytes_out=24,
        client=None if guest else "127.0.0.1",
    )
    record = format_record(
        "1a2b-3c",
        "GET",
        path,
        "/...",
        200,
        "ok",
        0.0123456,
        guest,
        guest is None,
        7,
        24,
        None if guest else "127.0.0.1",
    )
    assert record == json.dumps(fields, separators=(",", ":"))
    assert record.isascii()
    assert "\n" not in record


@settings(max_examples=3000, deadline=None)
@given(
    st.one_of(
        st.floats(min_value=0, max_value=1e13, allow_nan=False),
        st.integers(min_value=0, max_value=10**12).map(lambda n: n / 1e6),
        st.sampled_from([0.0, 1e-9, 0.0005, 0.0015, 0.0125, 2.5, 1e12, 1e13, -0.001, 1e20]),
    )
)
def test_durations_are_written_as_json_dumps_writes_them_rounded(seconds: float) -> None:
    assert accesslog._ms(seconds) == json.dumps(round(seconds * 1000, 3))


# --- the writer --------------------------------------------------------------------------------

WRITERS = ("c", "python")  # the extension's Writer, the pure-Python BatchWriter


def _extension() -> Any:
    """The ``_accesslog`` extension; skipped where it was not built (no C compiler at install),
    a failure in CI, where setup always builds it: the C writer must not go untested."""
    module = accesslog._extension()
    if module is not None:
        return module
    message = "wasmgate._accesslog is not built (pip install -e . needs a C compiler)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def _writer(kind: str, fd: int, interval: float = FLUSH_INTERVAL, tag: str = "") -> LineWriter:
    if kind == "c":
        _extension()
    writer = accesslog.open_writer(fd, interval, tag, native=kind == "c")
    assert isinstance(writer, BatchWriter) is (kind == "python")
    return writer


@contextlib.contextmanager
def _file_writer(path: Path, kind: str, interval: float = FLUSH_INTERVAL) -> Iterator[LineWriter]:
    """A ``kind`` writer appending to the file ``path``, closed (and the file) afterwards."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        writer = _writer(kind, fd, interval)
        try:
            yield writer
        finally:
            writer.close()
    finally:
        os.close(fd)


def test_the_c_writer_is_used_where_it_was_built(monkeypatch: pytest.MonkeyPatch) -> None:
    module = _extension()
    r, w = os.pipe()
    try:
        writer = accesslog.open_writer(w)
        assert isinstance(writer, module.Writer)
        writer.close()
        monkeypatch.setenv(NATIVE_VARIABLE, "0")  # the one switch back to pure Python
        writer = accesslog.open_writer(w)
        assert isinstance(writer, BatchWriter)
        writer.close()
    finally:
        os.close(r)
        os.close(w)


def _lines(n: int, prefix: str = "line") -> list[str]:
    # Sizes from tiny to past PIPE_BUF, so batches have to be cut.
    return [f"{prefix} {i} {'y' * (i * 37 % 5000)}\n" for i in range(n)]


def _drain(fd: int, out: bytearray) -> None:
    while True:
        data = os.read(fd, 65536)
        if not data:
            return
        out += data


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=9000), max_size=40),
    st.sampled_from([0, PIPE_BUF, 100]),
)
def test_writes_carry_whole_lines_of_at_most_a_chunk(sizes: list[int], chunk: int) -> None:
    data = b"".join(b"x" * n + b"\n" for n in sizes)
    ends = accesslog.cuts(data, chunk)
    assert ends == _extension().cuts(data, chunk)  # the C writer cuts where Python does
    starts = [0, *ends][: len(ends)]
    assert (ends[-1] if ends else 0) == len(data)
    for start, end in zip(starts, ends, strict=True):
        piece = data[start:end]
        assert piece.endswith(b"\n")
        if chunk:
            assert len(piece) <= chunk or piece.count(b"\n") == 1, (len(piece), chunk)
            if end < len(data):  # as many lines as fit: the next one would not have
                assert len(piece) + data.index(b"\n", end) + 1 - end > chunk
        else:
            assert end == len(data)  # a regular file: the whole batch at once


def test_pipe_writes_are_whole_lines_of_at_most_pipe_buf(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bytes] = []  # os.write as the pure-Python writer makes it
    real = os.write

    def write(fd: int, data: bytes | memoryview) -> int:
        calls.append(bytes(data))
        return real(fd, data)

    monkeypatch.setattr(accesslog.os, "write", write)
    r, w = os.pipe()
    got = bytearray()
    reader = threading.Thread(target=_drain, args=(r, got))
    reader.start()
    writer = BatchWriter(w, interval=0.05)
    lines = _lines(600)
    for line in lines:
        writer.write(line)
    writer.close()
    os.close(w)
    reader.join(10)
    os.close(r)
    assert got.decode() == "".join(lines)  # all of them, in order
    assert 1 < len(calls) == writer.writes < len(lines)  # batched
    for data in calls:
        assert data.endswith(b"\n")
        assert len(data) <= PIPE_BUF or data.count(b"\n") == 1, len(data)


@pytest.mark.parametrize("kind", WRITERS)
def test_a_pipe_gets_every_line_in_order_in_batches(kind: str) -> None:
    r, w = os.pipe()
    got = bytearray()
    # The writer first: a skipped C writer must not leave a reader blocked on an open pipe.
    writer = _writer(kind, w, interval=0.05)
    reader = threading.Thread(target=_drain, args=(r, got))
    reader.start()
    lines = _lines(600)
    for line in lines:
        writer.write(line)
    writer.close()
    os.close(w)
    reader.join(10)
    os.close(r)
    assert got.decode() == "".join(lines)
    writes = writer.writes  # type: ignore[attr-defined]
    total = len("".join(lines))
    assert total // PIPE_BUF < writes < len(lines), writes  # batched, and cut for the pipe
    assert writer.errors == 0


@pytest.mark.parametrize("kind", WRITERS)
def test_a_regular_file_gets_one_write_per_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    monkeypatch.setattr(accesslog, "SOFT_LIMIT", 64 * 1024 * 1024)  # no early batch
    path = tmp_path / "log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        writer = _writer(kind, fd, interval=30)  # only close writes
        lines = _lines(300)
        for line in lines:
            writer.write(line)
        assert path.read_text() == ""  # nothing written on the caller's path
        writer.close()
        writer.close()  # idempotent
    finally:
        os.close(fd)
    assert path.read_text() == "".join(lines)
    assert writer.writes == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", WRITERS)
def test_an_idle_writer_flushes_within_its_interval(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "log"
    with _file_writer(path, kind) as writer:
        for round_ in range(2):  # the second batch starts after an idle wait
            started = time.monotonic()
            writer.write(f"one {round_}\n")
            while f"one {round_}\n" not in path.read_text():
                assert time.monotonic() - started < FLUSH_INTERVAL + 1.0
                time.sleep(0.01)
            assert time.monotonic() - started >= FLUSH_INTERVAL * 0.5  # batched, not at once


@pytest.mark.parametrize("kind", WRITERS)
def test_a_soft_limit_of_lines_wakes_the_writer_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    monkeypatch.setattr(accesslog, "SOFT_LIMIT", 1000)
    path = tmp_path / "log"
    with _file_writer(path, kind, interval=30) as writer:
        writer.write("a" * 600 + "\n")
        time.sleep(0.2)
        assert path.read_text() == ""  # under the soft limit: waits for its interval
        writer.write("b" * 600 + "\n")
        deadline = time.monotonic() + 10
        while path.read_text() != "a" * 600 + "\n" + "b" * 600 + "\n":
            assert time.monotonic() < deadline
            time.sleep(0.01)


@pytest.mark.parametrize("kind", WRITERS)
def test_past_the_hard_limit_the_caller_writes_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    monkeypatch.setattr(accesslog, "HARD_LIMIT", 1000)
    path = tmp_path / "log"
    with _file_writer(path, kind, interval=30) as writer:
        writer.write("a" * 600 + "\n")
        assert path.read_text() == ""
        writer.write("b" * 600 + "\n")
        assert path.read_text() == "a" * 600 + "\n" + "b" * 600 + "\n"


@pytest.mark.parametrize("kind", WRITERS)
def test_a_line_after_close_is_written_at_once(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        writer = _writer(kind, fd, interval=30)
        writer.write("before\n")
        writer.close()
        writer.write("after\n")  # a request finishing while the server stops: not lost
        assert path.read_text() == "before\nafter\n"
    finally:
        os.close(fd)


@pytest.mark.parametrize("kind", WRITERS)
def test_a_closed_fd_counts_errors_and_loses_no_caller(kind: str) -> None:
    r, w = os.pipe()
    os.close(r)  # nobody reads: every write fails (EPIPE; SIGPIPE is ignored by Python)
    writer = _writer(kind, w, interval=30)
    writer.write("lost\n")
    writer.flush()
    writer.close()
    os.close(w)
    assert writer.errors == 1


@pytest.mark.parametrize("kind", WRITERS)
def test_threads_writing_at_once_lose_nothing(monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    monkeypatch.setattr(accesslog, "SOFT_LIMIT", 4096)  # many early flushes, racing the writers
    r, w = os.pipe()
    got = bytearray()
    # The writer first: a skipped C writer must not leave a reader blocked on an open pipe.
    writer = _writer(kind, w, interval=0.01)
    reader = threading.Thread(target=_drain, args=(r, got))
    reader.start()

    def produce(k: int) -> None:
        for line in _lines(400, prefix=f"t{k}"):
            writer.write(line)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(produce, range(4)))
    writer.close()
    os.close(w)
    reader.join(10)
    os.close(r)
    out = got.decode().splitlines(keepends=True)
    for k in range(4):  # every line, each thread's in its order
        assert [ln for ln in out if ln.startswith(f"t{k} ")] == _lines(400, prefix=f"t{k}")
    assert len(out) == 1600


# --- the line ----------------------------------------------------------------------------------

TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
SECONDS = st.one_of(
    st.floats(min_value=0, max_value=1e13, allow_nan=False),
    st.integers(min_value=0, max_value=10**12).map(lambda n: n / 1e6),
    st.sampled_from([0.0, 1e-9, 0.0005, 2.5, 1e12, -0.001, 1e20, -1e300, float("inf")]),
)
COUNT = st.one_of(st.integers(min_value=0, max_value=10**7), st.integers(min_value=-(10**30)))


def _written(kind: str, args: tuple[Any, ...], tag: str) -> str:
    r, w = os.pipe()
    try:
        writer = _writer(kind, w, 30, tag)
        writer.record(*args)
        writer.close()
        os.close(w)
        w = -1
        data = os.read(r, 1 << 20)
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    return data.decode("utf-8", "surrogateescape")


@settings(max_examples=400, deadline=None)
@given(
    st.tuples(
        TEXT,
        TEXT,
        TEXT,
        TEXT,
        COUNT,
        TEXT,
        SECONDS,
        st.none() | SECONDS,
        st.booleans(),
        COUNT,
        COUNT,
        st.none() | TEXT,
    ),
    st.sampled_from(["", "[worker 7] "]),
)
def test_the_c_writer_writes_the_pure_python_line(args: tuple[Any, ...], tag: str) -> None:
    before = time.time()
    c_line = _written("c", args, tag)
    python_line = _written("python", args, tag)
    after = time.time()
    m = LINE.match(c_line.rstrip("\n"))
    assert m is not None, c_line
    assert c_line.endswith("\n")
    assert c_line.count("\n") == 1
    assert c_line[23:] == python_line[23:]  # all but the time stamp: read by the clock
    assert c_line[23:] == f" INFO {tag}wasmgate.access: {format_record(*args)}\n"
    for line in (c_line, python_line):  # logging's asctime, local time, to the millisecond
        stamp = time.mktime(time.strptime(line[:19], "%Y-%m-%d %H:%M:%S")) + int(line[20:23]) / 1e3
        assert int(before) - 1 <= stamp <= after + 1


@pytest.mark.parametrize(
    "bad",
    [
        (1, "GET", "/", "/", 200, "ok", 0.1, None, True, 0, 0, None),
        ("r", "GET", "/", "/", "200", "ok", 0.1, None, True, 0, 0, None),
        ("r", "GET", "/", "/", 200, "ok", "0.1", None, True, 0, 0, None),
        ("r", "GET", "/", "/", 200, "ok", 0.1, None, True, 0, 0, b"client"),
        ("r", "GET", "/", "/", 200, "ok"),
    ],
)
def test_the_c_writer_refuses_a_malformed_record_and_queues_nothing(bad: tuple[Any, ...]) -> None:
    r, w = os.pipe()
    try:
        writer = _writer("c", w, 30)
        with pytest.raises(TypeError):
            writer.record(*bad)
        assert writer.waiting == 0  # type: ignore[attr-defined]
        writer.close()
    finally:
        os.close(r)
        os.close(w)


# --- where records go --------------------------------------------------------------------------

DIRECT_SCRIPT = r"""
import logging, sys
from wasmgate.gateway import accesslog
from wasmgate.gateway.server import LOG_FORMAT

mode = sys.argv[1]
tag = "[worker 3] " if mode == "worker" else ""
logging.basicConfig(level=logging.INFO, format=LOG_FORMAT.replace("%(name)s", tag + "%(name)s"))
if mode == "custom":
    logging.getLogger("wasmgate.access").addHandler(logging.StreamHandler(sys.stdout))
started = accesslog.start_direct(LOG_FORMAT, tag)
print("direct" if started else "logger", flush=True)
args = ("r-1", "GET", "/p", "/p", 200, "ok", 0.001, None, True, 0, 2, None)
accesslog.access_log(*args)
logging.getLogger("wasmgate.access").info("via logging")
"""


@pytest.mark.parametrize("mode", ["plain", "worker", "custom"])
def test_direct_lines_are_the_lines_logging_writes(mode: str) -> None:
    """``start_direct`` writes exactly the line logging would have (compared with a record logged
    just after it), and stays out of the way of logging configured otherwise."""
    r = subprocess.run(
        [sys.executable, "-c", DIRECT_SCRIPT, mode], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == ("logger" if mode == "custom" else "direct")
    lines = r.stderr.splitlines()
    assert len(lines) == 2, r.stderr
    [direct] = [ln for ln in lines if '"id":"r-1"' in ln]
    [logged] = [ln for ln in lines if ln.endswith(": via logging")]
    record = LINE.match(direct)
    assert record is not None, lines
    assert json.loads(record.group(2))["id"] == "r-1"
    assert (record.group(1) == "3") is (mode == "worker")
    # logging's own line for a record logged just after: the same timestamp format, level,
    # worker tag and logger name
    stamp = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")
    assert stamp.match(logged)
    assert direct[23:].split(": ", 1)[0] == logged[23:].split(": ", 1)[0]
    if mode == "custom":  # the application's own handler got it as a record
        assert '"id":"r-1"' in r.stdout


# --- a real server -----------------------------------------------------------------------------


def _site(tmp_path: Path) -> Path:
    (tmp_path / "hi.wat").write_text(wat_guest(b"Content-Type: text/plain\n\nhi\n"))
    toml = tmp_path / "modules.toml"
    toml.write_text('[[module]]\nroute = "/..."\nmodule = "hi.wat"\n')
    return toml


def _load(base: str, clients: int, each: int, path: str = "/hi") -> int:
    """``clients`` threads sending ``each`` requests, a connection each: with several workers
    the kernel spreads connections at random, and a handful of kept-alive ones all land on one
    worker now and then (6 of them: one run in 32)."""

    def client(k: int) -> int:
        ok = 0
        with httpx.Client(base_url=base, timeout=30, headers={"Connection": "close"}) as c:
            for i in range(each):
                assert c.get(f"{path}/{k}/{i}").status_code == 200
                ok += 1
        return ok

    with ThreadPoolExecutor(clients) as pool:
        return sum(pool.map(client, range(clients)))


def _access_lines(text: str, path: str = "/hi") -> list[tuple[str | None, dict[str, object]]]:
    out = []
    for line in text.splitlines():
        if "wasmgate.access" not in line:
            continue
        m = LINE.match(line)
        assert m is not None, f"not a whole access line: {line[:300]!r}"
        record = json.loads(m.group(2))
        if str(record["path"]).startswith(path):
            out.append((m.group(1), record))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("kind", WRITERS)
def test_no_line_lost_with_two_workers_and_all_written_on_sigterm(
    tmp_path: Path, kind: str
) -> None:
    if kind == "c":
        _extension()
    toml = _site(tmp_path)
    # Lines wait longer than the whole run and shut-down: only the flush on stop writes them.
    env = {accesslog.INTERVAL_ENV: "60", NATIVE_VARIABLE: "1" if kind == "c" else "0"}
    with running_server(toml, "--workers", "2", env=env) as s:
        sent = _load(s.base, clients=8, each=150)
        s.proc.send_signal(signal.SIGTERM)
        assert s.proc.wait(30) == 0
    records = _access_lines(s.output())
    assert len(records) == sent == 1200
    assert len({r["id"] for _, r in records}) == sent
    assert {r["path"] for _, r in records} == {f"/hi/{k}/{i}" for k in range(8) for i in range(150)}
    assert {w for w, _ in records} == {"0", "1"}  # both workers wrote into the one file


@pytest.mark.slow
def test_an_idle_server_writes_its_lines_within_the_interval(tmp_path: Path) -> None:
    toml = _site(tmp_path)
    with running_server(toml) as s:
        for n in (1, 2):
            assert httpx.get(f"{s.base}/hi/idle/{n}").status_code == 200
            answered = time.monotonic()
            while len(_access_lines(s.output(), "/hi/idle")) < n:
                assert time.monotonic() - answered < FLUSH_INTERVAL + 1.5, s.output()[-2000:]
                time.sleep(0.02)
            time.sleep(FLUSH_INTERVAL * 2)  # idle between the two


@pytest.mark.slow
def test_workers_sharing_a_pipe_never_tear_a_line(tmp_path: Path) -> None:
    """``wasmgate serve --workers 2`` whose stdout and stderr are one pipe: the two workers'
    batches share it, cut at whole lines of at most PIPE_BUF bytes."""
    toml = _site(tmp_path)
    port = free_port()
    argv = [sys.executable, "-m", "wasmgate", "serve", "-c", str(toml), "--workers", "2"]
    proc = subprocess.Popen(
        [*argv, "-l", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    got = bytearray()
    reader = threading.Thread(target=_drain, args=(proc.stdout.fileno(), got))
    reader.start()
    try:
        deadline = time.monotonic() + 30
        while got.count(b"Application startup complete") < 2:
            assert proc.poll() is None, got.decode()
            assert time.monotonic() < deadline, got.decode()
            time.sleep(0.05)
        long_path = "/hi/" + "p" * 1500  # lines of ~1.7 KiB: two per PIPE_BUF write
        sent = _load(f"http://127.0.0.1:{port}", clients=6, each=100, path=long_path)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        reader.join(30)  # until every process holding the pipe has exited
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(10)
        proc.stdout.close()
    records = _access_lines(got.decode(), long_path)  # each line parses, or this fails
    assert len(records) == sent == 600
    assert {w for w, _ in records} == {"0", "1"}


FORK_SCRIPT = r"""
import logging, os, sys
from wasmgate.gateway import accesslog
from wasmgate.gateway.server import LOG_FORMAT

logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
assert accesslog.start_direct(LOG_FORMAT)
accesslog.access_log("parent-1", "GET", "/p", "/p", 200, "ok", 0.001, None, True, 0, 2, None)
pid = os.fork()
if pid == 0:  # the queued line is the parent's to write; the child's own go to the logger
    accesslog.access_log("child-1", "GET", "/c", "/c", 200, "ok", 0.001, None, True, 0, 2, None)
    logging.shutdown()
    os._exit(0)
os.waitpid(pid, 0)
"""


@pytest.mark.parametrize("kind", WRITERS)
def test_a_forked_child_does_not_write_the_parents_lines(kind: str) -> None:
    if kind == "c":
        _extension()
    env = {**os.environ, NATIVE_VARIABLE: "1" if kind == "c" else "0"}
    r = subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT], capture_output=True, text=True, timeout=60, env=env
    )
    assert r.returncode == 0, r.stderr
    assert r.stderr.count('"id":"parent-1"') == 1, r.stderr
    assert r.stderr.count('"id":"child-1"') == 1, r.stderr


def test_the_c_writer_is_refused_in_a_forked_child(tmp_path: Path) -> None:
    _extension()
    path = tmp_path / "log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    writer = _writer("c", fd, 30)
    writer.write("parent\n")
    pid = os.fork()
    if pid == 0:  # its thread is not here, its lines and mutexes are the parent's
        code = 0
        try:
            writer.write("child\n")
            code = 1
        except ValueError:
            writer.close()  # neither joins a thread that is not here nor writes
            del writer
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    writer.close()
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
    assert path.read_text() == "parent\n"
