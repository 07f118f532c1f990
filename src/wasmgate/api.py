"""Entry points shared by the CLI and Python callers."""

from __future__ import annotations

from pathlib import Path

from .config import CacheConfig, RunConfig
from .engine import EngineSettings, LoadedGuest, Outcome, get_engine, load_guest, run_guest

__all__ = ["load", "run"]


def load(
    source: Path | str | bytes,
    *,
    settings: EngineSettings | None = None,
    cache: CacheConfig = CacheConfig(),
    allow_precompiled: bool = False,
) -> LoadedGuest:
    """Compile a guest (path, ``.wat`` text or bytes) through the shared engine and cache."""
    engine = get_engine(settings)
    if isinstance(source, str):
        source = Path(source)
    return load_guest(source, engine, cache=cache.open(engine), allow_precompiled=allow_precompiled)


def run(config: RunConfig) -> Outcome:
    """Do what ``wasmgate run`` does: load, sandbox, run; guest behaviour comes back as Outcome."""
    guest = load(
        config.module,
        settings=config.engine_settings(),
        cache=config.cache,
        allow_precompiled=config.allow_precompiled,
    )
    return run_guest(
        guest, config.capabilities(), config.limits, invoke=config.invoke, invoke_args=config.args
    )
