"""The HTTP/1.1 protocol ``wasmgate serve`` runs under uvicorn: uvicorn's httptools protocol, plus
the limits a public server needs before any request reaches the gateway.

uvicorn itself only closes a connection that stays idle *after* a response (``timeout_keep_alive``).
Without this class a client could hold a connection forever by never sending a request, or by
trickling its headers or its body a byte at a time (slowloris), make the server buffer a request
line or header block of any size (one connection sending endless headers grew the server by more
than 1 GiB), or never read a large response (holding it in memory).

Rules (the size limits are module constants; the timeouts and the minimum rate are settings of
``GatewayConfig``, i.e. ``wasmgate serve`` flags, which ``server.py`` hands to each serving
process's protocol class through ``guarded_protocol(config)``):
- Request head: the request line and headers must be complete within ``header_timeout`` seconds
  (``--header-timeout``, default 10) of the connection opening or of the request's first byte.
  Otherwise ``408`` and the connection is closed (closed silently if nothing was sent).
- Sizes are checked after every read while the head arrives, so no more than one read (at most
  256 KiB) past a limit is ever buffered: a request target over ``MAX_URL`` bytes is ``414``; a
  head over ``MAX_HEAD_BYTES`` bytes or with more than ``MAX_HEADERS`` fields is ``431``. Both
  close the connection.
- Request body: it must keep arriving. After ``body_timeout`` seconds (``--body-timeout``,
  default 20) from the end of the head, each second must have brought ``body_min_rate`` bytes on
  average (``--body-min-rate``, default 500), as Apache's ``RequestReadTimeout
  body=20,MinRate=500``. Time while the server itself stopped reading (flow control) is not
  counted. On expiry: ``408`` if no response was started, and the connection is closed; the
  gateway sees a disconnect and runs no guest.
- Response: while bytes wait for a client (the transport stopped taking writes, or the
  connection was closed with data still unsent, e.g. by the keep-alive timer), the client must
  read ``body_min_rate`` bytes a second on average over each ``send_timeout`` seconds
  (``--send-timeout``, default 30), or the connection is aborted and its bytes freed. A closed
  connection is no exception: its unsent bytes are bounded by the same clock.
- The bytes waiting for slow readers are bounded as a whole, per serving process:
  ``max_send_buffer`` (``--max-send-buffer``, default 128 MiB). When a connection starts to wait
  and the total of all waiting connections exceeds it, the connection holding the most is
  aborted (the one that has read the least of what it asked for), until the total fits.
- Request framing (RFC 9112): an HTTP/1.1 request without ``Host`` is ``400``; a request target
  in absolute form (``http://host/path``) replaces the ``Host`` header with its authority
  (RFC 9112 section 3.2.2); a ``Transfer-Encoding`` other than exactly ``chunked`` is ``501``
  (no other coding is implemented, and passing a coded body on as if plain would be wrong).
- ``Upgrade`` is never acted on (RFC 9110 section 7.8 lets a server ignore it): a request
  carrying one is served as plain HTTP/1.1 and the bytes after it are parsed as the next
  request. One with a body is refused with ``501`` (the parser stops at the head of an upgrade
  request, so its body could not be read for the guest, and it must never be dropped).
- TLS: the handshake too must complete within ``header_timeout`` (the protocol wraps itself in
  asyncio's TLS protocol with that handshake timeout, ``tls_protocol``), so a client that opens
  a TLS connection and says nothing is dropped as soon as a plain one, not after asyncio's
  default 60 s; the head clock then starts once the handshake is done.
- Every refusal is logged once on ``wasmgate.gateway`` with the client address and the reason,
  at WARNING (a client's fault, never ERROR), and counted in the metrics by status and cause
  (``GatewayMetrics.gateway_answered``); every cut-off connection likewise
  (``GatewayMetrics.connection_closed``). A refusal while a request's body is read is left in
  the request's scope (``REFUSED_KEY``) so the application reports that status, not a hang-up.
- ``limit_heap_retention()`` (called by the server in each serving process) keeps glibc from
  holding on to freed request and response buffers.
- Trailers (HTTP/1.1 carries them after a chunked body): a request's trailer fields are kept
  apart from its headers, never merged into them, and left in the scope under
  ``REQUEST_TRAILERS_KEY`` by the time its body is complete; they count against the same
  limits as the head (``MAX_HEADERS`` fields, ``MAX_HEAD_BYTES`` bytes: 431 past them). A
  chunked response ends with trailers through ``end_with_trailers`` (under another server, ASGI's
  ``http.response.trailers`` extension where it is offered).
- ``abort_response`` resets the connection: how the application ends a response it can no longer
  complete (a streamed guest that failed half-way), so the client sees an error and never a
  short body as if it were whole.
- Both act on the request's cycle, which the scope carries (``CYCLE_KEY``: one entry per
  request; uvicorn's own ``send`` is untouched, so a response that uses neither costs nothing).
- Answers at once: when the application has an ``answer_now(scope)`` method (the gateway's
  ``Gateway.answer_now``), a request's head is offered to it before any ASGI task is made. It
  returns an ``Answer`` (written here, as the gateway's ASGI answers are framed: the default
  headers, ``content-length`` (none for a 204 or 304, which have no body), ``connection: close``
  where the connection ends, no body for ``HEAD``;
  then the request is complete, as after an ASGI response, and the ``Answer``'s ``done`` runs
  once the pass's writes are flushed, see below), an ASGI app to run in the
  application's place, or None (the application is run). Not offered while the client is not
  reading (writes paused): the ASGI path waits for it. An error in ``answer_now`` is logged and
  answered 500, and the connection closed, as uvicorn does for an application's error.
- The keep-alive clock (uvicorn's ``timeout_keep_alive``: a connection idle that long after a
  response is closed) is kept without a timer per request: uvicorn arms one after every response
  and cancels it when the next request arrives (1.9 µs a request with uvloop). Here the response
  notes when the connection went idle, and one timer per connection is armed only when none is:
  when it fires, it closes a connection idle for the whole timeout, re-arms for the rest of it
  on one idle for less, and ends on a busy one (the next response arms it again). The
  connection is closed at the same moment as with uvicorn's timer.
- Writes are coalesced: everything the connection writes during one pass of the event loop
  (a response's head and body are two ASGI messages, so two writes) goes out in one system call
  at the start of the next pass. All writes of the connection, the protocol's own included, go
  through the same buffer, so bytes never change order; ``close`` sends what is pending first.
  Measured side by side on a hello guest: 20% more requests a second, a lower p99. The flush
  waits for the next pass even for what ``data_received`` itself wrote (answers at once): sent
  at the end of ``data_received`` instead, in the same pass, the server made 0.82x-0.89x the
  requests a second (side by side), as clients' next requests then trickle in one by one
  instead of arriving together for one pass to read.
- One flush per pass for the whole event loop (``LoopPass``): the connections with pending
  writes are sent in the order they first wrote, by one callback, not one callback each. Then,
  in the same callback, the work that only had to wait for the responses (``after_flush``: an
  ``Answer``'s ``done``, i.e. the metrics and the access log) runs, before the loop next polls.
  Why: a pass answers every request it read, and a client can send its next request only once
  its response is out. Measured on a hello guest at 32 connections, with that work done before
  the flush, one request in six missed the next poll (the clients answered last had no time to
  send again before it) and waited a whole pass more: the p90 and p99 latency. Done after the
  flush, the work fills that time: side by side, a p99 of 4.8 against 6.9 ms (lower in each of
  5 rounds) and 1.12x the requests a second. A failure of one flush or of one piece of work is
  logged and does not stop the others.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import contextlib
import ctypes
import logging
import socket
import ssl
import struct
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from ..config import (
    DEFAULT_BODY_MIN_RATE,
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_MAX_SEND_BUFFER,
    DEFAULT_SEND_TIMEOUT,
    GatewayConfig,
)
from .balance import Balancer
from .metrics import GatewayMetrics

__all__ = [
    "CYCLE_KEY",
    "MAX_HEADERS",
    "MAX_HEAD_BYTES",
    "MAX_URL",
    "NO_CONTENT",
    "REFUSED_KEY",
    "REQUEST_TRAILERS_KEY",
    "Answer",
    "CoalescingTransport",
    "GuardedHttpToolsProtocol",
    "LoopPass",
    "abort_response",
    "end_with_trailers",
    "guarded_protocol",
    "limit_heap_retention",
    "tls_protocol",
    "trailers_supported",
]

log = logging.getLogger("wasmgate.gateway")

MAX_URL = 8 * 1024
MAX_HEAD_BYTES = 64 * 1024
MAX_HEADERS = 256

_REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
    501: b"Not Implemented",
}
# Responses that never carry a body, nor a Content-Length for one (RFC 9110 8.6 for 204; a 304's
# would describe the representation it does not send).
NO_CONTENT = frozenset({204, 304})
_LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST, drops the rest

# Scope key under which a refusal made while the body was read is left for the application:
# ``(status, cause)``.
REFUSED_KEY = "wasmgate.refused"
# Scope key of a request's trailer fields (``[(name, value)]``, lower-case names), once sent.
REQUEST_TRAILERS_KEY = "wasmgate.request_trailers"
# Scope key of the request's uvicorn cycle (see the rules).
CYCLE_KEY = "wasmgate.cycle"
_ASGI_TRAILERS = "http.response.trailers"  # ASGI's extension, under other servers


@dataclass(slots=True)
class Answer:
    """A request answered at once (see the rules): its status, headers (lower-case names, no
    framing fields) and body, and ``done``, called once it is sent (after the pass's flush)."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    done: Callable[[], None]


_M_MMAP_THRESHOLD = -3  # glibc mallopt parameter


def limit_heap_retention(threshold: int = 128 * 1024) -> bool:
    """Make glibc malloc return large freed buffers (request bodies, responses, socket reads) to
    the kernel. By default glibc raises its mmap threshold each time such a buffer is freed, after
    which buffers up to 32 MiB come from the heap and stay there: 48 concurrent 8 MiB uploads left
    a server at 180 MiB instead of 59. Fixing the threshold (also fixes the trim threshold) keeps
    it at the initial 128 KiB. Returns False where there is no glibc ``mallopt``."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold))


class _Refuse(Exception):
    def __init__(self, status: int, reason: str, cause: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.cause = cause


def head_problem(
    http_version: str, url: bytes, headers: list[tuple[bytes, bytes]]
) -> tuple[int, str, str] | None:
    """The RFC 9112 rule a complete request head breaks, as ``(status, reason, cause)``; None
    when it is acceptable. Pure: ``headers`` are (lower-cased name, value) pairs."""
    codings: list[bytes] = []
    hosts = 0
    for name, value in headers:
        if name == b"transfer-encoding":
            codings.extend(c.strip().lower() for c in value.split(b","))
        elif name == b"host":
            hosts += 1
    if codings and codings != [b"chunked"]:
        shown = b", ".join(codings).decode("latin-1")
        return 501, f"unsupported transfer coding {shown!r} (only chunked)", "unsupported-coding"
    if http_version == "1.1" and hosts == 0 and _absolute_authority(url) is None:
        return 400, "HTTP/1.1 request without a Host header", "missing-host"
    return None


def _absolute_authority(url: bytes) -> bytes | None:
    """The authority of an absolute-form request target (``http://host:port/path``), else None."""
    if url[:1] == b"/":  # origin form: nearly every request
        return None
    lowered = url[:8].lower()
    if not (lowered.startswith(b"http://") or lowered.startswith(b"https://")):
        return None
    rest = url.split(b"://", 1)[1]
    end = len(rest)
    for sep in (b"/", b"?", b"#"):
        i = rest.find(sep)
        if i >= 0:
            end = min(end, i)
    authority = rest[:end]
    if b"@" in authority:  # userinfo is deprecated and never part of Host (RFC 9110 4.2.4)
        authority = authority.rsplit(b"@", 1)[1]
    return authority


class _SendLedger:
    """The connections of one serving process with bytes waiting for their client (event loop
    only: no lock)."""

    def __init__(self) -> None:
        self.waiting: set[GuardedHttpToolsProtocol] = set()

    def total(self) -> int:
        return sum(p.transport.get_write_buffer_size() for p in self.waiting)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with head/body/send timeouts and head size limits.

    Cheap on the common path: a request whose head (and body) arrive in one read costs no timer
    at all; timers are armed only when a request is left incomplete after a read, and once per
    connection for its first request (a connection that never sends a byte).

    The timeouts and the minimum rate are class attributes (uvicorn builds one instance per
    connection and passes it only uvicorn's own config): this class has the ``GatewayConfig``
    defaults, and ``guarded_protocol(config)`` makes a subclass with a configuration's values."""

    header_timeout: ClassVar[float] = DEFAULT_HEADER_TIMEOUT
    body_timeout: ClassVar[float] = DEFAULT_BODY_TIMEOUT
    body_min_rate: ClassVar[float] = DEFAULT_BODY_MIN_RATE
    send_timeout: ClassVar[float] = DEFAULT_SEND_TIMEOUT
    max_send_buffer: ClassVar[int] = DEFAULT_MAX_SEND_BUFFER
    metrics: ClassVar[GatewayMetrics | None] = None
    ledger: ClassVar[_SendLedger] = _SendLedger()
    balancer: ClassVar[Balancer | None] = None  # several workers: see balance.py
    adopted = False  # handed over by another worker: never handed on
    _handed = False  # handed over to another worker: nothing of it is ours

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # no complete head yet for the current (or next) request
        self._in_body = False  # head complete, body not yet
        self._got_bytes = False  # the current request has begun
        self._head_bytes = 0  # bytes received while in the head
        self._head_started = 0.0
        self._body_deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._send_timer: asyncio.TimerHandle | None = None
        self._send_waiting = 0  # bytes waiting for the client when the send clock last started
        self._cut_cause: str | None = None
        self._idle_since: float | None = None  # when the last response ended; None: busy

    # --- timers ------------------------------------------------------------------------------

    def _arm(self, when: float, callback: Any) -> None:
        self._disarm()
        self._timer = self.loop.call_at(when, callback)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _head_timeout(self) -> None:
        self._timer = None
        if self.transport.is_closing() or not self._in_head:
            return
        if not self._got_bytes:
            self.transport.close()  # never said anything: nothing to answer
            return
        self._refuse(
            408, f"request head not received within {self.header_timeout:g}s", "head-timeout"
        )

    def _body_check(self) -> None:
        self._timer = None
        if self.transport.is_closing() or not self._in_body:
            return
        now = self.loop.time()
        if self.flow.read_paused:  # we stopped reading, not the client: that time is not theirs
            self._body_deadline = max(self._body_deadline, now + 1.0)
        if now < self._body_deadline:
            self._arm(self._body_deadline, self._body_check)
            return
        reason = (
            f"request body slower than {self.body_min_rate:g} bytes/s after {self.body_timeout:g}s"
        )
        cycle = self.cycle
        if cycle is not None and cycle.response_started:
            self._cut("body-timeout", reason)
        else:
            self._refuse(408, reason, "body-timeout")

    def _send_wait(self) -> None:
        """Bytes now wait for the client: start the send clock, and keep the process total of
        such bytes within ``max_send_buffer``."""
        if self._send_timer is None:
            self._send_waiting = self.transport.get_write_buffer_size()
            self._send_timer = self.loop.call_later(self.send_timeout, self._send_check)
        ledger = self.ledger
        ledger.waiting.add(self)
        total = ledger.total()
        while total > self.max_send_buffer and ledger.waiting:
            victim = max(ledger.waiting, key=lambda p: p.transport.get_write_buffer_size())
            held = victim.transport.get_write_buffer_size()
            reason = (
                f"{total} bytes wait for slow clients, over the {self.max_send_buffer}-byte "
                f"send buffer; this connection held {held}"
            )
            victim._cut("send-buffer-full", reason)
            total -= held

    def _send_done(self) -> None:
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None
        self.ledger.waiting.discard(self)

    def _send_check(self) -> None:
        self._send_timer = None
        waiting = self.transport.get_write_buffer_size()
        if waiting == 0 or not (self.flow.write_paused or self.transport.is_closing()):
            self.ledger.waiting.discard(self)
            return
        if self._send_waiting - waiting >= self.body_min_rate * self.send_timeout:
            self._send_waiting = waiting  # slow, but reading: give it another period
            self._send_timer = self.loop.call_later(self.send_timeout, self._send_check)
            return
        self._cut(
            "send-timeout",
            f"client read less than {int(self.body_min_rate * self.send_timeout)} bytes "
            f"in {self.send_timeout:g}s ({waiting} bytes unsent)",
        )

    def _cut(self, cause: str, reason: str) -> None:
        """Abort the connection (its unsent bytes are dropped), log and count it once."""
        self._send_done()
        if self._cut_cause is not None:
            return
        self._cut_cause = cause
        log.warning("%s: closing connection: %s", self._peer(), reason)
        if self.metrics is not None:
            self.metrics.connection_closed(cause)
        # Reset, not close: a closed socket would still hand the kernel's copy of the unsent
        # bytes (megabytes) to the client as slowly as it reads.
        sock = self.transport.get_extra_info("socket")
        with contextlib.suppress(OSError, AttributeError, TypeError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        self.transport.abort()

    def closed_with_pending(self) -> None:
        """The transport was closed with bytes still unsent (``CoalescingTransport.close``)."""
        self._send_wait()

    # --- refusing ----------------------------------------------------------------------------

    def _peer(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else "client"

    def _head_problem(self) -> _Refuse | None:
        """The size limit the current head breaks, if any (only while a request has begun)."""
        if not self._got_bytes:
            return None
        if len(self.url) > MAX_URL:
            return _Refuse(414, f"request target longer than {MAX_URL} bytes", "url-too-long")
        if len(self.headers) > MAX_HEADERS:
            return _Refuse(431, f"more than {MAX_HEADERS} header fields", "head-too-large")
        return None

    def _refuse(self, status: int, reason: str, cause: str) -> None:
        log.warning("%s: %d %s", self._peer(), status, reason)
        if self.metrics is not None:
            self.metrics.gateway_answered(status, cause)
        cycle = self.cycle
        if self._in_body and cycle is not None and not cycle.response_complete:
            cycle.scope[REFUSED_KEY] = (status, cause)  # type: ignore[literal-required]
        self._disarm()
        self._answer_and_close(status, reason.encode("ascii", "replace") + b"\n")

    def _head(self, status: int) -> list[bytes]:
        """A response's status line and the server's default headers (``date``)."""
        line = STATUS_LINE.get(status) or b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status])
        content = [line]
        for name, value in self.server_state.default_headers:
            content.extend((name, b": ", value, b"\r\n"))
        return content

    def _answer_and_close(self, status: int, body: bytes) -> None:
        """Answer ``status`` with a plain-text ``body`` and close the connection."""
        content = self._head(status)
        content.append(b"content-type: text/plain; charset=utf-8\r\n")
        content.append(b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body))
        content.append(body)
        self.transport.write(b"".join(content))
        self.transport.close()

    # --- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        balancer = self.balancer
        if balancer is not None and not self.adopted:  # (an adopted one is counted already)
            if balancer.hand_off(transport):
                self._handed = True
                return
            balancer.opened()
        coalescing = CoalescingTransport(transport, self.loop, self.closed_with_pending)
        self._loop_pass = coalescing.loop_pass
        super().connection_made(coalescing)  # type: ignore[arg-type]
        self._head_started = self.loop.time()
        self._arm(self._head_started + self.header_timeout, self._head_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._handed:
            return
        if self.balancer is not None:
            self.balancer.closed()
        self._disarm()
        self._send_done()
        if self.timeout_keep_alive_task is not None:
            self.timeout_keep_alive_task.cancel()
            self.timeout_keep_alive_task = None
        super().connection_lost(exc)

    # --- the keep-alive clock (see the rules) -------------------------------------------------

    def _unset_keepalive_if_required(self) -> None:
        self._idle_since = None  # busy again: the armed timer, if any, will find it so

    def on_response_complete(self) -> None:
        # uvicorn's, with the keep-alive timer armed only when none is.
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()  # (busy until now: the request's data cleared _idle_since)
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self._idle_since = self.loop.time()
        if self.timeout_keep_alive_task is None:
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self._keep_alive_check
            )

    def _keep_alive_check(self) -> None:
        self.timeout_keep_alive_task = None
        idle_since = self._idle_since
        if idle_since is None or self.transport.is_closing():
            return
        left = idle_since + self.timeout_keep_alive - self.loop.time()
        if left > 0:
            self.timeout_keep_alive_task = self.loop.call_later(left, self._keep_alive_check)
        else:
            self.timeout_keep_alive_handler()

    def data_received(self, data: bytes) -> None:
        # uvicorn's data_received, except that a limit refused by a parser callback (_Refuse,
        # which httptools wraps in HttpParserCallbackError) answers with its own status, and
        # the limits and clocks are checked once the data is parsed.
        if self.transport.is_closing():
            return
        self._unset_keepalive_if_required()
        if self._in_head:
            self._head_bytes += len(data)
        while True:
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserError as e:
                refusal = e.__context__
                if isinstance(refusal, _Refuse):
                    self._refuse(refusal.status, refusal.reason, refusal.cause)
                else:
                    self._refuse(400, f"invalid HTTP request ({e})", "bad-request")
                return
            except httptools.HttpParserUpgrade as e:
                # Never upgraded (see the rules): the request was complete at its head (one
                # with a body was refused in on_headers_complete); what follows is the next
                # request, for a fresh parser.
                data = data[int(e.args[0]) :] if e.args else b""
                self.parser = httptools.HttpRequestParser(self)
                if data and not self.transport.is_closing():
                    continue
            break
        if self.transport.is_closing():
            return
        if self._in_head and self._got_bytes:  # a head left incomplete by this read
            problem = self._head_problem()
            if problem is None and self._head_bytes > MAX_HEAD_BYTES:
                problem = _Refuse(
                    431, f"request head larger than {MAX_HEAD_BYTES} bytes", "head-too-large"
                )
            if problem is not None:
                self._refuse(problem.status, problem.reason, problem.cause)
            elif self._timer is None:
                self._arm(self._head_started + self.header_timeout, self._head_timeout)
        elif self._in_body and self._timer is None:  # a body left incomplete by this read
            self._arm(self._body_deadline, self._body_check)

    def pause_writing(self) -> None:
        super().pause_writing()
        self._send_wait()

    def resume_writing(self) -> None:
        super().resume_writing()
        if not self.transport.is_closing():  # a closed transport's rest stays on the clock
            self._send_done()

    def _unsupported_upgrade_warning(self) -> None:
        pass  # an Upgrade is ignored by rule (see the rules); nothing to warn about

    # --- parser callbacks (a _Refuse raised here ends parsing; see data_received) ---------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._got_bytes = True
        if self._timer is None:  # keep-alive: the next request's head starts its own clock
            self._head_started = self.loop.time()

    def on_headers_complete(self) -> None:
        problem = self._head_problem()
        if problem is None and self._head_bytes > MAX_HEAD_BYTES:  # maybe: count precisely
            size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
            if size > MAX_HEAD_BYTES:
                problem = _Refuse(
                    431, f"request head larger than {MAX_HEAD_BYTES} bytes", "head-too-large"
                )
        if problem is not None:
            raise problem
        rfc = head_problem(self.parser.get_http_version(), self.url, self.headers)
        if rfc is not None:
            raise _Refuse(*rfc)
        if self.parser.should_upgrade() and _declares_body(self.headers):
            raise _Refuse(501, "Upgrade request with a body is not supported", "upgrade-body")
        authority = _absolute_authority(self.url)
        if authority is not None:  # RFC 9112 3.2.2: the target's authority is the Host
            self.headers[:] = [(n, v) for n, v in self.headers if n != b"host"]
            self.headers.append((b"host", authority))
        self._disarm()
        self._in_head = False
        self._in_body = True
        self._head_bytes = 0
        self._body_deadline = self.loop.time() + self.body_timeout
        super().on_headers_complete()

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._in_body:
            super().on_header(name, value)
            return
        # A trailer field (see the rules): kept apart, within the head's limits.
        scope: dict[str, Any] = self.scope  # type: ignore[assignment]
        trailers: list[tuple[bytes, bytes]] = scope.setdefault(REQUEST_TRAILERS_KEY, [])
        trailers.append((name.lower(), value))
        self._head_bytes += len(name) + len(value) + 4
        if len(trailers) > MAX_HEADERS or self._head_bytes > MAX_HEAD_BYTES:
            raise _Refuse(431, "request trailers too large", "head-too-large")

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        answer_now = getattr(app, "answer_now", None)
        if answer_now is not None and not cycle.flow.write_paused:
            try:
                answer = answer_now(cycle.scope)
                if isinstance(answer, Answer):
                    self._write_answer(cycle, answer)
                    self._loop_pass.after_flush(answer.done)
                    return
            except Exception:
                self._answer_failed(cycle)
                return
            if answer is not None:
                app = answer
        # A weak reference: the cycle holds the scope, so a strong one would make every request
        # a reference cycle, freed only by the garbage collector (measured: ~4 us a request).
        cycle.scope[CYCLE_KEY] = weakref.ref(cycle)  # type: ignore[literal-required]
        super()._start_asgi_task(cycle, app)

    def _write_answer(self, cycle: RequestResponseCycle, answer: Answer) -> None:
        """Write ``answer`` as the response to ``cycle``'s request and complete it (see the
        rules); ``RuntimeError`` before writing anything if a header is not valid HTTP."""
        content = self._head(answer.status)
        for name, value in answer.headers:
            if HEADER_RE.search(name) or HEADER_VALUE_RE.search(value):
                raise RuntimeError(f"invalid response header {name!r}")
            content.extend((name, b": ", value, b"\r\n"))
        body = answer.body
        if answer.status in NO_CONTENT:
            body = b""  # nothing follows the head of a 204 or 304
        else:
            content.append(b"content-length: %d\r\n" % len(body))
        if not cycle.keep_alive:
            content.append(b"connection: close\r\n")
        content.append(b"\r\n")
        if cycle.scope["method"] != "HEAD":
            content.append(body)
        cycle.response_started = cycle.response_complete = True
        self.transport.write(b"".join(content))
        if not cycle.keep_alive:
            self.transport.close()
        cycle.on_response()

    def _answer_failed(self, cycle: RequestResponseCycle) -> None:
        log.exception("%s: error answering %s", self._peer(), cycle.scope.get("path", "?"))
        if self.metrics is not None:
            self.metrics.gateway_answered(500, "internal-error")
        cycle.keep_alive = False
        if cycle.response_started:
            self.transport.close()
            return
        cycle.response_started = cycle.response_complete = True
        self._answer_and_close(500, b"Internal Server Error")

    def on_body(self, body: bytes) -> None:
        self._body_deadline += len(body) / self.body_min_rate
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm()
        self._in_body = False
        self._in_head = True
        self._got_bytes = False
        self._head_bytes = 0
        super().on_message_complete()


def _cycle(scope: dict[str, Any]) -> RequestResponseCycle | None:
    ref = scope.get(CYCLE_KEY)
    return None if ref is None else ref()


def trailers_supported(scope: dict[str, Any]) -> bool:
    """Whether a response may end with trailers (see the rules)."""
    return CYCLE_KEY in scope or _ASGI_TRAILERS in scope.get("extensions", ())


async def end_with_trailers(scope: dict[str, Any], send: Any, trailers: list[Any]) -> None:
    """End a chunked response, started with ``"trailers": True`` and sent with ``more_body``,
    with ``trailers``."""
    cycle = _cycle(scope)
    if cycle is None:  # another server: ASGI's extension
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        await send({"type": _ASGI_TRAILERS, "headers": trailers})
        return
    if cycle.flow.write_paused and not cycle.disconnected:
        await cycle.flow.drain()
    if cycle.disconnected or cycle.response_complete:
        return
    if not cycle.chunked_encoding:  # framed by its content-length: nothing can follow
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    lines = [b"0\r\n", *(b"%s: %s\r\n" % (n, v) for n, v in trailers), b"\r\n"]
    cycle.transport.write(b"".join(lines))
    cycle.response_complete = True
    cycle.message_event.set()
    if not cycle.keep_alive:
        cycle.transport.close()
    cycle.on_response()


def abort_response(scope: dict[str, Any]) -> None:
    """Reset the connection of a response that cannot be completed (see the rules); under
    another server, raising makes that server close it."""
    cycle = _cycle(scope)
    if cycle is None:
        raise RuntimeError("streamed response cut off")
    transport = cycle.transport
    if not transport.is_closing():
        with contextlib.suppress(OSError, AttributeError):
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        transport.abort()


def _declares_body(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name == b"transfer-encoding":
            return True
        if name == b"content-length" and value.strip() not in (b"0", b""):
            return True
    return False


class LoopPass:
    """The end of one event-loop pass (see the rules): the connections' coalesced writes, then
    the work that waits for them. One per loop (``of``); use from the loop's thread only."""

    __slots__ = ("__weakref__", "_after", "_due", "_loop", "_writers")

    _passes: ClassVar[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopPass]] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = weakref.ref(loop)  # weak: the table of passes must not keep loops alive
        self._writers: list[CoalescingTransport] = []
        self._after: list[Callable[[], None]] = []
        self._due = False

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> LoopPass:
        """``loop``'s pass, made on first use."""
        found = cls._passes.get(loop)
        if found is None:
            found = cls._passes[loop] = cls(loop)
        return found

    def flush_later(self, transport: CoalescingTransport) -> None:
        """Flush ``transport`` at the next pass (it has just begun to hold writes)."""
        if not self._due:
            self._schedule()
        self._writers.append(transport)

    def after_flush(self, work: Callable[[], None]) -> None:
        """Run ``work`` at the next pass, once the writes are flushed."""
        if not self._due:
            self._schedule()
        self._after.append(work)

    def _schedule(self) -> None:
        loop = self._loop()
        if loop is not None:
            self._due = True
            loop.call_soon(self._run)

    def _run(self) -> None:
        self._due = False
        writers, self._writers = self._writers, []
        for transport in writers:
            try:
                transport.flush()
            except Exception:
                log.exception("error sending a connection's writes")
        after, self._after = self._after, []
        for work in after:
            try:
                work()
            except Exception:
                log.exception("error after a response")


class CoalescingTransport:
    """A transport whose writes made in one event-loop pass are sent as one, by the loop's
    ``LoopPass`` (see the rules). ``on_close_pending`` is called when ``close`` leaves bytes
    unsent in the transport."""

    __slots__ = ("_on_close_pending", "_pending", "_transport", "loop_pass")

    def __init__(
        self,
        transport: asyncio.Transport,
        loop: asyncio.AbstractEventLoop,
        on_close_pending: Callable[[], None] | None = None,
    ) -> None:
        self._transport = transport
        self.loop_pass = LoopPass.of(loop)
        self._pending: list[bytes] = []
        self._on_close_pending = on_close_pending

    def write(self, data: bytes) -> None:
        if not self._pending:
            self.loop_pass.flush_later(self)
        self._pending.append(data)

    def flush(self) -> None:
        """Send what is pending now."""
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self.flush()
        closing = self._transport.is_closing()
        self._transport.close()
        if not closing and self._on_close_pending and self._transport.get_write_buffer_size():
            self._on_close_pending()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def __getattr__(self, name: str) -> Any:  # everything else is the transport's own
        return getattr(self._transport, name)


def guarded_protocol(
    config: GatewayConfig, metrics: GatewayMetrics | None = None, balancer: Balancer | None = None
) -> type[GuardedHttpToolsProtocol]:
    """The protocol class to give uvicorn (``http=``) for ``config``: ``GuardedHttpToolsProtocol``
    with ``config``'s header, body and send timeouts, minimum rate and send buffer, counting
    into ``metrics``, handing new connections over through ``balancer`` (a worker of several).
    Built in each serving process from the ``GatewayConfig`` it was started with, so every
    worker gets the values (and its own ledger of waiting bytes)."""

    class ConfiguredGuard(GuardedHttpToolsProtocol):
        header_timeout = config.header_timeout
        body_timeout = config.body_timeout
        body_min_rate = config.body_min_rate
        send_timeout = config.send_timeout
        max_send_buffer = config.max_send_buffer
        ledger = _SendLedger()

    ConfiguredGuard.metrics = metrics
    ConfiguredGuard.balancer = balancer
    return ConfiguredGuard


def tls_protocol(
    config: GatewayConfig, context: ssl.SSLContext, metrics: GatewayMetrics | None = None
) -> Callable[..., asyncio.BaseProtocol]:
    """The protocol factory to give uvicorn (``http=``, with no ``ssl`` of its own) for TLS:
    ``guarded_protocol(config)`` inside asyncio's TLS protocol, whose handshake must finish
    within ``config.header_timeout`` (see the rules)."""
    guard = guarded_protocol(config, metrics)

    def factory(**kwargs: Any) -> asyncio.BaseProtocol:
        app = guard(**kwargs)
        # No waiter: nobody awaits the handshake (a failed one just closes the connection).
        tls: Any = asyncio.sslproto.SSLProtocol  # typeshed: waiter required, timeout an int
        protocol: asyncio.BaseProtocol = tls(
            app.loop,
            app,
            context,
            None,
            server_side=True,
            ssl_handshake_timeout=config.header_timeout,
        )
        return protocol

    return factory


def server_tls_context(cert: str, key: str) -> ssl.SSLContext:
    """A server TLS context from PEM files (``OSError``/``ssl.SSLError`` if they are bad)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context
