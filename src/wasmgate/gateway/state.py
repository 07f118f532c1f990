"""Loading a modules.toml into a ready-to-serve route table (the gateway's immutable state).

Rules:
- A state is built completely, or not at all: any bad entry raises ``ConfigError`` naming it, so
  start-up refuses to begin and a reload keeps the running state.
- Each distinct module file is compiled once per engine (through the artifact cache), however many
  routes use it; ``_routes`` is run at load time and its routes are placed before the parent.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..config import GatewayConfig
from ..engine import EngineSettings, LoadedGuest, OutputPump, get_engine, load_guest
from ..errors import ConfigError, LoadError
from ..wagi.handler import ModuleHandler
from ..wagi.manifest import load_manifest
from ..wagi.routes import Route, RouteTable, expand_dynamic_routes
from ..wasihttp.route import ComponentRoute, component_warnings

__all__ = ["GatewayState", "load_state"]

SERVER_SOFTWARE = f"wasmgate/{__version__}"


@dataclass(frozen=True, slots=True)
class GatewayState:
    table: RouteTable[ModuleHandler]
    warnings: tuple[str, ...]
    watched: tuple[Path, ...]


def load_state(config: GatewayConfig, pump: OutputPump) -> GatewayState:
    manifest = load_manifest(config.modules_toml)
    warnings = list(manifest.warnings)
    global_env = dict(config.env)
    guests: dict[tuple[Path, EngineSettings], LoadedGuest] = {}
    routes: list[Route[ModuleHandler]] = []
    for spec in manifest.modules:
        limits = config.defaults.merged(spec.limits)  # the one merge rule (see limits.py)
        engine_settings = EngineSettings(consume_fuel=limits.fuel is not None, pooling=True)
        key = (spec.module_path, engine_settings)
        guest = guests.get(key)
        if guest is None:
            engine = get_engine(engine_settings)
            try:
                guest = load_guest(
                    spec.module_path,
                    engine,
                    cache=config.cache.open(engine.fingerprint),
                    name=spec.module,
                )
            except LoadError as e:
                raise ConfigError(f"{spec.label}: {e}") from None
            guests[key] = guest
        # A component is served as a wasi:http handler, a core module as WAGI.
        kind = ComponentRoute if guest.kind == "component" else ModuleHandler
        if guest.kind == "component":
            warnings.extend(component_warnings(spec))
        handler = kind(
            spec,
            guest,
            limits,
            global_env=global_env,
            default_host=config.hostname,
            server_software=SERVER_SOFTWARE,
            pump=pump,
        )
        if handler.link_error is not None:
            warnings.append(
                f"{spec.label}: cannot instantiate ({handler.link_error}); "
                "its requests will answer 500"
            )
        elif not handler.has_export(spec.entrypoint):
            warnings.append(
                f"{spec.label}: no exported function {spec.entrypoint!r}; "
                "its requests will answer 500"
            )
        route = Route(spec.route, handler, spec.entrypoint)
        declared = handler.discover_routes() if handler.link_error is None else []
        routes.extend(expand_dynamic_routes(route, declared) if declared else [route])
    watched = (config.modules_toml, *sorted({p for p, _ in guests}))
    return GatewayState(RouteTable(routes), tuple(warnings), watched)
