"""Component host calls crossed in C, where the ``wasmgate._crossing`` extension was built.

A component's host function is a C callback of the engine. The pure-Python one
(``lowlevel.add_raw_func`` with ``lowlevel.raw_codec``) is a ctypes callback that reads and writes
the engine's component values through ctypes structures: most of a wasi:http request's host time
goes to that machinery, not to the host functions. With the extension the callback, the reading
and the writing are C, and only the host function (and a resource's lift and lower) is Python.

Rules:
- Optional and equivalent: without the extension (not built, ``WASMGATE_NATIVE=0``, or a
  binding whose value layout differs from the one it was written for) ``available()`` is False
  and callers keep the Python path, which gives the very same values; the tests compare the two
  on every value type and run the wasi:http host both ways.
- ``plan`` describes a type for the extension; its values are ``raw_codec``'s (the header of
  ``_crossing.c`` lists them), and the extension owns the numbering (``_crossing.CODES``).
- Nothing here touches the binding: ``engine.lowlevel`` hands over addresses and layouts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

from wasmgate.engine import lowlevel

__all__ = ["add_func", "add_resource", "available", "disabled", "enabled", "plan"]


def available() -> bool:
    """Whether host functions can cross in C in this process (``lowlevel.native()``: the
    extension built, its layout the binding's, not turned off by ``WASMGATE_NATIVE=0``)."""
    return lowlevel.native() is not None


_disabled = 0


def enabled() -> bool:
    """Whether hosts linked now cross in C: ``available()`` and not inside ``disabled()``."""
    return _disabled == 0 and available()


@contextmanager
def disabled() -> Iterator[None]:
    """Hosts linked inside cross on the pure-Python path, for their whole life (the choice is
    made when a host is linked): to compare the two paths, as the tests and benchmarks do."""
    global _disabled
    _disabled += 1
    try:
        yield
    finally:
        _disabled -= 1


@cache
def _code(name: str) -> int:
    return int(_native().CODES.index(name))


_SCALARS = ("Bool", "S8", "U8", "S16", "U16", "S32", "U32", "S64", "U64", "F32", "F64", "Char")


def plan(ty: Any, bridge: lowlevel.ResourceBridge) -> tuple[Any, ...]:
    """How values of the binding's ``component.ValType`` ``ty`` cross (see ``_crossing.c``);
    ``TypeError`` for the types ``raw_codec`` does not take either."""
    from wasmtime import component as cm

    name = type(ty).__name__
    if name in _SCALARS and isinstance(ty, getattr(cm, name)):
        return (_code(name.upper()),)
    if isinstance(ty, cm.String):
        return (_code("STRING"),)
    if isinstance(ty, cm.EnumType):
        return (_code("ENUM"),)
    if isinstance(ty, cm.FlagsType):
        return (_code("FLAGS"),)
    if isinstance(ty, cm.ListType):
        if isinstance(ty.element, cm.U8):
            return (_code("BYTES"),)
        return (_code("LIST"), plan(ty.element, bridge))
    if isinstance(ty, cm.TupleType):
        return (_code("TUPLE"), tuple(plan(t, bridge) for t in ty.elements))
    if isinstance(ty, cm.RecordType):
        names = tuple(n for n, _ in ty.fields)
        return (_code("RECORD"), names, tuple(plan(t, bridge) for _, t in ty.fields))
    if isinstance(ty, cm.OptionType):
        if isinstance(ty.payload, cm.OptionType):
            raise TypeError("option<option<T>> is not supported by raw_codec")
        return (_code("OPTION"), plan(ty.payload, bridge))
    if isinstance(ty, cm.ResultType):
        return (_code("RESULT"), _maybe_plan(ty.ok, bridge), _maybe_plan(ty.err, bridge))
    if isinstance(ty, cm.VariantType):
        names = tuple(n for n, _ in ty.cases)
        return (_code("VARIANT"), names, tuple(_maybe_plan(t, bridge) for _, t in ty.cases))
    if isinstance(ty, cm.OwnType | cm.BorrowType):
        owned = isinstance(ty, cm.OwnType)
        return (_code("OWN" if owned else "BORROW"), bridge.lifter(owned), bridge.lower)
    raise TypeError(f"crossing.plan: unsupported type {name}")


def _native() -> Any:
    native = lowlevel.native()
    if native is None:
        raise RuntimeError("the C crossings are not available in this process")
    return native


def _maybe_plan(ty: Any, bridge: lowlevel.ResourceBridge) -> tuple[Any, ...] | None:
    return None if ty is None else plan(ty, bridge)


def add_func(
    instance: Any,
    name: str,
    impl: Callable[..., Any],
    fty: Any,
    *,
    current: Callable[[], Any],
    on_error: Callable[[BaseException], str],
    bridge: lowlevel.ResourceBridge,
) -> None:
    """Define ``name`` in a ``component.LinkerInstance`` as a C callback calling
    ``impl(current(), *arguments)`` with the arguments of ``fty`` (a ``FuncType``) lifted and its
    result lowered; any exception becomes the guest's trap with ``on_error``'s text. Only where
    ``available()``."""
    native = _native()
    params = tuple(plan(t, bridge) for _, t in fty.params)
    result = None if fty.result is None else plan(fty.result, bridge)
    data = native.func_data(impl, current, on_error, params, result)
    try:
        lowlevel.add_c_func(instance, name, native.CALLBACK, data, native.RELEASE)
    except BaseException:
        native.release(data)
        raise


def add_resource(instance: Any, name: str, type_id: int, dropped: Callable[[int], Any]) -> None:
    """Define host resource ``name`` (type ``ResourceType.host(type_id)``) whose destructor calls
    ``dropped(rep)`` from C (its exception is discarded: a drop cannot fail). Only where
    ``available()``."""
    native = _native()
    data = native.resource_data(dropped)
    try:
        lowlevel.add_c_resource(instance, name, type_id, native.DESTRUCTOR, data, native.RELEASE)
    except BaseException:
        native.release(data)
        raise
