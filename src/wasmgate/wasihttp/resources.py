"""The proxy world's resources as Python objects, and the per-run table that hands them out.

Rules:
- Every run has its own ``RequestState``: a served request (nothing survives it), or the whole
  life of an embedded component or a command (``session``). It holds a table of the resources the
  guest holds (``rep`` -> object), what the guest was granted, the request if any, and what the
  guest answered. Reps are never reused within one.
- A host call finds the state of the run on its thread (``current()``): a guest runs on one
  thread from instantiation to return, and host calls are synchronous. ``enter`` makes a state
  current and returns the one it replaces, which ``leave`` puts back (an embedded component's
  host function may call another component).
- Waits end by the deadline of the guest on this thread (``engine.deadline``: the request's, or
  the embedded call's): one cut short raises ``DeadlineReached``, a trap of the guest, and the
  run is a timeout (``cut_off``).
- An ``own`` handle the guest passes to the host leaves the table (the host now owns it); a
  ``borrow`` stays. A resource the guest drops runs its ``dropped`` hook: dropping an
  ``outgoing-body`` without ``finish`` marks the response incomplete, as the spec says.
- Output streams have a byte budget: a response body past ``max_response_body`` or a log past
  ``log_keep`` fails the write with ``closed`` (the body case is also recorded, for a 502).
- Bodies are buffered unless the request has an ``exchange`` (``streaming.Exchange``, given by
  a server that streams): then the request body is read from it as it arrives, and the response
  is handed to it when the guest is about to wait (``before_wait``) or has written ``WINDOW``
  bytes (see ``streaming`` for the rules). Without one, the request body is all there before
  the guest runs and the response is taken when it returns; a request then has no trailers.
- A guest cannot make the host hold unbounded memory: at most ``MAX_HANDLES`` live resources
  and ``FIELDS_BUDGET`` bytes of header fields (names and values, counted as they are made) per
  request; past either the guest traps. Bodies and logs have their own caps (above).
- A misuse the spec calls a trap (a second ``body()`` on a request is not one: it is an error
  value) raises ``GuestMisuse``, which the host turns into a trap of the guest.
- ``outcome`` says what a trap that a host call raised stands for (an exit, a misuse, a host
  bug); the engine entry asks it before classifying a trap itself.
"""

from __future__ import annotations

import os
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..engine.deadline import cut_off, host_deadline, mark_cut_off, time_left, wait_until
from ..engine.outcome import Outcome
from .streaming import TOO_LARGE, WINDOW, Exchange
from .translate import HttpRequest

__all__ = [
    "CLOSED",
    "DeadlineReached",
    "ExitRequested",
    "FdInputStream",
    "Fields",
    "FutureIncomingResponse",
    "FutureTrailers",
    "GuestMisuse",
    "IncomingBody",
    "IncomingRequest",
    "IncomingResponse",
    "InputStream",
    "IoError",
    "OutgoingBody",
    "OutgoingRequest",
    "OutgoingResponse",
    "OutputStream",
    "Pollable",
    "RequestOptions",
    "RequestState",
    "Resource",
    "ResponseOutparam",
    "current",
]

CLOSED = ("err", ("closed", None))
# wasmtime-py 50 cannot call a host function written in Python with more than one borrowed
# handle (Wasmtime fails while lifting the second, before the host is called): ``poll`` on
# several pollables, ``rename-at``, ``link-at``, ``is-same-object``, ``splice``. It reports an
# internal bug; the run reports what happened instead.
TWO_BORROWS_BUG = "deferred host scope has no call context"
TWO_BORROWS = (
    "host error: wasmtime-py 50 cannot pass more than one borrowed handle to a host function "
    "written in Python (wasmgate's WASI host: poll on several pollables, rename-at, link-at, "
    "is-same-object, splice)"
)
MAX_HANDLES = 10_000
FIELDS_BUDGET = 4 * 1024 * 1024
# Most bytes one read returns, and what check-write grants at a time. The binding's C API spells
# each byte of a ``list<u8>`` as a 32-byte value, and wasmtime builds as much again on its side:
# a 64 KiB chunk is megabytes of temporaries, which malloc maps and unmaps for each call (the
# server keeps its mmap threshold at 128 KiB, see ``gateway.protocol.limit_heap_retention``),
# paying a page fault per 4 KiB. 4 KiB chunks stay on the heap: a 64 KiB echo 2.2x and a 1 MiB
# echo 2.4x faster than with 64 KiB ones, the hello untouched (measured in process, with the
# server's malloc setting). Guests loop over reads and permits by the spec; 4096 is also the
# most ``blocking-write-and-flush`` is meant to take.
READ_CHUNK = 4096


class GuestMisuse(Exception):
    """A call the spec makes a trap (the guest is stopped with this message)."""


class ExitRequested(Exception):
    """The guest called ``wasi:cli/exit``."""

    def __init__(self, code: int) -> None:
        super().__init__(f"guest exited with status {code}")
        self.code = code


class DeadlineReached(Exception):
    """A host wait reached the guest's deadline: the run is stopped and timed out."""

    def __init__(self) -> None:
        super().__init__("deadline reached in a host call")


class Resource:
    """Base of every host resource: ``TYPE`` is its host resource type id (unique per kind)."""

    TYPE: ClassVar[int] = 0

    def dropped(self, state: RequestState) -> None:
        """The guest dropped its handle."""


_local = threading.local()


def current() -> RequestState:
    state: RequestState | None = getattr(_local, "state", None)
    if state is None:
        raise GuestMisuse("WASI host called outside a guest run")
    return state


Sink = Callable[[bytes], bool]  # an output stream's writer: False means no room (closed)


@dataclass(eq=False, slots=True)
class RequestState:
    """One run's resources and outcome (a request, or an embedded component's life)."""

    request: HttpRequest | None = None  # None: not an HTTP handler's run
    environment: list[tuple[str, str]] = field(default_factory=list)
    arguments: tuple[str, ...] = ()
    stdin: InputStream | None = None  # None: empty
    stdout: Sink | None = None  # None: the guest log (``log``)
    stderr: Sink | None = None
    max_response_body: int | None = None  # None: no limit
    log_keep: int = 16 * 1024
    table: dict[int, Any] = field(default_factory=dict)
    next_rep: int = 1
    response: tuple[str, Any] | None = None  # ("ok", OutgoingResponse) or ("err", error-code)
    response_set: bool = False
    outparam_dropped: bool = False
    body_overflow: bool = False
    log: bytearray = field(default_factory=bytearray)
    log_total: int = 0
    failure: BaseException | None = None  # a host-side exception that became a trap
    outbound: Any = None  # the route's wagi.outbound.OutboundPolicy, or None (all denied)
    outbound_open: int = 0  # outgoing requests whose future the guest still holds
    fields_bytes: int = 0  # header-field bytes made so far (see FIELDS_BUDGET)
    volumes: tuple[Any, ...] = ()  # capabilities.DirGrant: the granted folders (wasi:filesystem)
    grants: Any = None  # state.grants.RouteState: stores and variables (None: none granted)
    files: list[Any] = field(default_factory=list)  # files.Descriptor open in this run
    closers: tuple[Callable[[], None], ...] = ()  # at ``close``: stdio files the run opened
    exchange: Exchange | None = None  # the streamed bodies, if the server streams this request

    def add(self, obj: Any) -> int:
        if len(self.table) >= MAX_HANDLES:
            raise GuestMisuse(f"more than {MAX_HANDLES} live resources in one request")
        rep = self.next_rep
        self.next_rep = rep + 1
        self.table[rep] = obj
        return rep

    def charge_fields(self, entries: list[tuple[str, bytes]]) -> None:
        """Count header fields the guest makes the host hold (``GuestMisuse`` past the budget)."""
        self.fields_bytes += sum(len(n) + len(v) for n, v in entries)
        if self.fields_bytes > FIELDS_BUDGET:
            raise GuestMisuse(f"more than {FIELDS_BUDGET} bytes of header fields in one request")

    def close(self) -> None:
        """End of the run: close every file still open, dropped by the guest or not."""
        for desc in self.files:
            desc.close()
        self.files.clear()
        self.table.clear()
        if self.closers:
            closers, self.closers = self.closers, ()
            for close in closers:
                close()

    def enter(self) -> RequestState | None:
        """Make this the state of the guest running on this thread; returns the one it
        replaces. The header-field budget is per entry (a request, or an embedded call)."""
        previous: RequestState | None = getattr(_local, "state", None)
        _local.state = self
        self.fields_bytes = 0
        return previous

    def leave(self, previous: RequestState | None = None) -> None:
        _local.state = previous

    def outcome(self, err: BaseException) -> Outcome | None:
        """What the failure ``err`` of this run stands for when a host call raised it (then it
        is taken: the next call starts clean), or when the binding could not call the host
        (``TWO_BORROWS``); None: a trap of the engine's own, or a deadline (the engine entry
        tells timeouts by ``cut_off``)."""
        failure, self.failure = self.failure, None
        if failure is None and TWO_BORROWS_BUG in str(err):
            return Outcome("error", message=TWO_BORROWS)
        if failure is None or isinstance(failure, DeadlineReached):
            return None
        if isinstance(failure, ExitRequested):
            if failure.code == 0:
                return Outcome("ok")
            return Outcome("exit", exit_code=failure.code, message=str(failure))
        if isinstance(failure, GuestMisuse):
            return Outcome("trap", message=f"guest trapped: {failure}", trap_kind="host")
        return Outcome("error", message=f"host error: {type(failure).__name__}: {failure}")

    def write_log(self, data: bytes) -> None:
        self.log_total += len(data)
        room = self.log_keep - len(self.log)
        if room > 0:
            self.log += data[:room]

    @property
    def deadline(self) -> float | None:
        """When host waits must end (``time.monotonic()``): the guest's deadline on this thread
        (the request's, or the embedded call's)."""
        return host_deadline()

    @property
    def cut_off(self) -> bool:
        """Whether a host wait ended at the deadline: then the run timed out."""
        return cut_off()

    @cut_off.setter
    def cut_off(self, value: bool) -> None:
        if value:
            mark_cut_off()

    def wait_until(self, when: float) -> None:
        """Sleep until ``when`` (monotonic seconds) or the guest's deadline, whichever is first:
        a guest blocked in a host call cannot be interrupted, so the wait is bounded. Reaching
        the deadline stops the guest (``DeadlineReached``)."""
        self.before_wait()
        if not wait_until(when):
            raise DeadlineReached

    def wait_readable(self, fds: list[int], when: float | None) -> None:
        """Wait until one of ``fds`` can be read, or ``when`` (None: no time of its own), or
        the guest's deadline (``DeadlineReached``)."""
        self.before_wait()
        left = time_left()
        delay = None if when is None else max(0.0, when - time.monotonic())
        cut = left is not None and (delay is None or left <= delay)
        if cut:
            delay = left
        readable, _, _ = select.select(fds, [], [], delay)
        if cut and not readable:
            mark_cut_off()
            raise DeadlineReached

    def wait_change(self, when: float | None) -> None:
        """Wait until ``when`` (None: no timer), the deadline, or a change of the streamed
        bodies (data in, room out, the client gone), whichever is first."""
        exchange = self.exchange
        if exchange is None:
            if when is not None:
                self.wait_until(when)
            return
        self.before_wait()
        until = when
        if self.deadline is not None and (until is None or self.deadline <= until):
            until = self.deadline
            if not exchange.wait_change(until):
                self.cut_off = True
                raise DeadlineReached
            return
        exchange.wait_change(until)

    def before_wait(self) -> None:
        """The guest is about to wait: what it answered so far goes out now (see the rules)."""
        exchange = self.exchange
        if exchange is None or exchange.closed or self.response is None:
            return
        kind, resp = self.response
        if kind != "ok" or resp.body is None:
            return
        resp.body.release(self, exchange, resp)


# --- wasi:io ---------------------------------------------------------------------------------


class IoError(Resource):
    TYPE = 101

    def __init__(self, message: str, code: tuple[str, Any] | None = None) -> None:
        self.message = message
        self.code = code


class Pollable(Resource):
    """Ready now, at a monotonic instant (nanoseconds of ``time.monotonic_ns``), when a file
    descriptor can be read (``fd``: stdin inherited from the host), or when ``check()`` says so
    (a streamed body's readiness: see ``RequestState.wait_change``)."""

    TYPE = 102

    def __init__(
        self,
        at_ns: int | None = None,
        fd: int | None = None,
        check: Callable[[], bool] | None = None,
    ) -> None:
        self.at_ns = at_ns
        self.fd = fd
        self.check = check

    def ready(self) -> bool:
        if self.check is not None:
            return self.check()
        if self.fd is not None:
            return _readable(self.fd)
        return self.at_ns is None or time.monotonic_ns() >= self.at_ns


def _readable(fd: int) -> bool:
    try:
        return bool(select.select([fd], [], [], 0)[0])
    except (OSError, ValueError):
        return True  # a read will report the problem


class InputStream(Resource):
    TYPE = 103

    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.pos = 0

    def read(self, n: int) -> tuple[str, Any]:
        if self.pos >= len(self.data):
            return CLOSED
        end = self.pos + min(n, READ_CHUNK)
        chunk = bytes(self.data[self.pos : end])
        self.pos += len(chunk)
        return ("ok", chunk)

    def skip(self, n: int) -> tuple[str, Any]:
        if self.pos >= len(self.data):
            return CLOSED
        taken = min(n, len(self.data) - self.pos)
        self.pos += taken
        return ("ok", taken)

    def blocking_read(self, n: int) -> tuple[str, Any]:
        return self.read(n)

    def pollable(self) -> Pollable:
        return Pollable()


class StreamedInput(InputStream):
    """A request body read from the ``Exchange`` as it arrives."""

    def __init__(self, state: RequestState, exchange: Exchange) -> None:
        super().__init__(b"")
        self.state = state
        self.exchange = exchange

    def read(self, n: int) -> tuple[str, Any]:
        return self._take(n, block=False)

    def blocking_read(self, n: int) -> tuple[str, Any]:
        return self._take(n, block=True)

    def _take(self, n: int, block: bool) -> tuple[str, Any]:
        state = self.state
        if block and not self.exchange.readable():
            state.before_wait()
        chunk = self.exchange.read(min(n, READ_CHUNK), block, state.deadline)
        if chunk is None:
            failure = self.exchange.failure
            if failure is None:
                return CLOSED
            if failure == TOO_LARGE:
                code = ("HTTP-request-body-size", self.exchange.received)
                error = IoError("request body larger than max_request_body", code)
            else:
                error = IoError("the client closed the connection", ("HTTP-protocol-error", None))
            return ("err", ("last-operation-failed", error))
        if not chunk and block:  # the deadline came first
            state.cut_off = True
            raise DeadlineReached
        return ("ok", chunk)

    def skip(self, n: int) -> tuple[str, Any]:
        got = self.read(n)
        return ("ok", len(got[1])) if got[0] == "ok" else got

    def pollable(self) -> Pollable:
        return Pollable(check=self.exchange.readable)


class FdInputStream(InputStream):
    """Reads a host file descriptor (stdin inherited, or a file given as stdin); a blocking read
    waits at most until the guest's deadline."""

    def __init__(self, fd: int) -> None:
        super().__init__(b"")
        self.fd = fd
        self.eof = False

    def read(self, n: int) -> tuple[str, Any]:
        if self.eof:
            return CLOSED
        if n == 0 or not _readable(self.fd):
            return ("ok", b"")
        return self._read(n)

    def blocking_read(self, n: int) -> tuple[str, Any]:
        if self.eof:
            return CLOSED
        if n and not _readable(self.fd):
            current().wait_readable([self.fd], None)
        return self._read(n)

    def _read(self, n: int) -> tuple[str, Any]:
        try:
            chunk = os.read(self.fd, min(n, READ_CHUNK))
        except OSError as e:
            return ("err", ("last-operation-failed", IoError(str(e))))
        if not chunk and n:
            self.eof = True
            return CLOSED
        return ("ok", chunk)

    def skip(self, n: int) -> tuple[str, Any]:
        got = self.read(n)
        return got if got[0] == "err" else ("ok", len(got[1]))

    def pollable(self) -> Pollable:
        return Pollable(fd=None if self.eof else self.fd)


class OutputStream(Resource):
    """Writes to a sink: ``sink(data) -> bool`` (False: no room, the stream is closed)."""

    TYPE = 104
    PERMIT = READ_CHUNK  # what check-write grants at a time (see READ_CHUNK)

    def __init__(self, sink: Callable[[bytes], bool], owner: Any = None) -> None:
        self.sink = sink
        self.owner = owner
        self.closed = False

    def check_write(self) -> tuple[str, Any]:
        return CLOSED if self.closed else ("ok", self.PERMIT)

    def write(self, data: bytes) -> tuple[str, Any]:
        if self.closed:
            return CLOSED
        if not self.sink(data):
            self.closed = True
            return CLOSED
        return ("ok", None)

    def ready(self) -> bool:
        owner = self.owner
        return self.closed or not isinstance(owner, OutgoingBody) or owner.writable()


# --- wasi:http -------------------------------------------------------------------------------


class Fields(Resource):
    """Header or trailer fields: (lower-case name, value) pairs in order."""

    TYPE = 201

    def __init__(self, entries: list[tuple[str, bytes]] | None = None, mutable: bool = True):
        self.entries = entries if entries is not None else []
        self.mutable = mutable

    def get(self, name: str) -> list[bytes]:
        key = name.lower()
        return [v for n, v in self.entries if n == key]

    def copy(self, mutable: bool = True) -> Fields:
        return Fields(list(self.entries), mutable)

    def as_bytes(self) -> list[tuple[bytes, bytes]]:
        return [(n.encode(), v) for n, v in self.entries]


class IncomingBody(Resource):
    TYPE = 202

    def __init__(self, data: bytes, exchange: Exchange | None = None) -> None:
        self.data = data
        self.exchange = exchange  # the request's streamed body, if it streams
        self.stream_taken = False


class IncomingRequest(Resource):
    TYPE = 203

    def __init__(self, request: HttpRequest) -> None:
        self.request = request
        self.consumed = False


class FutureTrailers(Resource):
    TYPE = 204

    def __init__(self, exchange: Exchange | None = None) -> None:
        self.exchange = exchange  # trailers come from a streamed body's end, if it streams
        self.taken = False

    def ready(self) -> bool:
        exchange = self.exchange
        return exchange is None or exchange.body_ended or exchange.failure is not None


class OutgoingBody(Resource):
    TYPE = 205

    def __init__(self, state: RequestState, *, response: bool = True) -> None:
        self.chunks: list[bytes] = []  # written, not yet handed to a stream (or the answer)
        self.size = 0  # bytes written in all
        self.buffered = 0  # bytes in ``chunks``
        self.limit = state.max_response_body
        self.response = response  # False: an outgoing request's body (no 502 when over)
        self.stream_taken = False
        self.finished = False
        self.aborted = False  # dropped without finish
        self.trailers: Fields | None = None
        self.exchange: Exchange | None = None  # set once the response is being streamed
        self.declared: int | None = None  # the guest's content-length, when streamed with one
        self.bad_length = False  # a streamed body did not match its content-length

    def take(self, data: bytes) -> bool:
        if self.finished:
            return False
        if self.limit is not None and self.size + len(data) > self.limit:
            if self.response:
                current().body_overflow = True
            return False
        self.size += len(data)
        if self.exchange is not None:
            return self._send(current(), self.exchange, data)
        self.chunks.append(data)
        self.buffered += len(data)
        if self.buffered > WINDOW and self.response:
            current().before_wait()  # a long body streams (see the rules)
        return True

    def writable(self) -> bool:
        return self.exchange is None or self.exchange.writable()

    def release(self, state: RequestState, exchange: Exchange, resp: OutgoingResponse) -> None:
        """Hand the response head (once) and the bytes written so far to ``exchange``."""
        if self.exchange is None:
            headers = resp.headers.as_bytes()
            declared = [v for n, v in headers if n == b"content-length"]
            if declared:
                # The guest's own framing is kept when streamed, and held to; a malformed one
                # stays buffered, to be refused at the end as a buffered answer is.
                if len(declared) != 1 or not declared[0].strip().isdigit():
                    return
                self.declared = int(declared[0])
            exchange.start(resp.status, headers)
            self.exchange = exchange
        self._flush(state, exchange)

    def _flush(self, state: RequestState, exchange: Exchange) -> bool:
        chunks, self.chunks, self.buffered = self.chunks, [], 0
        return all(self._send(state, exchange, chunk) for chunk in chunks)

    def _send(self, state: RequestState, exchange: Exchange, data: bytes) -> bool:
        if self.declared is not None and exchange.sent + len(data) > self.declared:
            self.bad_length = True
            return False
        done = exchange.write(data, state.deadline)
        if done is None:  # the deadline came while waiting for the client to take more
            state.cut_off = True
            raise DeadlineReached
        return done

    def end(self, state: RequestState) -> None:
        """``finish`` of a streamed body: the rest goes out. The end itself (with the trailers)
        is sent by the handler once the run is judged a success: a guest cut off by its
        deadline that finishes its body afterwards must not look complete."""
        exchange = self.exchange
        if exchange is None or not self._flush(state, exchange):
            return
        if self.declared is not None and exchange.sent != self.declared:
            self.bad_length = True

    def dropped(self, state: RequestState) -> None:
        if not self.finished:
            self.aborted = True


class OutgoingResponse(Resource):
    TYPE = 206

    def __init__(self, headers: Fields) -> None:
        self.status = 200
        self.headers = headers
        headers.mutable = False
        self.body: OutgoingBody | None = None


class ResponseOutparam(Resource):
    TYPE = 207

    def dropped(self, state: RequestState) -> None:
        state.outparam_dropped = True


class OutgoingRequest(Resource):
    TYPE = 208

    def __init__(self, headers: Fields) -> None:
        self.method: tuple[str, Any] = ("get", None)
        self.path_with_query: str | None = None
        self.scheme: tuple[str, Any] | None = None
        self.authority: str | None = None
        self.headers = headers
        headers.mutable = False
        self.body: OutgoingBody | None = None


class RequestOptions(Resource):
    TYPE = 209

    def __init__(self) -> None:
        self.timeouts: dict[str, int | None] = {
            "connect": None,
            "first-byte": None,
            "between": None,
        }


class FutureIncomingResponse(Resource):
    """An outbound exchange, run the first time its result is asked for (``resolve``)."""

    TYPE = 210

    def __init__(self, run: Callable[[], tuple[str, Any]]) -> None:
        self._run: Callable[[], tuple[str, Any]] | None = run
        self.result: tuple[str, Any] | None = None
        self.taken = False

    def dropped(self, state: RequestState) -> None:
        state.outbound_open -= 1

    def resolve(self) -> tuple[str, Any]:
        if self.result is None:
            assert self._run is not None
            run, self._run = self._run, None
            self.result = run()
        return self.result


class IncomingResponse(Resource):
    TYPE = 211

    def __init__(self, status: int, headers: Fields, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.consumed = False


# --- wasi:sockets (only the capability token: every use of it is denied) ---------------------


class Network(Resource):
    TYPE = 301
