"""Describe a compiled guest: its kind, imports and exports with their types.

Core types print in the text format's spelling (``func(i32, i64) -> f32``); component types print
as WIT (``func(name: string) -> list<u8>``), nested interfaces flattened as ``iface#func``.
"""

from __future__ import annotations

from typing import Any

import wasmtime
from wasmtime import component as cm

from .loader import LoadedGuest

__all__ = ["describe", "wit_type"]

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
        imports = _component_items(ctype.imports(engine), engine)
        exports = _component_items(ctype.exports(engine), engine)
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


def _component_items(items: dict[str, Any], engine: wasmtime.Engine) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for name, ext in items.items():
        ty = ext.ty
        if isinstance(ty, cm.ComponentInstanceType):
            for inner, iext in ty.exports(engine).items():
                out.append({"name": f"{name}#{inner}", "type": _item_type(iext.ty)})
        else:
            out.append({"name": name, "type": _item_type(ty)})
    return out


def _item_type(ty: Any) -> str:
    if isinstance(ty, cm.FuncType):
        params = ", ".join(f"{n}: {wit_type(t)}" for n, t in ty.params)
        result = ty.result
        return f"func({params})" + ("" if result is None else f" -> {wit_type(result)}")
    if isinstance(ty, cm.ResourceType):
        return "resource"
    if isinstance(ty, cm.ModuleType):
        return "core module"
    if isinstance(ty, cm.ComponentType):
        return "component"
    return type(ty).__name__


def wit_type(ty: Any) -> str:
    """A component value type in WIT syntax."""
    for cls, name in _PRIMITIVES.items():
        if isinstance(ty, cls):
            return name
    if isinstance(ty, cm.ListType):
        return f"list<{wit_type(ty.element)}>"
    if isinstance(ty, cm.RecordType):
        return "record { " + ", ".join(f"{n}: {wit_type(t)}" for n, t in ty.fields) + " }"
    if isinstance(ty, cm.TupleType):
        return f"tuple<{', '.join(wit_type(t) for t in ty.elements)}>"
    if isinstance(ty, cm.OptionType):
        return f"option<{wit_type(ty.payload)}>"
    if isinstance(ty, cm.ResultType):
        ok = "_" if ty.ok is None else wit_type(ty.ok)
        err = "_" if ty.err is None else wit_type(ty.err)
        return "result" if ok == err == "_" else f"result<{ok}, {err}>"
    if isinstance(ty, cm.VariantType):
        cases = (n if t is None else f"{n}({wit_type(t)})" for n, t in ty.cases)
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
