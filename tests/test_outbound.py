"""wasi_experimental_http: a real C guest and hostile WAT guests against a loopback HTTP server."""

from __future__ import annotations

import functools
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import wasmtime
from hypothesis import given, settings
from hypothesis import strategies as st

from wasmgate.errors import ConfigError
from wasmgate.wagi.outbound import (
    IMPORT_MODULE,
    HttpError,
    OutboundPolicy,
    OutboundSession,
    current_session,
    define_outbound_http,
    outbound_session,
)
from wasmgate.wagi.outbound_url import InvalidUrl, parse_url

# --------------------------------------------------------------------------- loopback server


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name]


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.seen: list[Seen] = []
        self.lock = threading.Lock()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def record(self, seen: Seen) -> None:
        with self.lock:
            self.seen.append(seen)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that time out leave broken pipes behind; they are expected here."""


ODD_VALUES = {
    "tab": b"a\tb",
    "del": b"a\x7fb",
    "c1": "a\u0085b".encode(),
    "latin1": b"caf\xe9",
    "utf8": "caf\u00e9".encode(),
}
MALFORMED = {
    "fold": b"X-A: 1\r\n  folded\r\nContent-Length: 0",
    "no-colon": b"X-A: 1\r\nno colon here\r\nContent-Length: 0",
    "bad-name": b"X A: 1\r\nContent-Length: 0",
    "bad-length": b"Content-Length: nope",
}


def pattern(n: int) -> bytes:
    return bytes(i % 251 for i in range(n))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):
            return self.dispatch
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = [(k.lower(), v) for k, v in self.headers.items()]
        self.server.record(Seen(self.command, self.path, headers, body))
        self.close_connection = True
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query))
        getattr(self, "route_" + url.path.strip("/"), self.route_echo)(query, body)

    def respond(self, status: int, headers: list[tuple[str, bytes]], body: bytes) -> None:
        head = [f"HTTP/1.1 {status} X\r\n".encode()]
        head += [name.encode() + b": " + value + b"\r\n" for name, value in headers]
        head.append(b"Content-Length: %d\r\n\r\n" % len(body))
        self.wfile.write(b"".join(head) + body)

    def route_echo(self, query: dict[str, str], body: bytes) -> None:
        headers = [
            ("Content-Type", b"text/plain"),
            ("X-Method", self.command.encode()),
            ("X-Multi", b"a"),
            ("X-Other", b"z"),
            ("X-Multi", b"b"),
        ]
        if "hdr" in query:
            headers.append(("X-Long", query["hdr"].encode()))
        self.respond(int(query.get("status", "200")), headers, body)

    def route_redirect(self, query: dict[str, str], body: bytes) -> None:
        self.respond(int(query.get("code", "302")), [("Location", query["to"].encode())], b"")

    def route_loop(self, query: dict[str, str], body: bytes) -> None:
        self.respond(302, [("Location", b"/loop")], b"")

    def route_slow(self, query: dict[str, str], body: bytes) -> None:
        time.sleep(float(query["secs"]))
        self.respond(200, [], b"late")

    def route_drip(self, query: dict[str, str], body: bytes) -> None:
        try:
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
            for _ in range(100):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.2)
        except OSError:
            return

    def route_big(self, query: dict[str, str], body: bytes) -> None:
        self.respond(200, [], pattern(int(query["n"])))

    def route_odd(self, query: dict[str, str], body: bytes) -> None:
        self.respond(200, [("X-Odd", ODD_VALUES[query["kind"]])], b"")

    def route_malformed(self, query: dict[str, str], body: bytes) -> None:
        self.wfile.write(b"HTTP/1.1 200 OK\r\n" + MALFORMED[query["kind"]] + b"\r\n\r\n")

    def route_bare(self, query: dict[str, str], body: bytes) -> None:
        self.wfile.write(b"HTTP/1.0 200 OK\r\n\r\nbare body")


@pytest.fixture(scope="module")
def live_server() -> Iterator[Server]:
    srv = Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def server(live_server: Server) -> Server:
    with live_server.lock:
        live_server.seen.clear()
    return live_server


# --------------------------------------------------------------------------- the C guest

LOCAL = ("http://127.0.0.1",)


@dataclass
class Run:
    lines: list[str]
    session: OutboundSession
    elapsed: float


@dataclass
class GuestRunner:
    """Runs http_client.wasm; the Linker is built once and reused, as the gateway does."""

    engine: wasmtime.Engine
    module: wasmtime.Module
    linker: wasmtime.Linker = field(init=False)

    def __post_init__(self) -> None:
        self.linker = wasmtime.Linker(self.engine)
        self.linker.define_wasi()
        define_outbound_http(self.linker)

    def __call__(
        self,
        policy: OutboundPolicy,
        *args: str,
        inspect: Callable[[OutboundSession], None] | None = None,
    ) -> Run:
        store = wasmtime.Store(self.engine)
        with tempfile.TemporaryDirectory() as tmp:
            stdout = Path(tmp) / "stdout"
            wasi = wasmtime.WasiConfig()
            wasi.argv = ["http_client", *args]
            wasi.stdout_file = str(stdout)
            wasi.inherit_stderr()
            store.set_wasi(wasi)
            start = self.linker.instantiate(store, self.module).exports(store)["_start"]
            assert isinstance(start, wasmtime.Func)
            began = time.monotonic()
            exit_code = 0
            with outbound_session(policy) as session:
                try:
                    start(store)
                except wasmtime.ExitTrap as exit_trap:
                    exit_code = exit_trap.code
                if inspect is not None:
                    inspect(session)
            elapsed = time.monotonic() - began
            assert exit_code == 0
            return Run(stdout.read_text().splitlines(), session, elapsed)


@pytest.fixture(scope="module")
def run(guest: Callable[[str], Path]) -> GuestRunner:
    engine = wasmtime.Engine()
    return GuestRunner(engine, wasmtime.Module.from_file(engine, str(guest("http_client"))))


def unescape(text: str) -> bytes:
    raw = text.encode("latin-1")
    return re.sub(rb"\\x([0-9a-f]{2})", lambda m: bytes([int(m[1], 16)]), raw)


def escape(data: bytes) -> str:
    return "".join(chr(b) if 0x20 <= b <= 0x7E and b != 0x5C else f"\\x{b:02x}" for b in data)


def data_of(line: str, key: str = "data") -> bytes:
    return unescape(line.split(f" {key}=", 1)[1])


def ok_req(handle: int, status: int = 200) -> str:
    return f"req rc=0 status={status} handle={handle} status_tail=aaaa"


def failed_req(code: int) -> str:
    return f"req rc={code} status_slot=untouched handle_slot=untouched"


ECHO_HEADERS = "content-type:text/plain\nx-method:{m}\nx-multi:a\nx-multi:b\nx-other:z\n"


# --------------------------------------------------------------------------- round trips


def test_get_round_trip_status_headers_and_body(run: GuestRunner, server: Server) -> None:
    headers = "X-Custom:Hello\nx-two:1\n"
    result = run(
        OutboundPolicy(allowed_hosts=LOCAL),
        *("req", "GET", server.url("/echo?status=203"), headers, ""),
        *("header", "@", "content-type", "64"),
        *("header", "@", "X-MULTI", "64"),
        *("all", "@", "65536"),
        *("body", "@", "4096"),
        *("close", "@"),
    )
    all_text = ECHO_HEADERS.format(m="GET") + "content-length:0\n"
    assert result.lines == [
        ok_req(0, status=203),
        "header rc=0 len=10 value=text/plain",
        "header rc=0 len=1 value=a",
        f"all rc=0 len={len(all_text)} text=" + all_text.replace("\n", "\\x0a"),
        "body sizes=0 rc=0 again=0/0 data=",
        "close rc=0",
    ]
    [seen] = server.seen
    assert (seen.method, seen.path, seen.body) == ("GET", "/echo?status=203", b"")
    assert seen.header("x-custom") == ["Hello"]
    assert seen.header("x-two") == ["1"]
    assert seen.header("accept") == ["*/*"]
    assert seen.header("host") == [f"127.0.0.1:{server.port}"]
    assert seen.header("content-length") == []
    assert seen.header("accept-encoding") == []
    assert result.session.requests_sent == 1


def test_post_body_round_trip(run: GuestRunner, server: Server) -> None:
    result = run(
        OutboundPolicy(allowed_hosts=LOCAL),
        *("req", "POST", server.url("/echo?status=201"), "content-type:text/x\n", "hello wasm"),
        *("body", "@", "4"),
    )
    assert result.lines == [ok_req(0, 201), "body sizes=4,4,2,0 rc=0 again=0/0 data=hello wasm"]
    [seen] = server.seen
    assert (seen.method, seen.body) == ("POST", b"hello wasm")
    assert seen.header("content-length") == ["10"]
    assert seen.header("content-type") == ["text/x"]


def test_empty_post_sends_zero_length_and_guest_framing_is_ignored(
    run: GuestRunner, server: Server
) -> None:
    result = run(
        OutboundPolicy(allowed_hosts=LOCAL),
        *(
            "req",
            "POST",
            server.url("/echo"),
            "content-length:999\ntransfer-encoding:chunked\n",
            "",
        ),
        *("req", "PUT", server.url("/echo"), "content-length:1\n", "abc"),
    )
    assert result.lines == [ok_req(0), ok_req(1)]
    first, second = server.seen
    assert first.header("content-length") == ["0"]
    assert first.header("transfer-encoding") == []
    assert (second.header("content-length"), second.body) == (["3"], b"abc")


@pytest.mark.parametrize("status", [404, 500, 503])
def test_error_statuses_are_successful_responses(
    run: GuestRunner, server: Server, status: int
) -> None:
    result = run(
        OutboundPolicy(allowed_hosts=LOCAL),
        "req",
        "GET",
        server.url(f"/echo?status={status}"),
        "",
        "",
    )
    assert result.lines == [ok_req(0, status)]


def test_response_without_headers(run: GuestRunner, server: Server) -> None:
    result = run(
        OutboundPolicy(allowed_hosts=LOCAL),
        *("req", "GET", server.url("/bare"), "", ""),
        *("all", "@", "0"),
        *("header", "@", "content-length", "16"),
        *("body", "@", "100"),
    )
    assert result.lines == [
        ok_req(0),
        "all rc=0 len=0 text=",
        "header rc=5 written=untouched buf=untouched",
        "body sizes=9,0 rc=0 again=0/0 data=bare body",
    ]


# --------------------------------------------------------------------------- header_get


def test_header_get_buffer_size_rules(run: GuestRunner, server: Server) -> None:
    value = "v" * 300
    result = run(
        OutboundPolicy(allowed_hosts=LOCAL),
        *("req", "GET", server.url(f"/echo?hdr={value}"), "", ""),
        *("header", "@", "x-long", "300"),
        *("header", "@", "x-long", "299"),
        *("header", "@", "x-long", "0"),
        *("header", "@", "x-missing", "4096"),
        *("header", "@", "bad name", "4096"),
        *("header", "@", "", "4096"),
        *("header", "@", "x-long", "300"),
    )
    assert result.lines == [
        ok_req(0),
        f"header rc=0 len=300 value={value}",
        "header rc=4 written=untouched buf=untouched",
        "header rc=4 written=untouched buf=untouched",
        "header rc=5 written=untouched buf=untouched",
        "header rc=5 written=untouched buf=untouched",
        "header rc=5 written=untouched buf=untouched",
        f"header rc=0 len=300 value={value}",
    ]


@pytest.mark.parametrize(
    ("kind", "code"), [("tab", 12), ("del", 12), ("c1", 12), ("latin1", 12), ("utf8", 0)]
)
def test_raw_header_bytes_and_headers_get_all_control_characters(
    run: GuestRunner, server: Server, kind: str, code: int
) -> None:
    result = run(
        OutboundPolicy(allowed_hosts=LOCAL),
        *("req", "GET", server.url(f"/odd?kind={kind}"), "", ""),
        *("header", "@", "x-odd", "16"),
        *("all", "@", "65536"),
    )
    value = ODD_VALUES[kind]
    assert result.lines[:2] == [ok_req(0), f"header rc=0 len={len(value)} value={escape(value)}"]
    if code:
        assert result.lines[2] == f"all rc={code} written=untouched buf=untouched"
    else:
        assert data_of(result.lines[2], "text") == b"x-odd:" + value + b"\ncontent-length:0\n"


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_malformed_response_is_a_request_error(run: GuestRunner, server: Server, kind: str) -> None:
    url = server.url(f"/malformed?kind={kind}")
    result = run(OutboundPolicy(allowed_hosts=LOCAL), "req", "GET", url, "", "")
    assert result.lines == [failed_req(HttpError.REQUEST_ERROR)]


def test_headers_get_all_buffer_size_rules(run: GuestRunner, server: Server) -> None:
    text = ECHO_HEADERS.format(m="GET") + "content-length:0\n"
    size = len(text)
    result = run(
        OutboundPolicy(allowed_hosts=LOCAL),
        *("req", "GET", server.url("/echo"), "", ""),
        *("all", "@", str(size - 1)),
        *("all", "@", str(size)),
    )
    assert result.lines[1] == "all rc=4 written=untouched buf=untouched"
    assert data_of(result.lines[2], "text") == text.encode()
    assert result.lines[2].startswith(f"all rc=0 len={size} ")


# --------------------------------------------------------------------------- body_read


def test_body_read_in_chunks_until_zero(run: GuestRunner, server: Server) -> None:
    result = run(
        OutboundPolicy(allowed_hosts=LOCAL),
        *("req", "GET", server.url("/big?n=10000"), "", ""),
        *("read", "@", "0"),
        *("read", "@", "3"),
        *("header", "@", "content-length", "16"),
        *("body", "@", "4096"),
    )
    assert result.lines[1] == "read rc=0 n=0 data="
    assert data_of(result.lines[2]) == pattern(3)
    assert result.lines[3] == "header rc=0 len=5 value=10000"
    assert result.lines[4].startswith("body sizes=4096,4096,1805,0 rc=0 again=0/0 data=")
    assert data_of(result.lines[4]) == pattern(10000)[3:]


def test_large_body_and_body_cap(run: GuestRunner, server: Server) -> None:
    n = 1 << 20
    url = server.url(f"/big?n={n}")
    result = run(
        OutboundPolicy(allowed_hosts=LOCAL), "req", "GET", url, "", "", "body", "@", "65536"
    )
    assert result.lines[1].startswith("body sizes=" + "65536," * 16 + "0 rc=0")
    assert data_of(result.lines[1]) == pattern(n)
    capped = OutboundPolicy(allowed_hosts=LOCAL, max_response_body=n - 1)
    assert run(capped, "req", "GET", url, "", "").lines == [failed_req(HttpError.REQUEST_ERROR)]
    exact = OutboundPolicy(allowed_hosts=LOCAL, max_response_body=n)
    assert run(exact, "req", "GET", url, "", "").lines == [ok_req(0)]


# --------------------------------------------------------------------------- handles


def test_handle_numbering_close_and_invalid_handles(run: GuestRunner, server: Server) -> None:
    url = server.url("/echo")
    result = run(
        OutboundPolicy(allowed_hosts=LOCAL),
        *("req", "GET", url, "", ""),
        *("req", "GET", url, "", ""),
        *("close", "0"),
        *("req", "GET", url, "", ""),
        *("close", "0"),
        *("close", "77"),
        *("header", "0", "content-type", "64"),
        *("all", "0", "65536"),
        *("read", "0", "16"),
        *("body", "0", "16"),
        *("close", "1"),
        *("close", "2"),
        *("req", "GET", url, "", ""),
        *("close", "2"),
        *("req", "GET", url, "", ""),
    )
    assert result.lines == [
        ok_req(0),
        ok_req(1),
        "close rc=0",
        ok_req(2),
        "close rc=0",
        "close rc=0",
        "header rc=1 written=untouched buf=untouched",
        "all rc=1 written=untouched buf=untouched",
        "read rc=1 n=0 data=",
        "body rc=1",
        "close rc=0",
        "close rc=0",
        ok_req(2),
        "close rc=0",
        ok_req(2),
    ]


def test_concurrency_limit_counts_open_handles(run: GuestRunner, server: Server) -> None:
    url = server.url("/echo")
    result = run(
        OutboundPolicy(allowed_hosts=LOCAL, max_concurrency=2),
        *("req", "GET", url, "", ""),
        *("req", "GET", url, "", ""),
        *("req", "GET", url, "", ""),
        *("close", "0"),
        *("req", "GET", url, "", ""),
        *("req", "GET", "not even a url", "", ""),
    )
    assert result.lines == [
        ok_req(0),
        ok_req(1),
        failed_req(HttpError.TOO_MANY_SESSIONS),
        "close rc=0",
        ok_req(2),
        failed_req(HttpError.TOO_MANY_SESSIONS),
    ]
    assert len(server.seen) == 3


def test_concurrency_limit_zero_allows_no_request(run: GuestRunner, server: Server) -> None:
    policy = OutboundPolicy(allowed_hosts=LOCAL, max_concurrency=0)
    result = run(policy, "req", "GET", server.url("/echo"), "", "")
    assert result.lines == [failed_req(HttpError.TOO_MANY_SESSIONS)]
    assert server.seen == []


def test_session_end_frees_open_handles(run: GuestRunner, server: Server) -> None:
    during: list[tuple[int, ...]] = []
    url = server.url("/echo")
    result = run(
        OutboundPolicy(allowed_hosts=LOCAL),
        *("req", "GET", url, "", ""),
        *("req", "GET", url, "", ""),
        inspect=lambda session: during.append(session.open_handles),
    )
    assert during == [(0, 1)]
    assert result.session.open_handles == ()
    assert result.session.closed
    assert current_session() is None


def test_one_linker_serves_concurrent_sessions_in_isolation(
    run: GuestRunner, server: Server
) -> None:
    url = server.url("/echo")
    allowed = OutboundPolicy(allowed_hosts=LOCAL, max_concurrency=1)
    denied = OutboundPolicy(allowed_hosts=("http://example.com",))
    results: dict[int, list[str]] = {}

    def worker(index: int) -> None:
        policy = allowed if index % 2 == 0 else denied
        results[index] = run(policy, "req", "GET", url, "", "", "all", "@", "65536").lines

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    for index in range(8):
        if index % 2 == 0:
            assert results[index][0] == ok_req(0)
            assert results[index][1].startswith("all rc=0 ")
        else:
            assert results[index] == [failed_req(7), "all rc=1 written=untouched buf=untouched"]
    assert len(server.seen) == 4


# --------------------------------------------------------------------------- allow-list


@pytest.mark.parametrize("hosts", [None, ()])
def test_no_allow_list_sends_nothing(
    run: GuestRunner, server: Server, hosts: tuple[str, ...] | None
) -> None:
    result = run(OutboundPolicy(allowed_hosts=hosts), "req", "GET", server.url("/echo"), "", "")
    assert result.lines == [failed_req(HttpError.DESTINATION_NOT_ALLOWED)]
    assert server.seen == []
    assert result.session.requests_sent == 0


@pytest.mark.parametrize(
    ("hosts", "code"),
    [
        (("http://127.0.0.1",), 0),
        (("https://127.0.0.1:1/ignored/path?q=1#f",), 0),
        (("http://user:pw@127.0.0.1:8080",), 0),
        (("HTTP://0x7F.1",), 0),
        (("http://2130706433",), 0),
        (("http://localhost",), 7),
        (("http://127.0.0.2", "http://example.com"), 7),
        (("http://127.0.0.1.example.com",), 7),
        (("insecure:allow-all",), 0),
        (("no scheme here", "insecure:allow-all"), 0),
        ((" insecure:allow-all",), 10),
        (("INSECURE:ALLOW-ALL",), 10),
        (("127.0.0.1",), 10),
        (("http://127.0.0.1", "api.brigade.sh"), 10),
        (("localhost:3000",), 10),
    ],
)
def test_allow_list_matching(
    run: GuestRunner, server: Server, hosts: tuple[str, ...], code: int
) -> None:
    result = run(OutboundPolicy(allowed_hosts=hosts), "req", "GET", server.url("/echo"), "", "")
    assert result.lines == [ok_req(0) if code == 0 else failed_req(code)]
    assert len(server.seen) == (1 if code == 0 else 0)


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("2130706433", ("http://127.0.0.1",)),
        ("0177.0.0.1", ("http://127.0.0.1",)),
        ("LOCALHOST", ("http://localhost",)),
        ("%6cocalhost", ("http://localhost",)),
    ],
)
def test_request_hosts_are_normalised_before_matching(
    run: GuestRunner, server: Server, host: str, allowed: tuple[str, ...]
) -> None:
    result = run(
        OutboundPolicy(allowed_hosts=allowed), "req", "GET", server.url("/echo", host), "", ""
    )
    assert result.lines == [ok_req(0)]
    assert len(server.seen) == 1


@pytest.mark.parametrize(
    "url",
    ["", "not a url", "/echo", "mailto:a@example.com", "data:,x", "http://", "http://h:99999/"],
)
def test_invalid_urls_even_under_allow_all(run: GuestRunner, server: Server, url: str) -> None:
    policy = OutboundPolicy(allowed_hosts=("insecure:allow-all",))
    assert run(policy, "req", "GET", url, "", "").lines == [failed_req(HttpError.INVALID_URL)]


def test_non_http_scheme_is_a_request_error_without_network(
    run: GuestRunner, server: Server
) -> None:
    policy = OutboundPolicy(allowed_hosts=("insecure:allow-all",))
    url = server.url("/echo").replace("http:", "ftp:")
    assert run(policy, "req", "GET", url, "", "").lines == [failed_req(HttpError.REQUEST_ERROR)]
    assert server.seen == []


def test_url_cannot_inject_into_the_request(run: GuestRunner, server: Server) -> None:
    url = server.url("/echo\r\nX-Evil: 1\r\n\r\n") + " x"
    assert run(OutboundPolicy(allowed_hosts=LOCAL), "req", "GET", url, "", "").lines == [ok_req(0)]
    [seen] = server.seen
    assert seen.path == "/echoX-Evil:%201%20x"
    assert seen.header("x-evil") == []


# --------------------------------------------------------------------------- method and headers


@pytest.mark.parametrize("method", ["get", "PURGE", "M-SEARCH"])
def test_extension_methods_are_sent_verbatim(run: GuestRunner, server: Server, method: str) -> None:
    result = run(OutboundPolicy(allowed_hosts=LOCAL), "req", method, server.url("/echo"), "", "")
    assert result.lines == [ok_req(0)]
    assert server.seen[0].method == method


@pytest.mark.parametrize("method", ["", "GE T", "GÉT", "GET\t", "(GET)"])
def test_invalid_methods(run: GuestRunner, server: Server, method: str) -> None:
    result = run(OutboundPolicy(allowed_hosts=LOCAL), "req", method, server.url("/echo"), "", "")
    assert result.lines == [failed_req(HttpError.INVALID_METHOD)]
    assert server.seen == []


@pytest.mark.parametrize(
    "headers",
    [
        "a:b\n\nc:d\n",
        "\n",
        "nocolon",
        ":x",
        "bad name:x",
        "a:\x01",
        "a:caf\u00e9",
        "a:x\x7f",
        "a:b\rc",
    ],
)
def test_invalid_request_header_text(run: GuestRunner, server: Server, headers: str) -> None:
    result = run(
        OutboundPolicy(allowed_hosts=LOCAL), "req", "GET", server.url("/echo"), headers, ""
    )
    assert result.lines == [failed_req(HttpError.INVALID_ENCODING)]
    assert server.seen == []


def test_request_header_text_rules(run: GuestRunner, server: Server) -> None:
    headers = "X-One:1\r\nx-two:\t2\r\nx-one:3\nx-empty:\nx-colon:a:b"
    result = run(
        OutboundPolicy(allowed_hosts=LOCAL), "req", "GET", server.url("/echo"), headers, ""
    )
    assert result.lines == [ok_req(0)]
    [seen] = server.seen
    assert seen.header("x-one") == ["3"]
    assert seen.header("x-two") == ["2"]
    assert seen.header("x-empty") == [""]
    assert seen.header("x-colon") == ["a:b"]
    names = [name for name, _ in seen.headers]
    assert names.index("x-one") < names.index("x-two")


# --------------------------------------------------------------------------- redirects


def test_redirect_hop_to_allowed_host_is_followed(run: GuestRunner, server: Server) -> None:
    target = server.url("/echo", host="localhost")
    policy = OutboundPolicy(allowed_hosts=("http://127.0.0.1", "http://localhost"))
    result = run(
        policy,
        *("req", "GET", server.url(f"/redirect?to={target}"), "authorization:secret\nx-keep:1", ""),
        *("header", "@", "x-method", "16"),
    )
    assert result.lines == [ok_req(0), "header rc=0 len=3 value=GET"]
    first, second = server.seen
    assert first.header("authorization") == ["secret"]
    assert second.header("host") == [f"localhost:{server.port}"]
    assert second.header("authorization") == []
    assert second.header("x-keep") == ["1"]


def test_redirect_hop_to_host_not_allowed_is_refused(run: GuestRunner, server: Server) -> None:
    target = server.url("/echo", host="localhost")
    result = run(
        OutboundPolicy(allowed_hosts=LOCAL),
        "req",
        "GET",
        server.url(f"/redirect?to={target}"),
        "",
        "",
    )
    assert result.lines == [failed_req(HttpError.DESTINATION_NOT_ALLOWED)]
    assert [seen.path.split("?")[0] for seen in server.seen] == ["/redirect"]


@pytest.mark.parametrize(
    ("code", "method", "body"), [(301, "GET", b""), (303, "GET", b""), (307, "POST", b"data")]
)
def test_redirect_method_rewriting(
    run: GuestRunner, server: Server, code: int, method: str, body: bytes
) -> None:
    url = server.url(f"/redirect?code={code}&to=/echo")
    result = run(
        OutboundPolicy(allowed_hosts=LOCAL), "req", "POST", url, "content-type:a/b", "data"
    )
    assert result.lines == [ok_req(0)]
    second = server.seen[1]
    assert (second.method, second.path, second.body) == (method, "/echo", body)
    assert second.header("content-type") == ([] if code != 307 else ["a/b"])


def test_redirect_limit_and_disabled_redirects(run: GuestRunner, server: Server) -> None:
    looping = run(OutboundPolicy(allowed_hosts=LOCAL), "req", "GET", server.url("/loop"), "", "")
    assert looping.lines == [failed_req(HttpError.REQUEST_ERROR)]
    assert len(server.seen) == 11
    server.seen.clear()
    policy = OutboundPolicy(allowed_hosts=LOCAL, follow_redirects=False)
    result = run(policy, "req", "GET", server.url("/loop"), "", "", "header", "@", "location", "64")
    assert result.lines == [ok_req(0, 302), "header rc=0 len=5 value=/loop"]
    assert len(server.seen) == 1


# --------------------------------------------------------------------------- timeouts


@pytest.mark.parametrize("path", ["/slow?secs=5", "/drip"])
def test_timeout_is_a_request_error(run: GuestRunner, server: Server, path: str) -> None:
    policy = OutboundPolicy(allowed_hosts=LOCAL, timeout=0.5)
    result = run(policy, "req", "GET", server.url(path), "", "")
    assert result.lines == [failed_req(HttpError.REQUEST_ERROR)]
    assert 0.4 < result.elapsed < 3.0


def test_unreachable_server_is_a_request_error(run: GuestRunner, server: Server) -> None:
    closed_port = Server()
    port = closed_port.port
    closed_port.server_close()
    url = f"http://127.0.0.1:{port}/"
    assert run(OutboundPolicy(allowed_hosts=LOCAL), "req", "GET", url, "", "").lines == [
        failed_req(HttpError.REQUEST_ERROR)
    ]


def test_tls_failure_is_a_request_error(run: GuestRunner, server: Server) -> None:
    url = server.url("/echo").replace("http:", "https:")
    assert run(OutboundPolicy(allowed_hosts=LOCAL), "req", "GET", url, "", "").lines == [
        failed_req(HttpError.REQUEST_ERROR)
    ]


# --------------------------------------------------------------------------- hostile WAT guests

WAT = """
(module
  (import "wasi_experimental_http" "req"
    (func $req (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_experimental_http" "close" (func $close (param i32) (result i32)))
  (import "wasi_experimental_http" "header_get"
    (func $header_get (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_experimental_http" "headers_get_all"
    (func $headers_get_all (param i32 i32 i32 i32) (result i32)))
  (import "wasi_experimental_http" "body_read"
    (func $body_read (param i32 i32 i32 i32) (result i32)))
  (memory $mem 1)
  MEMORY_EXPORT
  (func (export "req") (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)
    (call $req (local.get 0) (local.get 1) (local.get 2) (local.get 3) (local.get 4)
               (local.get 5) (local.get 6) (local.get 7) (local.get 8) (local.get 9)))
  (func (export "close") (param i32) (result i32) (call $close (local.get 0)))
  (func (export "header_get") (param i32 i32 i32 i32 i32 i32) (result i32)
    (call $header_get (local.get 0) (local.get 1) (local.get 2) (local.get 3) (local.get 4)
                      (local.get 5)))
  (func (export "headers_get_all") (param i32 i32 i32 i32) (result i32)
    (call $headers_get_all (local.get 0) (local.get 1) (local.get 2) (local.get 3)))
  (func (export "body_read") (param i32 i32 i32 i32) (result i32)
    (call $body_read (local.get 0) (local.get 1) (local.get 2) (local.get 3)))
)
"""
PAGE = 65536
URL_AT, METHOD_AT, HEADERS_AT, BODY_AT, STATUS_AT, HANDLE_AT, OUT_AT = (
    0,
    512,
    576,
    640,
    700,
    704,
    800,
)


def signed(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


@functools.cache
def wat_module(engine: wasmtime.Engine, memory_export: str, pages: int) -> wasmtime.Module:
    wat = WAT.replace("MEMORY_EXPORT", memory_export).replace(
        "(memory $mem 1)", f"(memory $mem {pages})"
    )
    return wasmtime.Module(engine, wat)


class WatGuest:
    def __init__(self, engine: wasmtime.Engine, memory_export: str, pages: int = 1) -> None:
        linker = wasmtime.Linker(engine)
        define_outbound_http(linker)
        self.store = wasmtime.Store(engine)
        module = wat_module(engine, memory_export, pages)
        self.instance = linker.instantiate(self.store, module)
        self.memory = self.instance.exports(self.store).get("memory")

    def call(self, name: str, *args: int) -> int:
        func = self.instance.exports(self.store)[name]
        assert isinstance(func, wasmtime.Func)
        return int(func(self.store, *(signed(a) for a in args)))

    def write(self, ptr: int, data: bytes) -> None:
        assert isinstance(self.memory, wasmtime.Memory)
        self.memory.write(self.store, data, ptr)

    def read(self, ptr: int, n: int) -> bytes:
        assert isinstance(self.memory, wasmtime.Memory)
        return bytes(self.memory.read(self.store, ptr, ptr + n))

    def prepare(
        self, url: str, method: str = "GET", headers: bytes = b"", body: bytes = b""
    ) -> None:
        self.write(URL_AT, url.encode().ljust(METHOD_AT - URL_AT, b"\0"))
        self.write(METHOD_AT, method.encode())
        self.write(HEADERS_AT, headers or b"\0")
        self.write(BODY_AT, body or b"\0")
        self.lengths = (len(url.encode()), len(method.encode()), len(headers), len(body))
        self.write(STATUS_AT, b"\xaa" * 8)

    def req(self, **override: int) -> int:
        url_len, method_len, headers_len, body_len = self.lengths
        args = {
            "url_ptr": URL_AT,
            "url_len": url_len,
            "method_ptr": METHOD_AT,
            "method_len": method_len,
            "headers_ptr": HEADERS_AT,
            "headers_len": headers_len,
            "body_ptr": BODY_AT,
            "body_len": body_len,
            "status_ptr": STATUS_AT,
            "handle_ptr": HANDLE_AT,
        }
        args.update(override)
        return self.call("req", *args.values())

    def handle(self) -> int:
        return int.from_bytes(self.read(HANDLE_AT, 4), "little")


@pytest.fixture(scope="module")
def engine() -> wasmtime.Engine:
    return wasmtime.Engine()


@pytest.fixture
def wat(engine: wasmtime.Engine, server: Server) -> WatGuest:
    guest = WatGuest(engine, '(export "memory" (memory $mem))')
    guest.prepare(server.url("/big?n=10"))
    return guest


@pytest.mark.parametrize("memory_export", ["", '(func (export "memory"))'])
def test_missing_memory_is_code_2_before_anything_else(
    engine: wasmtime.Engine, server: Server, memory_export: str
) -> None:
    guest = WatGuest(engine, memory_export)
    with outbound_session(OutboundPolicy(allowed_hosts=("insecure:allow-all",), max_concurrency=0)):
        assert guest.call("req", *[0xFFFFFFFF] * 10) == HttpError.MEMORY_NOT_FOUND
        assert guest.call("header_get", 0, 0, 0, 0, 0, 0) == HttpError.MEMORY_NOT_FOUND
        assert guest.call("headers_get_all", 5, 0, 0, 0) == HttpError.MEMORY_NOT_FOUND
        assert guest.call("body_read", 5, 0, 0, 0) == HttpError.MEMORY_NOT_FOUND
        assert guest.call("close", 5) == HttpError.SUCCESS
    assert server.seen == []


@pytest.mark.parametrize(
    ("override", "code"),
    [
        ({"url_ptr": PAGE, "url_len": 1}, 4),
        ({"url_ptr": PAGE, "url_len": 0}, 10),
        ({"url_ptr": PAGE + 1, "url_len": 0}, 4),
        ({"url_len": 0xFFFFFFFF}, 4),
        ({"url_ptr": 0xFFFFFFFF, "url_len": 2}, 4),
        ({"method_ptr": PAGE - 1, "method_len": 3}, 4),
        ({"body_ptr": 0x80000000, "body_len": 1}, 4),
        ({"body_ptr": PAGE, "body_len": 0}, 0),
        ({"headers_ptr": PAGE, "headers_len": 0x7FFFFFFF}, 4),
    ],
)
def test_input_ranges_outside_memory(
    wat: WatGuest, server: Server, override: dict[str, int], code: int
) -> None:
    with outbound_session(OutboundPolicy(allowed_hosts=LOCAL)):
        assert wat.req(**override) == code
    assert len(server.seen) == (1 if code == 0 else 0)


def test_input_range_ending_at_4gib_overflows_u32(engine: wasmtime.Engine, server: Server) -> None:
    guest = WatGuest(engine, '(export "memory" (memory $mem))', pages=65536)
    guest.prepare(server.url("/echo"))
    with outbound_session(OutboundPolicy(allowed_hosts=LOCAL)):
        assert guest.req(body_ptr=0xFFFFFFFF, body_len=1) == HttpError.BUFFER_TOO_SMALL
        assert guest.req(body_ptr=0xFFFFFFFF, body_len=0) == HttpError.SUCCESS
    assert len(server.seen) == 1


@pytest.mark.parametrize("field_name", ["url", "method", "headers"])
def test_invalid_utf8_inputs(wat: WatGuest, server: Server, field_name: str) -> None:
    at = {"url": URL_AT, "method": METHOD_AT, "headers": HEADERS_AT}[field_name]
    wat.write(at + 200 if field_name == "url" else at, b"\xff\xfe")
    with outbound_session(OutboundPolicy(allowed_hosts=LOCAL)):
        ptr = at + 200 if field_name == "url" else at
        assert wat.req(**{f"{field_name}_ptr": ptr, f"{field_name}_len": 2}) == 6
    assert server.seen == []


def test_status_write_outside_memory(wat: WatGuest, server: Server) -> None:
    with outbound_session(OutboundPolicy(allowed_hosts=LOCAL)) as session:
        assert wat.req(status_ptr=PAGE - 1) == HttpError.MEMORY_ACCESS_ERROR
        assert session.open_handles == ()
        assert wat.read(HANDLE_AT, 4) == b"\xaa" * 4
        assert wat.req() == 0
        assert wat.handle() == 0
    assert len(server.seen) == 2


def test_handle_write_outside_memory_releases_the_handle(wat: WatGuest, server: Server) -> None:
    with outbound_session(OutboundPolicy(allowed_hosts=LOCAL, max_concurrency=1)) as session:
        assert wat.req(handle_ptr=PAGE - 3) == HttpError.MEMORY_ACCESS_ERROR
        assert wat.read(STATUS_AT, 4) == b"\xc8\x00\xaa\xaa"
        assert session.open_handles == ()
        assert wat.req() == 0
        assert wat.handle() == 0
        assert session.open_handles == (0,)


def test_status_is_two_bytes_and_fits_at_the_end_of_memory(wat: WatGuest) -> None:
    with outbound_session(OutboundPolicy(allowed_hosts=LOCAL)):
        assert wat.req(status_ptr=PAGE - 2, handle_ptr=PAGE - 4 - 2) == 0
        assert wat.read(PAGE - 6, 6) == b"\0\0\0\0\xc8\x00"


def test_output_ranges_outside_memory(wat: WatGuest) -> None:
    wat.write(OUT_AT, b"content-length")
    with outbound_session(OutboundPolicy(allowed_hosts=LOCAL)):
        assert wat.req() == 0
        h = wat.handle()
        assert wat.call("header_get", h, PAGE, 1, OUT_AT + 64, 16, OUT_AT + 96) == 4
        assert wat.call("header_get", h, OUT_AT, 14, OUT_AT + 64, 16, 0xFFFFFFFF) == 3
        assert wat.read(OUT_AT + 64, 2) == b"10"
        assert wat.call("header_get", h, OUT_AT, 14, PAGE - 1, 16, OUT_AT + 96) == 3
        assert wat.call("headers_get_all", h, PAGE - 4, 4096, OUT_AT + 96) == 3
        assert wat.call("headers_get_all", h, OUT_AT + 64, 4096, PAGE) == 3
        # A failed copy does not advance the body; a failed count write after the copy does.
        assert wat.call("body_read", h, PAGE - 2, 4, OUT_AT + 96) == 3
        assert wat.call("body_read", h, OUT_AT + 64, 4, PAGE - 3) == 3
        assert wat.read(OUT_AT + 64, 4) == pattern(4)
        assert wat.call("body_read", h, OUT_AT + 64, 100, OUT_AT + 96) == 0
        assert wat.read(OUT_AT + 96, 4) == (6).to_bytes(4, "little")
        assert wat.read(OUT_AT + 64, 6) == pattern(10)[4:]
        assert wat.call("body_read", h, PAGE, 100, OUT_AT + 96) == 0
        assert wat.call("body_read", h, PAGE + 1, 100, OUT_AT + 96) == 3
        assert wat.call("header_get", h, OUT_AT, 14, OUT_AT + 64, 16, OUT_AT + 96) == 0
        wat.write(OUT_AT, b"\xff")
        assert wat.call("header_get", h, OUT_AT, 1, OUT_AT + 64, 16, OUT_AT + 96) == 6
        assert wat.call("header_get", 99, PAGE, 1, PAGE, 16, PAGE) == 1


def test_calls_outside_any_session(wat: WatGuest, server: Server) -> None:
    assert current_session() is None
    assert wat.req() == HttpError.DESTINATION_NOT_ALLOWED
    assert wat.call("header_get", 0, OUT_AT, 1, OUT_AT, 1, OUT_AT) == HttpError.INVALID_HANDLE
    assert wat.call("headers_get_all", 0, OUT_AT, 1, OUT_AT) == HttpError.INVALID_HANDLE
    assert wat.call("body_read", 0, OUT_AT, 1, OUT_AT) == HttpError.INVALID_HANDLE
    assert wat.call("close", 0) == HttpError.SUCCESS
    assert server.seen == []


def test_ended_session_refuses_requests(wat: WatGuest, server: Server) -> None:
    with outbound_session(OutboundPolicy(allowed_hosts=LOCAL)) as session:
        assert wat.req() == 0
        session.close_all()
        assert session.open_handles == ()
        assert wat.call("body_read", wat.handle(), OUT_AT, 1, OUT_AT) == HttpError.INVALID_HANDLE
        assert wat.req() == HttpError.RUNTIME_ERROR
    assert len(server.seen) == 1


_POINTERS = st.one_of(
    st.sampled_from([0, 1, URL_AT, METHOD_AT, OUT_AT, PAGE - 4, PAGE - 1, PAGE, PAGE + 1]),
    st.sampled_from([0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]),
    st.integers(0, 0xFFFFFFFF),
)
_LENGTHS = st.one_of(
    st.integers(0, 64), st.sampled_from([PAGE, 0xFFFFFFFF]), st.integers(0, 0xFFFFFFFF)
)
_CALLS = st.one_of(
    st.tuples(st.just("req"), st.tuples(*[_POINTERS, _LENGTHS] * 5)),
    st.tuples(st.just("close"), st.tuples(st.integers(0, 3))),
    st.tuples(
        st.just("header_get"), st.tuples(st.integers(0, 3), *[_POINTERS, _LENGTHS] * 2, _POINTERS)
    ),
    st.tuples(
        st.just("headers_get_all"), st.tuples(st.integers(0, 3), _POINTERS, _LENGTHS, _POINTERS)
    ),
    st.tuples(st.just("body_read"), st.tuples(st.integers(0, 3), _POINTERS, _LENGTHS, _POINTERS)),
)


@settings(max_examples=150, deadline=None)
@given(calls=st.lists(_CALLS, min_size=1, max_size=6))
def test_arbitrary_arguments_never_crash(
    engine: wasmtime.Engine, live_server: Server, calls: list[tuple[str, tuple[int, ...]]]
) -> None:
    guest = WatGuest(engine, '(export "memory" (memory $mem))')
    guest.prepare(live_server.url("/echo"), headers=b"a:b\n", body=b"xyz")
    valid = {code.value for code in HttpError}
    with outbound_session(OutboundPolicy(allowed_hosts=LOCAL, max_concurrency=2)) as session:
        for name, args in calls:
            assert guest.call(name, *args) in valid
        assert len(session.open_handles) <= 2


# --------------------------------------------------------------------------- policy and URLs


@pytest.mark.parametrize(
    "kwargs",
    [
        {"allowed_hosts": "http://a.com"},
        {"allowed_hosts": ("http://a.com", 3)},
        {"max_concurrency": -1},
        {"max_concurrency": True},
        {"timeout": 0},
        {"timeout": float("inf")},
        {"max_response_body": -1},
        {"max_redirects": -1},
    ],
)
def test_policy_rejects_bad_configuration(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        OutboundPolicy(**kwargs)


def test_policy_accepts_lists_and_checks_urls() -> None:
    policy = OutboundPolicy(allowed_hosts=["https://api.brigade.sh"])
    assert policy.allowed_hosts == ("https://api.brigade.sh",)
    assert policy.check_url("http://API.Brigade.sh:8080/healthz") == HttpError.SUCCESS
    assert policy.check_url("https://brigade.sh/") == HttpError.DESTINATION_NOT_ALLOWED
    assert policy.check_url("https://x.api.brigade.sh/") == HttpError.DESTINATION_NOT_ALLOWED
    assert policy.check_url("api.brigade.sh") == HttpError.INVALID_URL
    assert IMPORT_MODULE == "wasi_experimental_http"


@pytest.mark.parametrize(
    ("url", "host", "port", "target"),
    [
        ("http://Example.COM:80/a/./b/../c?q=a b#frag", "example.com", None, "/a/c?q=a%20b"),
        ("https://[0:0:0:0:0:0:0:1]:8443", "[::1]", 8443, "/"),
        ("http://[::ffff:1.2.3.4]/", "[::ffff:102:304]", None, "/"),
        ("http://0x7f.0.0.1/", "127.0.0.1", None, "/"),
        ("http://b\u00fccher.example/%7e", "xn--bcher-kva.example", None, "/%7e"),
        ("http:\\\\example.com\\x\\y", "example.com", None, "/x/y"),
        ("  http://a.com/\t\n ", "a.com", None, "/"),
        ("foo://Opaque.Host/x", "Opaque.Host", None, "/x"),
    ],
)
def test_url_normalisation(url: str, host: str, port: int | None, target: str) -> None:
    parsed = parse_url(url)
    assert (parsed.host, parsed.port, parsed.target) == (host, port, target)


@pytest.mark.parametrize(
    "url",
    [
        "http://1.2.3.4.5/",
        "http://256.256.256.256/",
        "http://[::1/",
        "http://a b/",
        "http://[::1%25x]/",
    ],
)
def test_invalid_hosts(url: str) -> None:
    with pytest.raises(InvalidUrl):
        parse_url(url)


@given(st.text(max_size=60))
def test_url_parser_fails_only_with_invalid_url(text: str) -> None:
    try:
        parsed = parse_url("http://" + text)
    except InvalidUrl:
        return
    assert not any(ch <= " " or ch == "\x7f" for ch in parsed.target + parsed.host)
    assert parsed.target.startswith("/")
