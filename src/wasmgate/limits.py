"""Resource limits for a guest: one type for every face (run, call, the Python API, serve's
defaults and its modules.toml routes, outbound HTTP).

Rules:
- ``None`` means "no limit of this kind". A limit of zero or less is refused (it is a mistake,
  not a wish), and so is a value of the wrong type: ``InvalidSetting`` (a ``ValueError``) or
  ``SettingTypeError`` (a ``TypeError``), both ``UsageError``s (CLI exit status 2).
- Every face accepts the same spellings: durations as seconds or ``"5s"``/``"250ms"``/``"1m30s"``,
  sizes as bytes or ``"64MiB"``, fuel as a whole number. Values are normalised when the object is
  built (seconds as ``float``, bytes and fuel as ``int``).
- ``timeout`` is enforced by epoch interruption (one ticker thread per engine; see
  ``engine/engine.py``), and it bounds the guest's host calls too (``engine/deadline.py``).
- ``fuel`` counts wasm instructions (roughly); running out traps the guest.
- ``max_memory`` caps the bytes of linear memory a store may hold; ``memory.grow`` past it fails
  (the guest sees -1 and goes on its own way), and a module whose initial memory is already
  larger cannot be instantiated.
- ``max_request_body``, ``max_response_body`` and ``max_concurrency`` apply where a guest serves
  requests (``wasmgate serve``); the other faces have no request and ignore them.
- One merge rule: ``base.merged(override)`` takes each limit ``override`` sets and keeps ours for
  the rest (a modules.toml route over the server's defaults).
- ``names`` records how the user spelled each limit (``--max-memory``, ``max_memory of route
  /x in modules.toml``), so a message names the setting the user actually used; it follows each
  value through ``merged`` and takes no part in comparisons. Unnamed limits are called
  ``Limits.<field>``, as the Python API spells them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from .errors import InvalidSetting, SettingTypeError
from .units import parse_duration, parse_size

__all__ = ["CLI_NAMES", "LIMIT_FIELDS", "Limits"]

LIMIT_FIELDS = (
    "timeout",
    "fuel",
    "max_memory",
    "max_request_body",
    "max_response_body",
    "max_concurrency",
)
# The command line's spelling of each limit (``wasmgate run``/``call``/``serve``).
CLI_NAMES: Mapping[str, str] = {name: "--" + name.replace("_", "-") for name in LIMIT_FIELDS}


def _count(name: str, value: Any) -> int:
    """A whole number greater than zero: an ``int``, or a string of one (``"1_000_000"``)."""
    if isinstance(value, str):
        try:
            value = int(value.strip(), 0)
        except ValueError:
            raise InvalidSetting(f"{name} must be a whole number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise SettingTypeError(f"{name} must be a whole number, got {type(value).__name__}")
    if value <= 0:
        raise InvalidSetting(f"{name} must be greater than zero, got {value}")
    return value


def _size(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise SettingTypeError(
            f"{name} must be a size in bytes or a string such as '64MiB', "
            f"got {type(value).__name__}"
        )
    try:
        return parse_size(value)
    except InvalidSetting as e:
        raise InvalidSetting(f"{name}: {e}") from None


def _duration(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise SettingTypeError(
            f"{name} must be seconds or a string such as '5s', got {type(value).__name__}"
        )
    try:
        return parse_duration(value)
    except InvalidSetting as e:
        raise InvalidSetting(f"{name}: {e}") from None


_NORMALISE = {
    "timeout": _duration,
    "fuel": _count,
    "max_memory": _size,
    "max_request_body": _size,
    "max_response_body": _size,
    "max_concurrency": _count,
}


@dataclass(frozen=True, slots=True)
class Limits:
    timeout: float | None = None
    fuel: int | None = None
    max_memory: int | None = None
    max_request_body: int | None = None
    max_response_body: int | None = None
    max_concurrency: int | None = None
    names: tuple[tuple[str, str], ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        for name, normalise in _NORMALISE.items():
            value = getattr(self, name)
            if value is not None:
                normal = normalise(name, value)
                if normal is not value:
                    object.__setattr__(self, name, normal)

    def name_of(self, limit: str) -> str:
        """How the user spelled ``limit`` (e.g. ``--max-memory``), for messages."""
        for key, spelled in self.names:
            if key == limit:
                return spelled
        return f"Limits.{limit}"

    def named(self, names: Mapping[str, str]) -> Limits:
        """These limits, with ``names`` saying how the user spelled the limits set here."""
        spelled = tuple((k, names[k]) for k in LIMIT_FIELDS if k in names)
        return replace(self, names=spelled)

    def merged(self, override: Limits) -> Limits:
        """These limits with every limit that ``override`` sets replacing ours."""
        values: dict[str, Any] = {}
        names: list[tuple[str, str]] = []
        for f in fields(self):
            if f.name == "names":
                continue
            theirs = getattr(override, f.name)
            source = override if theirs is not None else self
            values[f.name] = getattr(source, f.name)
            names.extend((k, v) for k, v in source.names if k == f.name)
        return Limits(**values, names=tuple(names))
