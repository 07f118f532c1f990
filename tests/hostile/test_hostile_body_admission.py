"""Request bodies and admission: nothing is read for a request that cannot be admitted, and the
bodies held at once stay within ``--max-body-buffer`` (declared lengths reserved up front,
chunked bodies as they arrive), so many clients uploading at once cannot exhaust memory."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
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
    (d / "modules.toml").write_text('[[module]]\nroute = "/hog"\nmodule = "hog.wasm"\n')
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


def test_bodies_held_at_once_stay_within_the_buffer(server: Server) -> None:
    port = port_of(server)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as slow:
        slow.sendall(_post_head(60_000) + b"x" * 1000)  # reserves 60,000 of 65,536 bytes
        time.sleep(0.3)
        refused = exchange(port, _post_head(10_000) + b"y" * 10_000, timeout=3)
        assert [r.status for r in refused.responses] == [503]
        assert refused.responses[0].header("retry-after") == "1"
        assert refused.closed
        wait_for_log(server, r'"status":503,"cause":"body-buffer-full"')
        assert get(port, "/hog?ok").status == 200  # requests without a body still pass
        slow.sendall(b"x" * 59_000)  # the slow upload completes and is served
        data = b""
        while b"\r\n\r\n" not in data or not parse_responses(data)[0]:
            data += slow.recv(65536)
        assert parse_responses(data)[0][0].status == 200
    # Released: the same request now fits.
    r = httpx.post(server.base + "/hog", content=b"y" * 10_000, timeout=5)
    assert r.status_code == 200


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
