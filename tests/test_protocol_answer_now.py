"""Answers at once: the connection guard offers each request's head to an application's
``answer_now`` and writes an ``Answer`` itself, without ASGI. A real uvicorn server with the
guard's protocol on loopback, spoken to over raw sockets (pipelining and HTTP/1.0 included); the
gateway's own ``answer_now`` at work is in ``tests/test_gateway.py``'s served requests."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from gateway_support import Exchange, exchange, guarded_uvicorn
from wasmgate.gateway.protocol import Answer


class App:
    """Answers ``/now`` at once, hands ``/instead`` to an app of its own, fails on ``/boom`` and
    ``/bad-header``; everything else is served as ASGI."""

    def __init__(self) -> None:
        self.done: list[str] = []
        self.asgi: list[str] = []

    def answer_now(self, scope: dict[str, Any]) -> Any:
        path = scope["path"]
        if path == "/now":
            return Answer(
                200, [(b"content-type", b"text/plain")], b"now", lambda: self.done.append(path)
            )
        if path == "/instead":

            async def instead(scope: Any, receive: Any, send: Any) -> None:
                await _respond(send, b"instead")

            return instead
        if path == "/boom":
            raise ValueError("boom")
        if path == "/bad-header":
            return Answer(200, [(b"bad name", b"x")], b"", lambda: self.done.append(path))
        if path == "/done-fails":

            def fail() -> None:
                raise RuntimeError("done failed")

            return Answer(200, [], b"sent", fail)
        return None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        self.asgi.append(scope["path"])
        await _respond(send, b"asgi")


async def _respond(send: Any, body: bytes) -> None:
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def served() -> Iterator[tuple[App, int]]:
    app = App()
    with guarded_uvicorn(app) as port:
        yield app, port


def _exchange(port: int, data: bytes) -> Exchange:
    """Send ``data``, read what comes back until the server closes or half a second passes
    (a kept-alive connection: ``timed_out``)."""
    return exchange(port, data, timeout=0.5)


GET = b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n"


def test_an_answer_is_written_without_asgi(served: tuple[App, int]) -> None:
    app, port = served
    got = _exchange(port, GET % b"/now")
    (response,) = got.responses
    lines = response.raw_head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 200 OK"
    assert any(line.startswith(b"date: ") for line in lines)  # the server's default headers
    assert b"content-type: text/plain" in lines
    assert b"content-length: 3" in lines
    assert response.body == b"now"
    assert got.raw.endswith(b"now")
    assert got.timed_out  # keep-alive: still open
    assert app.done == ["/now"]
    assert app.asgi == []


def test_head_gets_the_length_but_no_body(served: tuple[App, int]) -> None:
    _, port = served
    got = _exchange(port, b"HEAD /now HTTP/1.1\r\nHost: t\r\n\r\n")
    assert got.raw.endswith(b"content-length: 3\r\n\r\n")


@pytest.mark.parametrize(
    "request_bytes",
    [b"GET /now HTTP/1.0\r\n\r\n", b"GET /now HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"],
)
def test_the_connection_closes_after_the_answer_when_asked(
    served: tuple[App, int], request_bytes: bytes
) -> None:
    _, port = served
    got = _exchange(port, request_bytes)
    (response,) = got.responses
    assert response.header("connection") == "close"
    assert response.body == b"now"
    assert got.closed


def test_pipelined_requests_are_answered_in_order(served: tuple[App, int]) -> None:
    app, port = served
    data = GET % b"/now" + GET % b"/other" + GET % b"/now" + GET % b"/instead"
    got = _exchange(port, data)
    assert [r.body for r in got.responses] == [b"now", b"asgi", b"now", b"instead"]
    assert got.timed_out
    assert app.asgi == ["/other"]
    assert app.done == ["/now", "/now"]


def test_an_app_in_place_of_the_application(served: tuple[App, int]) -> None:
    app, port = served
    (response,) = _exchange(port, GET % b"/instead").responses
    assert response.body == b"instead"
    assert app.asgi == []


@pytest.mark.parametrize("path", [b"/boom", b"/bad-header"])
def test_a_failure_is_a_logged_500_and_the_connection_closes(
    served: tuple[App, int], path: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    app, port = served
    with caplog.at_level(logging.ERROR, logger="wasmgate.gateway"):
        got = _exchange(port, GET % path)
    (response,) = got.responses
    assert response.status == 500
    assert response.header("connection") == "close"
    assert got.closed
    assert any(path.decode() in r.getMessage() for r in caplog.records)
    assert app.done == []
    assert app.asgi == []


def test_a_failure_after_the_answer_is_sent_is_logged_and_the_connection_stays(
    served: tuple[App, int], caplog: pytest.LogCaptureFixture
) -> None:
    """``done`` runs once the answer is sent (after the pass's flush): its failure cannot
    change the response any more, and the next request on the connection is served."""
    app, port = served
    with caplog.at_level(logging.ERROR, logger="wasmgate.gateway"):
        got = _exchange(port, GET % b"/done-fails" + GET % b"/now")
    assert [(r.status, r.body) for r in got.responses] == [(200, b"sent"), (200, b"now")]
    assert got.timed_out  # still open
    assert any("after a response" in r.getMessage() for r in caplog.records)
    assert app.done == ["/now"]
