"""Core wasm value types as Python annotations, and signatures read from type hints.

Rules:
- ``int`` means ``i32`` and ``float`` means ``f64`` (the common case for plugins); ``bool`` is an
  ``i32`` (0 or 1). Other widths are explicit: ``wasmgate.i64``, ``wasmgate.f32``,
  ``wasmgate.f64`` and ``wasmgate.i32`` are ``typing.Annotated`` aliases of ``int``/``float``, so
  annotated code still type-checks as plain numbers.
- A return annotation of ``None`` means no result; ``tuple[i32, i64]`` means two results.
- The first parameter may ask for the caller instead of a wasm value: ``GuestMemory`` (the calling
  instance's exported memory) or ``wasmtime.Caller`` (everything else). It is not part of the
  wasm signature.
- A function with no annotations at all takes the type the guest declares for the import. A
  partly annotated one is refused: a guess would silently truncate values.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import wasmtime

from ..errors import UsageError
from .memory import GuestMemory

__all__ = [
    "CoreSignature",
    "CoreType",
    "f32",
    "f64",
    "i32",
    "i64",
    "signature_of",
    "valtype",
]

CoreName = Literal["i32", "i64", "f32", "f64"]
Inject = Literal["memory", "caller"] | None


@dataclass(frozen=True, slots=True)
class CoreType:
    """Marks an annotation with the core wasm type it stands for."""

    name: CoreName


i32 = Annotated[int, CoreType("i32")]
i64 = Annotated[int, CoreType("i64")]
f32 = Annotated[float, CoreType("f32")]
f64 = Annotated[float, CoreType("f64")]

_VALTYPES: dict[str, Callable[[], wasmtime.ValType]] = {
    "i32": wasmtime.ValType.i32,
    "i64": wasmtime.ValType.i64,
    "f32": wasmtime.ValType.f32,
    "f64": wasmtime.ValType.f64,
}


def valtype(name: str) -> wasmtime.ValType:
    return _VALTYPES[name]()


TEXT_KINDS = ("str", "bytes")


@dataclass(frozen=True, slots=True)
class CoreSignature:
    """A host function's wasm signature. ``kinds`` says what each Python parameter is (a core
    type, or ``str``/``bytes``: two wasm ``i32`` parameters, pointer and length, read from the
    caller's memory); ``result_kind`` is ``str``/``bytes`` when the function returns text or
    bytes (one wasm ``i64``, ``ptr << 32 | len``, allocated through the guest's allocator)."""

    params: tuple[str, ...]
    results: tuple[str, ...]
    inject: Inject = None
    kinds: tuple[str, ...] = ()
    result_kind: str | None = None

    @property
    def moves_text(self) -> bool:
        return self.result_kind is not None or any(k in TEXT_KINDS for k in self.kinds)

    def func_type(self) -> wasmtime.FuncType:
        return wasmtime.FuncType(
            [valtype(p) for p in self.params], [valtype(r) for r in self.results]
        )

    def text(self) -> str:
        out = ", ".join(self.results)
        return f"func({', '.join(self.params)})" + (f" -> {out}" if out else "")


def _core_name(hint: Any, where: str) -> str:
    if isinstance(hint, str) and hint in _VALTYPES:
        return hint
    if isinstance(hint, CoreType):
        return hint.name
    if typing.get_origin(hint) is Annotated:
        for extra in typing.get_args(hint)[1:]:
            if isinstance(extra, CoreType):
                return extra.name
        hint = typing.get_args(hint)[0]
    if hint is int or hint is bool:
        return "i32"
    if hint is float:
        return "f64"
    if hint is str or hint is bytes:
        return hint.__name__
    raise UsageError(
        f"{where}: type {getattr(hint, '__name__', hint)!r} is not a core wasm type "
        "(use int, float, bool, str, bytes, wasmgate.i32/i64/f32/f64)"
    )


def _expand(kinds: tuple[str, ...]) -> tuple[str, ...]:
    """Wasm parameters for Python parameter kinds: text and bytes are (ptr, len)."""
    out: list[str] = []
    for kind in kinds:
        out.extend(("i32", "i32") if kind in TEXT_KINDS else (kind,))
    return tuple(out)


def _inject_kind(hint: Any) -> Inject:
    if hint is GuestMemory:
        return "memory"
    if hint is wasmtime.Caller:
        return "caller"
    return None


def signature_of(
    fn: Callable[..., Any],
    label: str,
    *,
    params: Sequence[Any] | None = None,
    results: Sequence[Any] | None = None,
    declared: wasmtime.FuncType | None = None,
) -> CoreSignature:
    """The core signature of host function ``fn`` (``label`` names it in errors).

    ``params``/``results`` override the hints; ``declared`` (the guest's import type) is used
    when ``fn`` has no annotations at all.
    """
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        sig = None
    positional = (
        [
            p
            for p in sig.parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        if sig is not None
        else []
    )
    try:
        hints = typing.get_type_hints(fn, include_extras=True) if sig is not None else {}
    except Exception as e:
        raise UsageError(f"{label}: cannot resolve its type hints ({e})") from None
    inject: Inject = None
    if positional and positional[0].name in hints:
        inject = _inject_kind(hints[positional[0].name])
        if inject is not None:
            positional = positional[1:]
    if params is not None:
        param_names = tuple(_core_name(p, f"{label}: parameter {i}") for i, p in enumerate(params))
        if any(k in TEXT_KINDS for k in param_names):
            raise UsageError(f"{label}: params= takes core types; annotate str/bytes instead")
    elif all(p.name not in hints for p in positional) and "return" not in hints:
        if declared is None:
            raise UsageError(f"{label}: has no type hints; annotate it or pass params=/results=")
        param_names = tuple(str(p) for p in declared.params)
        if results is None:
            return CoreSignature(param_names, tuple(str(r) for r in declared.results), inject)
    else:
        missing = [p.name for p in positional if p.name not in hints]
        if missing:
            raise UsageError(f"{label}: parameter {missing[0]!r} has no type hint")
        param_names = tuple(
            _core_name(hints[p.name], f"{label}: parameter {p.name!r}") for p in positional
        )
    if results is not None:
        result_names = tuple(_core_name(r, f"{label}: result {i}") for i, r in enumerate(results))
    else:
        result_names = _result_names(hints.get("return", None), label)
    result_kind = None
    if any(r in TEXT_KINDS for r in result_names):
        if len(result_names) != 1:
            raise UsageError(f"{label}: str or bytes must be the only result")
        result_kind, result_names = result_names[0], ("i64",)
    return CoreSignature(_expand(param_names), result_names, inject, param_names, result_kind)


def _result_names(hint: Any, label: str) -> tuple[str, ...]:
    if hint is None or hint is type(None):
        return ()
    if typing.get_origin(hint) is tuple:
        return tuple(_core_name(h, f"{label}: result") for h in typing.get_args(hint))
    return (_core_name(hint, f"{label}: result"),)
