"""The connection guard's keep-alive clock: a connection idle ``timeout_keep_alive`` after its
last response is closed, as by uvicorn's own timer, but without a timer made and cancelled per
request: one timer per connection, re-armed for the rest of the timeout when the connection was
busy meanwhile. A real uvicorn server on loopback, spoken to over raw sockets."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from gateway_support import guarded_uvicorn
from wasmgate.gateway.protocol import Answer

KEEP_ALIVE = 0.6  # seconds (uvicorn's default is 5)


class App:
    """``/now`` is answered at once (the protocol writes it); everything else through ASGI."""

    def answer_now(self, scope: dict[str, Any]) -> Any:
        if scope["path"] == "/now":
            return Answer(200, [], b"now", lambda: None)
        return None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-length", b"4")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"asgi"})


@pytest.fixture
def port() -> Iterator[int]:
    with guarded_uvicorn(App(), timeout_keep_alive=KEEP_ALIVE) as port:
        yield port


def _request(s: socket.socket, path: bytes) -> bytes:
    """One request on ``s`` and its whole response (a body of three or four bytes)."""
    s.sendall(b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % path)
    data = b""
    while not data.endswith((b"now", b"asgi")):
        chunk = s.recv(4096)
        assert chunk, f"closed early after {data!r}"
        data += chunk
    return data


def _closed_after(s: socket.socket) -> float:
    """Seconds until the server closes ``s`` (which must send nothing more)."""
    started = time.monotonic()
    s.settimeout(KEEP_ALIVE * 5)
    assert s.recv(4096) == b""
    return time.monotonic() - started


@pytest.mark.parametrize("path", [b"/now", b"/asgi"])
def test_an_idle_connection_is_closed_after_the_timeout(port: int, path: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port)) as s:
        assert _request(s, path).startswith(b"HTTP/1.1 200 OK")
        waited = _closed_after(s)
    assert KEEP_ALIVE - 0.1 <= waited <= KEEP_ALIVE + 0.5


@pytest.mark.parametrize("path", [b"/now", b"/asgi"])
def test_the_clock_starts_again_at_each_response(port: int, path: bytes) -> None:
    """Requests every half timeout for three timeouts: never closed in between (the timer
    armed by the first response re-arms for the rest), then closed one timeout after the last."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.settimeout(KEEP_ALIVE * 5)
        for _ in range(6):
            assert _request(s, path).startswith(b"HTTP/1.1 200 OK")
            time.sleep(KEEP_ALIVE / 2)
        waited = _closed_after(s) + KEEP_ALIVE / 2
    assert KEEP_ALIVE - 0.1 <= waited <= KEEP_ALIVE + 0.5
