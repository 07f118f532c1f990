"""WAVE (the WebAssembly Value Encoding) text for component values, typed by WIT.

What ``wasmtime run --invoke 'f("x")'`` accepts and prints, so ``wasmgate call`` reads and writes
the same text:

=========  ============================================
bool       ``true``, ``false``
integers   ``123``, ``-9``
floats     ``3.5``, ``6.02e23``, ``nan``, ``inf``, ``-inf``
char       ``'x'``, ``'\\''``, ``'\\u{1f600}'``
string     ``"abc\\t\\"quoted\\"\\n"``
list       ``[1, 2, 3]``
tuple      ``("a", 1)``
record     ``{name: "Ada", age: 36}`` (``option`` fields may be left out), ``{:}`` when empty
variant    ``circle(2.5)``, ``empty``
enum       ``red``
option     ``some(1)``, ``none``, or a bare ``1``
result     ``ok(1)``, ``err("no")``, ``ok``, or a bare ok value
flags      ``{read, write}``, ``{}``
=========  ============================================

Rules:
- Whitespace between tokens and ``// comments`` are ignored. Labels are kebab-case; a case named
  like a keyword (``true``, ``none``, ``ok``, ``nan``...) is written with a ``%`` prefix.
- Parsing is driven by the expected WIT type, so errors say what was expected and where
  (``column 9: expected u32, found "x"``). Parsed values are in the shapes ``values`` accepts;
  printing takes the shapes ``values`` returns.
- Printing is canonical: floats in their shortest round-tripping form (for ``f32`` the shortest
  that survives a trip through 32 bits), flags in declaration order, options and results always
  explicit (``some(..)``/``ok(..)``), record fields in declaration order.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Iterator, Sequence
from typing import Any

from wasmtime import component as cm

from ..errors import UsageError
from .values import INT_RANGES, Err, Ok, Some

__all__ = [
    "WaveError",
    "format_string",
    "format_value",
    "parse_args",
    "parse_call",
    "parse_string",
    "parse_value",
]

KEYWORDS = frozenset({"true", "false", "some", "none", "ok", "err", "inf", "nan"})
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?(?:0|[1-9][0-9]*))?")
_LABEL = re.compile(r"%?(?:[a-z][a-z0-9]*|[A-Z][A-Z0-9]*)(?:-(?:[a-z][a-z0-9]*|[A-Z][A-Z0-9]*))*")
_NAME = re.compile(r"[A-Za-z0-9_:/@.#%-]+")
_ESCAPES = {"'": "'", '"': '"', "t": "\t", "n": "\n", "r": "\r", "\\": "\\"}


class WaveError(UsageError):
    """WAVE text that does not parse as the expected type."""


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, expected: str, at: int | None = None) -> WaveError:
        pos = self.pos if at is None else at
        rest = self.text[pos : pos + 12]
        found = f"{rest!r}" if rest else "the end"
        return WaveError(f"column {pos + 1}: expected {expected}, found {found}")

    def ws(self) -> None:
        text, n = self.text, len(self.text)
        while self.pos < n:
            c = text[self.pos]
            if c in " \t\r\n":
                self.pos += 1
            elif text.startswith("//", self.pos):
                end = text.find("\n", self.pos)
                self.pos = n if end < 0 else end + 1
            else:
                break

    def peek(self) -> str:
        self.ws()
        return self.text[self.pos : self.pos + 1]

    def accept(self, token: str) -> bool:
        if self.peek() == token:
            self.pos += 1
            return True
        return False

    def expect(self, token: str, what: str) -> None:
        if not self.accept(token):
            raise self.fail(what)

    def label(self, what: str) -> tuple[str, bool]:
        """(label without %, whether it had the % prefix)."""
        self.ws()
        m = _LABEL.match(self.text, self.pos)
        if not m:
            raise self.fail(what)
        self.pos = m.end()
        raw = m.group()
        return (raw[1:], True) if raw.startswith("%") else (raw, False)

    def at_label(self, *words: str) -> str | None:
        """The keyword at the cursor if it is one of ``words`` (not consumed)."""
        self.ws()
        m = _LABEL.match(self.text, self.pos)
        if m and m.group() in words:
            return m.group()
        return None

    def end(self) -> None:
        self.ws()
        if self.pos != len(self.text):
            raise self.fail("the end of the value")

    # -- values --

    def value(self, ty: Any) -> Any:
        self.ws()
        start = self.pos
        ints = INT_RANGES.get(type(ty))
        if ints is not None:
            return self.integer(*ints)
        if isinstance(ty, cm.F32 | cm.F64):
            return self.float("f32" if isinstance(ty, cm.F32) else "f64")
        if isinstance(ty, cm.Bool):
            word = self.at_label("true", "false")
            if word is None:
                raise self.fail("bool (true or false)")
            self.pos += len(word)
            return word == "true"
        if isinstance(ty, cm.Char):
            return self.char()
        if isinstance(ty, cm.String):
            return self.string()
        if isinstance(ty, cm.ListType):
            element = ty.element
            items = self.sequence("[", "]", lambda _i: element, "list")
            return bytes(items) if isinstance(element, cm.U8) else items
        if isinstance(ty, cm.TupleType):
            elements = ty.elements
            items = self.sequence(
                "(", ")", lambda i: elements[i] if i < len(elements) else None, "tuple"
            )
            if len(items) != len(elements):
                raise self.fail(f"a tuple of {len(elements)} values", start)
            return tuple(items)
        if isinstance(ty, cm.RecordType):
            return self.record(ty)
        if isinstance(ty, cm.FlagsType):
            return self.flags(ty)
        if isinstance(ty, cm.EnumType):
            names = ty.names
            name, escaped = self.label("an enum case")
            if name not in names or (name in KEYWORDS and not escaped):
                raise self.fail(f"one of {', '.join(_label(n) for n in names)}", start)
            return name
        if isinstance(ty, cm.OptionType):
            return self.option(ty)
        if isinstance(ty, cm.ResultType):
            return self.result(ty)
        if isinstance(ty, cm.VariantType):
            return self.variant(ty)
        raise WaveError(f"values of type {type(ty).__name__} cannot be written in WAVE here")

    def integer(self, wit: str, lo: int, hi: int) -> int:
        m = _NUMBER.match(self.text, self.pos)
        if not m or m.group(1) or m.group(2):
            raise self.fail(wit)
        value = int(m.group())
        if not lo <= value <= hi:
            raise self.fail(f"{wit} (from {lo} to {hi})")
        self.pos = m.end()
        return value

    def float(self, wit: str) -> float:
        for word, value in (("-inf", -math.inf), ("inf", math.inf), ("nan", math.nan)):
            if self.text.startswith(word, self.pos) and not self._label_continues(len(word)):
                self.pos += len(word)
                return value
        m = _NUMBER.match(self.text, self.pos)
        if not m:
            raise self.fail(wit)
        self.pos = m.end()
        return float(m.group())

    def _label_continues(self, length: int) -> bool:
        nxt = self.text[self.pos + length : self.pos + length + 1]
        return nxt.isalnum() or nxt == "-"

    def escaped(self, quote: str) -> str:
        text = self.text
        c = text[self.pos : self.pos + 1]
        if c in ("", "\n") or c == quote:
            raise self.fail("a character")
        if c != "\\":
            self.pos += 1
            return c
        esc = text[self.pos + 1 : self.pos + 2]
        if esc in _ESCAPES:
            self.pos += 2
            return _ESCAPES[esc]
        m = re.compile(r"u\{([0-9a-fA-F]{1,6})\}").match(text, self.pos + 1)
        if esc == "u" and m:
            code = int(m.group(1), 16)
            if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise self.fail("a Unicode scalar value")
            self.pos = m.end()
            return chr(code)
        raise self.fail("an escape (\\' \\\" \\t \\n \\r \\\\ \\u{...})")

    def char(self) -> str:
        if not self.text.startswith("'", self.pos):
            raise self.fail("char ('x')")
        self.pos += 1
        c = self.escaped("'")
        if not self.text.startswith("'", self.pos):
            raise self.fail("the closing ' of a char")
        self.pos += 1
        return c

    def string(self) -> str:
        if not self.text.startswith('"', self.pos):
            raise self.fail('string ("...")')
        self.pos += 1
        out: list[str] = []
        while not self.text.startswith('"', self.pos):
            if self.pos >= len(self.text):
                raise self.fail('the closing " of a string')
            out.append(self.escaped('"'))
        self.pos += 1
        return "".join(out)

    def items_until(self, close: str) -> Iterator[int]:
        """Yield the index of each item of a comma-separated list that ends at ``close`` (which
        is consumed; a trailing comma is allowed). The caller parses the item each time."""
        index = 0
        while not self.accept(close):
            if index:
                self.expect(",", f"',' or '{close}'")
                if self.accept(close):
                    return
            yield index
            index += 1

    def sequence(self, open_: str, close: str, type_at: Any, what: str) -> list[Any]:
        self.expect(open_, f"{what} ({open_}...{close})")
        items: list[Any] = []
        for index in self.items_until(close):
            ty = type_at(index)
            if ty is None:
                raise self.fail(f"'{close}' (too many values)")
            items.append(self.value(ty))
        return items

    def record(self, ty: cm.RecordType) -> dict[str, Any]:
        fields = dict(ty.fields)
        self.expect("{", "record ({field: value, ...})")
        out: dict[str, Any] = {}
        if self.accept(":"):
            self.expect("}", "'}' after '{:'")
        else:
            for _ in self.items_until("}"):
                at = self.pos
                name, _ = self.label("a field name")
                if name not in fields:
                    raise self.fail(f"a field of the record ({', '.join(fields)})", at)
                if name in out:
                    raise self.fail(f"each field once ({name} repeats)", at)
                self.expect(":", "':' after a field name")
                out[name] = self.value(fields[name])
        for name, fty in fields.items():
            if name not in out:
                if not isinstance(fty, cm.OptionType):
                    raise self.fail(f"field {name!r}")
                out[name] = None
        return out

    def flags(self, ty: cm.FlagsType) -> set[str]:
        names = ty.names
        self.expect("{", "flags ({a, b})")
        out: set[str] = set()
        for _ in self.items_until("}"):
            at = self.pos
            name, _ = self.label("a flag name")
            if name not in names:
                raise self.fail(f"one of the flags {', '.join(names)}", at)
            out.add(name)
        return out

    def payload(self, ty: Any, case: str) -> Any:
        self.expect("(", f"'(' and the payload of {case}")
        value = self.value(ty)
        self.expect(")", f"')' after the payload of {case}")
        return value

    def option(self, ty: cm.OptionType) -> Any:
        payload = ty.payload
        word = self.at_label("none", "some")
        if word == "none":
            self.pos += 4
            return None
        if word == "some":
            self.pos += 4
            return Some(self.payload(payload, "some"))
        if isinstance(payload, cm.OptionType):
            raise self.fail("some(...) or none")
        return Some(self.value(payload))

    def result(self, ty: cm.ResultType) -> Any:
        word = self.at_label("ok", "err")
        if word is None:
            if ty.ok is None:
                raise self.fail("ok or err(...)")
            return Ok(self.value(ty.ok))
        self.pos += len(word)
        payload_ty = ty.ok if word == "ok" else ty.err
        cls = Ok if word == "ok" else Err
        if payload_ty is None:
            return cls(None)
        return cls(self.payload(payload_ty, word))

    def variant(self, ty: cm.VariantType) -> Any:
        cases = dict(ty.cases)
        at = self.pos
        name, escaped = self.label("a variant case")
        if name not in cases or (name in KEYWORDS and not escaped):
            raise self.fail(f"one of {', '.join(_label(c) for c in cases)}", at)
        payload_ty = cases[name]
        if payload_ty is None:
            return cm.Variant(name, None)
        return cm.Variant(name, self.payload(payload_ty, name))


def parse_value(text: str, ty: Any) -> Any:
    """The value of WIT type ``ty`` written in ``text``; raises ``WaveError``."""
    p = _Parser(text)
    value = p.value(ty)
    p.end()
    return value


def parse_string(text: str) -> str:
    """A WAVE string literal (``"hi\\n"``) as its text; raises ``WaveError``."""
    p = _Parser(text)
    value = p.string()
    p.end()
    return value


def format_string(text: str) -> str:
    """``text`` as a WAVE string literal."""
    return _quote(text, '"')


def parse_call(text: str) -> tuple[str, str]:
    """Split ``greet("Ada")`` into the function name and its argument list text."""
    m = _NAME.match(text.strip())
    if not m:
        raise WaveError(f"expected a function call like name(arg, ...), got {text!r}")
    rest = text.strip()[m.end() :]
    name = m.group().removeprefix("%")
    return name, rest


def parse_args(text: str, types: Sequence[Any]) -> list[Any]:
    """Arguments written as a WAVE tuple, ``("Ada", 36)``, typed by ``types``."""
    p = _Parser(text)
    items = p.sequence("(", ")", lambda i: types[i] if i < len(types) else None, "arguments")
    if len(items) != len(types):
        raise WaveError(f"expected {len(types)} argument(s), got {len(items)}")
    p.end()
    return items


# -- printing --


def _label(name: str) -> str:
    return "%" + name if name in KEYWORDS else name


def _quote(text: str, quote: str) -> str:
    out = []
    for c in text:
        if c == quote or c == "\\":
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif c == "\r":
            out.append("\\r")
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{{{ord(c):x}}}")
        else:
            out.append(c)
    return quote + "".join(out) + quote


def _float(value: float, single: bool) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    text = repr(value)
    if single:
        packed = struct.pack("<f", value)
        for digits in range(1, 10):
            candidate = f"{value:.{digits}g}"
            if struct.pack("<f", float(candidate)) == packed:
                text = candidate
                break
    mantissa, _, exponent = text.partition("e")
    if exponent:
        sign = "-" if exponent.startswith("-") else ""
        text = f"{mantissa}e{sign}{int(exponent.lstrip('+-'))}"
    return text


def format_value(value: Any, ty: Any) -> str:
    """``value`` (as ``values`` returns it) of WIT type ``ty`` as WAVE text."""
    if isinstance(ty, cm.Bool):
        return "true" if value else "false"
    if type(ty) in INT_RANGES:
        return str(int(value))
    if isinstance(ty, cm.F32 | cm.F64):
        return _float(float(value), isinstance(ty, cm.F32))
    if isinstance(ty, cm.Char):
        return _quote(value, "'")
    if isinstance(ty, cm.String):
        return _quote(value, '"')
    if isinstance(ty, cm.ListType):
        element = ty.element
        return "[" + ", ".join(format_value(v, element) for v in value) + "]"
    if isinstance(ty, cm.TupleType):
        parts = [format_value(v, t) for v, t in zip(value, ty.elements, strict=True)]
        return "(" + ", ".join(parts) + ")"
    if isinstance(ty, cm.RecordType):
        fields = ty.fields
        if not fields:
            return "{:}"
        parts = []
        for name, fty in fields:
            item = value[name] if isinstance(value, dict) else _attr(value, name)
            parts.append(f"{_label(name)}: {format_value(item, fty)}")
        return "{" + ", ".join(parts) + "}"
    if isinstance(ty, cm.FlagsType):
        return "{" + ", ".join(_label(n) for n in ty.names if n in value) + "}"
    if isinstance(ty, cm.EnumType):
        return _label(value)
    if isinstance(ty, cm.OptionType):
        if value is None:
            return "none"
        if isinstance(value, Some):
            value = value.value
        return f"some({format_value(value, ty.payload)})"
    if isinstance(ty, cm.ResultType):
        word, payload_ty = ("ok", ty.ok) if isinstance(value, Ok) else ("err", ty.err)
        if payload_ty is None:
            return word
        return f"{word}({format_value(value.value, payload_ty)})"
    if isinstance(ty, cm.VariantType):
        cases = dict(ty.cases)
        payload_ty = cases[value.tag]
        if payload_ty is None:
            return _label(value.tag)
        return f"{_label(value.tag)}({format_value(value.payload, payload_ty)})"
    return repr(value)


def _attr(value: Any, name: str) -> Any:
    py = name.replace("-", "_")
    if hasattr(value, py):
        return getattr(value, py)
    if hasattr(value, py + "_"):
        return getattr(value, py + "_")
    return getattr(value, name)
