"""One WAGI route's guest, prepared once, run once per request.

Rules:
- Everything derivable from a ``[[module]]`` entry is built at load time: the compiled guest
  linked with WASI and outbound HTTP (an engine ``Program``), the constant environment, the
  volumes, the limits. The per-request path builds only the request's environment, argv and
  stdio, and runs the program through the engine's one entry (``Program.run``): the same store
  set-up, limits and outcomes as ``wasmgate run``.
- Every request gets a fresh store and instance: nothing survives from one request to the next.
- The guest's stdout is captured up to ``max_response_body`` plus the CGI header block's own
  fixed cap (``cgi.MAX_HEADER_BYTES``; bytes past it fail the guest's writes), so
  ``max_response_body`` measures the body alone (``parse_output`` checks it); stderr is kept
  up to ``STDERR_KEEP`` bytes for the logs and never reaches the client.
- The guest's fate maps to an HTTP status through the one table (``Outcome.http_status``): a
  guest failure is 500 with an empty body, a timeout 504; an invalid response is 502 and a bad
  request 400 (``CgiError.http_status``). The logged reason carries the outcome's hint, if any.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import wasmtime

from ..capabilities import request_capabilities
from ..engine import LoadedGuest, OutputPump, Program
from ..errors import CgiError, ConfigError
from ..limits import Limits
from ..state.grants import RouteState, active
from ..state.wagi_kv import IMPORT_MODULE as KV_MODULE
from ..state.wagi_kv import define_wagi_kv
from .cgi import (
    MAX_HEADER_BYTES,
    CgiRequest,
    CgiResponse,
    build_argv,
    build_environ,
    check_request,
    parse_output,
)
from .manifest import ModuleSpec
from .outbound import IMPORT_MODULE, OutboundPolicy, define_outbound_http, outbound_session
from .routes import RouteMatch, parse_routes_output


def _define_host(linker: wasmtime.Linker) -> None:
    """WAGI's host modules: outbound HTTP and the key-value stores (``state.wagi_kv``)."""
    define_outbound_http(linker)
    define_wagi_kv(linker)


__all__ = ["OVER_BUDGET", "STDERR_KEEP", "HandlerResult", "ModuleHandler", "RouteCap"]

STDERR_KEEP = 16 * 1024
OVER_BUDGET = "over-budget"  # the cause of a run stopped at the caller's budget (see handle)


@dataclass(frozen=True, slots=True)
class HandlerResult:
    """What one request produced: a response, or the status and logged reason of a failure."""

    status: int
    response: CgiResponse | None
    cause: str
    reason: str = ""
    guest_seconds: float = 0.0
    stderr: bytes = b""
    stderr_total: int = 0
    budget: float | None = None  # the budget the guest ran under (see ModuleHandler.handle)
    # The response head already went out through a streamed exchange (wasi:http routes): the
    # server ends that response (``status`` < 500 and cause "ok") or cuts it off (anything else).
    streamed: bool = False
    trailers: tuple[tuple[bytes, bytes], ...] = ()  # sent after a buffered body (chunked)


class RouteCap:
    """A route's ``max_concurrency``: at most ``cap`` requests run at once, and one more is
    answered 503 at once without running its guest. Shared by every route kind."""

    __slots__ = ("_lock", "_running", "cap")

    def __init__(self, cap: int | None) -> None:
        self.cap = cap
        self._running = 0
        self._lock = threading.Lock()

    def run(self, serve: Callable[[], HandlerResult]) -> HandlerResult:
        with self._lock:
            if self._running >= (self.cap or 0):
                reason = f"route busy: {self.cap} requests already running (max_concurrency)"
                return HandlerResult(503, None, "route-busy", reason)
            self._running += 1
        try:
            return serve()
        finally:
            with self._lock:
                self._running -= 1


_NO_SESSION = contextlib.nullcontext()


class ModuleHandler:
    """A ``[[module]]`` entry ready to serve: build once, call ``handle`` from any thread."""

    # Whether ``handle`` takes an ``exchange`` to stream bodies through (wasi:http routes do;
    # a CGI guest reads its whole body from stdin and writes its whole answer to stdout).
    streams: ClassVar[bool] = False

    def _route(
        self, spec: ModuleSpec, guest: LoadedGuest, limits: Limits, state: RouteState | None
    ) -> None:
        """What every route kind holds (``ComponentRoute`` too, which builds no core linker)."""
        self.spec = spec
        self.route_state = state or RouteState(None, (), {})
        self.guest = guest
        self.limits = limits  # the entry's limits merged over the server's (every one set)
        self.label = spec.label

    def __init__(
        self,
        spec: ModuleSpec,
        guest: LoadedGuest,
        limits: Limits,
        *,
        global_env: Mapping[str, str],
        default_host: str,
        server_software: str,
        pump: OutputPump,
        state: RouteState | None = None,
    ) -> None:
        self._route(spec, guest, limits, state)
        self._max_response = limits.max_response_body or 0
        self._default_host = default_host
        self._server_software = server_software
        self._pump = pump
        self._base_env = {**global_env, **spec.environment}
        self._cap = RouteCap(limits.max_concurrency)
        self._policy = OutboundPolicy(
            allowed_hosts=spec.allowed_hosts,
            max_concurrency=spec.http_max_concurrency,
            timeout=min(30.0, limits.timeout or 30.0),
        )
        if guest.kind != "module":
            raise ConfigError(f"{spec.label}: {spec.module} is a component; WAGI serves modules")
        # Only a guest importing the outbound HTTP module needs a session (handles, policy).
        imported = {i.module for i in guest.core().imports}
        self._outbound = IMPORT_MODULE in imported
        self._kv = KV_MODULE in imported  # stores: writes are effects, see ``repeatable``
        self.program = Program(guest, define=_define_host)
        self.link_error = self.program.link_error
        self._exports = self.program.exports

    def has_export(self, name: str) -> bool:
        return name in self._exports

    # --- start-up ------------------------------------------------------------------------

    def discover_routes(self) -> list[tuple[str, str]]:
        """Run ``_routes`` (if exported) and parse what it prints; ``ConfigError`` if it fails."""
        if "_routes" not in self._exports:
            return []
        result = self._run("_routes", env={}, argv=[self.spec.module], stdin=b"")
        if result.cause != "ok" or result.response is None:
            raise ConfigError(f"{self.label}: _routes failed: {result.reason}")
        return parse_routes_output(result.response.body, origin=f"{self.label}: _routes output")

    # --- per request ---------------------------------------------------------------------

    @property
    def repeatable(self) -> bool:
        """Whether running a request twice is invisible outside the guest: no volumes, no
        outbound HTTP and no key-value stores, so a run's only effects are its captured output
        (the guest may read clocks and random numbers, which differ from run to run anyway)."""
        return not self.spec.volumes and not self._outbound and not self._kv

    def handle(
        self,
        request: CgiRequest,
        body: bytes,
        match: RouteMatch[Any],
        budget: float | None = None,
    ) -> HandlerResult:
        """Serve one request (blocking; run it on a worker thread). Beyond the route's
        ``max_concurrency`` requests at once, answers 503 at once without running the guest.

        With a ``budget`` (seconds) shorter than the route's timeout, a guest still running
        when it runs out is stopped and the result's cause is ``OVER_BUDGET``: nothing was
        answered, and the caller may run the request again with the full timeout (only for a
        ``repeatable`` route)."""
        if self._cap.cap is None:
            return self._handle(request, body, match, budget)
        return self._cap.run(lambda: self._handle(request, body, match, budget))

    def _handle(
        self, request: CgiRequest, body: bytes, match: RouteMatch[Any], budget: float | None
    ) -> HandlerResult:
        if (request.content_length or 0) != len(body):  # chunked: no Content-Length was given
            request = replace(request, content_length=len(body))
        try:
            if self.program.reads_environment:
                env = build_environ(
                    request,
                    match,
                    base_env=self._base_env,
                    default_host=self._default_host,
                    server_software=self._server_software,
                )
            else:  # a guest that cannot see it is given none (refused alike when bad)
                check_request(request, match, default_host=self._default_host)
                env = {}
        except CgiError as e:
            return HandlerResult(e.http_status, None, "bad-request", str(e))
        argv = build_argv(request, match, self.spec.argv)
        entrypoint = match.route.entrypoint
        return self._run(entrypoint, env=env, argv=argv, stdin=body, parse=True, budget=budget)

    def _run(
        self,
        entrypoint: str,
        *,
        env: dict[str, str],
        argv: list[str],
        stdin: bytes,
        parse: bool = False,
        budget: float | None = None,
    ) -> HandlerResult:
        if self.link_error is not None:
            return HandlerResult(500, None, "link", f"cannot instantiate: {self.link_error}")
        if entrypoint not in self._exports:
            return HandlerResult(500, None, "link", f"no exported function {entrypoint!r}")
        limits = self.limits
        timeout = limits.timeout
        budgeted = budget is not None and (timeout is None or budget < timeout)
        out = self._pump.open(self._max_response + MAX_HEADER_BYTES + 1, "close")
        err = self._pump.open(STDERR_KEEP, "discard")
        caps = request_capabilities(argv, env, self.spec.volumes, stdin, out.path, err.path)
        timeout = budget if budgeted else None
        started = time.perf_counter()
        try:
            if self._outbound or self._kv:  # its host imports find their session and grants
                session = outbound_session(self._policy) if self._outbound else _NO_SESSION
                with session, active(self.route_state):
                    outcome = self.program.run(caps, limits, entry=entrypoint, timeout=timeout)
            else:  # a guest that imports neither needs neither (the common, hot case)
                outcome = self.program.run(caps, limits, entry=entrypoint, timeout=timeout)
        except BaseException:
            out.finish()
            err.finish()
            raise
        elapsed = time.perf_counter() - started
        stdout = out.finish()
        stderr = err.finish()
        status, response, cause, reason = 200, None, "ok", ""
        if budgeted and outcome.status == "timeout":  # not the route's deadline: ours
            status, cause = 504, OVER_BUDGET
            reason = f"still running after its {budget}s budget"
        elif out.overflowed:  # first: a guest whose writes failed past the cap may exit non-zero
            limit = self._max_response
            status, cause = 502, "too-large"
            reason = f"response larger than max_response_body ({limit} bytes)"
        elif outcome.status != "ok":
            status, cause = outcome.http_status, outcome.status
            reason = (
                f"{outcome.message} (hint: {outcome.hint})" if outcome.hint else outcome.message
            )
        elif not parse:
            response = CgiResponse(200, [], stdout)
        else:
            try:
                response = parse_output(stdout, max_body=self._max_response)
                status = response.status
            except CgiError as e:
                status, cause, reason = e.http_status, "bad-output", str(e)
        return HandlerResult(
            status,
            response,
            cause,
            reason,
            guest_seconds=elapsed,
            stderr=stderr,
            stderr_total=err.total,
            budget=budget,
        )
