"""One wasi:http component, linked once, run once per request.

Rules:
- Everything derivable from the component is built at load time: the ``engine.Program`` linked
  with the Python host (``host.WasiHost``: every import defined, its value converters compiled)
  and the handler export's index. The binding has no component instance-pre, so each request
  instantiates from the linker.
- Every request gets a fresh store, instance and resource table: nothing survives it.
- The run is ``Program.run``, as for every face: the engine entry makes the store (every limit
  at once), makes the request's state current, calls the handler (``invoke``) and classifies
  failures (the state first: an exit, a misuse, a host bug; then the engine's).
- The guest's fate maps to an HTTP status through the one table (``Outcome.http_status``), as
  for WAGI routes: a trap, a non-zero exit, fuel or memory exhausted 500; a timeout 504 (also
  when the deadline cut a host wait short, however the guest ended afterwards); a guest that
  never set a response 500; a response body past ``max_response_body`` 502; the guest's own
  ``err(error-code)`` answer ``error_status``; a request body past ``max_request_body`` 413
  (the gateway checks it first; this is the rule for direct callers). ``exit(0)`` after
  setting a response keeps the response. A host function that fails (a bug of the host, not
  of the guest) is an ``error`` outcome (500) naming the exception.
- Calling ``response-outparam.set`` twice is impossible by construction (the first call takes
  the handle): a guest that tries traps, so the answer is 500.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import wasmtime
from wasmtime import component as cm

from ..capabilities import Capabilities, DirGrant
from ..engine.loader import LoadedGuest
from ..engine.lowlevel import call_with_own_resources
from ..engine.outcome import Outcome
from ..engine.program import Program
from ..limits import Limits
from ..state.grants import RouteState, in_use
from ..wagi.cgi import CgiRequest, CgiResponse
from ..wagi.handler import OVER_BUDGET, STDERR_KEEP, HandlerResult, RouteCap
from ..wagi.outbound import OutboundPolicy
from . import resources as r
from .host import link_component
from .streaming import Exchange
from .translate import (
    HttpRequest,
    check_content_length,
    error_status,
    format_error_code,
    split_target,
)

__all__ = ["ProxyHandler", "request_from_cgi"]


def request_from_cgi(request: CgiRequest, body: bytes, default_host: str) -> HttpRequest:
    """The proxy world's view of a request the gateway parsed."""
    authority = default_host
    for name, value in request.headers:
        if name == b"host":
            authority = value.decode("latin-1")
            break
    return HttpRequest(
        method=request.method,
        path_with_query=split_target(request.raw_path, request.query_string),
        scheme=request.scheme,
        authority=authority,
        headers=request.headers,
        body=body,
    )


class ProxyHandler:
    """A wasi:http component ready to serve: build once, call ``serve`` from any thread."""

    def __init__(
        self,
        guest: LoadedGuest,
        limits: Limits,
        *,
        environment: Mapping[str, str] | None = None,
        label: str | None = None,
        default_host: str = "localhost",
        outbound: OutboundPolicy | None = None,
        volumes: Sequence[DirGrant] = (),
        grants: RouteState | None = None,
        fast: bool = True,
    ) -> None:
        self.guest = guest
        self.limits = limits
        self.label = label or guest.name
        self.default_host = default_host
        self._environment = list((environment or {}).items())
        self.outbound = outbound
        self.volumes = tuple(volumes)
        self.grants = grants
        self.linked = link_component(
            guest.as_component(), guest.engine.engine, label=self.label, fast=fast
        )
        self.program = Program(guest, host=self.linked.host)
        self._caps = Capabilities()  # the request's state holds its grants (``serve``)
        self._cap = RouteCap(limits.max_concurrency)

    @property
    def repeatable(self) -> bool:
        """A run's only effects are its answer and logs: no volumes, and outbound requests only
        when the route allows some hosts."""
        return not self.volumes and (self.outbound is None or not self.outbound.allowed_hosts)

    def handle(
        self,
        request: CgiRequest,
        body: bytes,
        match: Any = None,
        budget: float | None = None,
        exchange: Exchange | None = None,
    ) -> HandlerResult:
        """The gateway's entry (as ``ModuleHandler.handle``): answers 503 at once beyond the
        route's ``max_concurrency``. With an ``exchange`` the bodies stream through it (then
        ``body`` is empty: the exchange holds what arrived)."""
        req = request_from_cgi(request, body, self.default_host)
        if self._cap.cap is None:
            return self.serve(req, budget, exchange)
        return self._cap.run(lambda: self.serve(req, budget, exchange))

    def serve(
        self, request: HttpRequest, budget: float | None = None, exchange: Exchange | None = None
    ) -> HandlerResult:
        """Run the guest for one request (blocking). A request without an authority gets the
        server's hostname: guests build URLs from it (StarlingMonkey traps without one)."""
        limits = self.limits
        if request.authority is None:
            request = replace(request, authority=self.default_host)
        limit = limits.max_request_body
        if limit is not None and len(request.body) > limit:
            return HandlerResult(413, None, "too-large", f"request body over {limit} bytes")
        if exchange is not None and exchange.limit is None:
            exchange.limit = limit
        timeout = limits.timeout
        budgeted = budget is not None and (timeout is None or budget < timeout)
        if budgeted:
            timeout = budget
        state = r.RequestState(
            request,
            environment=self._environment,
            max_response_body=limits.max_response_body,
            log_keep=STDERR_KEEP,
            outbound=self.outbound,
            volumes=self.volumes,
            grants=self.grants,
            exchange=exchange,
        )
        handles = [
            (state.add(r.IncomingRequest(request)), r.IncomingRequest.TYPE),
            (state.add(r.ResponseOutparam()), r.ResponseOutparam.TYPE),
        ]
        index, fast = self.linked.handle_index, self.linked.fast

        def invoke(store: wasmtime.Store, instance: cm.Instance) -> Outcome | None:
            if not (fast and call_with_own_resources(store, instance, index, handles)):
                func = instance.get_func(store, index)
                assert func is not None
                func(store, *[cm.ResourceHost.own(rep, ty) for rep, ty in handles])
            return None

        started = time.perf_counter()
        with in_use(self.grants):  # a reload keeps the stores open until the run ends
            outcome = self.program.run(
                self._caps, limits, timeout=timeout, invoke=invoke, session=state
            )
        elapsed = time.perf_counter() - started
        trailers: tuple[tuple[bytes, bytes], ...] = ()
        streamed = exchange is not None and exchange.started
        if streamed:  # the head went out: the server ends this response or cuts it off
            assert exchange is not None
            response = None
            status, cause, reason = _judge_streamed(state, outcome, limits)
            if cause == "ok":
                exchange.finish(list(_trailers(state)))
        else:
            status, response, cause, reason = _judge(state, outcome, limits)
            if budgeted and outcome.status == "timeout":
                status, response, cause = 504, None, OVER_BUDGET
                reason = f"still running after its {budget}s budget"
            if response is not None:
                trailers = _trailers(state)
        return HandlerResult(
            status,
            response,
            cause,
            reason,
            guest_seconds=elapsed,
            stderr=bytes(state.log),
            stderr_total=state.log_total,
            budget=budget,
            streamed=streamed,
            trailers=trailers,
        )


def _trailers(state: r.RequestState) -> tuple[tuple[bytes, bytes], ...]:
    """The trailers the guest finished its response body with (none: empty)."""
    answer = state.response
    body = answer[1].body if answer is not None and answer[0] == "ok" else None
    if body is None or body.trailers is None:
        return ()
    return tuple(body.trailers.as_bytes())


def _judge_streamed(
    state: r.RequestState, outcome: Outcome, limits: Limits
) -> tuple[int, str, str]:
    """(status, cause, reason) for a response whose head already went out: the guest's own
    status when it finished its body, else the failure (the server cuts the response off)."""
    if state.body_overflow:
        limit = limits.max_response_body
        return 502, "too-large", f"response larger than max_response_body ({limit} bytes)"
    if outcome.status != "ok":
        reason = f"{outcome.message} ({outcome.hint})" if outcome.hint else outcome.message
        return outcome.http_status, outcome.status, reason
    assert state.response is not None
    resp: r.OutgoingResponse = state.response[1]
    body = resp.body
    assert body is not None
    assert body.exchange is not None
    if body.bad_length:
        return 500, "bad-output", f"body does not match its content-length ({body.declared})"
    if body.exchange.closed:
        return 499, "client-gone", "the client closed the connection during the response"
    if not body.finished:
        reason = "the guest did not finish the response body (outgoing-body.finish)"
        return 500, "incomplete", reason
    return resp.status, "ok", ""


def _judge(
    state: r.RequestState, outcome: Outcome, limits: Limits
) -> tuple[int, CgiResponse | None, str, str]:
    """(status, response, cause, reason) for what the guest did."""
    if state.body_overflow:
        limit = limits.max_response_body
        return 502, None, "too-large", f"response larger than max_response_body ({limit} bytes)"
    if outcome.status != "ok":
        reason = f"{outcome.message} ({outcome.hint})" if outcome.hint else outcome.message
        return outcome.http_status, None, outcome.status, reason
    answer = state.response
    if answer is None:
        return 500, None, "no-response", "the guest returned without setting a response"
    if answer[0] == "err":
        code = answer[1]
        return error_status(code), None, "guest-error", f"guest answered {format_error_code(code)}"
    resp: r.OutgoingResponse = answer[1]
    body = b""
    if resp.body is not None:
        if not resp.body.finished:
            reason = "the guest did not finish the response body (outgoing-body.finish)"
            return 500, None, "incomplete", reason
        body = b"".join(resp.body.chunks)
    headers = resp.headers.as_bytes()
    mismatch = check_content_length(headers, len(body))
    if mismatch is not None:
        return 500, None, "bad-output", mismatch
    # Framing is the server's: a content-length that fits the body is sent once, by the server.
    headers = [(n, v) for n, v in headers if n != b"content-length"]
    return resp.status, CgiResponse(resp.status, headers, body), "ok", ""
