"""WAGI routing: route patterns, the route table and ``_routes`` declarations (pure, no I/O).

Route text rules (checked once, when a pattern is built):
- A route starts with ``/`` and is printable ASCII without spaces: the table matches the *raw*
  request path (still percent-encoded, as WAGI does), so a route with other characters could never
  match; write them percent-encoded instead.
- ``?`` and ``#`` are refused (a route matches the path only), and so is an empty segment
  (``//``): both are always mistakes.
- ``...`` is only allowed as the final segment ``/...``, which makes the route a wildcard.

Matching rules (deislabs/wagi 0.8):
- ``/x`` is exact: it matches ``/x`` only, not ``/x/`` nor ``/x/y``.
- ``/x/...`` matches ``/x``, ``/x/`` and every path under ``/x/``, never ``/xy``. ``/...`` matches
  every path.
- The built-in health route ``/healthz`` (exact) is tried first and cannot be overridden. The table
  reports it as data (``HEALTH_CHECK``); the gateway turns that into ``200 OK``.
- Then routes are tried in table order, and the first match wins. No match is ``None`` (the
  gateway answers 404).
- Paths are compared as received: no percent-decoding and no dot-segment removal, so ``/%61pp``
  is not ``/app``. Routing is therefore never fooled by an encoded ``/``.

``_routes`` rules (a module exporting ``_routes`` prints one ``<subroute> <entrypoint>`` per line
at start-up; the gateway runs it, this module interprets the output):
- Blank lines are skipped; any other line must have exactly two whitespace-separated words, else
  ``ConfigError`` naming the line. A subroute without a leading ``/`` gets one (WAGI joins both
  spellings the same way). Output with no routes at all declares nothing (WAGI refused it; an empty
  declaration is harmless, the parent route still serves).
- Each subroute is joined onto the parent route with exactly one ``/`` between them: parent
  ``/app`` or ``/app/...`` plus ``/hello`` is ``/app/hello``; plus ``/files/...`` is
  ``/app/files/...``; plus ``/...`` is ``/app/...``; plus ``/`` is ``/app/``.
- Precedence is WAGI's documented rule: among the lines of one module, the *last* printed line that
  matches wins. That is implemented by ordering, so the table stays "first match wins": the joined
  routes are placed in reverse print order, all before the parent route itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from ..errors import ConfigError

__all__ = [
    "DEFAULT_ENTRYPOINT",
    "HEALTH_CHECK",
    "HEALTH_PATH",
    "HealthCheck",
    "Route",
    "RouteMatch",
    "RoutePattern",
    "RouteTable",
    "expand_dynamic_routes",
    "parse_routes_output",
]

H = TypeVar("H")

DEFAULT_ENTRYPOINT = "_start"
HEALTH_PATH = "/healthz"
_WILDCARD_SUFFIX = "/..."


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """The built-in health route's answer, as data: the gateway sends it as it is."""

    path: str = HEALTH_PATH
    status: int = 200
    headers: tuple[tuple[bytes, bytes], ...] = ((b"content-type", b"text/plain; charset=utf-8"),)
    body: bytes = b"OK"


HEALTH_CHECK = HealthCheck()


def _route_problem(text: str) -> str | None:
    """Why ``text`` is not a valid route, or ``None`` if it is."""
    if not text:
        return "route is empty"
    if not text.startswith("/"):
        return "route must start with '/'"
    if not text.isascii():
        return "route must be ASCII (percent-encode other characters)"
    if any(ch <= " " or ch == "\x7f" for ch in text):
        return "route must not contain spaces or control characters"
    if "?" in text or "#" in text:
        return "route must not contain '?' or '#' (routes match the path only)"
    if "//" in text:
        return "route must not contain an empty segment ('//')"
    head = text.removesuffix(_WILDCARD_SUFFIX)
    if "..." in head:
        return "'...' is only allowed as the final segment '/...'"
    return None


@dataclass(frozen=True, slots=True)
class RoutePattern:
    """A validated route such as ``/app`` (exact) or ``/app/...`` (wildcard).

    ``RoutePattern(text)`` raises ``ConfigError`` (reason only; callers add which entry) when the
    text breaks a rule of the module docstring. ``base`` is the text without ``/...`` (``""`` for
    ``/...``); it is also the CGI ``SCRIPT_NAME`` of a wildcard route.
    """

    text: str
    base: str = field(init=False)
    wildcard: bool = field(init=False)
    _base_slash: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        problem = _route_problem(self.text)
        if problem is not None:
            raise ConfigError(problem)
        wildcard = self.text.endswith(_WILDCARD_SUFFIX)
        base = self.text[: -len(_WILDCARD_SUFFIX)] if wildcard else self.text
        object.__setattr__(self, "wildcard", wildcard)
        object.__setattr__(self, "base", base)
        object.__setattr__(self, "_base_slash", base + "/")

    @property
    def script_name(self) -> str:
        """CGI ``SCRIPT_NAME``: the route without ``/...``."""
        return self.base

    def matches(self, raw_path: str) -> bool:
        if not self.wildcard:
            return raw_path == self.text
        return raw_path == self.base or raw_path.startswith(self._base_slash)

    def path_info(self, raw_path: str) -> str:
        """The part of a matching ``raw_path`` after ``SCRIPT_NAME`` (``""`` for exact routes)."""
        return raw_path[len(self.base) :] if self.wildcard else ""

    def covers(self, other: RoutePattern) -> bool:
        """True when every path ``other`` matches is also matched by this pattern."""
        if not self.wildcard:
            return not other.wildcard and other.text == self.text
        return self.matches(other.base if other.wildcard else other.text)

    def child(self, subroute: str) -> RoutePattern:
        """Join a ``_routes`` subroute onto this route with exactly one ``/`` between them."""
        sub = RoutePattern(subroute if subroute.startswith("/") else "/" + subroute)
        parent = self.base.rstrip("/")
        if sub.wildcard and not sub.base:
            return RoutePattern(parent + _WILDCARD_SUFFIX)
        joined = parent + "/" + sub.base.lstrip("/")
        return RoutePattern(joined + _WILDCARD_SUFFIX if sub.wildcard else joined)


@dataclass(frozen=True, slots=True)
class Route(Generic[H]):
    """One table entry: a pattern, the gateway's handler for it, and the function to call."""

    pattern: RoutePattern
    handler: H
    entrypoint: str = DEFAULT_ENTRYPOINT


@dataclass(frozen=True, slots=True)
class RouteMatch(Generic[H]):
    """A request path matched to a route; ``raw_path_info`` is the raw path after SCRIPT_NAME."""

    route: Route[H]
    raw_path: str
    raw_path_info: str


class RouteTable(Generic[H]):
    """Routes in precedence order, behind the built-in health route. Immutable once built."""

    __slots__ = ("_routes",)

    def __init__(self, routes: Iterable[Route[H]]) -> None:
        self._routes = tuple(routes)

    @property
    def routes(self) -> tuple[Route[H], ...]:
        return self._routes

    def match(self, raw_path: str) -> RouteMatch[H] | HealthCheck | None:
        """Route ``raw_path`` (no query string): health check, first matching route, or None."""
        if raw_path == HEALTH_PATH:
            return HEALTH_CHECK
        for route in self._routes:
            pattern = route.pattern
            if pattern.matches(raw_path):
                return RouteMatch(route, raw_path, pattern.path_info(raw_path))
        return None


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def parse_routes_output(stdout: bytes, *, origin: str = "_routes output") -> list[tuple[str, str]]:
    """Parse what ``_routes`` printed into ``(subroute, entrypoint)`` pairs, in print order.

    Subroutes are returned with their leading ``/``. ``origin`` starts every error message (the
    gateway passes e.g. ``'module #2 (route "/app/...") _routes output'``).
    """
    try:
        text = stdout.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{origin}: not valid UTF-8") from None
    declared: list[tuple[str, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        words = line.split()
        if not words:
            continue
        if len(words) != 2:
            raise ConfigError(
                f'{origin} line {number}: expected "<route> <entrypoint>", got {_quote(line)}'
            )
        subroute, entrypoint = words
        if not entrypoint.isprintable():
            raise ConfigError(f"{origin} line {number}: entrypoint has control characters")
        if not subroute.startswith("/"):
            subroute = "/" + subroute
        try:
            RoutePattern(subroute)
        except ConfigError as exc:
            raise ConfigError(f"{origin} line {number}: {exc.message}") from None
        declared.append((subroute, entrypoint))
    return declared


def expand_dynamic_routes(parent: Route[H], declared: Sequence[tuple[str, str]]) -> list[Route[H]]:
    """The table entries for a module that declared ``_routes``: joined routes, then the parent.

    Joined routes come in reverse print order so that the last printed line wins.
    """
    children = [
        Route(parent.pattern.child(subroute), parent.handler, entrypoint)
        for subroute, entrypoint in declared
    ]
    children.reverse()
    children.append(parent)
    return children
