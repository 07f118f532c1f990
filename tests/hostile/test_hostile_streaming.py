"""Hostile clients of streamed wasi:http bodies: an upload that never ends, one that never reads
its echo, a flood of chunked uploads at once. The server's memory stays bounded (each streamed
body holds at most its window), every such request ends at its limit or its deadline and is
logged with that status, and the server keeps serving."""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Iterator

import pytest

from gateway_support import Server, running_server

from .hostile_support import ROOT, get, port_of, rss_settled, wait_for_log

ECHO = ROOT / "examples" / "http" / "echo-http.wasm"
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    d = tmp_path_factory.mktemp("hostile-streaming")
    shutil.copy(ECHO, d / "echo.wasm")
    (d / "modules.toml").write_text(
        """
[[module]]
route = "/capped/..."
module = "echo.wasm"
max_request_body = "1MiB"

[[module]]
route = "/..."
module = "echo.wasm"
timeout = "2s"
max_request_body = "1GiB"
"""
    )
    with running_server(d / "modules.toml", "--body-timeout", "30s") as s:
        yield s


def _uploader(server: Server, path: str) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and it never reads
    s.connect(("127.0.0.1", port_of(server)))
    s.sendall(f"POST {path} HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n".encode())
    s.settimeout(0.05)
    return s


def _push(socks: list[socket.socket], seconds: float) -> int:
    """Send 64 KiB chunks on every socket for ``seconds``; bytes the server took in all."""
    chunk = b"%x\r\n%s\r\n" % (64 * 1024, b"u" * 64 * 1024)
    taken = 0
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        for s in socks:
            try:
                taken += s.send(chunk)
            except (TimeoutError, BlockingIOError):
                pass
            except OSError:
                continue
    return taken


def test_uploads_that_never_end_and_never_read_stay_bounded(server: Server) -> None:
    """Eight clients stream bodies to an echo and never read it: the guests block on the full
    response window, the server stops reading the clients (TCP back-pressure), and the deadline
    ends each one, cut off as a 504."""
    pid = server.proc.pid
    before = rss_settled(pid)
    socks = [_uploader(server, f"/echo/{i}") for i in range(8)]
    try:
        taken = _push(socks, 1.5)
        grown = rss_settled(pid, 0.1) - before
        # What the server took beyond the kernel's buffers is bounded by the windows: far less
        # than what an unbounded server would have buffered.
        # Measured: ~15 MiB for 8 clients (a window each way per request, plus the threads'
        # stacks); the clients had pushed ~28 MB into the sockets by then.
        assert grown < 40 * 1024, (grown, taken)
        for i in range(8):
            wait_for_log(server, rf'"path":"/echo/{i}","route":"/\.\.\.","status":504', timeout=10)
    finally:
        for s in socks:
            s.close()
    assert get(port_of(server), "/hello").status == 200


def test_an_endless_upload_is_cut_at_the_body_limit(server: Server) -> None:
    s = _uploader(server, "/capped/echo")
    try:
        _push([s], 1.0)
        wait_for_log(server, r'"path":"/capped/echo","route":"/capped/\.\.\.","status":413')
    finally:
        s.close()
    assert get(port_of(server), "/capped/hello").status == 200
