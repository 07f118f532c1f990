"""One WAGI route's guest, prepared once, run once per request.

Rules:
- Everything derivable from a ``[[module]]`` entry is built at load time: the compiled guest, the
  linker (WASI + outbound HTTP), the instance-pre, the constant environment, the limits. The
  per-request path builds only the request's environment, argv and stdio.
- Every request gets a fresh store and instance: nothing survives from one request to the next.
- The guest's stdout is captured up to ``max_response_body`` (bytes past it fail the guest's
  writes); stderr is kept up to ``STDERR_KEEP`` bytes for the logs and never reaches the client.
- The guest's fate maps to an HTTP status here and only here (``_STATUS``): a guest failure is
  500 with an empty body, a timeout 504, an invalid response 502, a bad request 400.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import wasmtime

from ..engine.capture import OutputPump, private_dir
from ..engine.loader import LoadedGuest
from ..engine.lowlevel import call_export, set_args_env, set_stdin_bytes
from ..engine.outcome import Outcome, classify_failure, exported_memory_size, fold_error
from ..engine.sandbox import define_wasi
from ..errors import CgiError, ConfigError, UsageError
from ..limits import Limits
from .cgi import CgiRequest, CgiResponse, build_argv, build_environ, parse_output
from .manifest import ModuleSpec
from .outbound import IMPORT_MODULE, OutboundPolicy, define_outbound_http, outbound_session
from .routes import RouteMatch, parse_routes_output

__all__ = [
    "OVER_BUDGET",
    "STDERR_KEEP",
    "HandlerResult",
    "ModuleHandler",
    "RouteSettings",
    "route_settings",
]

STDERR_KEEP = 16 * 1024
OVER_BUDGET = "over-budget"  # the cause of a run stopped at the caller's budget (see handle)
_STATUS = {
    "exit": 500,
    "trap": 500,
    "error": 500,
    "link": 500,
    "fuel": 500,
    "memory": 500,
    "timeout": 504,
}


def _stdin_path(body: bytes) -> str:
    """A private file holding ``body``; the caller unlinks it once WASI has opened it."""
    fd, path = tempfile.mkstemp(dir=private_dir())
    with os.fdopen(fd, "wb") as f:
        f.write(body)
    return path


@dataclass(frozen=True, slots=True)
class RouteSettings:
    """Resolved per-route settings (module entry merged with server defaults)."""

    limits: Limits
    max_request_body: int
    max_response_body: int
    max_concurrency: int | None = None


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


class ModuleHandler:
    """A ``[[module]]`` entry ready to serve: build once, call ``handle`` from any thread."""

    def __init__(
        self,
        spec: ModuleSpec,
        guest: LoadedGuest,
        settings: RouteSettings,
        *,
        global_env: Mapping[str, str],
        default_host: str,
        server_software: str,
        pump: OutputPump,
    ) -> None:
        self.spec = spec
        self.guest = guest
        self.settings = settings
        self.label = spec.label
        self._default_host = default_host
        self._server_software = server_software
        self._pump = pump
        self._base_env = {**global_env, **spec.environment}
        self._running = 0  # requests in handle() now (for max_concurrency)
        self._running_lock = threading.Lock()
        self._policy = OutboundPolicy(
            allowed_hosts=spec.allowed_hosts,
            max_concurrency=spec.http_max_concurrency,
            timeout=min(30.0, settings.limits.timeout or 30.0),
        )
        module = guest.core() if guest.kind == "module" else None
        if module is None:
            raise ConfigError(f"{spec.label}: {spec.module} is a component; WAGI serves modules")
        self._exports = {e.name for e in module.exports if isinstance(e.type, wasmtime.FuncType)}
        # Only a guest importing the outbound HTTP module needs a session (handles, policy).
        self._outbound = any(i.module == IMPORT_MODULE for i in module.imports)
        linker = wasmtime.Linker(guest.engine.engine)
        define_wasi(linker)
        define_outbound_http(linker)
        self.link_error: str | None = None
        self._pre: wasmtime.InstancePre | None = None
        try:
            self._pre = linker.instantiate_pre(module)
        except wasmtime.WasmtimeError as e:
            self.link_error = fold_error(e)

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
        """Whether running a request twice is invisible outside the guest: no volumes and no
        outbound HTTP, so a run's only effects are its captured output (the guest may read
        clocks and random numbers, which differ from run to run anyway)."""
        return not self.spec.volumes and not self._outbound

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
        cap = self.settings.max_concurrency
        if cap is None:
            return self._handle(request, body, match, budget)
        with self._running_lock:
            if self._running >= cap:
                reason = f"route busy: {cap} requests already running (max_concurrency)"
                return HandlerResult(503, None, "route-busy", reason)
            self._running += 1
        try:
            return self._handle(request, body, match, budget)
        finally:
            with self._running_lock:
                self._running -= 1

    def _handle(
        self, request: CgiRequest, body: bytes, match: RouteMatch[Any], budget: float | None
    ) -> HandlerResult:
        if (request.content_length or 0) != len(body):  # chunked: no Content-Length was given
            request = replace(request, content_length=len(body))
        try:
            env = build_environ(
                request,
                match,
                base_env=self._base_env,
                default_host=self._default_host,
                server_software=self._server_software,
            )
        except CgiError as e:
            return HandlerResult(e.http_status, None, "bad-request", str(e))
        argv = build_argv(request, match, self.spec.argv)
        entrypoint = match.route.entrypoint
        return self._run(entrypoint, env=env, argv=argv, stdin=body, parse=True, budget=budget)

    def _run(
        self,
        entrypoint: str,
        *,
        env: Mapping[str, str],
        argv: list[str],
        stdin: bytes,
        parse: bool = False,
        budget: float | None = None,
    ) -> HandlerResult:
        if self._pre is None:
            return HandlerResult(500, None, "link", f"cannot instantiate: {self.link_error}")
        if entrypoint not in self._exports:
            return HandlerResult(500, None, "link", f"no exported function {entrypoint!r}")
        limits = self.settings.limits
        timeout = limits.timeout
        budgeted = budget is not None and (timeout is None or budget < timeout)
        if budgeted:
            timeout = budget
        store = self.guest.engine.new_store(
            timeout=timeout, fuel=limits.fuel, max_memory=limits.max_memory
        )
        out = self._pump.open(self.settings.max_response_body + 1, "close")
        err = self._pump.open(STDERR_KEEP, "discard")
        stdin_path: str | None = None
        started = time.perf_counter()
        try:
            cfg = wasmtime.WasiConfig()
            if not set_args_env(cfg, argv, env):
                cfg.argv = argv
                cfg.env = list(env.items())
            if not set_stdin_bytes(cfg, stdin):
                stdin_path = _stdin_path(stdin)
                cfg.stdin_file = stdin_path
            cfg.stdout_file = out.path
            cfg.stderr_file = err.path
            for volume in self.spec.volumes:
                cfg.preopen_dir(str(volume.host), volume.guest, not volume.read_only)
            store.set_wasi(cfg)
            del cfg
            outcome = self._call(store, entrypoint, timeout)
        finally:
            if stdin_path is not None:
                with contextlib.suppress(OSError):
                    os.unlink(stdin_path)
            del store
            elapsed = time.perf_counter() - started
        stdout = out.finish()
        stderr = err.finish()
        status, response, cause, reason = 200, None, "ok", ""
        if budgeted and outcome.status == "timeout":  # not the route's deadline: ours
            status, cause = 504, OVER_BUDGET
            reason = f"still running after its {budget}s budget"
        elif out.overflowed:  # first: a guest whose writes failed past the cap may exit non-zero
            limit = self.settings.max_response_body
            status, cause = 502, "too-large"
            reason = f"response larger than max_response_body ({limit} bytes)"
        elif outcome.status != "ok":
            status, cause = _STATUS.get(outcome.status, 500), outcome.status
            reason = outcome.message
        elif not parse:
            response = CgiResponse(200, [], stdout)
        else:
            try:
                response = parse_output(stdout, max_body=self.settings.max_response_body)
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

    def _call(self, store: wasmtime.Store, entrypoint: str, timeout: float | None) -> Outcome:
        assert self._pre is not None
        limits = self.settings.limits
        instance: wasmtime.Instance | None = None
        try:
            session = outbound_session(self._policy) if self._outbound else contextlib.nullcontext()
            with session:
                instance = self._pre.instantiate(store)
                if entrypoint != "_start" and "_initialize" in self._exports:
                    _call_export(store, instance, "_initialize")
                _call_export(store, instance, entrypoint)
        except (wasmtime.WasmtimeError, wasmtime.Trap) as e:
            return classify_failure(
                e,
                timeout=timeout,
                fuel=limits.fuel,
                max_memory=limits.max_memory,
                memory_size=exported_memory_size(store, instance),
            )
        return Outcome("ok")


def _call_export(store: wasmtime.Store, instance: wasmtime.Instance, name: str) -> None:
    if not call_export(store, instance, name):
        func = instance.exports(store)[name]
        assert isinstance(func, wasmtime.Func)
        func(store)


def route_settings(spec: ModuleSpec, defaults: Any) -> RouteSettings:
    """Merge a module entry's limits over the server defaults (``config.RouteDefaults``)."""
    lim = spec.limits
    try:
        limits = Limits(
            timeout=lim.timeout if lim.timeout is not None else defaults.timeout,
            fuel=lim.fuel if lim.fuel is not None else defaults.fuel,
            max_memory=lim.max_memory if lim.max_memory is not None else defaults.max_memory,
        )
    except UsageError as e:
        raise ConfigError(f"{spec.label}: {e}") from None
    return RouteSettings(
        limits=limits,
        max_request_body=lim.max_request_body or defaults.max_request_body,
        max_response_body=lim.max_response_body or defaults.max_response_body,
        max_concurrency=lim.max_concurrency,
    )
