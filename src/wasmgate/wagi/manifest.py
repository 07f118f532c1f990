"""``modules.toml``, ``--env-file`` and ``-e K=V``: reading WAGI configuration into values.

``modules.toml`` rules:
- The file holds ``[[module]]`` entries, served in file order. Each has ``route`` and ``module``
  (required); ``entrypoint`` (default ``_start``), ``volumes`` (``{"/guest" = "host"}``, see
  below), ``environment`` (``{K = "V"}``), ``argv`` (a template using ``${SCRIPT_NAME}`` and
  ``${ARGS}``), ``allowed_hosts`` and ``http_max_concurrency`` (as deislabs/wagi 0.8); and our
  per-route limits ``timeout`` (a duration: ``"30s"`` or a number of seconds), ``max_memory``,
  ``max_request_body`` and ``max_response_body`` (sizes: ``"64MiB"`` or bytes), ``fuel`` (a
  positive integer) and ``max_concurrency`` (a positive integer: at most this many requests of
  the entry run at once; more are answered 503, so one slow or hostile route cannot take every
  worker thread from the others). All limits are optional; an absent one is ``None`` (the
  caller's default; for ``max_concurrency``, no per-route limit).
- State (Spin's spellings; rules in ``state.grants``): ``key_value_stores`` (the store labels the
  route may open, none by default) and ``variables`` (``{name = "value"}``, or
  ``{name = { env = "NAME" }}`` / ``{ file = "path" }`` with ``secret``) for ``wasi:config``.
- ``module`` is a path or a ``file://`` URL (``file:///abs/x.wasm``, ``file:rel/x.wasm``) to a
  ``.wasm`` or ``.wat`` file; ``bindle:``, ``oci:`` and ``http(s):`` references are refused.
  Relative paths, for ``module`` and for volume host directories, resolve against the folder
  holding the toml file (FIX: WAGI used the working directory, so a config worked from one
  folder only). The module file and the volume directories must exist when the file is loaded.
- A ``volumes`` value is WAGI's host directory string (``{"/data" = "data"}``: read-write, as in
  WAGI) or, our extension, an inline table ``{"/assets" = { path = "assets", read_only = true }}``:
  ``path`` (required) is the host directory, ``read_only`` (a boolean, default ``false``) grants
  it without create, write, rename or delete (``Volume.read_only``). Unknown keys in that table
  are warnings, as below; a wrong type is an error.
- Every error is one ``ConfigError`` line naming the file and the entry, e.g. ``modules.toml:
  module #2 (route "/api/..."): module file not found: api.wasm``. Messages quote paths as the
  user wrote them, never the resolved absolute paths.
- Unknown keys are warnings, not errors (a typo must not stop a server, nor pass in silence);
  so are entries that can never be reached (an earlier route matches all their paths), a route
  the built-in ``/healthz`` shadows, and ``environment`` names the CGI variables always override.
  Warnings are returned in ``Manifest.warnings`` for the caller to log.

Environment rules (shared by ``environment``, ``--env-file`` and ``-e``):
- A name is ``[A-Za-z_][A-Za-z0-9_]*`` (portable to every guest language's environment API); a
  value is any text without NUL (a WASI environment entry is NUL-terminated).
- ``--env-file`` lines are ``KEY=VALUE``; blank lines and lines starting with ``#`` are skipped,
  an optional ``export`` prefix is accepted, spaces around the name and the value are trimmed and
  one pair of matching quotes (``"..."`` or ``'...'``) around the value is removed, with no escape
  processing (WAGI's documented example is ``TEST_NAME = "test value"``). A later line overrides
  an earlier one. Any other line is a ``ConfigError`` naming the file and the line number.
- ``-e K=V`` splits at the first ``=`` and keeps the value verbatim (the shell already did the
  quoting); a bad assignment is a ``UsageError``.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..capabilities import DirGrant
from ..errors import ConfigError, UsageError
from ..limits import LIMIT_FIELDS, Limits
from ..state.grants import Variable, parse_store_grants, parse_variables
from ..units import parse_duration, parse_size
from .cgi import CGI_VARIABLES
from .routes import DEFAULT_ENTRYPOINT, HEALTH_PATH, RoutePattern

__all__ = [
    "Manifest",
    "ModuleSpec",
    "load_env_file",
    "load_manifest",
    "parse_env_assignment",
    "parse_manifest",
]

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TEMPLATE_FIELD = re.compile(r"\$\{([^}]*)\}")
_TEMPLATE_FIELDS = frozenset({"SCRIPT_NAME", "ARGS"})
_REMOTE_SCHEMES = frozenset({"bindle", "oci", "http", "https"})
_KNOWN_KEYS = (
    "route",
    "module",
    "entrypoint",
    "volumes",
    "environment",
    "argv",
    "allowed_hosts",
    "http_max_concurrency",
    "key_value_stores",
    "variables",
    "timeout",
    "max_memory",
    "fuel",
    "max_request_body",
    "max_response_body",
    "max_concurrency",
)
_UNSUPPORTED_WAGI_KEYS = frozenset({"repository", "bindle_server"})
_EMPTY_ENV: Mapping[str, str] = MappingProxyType({})
_EMPTY_VARS: Mapping[str, Variable] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ModuleSpec:
    """One ``[[module]]`` entry, checked and with its paths resolved."""

    index: int  # 1-based position in the file
    route: RoutePattern
    module: str  # as written, for messages
    module_path: Path
    entrypoint: str = DEFAULT_ENTRYPOINT
    volumes: tuple[DirGrant, ...] = ()  # read_only forbids create, write, rename and delete
    environment: Mapping[str, str] = field(default_factory=lambda: _EMPTY_ENV)
    argv: str | None = None
    allowed_hosts: tuple[str, ...] | None = None
    http_max_concurrency: int | None = None
    limits: Limits = Limits()  # the entry's own; a limit it does not set is None (the default's)
    key_value_stores: tuple[str, ...] = ()  # store labels granted (state.grants)
    variables: Mapping[str, Variable] = field(default_factory=lambda: _EMPTY_VARS)

    @property
    def label(self) -> str:
        """``module #2 (route "/api/...")``: how messages name this entry."""
        return f"module #{self.index} (route {_quote(self.route.text)})"


@dataclass(frozen=True, slots=True)
class Manifest:
    """A loaded ``modules.toml``: entries in file order, and warnings for the caller to log."""

    modules: tuple[ModuleSpec, ...]
    warnings: tuple[str, ...] = ()


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _shown(text: str) -> str:
    """A user-written path for a one-line message: as written, quoted if it is not printable."""
    return text if text.isprintable() else _quote(text)


def _toml_type(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return "a date/time"


def _env_problem(name: str, value: str) -> str | None:
    if _ENV_NAME.fullmatch(name) is None:
        return f"invalid environment variable name {_quote(name)} (expected e.g. API_KEY)"
    if "\x00" in value:
        return f"environment variable {name} contains NUL"
    return None


class _Entry:
    """Typed access to one ``[[module]]`` table; every failure names the entry."""

    def __init__(self, source: str, index: int, table: dict[str, Any]) -> None:
        self.table = table
        route = table.get("route")
        where = f"module #{index}" + (f" (route {_quote(route)})" if isinstance(route, str) else "")
        self.prefix = f"{source}: {where}"

    def error(self, message: str) -> ConfigError:
        return ConfigError(f"{self.prefix}: {message}")

    def required_string(self, key: str) -> str:
        if key not in self.table:
            raise self.error(f'missing required key "{key}"')
        value = self.string(key)
        if value is None:  # unreachable: TOML has no null
            raise self.error(f'missing required key "{key}"')
        return value

    def string(self, key: str) -> str | None:
        value = self.table.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.error(f"{key} must be a string, not {_toml_type(value)}")
        if not value:
            raise self.error(f"{key} must not be empty")
        return value

    def positive_int(self, key: str) -> int | None:
        value = self.table.get(key)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.error(f"{key} must be a positive integer, not {_toml_type(value)}")
        if value <= 0:
            raise self.error(f"{key} must be a positive integer, got {value}")
        return value

    def size(self, key: str) -> int | None:
        value = self.table.get(key)
        if value is None:
            return None
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise self.error(f'{key} must be a size such as "64MiB", not {_toml_type(value)}')
        try:
            return parse_size(value)
        except UsageError as exc:
            raise self.error(f"{key}: {exc.message}") from None

    def duration(self, key: str) -> float | None:
        value = self.table.get(key)
        if value is None:
            return None
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise self.error(f'{key} must be a duration such as "30s", not {_toml_type(value)}')
        try:
            return parse_duration(value)
        except UsageError as exc:
            raise self.error(f"{key}: {exc.message}") from None

    def string_table(self, key: str) -> dict[str, str]:
        value = self.table.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.error(f"{key} must be a table of strings, not {_toml_type(value)}")
        for name, item in value.items():
            if not isinstance(item, str):
                raise self.error(f"{key}.{name} must be a string, not {_toml_type(item)}")
        return value

    def string_list(self, key: str) -> tuple[str, ...] | None:
        value = self.table.get(key)
        if value is None:
            return None
        if not isinstance(value, list):
            raise self.error(f"{key} must be an array of strings, not {_toml_type(value)}")
        for item in value:
            if not isinstance(item, str) or not item:
                raise self.error(f"{key} must hold non-empty strings")
        return tuple(value)


def _module_file(entry: _Entry, reference: str, base_dir: Path) -> Path:
    scheme, colon, _ = reference.partition(":")
    if colon and scheme.lower() in _REMOTE_SCHEMES:
        raise entry.error(
            f"unsupported module reference {_quote(reference)}: "
            "only paths and file:// URLs are supported"
        )
    if colon and scheme.lower() == "file":
        url = urllib.parse.urlsplit(reference)
        if url.netloc not in ("", "localhost"):
            raise entry.error(
                f"file URL {_quote(reference)} names a host; write file:///absolute/path "
                "or a plain relative path"
            )
        written = urllib.parse.unquote(url.path)
    else:
        written = reference
    if not written:
        raise entry.error(f"module reference {_quote(reference)} names no file")
    path = base_dir / written
    if not path.is_file():
        problem = "module path is not a file" if path.exists() else "module file not found"
        raise entry.error(f"{problem}: {_shown(written)}")
    return path


_VOLUME_KEYS = ("path", "read_only")


def _volume_source(
    entry: _Entry, guest: str, value: object, warnings: list[str]
) -> tuple[str, bool]:
    """A ``volumes`` value -> (host directory as written, read_only)."""
    if isinstance(value, str):
        return value, False
    name = f"volume {_quote(guest)}"
    if not isinstance(value, dict):
        raise entry.error(
            f"{name} must be a host directory string or a table such as "
            f'{{ path = "data", read_only = true }}, not {_toml_type(value)}'
        )
    for key in value:
        if key not in _VOLUME_KEYS:
            close = difflib.get_close_matches(key, _VOLUME_KEYS, n=1)
            hint = f" (did you mean {_quote(close[0])}?)" if close else ""
            warnings.append(f"{entry.prefix}: {name}: unknown key {_quote(key)} ignored{hint}")
    if "path" not in value:
        raise entry.error(f'{name}: missing required key "path"')
    host = value["path"]
    if not isinstance(host, str):
        raise entry.error(f"{name}: path must be a string, not {_toml_type(host)}")
    read_only = value.get("read_only", False)
    if not isinstance(read_only, bool):
        raise entry.error(f"{name}: read_only must be a boolean, not {_toml_type(read_only)}")
    return host, read_only


def _volumes(entry: _Entry, base_dir: Path, warnings: list[str]) -> tuple[DirGrant, ...]:
    table = entry.table.get("volumes")
    if table is None:
        return ()
    if not isinstance(table, dict):
        raise entry.error(
            f'volumes must be a table such as {{"/data" = "data"}}, not {_toml_type(table)}'
        )
    volumes: list[DirGrant] = []
    for guest, value in table.items():
        if not guest or "\x00" in guest:
            raise entry.error(f"volume guest path {_quote(guest)} is invalid")
        host, read_only = _volume_source(entry, guest, value, warnings)
        if not host:
            raise entry.error(f"volume {_quote(guest)}: host directory is empty")
        path = base_dir / host
        if not path.is_dir():
            raise entry.error(f"volume {_quote(guest)}: host directory not found: {_shown(host)}")
        volumes.append(DirGrant(path, guest, read_only))
    return tuple(volumes)


def _environment(entry: _Entry, warnings: list[str]) -> Mapping[str, str]:
    environment = entry.string_table("environment")
    for name, value in environment.items():
        problem = _env_problem(name, value)
        if problem is not None:
            raise entry.error(f"environment: {problem}")
        if name in CGI_VARIABLES or name.startswith("HTTP_"):
            warnings.append(
                f"{entry.prefix}: environment.{name} is always replaced by the CGI variable "
                "of the same name"
            )
    return MappingProxyType(dict(environment)) if environment else _EMPTY_ENV


def _argv_template(entry: _Entry) -> str | None:
    template = entry.string("argv")
    if template is not None:
        for name in _TEMPLATE_FIELD.findall(template):
            if name not in _TEMPLATE_FIELDS:
                raise entry.error(
                    f"argv: unknown placeholder ${{{name}}} (known: ${{SCRIPT_NAME}}, ${{ARGS}})"
                )
    return template


def _unknown_key_warnings(entry: _Entry) -> list[str]:
    warnings = []
    for key in entry.table:
        if key in _KNOWN_KEYS:
            continue
        if key in _UNSUPPORTED_WAGI_KEYS:
            warnings.append(f"{entry.prefix}: key {_quote(key)} is not supported; ignored")
            continue
        close = difflib.get_close_matches(key, _KNOWN_KEYS, n=1)
        hint = f" (did you mean {_quote(close[0])}?)" if close else ""
        warnings.append(f"{entry.prefix}: unknown key {_quote(key)} ignored{hint}")
    return warnings


def _module_spec(
    source: str, index: int, table: object, base_dir: Path, warnings: list[str]
) -> ModuleSpec:
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: module #{index} must be a table, not {_toml_type(table)}")
    entry = _Entry(source, index, table)
    warnings.extend(_unknown_key_warnings(entry))
    route_text = entry.required_string("route")
    try:
        route = RoutePattern(route_text)
    except ConfigError as exc:
        raise entry.error(exc.message) from None
    reference = entry.required_string("module")
    entrypoint = entry.string("entrypoint") or DEFAULT_ENTRYPOINT
    return ModuleSpec(
        index=index,
        route=route,
        module=reference,
        module_path=_module_file(entry, reference, base_dir),
        entrypoint=entrypoint,
        volumes=_volumes(entry, base_dir, warnings),
        environment=_environment(entry, warnings),
        argv=_argv_template(entry),
        allowed_hosts=entry.string_list("allowed_hosts"),
        http_max_concurrency=entry.positive_int("http_max_concurrency"),
        limits=_limits(entry, route.text),
        key_value_stores=parse_store_grants(entry.table.get("key_value_stores"), entry.error),
        variables=parse_variables(entry.table.get("variables"), base_dir, entry.error),
    )


def _limits(entry: _Entry, route: str) -> Limits:
    limits = Limits(
        timeout=entry.duration("timeout"),
        max_memory=entry.size("max_memory"),
        fuel=entry.positive_int("fuel"),
        max_request_body=entry.size("max_request_body"),
        max_response_body=entry.size("max_response_body"),
        max_concurrency=entry.positive_int("max_concurrency"),
    )
    where = f"of route {_quote(route)} in modules.toml"
    return limits.named({name: f"{name} {where}" for name in LIMIT_FIELDS})


def _reachability_warnings(source: str, modules: tuple[ModuleSpec, ...]) -> list[str]:
    warnings = []
    for position, spec in enumerate(modules):
        if spec.route.base == HEALTH_PATH:
            warnings.append(
                f"{source}: {spec.label}: {HEALTH_PATH} is always answered by the built-in "
                "health check"
            )
        for earlier in modules[:position]:
            if earlier.route.covers(spec.route):
                warnings.append(
                    f"{source}: {spec.label}: unreachable, {earlier.label} comes first and "
                    "matches every path it does"
                )
                break
    return warnings


def parse_manifest(text: str, *, base_dir: Path, source: str = "modules.toml") -> Manifest:
    """Parse ``modules.toml`` text; relative paths resolve against ``base_dir``.

    ``source`` starts every message (``load_manifest`` passes the path as the user wrote it).
    """
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from None
    warnings = [
        f"{source}: unknown top-level key {_quote(key)} ignored"
        for key in document
        if key != "module"
    ]
    entries = document.get("module")
    if entries is None or entries == []:
        raise ConfigError(f"{source}: no [[module]] entries")
    if not isinstance(entries, list):
        raise ConfigError(f"{source}: 'module' must be an array of tables ([[module]])")
    modules = tuple(
        _module_spec(source, index, table, base_dir, warnings)
        for index, table in enumerate(entries, start=1)
    )
    warnings.extend(_reachability_warnings(source, modules))
    return Manifest(modules, tuple(warnings))


def load_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read and check a ``modules.toml`` file (see the module docstring for the rules)."""
    source = os.fspath(path)
    try:
        data = Path(source).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read file: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{source}: not valid UTF-8") from None
    return parse_manifest(text, base_dir=Path(source).absolute().parent, source=source)


def _env_file_line(line: str) -> tuple[str, str] | None:
    """``KEY=VALUE`` -> pair; ``None`` for a line that is not an assignment."""
    name, equals, value = line.partition("=")
    if not equals:
        return None
    name = name.strip().removeprefix("export ").strip()
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    return name, value


def load_env_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read an ``--env-file`` into a dict (see the module docstring for the format)."""
    source = os.fspath(path)
    try:
        text = Path(source).read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{source}: not valid UTF-8") from None
    environment: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pair = _env_file_line(line)
        if pair is None:
            raise ConfigError(f"{source} line {number}: expected KEY=VALUE")
        problem = _env_problem(*pair)
        if problem is not None:
            raise ConfigError(f"{source} line {number}: {problem}")
        environment[pair[0]] = pair[1]
    return environment


def parse_env_assignment(text: str) -> tuple[str, str]:
    """``"K=V"`` (from ``-e``) -> ``("K", "V")``; ``UsageError`` when it is not an assignment."""
    name, equals, value = text.partition("=")
    if not equals:
        raise UsageError(f"invalid environment assignment {_quote(text)} (expected KEY=VALUE)")
    problem = _env_problem(name, value)
    if problem is not None:
        raise UsageError(problem)
    return name, value
