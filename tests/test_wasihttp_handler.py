"""wasihttp.ProxyHandler in process, with the C hello and echo components built from source.

Each behaviour is checked on the three ways host calls cross (``wasihttp_support.CROSSINGS``): in
C (``engine.crossing``), through ctypes with the raw codecs, and through the binding's public API,
so the fast paths are tested against the public one they replace.
"""

from __future__ import annotations

import gc
import http.server
import resource
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from wasihttp_support import CROSSINGS, proxy
from wasmgate.engine.engine import EngineSettings, get_engine
from wasmgate.engine.loader import LoadedGuest, load_guest
from wasmgate.errors import LinkError
from wasmgate.limits import Limits
from wasmgate.wagi.cgi import CgiRequest
from wasmgate.wagi.outbound import OutboundPolicy
from wasmgate.wasihttp import HttpRequest, ProxyHandler
from wasmgate.wasihttp.handler import request_from_cgi

ROOT = Path(__file__).resolve().parent.parent
HELLO = ROOT / "examples" / "perf" / "hello-http.wasm"
ECHO = ROOT / "examples" / "http" / "echo-http.wasm"
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def echo_guest() -> LoadedGuest:
    return load_guest(ECHO, get_engine())


def settings(
    timeout: float | None = 5.0,
    *,
    fuel: int | None = None,
    max_memory: int | None = None,
    max_request_body: int = 16 * MiB,
    max_response_body: int = 16 * MiB,
    max_concurrency: int | None = None,
) -> Limits:
    return Limits(
        timeout=timeout,
        fuel=fuel,
        max_memory=max_memory,
        max_request_body=max_request_body,
        max_response_body=max_response_body,
        max_concurrency=max_concurrency,
    )


@pytest.fixture(scope="module", params=CROSSINGS)
def echo(request: pytest.FixtureRequest, echo_guest: LoadedGuest) -> ProxyHandler:
    return proxy(request.param, echo_guest, settings(), environment={"GREETING": "hi"})


def test_hello() -> None:
    guest = load_guest(HELLO, get_engine())
    for how in CROSSINGS:
        handler = proxy(how, guest, settings())
        assert handler.linked.fast is (how != "public")
        result = handler.serve(HttpRequest("GET", "/"))
        assert (result.status, result.cause) == (200, "ok")
        assert result.response is not None
        assert result.response.headers == [(b"content-type", b"text/plain")]
        assert result.response.body == b"Hello, world!\n"


@pytest.mark.parametrize("how", CROSSINGS)
def test_a_failing_host_function_is_a_host_error_and_the_next_run_is_clean(
    how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A bug of the host (an exception in a host function) traps the guest and is reported as
    # the host's error, 500, naming the exception; never as success, never leaking into the
    # next request.
    from wasmgate.wasihttp import interfaces

    calls = {"n": 0}
    real = interfaces.IMPLEMENTATIONS["wasi:http/types"]["[method]fields.append"]

    def flaky(st: object, *args: object) -> object:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom in the host")
        return real(st, *args)  # type: ignore[arg-type]

    monkeypatch.setitem(
        interfaces.IMPLEMENTATIONS["wasi:http/types"], "[method]fields.append", flaky
    )
    handler = proxy(how, load_guest(HELLO, get_engine()), settings())
    failed = handler.serve(HttpRequest("GET", "/"))
    assert (failed.status, failed.cause, failed.response) == (500, "error", None)
    assert "host error: RuntimeError: boom in the host" in failed.reason
    ok = handler.serve(HttpRequest("GET", "/"))
    assert (ok.status, ok.cause) == (200, "ok")
    assert ok.response is not None
    assert ok.response.body == b"Hello, world!\n"


def test_echo_method_path_headers(echo: ProxyHandler) -> None:
    headers = (
        (b"host", b"example.test"),
        (b"x-bin", b"a\tb\xff"),
        (b"x-dup", b"1"),
        (b"x-dup", b"2"),
    )
    result = echo.serve(HttpRequest("PURGE", "/a/b?c=1&d", headers=headers, body=b"payload"))
    assert result.status == 200, result.reason
    assert result.response is not None
    assert result.response.headers == [
        (b"x-method", b"PURGE"),
        (b"x-path", b"/a/b?c=1&d"),
        (b"x-echo-host", b"example.test"),
        (b"x-echo-x-bin", b"a\tb\xff"),
        (b"x-echo-x-dup", b"1"),
        (b"x-echo-x-dup", b"2"),
    ]
    assert result.response.body == b"payload"


@pytest.mark.parametrize("method", ["GET", "POST", "PUT"])
@pytest.mark.parametrize("size", [0, 64 * 1024, 8 * MiB])
def test_echo_bodies_byte_exact(echo: ProxyHandler, method: str, size: int) -> None:
    if size == 8 * MiB and not echo.linked.fast:
        pytest.skip("the public API's conversion moves list<u8> byte by byte (minutes for 8 MiB)")
    body = bytes(range(256)) * (size // 256)
    result = echo.serve(HttpRequest(method, "/", body=body))
    assert result.status == 200, result.reason
    assert result.response is not None
    assert result.response.body == body


@pytest.mark.parametrize(
    ("path", "status", "cause", "reason"),
    [
        ("/trap", 500, "trap", "unreachable"),
        ("/no-response", 500, "no-response", "without setting a response"),
        ("/set-twice", 500, "trap", "unknown handle"),
        ("/error", 500, "guest-error", "internal-error('boom')"),
        ("/exit", 500, "exit", "status 1"),
        ("/unfinished", 500, "incomplete", "outgoing-body.finish"),
        ("/status/404", 404, "ok", ""),
        ("/status/299", 299, "ok", ""),
        ("/status/101", 500, "trap", "unreachable"),  # refused: the guest checks and traps
    ],
)
def test_guest_fates(echo: ProxyHandler, path: str, status: int, cause: str, reason: str) -> None:
    result = echo.serve(HttpRequest("GET", path))
    assert (result.status, result.cause) == (status, cause), result.reason
    assert reason in result.reason
    assert (result.response is not None) == (cause == "ok")


def test_exit_zero_after_answering_keeps_the_answer(echo: ProxyHandler) -> None:
    result = echo.serve(HttpRequest("POST", "/exit-ok", body=b"kept"))
    assert result.status == 200, result.reason
    assert result.response is not None
    assert result.response.body == b"kept"


def test_environment_clocks_random_and_log(echo: ProxyHandler) -> None:
    env = echo.serve(HttpRequest("GET", "/env"))
    assert env.response is not None
    assert env.response.body == b"GREETING=hi\n"
    clock = echo.serve(HttpRequest("GET", "/clock"))
    assert clock.response is not None
    assert clock.response.body == b"ok"
    log = echo.serve(HttpRequest("GET", "/log"))
    assert log.status == 200
    assert log.stderr == b"to the log\n"
    assert log.stderr_total == 11
    assert log.response is not None
    assert log.response.body == b""


def test_timeout_is_504(echo_guest: LoadedGuest) -> None:
    handler = ProxyHandler(echo_guest, settings(0.2))
    result = handler.serve(HttpRequest("GET", "/spin"))
    assert (result.status, result.cause) == (504, "timeout")


def test_budget_shorter_than_timeout_is_over_budget(echo_guest: LoadedGuest) -> None:
    handler = ProxyHandler(echo_guest, settings(5.0))
    result = handler.serve(HttpRequest("GET", "/spin"), budget=0.05)
    assert (result.status, result.cause) == (504, "over-budget")


def test_fuel_is_500() -> None:
    guest = load_guest(ECHO, get_engine(EngineSettings(consume_fuel=True)))
    handler = ProxyHandler(guest, settings(5.0, fuel=100_000))
    result = handler.serve(HttpRequest("GET", "/spin"))
    assert (result.status, result.cause) == (500, "fuel")
    ok = handler.serve(HttpRequest("GET", "/"))
    assert ok.status == 200, ok.reason


def test_memory_limit_is_500(echo_guest: LoadedGuest) -> None:
    handler = ProxyHandler(echo_guest, settings(5.0, max_memory=2 * MiB))
    result = handler.serve(HttpRequest("GET", "/grow"))
    assert result.status == 500
    assert result.cause in ("memory", "trap")
    assert handler.serve(HttpRequest("GET", "/")).status == 200


def test_body_limits(echo_guest: LoadedGuest) -> None:
    handler = ProxyHandler(echo_guest, settings(max_request_body=1000, max_response_body=5000))
    big = handler.serve(HttpRequest("POST", "/", body=b"x" * 1001))
    assert (big.status, big.cause) == (413, "too-large")
    fits = handler.serve(HttpRequest("GET", "/big/5000"))
    assert fits.status == 200
    assert fits.response is not None
    assert len(fits.response.body) == 5000
    over = handler.serve(HttpRequest("GET", "/big/5001"))
    assert (over.status, over.cause) == (502, "too-large")


def test_max_concurrency_busy_answers_503(echo_guest: LoadedGuest) -> None:
    handler = ProxyHandler(echo_guest, settings(max_concurrency=1))
    handler._cap._running = 1  # one request is running
    request = CgiRequest(method="GET", raw_path="/")
    assert handler.handle(request, b"").status == 503
    handler._cap._running = 0
    assert handler.handle(request, b"").status == 200


def test_request_from_cgi() -> None:
    cgi = CgiRequest(
        method="POST",
        raw_path="/p",
        query_string="q=1",
        headers=((b"host", b"h:1"), (b"x", b"y")),
        scheme="https",
    )
    req = request_from_cgi(cgi, b"body", "default:3000")
    assert req == HttpRequest("POST", "/p?q=1", "https", "h:1", cgi.headers, b"body")
    bare = request_from_cgi(CgiRequest(method="GET", raw_path="/"), b"", "default:3000")
    assert bare.authority == "default:3000"
    assert bare.path_with_query == "/"


def test_a_component_without_the_handler_is_refused() -> None:
    comp = load_guest(ROOT / "tests" / "guests" / "comp_types.wat", get_engine())
    with pytest.raises(LinkError, match="exports no wasi:http/incoming-handler"):
        ProxyHandler(comp, settings())


def test_memory_stays_flat_over_many_requests(echo_guest: LoadedGuest) -> None:
    handler = ProxyHandler(echo_guest, settings())
    request = HttpRequest("POST", "/", headers=((b"a", b"b"),), body=b"z" * 4096)
    for _ in range(300):
        handler.serve(request)
    gc.collect()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(3000):
        assert handler.serve(request).status == 200
    gc.collect()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert after - before < 20 * 1024, f"max RSS grew by {after - before} KiB"


@pytest.fixture(scope="module")
def upstream() -> Iterator[int]:
    """A local HTTP server: ``/redir`` redirects to a host no allow-list permits; any other path
    answers 203 and ``you asked for PATH``."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/redir":
                self.send_response(302)
                self.send_header("location", "http://elsewhere.invalid/")
                self.end_headers()
                return
            body = f"you asked for {self.path}".encode()
            self.send_response(203)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("how", CROSSINGS)
def test_outbound_requests_follow_the_allow_list(
    echo_guest: LoadedGuest, upstream: int, how: str
) -> None:
    allowed = OutboundPolicy(allowed_hosts=(f"http://127.0.0.1:{upstream}",))
    handler = proxy(how, echo_guest, settings(), outbound=allowed)
    assert not handler.repeatable

    def fetch(h: ProxyHandler, target: str) -> bytes:
        result = h.serve(HttpRequest("GET", f"/fetch/{target}"))
        assert result.status == 200, result.reason
        assert result.response is not None
        return result.response.body

    assert fetch(handler, f"127.0.0.1:{upstream}/a?b=1") == b"status=203\nyou asked for /a?b=1"
    # error-code cases: 15 HTTP-request-denied, 6 connection-refused
    assert fetch(handler, f"127.0.0.1:{upstream}/redir") == b"error=15\n"
    assert fetch(handler, f"localhost:{upstream}/") == b"error=15\n"
    denied = proxy(how, echo_guest, settings())
    assert denied.repeatable
    assert fetch(denied, f"127.0.0.1:{upstream}/a") == b"error=15\n"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    anywhere = OutboundPolicy(allowed_hosts=("insecure:allow-all",))
    open_handler = proxy(how, echo_guest, settings(), outbound=anywhere)
    assert fetch(open_handler, f"127.0.0.1:{closed_port}/") == b"error=6\n"
    # http_max_concurrency: futures held at once; one more is connection-limit-reached (11)
    none_at_once = OutboundPolicy(allowed_hosts=allowed.allowed_hosts, max_concurrency=0)
    capped = proxy(how, echo_guest, settings(), outbound=none_at_once)
    assert fetch(capped, f"127.0.0.1:{upstream}/a") == b"error=11\n"


@pytest.mark.parametrize(
    ("path", "reason"),
    [("/hog/handles", "live resources"), ("/hog/fields", "bytes of header fields")],
)
def test_a_guest_cannot_make_the_host_hold_unbounded_memory(
    echo: ProxyHandler, path: str, reason: str
) -> None:
    # (a long timeout: through the public API, 4 MiB of fields take seconds to convert)
    handler = proxy(echo.linked.crossing, echo.guest, settings(120.0))
    result = handler.serve(HttpRequest("GET", path))
    assert (result.status, result.cause) == (500, "trap"), result.reason
    assert reason in result.reason


def test_the_server_frames_the_response(echo_guest: LoadedGuest) -> None:
    # a guest's content-length is checked against its body, then left to the server
    handler = ProxyHandler(echo_guest, settings())
    result = handler.serve(HttpRequest("GET", "/status/200", headers=((b"a", b"b"),)))
    assert result.response is not None
    assert all(name != b"content-length" for name, _ in result.response.headers)


def test_a_wait_cut_short_by_the_deadline_is_a_timeout(echo_guest: LoadedGuest) -> None:
    # the guest would answer after its wait: the deadline ended the wait, so it timed out
    handler = ProxyHandler(echo_guest, settings(0.3))
    started = time.monotonic()
    result = handler.serve(HttpRequest("GET", "/sleep"))
    assert (result.status, result.cause) == (504, "timeout"), result.reason
    assert time.monotonic() - started < 5
