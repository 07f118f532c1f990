"""Hostile requests against ``wasmgate serve``, on raw sockets: oversized and truncated bodies,
slow clients, idle connections, malformed request lines and headers, spoofing header names,
oversized URLs and headers, Host injection. The shared server's connection guard uses 1 s
timeouts (``GUARD_TIMEOUT``)."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from gateway_support import Server

from .hostile_support import (
    GUARD_TIMEOUT,
    exchange,
    get,
    rss_settled,
    tree_rss_kib,
    wait_for_log,
)


def _env(body: bytes) -> dict[str, str]:
    out = {}
    for line in body.decode().splitlines():
        name, _, value = line.partition("=")
        out[name] = value
    return out


# --- bodies ------------------------------------------------------------------------------------


def test_declared_body_over_the_limit_is_refused_unread(hostile: Server, hport: int) -> None:
    """413 before reading, and the connection is closed: the rest is never read."""
    head = b"POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n"
    got = exchange(hport, head + b"x" * 100_000, timeout=5)
    assert [r.status for r in got.responses] == [413]
    assert got.responses[0].header("connection") == "close"
    assert got.closed
    wait_for_log(hostile, r'"path":"/small","route":"/small","status":413,"cause":"body-too-large"')


def test_chunked_body_over_the_limit(hport: int) -> None:
    chunk = b"400\r\n" + b"y" * 1024 + b"\r\n"
    req = b"POST /small HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 3
    got = exchange(hport, req + b"0\r\n\r\n", timeout=5)
    assert [r.status for r in got.responses] == [413]
    assert got.closed


def test_chunked_body_within_the_limit(hport: int) -> None:
    req = b"POST /small?ok HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    req += b"Connection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    got = exchange(hport, req)
    assert [r.status for r in got.responses] == [200]


def test_body_without_length_is_not_a_body(hostile: Server, hport: int) -> None:
    """HTTP/1.1 without Content-Length or chunking has no body: trailing bytes are a next request
    (garbage here: 400 and close), never the guest's stdin."""
    req = b"POST /esc/nolen?env HTTP/1.1\r\nHost: x\r\n\r\n" + b"\x01" * 5000
    got = exchange(hport, req, timeout=5)
    assert [r.status for r in got.responses][-1] == 400
    assert got.closed
    time.sleep(0.3)
    for line in hostile.output().splitlines():
        if '"path":"/esc/nolen"' in line:
            assert '"bytes_in":0' in line


@pytest.mark.parametrize(
    "framing",
    [
        b"Content-Length: 5\r\nContent-Length: 6\r\n",
        b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        b"Content-Length: -1\r\n",
        b"Content-Length: 1e3\r\n",
        b"Transfer-Encoding: gzip, chunked, identity\r\n",
    ],
)
def test_ambiguous_framing_is_refused(hport: int, framing: bytes) -> None:
    """Request smuggling shapes: refused before any guest runs."""
    req = b"POST /good?ok HTTP/1.1\r\nHost: x\r\n" + framing + b"\r\nhello"
    got = exchange(hport, req, timeout=3)
    assert [r.status for r in got.responses] == [400]
    assert got.closed


def test_truncated_body_never_reaches_a_guest(hostile: Server, hport: int) -> None:
    """The client sends half its declared body and hangs up: no guest runs on half a body."""
    with socket.create_connection(("127.0.0.1", hport)) as s:
        s.sendall(b"POST /esc?env HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"z" * 50)
        time.sleep(0.2)
    wait_for_log(hostile, r'"path":"/esc","route":"/esc/...","status":499,"cause":"client-gone"')


# --- slow and idle clients ---------------------------------------------------------------------


def _trickle(
    port: int, first: bytes, piece: bytes, every: float, seconds: float
) -> tuple[bytes, float]:
    """Send ``first``, then ``piece`` every ``every`` s; return what came back and when."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(first)
        s.settimeout(every)
        data = b""
        while time.monotonic() - started < seconds:
            try:
                chunk = s.recv(4096)
            except TimeoutError:
                try:
                    s.sendall(piece)
                except OSError:
                    break
                continue
            except OSError:
                break
            if not chunk:
                break
            data += chunk
        return data, time.monotonic() - started


def test_slowloris_headers(hostile: Server, hport: int) -> None:
    data, elapsed = _trickle(hport, b"GET /good?ok HTTP/1.1\r\n", b"X-A: b\r\n", 0.2, 6)
    assert data.startswith(b"HTTP/1.1 408 ")
    assert GUARD_TIMEOUT <= elapsed < GUARD_TIMEOUT + 2
    wait_for_log(hostile, r"408 request head not received within 1s")


def test_slowloris_body(hostile: Server, hport: int) -> None:
    head = b"POST /esc?env HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
    data, elapsed = _trickle(hport, head, b"z", 0.2, 6)
    assert data.startswith(b"HTTP/1.1 408 ")
    assert elapsed < GUARD_TIMEOUT + 2
    wait_for_log(hostile, r"408 request body slower than 500 bytes/s after 1s")


def test_slow_reader_is_disconnected(hostile: Server, hport: int) -> None:
    """A client that asks for large answers and never reads them is dropped (responses are not
    held in the server's memory for ever)."""
    with socket.create_connection(("127.0.0.1", hport)) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(b"GET /good?bigwrite&8 HTTP/1.1\r\nHost: x\r\n\r\n" * 4)  # 32 MiB unread
        wait_for_log(hostile, r"closing connection: client read less than 500 bytes in 1s", 8)


def test_slow_but_steady_reader_is_served(hport: int) -> None:
    """A client reading a 4 MiB answer slowly (over more than the 1 s send period) gets all of
    it: only a client that stops reading is cut off."""
    with socket.create_connection(("127.0.0.1", hport)) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        s.sendall(b"GET /good?bigwrite&4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        s.settimeout(10)
        data = b""
        started = time.monotonic()
        while chunk := s.recv(32768):
            data += chunk
            time.sleep(0.01)
    assert time.monotonic() - started > GUARD_TIMEOUT
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert len(body) == (4 << 20) - len("Content-Type: text/plain\n\n")


def test_idle_and_half_open_connections_are_reaped(hostile: Server, hport: int) -> None:
    """300 connections that never send a byte: good requests keep flowing, and every idle
    connection is closed by the server after the head timeout; memory returns."""
    pid = hostile.proc.pid
    baseline = tree_rss_kib(pid)
    socks = [socket.create_connection(("127.0.0.1", hport)) for _ in range(300)]
    try:
        started = time.monotonic()
        for _ in range(20):
            assert get(hport, "/good?ok").status == 200
        assert time.monotonic() - started < 2
        for s in socks:
            s.settimeout(GUARD_TIMEOUT + 3)
            assert s.recv(100) == b""  # closed by the server, silently
    finally:
        for s in socks:
            s.close()
    assert rss_settled(pid) < baseline + 16 * 1024


def _read_response(s: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
    while len(body) < length:
        body += s.recv(4096)
    return head


def test_idle_keepalive_connection_is_not_cut_by_the_head_timeout(hport: int) -> None:
    """After a response, an idle keep-alive connection is governed by uvicorn's keep-alive
    timeout (5 s), not by the (shorter) head timeout of the guard."""
    with socket.create_connection(("127.0.0.1", hport)) as s:
        s.settimeout(10)
        s.sendall(b"GET /good?ok HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _read_response(s).startswith(b"HTTP/1.1 200 ")
        time.sleep(GUARD_TIMEOUT + 0.5)  # longer than the head timeout, shorter than keep-alive
        s.sendall(b"GET /good?ok HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _read_response(s).startswith(b"HTTP/1.1 200 ")


# --- malformed requests ------------------------------------------------------------------------

MALFORMED = [
    b"GARBAGE\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
    b"GET / FTP/1.1\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello
    b"\x00\x01\x02\x03\r\n\r\n",
    b"G\x01T / HTTP/1.1\r\n\r\n",
    b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /\x7f HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
    b"GET / HTTP/1.1\r\n: novalue\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
    b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n",
    b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
    b"GET / HTTP/1.1\r\n folded: x\r\n\r\n",
    b"GET / HTTP/1.1\nHost: x\n\n\x00",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
]


@pytest.mark.parametrize("request_bytes", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_requests(hport: int, request_bytes: bytes) -> None:
    got = exchange(hport, request_bytes, timeout=GUARD_TIMEOUT + 3)
    assert [r.status for r in got.responses][-1:] == [400], got.raw[:300]
    assert got.closed
    assert get(hport, "/good?ok").status == 200  # and the server is fine


def test_underscore_headers_cannot_spoof_cgi_variables(hport: int) -> None:
    spoof = (
        "Content_Length: 999\r\nContent_Type: evil\r\nScript_Name: /evil\r\n"
        "Remote_Addr: 6.6.6.6\r\nX_Forwarded_For: 6.6.6.6\r\nX-Forwarded-For: 1.2.3.4\r\n"
        "Remote-Addr: 6.6.6.6\r\nPath-Info: /evil\r\n"
    )
    env = _env(get(hport, "/esc/x?env", headers=spoof).body)
    assert env["CONTENT_LENGTH"] == "0"
    assert env["CONTENT_TYPE"] == ""
    assert env["SCRIPT_NAME"] == "/esc"
    assert env["PATH_INFO"] == "/x"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["HTTP_X_FORWARDED_FOR"] == "1.2.3.4"  # only the dash spelling
    assert env["HTTP_REMOTE_ADDR"] == "6.6.6.6"  # a header, prefixed: never the CGI variable
    assert "HTTP_CONTENT_LENGTH" not in env
    assert "6.6.6.6" not in env.get("HTTP_X_FORWARDED_FOR", "")


# --- sizes -------------------------------------------------------------------------------------


def test_long_url_is_refused(hostile: Server, hport: int) -> None:
    got = exchange(hport, b"GET /good?" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert [r.status for r in got.responses] == [414]
    assert got.closed
    ok = get(hport, "/good?" + "a" * 7_000)  # under the 8 KiB limit: served
    assert ok.status == 200


def test_endless_url_is_cut_off_early(hport: int) -> None:
    """Megabytes of request target are never buffered: refused (414) and closed at 8 KiB."""
    with socket.socket() as s:
        # A small send buffer: what was sent has reached the server, not our kernel's queue.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        s.connect(("127.0.0.1", hport))
        s.sendall(b"GET /good?")
        sent = 0
        try:
            for _ in range(64):
                s.sendall(b"a" * 65536)
                sent += 1
        except OSError:
            pass
        s.settimeout(5)
        try:
            data = s.recv(4096)
        except OSError:  # reset: the refusal was discarded with our unread bytes
            data = b""
    assert data == b"" or data.startswith(b"HTTP/1.1 414 ")
    assert sent < 64


def test_huge_header_is_refused(hostile: Server, hport: int) -> None:
    pid = hostile.proc.pid
    baseline = tree_rss_kib(pid)
    got = exchange(hport, b"GET /good?ok HTTP/1.1\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n")
    assert [r.status for r in got.responses] == [431]
    many = b"".join(b"X-%d: v\r\n" % i for i in range(300))
    got = exchange(hport, b"GET /good?ok HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
    assert [r.status for r in got.responses] == [431]
    # An endless stream of small headers: refused at 64 KiB, not after gigabytes.
    with socket.create_connection(("127.0.0.1", hport)) as s:
        s.sendall(b"GET /good?ok HTTP/1.1\r\n")
        try:
            for _ in range(200):
                s.sendall(b"X-A: b\r\n" * 8192)
        except OSError:
            pass
    assert rss_settled(pid) < baseline + 16 * 1024
    wait_for_log(hostile, r"431 request head larger than 65536 bytes")
    wait_for_log(hostile, r"431 more than 256 header fields")
    assert get(hport, "/good?ok", headers="X-Normal: " + "n" * 4000 + "\r\n").status == 200


# --- Host header -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "evil.com/path",
        "evil.com?x=1",
        "evil.com#frag",
        "user@evil.com",
        "evil.com:80@good.com",
        "evil.com:99999",
        "evil.com:8o",
        "[::1",
        "a b",
        "évil.com",
        "evil.com\tx",
    ],
)
def test_host_injection_is_refused(hport: int, host: str) -> None:
    req = f"GET /esc?env HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    got = exchange(hport, req)
    assert [r.status for r in got.responses] == [400]
    assert b"evil" not in got.raw


def test_two_host_headers_are_refused(hport: int) -> None:
    req = b"GET /esc?env HTTP/1.1\r\nHost: a\r\nHost: evil\r\nConnection: close\r\n\r\n"
    got = exchange(hport, req)
    assert [r.status for r in got.responses] == [400]


def test_full_url_comes_from_a_valid_host_only(hport: int) -> None:
    env = _env(get(hport, "/esc/p%61th?env", headers="").body)  # Host: hostile.test
    assert env["X_FULL_URL"] == "http://hostile.test:80/esc/p%61th?env"
    req = (
        b"GET http://evil.com/esc?env HTTP/1.1\r\nHost: good.test:8080\r\nConnection: close\r\n\r\n"
    )
    got = exchange(hport, req)
    env = _env(got.responses[0].body)
    # RFC 9112 3.2.2: an absolute-form target's authority replaces Host (issue 12, item 11).
    assert env["X_FULL_URL"] == "http://evil.com:80/esc?env"
    assert env["SERVER_NAME"] == "evil.com"
    assert env["HTTP_HOST"] == "evil.com"


def test_concurrent_garbage_does_not_disturb_good_requests(hport: int) -> None:
    stop = threading.Event()

    def garbage() -> None:
        while not stop.is_set():
            exchange(hport, b"\x16\x03\x01garbage\r\n\r\n", timeout=2)

    threads = [threading.Thread(target=garbage) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for _ in range(30):
            assert get(hport, "/good?ok").status == 200
    finally:
        stop.set()
        for t in threads:
            t.join()


# --- issue 12: Upgrade, RFC 9112 framing, client faults in the log ------------------------------


def test_upgrade_with_a_body_is_refused_never_dropped(hostile: Server, hport: int) -> None:
    """Item 5: the body used to be dropped (the guest ran with CONTENT_LENGTH=0 and answered
    200) and the pipelined request after it ignored."""
    req = (
        b"POST /esc?env HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
        b"Content-Length: 5\r\n\r\nhelloGET /good?ok HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    got = exchange(hport, req, timeout=5)
    assert [r.status for r in got.responses] == [501]
    assert got.closed
    wait_for_log(hostile, r"127\.0\.0\.1:\d+: 501 Upgrade request with a body is not supported")


def test_upgrade_is_ignored_and_pipelined_requests_are_served(hostile: Server, hport: int) -> None:
    req = (
        b"GET /esc?env HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"
        b"GET /good?ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    got = exchange(hport, req, timeout=5)
    assert [r.status for r in got.responses] == [200, 200]
    assert got.responses[1].body == b"ok\n"
    time.sleep(0.2)
    out = hostile.output()
    assert "Unsupported upgrade request" not in out
    assert "WebSocket library" not in out


def test_http11_without_host_is_refused(hostile: Server, hport: int) -> None:
    """Item 11 (RFC 9112 section 3.2): an HTTP/1.1 request without Host is 400; HTTP/1.0 may
    omit it."""
    got = exchange(hport, b"GET /good?ok HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert [r.status for r in got.responses] == [400]
    wait_for_log(hostile, r"127\.0\.0\.1:\d+: 400 HTTP/1\.1 request without a Host header")
    got = exchange(hport, b"GET /good?ok HTTP/1.0\r\n\r\n")
    assert [r.status for r in got.responses] == [200]


def test_gzip_chunked_is_501(hport: int) -> None:
    """Item 11: ``gzip, chunked`` used to be de-chunked and passed on as if plain."""
    req = b"POST /good?ok HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
    got = exchange(hport, req + b"5\r\nhello\r\n0\r\n\r\n", timeout=3)
    assert [r.status for r in got.responses] == [501]


def test_parser_400_names_the_client(hostile: Server, hport: int) -> None:
    """Item 12: parser 400s were logged without the client address."""
    exchange(hport, b"NOT\x01HTTP\r\n\r\n")
    wait_for_log(hostile, r"WARNING wasmgate\.gateway: 127\.0\.0\.1:\d+: 400 invalid HTTP request")


def test_client_faults_are_not_errors(hostile: Server, hport: int) -> None:
    """Item 12: a bad Host (400 from the CGI translation) was logged at ERROR."""
    exchange(hport, b"GET /esc?env HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n")
    line = wait_for_log(hostile, r".*/esc -> 400: invalid Host header.*").group(0)
    assert " WARNING " in line
    assert "client 127.0.0.1:" in line


def test_slow_body_is_reported_as_408_not_499(hostile: Server, hport: int) -> None:
    """Item 10: a body refused by the connection guard (408) was logged and counted as a client
    that hung up (499)."""
    head = b"POST /esc/slow408?env HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
    data, _ = _trickle(hport, head, b"z", 0.2, 6)
    assert data.startswith(b"HTTP/1.1 408 ")
    wait_for_log(
        hostile, r'"path":"/esc/slow408","route":"/esc/...","status":408,"cause":"body-timeout"'
    )
    assert '"path":"/esc/slow408","route":"/esc/...","status":499' not in hostile.output()
