"""What each proxy-world function does, by interface and component-model function name.

Every implementation is ``fn(state, *args) -> result`` on the shapes of the value codecs (see
``translate``). Interfaces are keyed without their version: any ``@0.2.x`` a guest imports gets
the same functions (the 0.2 line only adds functions).

What each interface grants (the README lists the same):
- ``wasi:http/types``: the request the guest is serving and the response it builds.
- ``wasi:http/outgoing-handler``: requests to the route's ``allowed_hosts`` (see ``outbound``);
  with none, every request is ``error-code.HTTP-request-denied``.
- ``wasi:io/*``: streams over the request body, the response body and the logs; pollables.
- ``wasi:clocks/*``: the host's clocks (monotonic in nanoseconds, wall clock UTC).
- ``wasi:random/*``: the OS's CSPRNG (``random``) and Python's PRNG (``insecure*``).
- ``wasi:cli``: the granted environment and arguments (a route: its environment, no
  arguments), no cwd; stdin, stdout and stderr as granted (``session``; a route: stdin empty,
  stdout and stderr to its guest log, kept up to ``log_keep`` bytes); no terminal; ``exit``
  ends the run (status 0 keeps a response already set).
- ``wasi:filesystem``: the granted folders (a route's volumes), read-only ones for reading only
  (see ``files``).
- ``wasi:sockets``: every operation is ``access-denied``.
- ``wasi:keyvalue/*`` and ``wasi:config/store``: the granted stores and variables (a route's, or
  an embedded component's; ``state.keyvalue``).
Functions with no entry here resolve to ``denial`` when their result carries an error the
interface defines for it (``access-denied``, ``access``, ``HTTP-request-denied``), so a guest
gets the interface's error value instead of a trap.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from typing import Any

from ..state import keyvalue
from . import files
from . import resources as r
from .resources import CLOSED, RequestState
from .translate import field_error, method_from_wit, method_to_wit, scheme_to_wit, valid_status

__all__ = ["IMPLEMENTATIONS", "RESOURCES", "Impl"]

Impl = Callable[..., Any]
OK: tuple[str, None] = ("ok", None)
ERR: tuple[str, None] = ("err", None)
DENIED_HTTP = ("err", ("HTTP-request-denied", None))


def _mutable(fields: r.Fields, name: str, value: bytes | None) -> str | None:
    if not fields.mutable:
        return "immutable"
    return field_error(name, value)


# --- wasi:http/types -------------------------------------------------------------------------


def fields_new(st: RequestState) -> r.Fields:
    return r.Fields()


def fields_from_list(st: RequestState, entries: list[tuple[str, bytes]]) -> Any:
    out: list[tuple[str, bytes]] = []
    for name, value in entries:
        bad = field_error(name, value)
        if bad is not None:
            return ("err", (bad, None))
        out.append((name.lower(), value))
    st.charge_fields(out)
    return ("ok", r.Fields(out))


def fields_get(st: RequestState, f: r.Fields, name: str) -> list[bytes]:
    return f.get(name)


def fields_has(st: RequestState, f: r.Fields, name: str) -> bool:
    key = name.lower()
    return any(n == key for n, _ in f.entries)


def fields_set(st: RequestState, f: r.Fields, name: str, values: list[bytes]) -> Any:
    for value in values or [b""]:
        bad = _mutable(f, name, value)
        if bad is not None:
            return ("err", (bad, None))
    key = name.lower()
    added = [(key, v) for v in values]
    st.charge_fields(added)
    f.entries = [(n, v) for n, v in f.entries if n != key] + added
    return OK


def fields_delete(st: RequestState, f: r.Fields, name: str) -> Any:
    bad = _mutable(f, name, None)
    if bad is not None:
        return ("err", (bad, None))
    key = name.lower()
    f.entries = [(n, v) for n, v in f.entries if n != key]
    return OK


def fields_append(st: RequestState, f: r.Fields, name: str, value: bytes) -> Any:
    bad = _mutable(f, name, value)
    if bad is not None:
        return ("err", (bad, None))
    entry = (name.lower(), value)
    st.charge_fields([entry])
    f.entries.append(entry)
    return OK


def fields_entries(st: RequestState, f: r.Fields) -> list[tuple[str, bytes]]:
    return list(f.entries)


def fields_clone(st: RequestState, f: r.Fields) -> r.Fields:
    st.charge_fields(f.entries)
    return f.copy()


def incoming_request_method(st: RequestState, req: r.IncomingRequest) -> Any:
    return method_to_wit(req.request.method)


def incoming_request_path(st: RequestState, req: r.IncomingRequest) -> Any:
    return req.request.path_with_query


def incoming_request_scheme(st: RequestState, req: r.IncomingRequest) -> Any:
    return scheme_to_wit(req.request.scheme)


def incoming_request_authority(st: RequestState, req: r.IncomingRequest) -> Any:
    return req.request.authority


def incoming_request_headers(st: RequestState, req: r.IncomingRequest) -> r.Fields:
    entries = [(n.decode("latin-1"), v) for n, v in req.request.headers]
    st.charge_fields(entries)
    return r.Fields(entries, mutable=False)


def incoming_request_consume(st: RequestState, req: r.IncomingRequest) -> Any:
    if req.consumed:
        return ERR
    req.consumed = True
    return ("ok", r.IncomingBody(req.request.body, st.exchange))


def incoming_body_stream(st: RequestState, body: r.IncomingBody) -> Any:
    if body.stream_taken:
        return ERR
    body.stream_taken = True
    if body.exchange is not None:
        return ("ok", r.StreamedInput(st, body.exchange))
    return ("ok", r.InputStream(body.data))


def incoming_body_finish(st: RequestState, body: r.IncomingBody) -> r.FutureTrailers:
    if body.exchange is not None:
        body.exchange.discard()  # the rest of the body is not for anyone: only its trailers
    return r.FutureTrailers(body.exchange)


def future_trailers_subscribe(st: RequestState, ft: r.FutureTrailers) -> r.Pollable:
    return r.Pollable(check=ft.ready) if ft.exchange is not None else r.Pollable()


def future_trailers_get(st: RequestState, ft: r.FutureTrailers) -> Any:
    if ft.taken:
        return ERR  # some(err): the value was already taken
    exchange = ft.exchange
    if exchange is None:
        ft.taken = True
        return ("ok", ("ok", None))  # a buffered body has no trailers
    if not ft.ready():
        return None  # not yet: the body is still arriving
    ft.taken = True
    if exchange.failure is not None:
        return ("ok", ("err", ("HTTP-protocol-error", None)))
    if not exchange.request_trailers:
        return ("ok", ("ok", None))
    entries = [(n.decode("latin-1"), v) for n, v in exchange.request_trailers]
    st.charge_fields(entries)
    return ("ok", ("ok", r.Fields(entries, mutable=False)))


def outgoing_response_new(st: RequestState, headers: r.Fields) -> r.OutgoingResponse:
    return r.OutgoingResponse(headers)


def outgoing_response_status(st: RequestState, resp: r.OutgoingResponse) -> int:
    return resp.status


def outgoing_response_set_status(st: RequestState, resp: r.OutgoingResponse, code: int) -> Any:
    if not valid_status(code):
        return ERR
    resp.status = code
    return OK


def outgoing_response_headers(st: RequestState, resp: r.OutgoingResponse) -> r.Fields:
    # A child handle that shares the entries but cannot change them.
    view = r.Fields(resp.headers.entries, mutable=False)
    return view


def outgoing_response_body(st: RequestState, resp: r.OutgoingResponse) -> Any:
    if resp.body is not None:
        return ERR
    resp.body = r.OutgoingBody(st)
    return ("ok", resp.body)


def outgoing_body_write(st: RequestState, body: r.OutgoingBody) -> Any:
    if body.stream_taken:
        return ERR
    body.stream_taken = True
    return ("ok", r.OutputStream(body.take, owner=body))


def outgoing_body_finish(st: RequestState, body: r.OutgoingBody, trailers: Any) -> Any:
    body.finished = True
    body.trailers = trailers
    body.end(st)
    return OK


def response_outparam_set(st: RequestState, param: r.ResponseOutparam, response: Any) -> None:
    st.response_set = True
    st.response = response


def response_outparam_send_informational(
    st: RequestState, param: r.ResponseOutparam, status: int, headers: r.Fields
) -> Any:
    return ("err", ("HTTP-protocol-error", None))


def http_error_code(st: RequestState, err: r.IoError) -> Any:
    return err.code


def outgoing_request_new(st: RequestState, headers: r.Fields) -> r.OutgoingRequest:
    return r.OutgoingRequest(headers)


def _getter(attr: str) -> Impl:
    def get(st: RequestState, obj: Any) -> Any:
        return getattr(obj, attr)

    return get


def _setter(attr: str) -> Impl:
    def set_(st: RequestState, obj: Any, value: Any) -> Any:
        setattr(obj, attr, value)
        return OK

    return set_


def outgoing_request_set_method(st: RequestState, req: r.OutgoingRequest, method: Any) -> Any:
    try:
        method_from_wit(method)
    except ValueError:
        return ERR
    req.method = method
    return OK


def outgoing_request_headers(st: RequestState, req: r.OutgoingRequest) -> r.Fields:
    return r.Fields(req.headers.entries, mutable=False)


def outgoing_request_body(st: RequestState, req: r.OutgoingRequest) -> Any:
    if req.body is not None:
        return ERR
    req.body = r.OutgoingBody(st, response=False)
    return ("ok", req.body)


def request_options_new(st: RequestState) -> r.RequestOptions:
    return r.RequestOptions()


def _timeout_get(key: str) -> Impl:
    def get(st: RequestState, opts: r.RequestOptions) -> Any:
        return opts.timeouts[key]

    return get


def _timeout_set(key: str) -> Impl:
    def set_(st: RequestState, opts: r.RequestOptions, value: Any) -> Any:
        opts.timeouts[key] = value
        return OK

    return set_


def future_incoming_response_get(st: RequestState, fut: r.FutureIncomingResponse) -> Any:
    if fut.taken:
        return ERR
    fut.taken = True
    if fut.result is None:
        st.before_wait()
    result = fut.resolve()
    if result[0] == "err":
        return ("ok", result)
    status, headers, body = result[1]
    fields = r.Fields([(n, v) for n, v in headers], mutable=False)
    return ("ok", ("ok", r.IncomingResponse(status, fields, body)))


def future_incoming_response_subscribe(
    st: RequestState, fut: r.FutureIncomingResponse
) -> r.Pollable:
    if fut.result is None:
        st.before_wait()
    fut.resolve()  # the exchange happens here when the guest waits before asking
    return r.Pollable()


def incoming_response_status(st: RequestState, resp: r.IncomingResponse) -> int:
    return resp.status


def incoming_response_headers(st: RequestState, resp: r.IncomingResponse) -> r.Fields:
    return r.Fields(resp.headers.entries, mutable=False)


def incoming_response_consume(st: RequestState, resp: r.IncomingResponse) -> Any:
    if resp.consumed:
        return ERR
    resp.consumed = True
    return ("ok", r.IncomingBody(resp.body))


def outgoing_handler_handle(st: RequestState, req: r.OutgoingRequest, options: Any) -> Any:
    if st.outbound is None or not st.outbound.allowed_hosts:
        return DENIED_HTTP
    # Imported here: the HTTP client is loaded only by guests that may use it.
    from .outbound import perform, request_url

    try:
        url = request_url(req.scheme, req.authority, req.path_with_query)
    except ValueError:
        return ("err", ("HTTP-request-URI-invalid", None))
    policy, deadline = st.outbound, st.deadline
    limit = policy.max_concurrency
    if limit is not None and st.outbound_open >= limit:
        return ("err", ("connection-limit-reached", None))
    st.outbound_open += 1

    def run() -> tuple[str, Any]:
        body = b"".join(req.body.chunks) if req.body is not None else b""
        headers = [(n, v) for n, v in req.headers.entries if n != "content-length"]
        return perform(policy, req.method, url, headers, body, deadline)

    return ("ok", r.FutureIncomingResponse(run))


# --- wasi:io ---------------------------------------------------------------------------------


def error_to_debug_string(st: RequestState, err: r.IoError) -> str:
    return err.message


def pollable_ready(st: RequestState, p: r.Pollable) -> bool:
    return p.ready()


def pollable_block(st: RequestState, p: r.Pollable) -> None:
    poll(st, [p])


def poll(st: RequestState, pollables: list[r.Pollable]) -> list[int]:
    """The ready ones, after waiting until one is (or the deadline: then maybe none)."""
    if not pollables:
        raise r.GuestMisuse("poll: empty list of pollables")
    ready = [i for i, p in enumerate(pollables) if p.ready()]
    while not ready and not st.cut_off:
        times = [p.at_ns for p in pollables if p.at_ns is not None and p.fd is None]
        earliest = min(times) / 1e9 if times else None
        if any(p.check is not None for p in pollables):
            st.wait_change(earliest)  # a streamed body (a request has no stdin to wait on)
        elif fds := [p.fd for p in pollables if p.fd is not None]:
            st.wait_readable(fds, earliest)
        elif earliest is not None:
            st.wait_until(earliest)
        ready = [i for i, p in enumerate(pollables) if p.ready()]
    return ready


def input_read(st: RequestState, s: r.InputStream, n: int) -> Any:
    return s.read(n)


def input_blocking_read(st: RequestState, s: r.InputStream, n: int) -> Any:
    return s.blocking_read(n)


def input_skip(st: RequestState, s: r.InputStream, n: int) -> Any:
    return s.skip(n)


def input_blocking_skip(st: RequestState, s: r.InputStream, n: int) -> Any:
    got = s.blocking_read(n)
    return ("ok", len(got[1])) if got[0] == "ok" else got


def input_subscribe(st: RequestState, s: r.InputStream) -> r.Pollable:
    return s.pollable()


def ready_pollable(st: RequestState, s: r.OutputStream) -> r.Pollable:
    """Ready when the stream has room: at once unless it is a streamed body (``streaming``)."""
    return r.Pollable(check=s.ready) if isinstance(s.owner, r.OutgoingBody) else r.Pollable()


def output_check_write(st: RequestState, s: r.OutputStream) -> Any:
    return s.check_write()


def output_write(st: RequestState, s: r.OutputStream, data: bytes) -> Any:
    return s.write(data)


def output_flush(st: RequestState, s: r.OutputStream) -> Any:
    return CLOSED if s.closed else OK


def output_write_zeroes(st: RequestState, s: r.OutputStream, n: int) -> Any:
    return s.write(bytes(min(n, r.OutputStream.PERMIT)))


def output_splice(
    st: RequestState, s: r.OutputStream, src: r.InputStream, n: int, block: bool = False
) -> Any:
    got = src.blocking_read(n) if block else src.read(n)
    if got[0] == "err":
        return got
    wrote = s.write(got[1])
    return ("ok", len(got[1])) if wrote[0] == "ok" else wrote


def output_blocking_splice(st: RequestState, s: r.OutputStream, src: r.InputStream, n: int) -> Any:
    return output_splice(st, s, src, n, block=True)


# --- wasi:clocks, wasi:random ----------------------------------------------------------------


def monotonic_now(st: RequestState) -> int:
    return time.monotonic_ns()


def monotonic_resolution(st: RequestState) -> int:
    return 1


def subscribe_instant(st: RequestState, when: int) -> r.Pollable:
    return r.Pollable(when)


def subscribe_duration(st: RequestState, duration: int) -> r.Pollable:
    return r.Pollable(time.monotonic_ns() + duration)


def wall_now(st: RequestState) -> dict[str, int]:
    ns = time.time_ns()
    return {"seconds": ns // 1_000_000_000, "nanoseconds": ns % 1_000_000_000}


def wall_resolution(st: RequestState) -> dict[str, int]:
    return {"seconds": 0, "nanoseconds": 1}


_MAX_RANDOM = 1024 * 1024


def random_bytes(st: RequestState, n: int) -> bytes:
    return os.urandom(min(n, _MAX_RANDOM))


def random_u64(st: RequestState) -> int:
    return int.from_bytes(os.urandom(8), "little")


def insecure_bytes(st: RequestState, n: int) -> bytes:
    return random.randbytes(min(n, _MAX_RANDOM))  # noqa: S311 - the insecure interface


def insecure_u64(st: RequestState) -> int:
    return random.getrandbits(64)


def insecure_seed(st: RequestState) -> tuple[int, int]:
    return (random.getrandbits(64), random.getrandbits(64))


# --- wasi:cli --------------------------------------------------------------------------------


def get_environment(st: RequestState) -> list[tuple[str, str]]:
    return list(st.environment)


def get_arguments(st: RequestState) -> list[str]:
    return list(st.arguments)


def initial_cwd(st: RequestState) -> None:
    return None


def exit_(st: RequestState, status: Any) -> None:
    raise r.ExitRequested(0 if status[0] == "ok" else 1)


def exit_with_code(st: RequestState, code: int) -> None:
    raise r.ExitRequested(code)


def get_stdin(st: RequestState) -> r.InputStream:
    # One stream object for every handle: they share the position, as the host's stdin does.
    return st.stdin if st.stdin is not None else r.InputStream(b"")


def _log_sink(st: RequestState) -> Callable[[bytes], bool]:
    def sink(data: bytes) -> bool:
        st.write_log(data)
        return True

    return sink


def get_stdout(st: RequestState) -> r.OutputStream:
    return r.OutputStream(st.stdout or _log_sink(st))


def get_stderr(st: RequestState) -> r.OutputStream:
    return r.OutputStream(st.stderr or _log_sink(st))


def no_terminal(st: RequestState) -> None:
    return None


# --- wasi:filesystem, wasi:sockets -----------------------------------------------------------


def instance_network(st: RequestState) -> r.Network:
    return r.Network()


_IO: dict[str, Impl] = {
    "[method]input-stream.read": input_read,
    "[method]input-stream.blocking-read": input_blocking_read,
    "[method]input-stream.skip": input_skip,
    "[method]input-stream.blocking-skip": input_blocking_skip,
    "[method]input-stream.subscribe": input_subscribe,
    "[method]output-stream.check-write": output_check_write,
    "[method]output-stream.write": output_write,
    "[method]output-stream.blocking-write-and-flush": output_write,
    "[method]output-stream.flush": output_flush,
    "[method]output-stream.blocking-flush": output_flush,
    "[method]output-stream.subscribe": ready_pollable,
    "[method]output-stream.write-zeroes": output_write_zeroes,
    "[method]output-stream.blocking-write-zeroes-and-flush": output_write_zeroes,
    "[method]output-stream.splice": output_splice,
    "[method]output-stream.blocking-splice": output_blocking_splice,
}

IMPLEMENTATIONS: dict[str, dict[str, Impl]] = {
    "wasi:http/types": {
        "[constructor]fields": fields_new,
        "[static]fields.from-list": fields_from_list,
        "[method]fields.get": fields_get,
        "[method]fields.has": fields_has,
        "[method]fields.set": fields_set,
        "[method]fields.delete": fields_delete,
        "[method]fields.append": fields_append,
        "[method]fields.entries": fields_entries,
        "[method]fields.clone": fields_clone,
        "[method]incoming-request.method": incoming_request_method,
        "[method]incoming-request.path-with-query": incoming_request_path,
        "[method]incoming-request.scheme": incoming_request_scheme,
        "[method]incoming-request.authority": incoming_request_authority,
        "[method]incoming-request.headers": incoming_request_headers,
        "[method]incoming-request.consume": incoming_request_consume,
        "[constructor]outgoing-request": outgoing_request_new,
        "[method]outgoing-request.body": outgoing_request_body,
        "[method]outgoing-request.method": _getter("method"),
        "[method]outgoing-request.set-method": outgoing_request_set_method,
        "[method]outgoing-request.path-with-query": _getter("path_with_query"),
        "[method]outgoing-request.set-path-with-query": _setter("path_with_query"),
        "[method]outgoing-request.scheme": _getter("scheme"),
        "[method]outgoing-request.set-scheme": _setter("scheme"),
        "[method]outgoing-request.authority": _getter("authority"),
        "[method]outgoing-request.set-authority": _setter("authority"),
        "[method]outgoing-request.headers": outgoing_request_headers,
        "[constructor]request-options": request_options_new,
        "[method]request-options.connect-timeout": _timeout_get("connect"),
        "[method]request-options.set-connect-timeout": _timeout_set("connect"),
        "[method]request-options.first-byte-timeout": _timeout_get("first-byte"),
        "[method]request-options.set-first-byte-timeout": _timeout_set("first-byte"),
        "[method]request-options.between-bytes-timeout": _timeout_get("between"),
        "[method]request-options.set-between-bytes-timeout": _timeout_set("between"),
        "[method]response-outparam.send-informational": response_outparam_send_informational,
        "[static]response-outparam.set": response_outparam_set,
        "[method]incoming-response.status": incoming_response_status,
        "[method]incoming-response.headers": incoming_response_headers,
        "[method]incoming-response.consume": incoming_response_consume,
        "[method]incoming-body.stream": incoming_body_stream,
        "[static]incoming-body.finish": incoming_body_finish,
        "[method]future-trailers.subscribe": future_trailers_subscribe,
        "[method]future-trailers.get": future_trailers_get,
        "[constructor]outgoing-response": outgoing_response_new,
        "[method]outgoing-response.status-code": outgoing_response_status,
        "[method]outgoing-response.set-status-code": outgoing_response_set_status,
        "[method]outgoing-response.headers": outgoing_response_headers,
        "[method]outgoing-response.body": outgoing_response_body,
        "[method]outgoing-body.write": outgoing_body_write,
        "[static]outgoing-body.finish": outgoing_body_finish,
        "[method]future-incoming-response.subscribe": future_incoming_response_subscribe,
        "[method]future-incoming-response.get": future_incoming_response_get,
        "http-error-code": http_error_code,
    },
    "wasi:http/outgoing-handler": {"handle": outgoing_handler_handle},
    "wasi:io/error": {"[method]error.to-debug-string": error_to_debug_string},
    "wasi:io/poll": {
        "[method]pollable.ready": pollable_ready,
        "[method]pollable.block": pollable_block,
        "poll": poll,
    },
    "wasi:io/streams": _IO,
    "wasi:clocks/monotonic-clock": {
        "now": monotonic_now,
        "resolution": monotonic_resolution,
        "subscribe-instant": subscribe_instant,
        "subscribe-duration": subscribe_duration,
    },
    "wasi:clocks/wall-clock": {"now": wall_now, "resolution": wall_resolution},
    "wasi:random/random": {"get-random-bytes": random_bytes, "get-random-u64": random_u64},
    "wasi:random/insecure": {
        "get-insecure-random-bytes": insecure_bytes,
        "get-insecure-random-u64": insecure_u64,
    },
    "wasi:random/insecure-seed": {"insecure-seed": insecure_seed},
    "wasi:cli/environment": {
        "get-environment": get_environment,
        "get-arguments": get_arguments,
        "initial-cwd": initial_cwd,
    },
    "wasi:cli/exit": {"exit": exit_, "exit-with-code": exit_with_code},
    "wasi:cli/stdin": {"get-stdin": get_stdin},
    "wasi:cli/stdout": {"get-stdout": get_stdout},
    "wasi:cli/stderr": {"get-stderr": get_stderr},
    "wasi:cli/terminal-input": {},
    "wasi:cli/terminal-output": {},
    "wasi:cli/terminal-stdin": {"get-terminal-stdin": no_terminal},
    "wasi:cli/terminal-stdout": {"get-terminal-stdout": no_terminal},
    "wasi:cli/terminal-stderr": {"get-terminal-stderr": no_terminal},
    **files.IMPLEMENTATIONS,
    "wasi:sockets/instance-network": {"instance-network": instance_network},
    "wasi:sockets/network": {},
    "wasi:sockets/tcp-create-socket": {},
    "wasi:sockets/udp-create-socket": {},
    "wasi:sockets/tcp": {},
    "wasi:sockets/udp": {},
    "wasi:sockets/ip-name-lookup": {},
    **keyvalue.IMPLEMENTATIONS,  # wasi:keyvalue and wasi:config (the run's grants)
}

# The resources each interface defines (not those it only ``use``s), with their host classes.
RESOURCES: dict[str, dict[str, type[r.Resource]]] = {
    "wasi:http/types": {
        "fields": r.Fields,
        "incoming-request": r.IncomingRequest,
        "outgoing-request": r.OutgoingRequest,
        "request-options": r.RequestOptions,
        "response-outparam": r.ResponseOutparam,
        "incoming-response": r.IncomingResponse,
        "incoming-body": r.IncomingBody,
        "future-trailers": r.FutureTrailers,
        "outgoing-response": r.OutgoingResponse,
        "outgoing-body": r.OutgoingBody,
        "future-incoming-response": r.FutureIncomingResponse,
    },
    "wasi:io/error": {"error": r.IoError},
    "wasi:io/poll": {"pollable": r.Pollable},
    "wasi:io/streams": {"input-stream": r.InputStream, "output-stream": r.OutputStream},
    "wasi:sockets/network": {"network": r.Network},
    "wasi:filesystem/types": {
        "descriptor": files.Descriptor,
        "directory-entry-stream": files.DirectoryEntryStream,
    },
    **keyvalue.RESOURCES,
}

# Resources no host function ever creates here (no terminal, no socket): they are
# defined so a guest importing them links, and get type ids of their own.
NEVER_CREATED: dict[str, tuple[str, ...]] = {
    "wasi:cli/terminal-input": ("terminal-input",),
    "wasi:cli/terminal-output": ("terminal-output",),
    "wasi:sockets/tcp": ("tcp-socket",),
    "wasi:sockets/udp": ("udp-socket", "incoming-datagram-stream", "outgoing-datagram-stream"),
    "wasi:sockets/ip-name-lookup": ("resolve-address-stream",),
}

# Error values that deny a capability, by the error type's cases (see ``host.denial``).
DENIAL_CASES = ("access-denied", "access", "HTTP-request-denied")
