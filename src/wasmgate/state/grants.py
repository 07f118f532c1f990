"""What one route may reach: the stores it is granted and its configuration variables.

Rules:
- Deny by default, with Spin's spellings in modules.toml: ``key_value_stores = ["default",
  "cache"]`` lists the labels a route may open. Opening any other label is ``access-denied``
  (whether or not it exists); a granted label that no store is configured for is
  ``no-such-store`` (and a load-time warning).
- ``variables = { name = value }`` feeds ``wasi:config/store``. A value is a string (the value
  itself) or an inline table: ``{ env = "NAME" }`` takes it from the server's environment,
  ``{ file = "path" }`` from a file (relative to modules.toml; one trailing newline removed),
  either with ``secret = true``; a ``file`` value is secret unless ``secret = false``. Missing
  sources are load errors naming the variable, never its value. A variable name is
  ``[a-z0-9_]+`` (Spin's).
- A secret value never appears in a log, a metric label or an error message: ``Variable`` shows
  itself as ``<secret>``, and nothing in this package formats a value into a message.
- The same grants come from Python for an embedded component (``route_state``: the keyword
  arguments of ``instantiate_component``); a name or label that could not be written in
  modules.toml is a ``ValueError``, a value of the wrong type a ``TypeError``, neither quoting a
  value.
- Components find their grants in their run's state (``wasihttp.resources.RequestState.grants``);
  WAGI guests, whose host module is a plain function, find the route's ``RouteState`` through a
  ``ContextVar`` made current for one guest run (``active``). With none, every ``open`` is
  ``access-denied`` and there are no variables (``NO_GRANTS``).
- Every guest run that may open a route's stores is a use of its registry (``in_use``: WAGI
  runs through ``active``, component runs in ``wasihttp.handler``), so a reload never closes a
  store under a run that started before it (``runtime_config.StoreRegistry.enter``/``exit``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from ..errors import ConfigError
from .backends import Backend, StoreError
from .runtime_config import LABEL, StoreRegistry, registry_for

__all__ = [
    "NO_GRANTS",
    "RouteState",
    "Variable",
    "active",
    "current",
    "in_use",
    "parse_store_grants",
    "parse_variables",
    "route_state",
]

_VAR_NAME = re.compile(r"[a-z0-9_]+")


@dataclass(frozen=True, slots=True)
class Variable:
    value: str = field(repr=False)
    secret: bool = False

    def __repr__(self) -> str:
        return "Variable(<secret>)" if self.secret else f"Variable({self.value!r})"


def parse_store_grants(value: object, error: Callable[[str], ConfigError]) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise error("key_value_stores must be an array of store labels")
    for item in value:
        if not isinstance(item, str) or not LABEL.fullmatch(item):
            raise error("key_value_stores: a label is lower-case letters, digits, '_' and '-'")
    return tuple(dict.fromkeys(value))


def parse_variables(
    value: object,
    base_dir: Path,
    error: Callable[[str], ConfigError],
    environ: Mapping[str, str] | None = None,
) -> Mapping[str, Variable]:
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, dict):
        raise error("variables must be a table of name = value")
    env = os.environ if environ is None else environ
    out: dict[str, Variable] = {}
    for name, item in value.items():
        if not _VAR_NAME.fullmatch(name):
            raise error(f"variables: {name!r}: a name is lower-case letters, digits and '_'")
        where = f"variables.{name}"
        if isinstance(item, str):
            out[name] = Variable(item)
            continue
        if not isinstance(item, dict):
            raise error(f"{where} must be a string or a table with env or file")
        unknown = sorted(set(item) - {"env", "file", "secret"})
        if unknown:
            raise error(f"{where}: unknown key {unknown[0]!r} (env, file, secret)")
        secret = item.get("secret")
        if secret is not None and not isinstance(secret, bool):
            raise error(f"{where}: secret must be true or false")
        if ("env" in item) == ("file" in item):
            raise error(f"{where}: give exactly one of env and file")
        if "env" in item:
            source = item["env"]
            if not isinstance(source, str) or not source:
                raise error(f"{where}: env must name an environment variable")
            if source not in env:
                raise error(f"{where}: the server's environment has no {source}")
            out[name] = Variable(env[source], bool(secret))
            continue
        source = item["file"]
        if not isinstance(source, str) or not source:
            raise error(f"{where}: file must be a path")
        try:
            text = (base_dir / source).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise error(f"{where}: cannot read {source} ({type(e).__name__})") from None
        if text.endswith("\n"):
            text = text[:-1]
            if text.endswith("\r"):
                text = text[:-1]
        out[name] = Variable(text, True if secret is None else secret)
    return MappingProxyType(out)


class RouteState:
    """One route's grants over the process's stores, and its variables."""

    def __init__(
        self,
        registry: StoreRegistry | None,
        granted: tuple[str, ...],
        variables: Mapping[str, Variable],
    ) -> None:
        self.registry = registry
        self.granted = frozenset(granted)
        self.variables = variables

    def open(self, label: str) -> Backend:
        if label not in self.granted:
            raise StoreError("access-denied", f"store {label!r} is not granted to this route")
        if self.registry is None or not self.registry.configured(label):
            raise StoreError("no-such-store", f"no store {label!r} is configured")
        return self.registry.open(label)

    def missing(self) -> list[str]:
        """Granted labels no store is configured for (load-time warnings)."""
        return sorted(
            label
            for label in self.granted
            if self.registry is None or not self.registry.configured(label)
        )

    def variable(self, name: str) -> str | None:
        var = self.variables.get(name)
        return None if var is None else var.value

    def all_variables(self) -> list[tuple[str, str]]:
        return [(n, v.value) for n, v in self.variables.items()]


NO_GRANTS = RouteState(None, (), MappingProxyType({}))
_CURRENT: ContextVar[RouteState] = ContextVar("wasmgate_route_state", default=NO_GRANTS)


def route_state(
    key_value_stores: Sequence[str] = (),
    variables: Mapping[str, str | Variable] | None = None,
    runtime_config_file: Path | str | None = None,
    state_dir: Path | str | None = None,
) -> RouteState:
    """The grants of an embedded component, from Python values with modules.toml's spellings
    (``NO_GRANTS`` for none). The stores' registry is the one ``serve`` would open with the same
    ``runtime_config_file`` and ``state_dir`` (a broken file is a ``ConfigError``)."""
    if isinstance(key_value_stores, str | bytes):
        raise TypeError("key_value_stores must be a sequence of store labels, not one string")
    labels: list[str] = []
    for label in key_value_stores:
        if not isinstance(label, str):
            raise TypeError(f"key_value_stores: a label is a str, got {type(label).__name__}")
        if not LABEL.fullmatch(label):
            raise ValueError(
                f"key_value_stores: {label!r}: a label is lower-case letters, digits, '_' and '-'"
            )
        labels.append(label)
    values: dict[str, Variable] = {}
    for name, value in (variables or {}).items():
        if not isinstance(name, str) or not _VAR_NAME.fullmatch(name):
            raise ValueError(f"variables: {name!r}: a name is lower-case letters, digits and '_'")
        if isinstance(value, str):
            value = Variable(value)
        elif not isinstance(value, Variable) or not isinstance(value.value, str):
            raise TypeError(
                f"variables: {name}: expected a str or a Variable, got {type(value).__name__}"
            )
        values[name] = value
    if not labels and not values:
        return NO_GRANTS
    registry = None
    if labels:
        config = None if runtime_config_file is None else Path(runtime_config_file)
        registry = registry_for(config, None if state_dir is None else Path(state_dir))
    return RouteState(registry, tuple(dict.fromkeys(labels)), MappingProxyType(values))


def current() -> RouteState:
    return _CURRENT.get()


@contextmanager
def active(state: RouteState) -> Iterator[None]:
    """Make ``state`` current for one guest run (a use of its stores: ``in_use``)."""
    token = _CURRENT.set(state)
    try:
        with in_use(state):
            yield
    finally:
        _CURRENT.reset(token)


_IDLE = nullcontext()


def in_use(state: RouteState | None) -> AbstractContextManager[None]:
    """The context of one guest run that may open ``state``'s stores: while it lasts, a reload
    does not close them (nothing to count for a route granted none)."""
    if state is None or state.registry is None or not state.granted:
        return _IDLE
    return _Use(state.registry)


class _Use:
    __slots__ = ("registry",)

    def __init__(self, registry: StoreRegistry) -> None:
        self.registry = registry

    def __enter__(self) -> None:
        self.registry.enter()

    def __exit__(self, *exc: object) -> None:
        self.registry.exit()
