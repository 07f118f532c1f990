"""The engine layer: runs wasm and knows nothing of HTTP."""

from .cache import ArtifactCache, default_cache_dir
from .engine import EngineHandle, EngineSettings, engine_version, get_engine
from .loader import LoadedGuest, detect_kind, load_guest
from .outcome import Outcome, fold_error
from .runner import format_results, parse_invoke_args, run_guest

__all__ = [
    "ArtifactCache",
    "EngineHandle",
    "EngineSettings",
    "LoadedGuest",
    "Outcome",
    "default_cache_dir",
    "detect_kind",
    "engine_version",
    "fold_error",
    "format_results",
    "get_engine",
    "load_guest",
    "parse_invoke_args",
    "run_guest",
]
