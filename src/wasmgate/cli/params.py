"""Click parameter types: each runs one of wasmgate's parsers and turns its ``UsageError`` into a
clean one-line usage failure (exit status 2) naming the flag."""

from __future__ import annotations

from typing import Any

import click

from ..capabilities import parse_dir_grant, parse_env_grant
from ..errors import UsageError
from ..units import parse_duration, parse_size

__all__ = [
    "DIR",
    "DIR_RO",
    "DURATION",
    "ENV",
    "ENV_ASSIGN",
    "POSITIVE_INT",
    "SIZE",
    "ParsedType",
    "positive_int",
]


class ParsedType(click.ParamType):  # type: ignore[type-arg]
    """A click type that runs one of our parsers and turns its UsageError into a clean failure."""

    def __init__(self, name: str, parser: Any) -> None:
        self.name = name
        self._parser = parser

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return self._parser(value)
        except UsageError as e:
            self.fail(str(e), param, ctx)


SIZE = ParsedType("size", parse_size)
DURATION = ParsedType("duration", parse_duration)
ENV = ParsedType("KEY=VALUE|NAME", parse_env_grant)
DIR = ParsedType("HOST[::GUEST]", parse_dir_grant)
DIR_RO = ParsedType("HOST[::GUEST]", lambda v: parse_dir_grant(v, read_only=True))


def positive_int(value: str) -> int:
    try:
        n = int(value, 0)
    except ValueError:
        raise UsageError(f"invalid number {value!r}") from None
    if n <= 0:
        raise UsageError(f"{value!r} must be greater than zero")
    return n


POSITIVE_INT = ParsedType("integer", positive_int)


def _env_assignment(text: str) -> tuple[str, str]:
    from ..wagi.manifest import parse_env_assignment

    return parse_env_assignment(text)


ENV_ASSIGN = ParsedType("KEY=VALUE", _env_assignment)
