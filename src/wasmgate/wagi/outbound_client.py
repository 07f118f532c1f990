"""The blocking HTTP/1.1 client behind ``wasi_experimental_http.req``.

Rules:
- Built on ``http.client`` (stdlib only): one fresh connection per exchange, closed afterwards, so
  nothing is shared between threads or guests. No proxy is ever used (the environment is not
  read) and HTTPS certificates are verified against the system trust store.
- Every call has one wall-clock deadline covering connect, send, every redirect hop and the whole
  body. Socket operations time out at the remaining time, and a watchdog shuts the socket down at
  the deadline, so a server that trickles bytes cannot hold a guest past it. (Name resolution is
  the system resolver's and is bounded by its own timeouts.)
- The host owns message framing: the guest's ``content-length`` and ``transfer-encoding`` headers
  are dropped and ``Content-Length`` is computed from the body (sent for a non-empty body, and as 0
  for an empty POST/PUT/PATCH). ``Accept: */*`` is added unless the guest set ``accept``; no
  ``Accept-Encoding`` is sent and bodies are returned as received (no decompression).
- A response with malformed headers (obsolete line folding, a header name that is not a token, a
  line without a colon, a Content-Length that is not one decimal number) or a body larger than the
  cap is a transport failure.
- Redirects (301, 302, 303, 307, 308 with a ``Location`` that resolves to a URL with a host) are
  followed up to a limit when enabled, each hop checked by the caller's ``allow`` function *before*
  it is sent. 301/302/303 turn any method but GET/HEAD into GET and drop the body and its
  ``content-*``/``transfer-encoding`` headers; 307/308 resend method and body. A hop to another host
  or port drops ``authorization``, ``cookie``, ``proxy-authorization``, ``www-authenticate`` and a
  guest-set ``host``. A redirect without a usable ``Location`` is returned as the final response.
  Exceeding the limit is a transport failure.
"""

from __future__ import annotations

import base64
import http.client
import socket
import ssl
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache

from .outbound_url import InvalidUrl, ParsedUrl, join_url

__all__ = [
    "DestinationDenied",
    "OutboundRequest",
    "OutboundResponse",
    "TransportError",
    "is_token",
    "send",
]

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_REWRITING_REDIRECTS = frozenset({301, 302, 303})
_BODY_HEADERS = ("content-type", "content-encoding", "content-length", "transfer-encoding")
_SENSITIVE_HEADERS = ("authorization", "cookie", "proxy-authorization", "www-authenticate", "host")
_FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding"})
_METHODS_EXPECTING_BODY = frozenset({"POST", "PUT", "PATCH"})
_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~" + string.ascii_letters + string.digits)
_READ_CHUNK = 65536


class TransportError(Exception):
    """The exchange failed: DNS, connect, TLS, timeout, bad response, size or redirect limit."""


class DestinationDenied(Exception):
    """A redirect pointed at a host the allow-list does not permit."""


@dataclass(frozen=True)
class OutboundRequest:
    """A validated request: ``headers`` are lower-case names with their values, in order."""

    method: str
    url: ParsedUrl
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclass(frozen=True)
class OutboundResponse:
    """A fully buffered response: ``headers`` are (lower-case name, raw value) in arrival order."""

    status: int
    headers: tuple[tuple[str, bytes], ...]
    body: bytes


@dataclass(frozen=True)
class _Limits:
    deadline: float
    max_body: int


def send(
    request: OutboundRequest,
    *,
    allow: Callable[[ParsedUrl], bool],
    timeout: float,
    max_body: int,
    max_redirects: int | None,
) -> OutboundResponse:
    """Perform ``request``; follow at most ``max_redirects`` redirects (``None``: follow none)."""
    limits = _Limits(deadline=time.monotonic() + timeout, max_body=max_body)
    request = _with_basic_auth(request)
    hops = 0
    while True:
        response = _exchange(request, limits)
        follow = _redirect_of(request, response) if max_redirects is not None else None
        if follow is None:
            return response
        if hops >= (max_redirects or 0):
            raise TransportError(f"more than {max_redirects} redirects")
        if not allow(follow.url):
            raise DestinationDenied(f"redirect to {follow.url.host} is not allowed")
        request, hops = follow, hops + 1


def is_token(text: str) -> bool:
    """Whether ``text`` is a non-empty RFC 9110 token (a method or a header name)."""
    return bool(text) and all(ch in _TOKEN_CHARS for ch in text)


def _with_basic_auth(request: OutboundRequest) -> OutboundRequest:
    url = request.url
    if not (url.username or url.password) or _has_header(request, "authorization"):
        return request
    token = base64.b64encode(f"{url.username}:{url.password}".encode()).decode("ascii")
    return replace(request, headers=(*request.headers, ("authorization", f"Basic {token}")))


def _has_header(request: OutboundRequest, name: str) -> bool:
    return any(key == name for key, _ in request.headers)


def _redirect_of(request: OutboundRequest, response: OutboundResponse) -> OutboundRequest | None:
    if response.status not in _REDIRECTS:
        return None
    location = next((value for name, value in response.headers if name == "location"), None)
    if location is None:
        return None
    try:
        target = join_url(request.url, location.decode("utf-8"))
    except (UnicodeDecodeError, InvalidUrl):
        return None
    headers = request.headers
    method, body = request.method, request.body
    if response.status in _REWRITING_REDIRECTS:
        headers = tuple((k, v) for k, v in headers if k not in _BODY_HEADERS)
        method = method if method in ("GET", "HEAD") else "GET"
        body = b""
    if target.origin_key() != request.url.origin_key():
        headers = tuple((k, v) for k, v in headers if k not in _SENSITIVE_HEADERS)
    return OutboundRequest(method=method, url=target, headers=headers, body=body)


def _exchange(request: OutboundRequest, limits: _Limits) -> OutboundResponse:
    if request.url.scheme not in ("http", "https"):
        raise TransportError(f"URL scheme {request.url.scheme!r} is not supported")
    conn = _connection(request.url, _remaining(limits))
    watchdog: _Watchdog | None = None
    try:
        conn.connect()
        watchdog = _Watchdog(conn, _remaining(limits))
        _send_request(conn, request)
        response = _read_response(conn.getresponse(), limits)
    except (OSError, ValueError, http.client.HTTPException) as exc:
        if (watchdog is not None and watchdog.fired) or time.monotonic() >= limits.deadline:
            raise TransportError("request timed out") from exc
        raise TransportError(f"HTTP exchange failed: {exc.__class__.__name__}") from exc
    finally:
        if watchdog is not None:
            watchdog.cancel()
        conn.close()
    if watchdog.fired:
        raise TransportError("request timed out")
    return response


class _Watchdog:
    """Shuts a connection's socket down when the deadline passes, ending any blocked read."""

    def __init__(self, conn: http.client.HTTPConnection, seconds: float) -> None:
        self._conn = conn
        self._fired = threading.Event()
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    @property
    def fired(self) -> bool:
        return self._fired.is_set()

    def cancel(self) -> None:
        self._timer.cancel()

    def _fire(self) -> None:
        self._fired.set()
        sock = self._conn.sock
        if sock is None:
            return
        try:
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            return


def _remaining(limits: _Limits) -> float:
    remaining = limits.deadline - time.monotonic()
    if remaining <= 0:
        raise TransportError("request timed out")
    return remaining


def _connection(url: ParsedUrl, timeout: float) -> http.client.HTTPConnection:
    port = url.effective_port
    if url.scheme == "https":
        return http.client.HTTPSConnection(
            url.connect_host, port, timeout=timeout, context=_tls_context()
        )
    return http.client.HTTPConnection(url.connect_host, port, timeout=timeout)


@cache
def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()


def _send_request(conn: http.client.HTTPConnection, request: OutboundRequest) -> None:
    headers = [(k, v) for k, v in request.headers if k not in _FRAMING_HEADERS]
    names = {k for k, _ in headers}
    conn.putrequest(
        request.method,
        request.url.target,
        skip_host="host" in names,
        skip_accept_encoding=True,
    )
    if "accept" not in names:
        conn.putheader("Accept", "*/*")
    for name, value in headers:
        conn.putheader(name, value)
    if request.body or request.method in _METHODS_EXPECTING_BODY:
        conn.putheader("Content-Length", str(len(request.body)))
    conn.endheaders(request.body or None)


def _read_response(response: http.client.HTTPResponse, limits: _Limits) -> OutboundResponse:
    headers = _response_headers(response)
    chunks: list[bytes] = []
    size = 0
    while chunk := response.read(_READ_CHUNK):
        size += len(chunk)
        if size > limits.max_body:
            raise TransportError(f"response body is larger than {limits.max_body} bytes")
        chunks.append(chunk)
    return OutboundResponse(status=response.status, headers=headers, body=b"".join(chunks))


def _response_headers(response: http.client.HTTPResponse) -> tuple[tuple[str, bytes], ...]:
    if response.msg.defects:
        raise TransportError("response has a malformed header block")
    headers: list[tuple[str, bytes]] = []
    for name, value in response.getheaders():
        if not is_token(name) or "\r" in value or "\n" in value:
            raise TransportError("response has a malformed header line")
        headers.append((name.lower(), value.strip(" \t").encode("latin-1")))
    lengths = {value for name, value in headers if name == "content-length"}
    if len(lengths) > 1 or not all(value.isdigit() for value in lengths):
        raise TransportError("response has an invalid Content-Length")
    return tuple(headers)
