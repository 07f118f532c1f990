"""Streaming both ways for wasi:http routes: the request body reaching the guest as it arrives,
the response leaving while the guest writes, trailers both ways. A real server on loopback and
raw HTTP/1.1 over sockets (so chunk boundaries, timing and trailers are visible), plus the
exchange's own rules without a server."""

from __future__ import annotations

import asyncio
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway_support import Server, running_server
from wasmgate.config import GatewayConfig
from wasmgate.gateway import create_app
from wasmgate.wasihttp.streaming import CLIENT_GONE, TOO_LARGE, Exchange

ROOT = Path(__file__).resolve().parent.parent
ECHO = ROOT / "examples" / "http" / "echo-http.wasm"
HELLO = ROOT / "examples" / "perf" / "hello-http.wasm"


# --- the exchange alone ---------------------------------------------------------------------


def _exchange(prefix: bytes = b"", **kw: object) -> tuple[Exchange, list[int]]:
    wakes: list[int] = []
    ex = Exchange(prefix, limit=kw.pop("limit", None), wake=lambda: wakes.append(1), **kw)  # type: ignore[arg-type]
    return ex, wakes


def test_a_read_waits_for_bytes_from_the_client() -> None:
    ex, _ = _exchange(b"ab")
    assert ex.read(10, True, None) == b"ab"
    assert ex.read(10, False, None) == b""  # nothing yet, not blocking
    threading.Timer(0.1, ex.feed, [b"cd"]).start()
    started = time.monotonic()
    assert ex.read(10, True, time.monotonic() + 5) == b"cd"
    assert 0.05 < time.monotonic() - started < 2
    ex.end([(b"x-sum", b"7")])
    assert ex.read(10, True, None) is None
    assert ex.request_trailers == [(b"x-sum", b"7")]


def test_a_read_ends_at_the_deadline() -> None:
    ex, _ = _exchange()
    started = time.monotonic()
    assert ex.read(10, True, time.monotonic() + 0.2) == b""
    assert 0.15 < time.monotonic() - started < 2


def test_the_request_window_and_limit() -> None:
    ex, _ = _exchange(window=4, limit=10)
    assert ex.room()
    assert ex.feed(b"12345")
    assert not ex.room()  # 5 held > window: the server stops reading the client
    assert ex.read(3, False, None) == b"123"
    assert ex.room()
    assert not ex.feed(b"678901")  # 11 received > limit
    assert ex.failure == TOO_LARGE
    assert ex.read(10, True, None) == b"45"
    assert ex.read(10, True, None) is None


def test_a_read_wakes_the_server_only_when_it_makes_room() -> None:
    ex, wakes = _exchange(window=4)
    assert ex.feed(b"12")
    assert ex.read(1, False, None) == b"1"
    assert wakes == []  # there was room all along: the server is still reading
    assert ex.feed(b"3456")  # 5 held: no room, the server stops reading the client
    assert ex.read(1, False, None) == b"2"
    assert (wakes, ex.room()) == ([], False)  # 4 held: still none
    assert ex.read(1, False, None) == b"3"
    assert (wakes, ex.room()) == ([1], True)  # room again: the server must hear of it
    whole, whole_wakes = _exchange(b"abcdef", window=4, complete=True)
    assert whole.read(2, False, None) == b"ab"
    assert whole.read(9, False, None) == b"cdef"
    assert whole_wakes == []  # a body already complete: nothing more to read from the client


def test_a_guest_writing_faster_than_the_client_reads_waits() -> None:
    ex, wakes = _exchange(window=4)
    ex.start(200, [])
    assert ex.write(b"123", None) is True
    assert ex.write(b"45", time.monotonic() + 0.1) is None  # over the window until the deadline
    threading.Timer(0.1, ex.sent_bytes, [5]).start()
    assert ex.write(b"6", time.monotonic() + 5) is True
    events = ex.take_events()
    assert [k for k, _ in events] == ["head", "data", "data", "data"]
    assert wakes


def test_the_client_leaving_closes_the_response() -> None:
    ex, _ = _exchange(window=1)
    ex.start(200, [])
    threading.Timer(0.1, ex.fail, [CLIENT_GONE]).start()
    assert ex.write(b"12", None) is False
    assert ex.write(b"3", None) is False
    assert ex.take_events() == []


# --- through the server ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    d = tmp_path_factory.mktemp("streaming-site")
    shutil.copy(ECHO, d / "echo.wasm")
    shutil.copy(HELLO, d / "hello.wasm")
    (d / "modules.toml").write_text(
        """
[[module]]
route = "/hello"
module = "hello.wasm"

[[module]]
route = "/t/small/..."
module = "echo.wasm"
max_request_body = "1KiB"

[[module]]
route = "/t/quick/..."
module = "echo.wasm"
timeout = "350ms"

[[module]]
route = "/t/capped/..."
module = "echo.wasm"
max_response_body = 300000

[[module]]
route = "/..."
module = "echo.wasm"
"""
    )
    with running_server(d / "modules.toml") as s:
        yield s


class Conn:
    """One raw HTTP/1.1 connection, read as it comes."""

    def __init__(self, server: Server) -> None:
        host, port = server.base.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        self.buf += data
        return bool(data)

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise EOFError("connection closed")
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise EOFError("connection closed")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def head(self) -> tuple[int, dict[bytes, bytes]]:
        status = int(self.line().split()[1])
        headers = {}
        while line := self.line():
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        return status, headers

    def chunk(self) -> bytes | None:
        """The next chunk of a chunked body; None at the last (zero) chunk."""
        size = int(self.line().split(b";")[0], 16)
        if size == 0:
            return None
        data = self.exactly(size)
        assert self.exactly(2) == b"\r\n"
        return data

    def body(self, headers: dict[bytes, bytes]) -> bytes:
        """A whole body, framed either way."""
        if b"content-length" in headers:
            return self.exactly(int(headers[b"content-length"]))
        out = b""
        while (c := self.chunk()) is not None:
            out += c
        self.trailers()
        return out

    def drain(self) -> None:
        """The rest of a chunked body, up to its end (EOFError if it never comes)."""
        while self.chunk() is not None:
            pass
        self.trailers()

    def response(self) -> bytes:
        """A whole response's body (EOFError if it never completes)."""
        return self.body(self.head()[1])

    def trailers(self) -> dict[bytes, bytes]:
        out = {}
        while line := self.line():
            name, _, value = line.partition(b":")
            out[name.strip().lower()] = value.strip()
        return out

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def conn(server: Server) -> Iterator[Conn]:
    c = Conn(server)
    yield c
    c.close()


def _get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nhost: x\r\n\r\n".encode()


def _chunked_post(path: str) -> bytes:
    return f"POST {path} HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n".encode()


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _log_has(server: Server, text: str, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if text in server.output():
            return True
        time.sleep(0.05)
    return False


def test_a_response_arrives_in_pieces_while_the_guest_runs(conn: Conn) -> None:
    started = time.monotonic()
    conn.send(_get("/stream/5"))
    status, headers = conn.head()
    assert status == 200
    assert headers[b"transfer-encoding"] == b"chunked"
    assert b"content-length" not in headers
    arrivals = []
    chunks = []
    while (c := conn.chunk()) is not None:
        arrivals.append(time.monotonic() - started)
        chunks.append(c)
    assert b"".join(chunks) == b"".join(b"event %d\n" % i for i in range(5))
    # The first event long before the guest's 5 x 100 ms are over, the others spread out.
    assert arrivals[0] < 0.35
    assert arrivals[-1] - arrivals[0] >= 0.3
    assert conn.trailers() == {b"x-events": b"5"}


def test_a_quick_answer_is_still_one_buffered_response(conn: Conn) -> None:
    conn.send(_get("/hello"))
    status, headers = conn.head()
    assert status == 200
    assert headers[b"content-length"] == b"14"
    assert conn.exactly(14) == b"Hello, world!\n"


def test_trailers_after_a_buffered_body(conn: Conn) -> None:
    conn.send(_get("/trailers"))
    status, headers = conn.head()
    assert status == 200
    assert headers[b"transfer-encoding"] == b"chunked"
    assert conn.chunk() == b"body\n"
    assert conn.chunk() is None
    assert conn.trailers() == {b"x-checksum": b"42"}


def test_a_long_body_streams_byte_exact(conn: Conn) -> None:
    n = 3 * 1024 * 1024  # past the window: streamed, not held whole
    conn.send(_get(f"/big/{n}"))
    status, headers = conn.head()
    assert status == 200
    assert headers[b"transfer-encoding"] == b"chunked"
    got = bytearray()
    while (c := conn.chunk()) is not None:
        got += c
    assert len(got) == n
    assert set(got) == {ord("x")}


def test_the_request_body_reaches_the_guest_as_it_arrives(conn: Conn) -> None:
    """Full duplex: each piece comes back before the next one is sent."""
    conn.send(_chunked_post("/echo"))
    conn.send(_chunk(b"ping one"))
    status, headers = conn.head()
    assert status == 200
    assert headers[b"transfer-encoding"] == b"chunked"
    got = b""
    while got != b"ping one":
        piece = conn.chunk()
        assert piece is not None
        got += piece
    conn.send(_chunk(b"ping two"))
    got = b""
    while got != b"ping two":
        piece = conn.chunk()
        assert piece is not None
        got += piece
    conn.send(b"0\r\n\r\n")
    assert conn.chunk() is None
    conn.trailers()
    # the connection stays usable
    conn.send(_get("/hello"))
    assert conn.head()[0] == 200


def test_request_trailers_reach_the_guest(conn: Conn) -> None:
    conn.send(_chunked_post("/request-trailers"))
    conn.send(_chunk(b"x" * 100) + _chunk(b"y" * 23))
    conn.send(b"0\r\nx-sum: 7\r\nx-note: hello there\r\n\r\n")
    status, headers = conn.head()
    assert status == 200
    assert conn.body(headers) == b"bytes=123\nx-sum: 7\nx-note: hello there\n"


def test_framing_fields_are_never_trailers(conn: Conn) -> None:
    conn.send(_chunked_post("/request-trailers"))
    conn.send(b"3\r\nabc\r\n0\r\nhost: evil\r\nauthorization: x\r\nx-ok: 1\r\n\r\n")
    status, headers = conn.head()
    assert status == 200
    assert conn.body(headers) == b"bytes=3\nx-ok: 1\n"


def test_a_streamed_body_past_its_limit_is_cut_off(conn: Conn, server: Server) -> None:
    conn.send(_chunked_post("/t/small/cut"))
    conn.send(_chunk(b"z" * 400))
    status, _ = conn.head()  # the echo is streaming back: its head is out
    assert status == 200
    assert conn.chunk() == b"z" * 400
    for _ in range(3):
        conn.send(_chunk(b"z" * 400))
    conn.send(b"0\r\n\r\n")
    # Past the limit after the head went out: the response is cut off, never a short body
    # that looks whole.
    with pytest.raises((EOFError, ConnectionError)):
        conn.drain()
    assert _log_has(server, '"path":"/t/small/cut","route":"/t/small/...","status":413')


def test_a_streamed_body_past_its_limit_before_any_answer_is_413(server: Server) -> None:
    """All at once: whether the guest's first read finds the failure (a 413 answer) or waits
    and so answers first (cut off) is a race; both are honest, and both are logged 413."""
    conn = Conn(server)
    conn.send(_chunked_post("/t/small/all") + _chunk(b"z" * 1600) + b"0\r\n\r\n")
    try:
        status, headers = conn.head()
        if status != 200:
            assert status == 413
            assert headers[b"connection"] == b"close"
    except (EOFError, ConnectionError):
        pass
    finally:
        conn.close()
    assert _log_has(server, '"path":"/t/small/all","route":"/t/small/...","status":413')


def test_a_long_declared_body_over_the_limit_is_refused_first(conn: Conn) -> None:
    conn.send(b"POST /t/small/ HTTP/1.1\r\nhost: x\r\ncontent-length: 100000\r\n\r\n")
    status, headers = conn.head()
    assert status == 413
    assert headers[b"connection"] == b"close"


def test_a_timeout_cuts_a_streamed_response_off(conn: Conn, server: Server) -> None:
    conn.send(_get("/t/quick/stream/20"))
    status, _ = conn.head()
    assert status == 200
    assert conn.chunk() == b"event 0\n"
    with pytest.raises((EOFError, ConnectionError)):
        conn.drain()
    assert _log_has(server, '"path":"/t/quick/stream/20","route":"/t/quick/...","status":504')


def test_a_streamed_response_past_its_limit_is_cut_off(conn: Conn, server: Server) -> None:
    # A guest that waits overruns the inline budget, so the route's guests run on threads,
    # where responses stream (an inline run is buffered whole, within its limits).
    conn.send(_get("/t/capped/stream/1"))
    status, headers = conn.head()
    assert status == 200
    conn.body(headers)
    conn.send(_get("/t/capped/big/1000000"))
    assert conn.head()[0] == 200  # streamed once past the window, before the limit was hit
    with pytest.raises((EOFError, ConnectionError)):
        conn.drain()
    assert _log_has(server, '"status":502,"cause":"too-large"')


def test_a_client_leaving_mid_stream_stops_the_guest(server: Server) -> None:
    c = Conn(server)
    c.send(_get("/stream/100"))  # 10 s if it ran to its end
    assert c.head()[0] == 200
    assert c.chunk() == b"event 0\n"
    c.close()
    started = time.monotonic()
    assert _log_has(server, '"path":"/stream/100","route":"/...","status":499', within=5)
    assert time.monotonic() - started < 5


# --- the ASGI face: the same app under a server that offers trailers, and one that does not ---


def _asgi_exchange(path: str, extensions: dict[str, object] | None) -> list[dict[str, object]]:
    site = Path(__file__).resolve().parent.parent / "examples" / "http"
    sent: list[dict[str, object]] = []

    async def main() -> None:
        with tempfile.TemporaryDirectory() as d:
            shutil.copy(site / "echo-http.wasm", Path(d) / "echo.wasm")
            toml = Path(d) / "modules.toml"
            toml.write_text('[[module]]\nroute = "/..."\nmodule = "echo.wasm"\n')
            app = create_app(GatewayConfig(modules_toml=toml, threads=2, inline_budget=None))
            scope: dict[str, object] = {
                "type": "http",
                "method": "GET",
                "path": path,
                "raw_path": path.encode(),
                "query_string": b"",
                "headers": [(b"host", b"t")],
                "client": ("127.0.0.1", 1),
                "server": ("127.0.0.1", 80),
                "scheme": "http",
                "root_path": "",
                "http_version": "1.1",
            }
            if extensions is not None:
                scope["extensions"] = extensions
            requested = False

            async def receive() -> dict[str, object]:
                nonlocal requested
                if not requested:
                    requested = True
                    return {"type": "http.request", "body": b"", "more_body": False}
                await asyncio.sleep(30)
                return {"type": "http.disconnect"}

            async def send(message: dict[str, object]) -> None:
                sent.append({**message, "at": time.monotonic()})

            await app(scope, receive, send)
            app.close()

    asyncio.run(main())
    return sent


def test_asgi_streams_and_sends_trailers_where_the_server_offers_them() -> None:
    sent = _asgi_exchange("/stream/3", {"http.response.trailers": {}})
    kinds = [m["type"] for m in sent]
    assert kinds[0] == "http.response.start"
    assert sent[0]["trailers"] is True
    assert not any(n == b"content-length" for n, _ in sent[0]["headers"])  # type: ignore[attr-defined]
    bodies = [m["body"] for m in sent if m["type"] == "http.response.body"]
    assert b"".join(bodies) == b"event 0\nevent 1\nevent 2\n"  # type: ignore[arg-type]
    assert len([b for b in bodies if b]) == 3  # one message per event, as they came
    assert sent[-1] == {**sent[-1], "type": "http.response.trailers"}
    assert sent[-1]["headers"] == [(b"x-events", b"3")]


def test_asgi_streams_without_trailers_under_other_servers() -> None:
    sent = _asgi_exchange("/stream/2", None)
    assert "trailers" not in sent[0]
    assert [m["type"] for m in sent].count("http.response.trailers") == 0
    assert sent[-1]["more_body"] is False
    bodies = [m["body"] for m in sent if m["type"] == "http.response.body"]
    assert b"".join(bodies) == b"event 0\nevent 1\n"  # type: ignore[arg-type]
