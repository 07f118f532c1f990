"""Slow readers (issue 12, item 1): a response is never held past ``--send-timeout`` without
progress, even after the connection was closed with bytes still unsent (uvicorn's keep-alive
timer closes it 5 s after the response was written), and the bytes a worker holds for slow
readers are bounded as a whole by ``--max-send-buffer``; each cut-off is logged and counted."""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from gateway_support import Server, free_port, running_server

from .hostile_support import get, port_of, wait_for_log

SEND_TIMEOUT = 6.0  # longer than uvicorn's 5 s keep-alive timer: the case that used to leak


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, hostile_guest: Callable[[str], Path]) -> Path:
    d = tmp_path_factory.mktemp("slow-readers")
    shutil.copy(hostile_guest("hog"), d / "hog.wasm")
    (d / "modules.toml").write_text('[[module]]\nroute = "/big"\nmodule = "hog.wasm"\n')
    return d / "modules.toml"


@contextlib.contextmanager
def _server(toml: Path, cache_dir: Path, *extra: str) -> Iterator[tuple[Server, int]]:
    mport = free_port()
    args = ("--send-timeout", f"{SEND_TIMEOUT:g}s", "--metrics-listen", f"127.0.0.1:{mport}")
    env = {"WASMGATE_CACHE_DIR": str(cache_dir)}
    with running_server(toml, *args, *extra, env=env) as s:
        yield s, mport


def _non_reader(port: int, mib: int) -> socket.socket:
    """A client that asks for ``mib`` MiB and never reads (a tiny receive window, so the bytes
    stay in the server rather than in the kernel's buffers)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    s.sendall(f"GET /big?bigwrite&{mib} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    return s


def _metric(mport: int, name: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{mport}/metrics", timeout=5).text
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def test_unsent_bytes_of_a_closed_connection_are_on_the_clock(site: Path, cache_dir: Path) -> None:
    with _server(site, cache_dir) as (s, mport):
        _closed_connection_case(s, mport)


def _closed_connection_case(s: Server, mport: int) -> None:
    port = port_of(s)
    client = _non_reader(port, 4)
    local = client.getsockname()[1]
    try:
        started = time.monotonic()
        # The keep-alive timer closes the transport at ~5 s, the send clock runs out at ~6 s.
        wait_for_log(
            s, rf"127\.0\.0\.1:{local}: closing connection: client read less than", timeout=15
        )
        assert time.monotonic() - started < SEND_TIMEOUT + 6
        counted = _metric(mport, 'wasmgate_connections_closed_total{cause="send-timeout"}')
        assert counted >= 1
    finally:
        client.close()
    assert get(port, "/big?ok").status == 200


def test_bytes_held_for_slow_readers_are_bounded_as_a_whole(site: Path, cache_dir: Path) -> None:
    with _server(site, cache_dir, "--max-send-buffer", "2MiB") as (s, mport):
        _send_buffer_case(s, mport)


def _send_buffer_case(s: Server, mport: int) -> None:
    port = port_of(s)
    clients = [_non_reader(port, 4) for _ in range(4)]  # ~16 MiB asked for, 2 MiB may wait
    try:
        wait_for_log(
            s,
            r"closing connection: \d+ bytes wait for slow clients, over the "
            r"2097152-byte send buffer",
            timeout=10,
        )
        counted = _metric(mport, 'wasmgate_connections_closed_total{cause="send-buffer-full"}')
        assert counted >= 1
        assert get(port, "/big?ok").status == 200  # the server itself is unharmed
    finally:
        for c in clients:
            c.close()
