"""wasmgate: a WebAssembly host platform on the Wasmtime engine.

Run sandboxed WASI commands, embed WebAssembly in Python programs, and serve WAGI modules over
HTTP. Everything a guest may touch is granted explicitly (``Capabilities``); everything it may
consume is bounded (``Limits``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import load, run
    from .capabilities import CAPTURE, INHERIT, Capabilities, Captured, DirGrant, Stdio
    from .config import CacheConfig, RunConfig
    from .embed import (
        ComponentError,
        ComponentInstance,
        Err,
        GuestMemory,
        GuestMemoryError,
        HostFunctions,
        Instance,
        MissingImports,
        Ok,
        Some,
        Variant,
        f32,
        f64,
        i32,
        i64,
        instantiate,
        instantiate_component,
    )
    from .engine import EngineSettings, LoadedGuest, Outcome, run_guest
    from .errors import (
        ArtifactError,
        CacheError,
        CgiError,
        ConfigError,
        GuestExit,
        GuestTrap,
        LimitExceeded,
        LinkError,
        LoadError,
        UsageError,
        WasmgateError,
    )
    from .limits import Limits
    from .state.grants import Variable

    __version__: str

# Imported on first use (PEP 562), so that ``import wasmgate`` or one of its submodules costs
# only what that use needs: start-up time is most of a short ``wasmgate run``.
_LAZY = {
    "load": "api",
    "run": "api",
    "CAPTURE": "capabilities",
    "Captured": "capabilities",
    "INHERIT": "capabilities",
    "Capabilities": "capabilities",
    "DirGrant": "capabilities",
    "Stdio": "capabilities",
    "CacheConfig": "config",
    "RunConfig": "config",
    "ComponentError": "embed",
    "ComponentInstance": "embed",
    "Err": "embed",
    "GuestMemory": "embed",
    "GuestMemoryError": "embed",
    "HostFunctions": "embed",
    "Instance": "embed",
    "MissingImports": "embed",
    "Ok": "embed",
    "Some": "embed",
    "Variant": "embed",
    "f32": "embed",
    "f64": "embed",
    "i32": "embed",
    "i64": "embed",
    "instantiate": "embed",
    "instantiate_component": "embed",
    "EngineSettings": "engine",
    "LoadedGuest": "engine",
    "Outcome": "engine",
    "run_guest": "engine",
    "ArtifactError": "errors",
    "CacheError": "errors",
    "CgiError": "errors",
    "ConfigError": "errors",
    "GuestExit": "errors",
    "GuestTrap": "errors",
    "LimitExceeded": "errors",
    "LinkError": "errors",
    "LoadError": "errors",
    "UsageError": "errors",
    "WasmgateError": "errors",
    "Limits": "limits",
    "Variable": "state.grants",
}
# Submodules that ``import wasmgate`` used to load eagerly, still reachable as attributes.
_SUBMODULES = frozenset({"api", "capabilities", "config", "engine", "errors", "limits"})


def __getattr__(name: str) -> Any:
    import importlib

    if name == "__version__":
        from ._metadata import distribution_version

        try:
            value: Any = distribution_version("wasmgate")
        except ModuleNotFoundError:  # PackageNotFoundError: a source tree, not installed
            value = "0.0.0"
    elif name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    elif name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "CAPTURE",
    "INHERIT",
    "ArtifactError",
    "CacheConfig",
    "CacheError",
    "Capabilities",
    "Captured",
    "CgiError",
    "ComponentError",
    "ComponentInstance",
    "ConfigError",
    "DirGrant",
    "EngineSettings",
    "Err",
    "GuestExit",
    "GuestMemory",
    "GuestMemoryError",
    "GuestTrap",
    "HostFunctions",
    "Instance",
    "LimitExceeded",
    "Limits",
    "LinkError",
    "LoadError",
    "LoadedGuest",
    "MissingImports",
    "Ok",
    "Outcome",
    "RunConfig",
    "Some",
    "Stdio",
    "UsageError",
    "Variable",
    "Variant",
    "WasmgateError",
    "__version__",
    "f32",
    "f64",
    "i32",
    "i64",
    "instantiate",
    "instantiate_component",
    "load",
    "run",
    "run_guest",
]
