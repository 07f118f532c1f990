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
- Every load of the gateway's configuration (start-up, and each reload: SIGHUP, ``--watch``)
  reads the runtime config again (``registry_for``), with the same validation: an invalid one
  fails the load, and the running configuration keeps serving. Each load gets its own
  ``StoreRegistry`` (label -> config). The backends themselves live in one pool per process,
  keyed by their whole config (the SQLite path resolved): a store whose config did not change
  keeps its backend, and so its connections (one SQLite connection per thread, one Redis
  connection pool), across reloads. A backend is closed when no registry holds it. A registry
  holds its backends until a later load of the same settings succeeds (``commit``) and the last
  guest run using it that started before has ended (``enter``/``exit`` around each run), so a
  store removed or changed by a reload is closed as soon as no request still uses the old
  configuration (a request keeps the configuration it started with, stores included). A registry
  never committed (a load that failed, a master's check) lets go when it is garbage. The log
  says which label was closed, never a URL.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import tomllib
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
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
    "read_runtime_config_text",
    "registry_for",
]

log = logging.getLogger("wasmgate.state")
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


def read_runtime_config_text(path: Path) -> str:
    """The text of a runtime config file; ``ConfigError`` (one line, no content) otherwise."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the runtime config ({type(e).__name__})") from None


def load_runtime_config(path: Path, text: str | None = None) -> dict[str, StoreConfig]:
    """The stores of the runtime config file ``path``; ``text`` (a copy of the file already
    read, e.g. a worker's copy of what its master validated) is parsed instead of reading it.
    Relative paths resolve against the file's folder either way."""
    if text is None:
        text = read_runtime_config_text(path)
    return parse_runtime_config(text, base_dir=path.parent, source=str(path))


class StoreRegistry:
    """The stores of one load of the configuration: configs by label; backends from the
    process's pool, opened on first use (see the module rules).

    A registry holds its backends in the pool (keeps them open) from its creation until it is
    retired (a later load of the same settings committed: ``commit``) and no guest run that
    uses it is in flight (``enter``/``exit``, from ``grants.active``), or until ``close``, or
    until it is garbage. A retired registry used again takes its backends back (they reopen)."""

    def __init__(
        self,
        configs: Mapping[str, StoreConfig],
        state_dir: Path,
        *,
        slot: tuple[Path | None, Path] | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.configs = dict(configs)
        if "default" not in self.configs:
            self.configs["default"] = StoreConfig("default", "sqlite")
        self._keys = {label: _pool_key(c, state_dir) for label, c in self.configs.items()}
        self._slot = slot
        self._hold = _Hold(tuple(self._keys.values()))
        self._hold.take()
        weakref.finalize(self, self._hold.drop, True)

    def configured(self, label: str) -> bool:
        return label in self.configs

    def open(self, label: str) -> Backend:
        """The backend of ``label``; ``StoreError("no-such-store")`` when none is configured."""
        hold = self._hold
        backend = hold.opened.get(label)
        if backend is not None and hold.held:
            return backend
        key = self._keys.get(label)
        if key is None:
            raise StoreError("no-such-store", f"no store {label!r} is configured")
        with hold.lock:
            if hold.closed:
                raise StoreError("other", f"store {label!r}: this configuration was closed")
            hold.take()  # a retired registry used outside a run: its backends come back
            backend = _POOL.backend(key)
            hold.opened[label] = backend
        return backend

    def commit(self) -> None:
        """This registry is now the one in service for its settings (its load succeeded): the
        one committed before it is retired."""
        if self._slot is None:
            return
        with _SLOTS_LOCK:
            previous = _SLOTS.get(self._slot)
            _SLOTS[self._slot] = weakref.ref(self)
        before = None if previous is None else previous()
        if before is not None and before is not self:
            before._hold.retire()

    def enter(self) -> None:
        """A guest run that may use these stores begins."""
        hold = self._hold
        with hold.lock:
            hold.runs += 1
            if not hold.closed:
                hold.take()

    def exit(self) -> None:
        """That run ended."""
        hold = self._hold
        with hold.lock:
            hold.runs -= 1
            if hold.retired and hold.runs == 0:
                hold.drop()

    def close(self) -> None:
        """Give up this registry's stores now: each backend no other registry holds is closed;
        ``open`` fails from now on."""
        hold = self._hold
        with hold.lock:
            hold.closed = True
            hold.drop()


class _Hold:
    """A registry's claim on its backends in the pool (apart from the registry, so that the
    finalizer of a registry that is garbage can still drop it)."""

    def __init__(self, keys: tuple[StoreConfig, ...]) -> None:
        self.keys = keys
        self.lock = threading.Lock()
        self.held = False
        self.runs = 0
        self.retired = False
        self.closed = False
        self.opened: dict[str, Backend] = {}

    def take(self) -> None:  # with the lock, or before anyone else can see it
        if not self.held:
            _POOL.acquire(self.keys)
            self.held = True

    def drop(self, final: bool = False) -> None:  # with the lock, unless final (garbage)
        if final:
            self.closed = True
        if self.held:
            self.held = False
            self.opened = {}
            _POOL.release(self.keys)

    def retire(self) -> None:
        with self.lock:
            self.retired = True
            if self.runs == 0:
                self.drop()


_SLOTS: dict[tuple[Path | None, Path], weakref.ref[StoreRegistry]] = {}
_SLOTS_LOCK = threading.Lock()


def _pool_key(config: StoreConfig, state_dir: Path) -> StoreConfig:
    """The config that says which backend to share: a SQLite path resolved."""
    if config.type != "sqlite":
        return config
    path = config.path or state_dir / f"{config.label}.db"
    return dataclasses.replace(config, path=path.absolute())


@dataclass(slots=True)
class _Entry:
    refs: int = 0
    backend: Backend | None = None


class _Pool:
    """The process's backends, counted by the registries that name them.

    ``release`` runs when a registry is garbage: from the garbage collector, in any thread,
    possibly while this very thread holds the lock. So it never waits for the lock: it leaves
    its keys in ``_pending``, and whoever holds the lock handles them before letting it go
    (then checks once more, for keys left while it was letting go)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[StoreConfig, _Entry] = {}
        self._pending: list[tuple[StoreConfig, ...]] = []

    def acquire(self, keys: tuple[StoreConfig, ...]) -> None:
        with self._locked():
            for key in keys:
                self._entries.setdefault(key, _Entry()).refs += 1

    def release(self, keys: tuple[StoreConfig, ...]) -> None:
        self._pending.append(keys)
        self._drain_if_free()

    def backend(self, key: StoreConfig) -> Backend:
        with self._locked():
            entry = self._entries.get(key)
            if entry is None:  # cannot happen while a registry names it
                raise StoreError("other", f"store {key.label!r}: no longer configured")
            if entry.backend is None:
                entry.backend = _make(key)
            return entry.backend

    def open_labels(self) -> list[str]:
        """Labels of the backends open now (for tests and diagnostics)."""
        with self._locked():
            return sorted(k.label for k, e in self._entries.items() if e.backend is not None)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self._lock.acquire()
        try:
            yield
        finally:
            closing = self._drain()
            self._lock.release()
            _close_all(closing)
        self._drain_if_free()

    def _drain_if_free(self) -> None:
        while self._pending and self._lock.acquire(blocking=False):
            try:
                closing = self._drain()
            finally:
                self._lock.release()
            _close_all(closing)

    def _drain(self) -> list[Backend]:
        closing: list[Backend] = []
        while self._pending:
            for key in self._pending.pop():
                entry = self._entries.get(key)
                if entry is None:
                    continue
                entry.refs -= 1
                if entry.refs <= 0:
                    del self._entries[key]
                    if entry.backend is not None:
                        closing.append(entry.backend)
        return closing


def _close_all(backends: list[Backend]) -> None:
    for backend in backends:
        try:
            backend.close()
        except Exception:  # closing one must not stop the others
            log.warning("store %r: closing failed", backend.label)
        else:
            log.info("store %r: closed (no longer in the configuration)", backend.label)


_POOL = _Pool()


def _make(config: StoreConfig) -> Backend:
    if config.type == "sqlite":
        from .backends.sqlite import SqliteBackend

        assert config.path is not None  # resolved by _pool_key
        return SqliteBackend(config.label, config.path, config.limits)
    from .backends.redis import RedisBackend

    return RedisBackend(
        config.label, config.url, config.limits, prefix=config.prefix, timeout=config.timeout
    )


def registry_for(
    runtime_config: Path | None, state_dir: Path | None, text: str | None = None
) -> StoreRegistry:
    """A registry for one load of the configuration: the runtime config file read now (or
    ``text``, a copy of it already read), validated (``ConfigError``). Backends whose config is
    unchanged since an earlier load are the same objects (see the module rules). Call its
    ``commit`` once the load it is part of has succeeded."""
    state = (state_dir or DEFAULT_STATE_DIR).absolute()
    configs = {} if runtime_config is None else load_runtime_config(runtime_config, text)
    slot = (None if runtime_config is None else runtime_config.absolute(), state)
    return StoreRegistry(configs, state, slot=slot)
