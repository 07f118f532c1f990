"""The WAGI gateway as an ASGI application: route, bound, admit, run off the loop, answer.

Rules:
- This layer only moves bytes: CGI translation lives in ``wagi.cgi``, running guests in
  ``wagi.handler``. Nothing here blocks the event loop longer than an inline run's budget;
  other guests run on a fixed pool of ``threads`` worker threads (wasm calls release the GIL).
- Admission is bounded: at most ``threads + queue`` requests are admitted at once; the next gets
  503 with ``Retry-After`` at once. A request stays admitted until its guest has really finished,
  so a guest stuck in a host call past its deadline (answered 504) still holds its slot: memory and
  threads are never unbounded.
- Request bodies are bounded by the route's ``max_request_body``: a larger ``Content-Length`` is
  refused before reading (413), and a body (chunked or not) that grows past it while being read
  is refused at that point.
- Nothing is read for a request that cannot be admitted: when ``threads + queue`` requests are
  in, the next gets 503 before its body is read. Bodies being read are not admitted yet (a slow
  upload must not hold a guest slot), so their memory has its own bound: the bytes of all
  bodies held at once stay within ``max_body_buffer`` (a declared length is reserved before
  reading, a chunked body as it arrives); a body that does not fit gets 503. Both 503s carry
  ``Retry-After``, and ``Connection: close`` when a body is left unread.
- Where a request's guest runs is ``placement.Placement``'s decision: inline on the event loop
  under ``inline_budget`` for quick repeatable routes (re-run in full on a guest thread past
  it), else on the guest threads, which ``workers.GuestPool`` shares fairly between routes.
  ``inline_budget = None`` (``--no-inline``) keeps every guest on the threads.
- ``/healthz`` answers 200 ``OK`` before any route, and cannot be overridden.
- The state (route table) is replaced atomically on reload; a request keeps the state it started
  with, so a reload never drops or mixes requests. A broken new config keeps the old state.
- Works mounted inside another ASGI app: ``root_path`` is stripped before routing, and the route
  table is loaded on first use when no lifespan events arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..config import GatewayConfig
from ..engine import OutputPump, default_pump
from ..errors import HTTP_STATUS, WasmgateError
from ..wagi.cgi import CgiRequest
from ..wagi.handler import OVER_BUDGET, HandlerResult, ModuleHandler
from ..wagi.routes import HealthCheck, RouteMatch
from .guest_pool import GuestPool
from .metrics import GatewayMetrics, access_log
from .placement import Placement
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


class _BodyTooLarge(Exception):
    pass


class _ClientGone(Exception):
    """The client disconnected before its request body was complete."""


class _BufferFull(Exception):
    """The request body does not fit in what is left of ``max_body_buffer``."""


class _BodyBudget:
    """Bytes of request bodies held at once (event-loop thread only: no lock)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def take(self, n: int) -> None:
        if self.held + n > self.limit:
            raise _BufferFull
        self.held += n

    def give(self, n: int) -> None:
        self.held -= n


class Gateway:
    """An ASGI application serving one modules.toml."""

    def __init__(self, config: GatewayConfig, *, pump: OutputPump | None = None) -> None:
        self.config = config
        self._pump = pump or default_pump()
        self._state: GatewayState | None = None
        self._pool = GuestPool(config.threads)
        self._capacity = config.threads + config.queue
        self._admitted = 0
        self._bodies = _BodyBudget(config.max_body_buffer)
        self._gauge_timer: asyncio.TimerHandle | None = None
        self._placement = Placement()
        self._load_lock = asyncio.Lock()
        self._log_files: dict[str, Path] = {}
        self._log_lock = threading.Lock()
        self.metrics = GatewayMetrics()

    # --- state ---------------------------------------------------------------------------

    @property
    def state(self) -> GatewayState:
        if self._state is None:
            raise RuntimeError("gateway not loaded")
        return self._state

    def load(self) -> GatewayState:
        """Build the route table (blocking). Raises ``ConfigError`` for a bad configuration."""
        state = load_state(self.config, self._pump)
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
            state = await loop.run_in_executor(None, load_state, self.config, self._pump)
        except WasmgateError as e:
            self.metrics.reloads.labels("failed").inc()
            log.error("reload failed, keeping the running configuration: %s", e)
            return False
        for warning in state.warnings:
            log.warning("%s", warning)
        self._state = state
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

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        state = await self._ensure_loaded()
        request = CgiRequest.from_asgi_scope(scope)
        root = scope.get("root_path") or ""
        if root and request.raw_path.startswith(root):
            request = replace(request, raw_path=request.raw_path[len(root) :] or "/")
        found = state.table.match(request.raw_path)
        if isinstance(found, HealthCheck):
            await _respond(send, found.status, list(found.headers), found.body)
            return
        if found is None:
            await _respond(send, 404, _TEXT, b"Not Found\n")
            self._finish(request, None, 404, "no-route", started, 0, 10, None)
            return
        handler = found.route.handler
        has_body = bool(request.content_length) or (
            request.content_length is None and _chunked(request)
        )
        if self._admitted >= self._capacity:
            await _respond(send, 503, _busy_headers(has_body), b"Service Unavailable\n")
            self._finish(request, found, 503, "saturated", started, 0, 20, None)
            return
        held = _Held(self._bodies)
        try:
            body = b""  # no Content-Length and not chunked: no body (RFC 9112 6.3)
            if has_body:
                limit = handler.limits.max_request_body or 0
                body = await _read_body(receive, request.content_length, limit, held)
        except _BodyTooLarge:
            held.release()
            # Close: the rest of an over-limit body is not worth reading.
            await _respond(send, 413, [*_TEXT, (b"connection", b"close")], b"Payload Too Large\n")
            self._finish(request, found, 413, "body-too-large", started, 0, 18, None)
            return
        except _BufferFull:
            held.release()
            await _respond(send, 503, _busy_headers(True), b"Service Unavailable\n")
            self._finish(request, found, 503, "body-buffer-full", started, 0, 20, None)
            return
        except _ClientGone:  # a truncated body must never reach a guest
            held.release()
            self._finish(request, found, 499, "client-gone", started, 0, 0, None)
            return
        if self._admitted >= self._capacity:
            held.release()
            await _respond(send, 503, _busy_headers(False), b"Service Unavailable\n")
            self._finish(request, found, 503, "saturated", started, len(body), 20, None)
            return
        try:
            result = await self._run(handler, request, body, found)
        finally:
            held.release()
        if result.response is not None:
            response = result.response
            await _respond(send, response.status, response.headers, response.body)
            sent = len(response.body)
        else:
            await _respond(send, result.status, [], b"")
            sent = 0
            log.error(
                "%s %s -> %d: %s",
                handler.label,
                request.raw_path,
                result.status,
                result.reason,
            )
        self._finish(request, found, result.status, result.cause, started, len(body), sent, result)

    async def _run(
        self,
        handler: ModuleHandler,
        request: CgiRequest,
        body: bytes,
        match: RouteMatch[ModuleHandler],
    ) -> HandlerResult:
        placement = self._placement
        placement.seen(handler)
        budget = self.config.inline_budget
        if budget is not None and placement.inline_ok(handler):
            self._admitted += 1
            self._publish_gauges()
            cpu = time.thread_time()
            try:
                result = handler.handle(request, body, match, budget)
            finally:
                self._admitted -= 1
            if result.cause != OVER_BUDGET:
                # CPU time, not wall time: waiting for the GIL is not the guest's doing.
                placement.inline_ran(handler, time.thread_time() - cpu)
                if result.stderr:  # file I/O: off the event loop, as for threaded runs
                    loop = asyncio.get_running_loop()
                    await loop.run_in_executor(None, self._log_stderr, handler, request, result)
                return result
            placement.overran(handler)
        result = await self._run_on_thread(handler, request, body, match)
        placement.thread_ran(handler, result.guest_seconds)
        return result

    async def _run_on_thread(
        self,
        handler: ModuleHandler,
        request: CgiRequest,
        body: bytes,
        match: RouteMatch[ModuleHandler],
    ) -> HandlerResult:
        self._admitted += 1
        self._publish_gauges()
        state = [0.0, 0.0]  # [when _work started (0: queued), 1.0 once the client was answered]
        capped = self._placement.capped(handler)
        future = self._pool.submit(
            self._work, handler, request, body, match, state, key=handler, capped=capped
        )

        def release(_: object) -> None:
            self._admitted -= 1

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
        state: list[float],
    ) -> HandlerResult:
        state[0] = time.monotonic()
        if state[1]:  # the client already got its 504 while this waited for a thread
            return HandlerResult(504, None, "timeout", "abandoned in the queue")
        result = handler.handle(request, body, match)
        if result.stderr:
            self._log_stderr(handler, request, result)
        return result

    def _log_stderr(
        self, handler: ModuleHandler, request: CgiRequest, result: HandlerResult
    ) -> None:
        text = result.stderr.decode("utf-8", "replace").rstrip("\n")
        more = result.stderr_total - len(result.stderr)
        if more > 0:
            text += f"\n[... {more} more bytes of stderr dropped]"
        guest_log.info("%s %s: %s", handler.label, request.raw_path, text)
        if self.config.log_dir is None:
            return
        name = _log_name(handler.spec.route.text)
        path = self.config.log_dir / f"{name}.stderr.log"
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        with self._log_lock:
            try:
                self.config.log_dir.mkdir(parents=True, exist_ok=True)
                with path.open("a", encoding="utf-8") as f:
                    f.write(f"[{stamp}Z {request.method} {request.raw_path}]\n{text}\n")
            except OSError as e:
                log.warning("cannot write guest log %s: %s", path.name, e.strerror)

    def _finish(
        self,
        request: CgiRequest,
        match: RouteMatch[ModuleHandler] | None,
        status: int,
        cause: str,
        started: float,
        received: int,
        sent: int,
        result: HandlerResult | None,
    ) -> None:
        duration = time.perf_counter() - started
        route = match.route.pattern.text if match is not None else "-"
        guest = result.guest_seconds if result is not None else None
        inline = result is not None and result.budget is not None
        self.metrics.observe(route, status, cause, duration, guest)
        if self.config.access_log:
            access_log(
                method=request.method,
                path=request.raw_path,
                route=route,
                status=status,
                cause=cause,
                ms=round(duration * 1000, 3),
                guest_ms=round(guest * 1000, 3) if guest is not None else None,
                inline=inline,
                bytes_in=received,
                bytes_out=sent,
                client=request.client[0] if request.client else None,
            )


def _log_name(route: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "_", route).strip("_")
    return slug or "root"


class _Held:
    """The part of the body budget one request holds; released once, when it is finished."""

    __slots__ = ("_budget", "size")

    def __init__(self, budget: _BodyBudget) -> None:
        self._budget = budget
        self.size = 0

    def take(self, n: int) -> None:
        self._budget.take(n)
        self.size += n

    def release(self) -> None:
        self._budget.give(self.size)
        self.size = 0


def _chunked(request: CgiRequest) -> bool:
    return any(name.lower() == b"transfer-encoding" for name, _ in request.headers)


def _busy_headers(unread_body: bool) -> list[tuple[bytes, bytes]]:
    headers = [*_TEXT, (b"retry-after", b"1")]
    if unread_body:
        headers.append((b"connection", b"close"))
    return headers


async def _read_body(receive: Receive, declared: int | None, limit: int, held: _Held) -> bytes:
    if declared is not None:
        if declared > limit:
            raise _BodyTooLarge
        held.take(declared)
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
            if size > held.size:  # chunked (or longer than declared: the server refuses that)
                held.take(size - held.size)
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _respond(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def create_app(config: GatewayConfig) -> Gateway:
    """An ASGI app serving ``config.modules_toml`` (for uvicorn, hypercorn, gunicorn workers, or
    mounting inside Starlette/FastAPI). The route table loads at lifespan start-up, or on the
    first request when the host server sends no lifespan events."""
    return Gateway(config)
