"""The connection-guard flags reach the guard of every worker: a server started with
``--workers 2`` and guard settings far below the defaults (10 s head, 20 s body, 500 B/s, 30 s
send) refuses slow clients on that schedule, and says so with the configured values."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway_support import Server, running_server

from .hostile_support import HOST_ENV, exchange, port_of, wait_for_log

HEAD = 0.4  # --header-timeout
BODY = 0.4  # --body-timeout
RATE = 100  # --body-min-rate
SEND = 0.5  # --send-timeout
SLACK = 1.5  # scheduling slack; still far below every default


@pytest.fixture(scope="module")
def tuned(
    tmp_path_factory: pytest.TempPathFactory, hostile_guest: Callable[[str], Path], cache_dir: Path
) -> Iterator[Server]:
    d = tmp_path_factory.mktemp("guard-settings")
    (d / "hog.wasm").write_bytes(hostile_guest("hog").read_bytes())
    (d / "modules.toml").write_text('[[module]]\nroute = "/good"\nmodule = "hog.wasm"\n')
    flags = ("--header-timeout", f"{HEAD * 1000:g}ms", "--body-timeout", f"{BODY:g}")
    flags += ("--body-min-rate", str(RATE), "--send-timeout", f"{SEND:g}s")
    env = {**HOST_ENV, "WASMGATE_CACHE_DIR": str(cache_dir)}
    with running_server(
        d / "modules.toml", "--workers", "2", "--threads", "2", *flags, env=env
    ) as s:
        yield s


def _partial_head(port: int, results: list[tuple[bytes, float]]) -> None:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.settimeout(HEAD + SLACK + 3)
        s.sendall(b"GET /good?ok HTTP/1.1\r\nHost: x\r\n")  # the blank line never comes
        data = b""
        try:
            while chunk := s.recv(4096):
                data += chunk
        except OSError:
            pass
    results.append((data, time.monotonic() - started))


def test_header_timeout_flag_in_every_worker(tuned: Server) -> None:
    """Incomplete heads, a few at a time and staggered so that both workers accept some: every
    one is answered 408 after the configured 0.4 s (a worker with the default would take 10 s),
    and both workers log the configured value."""
    port = port_of(tuned)
    for _ in range(10):  # rounds, until both workers have refused one
        results: list[tuple[bytes, float]] = []
        threads = [threading.Thread(target=_partial_head, args=(port, results)) for _ in range(4)]
        for t in threads:
            t.start()
            time.sleep(0.03)
        for t in threads:
            t.join()
        assert len(results) == 4
        for data, elapsed in results:
            assert data.startswith(b"HTTP/1.1 408 "), data[:200]
            assert HEAD - 0.05 <= elapsed < HEAD + SLACK
        log = tuned.output()
        if all(
            re.search(rf"\[worker {i}\] .*: 408 request head not received within 0\.4s", log)
            for i in (0, 1)
        ):
            return
    raise AssertionError("one worker never refused a slow head:\n" + tuned.output()[-3000:])


def test_idle_connection_is_closed_after_the_header_timeout(tuned: Server) -> None:
    with socket.create_connection(("127.0.0.1", port_of(tuned))) as s:
        s.settimeout(HEAD + SLACK + 3)
        started = time.monotonic()
        assert s.recv(100) == b""  # closed silently: nothing was asked
        assert time.monotonic() - started < HEAD + SLACK


def test_body_timeout_and_min_rate_flags(tuned: Server) -> None:
    """A body trickled at ~20 B/s is refused once the 0.4 s grace and the 100 B/s rate run out."""
    head = b"POST /good?ok HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port_of(tuned))) as s:
        s.sendall(head)
        s.settimeout(0.05)
        data = b""
        while time.monotonic() - started < BODY + SLACK + 3:
            try:
                chunk = s.recv(4096)
            except TimeoutError:
                try:
                    s.sendall(b"z")
                except OSError:
                    break
                continue
            except OSError:
                break
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1.1 408 "), data[:200]
    assert time.monotonic() - started < BODY + SLACK
    wait_for_log(tuned, r"408 request body slower than 100 bytes/s after 0\.4s")


def test_send_timeout_flag(tuned: Server) -> None:
    """A client that never reads a large answer is cut off after the 0.5 s send period, and the
    log names the configured rate times period (100 B/s * 0.5 s = 50 bytes)."""
    with socket.create_connection(("127.0.0.1", port_of(tuned))) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(b"GET /good?bigwrite&8 HTTP/1.1\r\nHost: x\r\n\r\n" * 2)  # 16 MiB unread
        wait_for_log(tuned, r"closing connection: client read less than 50 bytes in 0\.5s", 10)


def test_quick_requests_are_unaffected(tuned: Server) -> None:
    port = port_of(tuned)
    for _ in range(10):
        got = exchange(port, b"GET /good?ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert [r.status for r in got.responses] == [200]
