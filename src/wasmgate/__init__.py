"""wasmgate: a WebAssembly host platform on the Wasmtime engine.

Run sandboxed WASI commands, embed WebAssembly in Python programs, and serve WAGI modules over
HTTP. Everything a guest may touch is granted explicitly (``Capabilities``); everything it may
consume is bounded (``Limits``).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("wasmgate")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

from .api import load, run
from .capabilities import INHERIT, Capabilities, DirGrant, Stdio
from .config import CacheConfig, RunConfig
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

__all__ = [
    "INHERIT",
    "ArtifactError",
    "CacheConfig",
    "CacheError",
    "Capabilities",
    "CgiError",
    "ConfigError",
    "DirGrant",
    "EngineSettings",
    "GuestExit",
    "GuestTrap",
    "LimitExceeded",
    "Limits",
    "LinkError",
    "LoadError",
    "LoadedGuest",
    "Outcome",
    "RunConfig",
    "Stdio",
    "UsageError",
    "WasmgateError",
    "__version__",
    "load",
    "run",
    "run_guest",
]
