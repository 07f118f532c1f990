"""Request bodies and admission: nothing is read for a request that cannot be admitted, and the
bodies held at once stay within ``--max-body-buffer``, charged as bytes arrive (a declared length
reserves nothing), with a quarter per client address and half per route, so many clients
uploading at once cannot exhaust memory, and a few slow uploaders cannot lock the others out.
Clients are told apart by their loopback source address (127.0.0.x)."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway_support import Server, running_server

from .hostile_support import exchange, get, guard_args, parse_responses, port_of, wait_for_log

BUDGET = 64 * 1024


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    hostile_guest: Callable[[str], Path],
    cache_dir: Path,
) -> Iterator[Server]:
    d = tmp_path_factory.mktemp("bodies")
    shutil.copy(hostile_guest("hog"), d / "hog.wasm")
    (d / "modules.toml").write_text(
        '[[module]]\nroute = "/hog"\nmodule = "hog.wasm"\n\n'
        '[[module]]\nroute = "/other"\nmodule = "hog.wasm"\n'
    )
    args = ("--threads", "1", "--queue", "0", "--max-body-buffer", "64KiB", *guard_args(5.0))
    env = {"WASMGATE_CACHE_DIR": str(cache_dir)}
    with running_server(d / "modules.toml", *args, env=env) as s:
        yield s


def _post_head(length: int) -> bytes:
    return f"POST /hog HTTP/1.1\r\nHost: t\r\nContent-Length: {length}\r\n\r\n".encode()


def test_saturated_server_refuses_before_reading_the_body(server: Server) -> None:
    port = port_of(server)
    busy = threading.Thread(target=lambda: get(port, "/hog?sleep&1500"))
    busy.start()
    try:
        time.sleep(0.4)  # the only guest thread is taken
        started = time.monotonic()
        # Headers only: a server that waited for the body would time out here.
        got = exchange(port, _post_head(50_000), timeout=3)
        assert time.monotonic() - started < 2
        assert [r.status for r in got.responses] == [503]
        assert got.responses[0].header("retry-after") == "1"
        assert got.responses[0].header("connection") == "close"
        assert got.closed
    finally:
        busy.join()
    assert get(port, "/hog?ok").status == 200


def _slow(port: int, source: str, target: str, declared: int, sent: int) -> socket.socket:
    """A connection from ``source`` (a loopback address) that declares a body of ``declared``
    bytes on ``target`` and sends only ``sent`` of them, for now."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    head = f"POST {target} HTTP/1.1\r\nHost: t\r\nContent-Length: {declared}\r\n\r\n"
    s.sendall(head.encode() + b"x" * sent)
    return s


def _post(port: int, source: str, target: str, size: int) -> int:
    head = f"POST {target} HTTP/1.1\r\nHost: t\r\nContent-Length: {size}\r\n"
    data = head.encode() + b"Connection: close\r\n\r\n" + b"y" * size
    with socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0)) as s:
        s.sendall(data)
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    return parse_responses(raw)[0][0].status


def test_declared_lengths_reserve_nothing(server: Server) -> None:
    """Issue 12, item 2: uploads declaring large bodies and trickling them used to reserve the
    buffer by their declared length, and every POST got 503 while they stayed."""
    port = port_of(server)
    hogs = [_slow(port, "127.0.0.2", "/hog", 60_000, 500) for _ in range(8)]  # 480 KB declared
    try:
        time.sleep(0.3)
        assert _post(port, "127.0.0.3", "/hog", 10_000) == 200
        assert _post(port, "127.0.0.3", "/other", 10_000) == 200
    finally:
        for s in hogs:
            s.close()


def test_one_client_holds_at_most_a_quarter_of_the_buffer(server: Server) -> None:
    port = port_of(server)
    # 2 x 7,000 bytes received from one address: within its 16 KiB share, but 5,000 more is not.
    held = [_slow(port, "127.0.0.4", "/hog", 8_000, 7_000) for _ in range(2)]
    try:
        time.sleep(0.3)
        assert _post(port, "127.0.0.4", "/other", 5_000) == 503
        wait_for_log(server, r"127\.0\.0\.4:\d+ /other: 503 body-buffer-full: client's share")
        assert _post(port, "127.0.0.5", "/other", 5_000) == 200  # another client still fits
        held[0].sendall(b"x" * 1_000)  # an upload that completes is served
        data = b""
        while not parse_responses(data)[0]:
            data += held[0].recv(65536)
        assert parse_responses(data)[0][0].status == 200
    finally:
        for s in held:
            s.close()
    # Released: the same request now fits.
    time.sleep(0.2)
    assert _post(port, "127.0.0.4", "/other", 5_000) == 200


def test_one_route_holds_at_most_half_of_the_buffer(server: Server) -> None:
    port = port_of(server)
    held = [_slow(port, f"127.0.0.{i}", "/hog", 20_000, 15_000) for i in (6, 7)]
    try:
        time.sleep(0.3)
        assert _post(port, "127.0.0.8", "/hog", 5_000) == 503  # 35,000 > 32 KiB for /hog
        wait_for_log(server, r"/hog: 503 body-buffer-full: route's share")
        assert _post(port, "127.0.0.8", "/other", 5_000) == 200  # other routes keep theirs
    finally:
        for s in held:
            s.close()


def test_chunked_body_is_counted_as_it_arrives(server: Server) -> None:
    port = port_of(server)
    chunk = b"z" * 8192
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(10)) + b"0\r\n\r\n"
    head = b"POST /hog HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    got = exchange(port, head + body, timeout=3)
    assert [r.status for r in got.responses] == [503]
    assert got.closed
    small = head + b"400\r\n" + b"s" * 1024 + b"\r\n0\r\n\r\n"
    got = exchange(port, small + b"GET /hog HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert [r.status for r in got.responses] == [200, 200]
