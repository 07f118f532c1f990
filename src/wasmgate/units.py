"""Parsing of human-written sizes and durations, shared by the CLI, the API and modules.toml.

Rules:
- Sizes are bytes: a plain integer, or a number with a unit: ``K``/``KB``/``KiB`` and so on. Both
  decimal-looking and binary spellings mean powers of 1024 (as the ``wasmtime`` CLI and most
  memory settings do), so ``64M`` == ``64MiB`` == 67108864.
- Durations are seconds: a plain number is seconds; units ``ms``, ``s``, ``m``, ``h``; compound
  forms such as ``1m30s`` are accepted. Zero and negative values are refused: a limit of zero is a
  mistake, not a request for no limit.
- Every failure is an ``InvalidSetting`` (a ``UsageError`` and a ``ValueError``) whose message
  quotes the input and shows a valid example.
"""

from __future__ import annotations

import re

from .errors import InvalidSetting

__all__ = ["format_duration", "format_size", "parse_duration", "parse_size"]

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1024**3,
    "gib": 1024**3,
    "t": 1024**4,
    "tb": 1024**4,
    "tib": 1024**4,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "": 1.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)?")


def parse_size(text: str | int) -> int:
    """``"64MiB"`` -> 67108864. Raises ``InvalidSetting`` for anything but a positive size."""
    if isinstance(text, bool):
        raise InvalidSetting(f"invalid size {text!r} (expected e.g. 64MiB)")
    if isinstance(text, int):
        value = text
    else:
        m = _SIZE_RE.match(text)
        unit = m.group(2).lower() if m else None
        if not m or unit not in _SIZE_UNITS:
            raise InvalidSetting(f"invalid size {text!r} (expected e.g. 64MiB, 512K or 1048576)")
        value = int(float(m.group(1)) * _SIZE_UNITS[unit])
    if value <= 0:
        raise InvalidSetting(f"invalid size {text!r}: must be greater than zero")
    return value


def parse_duration(text: str | float | int) -> float:
    """``"1m30s"`` -> 90.0, ``"250ms"`` -> 0.25, ``"5"`` -> 5.0 (seconds)."""
    if isinstance(text, bool):
        raise InvalidSetting(f"invalid duration {text!r} (expected e.g. 30s)")
    if isinstance(text, int | float):
        value = float(text)
    else:
        s = text.strip().lower()
        pos, value, ok = 0, 0.0, bool(s)
        while ok and pos < len(s):
            m = _DURATION_PART.match(s, pos)
            if not m:
                ok = False
                break
            unit = m.group(2) or ""
            if not unit and (pos != 0 or m.end() != len(s)):
                ok = False
                break
            value += float(m.group(1)) * _DURATION_UNITS[unit]
            pos = m.end()
        if not ok:
            raise InvalidSetting(f"invalid duration {text!r} (expected e.g. 30s, 250ms or 1m30s)")
    if value <= 0 or value != value or value == float("inf"):
        raise InvalidSetting(f"invalid duration {text!r}: must be greater than zero")
    return value


def format_size(n: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale and n % scale == 0:
            return f"{n // scale}{unit}"
    return f"{n}B" if n < 1024 else f"{n / 1024:.1f}KiB"


def format_duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"
