"""Loading a modules.toml into a ready-to-serve route table (the gateway's immutable state).

Rules:
- A state is built completely, or not at all: any bad entry raises ``ConfigError`` naming it, so
  start-up refuses to begin and a reload keeps the running state.
- A route whose ``entrypoint`` the module does not export stops start-up (``ConfigError`` naming
  the route and the name), like a missing module file: it could only ever answer 500. A module
  that cannot be instantiated (an import the host does not provide) is a warning, and answers
  500, as in WAGI.
- ``manifest_text``, when given, is used instead of reading ``modules.toml`` again, and
  ``resolve`` maps each module path to the file to load instead (a ``--workers`` master's
  copies: see ``snapshot.py``); names in messages stay the manifest's. ``runtime_config_text``
  is used instead of reading ``--runtime-config-file`` (a worker gets the master's copy too).
  The runtime config is read and validated at every load, like modules.toml
  (``state.runtime_config.registry_for``): an invalid one fails the load.
- ``watched`` (for ``--watch``) is modules.toml, the runtime config file, and the module files.
- Each distinct module file is compiled once per engine (through the artifact cache), however many
  routes use it; ``_routes`` is run at load time and its routes are placed before the parent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..config import GatewayConfig
from ..engine import EngineSettings, LoadedGuest, OutputPump, get_engine, load_guest
from ..errors import ConfigError, LoadError
from ..state.grants import RouteState
from ..state.runtime_config import read_runtime_config_text, registry_for
from ..wagi.handler import ModuleHandler
from ..wagi.manifest import load_manifest, parse_manifest
from ..wagi.routes import Route, RouteTable, expand_dynamic_routes
from ..wasihttp.route import ComponentRoute, component_warnings

__all__ = ["GatewayState", "load_state", "read_manifest_text", "read_runtime_config_text"]

SERVER_SOFTWARE = f"wasmgate/{__version__}"


@dataclass(frozen=True, slots=True)
class GatewayState:
    table: RouteTable[ModuleHandler]
    warnings: tuple[str, ...]
    watched: tuple[Path, ...]


def read_manifest_text(path: Path) -> str:
    """The text of a modules.toml file; ``ConfigError`` (one line) if it cannot be read."""
    try:
        return path.read_bytes().decode("utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read file: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not valid UTF-8") from None


def load_state(
    config: GatewayConfig,
    pump: OutputPump,
    manifest_text: str | None = None,
    runtime_config_text: str | None = None,
    *,
    resolve: Callable[[Path], Path] | None = None,
) -> GatewayState:
    if manifest_text is None:
        manifest = load_manifest(config.modules_toml)
    else:
        toml = config.modules_toml
        base = toml.absolute().parent
        manifest = parse_manifest(manifest_text, base_dir=base, source=str(toml))
    warnings = list(manifest.warnings)
    global_env = dict(config.env)
    registry = registry_for(config.runtime_config_file, config.state_dir, runtime_config_text)
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
                path = resolve(spec.module_path) if resolve is not None else spec.module_path
                guest = load_guest(
                    path,
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
            state=RouteState(registry, spec.key_value_stores, spec.variables),
        )
        warnings.extend(
            f"{spec.label}: key_value_stores: no store {label!r} is configured "
            "(opening it answers no-such-store)"
            for label in handler.route_state.missing()
        )
        if handler.link_error is not None:
            warnings.append(
                f"{spec.label}: cannot instantiate ({handler.link_error}); "
                "its requests will answer 500"
            )
        elif not handler.has_export(spec.entrypoint):
            raise ConfigError(f"{spec.label}: entrypoint {spec.entrypoint!r} is not exported")
        route = Route(spec.route, handler, spec.entrypoint)
        declared = handler.discover_routes() if handler.link_error is None else []
        for subroute, entrypoint in declared:
            if not handler.has_export(entrypoint):
                raise ConfigError(
                    f"{spec.label}: _routes declares {subroute!r} with entrypoint "
                    f"{entrypoint!r}, which is not exported"
                )
        routes.extend(expand_dynamic_routes(route, declared) if declared else [route])
    watched = (config.modules_toml, *_runtime_config(config), *sorted({p for p, _ in guests}))
    registry.commit()  # the load succeeded: the previous load's stores go once idle
    return GatewayState(RouteTable(routes), tuple(warnings), watched)


def _runtime_config(config: GatewayConfig) -> tuple[Path, ...]:
    return () if config.runtime_config_file is None else (config.runtime_config_file,)
