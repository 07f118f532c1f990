"""The engine layer: runs wasm and knows nothing of HTTP. Other layers import from here.

- ``load_guest`` / ``LoadedGuest``: compile (through the artifact cache) and hold a guest.
- ``Program``: the one entry every face runs guests through (``program.py``).
- ``Outcome``: what a run did; ``classify_failure`` turns a wasm error into one.
- ``describe``, ``core_type``, ``wit_type`` ...: a guest's imports and exports as text.
- ``OutputPump``: captures a guest's stdout/stderr through pipes (``capture.py``).
"""

from typing import TYPE_CHECKING, Any

# Names resolve on first use (PEP 562): `wasmgate run` imports only what running a core module
# needs (no component types, no introspection), which is most of its start-up beyond Python's.
if TYPE_CHECKING:
    from .cache import ArtifactCache, CacheConfig, default_cache_dir
    from .capture import OutputPump, default_pump, private_dir
    from .deadline import cut_off
    from .engine import EngineHandle, EngineSettings, engine_version, get_engine
    from .introspect import (
        TypeNames,
        core_type,
        describe,
        item_type,
        named_types,
        type_name,
        wit_type,
    )
    from .loader import LoadedGuest, detect_kind, load, load_guest
    from .outcome import Outcome, classify_failure, exported_memory_size, fold_error, timed_out
    from .program import ComponentHost, Program, Session
    from .runner import format_results, parse_invoke_args, run_guest
    from .sandbox import arm_call

_LAZY = {
    "ArtifactCache": "cache",
    "CacheConfig": "cache",
    "ComponentHost": "program",
    "EngineHandle": "engine",
    "EngineSettings": "engine",
    "LoadedGuest": "loader",
    "Outcome": "outcome",
    "OutputPump": "capture",
    "Program": "program",
    "Session": "program",
    "TypeNames": "introspect",
    "arm_call": "sandbox",
    "classify_failure": "outcome",
    "core_type": "introspect",
    "cut_off": "deadline",
    "default_cache_dir": "cache",
    "default_pump": "capture",
    "describe": "introspect",
    "detect_kind": "loader",
    "engine_version": "engine",
    "exported_memory_size": "outcome",
    "fold_error": "outcome",
    "format_results": "runner",
    "get_engine": "engine",
    "item_type": "introspect",
    "load": "loader",
    "load_guest": "loader",
    "named_types": "introspect",
    "parse_invoke_args": "runner",
    "private_dir": "capture",
    "run_guest": "runner",
    "timed_out": "outcome",
    "type_name": "introspect",
    "wit_type": "introspect",
}


def __getattr__(name: str) -> Any:
    import importlib

    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "ArtifactCache",
    "CacheConfig",
    "ComponentHost",
    "EngineHandle",
    "EngineSettings",
    "LoadedGuest",
    "Outcome",
    "OutputPump",
    "Program",
    "Session",
    "TypeNames",
    "arm_call",
    "classify_failure",
    "core_type",
    "cut_off",
    "default_cache_dir",
    "default_pump",
    "describe",
    "detect_kind",
    "engine_version",
    "exported_memory_size",
    "fold_error",
    "format_results",
    "get_engine",
    "item_type",
    "load",
    "load_guest",
    "named_types",
    "parse_invoke_args",
    "private_dir",
    "run_guest",
    "timed_out",
    "type_name",
    "wit_type",
]
