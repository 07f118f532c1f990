"""Turning what a caller hands to ``instantiate`` into a compiled guest on the right engine.

Rules:
- A ``LoadedGuest`` is used as it is; paths, bytes and WAT go through ``engine.load`` (the shared
  engine and artifact cache, exactly as ``wasmgate run``). A ``str`` that starts with ``(`` is WAT
  text, any other ``str`` a path.
- Fuel metering is an engine setting: a fuel limit picks the fuel-metering engine, and a guest
  compiled for an engine without it cannot get a fuel limit (compile it with
  ``EngineSettings(consume_fuel=True)``).
"""

from __future__ import annotations

from pathlib import Path

from ..engine import CacheConfig, EngineSettings, LoadedGuest, load
from ..errors import UsageError
from ..limits import Limits

__all__ = ["Source", "resolve"]

Source = Path | str | bytes | LoadedGuest


def resolve(
    source: Source,
    limits: Limits,
    settings: EngineSettings | None,
    cache: CacheConfig,
    allow_precompiled: bool,
) -> LoadedGuest:
    if isinstance(source, LoadedGuest):
        guest = source
    else:
        if settings is None:
            settings = EngineSettings(consume_fuel=limits.fuel is not None)
        if isinstance(source, str) and source.lstrip().startswith("("):
            source = source.encode("utf-8")
        guest = load(source, settings=settings, cache=cache, allow_precompiled=allow_precompiled)
    if limits.fuel is not None and not guest.engine.settings.consume_fuel:
        raise UsageError(
            f"{guest.name}: a fuel limit needs a guest compiled with "
            "EngineSettings(consume_fuel=True)"
        )
    return guest
