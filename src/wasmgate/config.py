"""The configuration objects that feed both the CLI and the Python API.

Rules:
- The CLI is a thin adapter: every ``wasmgate run`` flag is a field here (with the same name), and
  ``wasmgate.run(RunConfig(...))`` does exactly what the command line does.
- Values are validated when the object is built, so a bad value fails before any wasm is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .capabilities import INHERIT, Capabilities, DirGrant, Stdio
from .engine import ArtifactCache, EngineHandle, EngineSettings, default_cache_dir
from .limits import Limits

__all__ = ["CacheConfig", "RunConfig"]


@dataclass(frozen=True, slots=True)
class CacheConfig:
    """Where compiled artifacts are kept. ``directory=None`` means the default location
    (``$WASMGATE_CACHE_DIR``, else ``$XDG_CACHE_HOME/wasmgate``, else ``~/.cache/wasmgate``)."""

    enabled: bool = True
    directory: Path | None = None

    def open(self, engine: EngineHandle) -> ArtifactCache | None:
        if not self.enabled:
            return None
        return ArtifactCache(self.directory or default_cache_dir(), engine.fingerprint)


@dataclass(frozen=True, slots=True)
class RunConfig:
    """One ``wasmgate run``: a guest, what it is granted, and its limits."""

    module: Path
    args: tuple[str, ...] = ()
    argv0: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    dirs: tuple[DirGrant, ...] = ()
    limits: Limits = Limits()
    invoke: str | None = None
    allow_precompiled: bool = False
    cache: CacheConfig = CacheConfig()
    stdio: Stdio = field(default_factory=lambda: Stdio(INHERIT, INHERIT, INHERIT))

    def capabilities(self) -> Capabilities:
        argv0 = self.argv0 if self.argv0 is not None else self.module.name
        return Capabilities(
            args=(argv0, *self.args), env=self.env, dirs=self.dirs, stdio=self.stdio
        )

    def engine_settings(self) -> EngineSettings:
        return EngineSettings(consume_fuel=self.limits.fuel is not None)


@dataclass(frozen=True, slots=True)
class RouteDefaults:
    """Limits every route gets unless its ``modules.toml`` entry sets its own.

    Sane for a public gateway: a guest gets 30 s, 256 MiB of linear memory, no fuel budget, 10 MiB
    of request body and may answer with up to 16 MiB.
    """

    timeout: float = 30.0
    max_memory: int = 256 * 1024 * 1024
    fuel: int | None = None
    max_request_body: int = 10 * 1024 * 1024
    max_response_body: int = 16 * 1024 * 1024


def _default_threads() -> int:
    import os

    return max(2, os.cpu_count() or 2)


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """One ``wasmgate serve``: the modules.toml to serve and how to serve it.

    Every ``serve`` flag is a field here; ``wasmgate.gateway.create_app(GatewayConfig(...))``
    builds the same application the CLI serves.
    """

    modules_toml: Path
    listen: str = "127.0.0.1:3000"
    hostname: str = "localhost:3000"
    env: tuple[tuple[str, str], ...] = ()
    log_dir: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    defaults: RouteDefaults = RouteDefaults()
    workers: int = 1
    threads: int = field(default_factory=_default_threads)
    queue: int = 64
    metrics_listen: str | None = None
    watch: bool = False
    access_log: bool = True
    graceful_timeout: float = 30.0
    cache: CacheConfig = CacheConfig()

    def __post_init__(self) -> None:
        from .errors import UsageError

        if self.workers < 1:
            raise UsageError("workers must be at least 1")
        if self.threads < 1:
            raise UsageError("threads must be at least 1")
        if self.queue < 0:
            raise UsageError("queue must be zero or more")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise UsageError("--tls-cert and --tls-key go together")
