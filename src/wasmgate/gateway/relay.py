"""Moves a streamed request's bytes between the ASGI connection and the guest's thread.

Rules (the exchange's own rules are in ``wasihttp.streaming``):
- Two tasks on the event loop per streamed request, started by ``Relay.start`` (at once for a
  request whose body streams in; else when the guest first hands something over, so a guest
  that answers at once costs no task) and both ended by ``Relay.close``. One feeds the request
  body from ``receive`` into the exchange while it has room (so a client sending faster than
  the guest reads is slowed down by TCP, not buffered), then keeps listening for the client
  hanging up; the other sends what the guest hands over (head, body chunks, end) as ASGI
  messages, in order, each ``send`` awaited before the guest is told there is room for more.
- The response head keeps the guest's ``content-length`` if it set one; otherwise the server
  chunks it. It ends a chunked body with the guest's trailers where the server can send them
  (``protocol.end_with_trailers``); elsewhere, a guest's trailers are dropped.
- Trailer fields the server owns (framing, routing, authentication: ``NOT_TRAILERS``) are never
  sent as trailers, in either direction.
- The relay never decides a status: the gateway reads ``ended`` (the guest finished its body
  and the last message went out), ``too_large`` and ``client_gone`` when the guest is done.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from ..wasihttp.streaming import CLIENT_GONE, Exchange, Head
from .protocol import REQUEST_TRAILERS_KEY, end_with_trailers, trailers_supported

__all__ = ["NOT_TRAILERS", "Relay", "allowed_trailers"]

# RFC 9110 6.5.1: fields a trailer must not carry (framing, routing, request modifiers,
# authentication, content negotiation of the whole message).
NOT_TRAILERS = frozenset(
    {
        b"content-length",
        b"transfer-encoding",
        b"content-encoding",
        b"content-type",
        b"content-range",
        b"trailer",
        b"host",
        b"connection",
        b"keep-alive",
        b"te",
        b"upgrade",
        b"authorization",
        b"proxy-authorization",
        b"cookie",
        b"set-cookie",
        b"cache-control",
        b"expect",
        b"max-forwards",
        b"pragma",
        b"range",
    }
)


def allowed_trailers(fields: Any) -> list[tuple[bytes, bytes]]:
    """``fields`` without those a trailer must not carry (``NOT_TRAILERS``)."""
    return [(n, v) for n, v in fields or () if n.lower() not in NOT_TRAILERS]


class Relay:
    """One streamed request's two tasks (see the rules)."""

    def __init__(
        self,
        scope: dict[str, Any],
        receive: Any,
        send: Any,
        *,
        prefix: bytes,
        complete: bool,
        limit: int | None,
        extra_headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        loop = asyncio.get_running_loop()
        self._scope = scope
        self._receive = receive
        self._send = send
        self._incoming = asyncio.Event()  # room for more request body, or a change
        self._outgoing = asyncio.Event()  # the guest handed something over

        def woken() -> None:
            if not self._tasks:
                self.start()
            self._incoming.set()
            self._outgoing.set()

        def wake() -> None:
            loop.call_soon_threadsafe(woken)

        self.exchange = Exchange(prefix, limit=limit, wake=wake, complete=complete)
        self._with_trailers = trailers_supported(scope)
        self._extra_headers = extra_headers or []
        self._tasks: list[asyncio.Task[None]] = []
        self.body_complete = complete  # the whole request body arrived
        self.too_large = False  # it grew past the route's max_request_body
        self.client_gone = False
        self.ended = False  # the response went out whole
        self.sent = 0  # response body bytes sent

    def start(self) -> None:
        if self._tasks:
            return
        self._tasks = [
            asyncio.ensure_future(self._feed()),
            asyncio.ensure_future(self._deliver()),
        ]

    async def finish(self) -> None:
        """Wait for the response the guest finished to go out (the guest is done)."""
        self.start()
        self._outgoing.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self._tasks[1]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _feed(self) -> None:
        exchange = self.exchange
        while not self.body_complete:
            if not exchange.room():
                if exchange.failure is not None:
                    return
                await self._incoming.wait()
                self._incoming.clear()
                continue
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.client_gone = True
                exchange.fail(CLIENT_GONE)
                return
            chunk = message.get("body", b"")
            if chunk and not exchange.feed(chunk):
                self.too_large = True
                return
            if not message.get("more_body", False):
                self.body_complete = True
                exchange.end(allowed_trailers(self._scope.get(REQUEST_TRAILERS_KEY)))
        # The body is in (a request read before the relay started still has its last message
        # to take): listen for the client hanging up during the response.
        while (await self._receive())["type"] != "http.disconnect":
            pass
        if not self.ended:
            self.client_gone = True
            exchange.fail(CLIENT_GONE)

    async def _deliver(self) -> None:
        exchange = self.exchange
        send = self._send
        trailing = False
        while True:
            await self._outgoing.wait()
            self._outgoing.clear()
            for kind, value in exchange.take_events():
                if kind == "head":
                    head: Head = value  # type: ignore[assignment]
                    status, headers = head
                    chunked = not any(n == b"content-length" for n, _ in headers)
                    trailing = chunked and self._with_trailers
                    start: dict[str, Any] = {
                        "type": "http.response.start",
                        "status": status,
                        "headers": [*headers, *self._extra_headers],
                    }
                    if trailing:
                        start["trailers"] = True
                    await send(start)
                elif kind == "data":
                    data: bytes = value  # type: ignore[assignment]
                    await send({"type": "http.response.body", "body": data, "more_body": True})
                    self.sent += len(data)
                    exchange.sent_bytes(len(data))
                else:  # "end"
                    if trailing:
                        await end_with_trailers(self._scope, send, allowed_trailers(value))
                    else:
                        await send({"type": "http.response.body", "body": b"", "more_body": False})
                    self.ended = True
                    return
