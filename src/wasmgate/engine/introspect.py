"""Describe a compiled guest: its kind, imports and exports with their types.

Core types print in the text format's spelling (``func(i32, i64) -> f32``); component types print
as WIT (``func(name: string) -> list<u8>``), nested interfaces flattened as ``iface#func``.

Records, variants, enums and flags that the component names (exports or imports a type for) print
by that name inside signatures (``func(people: list<person>)``); the name's own entry prints the
structure (``person: record { name: string, age: u32 }``). wasmtime compares these types by
identity, so two distinct types with the same shape keep their own names.
"""

from __future__ import annotations

from typing import Any

import wasmtime
from wasmtime import component as cm

from .loader import LoadedGuest

__all__ = [
    "TypeNames",
    "core_type",
    "describe",
    "item_type",
    "named_types",
    "type_name",
    "wit_type",
]

TypeNames = list[tuple[str, Any]]
_NOMINAL = (cm.RecordType, cm.VariantType, cm.EnumType, cm.FlagsType)

_PRIMITIVES: dict[type, str] = {
    cm.Bool: "bool",
    cm.S8: "s8",
    cm.S16: "s16",
    cm.S32: "s32",
    cm.S64: "s64",
    cm.U8: "u8",
    cm.U16: "u16",
    cm.U32: "u32",
    cm.U64: "u64",
    cm.F32: "f32",
    cm.F64: "f64",
    cm.Char: "char",
    cm.String: "string",
    cm.ErrorContext: "error-context",
}


def describe(guest: LoadedGuest) -> dict[str, Any]:
    if guest.module is not None:
        imports = [
            {"name": f"{i.module}::{i.name}", "type": core_type(i.type)}
            for i in guest.module.imports
        ]
        exports = [{"name": e.name, "type": core_type(e.type)} for e in guest.module.exports]
    else:
        engine = guest.engine.engine
        ctype = guest.as_component().type
        names = named_types(ctype, engine)
        imports = _component_items(ctype.imports(engine), engine, names)
        exports = _component_items(ctype.exports(engine), engine, names)
    return {"name": guest.name, "kind": guest.kind, "imports": imports, "exports": exports}


def core_type(ty: Any) -> str:
    if isinstance(ty, wasmtime.FuncType):
        params = ", ".join(str(p) for p in ty.params)
        results = [str(r) for r in ty.results]
        out = (
            "" if not results else f" -> {results[0] if len(results) == 1 else ', '.join(results)}"
        )
        return f"func({params}){out}"
    if isinstance(ty, wasmtime.MemoryType):
        lo, hi = ty.limits.min, ty.limits.max
        return (
            f"memory({lo}{'' if hi is None else f', {hi}'} pages{', 64-bit' if ty.is_64 else ''})"
        )
    if isinstance(ty, wasmtime.GlobalType):
        return f"global({'mut ' if ty.mutable else ''}{ty.content})"
    if isinstance(ty, wasmtime.TableType):
        lo, hi = ty.limits.min, ty.limits.max
        return f"table({ty.element}, {lo}{'' if hi is None else f', {hi}'})"
    return type(ty).__name__


def named_types(ctype: cm.ComponentType, engine: wasmtime.Engine) -> TypeNames:
    """(name, type) for every record/variant/enum/flags type the component imports or exports,
    at the top level or inside an interface."""
    found: TypeNames = []
    for items in (ctype.exports(engine), ctype.imports(engine)):
        for name, ext in items.items():
            ty = ext.ty
            if isinstance(ty, cm.ComponentInstanceType):
                for inner, iext in ty.exports(engine).items():
                    ity = iext.ty
                    if isinstance(ity, _NOMINAL):
                        found.append((inner, ity))
            elif isinstance(ty, _NOMINAL):
                found.append((name, ty))
    return found


def type_name(ty: Any, names: TypeNames | None) -> str | None:
    """The name the component gives ``ty``, if it is a named record/variant/enum/flags."""
    if names and isinstance(ty, _NOMINAL):
        for name, named in names:
            if type(named) is type(ty) and named == ty:
                return name
    return None


def _component_items(
    items: dict[str, Any], engine: wasmtime.Engine, names: TypeNames
) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for name, ext in items.items():
        ty = ext.ty
        if isinstance(ty, cm.ComponentInstanceType):
            for inner, iext in ty.exports(engine).items():
                out.append({"name": f"{name}#{inner}", "type": item_type(iext.ty, names)})
        else:
            out.append({"name": name, "type": item_type(ty, names)})
    return out


def _ref(ty: Any, names: TypeNames | None) -> str:
    return type_name(ty, names) or wit_type(ty, names)


def item_type(ty: Any, names: TypeNames | None = None) -> str:
    """A component item (function, type, resource, ...) in WIT-like syntax."""
    if isinstance(ty, cm.FuncType):
        params = ", ".join(f"{n}: {_ref(t, names)}" for n, t in ty.params)
        result = ty.result
        return f"func({params})" + ("" if result is None else f" -> {_ref(result, names)}")
    if isinstance(ty, cm.ResourceType):
        return "resource"
    if isinstance(ty, cm.ModuleType):
        return "core module"
    if isinstance(ty, cm.ComponentType):
        return "component"
    if isinstance(ty, cm.ComponentInstanceType):
        return "instance"
    if isinstance(ty, cm.ValType):
        return wit_type(ty, names)
    return type(ty).__name__


def wit_type(ty: Any, names: TypeNames | None = None) -> str:
    """A component value type in WIT syntax; named types print by name when ``names`` knows
    them (except at the top, so a name's own entry shows its structure)."""
    for cls, name in _PRIMITIVES.items():
        if isinstance(ty, cls):
            return name

    def inner(t: Any) -> str:
        return type_name(t, names) or wit_type(t, names)

    if isinstance(ty, cm.ListType):
        return f"list<{inner(ty.element)}>"
    if isinstance(ty, cm.RecordType):
        return "record { " + ", ".join(f"{n}: {inner(t)}" for n, t in ty.fields) + " }"
    if isinstance(ty, cm.TupleType):
        return f"tuple<{', '.join(inner(t) for t in ty.elements)}>"
    if isinstance(ty, cm.OptionType):
        return f"option<{inner(ty.payload)}>"
    if isinstance(ty, cm.ResultType):
        ok = "_" if ty.ok is None else inner(ty.ok)
        err = "_" if ty.err is None else inner(ty.err)
        if err == "_":
            return "result" if ok == "_" else f"result<{ok}>"
        return f"result<{ok}, {err}>"
    if isinstance(ty, cm.VariantType):
        cases = (n if t is None else f"{n}({inner(t)})" for n, t in ty.cases)
        return "variant { " + ", ".join(cases) + " }"
    if isinstance(ty, cm.EnumType):
        return "enum { " + ", ".join(ty.names) + " }"
    if isinstance(ty, cm.FlagsType):
        return "flags { " + ", ".join(ty.names) + " }"
    if isinstance(ty, cm.OwnType):
        return "own<resource>"
    if isinstance(ty, cm.BorrowType):
        return "borrow<resource>"
    return type(ty).__name__
