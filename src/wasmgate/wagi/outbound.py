"""The ``wasi_experimental_http`` host module: outbound HTTP for WAGI guests.

This is the ABI WAGI 0.8 guests import (guest crate ``wasi-experimental-http`` 0.7-0.10). The
rules below are the contract; each one is enforced by one small function in this module, in
``outbound_url`` (URLs and the allow-list) or in ``outbound_client`` (the HTTP exchange).

ABI
- Five functions under the import module ``wasi_experimental_http``; every parameter is an
  ``i32`` read as unsigned 32-bit, every function returns one ``i32`` error code (``HttpError``;
  0 is success, no other codes are ever returned)::

    req(url_ptr, url_len, method_ptr, method_len, headers_ptr, headers_len,
        body_ptr, body_len, status_out_ptr, handle_out_ptr)
    close(handle)
    header_get(handle, name_ptr, name_len, value_ptr, value_len, written_out_ptr)
    headers_get_all(handle, buf_ptr, buf_len, written_out_ptr)
    body_read(handle, buf_ptr, buf_len, written_out_ptr)

- Integers in guest memory are little-endian: the status is a u16 (exactly 2 bytes are written),
  handles and byte counts are u32.
- Every function but ``close`` first needs the caller's export named ``memory`` (2 if it is
  missing or not a memory). A range the host *reads* that ends past the memory or past 2**32 is
  4 (buffer too small); a range the host *writes* that ends past the memory is 3 (memory access
  error). A zero-length input at any pointer up to the memory size is an empty input.
- Strings from the guest (URL, method, header text, header name) must be UTF-8 (6).

Request (``req``), checks in this order, each one short-circuiting, all before any network I/O:
memory (2); open-handle limit (13); URL read (4), decoded (6), parsed as an absolute URL with a
host (10); allow-list (7, or 10 for an unparsable entry); method read (4), decoded (6), a
non-empty token sent exactly as given, case included (8); body read (4); header text read (4),
decoded (6), parsed (9). Then the exchange (11 for any transport failure, 7 for a redirect to a
host not allowed), the status write (3), handle allocation and the handle write (3). On an error
nothing is written, except that a failed handle write follows the status write; the handle is then
released at once (the original host leaked it).

Request header text: ``name:value`` lines separated by ``\\n`` (a trailing ``\\r`` on a line is
removed, the final newline is optional, the empty string means no headers). The name is
everything before the first colon, untrimmed, and must be a token; it is lower-cased. The value is
everything after it, untrimmed, made of TAB and printable ASCII only. A line without a colon
(including an empty line between headers), a bad name or a bad value byte is 9. A repeated name
keeps its first position and its last value. Values therefore never carry CR, LF or NUL.

Responses and handles
- A response is fully buffered (status, headers in arrival order, body) under a u32 handle. The
  first handle is 0; a cursor starting at 0 advances past handles still open and stays on the one
  it hands out, so ``req, req, close 0, req`` yields 0, 1, 2 and ``req, close 0, req`` yields 0, 0.
- ``close`` always returns 0, for open, closed and never-issued handles alike (the Rust guest
  traps on anything else). The other functions return 1 for a handle that is not open.
- ``header_get`` looks the name up ASCII-case-insensitively (a name that is no header name is just
  absent: 5), takes the first value, and returns 4 without writing anything when the value is
  longer than the buffer; otherwise it writes the raw value bytes, then their count.
- ``headers_get_all`` renders one ``name:value\\n`` line per value, grouped by name at the name's
  first occurrence, names lower-case; 12 if any value is not UTF-8 or holds a control character
  (TAB included); 4, writing nothing, if the text is longer than the buffer.
- ``body_read`` copies ``min(buf_len, remaining)`` bytes, advances the read position (not if the
  copy failed), then writes the count; at the end of the body it keeps succeeding with 0.
  Reading headers and the body never consumes the handle.

Policy (``OutboundPolicy``, one per route) and sessions (``OutboundSession``, one per guest run)
- ``allowed_hosts`` absent or empty: no request is ever sent (7). Matching rules: ``outbound_url``.
- ``max_concurrency`` (WAGI's ``http_max_concurrency``) caps the handles a session holds open at
  once, not parallel I/O (``req`` is synchronous): a ``req`` made while that many are open is 13
  and sends nothing. 0 therefore means no requests; ``None`` means no cap.
- Each request has a wall-clock ``timeout`` covering every redirect hop and the whole body, and a
  cap on the response body (``max_response_body``); exceeding either is 11.
- Redirects are followed (up to ``max_redirects``, then 11) and every hop is checked against the
  allow-list before it is sent; with ``follow_redirects=False`` the 3xx response is returned.
- Host functions are defined once per ``wasmtime.Linker`` by ``define_outbound_http``; they find
  the session of the current guest run through a ``ContextVar`` set by ``outbound_session`` (wasm
  calls run on the calling thread). Without an active session a guest is treated as having no
  ``allowed_hosts``: ``req`` is 7, handle lookups are 1, ``close`` is 0. Leaving
  ``outbound_session`` frees every handle the guest left open; a closed session refuses new
  requests with 12.
- No Python exception ever reaches the engine: an unexpected failure inside a host function is
  logged and returned as 12 (runtime error) instead of becoming a trap.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import math
import struct
import threading
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

import wasmtime

from ..errors import ConfigError
from .outbound_client import (
    DestinationDenied,
    OutboundRequest,
    OutboundResponse,
    TransportError,
    is_token,
    send,
)
from .outbound_url import AllowList, InvalidUrl, ParsedUrl, Verdict, parse_url

__all__ = [
    "IMPORT_MODULE",
    "HttpError",
    "OutboundPolicy",
    "OutboundSession",
    "current_session",
    "define_outbound_http",
    "outbound_session",
]

IMPORT_MODULE = "wasi_experimental_http"

_log = logging.getLogger(__name__)
_U32 = 0xFFFFFFFF
_DEFAULT_MAX_BODY = 16 * 1024 * 1024


class HttpError(enum.IntEnum):
    """The ABI's error codes (the witx ``http_error`` enum)."""

    SUCCESS = 0
    INVALID_HANDLE = 1
    MEMORY_NOT_FOUND = 2
    MEMORY_ACCESS_ERROR = 3
    BUFFER_TOO_SMALL = 4
    HEADER_NOT_FOUND = 5
    UTF8_ERROR = 6
    DESTINATION_NOT_ALLOWED = 7
    INVALID_METHOD = 8
    INVALID_ENCODING = 9
    INVALID_URL = 10
    REQUEST_ERROR = 11
    RUNTIME_ERROR = 12
    TOO_MANY_SESSIONS = 13


class _Fault(Exception):
    """Ends a host call early with an error code."""

    def __init__(self, code: HttpError, detail: str) -> None:
        super().__init__(detail)
        self.code = code


@dataclass(frozen=True)
class OutboundPolicy:
    """What one route's guests may do: the parsed ``allowed_hosts`` and request limits."""

    allowed_hosts: tuple[str, ...] | None = None
    max_concurrency: int | None = None
    timeout: float = 30.0
    max_response_body: int = _DEFAULT_MAX_BODY
    follow_redirects: bool = True
    max_redirects: int = 10
    _allow: AllowList = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        hosts: object = self.allowed_hosts
        if hosts is not None:
            if isinstance(hosts, str) or not isinstance(hosts, tuple | list):
                raise ConfigError("allowed_hosts must be a list of strings")
            if not all(isinstance(entry, str) for entry in hosts):
                raise ConfigError("allowed_hosts must be a list of strings")
            object.__setattr__(self, "allowed_hosts", tuple(hosts))
        _require_count("http_max_concurrency", self.max_concurrency, allow_none=True)
        _require_count("max_response_body", self.max_response_body, allow_none=False)
        _require_count("max_redirects", self.max_redirects, allow_none=False)
        if not (isinstance(self.timeout, int | float) and math.isfinite(self.timeout)):
            raise ConfigError("outbound HTTP timeout must be a number of seconds")
        if self.timeout <= 0:
            raise ConfigError("outbound HTTP timeout must be positive")
        object.__setattr__(self, "_allow", AllowList(self.allowed_hosts))

    def check_url(self, url: str) -> HttpError:
        """What ``req`` would answer for ``url`` at the allow-list step: 0, 7 or 10."""
        try:
            _authorize(self, url)
        except _Fault as fault:
            return fault.code
        return HttpError.SUCCESS


def _require_count(name: str, value: object, *, allow_none: bool) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{name} must be a non-negative integer, not {value!r}")


def _authorize(policy: OutboundPolicy, text: str) -> ParsedUrl:
    try:
        url = parse_url(text)
    except InvalidUrl as exc:
        raise _Fault(HttpError.INVALID_URL, str(exc)) from exc
    verdict = policy._allow.verdict(url)
    if verdict is Verdict.INVALID_ENTRY:
        raise _Fault(HttpError.INVALID_URL, "an allowed_hosts entry is not a URL with a host")
    if verdict is Verdict.DENIED:
        raise _Fault(HttpError.DESTINATION_NOT_ALLOWED, f"host {url.host} is not allowed")
    return url


class _OpenResponse:
    """A buffered response behind a handle, with its body read position."""

    __slots__ = ("body", "headers", "position")

    def __init__(self, response: OutboundResponse) -> None:
        self.headers: dict[str, list[bytes]] = {}
        for name, value in response.headers:
            self.headers.setdefault(name, []).append(value)
        self.body = response.body
        self.position = 0


class OutboundSession:
    """The outbound-HTTP state of one guest run: its policy and its open response handles."""

    def __init__(self, policy: OutboundPolicy) -> None:
        self._policy = policy
        self._lock = threading.Lock()
        self._open: dict[int, _OpenResponse] = {}
        self._cursor = 0
        self._requests_sent = 0
        self._closed = False

    @property
    def policy(self) -> OutboundPolicy:
        return self._policy

    @property
    def open_handles(self) -> tuple[int, ...]:
        """The handles the guest has not closed yet, in ascending order."""
        with self._lock:
            return tuple(sorted(self._open))

    @property
    def requests_sent(self) -> int:
        """How many ``req`` calls passed validation and reached the network."""
        return self._requests_sent

    @property
    def closed(self) -> bool:
        return self._closed

    def close_all(self) -> None:
        """Free every open response and refuse further requests (idempotent)."""
        with self._lock:
            self._closed = True
            self._open.clear()

    def _check_capacity(self) -> None:
        with self._lock:
            self._check_capacity_locked()

    def _check_capacity_locked(self) -> None:
        if self._closed:
            raise _Fault(HttpError.RUNTIME_ERROR, "the outbound HTTP session has ended")
        limit = self._policy.max_concurrency
        if limit is not None and len(self._open) >= limit:
            raise _Fault(HttpError.TOO_MANY_SESSIONS, f"{limit} response handles already open")

    def _perform(self, request: OutboundRequest) -> OutboundResponse:
        policy = self._policy
        with self._lock:
            self._requests_sent += 1
        try:
            return send(
                request,
                allow=lambda url: policy._allow.verdict(url) is Verdict.ALLOWED,
                timeout=policy.timeout,
                max_body=policy.max_response_body,
                max_redirects=policy.max_redirects if policy.follow_redirects else None,
            )
        except DestinationDenied as exc:
            raise _Fault(HttpError.DESTINATION_NOT_ALLOWED, str(exc)) from exc
        except TransportError as exc:
            raise _Fault(HttpError.REQUEST_ERROR, str(exc)) from exc

    def _store(self, response: OutboundResponse) -> int:
        with self._lock:
            self._check_capacity_locked()
            handle = self._next_free_handle()
            self._open[handle] = _OpenResponse(response)
            return handle

    def _next_free_handle(self) -> int:
        start = handle = self._cursor
        while handle in self._open:
            handle = (handle + 1) & _U32
            if handle == start:
                raise _Fault(HttpError.TOO_MANY_SESSIONS, "no free response handle")
        self._cursor = handle
        return handle

    def _get(self, handle: int) -> _OpenResponse:
        with self._lock:
            response = self._open.get(handle)
        if response is None:
            raise _Fault(HttpError.INVALID_HANDLE, f"handle {handle} is not open")
        return response

    def _discard(self, handle: int) -> None:
        with self._lock:
            self._open.pop(handle, None)


_SESSION: ContextVar[OutboundSession | None] = ContextVar("wasmgate_outbound_session", default=None)
_DETACHED = OutboundSession(OutboundPolicy(allowed_hosts=None))


def current_session() -> OutboundSession | None:
    """The session active in this context, if any."""
    return _SESSION.get()


@contextlib.contextmanager
def outbound_session(policy: OutboundPolicy) -> Iterator[OutboundSession]:
    """Activate a fresh session for one guest run; on exit, free everything it left open."""
    session = OutboundSession(policy)
    token = _SESSION.set(session)
    try:
        yield session
    finally:
        _SESSION.reset(token)
        session.close_all()


class _GuestMemory:
    """Bounds-checked access to the calling instance's ``memory`` export."""

    def __init__(self, caller: wasmtime.Caller) -> None:
        memory = caller.get("memory")
        if not isinstance(memory, wasmtime.Memory):
            raise _Fault(HttpError.MEMORY_NOT_FOUND, "the guest exports no memory named 'memory'")
        self._caller = caller
        self._memory = memory

    def _size(self) -> int:
        return int(self._memory.data_len(self._caller))

    def read(self, ptr: int, length: int) -> bytes:
        end = ptr + length
        if end > _U32 or end > self._size():
            raise _Fault(HttpError.BUFFER_TOO_SMALL, f"input {ptr}+{length} is outside memory")
        return bytes(self._memory.read(self._caller, ptr, end))

    def read_text(self, ptr: int, length: int) -> str:
        try:
            return self.read(ptr, length).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Fault(HttpError.UTF8_ERROR, "guest string is not UTF-8") from exc

    def write(self, ptr: int, data: bytes) -> None:
        if ptr + len(data) > self._size():
            raise _Fault(
                HttpError.MEMORY_ACCESS_ERROR, f"output {ptr}+{len(data)} is outside memory"
            )
        if data:
            self._memory.write(self._caller, data, ptr)

    def write_u32(self, ptr: int, value: int) -> None:
        self.write(ptr, struct.pack("<I", value))


def _parse_method(text: str) -> str:
    if not is_token(text):
        raise _Fault(HttpError.INVALID_METHOD, "method is not an HTTP token")
    return text


def _header_lines(text: str) -> list[str]:
    if not text:
        return []
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def _parse_request_headers(text: str) -> tuple[tuple[str, str], ...]:
    headers: dict[str, str] = {}
    for line in _header_lines(text):
        name, colon, value = line.partition(":")
        if not colon or not is_token(name):
            raise _Fault(HttpError.INVALID_ENCODING, "request header line has no valid name")
        if not all(ch == "\t" or " " <= ch <= "~" for ch in value):
            raise _Fault(HttpError.INVALID_ENCODING, "request header value has a bad character")
        headers[name.lower()] = value
    return tuple(headers.items())


def _is_control(ch: str) -> bool:
    return ch < " " or "\x7f" <= ch <= "\x9f"


def _render_headers(headers: dict[str, list[bytes]]) -> bytes:
    lines: list[str] = []
    for name, values in headers.items():
        for raw in values:
            try:
                value = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _Fault(HttpError.RUNTIME_ERROR, f"header {name} is not UTF-8") from exc
            if any(_is_control(ch) for ch in value):
                raise _Fault(HttpError.RUNTIME_ERROR, f"header {name} has a control character")
            lines.append(f"{name}:{value}\n")
    return "".join(lines).encode("utf-8")


def _req(
    caller: wasmtime.Caller,
    session: OutboundSession,
    url_ptr: int,
    url_len: int,
    method_ptr: int,
    method_len: int,
    headers_ptr: int,
    headers_len: int,
    body_ptr: int,
    body_len: int,
    status_ptr: int,
    handle_ptr: int,
) -> None:
    memory = _GuestMemory(caller)
    session._check_capacity()
    url = _authorize(session.policy, memory.read_text(url_ptr, url_len))
    method = _parse_method(memory.read_text(method_ptr, method_len))
    body = memory.read(body_ptr, body_len)
    headers = _parse_request_headers(memory.read_text(headers_ptr, headers_len))
    response = session._perform(OutboundRequest(method, url, headers, body))
    memory.write(status_ptr, struct.pack("<H", response.status))
    handle = session._store(response)
    try:
        memory.write_u32(handle_ptr, handle)
    except _Fault:
        session._discard(handle)
        raise


def _close(caller: wasmtime.Caller, session: OutboundSession, handle: int) -> None:
    session._discard(handle)


def _header_get(
    caller: wasmtime.Caller,
    session: OutboundSession,
    handle: int,
    name_ptr: int,
    name_len: int,
    value_ptr: int,
    value_len: int,
    written_ptr: int,
) -> None:
    memory = _GuestMemory(caller)
    response = session._get(handle)
    name = memory.read_text(name_ptr, name_len)
    values = response.headers.get(_ascii_lower(name))
    if not values:
        raise _Fault(HttpError.HEADER_NOT_FOUND, f"no response header {name!r}")
    if len(values[0]) > value_len:
        raise _Fault(HttpError.BUFFER_TOO_SMALL, f"header {name!r} does not fit the buffer")
    memory.write(value_ptr, values[0])
    memory.write_u32(written_ptr, len(values[0]))


def _ascii_lower(text: str) -> str:
    return "".join(ch.lower() if ch.isascii() else ch for ch in text)


def _headers_get_all(
    caller: wasmtime.Caller,
    session: OutboundSession,
    handle: int,
    buf_ptr: int,
    buf_len: int,
    written_ptr: int,
) -> None:
    memory = _GuestMemory(caller)
    text = _render_headers(session._get(handle).headers)
    if len(text) > buf_len:
        raise _Fault(HttpError.BUFFER_TOO_SMALL, "headers do not fit the buffer")
    memory.write(buf_ptr, text)
    memory.write_u32(written_ptr, len(text))


def _body_read(
    caller: wasmtime.Caller,
    session: OutboundSession,
    handle: int,
    buf_ptr: int,
    buf_len: int,
    written_ptr: int,
) -> None:
    memory = _GuestMemory(caller)
    response = session._get(handle)
    chunk = response.body[response.position : response.position + buf_len]
    memory.write(buf_ptr, chunk)
    response.position += len(chunk)
    memory.write_u32(written_ptr, len(chunk))


_HostImpl = Callable[..., None]
_FUNCTIONS: tuple[tuple[str, int, _HostImpl], ...] = (
    ("req", 10, _req),
    ("close", 1, _close),
    ("header_get", 6, _header_get),
    ("headers_get_all", 4, _headers_get_all),
    ("body_read", 4, _body_read),
)


def define_outbound_http(linker: wasmtime.Linker) -> None:
    """Define the five ``wasi_experimental_http`` functions on ``linker`` (once per linker)."""
    for name, arity, impl in _FUNCTIONS:
        i32 = wasmtime.ValType.i32()
        func_type = wasmtime.FuncType([i32] * arity, [i32])
        linker.define_func(IMPORT_MODULE, name, func_type, _guarded(name, impl), access_caller=True)


def _guarded(name: str, impl: _HostImpl) -> Callable[..., int]:
    """Wrap ``impl`` so that it returns an error code and never raises into the engine."""

    def host_function(caller: wasmtime.Caller, *args: int) -> int:
        try:
            active = _SESSION.get()
            session = active if active is not None else _DETACHED
            impl(caller, session, *(arg & _U32 for arg in args))
        except _Fault as fault:
            _log.debug("%s.%s: %d (%s)", IMPORT_MODULE, name, fault.code, fault)
            return int(fault.code)
        except Exception:
            _log.exception("%s.%s failed unexpectedly", IMPORT_MODULE, name)
            return int(HttpError.RUNTIME_ERROR)
        return int(HttpError.SUCCESS)

    host_function.__name__ = f"{IMPORT_MODULE}_{name}"
    return host_function
