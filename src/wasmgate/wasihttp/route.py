"""A ``[[module]]`` entry whose module is a wasi:http component, as the gateway serves it.

Rules:
- Same keys as a WAGI route: ``route``, ``environment`` (plus the server's ``-e``/``--env-file``),
  every limit (``timeout``, ``max_memory``, ``fuel``, ``max_request_body``,
  ``max_response_body``, ``max_concurrency``), ``allowed_hosts`` and ``http_max_concurrency``
  for ``wasi:http/outgoing-handler`` (the policy of WAGI's outbound HTTP). ``entrypoint`` and
  ``argv`` do not apply (the handler is the component's ``wasi:http/incoming-handler`` export):
  either, when set, is a load-time warning, never silently dropped. ``volumes`` are granted
  through ``wasi:filesystem`` (read-only ones for reading only; see ``files``).
- A component that does not link (an import outside the proxy world, no handler export) loads
  with a warning and answers 500, as a WAGI module that cannot instantiate.
- The gateway's routing, admission, scheduling, metrics and logs see the same handler shape as
  for WAGI routes (this class stands in for ``ModuleHandler`` until the gateway types handlers
  by a protocol).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..engine.capture import OutputPump
from ..engine.loader import LoadedGuest
from ..errors import LinkError
from ..limits import Limits
from ..state.grants import RouteState
from ..wagi.cgi import CgiRequest
from ..wagi.handler import HandlerResult, ModuleHandler
from ..wagi.manifest import ModuleSpec
from ..wagi.outbound import OutboundPolicy
from ..wagi.routes import DEFAULT_ENTRYPOINT
from .handler import ProxyHandler
from .streaming import Exchange

__all__ = ["ComponentRoute", "component_warnings"]


def component_warnings(spec: ModuleSpec) -> list[str]:
    """Keys of ``spec`` that do not apply to a wasi:http component (see the module rules)."""
    out = []
    if spec.entrypoint != DEFAULT_ENTRYPOINT:
        out.append("entrypoint does not apply to a wasi:http component (it exports its handler)")
    if spec.argv is not None:
        out.append("argv does not apply to a wasi:http component")
    return [f"{spec.label}: {w}" for w in out]


class ComponentRoute(ModuleHandler):
    """A wasi:http component behind a route (the ``ModuleHandler`` shape, see the rules)."""

    def __init__(  # the base initializer builds a core-module linker: not called
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
        self.link_error: str | None = None
        self._proxy: ProxyHandler | None = None
        try:
            self._proxy = ProxyHandler(
                guest,
                limits,
                environment={**global_env, **spec.environment},
                label=spec.label,
                default_host=default_host,
                volumes=spec.volumes,
                grants=self.route_state,
                outbound=OutboundPolicy(
                    allowed_hosts=spec.allowed_hosts,
                    max_concurrency=spec.http_max_concurrency,
                    timeout=min(30.0, limits.timeout or 30.0),
                ),
            )
        except LinkError as e:
            self.link_error = str(e)

    def has_export(self, name: str) -> bool:
        return self._proxy is not None

    def discover_routes(self) -> list[tuple[str, str]]:
        return []

    @property
    def repeatable(self) -> bool:
        granted = bool(self.route_state.granted)  # store writes are effects
        return self._proxy is not None and self._proxy.repeatable and not granted

    streams = True

    def handle(
        self,
        request: CgiRequest,
        body: bytes,
        match: Any,
        budget: float | None = None,
        exchange: Exchange | None = None,
    ) -> HandlerResult:
        if self._proxy is None:
            return HandlerResult(500, None, "link", f"cannot instantiate: {self.link_error}")
        return self._proxy.handle(request, body, match, budget, exchange)
