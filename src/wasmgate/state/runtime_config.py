"""The runtime configuration file (``--runtime-config-file``, Spin's format) and the stores a
server process opens from it.

Rules:
- ``[key_value_store.<label>]`` tables name the backend of each store label:
  ``type = "sqlite"`` (Spin's ``"spin"`` is the same) with an optional ``path`` (a file; relative
  paths resolve against the runtime config file's folder; default ``<label>.db`` in the state
  directory), or ``type = "redis"`` with ``url`` (``redis://`` or ``rediss://``) and our optional
  ``prefix`` (a string put before every key) and ``timeout`` (seconds, default 2).
  Every table also takes the limits ``max_key_bytes``, ``max_value_bytes``, ``max_page_size``,
  ``default_page_size`` and ``max_batch`` (positive integers; see ``backends.StoreLimits``).
- Without a runtime config, or when it does not name ``default``, the label ``default`` is a
  SQLite file ``default.db`` in the state directory (``--state-dir``, default ``.wasmgate/state``
  under the working directory), created on first use. No other label exists unless configured.
- A label is ``[a-z0-9_-]+`` (Spin's labels). Unknown keys and tables are errors (a misspelt
  ``url`` must not silently fall back to another store). Messages never quote a URL: it may carry
  a password.
- A ``StoreRegistry`` opens each backend on first use and keeps it for the process (one SQLite
  connection per thread, one Redis connection pool); a reload of modules.toml keeps it.
"""

from __future__ import annotations

import re
import threading
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from .backends import Backend, StoreError, StoreLimits

__all__ = [
    "DEFAULT_STATE_DIR",
    "StoreConfig",
    "StoreRegistry",
    "load_runtime_config",
    "parse_runtime_config",
    "registry_for",
]

DEFAULT_STATE_DIR = Path(".wasmgate") / "state"
LABEL = re.compile(r"[a-z0-9_-]+")
_LIMIT_KEYS = (
    "max_key_bytes",
    "max_value_bytes",
    "max_page_size",
    "default_page_size",
    "max_batch",
)
_KEYS = {
    "sqlite": {"type", "path", *_LIMIT_KEYS},
    "redis": {"type", "url", "prefix", "timeout", *_LIMIT_KEYS},
}


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """One store label's backend (see the module rules)."""

    label: str
    type: str  # "sqlite" or "redis"
    path: Path | None = None  # sqlite; None: <label>.db in the state directory
    url: str = field(default="", repr=False)  # redis (may hold a password: never shown)
    prefix: str = ""
    timeout: float = 2.0
    limits: StoreLimits = field(default_factory=StoreLimits)


def parse_runtime_config(text: str, *, base_dir: Path, source: str) -> dict[str, StoreConfig]:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source}: invalid TOML: {e}") from None
    stores: dict[str, StoreConfig] = {}
    for key, value in doc.items():
        if key != "key_value_store":
            raise ConfigError(f"{source}: unknown table {key!r} (wasmgate reads key_value_store)")
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: key_value_store must be a table of stores")
        for label, table in value.items():
            stores[label] = _store(f"{source}: [key_value_store.{label}]", label, table, base_dir)
    return stores


def _store(where: str, label: str, table: object, base_dir: Path) -> StoreConfig:
    if not LABEL.fullmatch(label):
        raise ConfigError(f"{where}: a store label is lower-case letters, digits, '_' and '-'")
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table")
    kind = table.get("type")
    if kind == "spin":
        kind = "sqlite"
    if kind not in _KEYS:
        raise ConfigError(f'{where}: type must be "sqlite" (or "spin") or "redis"')
    unknown = sorted(set(table) - _KEYS[kind])
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} for a {kind} store")
    limits: dict[str, int] = {}
    for name in _LIMIT_KEYS:
        if name in table:
            v = table[name]
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{where}: {name} must be a positive integer")
            limits[name] = v
    try:
        store_limits = StoreLimits(**limits)
    except ValueError as e:
        raise ConfigError(f"{where}: {e}") from None
    if kind == "sqlite":
        path = table.get("path")
        if path is not None and (not isinstance(path, str) or not path):
            raise ConfigError(f"{where}: path must be a non-empty string")
        return StoreConfig(
            label, "sqlite", None if path is None else base_dir / path, limits=store_limits
        )
    url = table.get("url")
    if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"{where}: url must be a redis:// or rediss:// URL")
    prefix = table.get("prefix", "")
    if not isinstance(prefix, str):
        raise ConfigError(f"{where}: prefix must be a string")
    timeout = table.get("timeout", 2.0)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 60:
        raise ConfigError(f"{where}: timeout must be a number of seconds in (0, 60]")
    return StoreConfig(
        label, "redis", url=url, prefix=prefix, timeout=float(timeout), limits=store_limits
    )


def load_runtime_config(path: Path) -> dict[str, StoreConfig]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the runtime config ({type(e).__name__})") from None
    return parse_runtime_config(text, base_dir=path.parent, source=str(path))


class StoreRegistry:
    """The stores of one server process: configs by label, backends opened on first use."""

    def __init__(self, configs: Mapping[str, StoreConfig], state_dir: Path) -> None:
        self.state_dir = state_dir
        self.configs = dict(configs)
        if "default" not in self.configs:
            self.configs["default"] = StoreConfig("default", "sqlite")
        self._open: dict[str, Backend] = {}
        self._lock = threading.Lock()

    def configured(self, label: str) -> bool:
        return label in self.configs

    def open(self, label: str) -> Backend:
        """The backend of ``label``; ``StoreError("no-such-store")`` when none is configured."""
        backend = self._open.get(label)
        if backend is not None:
            return backend
        config = self.configs.get(label)
        if config is None:
            raise StoreError("no-such-store", f"no store {label!r} is configured")
        with self._lock:
            backend = self._open.get(label)
            if backend is None:
                backend = _make(config, self.state_dir)
                self._open[label] = backend
        return backend

    def close(self) -> None:
        with self._lock:
            opened, self._open = self._open, {}
        for backend in opened.values():
            backend.close()


def _make(config: StoreConfig, state_dir: Path) -> Backend:
    if config.type == "sqlite":
        from .backends.sqlite import SqliteBackend

        path = config.path or state_dir / f"{config.label}.db"
        return SqliteBackend(config.label, path, config.limits)
    from .backends.redis import RedisBackend

    return RedisBackend(
        config.label, config.url, config.limits, prefix=config.prefix, timeout=config.timeout
    )


_REGISTRIES: dict[tuple[Path | None, Path], StoreRegistry] = {}
_REGISTRIES_LOCK = threading.Lock()


def registry_for(runtime_config: Path | None, state_dir: Path | None) -> StoreRegistry:
    """The process's registry for these settings (one per pair: reloads reuse connections).
    The runtime config file is read on the first call only."""
    state = (state_dir or DEFAULT_STATE_DIR).absolute()
    key = (None if runtime_config is None else runtime_config.absolute(), state)
    with _REGISTRIES_LOCK:
        registry = _REGISTRIES.get(key)
        if registry is None:
            configs = {} if runtime_config is None else load_runtime_config(runtime_config)
            registry = StoreRegistry(configs, state)
            _REGISTRIES[key] = registry
    return registry
