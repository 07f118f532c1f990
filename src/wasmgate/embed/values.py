"""Python values <-> component-model values, checked against the WIT types before any wasm runs.

The mapping (in: what a caller may pass; out: what comes back):

==================  ===========================================  ================================
WIT                 in                                           out
==================  ===========================================  ================================
bool                ``bool``                                     ``bool``
s8 ... u64          ``int`` (range-checked; not ``bool``)        ``int``
f32, f64            ``float`` or ``int``                         ``float``
char                ``str`` of one character                     ``str``
string              ``str``                                      ``str``
list<u8>            ``bytes``, ``bytearray``, list of ints       ``bytes``
list<T>             ``list`` or ``tuple``                        ``list``
tuple<...>          ``tuple`` or ``list`` of the right length    ``tuple``
record              dataclass, mapping, or object with fields    a dataclass made per record type
enum                ``str`` (a case name) or a str-valued Enum   ``str``
flags               ``set``/``frozenset``/list of names          ``set[str]``
option<T>           ``None`` or T (or ``Some(x)``)               ``None`` or T (``Some`` if T is
                                                                 itself an option)
result<T, E>        ``Ok(x)`` or ``Err(e)``                      ``Ok(x)`` or ``Err(e)``
variant             ``Variant(tag, payload)``, or ``tag``        ``Variant(tag, payload)``
own/borrow          the binding's resource objects              the binding's resource objects
==================  ===========================================  ================================

Rules:
- A function's converters are built once, when the function is first looked up; a call only
  walks the values. Field, case and flag names may be given in snake_case for kebab-case WIT names.
- A value that does not fit raises ``TypeError`` naming the path inside the value and the WIT type
  (``echo-people: people[2].age: expected u32, got str``), before any wasm runs. Paths are only
  built on failure, so valid calls pay nothing for them.
- At the top of a function, ``result`` is idiomatic Python: an export returns the ok value or raises
  ``ComponentError(err_value)``; a host function returns the ok value or raises ``ComponentError``
  to return ``err``. Nested results use ``Ok``/``Err``.
- Under the checks, values are handed to wasmtime-py 50 in the shapes it lowers: records as
  objects with attributes named as in WIT, ``set`` for flags, and ``Variant`` for a variant-like
  type only when the binding tags it (it leaves a case untagged when the Python types of the cases
  cannot overlap). For the few types whose cases the binding cannot tell apart untagged (an
  ``option`` payload beside a ``string`` case, say), the value is refused with a ``TypeError``
  rather than silently sent as the wrong case.
"""

from __future__ import annotations

import abc
import dataclasses
import enum
import keyword
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wasmtime import component as cm

from ..engine import TypeNames, type_name, wit_type
from ..errors import UsageError, WasmgateError, given

__all__ = [
    "INT_RANGES",
    "ComponentError",
    "Converter",
    "Err",
    "Ok",
    "Signature",
    "Some",
    "TypeBuilder",
    "Variant",
    "py_name",
]

Variant = cm.Variant


@dataclass(frozen=True, slots=True)
class Some:
    """An explicitly present option value (needed only for ``option<option<T>>``)."""

    value: Any


@dataclass(frozen=True, slots=True)
class Ok:
    """The ok case of a ``result`` nested inside another value."""

    value: Any = None


@dataclass(frozen=True, slots=True)
class Err:
    """The err case of a ``result`` nested inside another value."""

    value: Any = None


class ComponentError(WasmgateError):
    """A component function returned ``err(value)``; raise it from a host function to return one."""

    def __init__(self, value: Any = None) -> None:
        super().__init__(f"component returned an error: {value!r}")
        self.value = value


class Mismatch(Exception):
    """A value does not fit its WIT type; ``segments`` is the path to it, innermost first."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.segments: list[str] = []

    def describe(self, root: str) -> str:
        return f"{root}{''.join(reversed(self.segments))}: {self.message}"


def _got(value: Any) -> str:
    return type(value).__name__


def py_name(wit: str) -> str:
    """A WIT name spelt for Python: ``first-name`` -> ``first_name``, ``from`` -> ``from_``."""
    name = wit.replace("-", "_")
    return name + "_" if keyword.iskeyword(name) else name


class Converter(abc.ABC):
    """Checks and converts one WIT type.

    ``lower``: Python value -> the binding's shape; ``lift``: the binding's shape -> Python value.
    """

    wit = "?"
    identity_lift = True

    @abc.abstractmethod
    def lower(self, value: Any) -> Any:
        """Check ``value`` and convert it to what the binding accepts (``Mismatch`` if wrong)."""

    def lift(self, raw: Any) -> Any:
        return raw

    def mismatch(self, value: Any, detail: str = "") -> Mismatch:
        return Mismatch(f"expected {self.wit}, got {_got(value)}{detail}")


class _Bool(Converter):
    wit = "bool"

    def lower(self, value: Any) -> Any:
        if value is True or value is False:
            return value
        raise self.mismatch(value)


class _Int(Converter):
    def __init__(self, wit: str, lo: int, hi: int) -> None:
        self.wit, self.lo, self.hi = wit, lo, hi

    def lower(self, value: Any) -> Any:
        if type(value) is not int:
            if not isinstance(value, int) or isinstance(value, bool):
                raise self.mismatch(value)
            value = int(value)
        if self.lo <= value <= self.hi:
            return value
        raise Mismatch(f"expected {self.wit}, got {value} (out of range)")


class _Float(Converter):
    def __init__(self, wit: str) -> None:
        self.wit = wit

    def lower(self, value: Any) -> Any:
        if type(value) is float:
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise self.mismatch(value)


def _encodable(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class _Char(Converter):
    wit = "char"

    def lower(self, value: Any) -> Any:
        if isinstance(value, str) and len(value) == 1 and _encodable(value):
            return str(value)
        detail = f" of length {len(value)}" if isinstance(value, str) else ""
        raise self.mismatch(value, detail)


class _String(Converter):
    wit = "string"

    def lower(self, value: Any) -> Any:
        if type(value) is not str:
            if not isinstance(value, str):
                raise self.mismatch(value)
            value = str(value)
        if not _encodable(value):
            raise Mismatch("expected string, got str with a lone surrogate (not valid UTF-8)")
        return value


class _Resource(Converter):
    def __init__(self, wit: str) -> None:
        self.wit = wit

    def lower(self, value: Any) -> Any:
        if isinstance(value, cm.ResourceAny | cm.ResourceHost):
            return value
        raise self.mismatch(value)


class _Bytes(Converter):
    wit = "list<u8>"

    def lower(self, value: Any) -> Any:
        if type(value) is bytes:
            return value
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value)
        if isinstance(value, list | tuple):
            try:
                return bytes(value)
            except (TypeError, ValueError):
                for i, item in enumerate(value):
                    if type(item) is int and 0 <= item <= 255:
                        continue
                    if isinstance(item, int) and not isinstance(item, bool):
                        err = Mismatch(f"expected u8, got {item} (out of range)")
                    else:
                        err = Mismatch(f"expected u8, got {_got(item)}")
                    err.segments.append(f"[{i}]")
                    raise err from None
                raise
        raise self.mismatch(value)


def _index_of_failure(lower: Callable[[Any], Any], items: Sequence[Any], err: Mismatch) -> None:
    for i, item in enumerate(items):
        try:
            lower(item)
        except Mismatch:
            err.segments.append(f"[{i}]")
            return


class _List(Converter):
    def __init__(self, wit: str, element: Converter) -> None:
        self.wit, self.element = wit, element
        self.identity_lift = element.identity_lift

    def lower(self, value: Any) -> Any:
        if not isinstance(value, list | tuple):
            raise self.mismatch(value)
        lower = self.element.lower
        try:
            return [lower(item) for item in value]
        except Mismatch as err:
            _index_of_failure(lower, value, err)
            raise

    def lift(self, raw: Any) -> Any:
        if self.identity_lift:
            return raw
        lift = self.element.lift
        return [lift(item) for item in raw]


class _Tuple(Converter):
    def __init__(self, wit: str, elements: list[Converter]) -> None:
        self.wit, self.elements = wit, elements
        self.identity_lift = all(e.identity_lift for e in elements)

    def lower(self, value: Any) -> Any:
        if not isinstance(value, tuple | list):
            raise self.mismatch(value)
        if len(value) != len(self.elements):
            raise self.mismatch(value, f" of length {len(value)}")
        out = []
        for i, (conv, item) in enumerate(zip(self.elements, value, strict=True)):
            try:
                out.append(conv.lower(item))
            except Mismatch as err:
                err.segments.append(f"[{i}]")
                raise
        return tuple(out)

    def lift(self, raw: Any) -> Any:
        if self.identity_lift:
            return raw
        return tuple(conv.lift(item) for conv, item in zip(self.elements, raw, strict=True))


class _Fields(cm.Record):
    """What the binding lowers a record from: a ``Record`` (its untagged variant-likes test for
    that class) with attributes named exactly as the WIT fields."""


_MISSING = object()
_NOT_RECORDS = (str, bytes, bytearray, int, float, list, tuple, set, frozenset, type(None))


class _Record(Converter):
    def __init__(self, wit: str, fields: list[tuple[str, Converter]], cls: type) -> None:
        self.wit = wit
        self.cls = cls
        self.fields = [
            (name, py_name(name), conv, isinstance(conv, _Option)) for name, conv in fields
        ]
        self.identity_lift = False
        self._lifts = [(name, None if c.identity_lift else c.lift) for name, c in fields]

    def lower(self, value: Any) -> Any:
        raw = _Fields()
        out = raw.__dict__
        if isinstance(value, Mapping):
            used = 0
            for name, pyname, conv, optional in self.fields:
                item = value.get(name, _MISSING)
                if item is _MISSING:
                    item = value.get(pyname, _MISSING)
                if item is _MISSING:
                    if not optional:
                        raise Mismatch(f"missing field {name!r} of {self.wit}")
                    item = None
                else:
                    used += 1
                out[name] = self._field(conv, item, name)
            if used != len(value):
                known = {n for f in self.fields for n in f[:2]}
                extra = sorted(str(k) for k in value if k not in known)
                if extra:
                    raise Mismatch(f"unknown field {extra[0]!r} for {self.wit}")
            return raw
        if isinstance(value, _NOT_RECORDS):
            raise self.mismatch(value)
        for name, pyname, conv, optional in self.fields:
            item = getattr(value, pyname, _MISSING)
            if item is _MISSING:
                item = getattr(value, name, _MISSING)
            if item is _MISSING:
                if not optional:
                    raise Mismatch(f"missing field {name!r} of {self.wit} in {_got(value)}")
                item = None
            out[name] = self._field(conv, item, name)
        return raw

    @staticmethod
    def _field(conv: Converter, item: Any, name: str) -> Any:
        try:
            return conv.lower(item)
        except Mismatch as err:
            err.segments.append("." + name)
            raise

    def lift(self, raw: Any) -> Any:
        values = raw.__dict__
        return self.cls(
            *[values[name] if lift is None else lift(values[name]) for name, lift in self._lifts]
        )


class _Enum(Converter):
    def __init__(self, wit: str, names: list[str]) -> None:
        self.wit = wit
        self.names = {n: n for n in names}
        self.names.update({py_name(n): n for n in names})

    def lower(self, value: Any) -> Any:
        if isinstance(value, enum.Enum):
            value = value.value
        if isinstance(value, str):
            case = self.names.get(value)
            if case is not None:
                return case
            raise Mismatch(f"expected {self.wit}, got {value!r} (not a case)")
        raise self.mismatch(value)


class _Flags(Converter):
    def __init__(self, wit: str, names: list[str]) -> None:
        self.wit = wit
        self.names = {n: n for n in names}
        self.names.update({py_name(n): n for n in names})

    def lower(self, value: Any) -> Any:
        if not isinstance(value, set | frozenset | list | tuple):
            raise self.mismatch(value)
        out = set()
        for flag in value:
            name = self.names.get(flag) if isinstance(flag, str) else None
            if name is None:
                raise Mismatch(f"expected {self.wit}, got {flag!r} (not a flag)")
            out.add(name)
        return out


class _Cases:
    """How wasmtime-py 50 represents a variant-like value (variant, option, result)."""

    def __init__(self, ty: Any) -> None:
        cases: list[tuple[str, Any]] = ty._cases()
        self.names = [name for name, _ in cases]
        self.index = {name: i for i, name in enumerate(self.names)}
        self.tagged: bool = ty._tagged()
        self.select: list[tuple[type, ...] | None] = []
        self.by_class: dict[type, int] = {}
        produced: list[set[type]] = []
        for i, (_, case_ty) in enumerate(cases):
            if case_ty is None:
                self.select.append(None)
                classes = {type(None)}
            else:
                found: set[type] = set()
                case_ty.add_classes(found)
                self.select.append(tuple(found))
                classes = {type(None) if c is object else c for c in found}
            produced.append(classes)
            for cls in classes:
                self.by_class.setdefault(cls, i)
        # Untagged lowering takes the first case whose classes match: flag types where an earlier
        # case would capture a later case's values, and check those values one by one.
        self.ambiguous = any(
            self._selects(j, cls)
            for k in range(len(cases))
            for j in range(k)
            for cls in produced[k]
        )

    def _selects(self, j: int, cls: type) -> bool:
        sel = self.select[j]
        return cls is type(None) if sel is None else issubclass(cls, sel)

    def to_raw(self, k: int, payload: Any, wit: str) -> Any:
        if self.tagged:
            return cm.Variant(self.names[k], payload)
        if self.ambiguous:
            j = next(
                i
                for i, sel in enumerate(self.select)
                if ((payload is None) if sel is None else isinstance(payload, sel))
            )
            if j != k:
                raise Mismatch(
                    f"wasmtime-py 50 cannot pass case {self.names[k]!r} of {wit} with this "
                    f"payload: it would be read as case {self.names[j]!r}"
                )
        return payload

    def from_raw(self, raw: Any) -> tuple[int, Any]:
        if self.tagged:
            return self.index[raw.tag], raw.payload
        k = self.by_class.get(type(raw))
        if k is None:
            k = next(
                i for i, sel in enumerate(self.select) if sel is not None and isinstance(raw, sel)
            )
        return k, raw


class _Option(Converter):
    def __init__(self, wit: str, payload: Converter, cases: _Cases, nested: bool) -> None:
        self.wit, self.payload, self.cases, self.nested = wit, payload, cases, nested
        self.identity_lift = False

    def lower(self, value: Any) -> Any:
        if value is None:
            return self.cases.to_raw(0, None, self.wit)
        if type(value) is Some:
            value = value.value
        return self.cases.to_raw(1, self.payload.lower(value), self.wit)

    def lift(self, raw: Any) -> Any:
        k, payload = self.cases.from_raw(raw)
        if k == 0:
            return None
        value = self.payload.lift(payload)
        return Some(value) if self.nested else value


class _Result(Converter):
    def __init__(
        self, wit: str, ok: Converter | None, err: Converter | None, cases: _Cases
    ) -> None:
        self.wit, self.ok, self.err, self.cases = wit, ok, err, cases
        self.identity_lift = False

    def lower(self, value: Any) -> Any:
        if type(value) is Ok:
            return self.lower_case(0, value.value)
        if type(value) is Err:
            return self.lower_case(1, value.value)
        raise Mismatch(f"expected {self.wit} (wasmgate.Ok or wasmgate.Err), got {_got(value)}")

    def lower_case(self, k: int, payload: Any) -> Any:
        conv = self.ok if k == 0 else self.err
        if conv is None:
            if payload is not None:
                raise Mismatch(f"expected no {('ok', 'err')[k]} value for {self.wit}")
            return self.cases.to_raw(k, None, self.wit)
        try:
            raw = conv.lower(payload)
        except Mismatch as err:
            err.segments.append(f"<{('ok', 'err')[k]}>")
            raise
        return self.cases.to_raw(k, raw, self.wit)

    def lift_case(self, raw: Any) -> tuple[bool, Any]:
        """(is_ok, lifted payload)."""
        k, payload = self.cases.from_raw(raw)
        conv = self.ok if k == 0 else self.err
        return k == 0, (None if conv is None else conv.lift(payload))

    def lift(self, raw: Any) -> Any:
        is_ok, value = self.lift_case(raw)
        return Ok(value) if is_ok else Err(value)


class _Variant(Converter):
    def __init__(self, wit: str, cases: list[tuple[str, Converter | None]], raw: _Cases) -> None:
        self.wit = wit
        self.cases = cases
        self.raw = raw
        self.lookup: dict[str, int] = {}
        for i, (name, _) in enumerate(cases):
            self.lookup[name] = i
            self.lookup.setdefault(py_name(name), i)
        self.identity_lift = False

    def lower(self, value: Any) -> Any:
        if isinstance(value, cm.Variant):
            tag, payload = value.tag, value.payload
        elif isinstance(value, str):
            tag, payload = value, None
        else:
            raise self.mismatch(value)
        k = self.lookup.get(tag) if isinstance(tag, str) else None
        if k is None:
            raise Mismatch(f"expected {self.wit}, got case {tag!r} (not a case)")
        name, conv = self.cases[k]
        if conv is None:
            if payload is not None:
                raise Mismatch(f"case {name!r} of {self.wit} has no payload")
            return self.raw.to_raw(k, None, self.wit)
        if payload is None and isinstance(value, str):
            raise Mismatch(f"case {name!r} of {self.wit} needs a payload: Variant({name!r}, ...)")
        try:
            lowered = conv.lower(payload)
        except Mismatch as err:
            err.segments.append(f"<{name}>")
            raise
        return self.raw.to_raw(k, lowered, self.wit)

    def lift(self, raw: Any) -> Any:
        k, payload = self.raw.from_raw(raw)
        name, conv = self.cases[k]
        return cm.Variant(name, None if conv is None else conv.lift(payload))


INT_RANGES: dict[type, tuple[str, int, int]] = {  # WIT name, min, max
    cm.S8: ("s8", -(2**7), 2**7 - 1),
    cm.S16: ("s16", -(2**15), 2**15 - 1),
    cm.S32: ("s32", -(2**31), 2**31 - 1),
    cm.S64: ("s64", -(2**63), 2**63 - 1),
    cm.U8: ("u8", 0, 2**8 - 1),
    cm.U16: ("u16", 0, 2**16 - 1),
    cm.U32: ("u32", 0, 2**32 - 1),
    cm.U64: ("u64", 0, 2**64 - 1),
}


def _class_name(name: str | None) -> str:
    if not name:
        return "Record"
    return "".join(part[:1].upper() + part[1:] for part in name.split("-"))


class TypeBuilder:
    """Builds converters for one component; named records share one generated class per name."""

    def __init__(self, names: TypeNames) -> None:
        self.names = names
        self.classes: dict[str, type] = {}

    def _label(self, ty: Any) -> tuple[str | None, str]:
        name = type_name(ty, self.names)
        return name, (name or wit_type(ty, self.names))

    def build(self, ty: Any, where: str) -> Converter:
        simple = INT_RANGES.get(type(ty))
        if simple is not None:
            return _Int(*simple)
        if isinstance(ty, cm.Bool):
            return _Bool()
        if isinstance(ty, cm.F32):
            return _Float("f32")
        if isinstance(ty, cm.F64):
            return _Float("f64")
        if isinstance(ty, cm.Char):
            return _Char()
        if isinstance(ty, cm.String):
            return _String()
        name, wit = self._label(ty)
        if isinstance(ty, cm.ListType):
            element = ty.element
            if isinstance(element, cm.U8):
                return _Bytes()
            return _List(wit, self.build(element, where))
        if isinstance(ty, cm.TupleType):
            return _Tuple(wit, [self.build(t, where) for t in ty.elements])
        if isinstance(ty, cm.RecordType):
            fields = [(n, self.build(t, where)) for n, t in ty.fields]
            return _Record(wit, fields, self._record_class(name, [n for n, _ in fields]))
        if isinstance(ty, cm.EnumType):
            return _Enum(wit, ty.names)
        if isinstance(ty, cm.FlagsType):
            return _Flags(wit, ty.names)
        if isinstance(ty, cm.OptionType):
            payload = ty.payload
            return _Option(
                wit, self.build(payload, where), _Cases(ty), isinstance(payload, cm.OptionType)
            )
        if isinstance(ty, cm.ResultType):
            ok, err = ty.ok, ty.err
            return _Result(
                wit,
                None if ok is None else self.build(ok, where),
                None if err is None else self.build(err, where),
                _Cases(ty),
            )
        if isinstance(ty, cm.VariantType):
            cases = [(n, None if t is None else self.build(t, where)) for n, t in ty.cases]
            return _Variant(wit, cases, _Cases(ty))
        if isinstance(ty, cm.OwnType | cm.BorrowType):
            return _Resource(wit)
        raise UsageError(f"{where}: values of type {wit} are not supported by wasmtime-py 50")

    def _record_class(self, name: str | None, fields: list[str]) -> type:
        if name is not None and name in self.classes:
            return self.classes[name]
        cls = dataclasses.make_dataclass(
            _class_name(name), [(py_name(f), Any) for f in fields], slots=True
        )
        cls.__module__ = "wasmgate.records"
        cls.__doc__ = f"The WIT record {name or 'type'} ({', '.join(fields)})."
        if name is not None:
            self.classes[name] = cls
        return cls


class Signature:
    """A component function's parameter and result converters, built once."""

    def __init__(self, label: str, fty: cm.FuncType, builder: TypeBuilder) -> None:
        self.label = label
        self.params = [(n, py_name(n), builder.build(t, label)) for n, t in fty.params]
        self.lowers = [conv.lower for _, _, conv in self.params]
        result_ty = fty.result
        self.result = None if result_ty is None else builder.build(result_ty, label)
        self.result_is_result = isinstance(self.result, _Result)

    def type_error(self, err: Mismatch, root: str) -> TypeError:
        return TypeError(f"{self.label}: {err.describe(root)}")

    def bind(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[Any, ...]:
        """Positional arguments from ``args`` and ``kwargs`` (by WIT or snake_case name)."""
        if not kwargs and len(args) == len(self.params):
            return args
        names = [p for _, p, _ in self.params]
        if len(args) > len(names):
            raise TypeError(
                f"{self.label}: takes {len(names)} argument(s) ({', '.join(names)}), "
                f"but {given(len(args))}"
            )
        values = list(args)
        for wit_name, pyname, _ in self.params[len(args) :]:
            if pyname in kwargs:
                values.append(kwargs[pyname])
            elif wit_name in kwargs:
                values.append(kwargs[wit_name])
            else:
                raise TypeError(f"{self.label}: missing argument {pyname!r}")
        unknown = set(kwargs) - {n for p in self.params for n in p[:2]}
        if unknown or len(values) != len(names):
            raise TypeError(f"{self.label}: unexpected argument {sorted(unknown)[0]!r}")
        return tuple(values)

    def lower_args(self, args: Sequence[Any]) -> list[Any]:
        out = []
        for i, (lower, value) in enumerate(zip(self.lowers, args, strict=True)):
            try:
                out.append(lower(value))
            except Mismatch as err:
                raise self.type_error(err, self.params[i][1]) from None
        return out

    def lift_args(self, raw: Sequence[Any]) -> list[Any]:
        return [conv.lift(v) for (_, _, conv), v in zip(self.params, raw, strict=True)]

    def lower_result(self, value: Any, failed: ComponentError | None) -> Any:
        """The binding value for a host function's return (or its ``ComponentError``)."""
        result = self.result
        try:
            if isinstance(result, _Result):
                if failed is not None:
                    return result.lower_case(1, failed.value)
                return result.lower_case(0, value)
            if failed is not None:
                raise failed
            if result is None:
                if value is not None:
                    raise Mismatch(f"expected no result, got {_got(value)}")
                return None
            return result.lower(value)
        except Mismatch as err:
            raise self.type_error(err, "return value") from None
