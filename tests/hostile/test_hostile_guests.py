"""Hostile guests, each through both faces: ``wasmgate run`` (exit status, one clear stderr line)
and ``wasmgate serve`` (HTTP status, empty body, one clear log line), and the server keeps serving
other routes, keeps its threads, and gives its memory back."""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway_support import Server

from .hostile_support import (
    HOG_TIMEOUT,
    NO_IMPORT_WAT,
    START_TRAP_WAT,
    big_data_module,
    exit_wat,
    get,
    rss_settled,
    tree_rss_kib,
)

Run = Callable[..., Any]
WASMGATE = (sys.executable, "-m", "wasmgate")
Guest = Callable[[str], Path]

# mode args, run flags, exit status, stderr text  |  HTTP status, access-log cause, logged reason
HOG = [
    (("loop",), ("--timeout", "500ms"), 124, "timed out after 500ms", 504, "timeout", "timed out"),
    (("recurse",), (), 134, "call stack exhausted", 500, "trap", "call stack exhausted"),
    (("divzero",), (), 134, "integer divide by zero", 500, "trap", "integer divide by zero"),
    (("oob",), (), 134, "out of bounds memory access", 500, "trap", "out of bounds memory"),
    (("trap",), (), 134, "unreachable", 500, "trap", "unreachable"),
    # At the memory cap a guest fails its own way; its status stands, with a hint naming the cap.
    (("grow",), ("--max-memory", "32MiB"), 134, "limit of 32MiB", 500, "trap", "limit of 32MiB"),
    (
        ("alloc", "1000"),
        ("--max-memory", "32MiB"),
        1,
        "limit of 32MiB",
        500,
        "exit",
        "limit of 32MiB",
    ),
    (("clock",), ("--timeout", "500ms"), 124, "timed out after 500ms", 504, "timeout", "timed out"),
    (("sleep",), ("--timeout", "500ms"), 124, "timed out after 500ms", 504, "timeout", "timed out"),
    (("nap",), ("--timeout", "500ms"), 124, "timed out after 500ms", 504, "timeout", "timed out"),
]
IDS = [case[0][0] for case in HOG]


@pytest.mark.parametrize(("args", "flags", "code", "text"), [c[:4] for c in HOG], ids=IDS)
def test_run_hog(
    wasmgate: Run,
    hostile_guest: Guest,
    args: tuple[str, ...],
    flags: tuple[str, ...],
    code: int,
    text: str,
) -> None:
    started = time.monotonic()
    r = wasmgate("run", *flags, hostile_guest("hog"), *args)
    assert r.returncode == code, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("wasmgate: error:")]
    # One error line, except for a guest's own exit status (it said what it wanted to say).
    assert len(errors) == (0 if code == 1 else 1), r.stderr
    ours = [ln for ln in r.stderr.splitlines() if ln.startswith("wasmgate: ")]
    assert text in "\n".join(ours)
    assert "Traceback" not in r.stderr
    # Host calls end at the deadline too: no guest outlives --timeout (plus process start-up).
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("stream", ["spew-out", "spew-err"])
def test_run_unbounded_output(hostile_guest: Guest, stream: str, cache_dir: Path) -> None:
    """Endless stdout/stderr: the timeout still ends it (the output goes where the user sent it:
    here /dev/null, as the host never buffers a guest's inherited stdio)."""
    started = time.monotonic()
    proc = subprocess.run(
        [*WASMGATE, "run", "--timeout", "500ms", str(hostile_guest("hog")), stream],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE if stream == "spew-out" else subprocess.DEVNULL,
        env={**os.environ, "WASMGATE_CACHE_DIR": str(cache_dir)},
        timeout=30,
        check=False,
    )
    assert proc.returncode == 124
    assert time.monotonic() - started < 5


def test_run_unbounded_output_to_a_closed_pipe(hostile_guest: Guest, cache_dir: Path) -> None:
    """Writing to a reader that went away fails the guest's write (EPIPE); the host survives."""
    proc = subprocess.Popen(
        [*WASMGATE, "run", "--timeout", "5s", str(hostile_guest("hog")), "spew-out"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "WASMGATE_CACHE_DIR": str(cache_dir)},
    )
    assert proc.stdout is not None
    proc.stdout.read(100_000)
    proc.stdout.close()
    assert proc.wait(10) == 3  # hog exits 3 when write() fails
    assert proc.stderr is not None
    assert b"Traceback" not in proc.stderr.read()


def test_run_huge_single_write(wasmgate: Run, hostile_guest: Guest, tmp_path: Path) -> None:
    r = wasmgate("run", hostile_guest("hog"), "bigwrite", "16")
    assert r.returncode == 0, r.stderr
    assert f"wrote {16 << 20} of {16 << 20}" in r.stderr
    assert len(r.stdout) == 16 << 20


@pytest.mark.parametrize("code", ["126", "255", "-1", "2147483648"])
def test_run_proc_exit_odd_codes(wasmgate: Run, tmp_path: Path, code: str) -> None:
    wat = tmp_path / "exit.wat"
    wat.write_text(exit_wat(code))
    r = wasmgate("run", wat)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        "wasmgate: error: guest called proc_exit with an invalid status (valid: 0-125)"
    ]


@pytest.mark.parametrize(
    ("wat", "code", "text"),
    [
        (START_TRAP_WAT, 134, "guest trapped: wasm `unreachable` instruction executed"),
        (NO_IMPORT_WAT, 1, "env::not_provided"),
    ],
    ids=["start-trap", "no-import"],
)
def test_run_module_that_fails_to_start(
    wasmgate: Run, tmp_path: Path, wat: str, code: int, text: str
) -> None:
    module = tmp_path / "m.wat"
    module.write_text(wat)
    r = wasmgate("run", module)
    assert r.returncode == code
    assert r.stderr.startswith("wasmgate: error: ")
    assert text in r.stderr.splitlines()[0]


def test_run_100mib_data_segment(wasmgate: Run, tmp_path: Path) -> None:
    module = tmp_path / "big.wasm"
    module.write_bytes(big_data_module(100 << 20))
    started = time.monotonic()
    r = wasmgate("run", module)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Content-Type: text/plain\n\nbig\n"
    r = wasmgate("run", "--max-memory", "64MiB", module)
    assert r.returncode == 137
    assert "initial memory is larger" in r.stderr
    assert time.monotonic() - started < 20
    cut = tmp_path / "cut.wasm"
    cut.write_bytes(module.read_bytes()[: 50 << 20])  # truncated inside the data segment
    r = wasmgate("run", cut)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "invalid module" in lines[0]


# --- the same guests through the gateway -------------------------------------------------------

SERVE_EXTRA = [
    ("/hog?spew-out", 502, "too-large", "larger than max_response_body"),
    ("/hog?spew-err", 504, "timeout", "timed out"),
    ("/hog?bigwrite&4", 502, "too-large", "larger than max_response_body"),
    *((f"/exit/{c}", 500, "error", "invalid status") for c in ("126", "255", "-1", "2147483648")),
    ("/start-trap", 500, "trap", "unreachable"),
    ("/no-import", 500, "link", "env::not_provided"),
    ("/bigdata-small", 500, "memory", "initial memory is larger"),
]
SERVE = [
    *((f"/hog?{'&'.join(c[0])}", c[4], c[5], c[6]) for c in HOG),
    *SERVE_EXTRA,
]


def _count(server: Server, text: str) -> int:
    return server.output().count(text)


@pytest.mark.parametrize(("target", "status", "cause", "reason"), SERVE, ids=[s[0] for s in SERVE])
def test_serve_hostile_guest(
    hostile: Server, hport: int, target: str, status: int, cause: str, reason: str
) -> None:
    route = target.split("?", 1)[0]
    access = f'"path":"{route}","route":"{route}","status":{status},"cause":"{cause}"'
    before = (_count(hostile, access), _count(hostile, f"{route} -> {status}: "))
    started = time.monotonic()
    r = get(hport, target)
    elapsed = time.monotonic() - started
    assert r.status == status
    assert r.body == b""
    assert elapsed < HOG_TIMEOUT + 1.0  # never "blocked in a host call" past the deadline
    deadline = time.monotonic() + 5
    while (_count(hostile, access), _count(hostile, f"{route} -> {status}: ")) == before:
        assert time.monotonic() < deadline, hostile.output()[-2000:]
        time.sleep(0.02)
    error_lines = [ln for ln in hostile.output().splitlines() if f"{route} -> {status}: " in ln]
    assert reason in error_lines[-1]
    assert "blocked in a host call" not in hostile.output()


def test_serve_100mib_data_segment(hostile: Server, hport: int) -> None:
    for _ in range(3):
        r = get(hport, "/bigdata")
        assert r.status == 200
        assert r.body == b"big\n"


def test_serve_stderr_flood_is_logged_bounded(hostile: Server, hport: int) -> None:
    get(hport, "/hog?spew-err")
    line = next(
        ln for ln in reversed(hostile.output().splitlines()) if "more bytes of stderr dropped" in ln
    )
    assert len(line) < 64 * 1024


def test_sleeping_guests_give_their_threads_back(hostile: Server, hport: int) -> None:
    """Guests sleeping "forever" in poll_oneoff: each is stopped at its deadline, so both worker
    threads are free again at once (before the fix they stayed blocked for the guest's chosen
    duration, ~36 years)."""
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(lambda _: get(hport, "/hog?sleep").status, range(4)))
    assert statuses == [504] * 4
    started = time.monotonic()
    assert get(hport, "/good?ok").body == b"ok\n"
    assert time.monotonic() - started < 0.5


def _hammer(port: int, target: str, clients: int, stop: threading.Event) -> list[int]:
    statuses: list[int] = []

    def loop() -> None:
        while not stop.is_set():
            statuses.append(get(port, target).status)

    threads = [threading.Thread(target=loop) for _ in range(clients)]
    for t in threads:
        t.start()
    stop.wait()
    for t in threads:
        t.join()
    return statuses


def _good_while(
    port: int, target: str, clients: int, seconds: float
) -> tuple[list[int], list[float], list[int]]:
    stop = threading.Event()
    hostile_statuses: list[int] = []
    t = threading.Thread(
        target=lambda: hostile_statuses.extend(_hammer(port, target, clients, stop))
    )
    t.start()
    time.sleep(0.2)
    statuses, latencies = [], []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.monotonic()
        statuses.append(get(port, "/good?ok").status)
        latencies.append(time.monotonic() - started)
    stop.set()
    t.join()
    return statuses, sorted(latencies), hostile_statuses


def test_good_route_keeps_answering_while_capped_hostile_route_is_hammered(hport: int) -> None:
    """A hostile route with ``max_concurrency = 1`` hammered by 6 clients spinning until their
    deadline: it holds at most one of the two worker threads, so the good route stays fast."""
    statuses, latencies, hostile_statuses = _good_while(hport, "/hog-capped?loop", 6, 1.5)
    assert set(statuses) == {200}
    assert len(statuses) > 20
    assert latencies[len(latencies) * 9 // 10] < 0.25, latencies[-5:]
    assert set(hostile_statuses) <= {503, 504}
    assert 503 in hostile_statuses


def test_good_route_keeps_answering_while_hostile_route_is_hammered(hport: int) -> None:
    """Without a cap the hostile route may fill both threads: good requests queue, but every one
    is answered 200 within the hostile guests' deadline."""
    statuses, latencies, hostile_statuses = _good_while(hport, "/hog?loop", 2, 1.5)
    assert set(statuses) == {200}
    assert latencies[-1] < 2 * HOG_TIMEOUT + 0.5
    assert set(hostile_statuses) == {504}


def test_memory_returns_to_baseline_after_hostile_guests(hostile: Server, hport: int) -> None:
    pid = hostile.proc.pid
    targets = [
        "/hog?alloc&1000",
        "/hog?grow",
        "/hog?bigwrite&4",
        "/hog?spew-out",
        "/hog?spew-err",
        "/bigdata",
        "/hog?recurse",
        "/out/no-blank-huge",
    ]
    for target in targets:  # warm up: first use of each path allocates for good
        get(hport, target)
    baseline = rss_settled(pid)
    peak = baseline
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for _ in range(2):
            list(pool.map(lambda t: get(hport, t).status, targets * 2))
            peak = max(peak, tree_rss_kib(pid))
    after = rss_settled(pid, 1.0)
    print(f"RSS baseline {baseline} KiB, peak {peak} KiB, after {after} KiB")
    assert after < baseline + 48 * 1024, (baseline, peak, after)
    assert get(hport, "/good?ok").status == 200


def _poll_wat(delta_ns: int, abstime: bool) -> str:
    """Sleep ``delta_ns`` in one poll_oneoff clock subscription (relative, or absolute from
    clock_time_get), then call a function (an epoch check point, as any real code has) that
    exits 2 if it woke early, 3 if the subscription in memory was changed."""
    target = "(i64.add (i64.load (i32.const 0)) (i64.const {d}))" if abstime else "(i64.const {d})"
    return f"""(module
  (import "wasi_snapshot_preview1" "clock_time_get" (func $now (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (drop (call $now (i32.const 1) (i64.const 1) (i32.const 0)))
    (i32.store8 (i32.const 72) (i32.const 0))
    (i32.store (i32.const 80) (i32.const 1))
    (i64.store (i32.const 88) {target.format(d=delta_ns)})
    (i64.store (i32.const 16) (i64.load (i32.const 88)))
    (i32.store16 (i32.const 104) (i32.const {int(abstime)}))
    (drop (call $poll (i32.const 64) (i32.const 256) (i32.const 1) (i32.const 512)))
    (call $check))
  (func $check
    (if (i64.ne (i64.load (i32.const 88)) (i64.load (i32.const 16)))
      (then (call $exit (i32.const 3))))
    (if (i32.ne (i32.load16_u (i32.const 104)) (i32.const {int(abstime)}))
      (then (call $exit (i32.const 3))))
    (drop (call $now (i32.const 1) (i64.const 1) (i32.const 8)))
    (if (i64.lt_u (i64.sub (i64.load (i32.const 8)) (i64.load (i32.const 0)))
                  (i64.const {delta_ns}))
      (then (call $exit (i32.const 2))))))"""


@pytest.mark.parametrize(
    ("abstime", "delta_ms", "timeout", "code"),
    [
        (False, 150, "2s", 0),
        (True, 150, "2s", 0),
        (False, 3_600_000, "300ms", 124),
        (True, 3_600_000, "300ms", 124),
    ],
    ids=["relative-short", "absolute-short", "relative-hour", "absolute-hour"],
)
def test_host_call_deadline_only_shortens_what_outlives_it(
    wasmgate: Run, tmp_path: Path, abstime: bool, delta_ms: int, timeout: str, code: int
) -> None:
    """poll_oneoff under a deadline: a sleep that ends in time is exactly WASI's (full length,
    the guest's subscription untouched); one that would outlive the deadline ends at it, and the
    guest is stopped as a timeout."""
    wat = tmp_path / "poll.wat"
    wat.write_text(_poll_wat(delta_ms * 1_000_000, abstime))
    started = time.monotonic()
    r = wasmgate("run", "--timeout", timeout, wat)
    assert r.returncode == code, r.stderr
    assert time.monotonic() - started < 5
    if code == 124:
        assert f"guest timed out after {timeout} (wall clock)" in r.stderr


def test_queued_requests_get_their_full_deadline_or_do_not_run(hostile: Server, hport: int) -> None:
    """Twelve 450 ms requests on two threads, route deadline 500 ms: the gateway waits up to
    deadline + 1 s in the queue, then a full deadline for the guest from its own start. Those
    still queued past that are answered 504 and never run afterwards, so the server is free again
    as soon as the last answer is sent. (Before the fix the gateway cut guests that had started
    late but were well within their deadline, and ran the abandoned ones anyway, for nobody.)"""
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        statuses = list(pool.map(lambda _: get(hport, "/hog?sleep&450").status, range(12)))
    # Started by 1.5 s: 0, 0.45, 0.9 and 1.35 s on each thread, so 8 answered and 4 not run on a
    # quiet machine; fewer start in time on a busy one, never more, and each that started ends.
    assert 4 <= statuses.count(200) <= 8, statuses
    assert statuses.count(200) + statuses.count(504) == 12, statuses
    started = time.monotonic()
    assert get(hport, "/good?ok").status == 200
    assert time.monotonic() - started < 0.2
    assert "queued past the route's deadline; the guest was not run" in hostile.output()
