"""The WAGI gateway as an ASGI application: route, bound, admit, run off the loop, answer.

Rules:
- This layer only moves bytes: CGI translation lives in ``wagi.cgi``, running guests in
  ``wagi.handler``. Nothing here blocks the event loop longer than an inline run's budget;
  other guests run on a fixed pool of ``threads`` worker threads (wasm calls release the GIL).
- Admission is bounded: at most ``threads + queue`` requests are admitted at once; the next gets
  503 with ``Retry-After`` at once. Admission is per route too: one route may hold at most
  ``threads + queue`` minus a reserve of a quarter of it (at least one slot), so a route
  flooded with requests answers 503 for itself while the reserve stays for the other routes
  (as the guest threads are shared, see ``guest_pool.py``). A request stays admitted until its
  guest has really finished, so a guest stuck in a host call past its deadline (answered 504)
  still holds its slot: memory and threads are never unbounded.
- Request bodies are bounded by the route's ``max_request_body``: a larger ``Content-Length`` is
  refused before reading (413), and a body (chunked or not) that grows past it while being read
  is refused at that point.
- Nothing is read for a request that cannot be admitted: when ``threads + queue`` requests are
  in, the next gets 503 before its body is read. Bodies being read are not admitted yet (a slow
  upload must not hold a guest slot), so their memory has its own bound: the bytes of all
  bodies held at once stay within ``max_body_buffer``. A body is charged for the bytes actually
  received, as they arrive (a declared ``Content-Length`` reserves nothing: declaring 8 MiB and
  trickling costs the buffer only what was sent). Shares keep a few clients from taking it
  all: one client address may hold at most a quarter of ``max_body_buffer``, one route at most
  half. A body that does not fit gets 503, logged with which bound it hit. Both 503s carry
  ``Retry-After``, and ``Connection: close`` when a body is left unread. (Behind a reverse
  proxy every client has the proxy's address, and shares one quarter.)
- A request refused by the connection guard while its body arrived (408 for a slow body) is
  reported with that status and cause, never as a client that hung up (499).
- Where a request's guest runs is ``placement.Placement``'s decision: inline on the event loop
  under ``inline_budget`` for quick repeatable routes (re-run in full on a guest thread past
  it), else on the guest threads, which ``workers.GuestPool`` shares fairly between routes.
  ``inline_budget = None`` (``--no-inline``) keeps every guest on the threads.
- ``/healthz`` answers 200 ``OK`` before any route, and cannot be overridden.
- Answered at once (``answer_now``): a request without a body for a route whose guest runs
  inline needs nothing of ASGI (no body to receive, one buffered answer), so the protocol
  (``protocol.py``) asks for it synchronously when its head is parsed and writes the answer
  itself: no task, no ASGI messages. The rules are the same as on the ASGI path, which serves
  everything else: the same routing, admission, placement, limits, metrics and access log, by
  the same methods. A guest that failed, wrote to stderr or ended with trailers ran there
  already; its answer then goes out through ASGI (``_answer``), as any other request's.
- The state (route table) is replaced atomically on reload; a request keeps the state it started
  with, so a reload never drops or mixes requests. A broken new config keeps the old state.
- Works mounted inside another ASGI app: ``root_path`` is stripped before routing and given to
  the guest in ``SCRIPT_NAME`` and ``X_FULL_URL`` (``wagi.cgi``). ``create_app`` loads the route
  table at once, so a broken configuration raises ``ConfigError`` there, not at the first
  request; it also makes sure the ``wasmgate`` loggers reach stderr at INFO when the host server
  configured no handler for them, so the access log appears under any ASGI server.
- Guest stderr is data, not log text: each captured line becomes its own record (and its own
  line in ``--log-dir``), attributed to the route and the request id, with every control
  character and backslash escaped (``\\n``, ``\\x1b``...), so a guest cannot start a new
  record or forge one. The request id is in the access log line too. A ``--log-dir`` that
  cannot be written is warned about once, until a write succeeds again.
- Client faults (4xx) are logged at WARNING, server faults (5xx) at ERROR.
- A request's metrics and access-log line are made once its response is sent, not before: on
  either path they run after the event loop's pass has flushed the connections' writes
  (``LoopPass.after_flush``; the protocol's rules say why). The duration they report still
  ends when the answer was handed to the connection, not when this work ran.
- With ``pin_hostname`` (``--hostname``), the request's ``Host`` is replaced by ``hostname``
  before the CGI translation, so ``SERVER_NAME``, ``SERVER_PORT`` and ``X_FULL_URL`` never come
  from the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..config import GatewayConfig
from ..engine import OutputPump, default_pump
from ..errors import HTTP_STATUS, ConfigError, WasmgateError
from ..wagi.cgi import CgiRequest
from ..wagi.handler import OVER_BUDGET, HandlerResult, ModuleHandler
from ..wagi.routes import HealthCheck, RouteMatch
from ..wasihttp.streaming import WINDOW, Exchange
from .guest_pool import GuestPool
from .metrics import GatewayMetrics, access_log
from .placement import Placement
from .protocol import (
    NO_CONTENT,
    REFUSED_KEY,
    Answer,
    LoopPass,
    abort_response,
    end_with_trailers,
    trailers_supported,
)
from .relay import Relay, allowed_trailers
from .snapshot import WorkerSnapshot
from .state import GatewayState, load_state

__all__ = ["Gateway", "create_app"]

log = logging.getLogger("wasmgate.gateway")
guest_log = logging.getLogger("wasmgate.guest")

Scope = dict[str, Any]
Receive = Any
Send = Any

# Extra wall-clock time after a route's timeout before the gateway stops waiting for a guest that
# is blocked in a host call (epoch interruption only reaches running wasm code).
BLOCKED_GRACE = 1.0
GAUGE_PERIOD = 0.25  # seconds between updates of the in-flight and queued gauges
_TEXT = [(b"content-type", b"text/plain; charset=utf-8")]
# A wasi:http route streams a request body (the guest reads it as it arrives) when it is
# chunked or longer than this; a shorter one is read first, as for every route.
STREAM_AFTER = 64 * 1024


class _BodyTooLarge(Exception):
    pass


class _ClientGone(Exception):
    """The client disconnected before its request body was complete."""


class _BufferFull(Exception):
    """The request body does not fit in what is left of ``max_body_buffer`` (or its share)."""


App = Callable[[Scope, Receive, Send], Awaitable[None]]


class _BodyBudget:
    """Bytes of request bodies held at once, in all and per client address and route
    (event-loop thread only: no lock). Pure bookkeeping; the shares are in the rules."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.client_share = max(1, limit // 4)
        self.route_share = max(1, limit // 2)
        self.held = 0
        self.by_client: dict[object, int] = {}
        self.by_route: dict[object, int] = {}

    def take(self, n: int, client: str, route: object) -> None:
        by_client = self.by_client.get(client, 0) + n
        by_route = self.by_route.get(route, 0) + n
        if self.held + n > self.limit:
            raise _BufferFull(f"request bodies held reach --max-body-buffer ({self.limit} bytes)")
        if by_client > self.client_share:
            raise _BufferFull(f"client's share of the body buffer ({self.client_share} bytes) used")
        if by_route > self.route_share:
            raise _BufferFull(f"route's share of the body buffer ({self.route_share} bytes) used")
        self.held += n
        self.by_client[client] = by_client
        self.by_route[route] = by_route

    def give(self, n: int, client: str, route: object) -> None:
        self.held -= n
        for table, key in ((self.by_client, client), (self.by_route, route)):
            left = table[key] - n
            if left:
                table[key] = left
            else:
                del table[key]


class Gateway:
    """An ASGI application serving one modules.toml."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        pump: OutputPump | None = None,
        manifest_text: str | None = None,
        snapshot: WorkerSnapshot | None = None,
    ) -> None:
        """``manifest_text`` is loaded instead of ``config.modules_toml`` at the first load;
        ``snapshot`` (what a worker's master validated: text, modules and runtime config) at
        every load."""
        self.config = config
        self.manifest_text = manifest_text
        self._snapshot = snapshot
        self._pump = pump or default_pump()
        self._state: GatewayState | None = None
        self._pool = GuestPool(config.threads)
        self._capacity = config.threads + config.queue
        # Per route: all but a reserve of a quarter (at least one slot) kept for other routes.
        self._route_capacity = max(1, self._capacity - max(1, self._capacity // 4))
        self._admitted = 0
        self._by_route: dict[ModuleHandler, int] = {}
        self._ids = itertools.count(1)
        self._id_prefix = f"{os.getpid():x}-"
        self._log_dir_failing = False
        self._bodies = _BodyBudget(config.max_body_buffer)
        self._gauge_timer: asyncio.TimerHandle | None = None
        self._placement = Placement()
        self._load_lock = asyncio.Lock()
        self._log_files: dict[str, Path] = {}
        self._log_lock = threading.Lock()
        self.metrics = GatewayMetrics()
        self.count_reloads = True  # False where another process counts them (see server.py)

    # --- state ---------------------------------------------------------------------------

    @property
    def state(self) -> GatewayState:
        if self._state is None:
            raise RuntimeError("gateway not loaded")
        return self._state

    def _load_state(self) -> GatewayState:
        if self._snapshot is not None:
            text, resolve, runtime_config = self._snapshot.read()
            return load_state(self.config, self._pump, text, runtime_config, resolve=resolve)
        return load_state(self.config, self._pump, self.manifest_text)

    def load(self) -> GatewayState:
        """Build the route table (blocking). Raises ``ConfigError`` for a bad configuration."""
        state = self._load_state()
        for warning in state.warnings:
            log.warning("%s", warning)
        self._state = state
        log.info(
            "serving %d routes from %s",
            len(state.table.routes),
            self.config.modules_toml.name,
        )
        return state

    async def reload(self) -> bool:
        """Load the configuration again; keep the running state if the new one is broken."""
        loop = asyncio.get_running_loop()
        try:
            state = await loop.run_in_executor(None, self._load_state)
        except WasmgateError as e:
            if self.count_reloads:
                self.metrics.reloads.labels("failed").inc()
            log.error("reload failed, keeping the running configuration: %s", e)
            return False
        for warning in state.warnings:
            log.warning("%s", warning)
        self._state = state
        if self.count_reloads:
            self.metrics.reloads.labels("ok").inc()
        log.info("reloaded: serving %d routes", len(state.table.routes))
        return True

    async def _ensure_loaded(self) -> GatewayState:
        if self._state is None:
            async with self._load_lock:
                if self._state is None:
                    await asyncio.get_running_loop().run_in_executor(None, self.load)
        return self.state

    def close(self) -> None:
        self._pool.shutdown()
        self.metrics.flush()  # the last requests' observations (see metrics.py)

    # --- ASGI ----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self._ensure_loaded()
                except WasmgateError as e:
                    await send({"type": "lifespan.startup.failed", "message": str(e)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await asyncio.get_running_loop().run_in_executor(None, self.close)
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _request(self, scope: Scope) -> CgiRequest:
        request = CgiRequest.from_asgi_scope(scope)  # root_path removed from raw_path
        if self.config.pin_hostname:
            pinned = (b"host", self.config.hostname.encode("ascii"))
            headers = tuple(h for h in request.headers if h[0] != b"host")
            request = replace(request, headers=(*headers, pinned))
        return request

    def answer_now(self, scope: Scope) -> Answer | App | None:
        """Serve an HTTP request at once, on the event loop, if it needs nothing of ASGI (see the
        rules): an ``Answer`` to write, an ASGI app to run in its place (the request goes on
        through ASGI with what was done for it: its parsed request, start time, and the guest's
        result where it ran), or None: nothing was done, serve it as ASGI (``__call__``)."""
        state = self._state
        budget = self.config.inline_budget
        if state is None or budget is None:
            return None
        started = time.perf_counter()
        request = self._request(scope)
        found = state.table.match(request.raw_path)
        if (
            request.content_length
            or _chunked(request)
            or found is None
            or isinstance(found, HealthCheck)
            or not self._placement.inline_ok(handler := found.route.handler)
            or self._busy(handler) is not None
        ):
            return self._go_on(request, started)
        self._placement.seen(handler)
        result = self._inline(handler, request, b"", found, budget)
        if result is None:  # past its budget: the ASGI path runs it again on a guest thread
            return self._go_on(request, started)
        rid = f"{self._id_prefix}{next(self._ids):x}"
        response = result.response
        if response is None or result.stderr or result.trailers:

            async def answer(scope: Scope, receive: Receive, send: Send) -> None:
                await self._log_stderr_off_loop(handler, request, rid, result)
                await self._answer(request, rid, found, started, 0, result, send, scope)

            return answer

        ended = time.perf_counter()  # done() runs after the pass's flush (see the protocol)

        def done() -> None:
            sent, status, cause = len(response.body), result.status, result.cause
            self._finish(request, rid, found, status, cause, started, 0, sent, result, ended=ended)

        return Answer(response.status, response.headers, response.body, done)

    def _go_on(self, request: CgiRequest, started: float) -> App:
        """The ASGI app serving a request ``answer_now`` did not answer, from what it parsed."""

        async def go_on(scope: Scope, receive: Receive, send: Send) -> None:
            await self._http(scope, receive, send, started, request)

        return go_on

    async def _http(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        started: float | None = None,
        request: CgiRequest | None = None,
    ) -> None:
        if started is None:
            started = time.perf_counter()
        state = await self._ensure_loaded()
        if request is None:
            request = self._request(scope)
        found = state.table.match(request.raw_path)
        if isinstance(found, HealthCheck):
            await _respond(send, found.status, list(found.headers), found.body)
            return
        rid = f"{self._id_prefix}{next(self._ids):x}"
        if found is None:
            await _respond(send, 404, _TEXT, b"Not Found\n")
            self._finish(request, rid, None, 404, "no-route", started, 0, 10, None)
            return
        handler = found.route.handler
        has_body = bool(request.content_length) or (
            request.content_length is None and _chunked(request)
        )
        busy = self._busy(handler)
        if busy is not None:
            await _respond(send, 503, _busy_headers(has_body), b"Service Unavailable\n")
            self._finish(request, rid, found, 503, busy, started, 0, 20, None)
            return
        client = request.client[0] if request.client else "-"
        held = _Held(self._bodies, client, handler)
        limit = handler.limits.max_request_body or 0
        # A wasi:http route reads a long or chunked body as it arrives (see ``relay``).
        stream_in = (
            handler.streams
            and has_body
            and (request.content_length is None or request.content_length > STREAM_AFTER)
        )
        try:
            body = b""  # no Content-Length and not chunked: no body (RFC 9112 6.3)
            if stream_in:
                if request.content_length is not None and request.content_length > limit:
                    raise _BodyTooLarge
                held.take(min(WINDOW, request.content_length or WINDOW))  # what it may hold
            elif has_body:
                body = await _read_body(receive, request.content_length, limit, held)
        except _BodyTooLarge:
            held.release()
            # Close: the rest of an over-limit body is not worth reading.
            await _respond(send, 413, [*_TEXT, (b"connection", b"close")], b"Payload Too Large\n")
            self._finish(request, rid, found, 413, "body-too-large", started, 0, 18, None)
            return
        except _BufferFull as e:
            received = held.size
            held.release()
            log.warning("%s %s: 503 body-buffer-full: %s", _peer(request), request.raw_path, e)
            await _respond(send, 503, _busy_headers(True), b"Service Unavailable\n")
            self._finish(request, rid, found, 503, "body-buffer-full", started, received, 20, None)
            return
        except _ClientGone:  # a truncated body must never reach a guest
            received = held.size
            held.release()
            refused = scope.get(REFUSED_KEY)
            if refused is not None:  # the connection guard answered (and counted) it
                status, cause = refused
                self._finish(
                    request,
                    rid,
                    found,
                    status,
                    cause,
                    started,
                    received,
                    0,
                    None,
                    count_answer=False,
                )
            else:
                self._finish(request, rid, found, 499, "client-gone", started, received, 0, None)
            return
        busy = self._busy(handler)
        if busy is not None:
            held.release()
            await _respond(send, 503, _busy_headers(stream_in), b"Service Unavailable\n")
            self._finish(request, rid, found, 503, busy, started, len(body), 20, None)
            return
        relay: Relay | None = None
        try:
            result: HandlerResult | None = None
            if not stream_in:
                result = await self._run_inline(handler, request, body, found, rid)
            if result is None:
                if handler.streams:
                    relay = Relay(
                        scope,
                        receive,
                        send,
                        prefix=body,
                        complete=not stream_in,
                        limit=handler.limits.max_request_body,
                    )
                    if stream_in:
                        relay.start()
                exchange = relay.exchange if relay is not None else None
                result = await self._run_on_thread(handler, request, body, found, rid, exchange)
                self._placement.thread_ran(handler, result.guest_seconds)
        finally:
            held.release()
        if relay is not None:
            await self._conclude(request, rid, found, started, relay, result, scope, send)
            return
        await self._answer(request, rid, found, started, len(body), result, send, scope)

    async def _answer(
        self,
        request: CgiRequest,
        rid: str,
        found: RouteMatch[ModuleHandler],
        started: float,
        received: int,
        result: HandlerResult,
        send: Send,
        scope: Scope,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        """Send a guest's buffered answer (or its failure's status), then log and count it.
        Trailers go out only where the server offers ASGI's trailers extension."""
        if result.response is not None:
            response = result.response
            headers = [*response.headers, *extra] if extra else response.headers
            if result.trailers and trailers_supported(scope):
                await _respond_with_trailers(
                    scope, send, response.status, headers, response.body, result
                )
            else:
                await _respond(send, response.status, headers, response.body)
            sent = len(response.body)
        else:
            await _respond(send, result.status, extra or [], b"")
            sent = 0
            self._log_failure(found.route.handler, request, rid, result)
        self._finish(
            request, rid, found, result.status, result.cause, started, received, sent, result
        )

    def _log_failure(
        self, handler: ModuleHandler, request: CgiRequest, rid: str, result: HandlerResult
    ) -> None:
        # A client's fault (e.g. a bad Host: 400) is not the server's error.
        level = logging.WARNING if result.status < 500 else logging.ERROR
        log.log(
            level,
            "%s %s -> %d: %s (req %s, client %s)",
            handler.label,
            request.raw_path,
            result.status,
            result.reason,
            rid,
            _peer(request),
        )

    async def _conclude(
        self,
        request: CgiRequest,
        rid: str,
        found: RouteMatch[ModuleHandler],
        started: float,
        relay: Relay,
        result: HandlerResult,
        scope: Scope,
        send: Send,
    ) -> None:
        """End a request whose bodies streamed: complete or cut off a response already started,
        or answer as for a buffered one (413 for a body that grew past its limit, nothing for a
        client that left)."""
        try:
            if result.streamed:
                if result.cause == "ok":
                    await relay.finish()
                if not relay.ended:
                    abort_response(scope)
                    # Why it was cut off: the body's limit or the client first, whatever the
                    # guest made of the failed read or write.
                    if relay.too_large:
                        limit = found.route.handler.limits.max_request_body
                        reason = f"request body over {limit} bytes"
                        result = replace(result, status=413, cause="body-too-large", reason=reason)
                    elif relay.client_gone or result.cause == "ok":
                        reason = "the client closed the connection during the response"
                        result = replace(result, status=499, cause="client-gone", reason=reason)
                    self._log_failure(found.route.handler, request, rid, result)
                received = relay.exchange.received
                self._finish(
                    request,
                    rid,
                    found,
                    result.status,
                    result.cause,
                    started,
                    received,
                    relay.sent,
                    result,
                )
                return
        finally:
            await relay.close()
        received = relay.exchange.received
        if relay.too_large:
            limit = found.route.handler.limits.max_request_body
            result = HandlerResult(413, None, "body-too-large", f"request body over {limit} bytes")
            await _respond(send, 413, [*_TEXT, (b"connection", b"close")], b"Payload Too Large\n")
            self._finish(request, rid, found, 413, "body-too-large", started, received, 18, result)
            return
        if relay.client_gone:
            self._finish(request, rid, found, 499, "client-gone", started, received, 0, result)
            return
        # A body the guest left unread is not worth reading: close after the answer.
        extra = None if relay.body_complete else [(b"connection", b"close")]
        await self._answer(request, rid, found, started, received, result, send, scope, extra)

    def _busy(self, handler: ModuleHandler) -> str | None:
        """Why ``handler``'s next request cannot be admitted now (a cause), or None."""
        if self._admitted >= self._capacity:
            return "saturated"
        if self._by_route.get(handler, 0) >= self._route_capacity:
            return "route-saturated"
        return None

    def _admit(self, handler: ModuleHandler) -> None:
        self._admitted += 1
        self._by_route[handler] = self._by_route.get(handler, 0) + 1
        self._publish_gauges()

    def _release(self, handler: ModuleHandler) -> None:
        self._admitted -= 1
        left = self._by_route[handler] - 1
        if left:
            self._by_route[handler] = left
        else:
            del self._by_route[handler]

    async def _run_inline(
        self,
        handler: ModuleHandler,
        request: CgiRequest,
        body: bytes,
        match: RouteMatch[ModuleHandler],
        rid: str,
    ) -> HandlerResult | None:
        """Run the guest on the event loop when ``Placement`` says so; None when it was not (or
        ran past its budget, to be run again on a guest thread)."""
        placement = self._placement
        placement.seen(handler)
        budget = self.config.inline_budget
        if budget is None or not placement.inline_ok(handler):
            return None
        result = self._inline(handler, request, body, match, budget)
        if result is not None:
            await self._log_stderr_off_loop(handler, request, rid, result)
        return result

    async def _log_stderr_off_loop(
        self, handler: ModuleHandler, request: CgiRequest, rid: str, result: HandlerResult
    ) -> None:
        """``_log_stderr`` for a guest run on the event loop: file I/O, so on a thread (as for
        threaded runs); nothing to do for a guest that wrote no stderr."""
        if result.stderr:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, self._log_stderr, handler, request, rid, result)

    def _inline(
        self,
        handler: ModuleHandler,
        request: CgiRequest,
        body: bytes,
        match: RouteMatch[ModuleHandler],
        budget: float,
    ) -> HandlerResult | None:
        """Run the guest here, admitted, under ``budget``; None when it ran past it (and the
        route goes to the guest threads, see ``Placement``)."""
        placement = self._placement
        self._admit(handler)
        cpu = time.thread_time()
        try:
            result = handler.handle(request, body, match, budget)
        finally:
            self._release(handler)
        if result.cause == OVER_BUDGET:
            placement.overran(handler)
            return None
        # CPU time, not wall time: waiting for the GIL is not the guest's doing.
        placement.inline_ran(handler, time.thread_time() - cpu)
        return result

    async def _run_on_thread(
        self,
        handler: ModuleHandler,
        request: CgiRequest,
        body: bytes,
        match: RouteMatch[ModuleHandler],
        rid: str,
        exchange: Exchange | None = None,
    ) -> HandlerResult:
        self._admit(handler)
        state = [0.0, 0.0]  # [when _work started (0: queued), 1.0 once the client was answered]
        capped = self._placement.capped(handler)
        future = self._pool.submit(
            self._work,
            handler,
            request,
            body,
            match,
            rid,
            state,
            exchange,
            key=handler,
            capped=capped,
        )

        def release(_: object) -> None:
            self._release(handler)

        future.add_done_callback(release)
        timeout = handler.limits.timeout
        if timeout is None:
            return await asyncio.shield(future)
        # The route's timeout bounds the wait in the queue, then the guest from its own start.
        limit = timeout + BLOCKED_GRACE
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(asyncio.shield(future), limit)
        state[1] = 1.0  # from now on _work will not start this guest for nobody
        started = state[0]
        if not started:
            reason = "queued past the route's deadline; the guest was not run"
            return HandlerResult(HTTP_STATUS["timeout"], None, "timeout", reason)
        left = started + limit - time.monotonic()
        if left > 0:
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(asyncio.shield(future), left)
        return HandlerResult(504, None, "timeout", "guest blocked in a host call past its deadline")

    def _publish_gauges(self) -> None:
        """Keep the in-flight and queued gauges current within ``GAUGE_PERIOD`` (on the loop).
        Setting them per request costs several locked writes to the multiprocess metric files;
        gauges are only read when scraped, so a timer publishes them while requests come."""
        if self._gauge_timer is not None:
            return
        self.metrics.in_flight.set(self._admitted)
        self.metrics.queued.set(self._pool.waiting())

        def again() -> None:
            self._gauge_timer = None
            if self._admitted:
                self._publish_gauges()
            else:
                self.metrics.in_flight.set(0)
                self.metrics.queued.set(self._pool.waiting())

        self._gauge_timer = asyncio.get_running_loop().call_later(GAUGE_PERIOD, again)

    def _work(
        self,
        handler: ModuleHandler,
        request: CgiRequest,
        body: bytes,
        match: RouteMatch[ModuleHandler],
        rid: str,
        state: list[float],
        exchange: Exchange | None,
    ) -> HandlerResult:
        state[0] = time.monotonic()
        if state[1]:  # the client already got its 504 while this waited for a thread
            return HandlerResult(504, None, "timeout", "abandoned in the queue")
        if exchange is not None:  # bodies stream (``streams``): the body is the exchange's
            result = handler.handle(request, b"", match, exchange=exchange)  # type: ignore[call-arg]
        else:
            result = handler.handle(request, body, match)
        if result.stderr:
            self._log_stderr(handler, request, rid, result)
        return result

    def _log_stderr(
        self, handler: ModuleHandler, request: CgiRequest, rid: str, result: HandlerResult
    ) -> None:
        lines = [escape_line(line) for line in stderr_lines(result.stderr)]
        more = result.stderr_total - len(result.stderr)
        if more > 0:
            lines.append(f"[... {more} more bytes of stderr dropped]")
        route = handler.spec.route.text
        for line in lines:
            guest_log.info("route=%s req=%s stderr: %s", route, rid, line)
        log_dir = self.config.log_dir
        if log_dir is None:
            return
        path = log_dir / f"{_log_name(route)}.stderr.log"
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        prefix = f"{stamp}Z req={rid} {request.method} {request.raw_path}: "
        text = "".join(f"{prefix}{line}\n" for line in lines)
        with self._log_lock:
            try:
                log_dir.mkdir(parents=True, exist_ok=True)
                with path.open("a", encoding="utf-8") as f:
                    f.write(text)
            except OSError as e:
                if not self._log_dir_failing:  # once, until a write succeeds again
                    self._log_dir_failing = True
                    log.warning(
                        "cannot write guest logs to --log-dir (%s: %s); "
                        "not repeated until writing works again",
                        path.name,
                        e.strerror,
                    )
                return
            if self._log_dir_failing:
                self._log_dir_failing = False
                log.info("writing guest logs to --log-dir again")

    def _finish(
        self,
        request: CgiRequest,
        rid: str,
        match: RouteMatch[ModuleHandler] | None,
        status: int,
        cause: str,
        started: float,
        received: int,
        sent: int,
        result: HandlerResult | None,
        count_answer: bool = True,
        ended: float | None = None,
    ) -> None:
        """Metrics and the access log for one request that took from ``started`` to ``ended``
        (``time.perf_counter()`` values). Without ``ended``, the request was answered just now:
        they are made once the loop has sent what was written (``LoopPass``, see the rules).
        Without a ``result`` the gateway answered itself, counted in ``gateway_answered`` unless
        ``count_answer`` is False (the connection guard counted it) or nothing was answered
        (499)."""
        if ended is None:
            args = (request, rid, match, status, cause, started, received, sent, result)
            later = functools.partial(self._finish, *args, count_answer, time.perf_counter())
            LoopPass.of(asyncio.get_running_loop()).after_flush(later)
            return
        duration = ended - started
        route = match.route.pattern.text if match is not None else "-"
        guest = result.guest_seconds if result is not None else None
        inline = result is not None and result.budget is not None
        self.metrics.observe(route, status, cause, duration, guest)
        if result is None and count_answer and status != 499:
            self.metrics.gateway_answered(status, cause)
        if self.config.access_log:
            client = request.client[0] if request.client else None
            access_log(
                rid,
                request.method,
                request.raw_path,
                route,
                status,
                cause,
                duration,
                guest,
                inline,
                received,
                sent,
                client,
            )


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\\]")


def stderr_lines(data: bytes) -> list[str]:
    """Captured guest stderr as text lines (UTF-8, undecodable bytes replaced); a final line
    without a newline is a line too."""
    text = data.decode("utf-8", "replace")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def escape_line(line: str) -> str:
    """``line`` with each backslash and control character (C0, DEL, C1, and the Unicode line
    and paragraph separators) escaped as in Python literals: one log line, never two."""

    def sub(m: re.Match[str]) -> str:
        c = m.group()
        if c == "\\":
            return "\\\\"
        named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(c)
        if named is not None:
            return named
        code = ord(c)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return _CONTROL.sub(sub, line)


def _peer(request: CgiRequest) -> str:
    return f"{request.client[0]}:{request.client[1]}" if request.client else "client"


def _log_name(route: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "_", route).strip("_")
    return slug or "root"


class _Held:
    """The part of the body budget one request holds; released once, when it is finished."""

    __slots__ = ("_budget", "_client", "_route", "size")

    def __init__(self, budget: _BodyBudget, client: str, route: object) -> None:
        self._budget = budget
        self._client = client
        self._route = route
        self.size = 0

    def take(self, n: int) -> None:
        self._budget.take(n, self._client, self._route)
        self.size += n

    def release(self) -> None:
        if self.size:
            self._budget.give(self.size, self._client, self._route)
        self.size = 0


def _chunked(request: CgiRequest) -> bool:
    return any(name.lower() == b"transfer-encoding" for name, _ in request.headers)


def _busy_headers(unread_body: bool) -> list[tuple[bytes, bytes]]:
    headers = [*_TEXT, (b"retry-after", b"1")]
    if unread_body:
        headers.append((b"connection", b"close"))
    return headers


async def _read_body(receive: Receive, declared: int | None, limit: int, held: _Held) -> bytes:
    if declared is not None and declared > limit:
        raise _BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise _BodyTooLarge
            held.take(len(chunk))  # charged as received (see the rules)
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _respond_with_trailers(
    scope: Scope,
    send: Send,
    status: int,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    result: HandlerResult,
) -> None:
    """A buffered answer that ends with trailers (chunked, so that they can follow it)."""
    start = {"type": "http.response.start", "status": status, "headers": headers, "trailers": True}
    await send(start)
    await send({"type": "http.response.body", "body": body, "more_body": True})
    await end_with_trailers(scope, send, allowed_trailers(result.trailers))


async def _respond(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    if status not in NO_CONTENT:
        headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def create_app(config: GatewayConfig) -> Gateway:
    """An ASGI app serving ``config.modules_toml`` (for uvicorn, hypercorn, gunicorn workers, or
    mounting inside Starlette/FastAPI). The route table is loaded here: a broken configuration
    raises ``ConfigError`` at once. Log records of the ``wasmgate`` loggers (the access log
    included) go to stderr at INFO unless the host application configured logging for them."""
    gateway = Gateway(config)
    try:
        gateway.load()
    except ConfigError:
        gateway.close()
        raise
    _ensure_log_handler()
    return gateway


def _ensure_log_handler() -> None:
    """A stderr handler on the ``wasmgate`` logger when nothing would show its INFO records:
    gunicorn and hypercorn configure only their own loggers, and Python's last-resort handler
    shows WARNING and above only."""
    root = logging.getLogger("wasmgate")
    if root.handlers or (logging.getLogger().handlers and root.getEffectiveLevel() <= logging.INFO):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
