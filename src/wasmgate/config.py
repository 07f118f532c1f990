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
