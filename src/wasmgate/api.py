"""Entry points shared by the CLI and Python callers."""

from __future__ import annotations

from .config import RunConfig
from .engine import LoadedGuest, Outcome, load, run_guest

__all__ = ["load", "load_for", "run"]


def load_for(config: RunConfig) -> LoadedGuest:
    """The guest ``config`` names, compiled for its engine settings (through the cache)."""
    return load(
        config.module,
        settings=config.engine_settings(),
        cache=config.cache,
        allow_precompiled=config.allow_precompiled,
    )


def run(config: RunConfig, guest: LoadedGuest | None = None) -> Outcome:
    """Do what ``wasmgate run`` does: load (unless ``guest`` is given), sandbox, run; guest
    behaviour comes back as an ``Outcome``."""
    if guest is None:
        guest = load_for(config)
    return run_guest(
        guest, config.capabilities(), config.limits, invoke=config.invoke, invoke_args=config.args
    )
