"""A request whose bodies stream: the request body read by the guest as it arrives, the response
sent while the guest writes it. The guest's thread and the server's event loop meet here.

Rules:
- Two threads, one lock: the guest's thread makes blocking calls here, each bounded by the
  request's deadline; the server's thread never blocks. The server is told that something
  changed through ``wake``, which must be safe to call from any thread (for example
  ``loop.call_soon_threadsafe(event.set)``); it then takes what is ready (``take_events``) and
  feeds what arrived (``feed``/``end``/``fail``).
- Bounded memory both ways. The request side holds at most ``window`` bytes the guest has not
  read; the server reads more from the client only while there is ``room()``, so a fast client
  is slowed to the guest's pace by TCP's own back-pressure instead of being buffered. The
  response side holds at most ``window`` bytes the server has not sent (plus the one write
  being made); a guest writing faster waits in its write until the server caught up.
- When the response goes out: the head and the body written so far are handed to the server
  (``release``) when the guest is about to wait (a timer, a poll, a read of body bytes not yet
  arrived, an outbound request), once ``window`` bytes are pending, and when it returns. A guest
  that answers at once is therefore sent as one buffered response with a ``content-length``
  (the fast path), and one that writes, then sleeps, is streamed (``transfer-encoding:
  chunked`` unless it set a ``content-length`` itself).
- Either side can end the exchange early. The client hanging up, or a body growing past the
  route's ``max_request_body``, fails the guest's next read with an error value (``failure``
  says which); the client hanging up also closes the response stream (the guest's next write
  fails with ``closed``). A wait that reaches the deadline returns and reports it (the caller
  marks the run cut off, so it ends as a timeout whatever the guest does next).
- Trailers: the client's request trailers are given to the guest once the body is complete
  (``future-trailers``); the guest's response trailers follow its body.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

__all__ = ["CLIENT_GONE", "TOO_LARGE", "WINDOW", "Exchange", "Head"]

WINDOW = 256 * 1024  # bytes in flight each way (see the rules)
CLIENT_GONE = "client-gone"
TOO_LARGE = "too-large"

Head = tuple[int, list[tuple[bytes, bytes]]]  # status, headers
Fields = list[tuple[bytes, bytes]]


class Exchange:
    """One streamed request: the body on its way in, the response on its way out."""

    def __init__(
        self,
        prefix: bytes,
        *,
        limit: int | None,
        wake: Callable[[], None],
        window: int = WINDOW,
        complete: bool = False,
    ) -> None:
        self.cond = threading.Condition(threading.Lock())
        self.window = window
        self.limit = limit  # max_request_body (None: no limit)
        self._wake = wake
        # request body: chunks not yet read, their size, the total received
        self._inbox: deque[bytes] = deque([prefix] if prefix else [])
        self._held = len(prefix)
        self.received = len(prefix)
        self.body_ended = complete
        self.failure: str | None = None  # CLIENT_GONE or TOO_LARGE: the body stopped short
        self.request_trailers: Fields = []
        self._discarding = False
        # response: events for the server, the bytes among them it has not sent yet
        self._events: list[tuple[str, object]] = []
        self._pending = 0
        self.started = False  # the head was handed to the server
        self.closed = False  # the client is gone: nothing more can be sent
        self.sent = 0  # body bytes handed to the server

    # --- the server's side (event loop: never blocks) -----------------------------------------

    def room(self) -> bool:
        """Whether the server may read more of the request body from the client now."""
        with self.cond:
            return not self.body_ended and self.failure is None and self._held < self.window

    def feed(self, chunk: bytes) -> bool:
        """Body bytes from the client; False once they pass ``limit`` (the body fails)."""
        with self.cond:
            self.received += len(chunk)
            if self.limit is not None and self.received > self.limit:
                self.failure = TOO_LARGE
                self.cond.notify_all()
                return False
            if not self._discarding:
                self._inbox.append(chunk)
                self._held += len(chunk)
            self.cond.notify_all()
            return True

    def end(self, trailers: Fields | None = None) -> None:
        """The request body is complete."""
        with self.cond:
            self.body_ended = True
            self.request_trailers = list(trailers or ())
            self.cond.notify_all()

    def fail(self, why: str) -> None:
        """The request body will not complete (``CLIENT_GONE``); a response still being sent
        has nowhere to go either."""
        with self.cond:
            if self.failure is None and not self.body_ended:
                self.failure = why
            if why == CLIENT_GONE:
                self.closed = True
                self._events.clear()
                self._pending = 0
            self.cond.notify_all()

    def take_events(self) -> list[tuple[str, object]]:
        """What the guest handed over since the last call, in order: ("head", Head),
        ("data", bytes), ("end", trailers)."""
        with self.cond:
            events, self._events = self._events, []
            return events

    def sent_bytes(self, n: int) -> None:
        """The server has written ``n`` body bytes out: room for the guest to write more."""
        with self.cond:
            self._pending -= n
            self.cond.notify_all()

    # --- the guest's side (its thread: may block until ``deadline``) ---------------------------

    def read(self, n: int, block: bool, deadline: float | None) -> bytes | None:
        """Up to ``n`` body bytes; ``b""`` if none are there yet and ``block`` is false, or the
        deadline came first (``timed_out`` then says so); None at the end of the body or when it
        failed (``failure``)."""
        with self.cond:
            while not self._inbox:
                if self.body_ended or self.failure is not None:
                    return None
                if not block or not self._wait(deadline):
                    return b""
            chunk = self._inbox[0]
            if len(chunk) > n:
                self._inbox[0] = chunk[n:]
                chunk = chunk[:n]
            else:
                self._inbox.popleft()
            full = self._held >= self.window
            self._held -= len(chunk)
            # The server stops reading only while there is no room: tell it when this read made
            # some (a wake per read is a cross-thread call, and there are many small reads).
            made_room = full and self._held < self.window and not self.body_ended
        if made_room:
            self._wake()
        return chunk

    def discard(self) -> None:
        """The guest is done with the body (``incoming-body.finish``): the rest is dropped as it
        arrives, so its trailers can still come."""
        with self.cond:
            self._discarding = True
            self._inbox.clear()
            self._held = 0
        self._wake()

    def readable(self) -> bool:
        with self.cond:
            return bool(self._inbox) or self.body_ended or self.failure is not None

    def start(self, status: int, headers: Fields) -> None:
        with self.cond:
            if self.started or self.closed:
                return
            self.started = True
            self._events.append(("head", (status, headers)))
        self._wake()

    def write(self, data: bytes, deadline: float | None) -> bool | None:
        """Send ``data`` as body bytes: True once handed over, False if the client is gone,
        None if the deadline came while waiting for room."""
        with self.cond:
            if self.closed:
                return False
            self._events.append(("data", data))
            self._pending += len(data)
            self.sent += len(data)
            self._wake()
            while self._pending > self.window:
                if not self._wait(deadline):
                    return None
                if self._gone():
                    return False
            return True

    def _gone(self) -> bool:
        return self.closed

    def writable(self) -> bool:
        with self.cond:
            return self.closed or self._pending <= self.window

    def finish(self, trailers: Fields) -> None:
        with self.cond:
            if self.closed:
                return
            self._events.append(("end", trailers))
        self._wake()

    def wait_change(self, until: float | None) -> bool:
        """Wait for any change (or ``until``, monotonic seconds); False if ``until`` passed."""
        with self.cond:
            return self._wait(until)

    def _wait(self, until: float | None) -> bool:
        if until is None:
            self.cond.wait()
            return True
        left = until - time.monotonic()
        if left <= 0:
            return False
        self.cond.wait(left)
        return time.monotonic() < until
