"""Link a component's WASI imports to the Python host, by name, from its own type.

Rules:
- ``WasiHost`` is wasmgate's WASI preview2 (with wasi:http, wasi:keyvalue and wasi:config) as
  the engine entry links it (``engine.Program``'s component host): it defines the imports, and
  makes each run's state from its ``Capabilities`` (``session``). The same host serves wasi:http
  routes, embedded components and commands.
- The component's type says what it imports; each import ``wasi:<pkg>/<iface>@0.2.x`` (any
  patch version, pre-release tags included) is linked under its own name from ``interfaces``.
  An import of anything else is a ``LinkError`` naming it, raised at load, never per run
  (callers that provide other imports themselves name the ones the host defines).
- Within an interface: each resource the interface defines gets a host resource type (its
  class's ``TYPE``), and each function the component imports gets its implementation; one
  without an implementation gets the interface's denial value when its result has one
  (``interfaces.DENIAL_CASES``), else a trap naming it when called. Every import resolves.
- How values cross (``WasiHost.crossing``) is chosen once per host, at link time: ``"c"``, the
  C callbacks of ``engine.crossing`` where its extension is built; else ``"python"``, ctypes
  callbacks with the raw codecs of ``engine.lowlevel``; else (or with ``fast=False``, for tests
  and comparisons) ``"public"``, the binding's own callbacks with the codecs of ``codec``.
  All three give a host function the same values; converters are compiled once per function.
- A host-side exception becomes a trap of the guest; the exception is kept in the request's
  state (``RequestState.failure``) so the handler can tell a guest's ``exit`` from a host bug.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import wasmtime
from wasmtime import component as cm

from ..capabilities import Capabilities
from ..engine import crossing
from ..engine.lowlevel import (
    ResourceBridge,
    add_raw_func,
    add_raw_resource,
    hold_gil_in_component_calls,
    raw_codec,
    raw_funcs_supported,
    raw_trap,
)
from ..errors import LinkError
from . import resources as r
from .codec import public_codec
from .interfaces import DENIAL_CASES, IMPLEMENTATIONS, NEVER_CREATED, RESOURCES, Impl
from .session import session

__all__ = [
    "HANDLER_INTERFACE",
    "LinkedComponent",
    "WasiHost",
    "interface_key",
    "link_component",
    "provides",
]

HANDLER_INTERFACE = "wasi:http/incoming-handler"
_NAME = re.compile(r"(wasi:[a-z][a-z0-9-]*/[a-z][a-z0-9-]*)@0\.2\.\d+(?:-[0-9A-Za-z.-]+)?")

# Type ids for resources no host function creates (see interfaces.NEVER_CREATED).
_NEVER_IDS = {
    (key, name): 900 + i
    for i, (key, name) in enumerate(
        (key, name) for key, names in NEVER_CREATED.items() for name in names
    )
}


def interface_key(import_name: str) -> str | None:
    """``wasi:http/types@0.2.12`` -> ``wasi:http/types``; None when not a WASI 0.2 name."""
    m = _NAME.fullmatch(import_name)
    return m.group(1) if m else None


def provides(import_name: str) -> bool:
    """Whether the Python host implements the interface ``import_name``."""
    key = interface_key(import_name)
    return key is not None and key in IMPLEMENTATIONS


class _Bridge(ResourceBridge):
    """Resources cross host calls as objects of the running request's table."""

    def lift(self, rep: int, owned: bool) -> Any:
        return self.lifter(owned)(rep)

    def lifter(self, owned: bool) -> Callable[[int], Any]:
        return _taken if owned else _borrowed

    def lower(self, value: Any) -> tuple[int, int]:
        return r.current().add(value), value.TYPE


def _taken(rep: int) -> Any:
    """The object an owned handle stands for, leaving the request's table with it."""
    return r.current().table.pop(rep)


def _borrowed(rep: int) -> Any:
    return r.current().table[rep]


BRIDGE = _Bridge()


def _dropped_rep(rep: int) -> None:
    state = r.current()
    obj = state.table.pop(rep, None)
    if obj is not None:
        obj.dropped(state)


def _dropped(store: Any, rep: int) -> None:
    _dropped_rep(rep)


def _failed(label: str) -> Callable[[BaseException], str]:
    def on_error(e: BaseException) -> str:
        try:
            state = r.current()
        except r.GuestMisuse:
            state = None
        if state is not None and state.failure is None:
            state.failure = e
        if isinstance(e, r.GuestMisuse | r.ExitRequested | r.DeadlineReached):
            return f"{label}: {e}"
        return f"host function {label} failed: {type(e).__name__}: {e}"

    return on_error


def denial(fty: cm.FuncType) -> Any:
    """The error value that denies this function's capability, or None if it has none."""
    result = fty.result
    if not isinstance(result, cm.ResultType):
        return None
    err = result.err
    if isinstance(err, cm.EnumType):
        names = err.names
        for case in DENIAL_CASES:
            if case in names:
                return ("err", case)
    if isinstance(err, cm.VariantType):
        names = [n for n, t in err.cases if t is None]
        for case in DENIAL_CASES:
            if case in names:
                return ("err", (case, None))
    return None


def _resolve(key: str, name: str, fty: cm.FuncType) -> Impl:
    impl = IMPLEMENTATIONS.get(key, {}).get(name)
    if impl is not None:
        # A factory marked ``typed`` adapts to the imported shape (draft interfaces vary).
        return impl(fty) if getattr(impl, "wasmgate_typed", False) else impl
    denied = denial(fty)
    if denied is not None:
        return lambda st, *args: denied

    def unsupported(st: r.RequestState, *args: Any) -> Any:
        raise r.GuestMisuse(f"{key}#{name} is not supported by wasmgate's WASI host")

    return unsupported


def _raw_callback(impl: Impl, fty: cm.FuncType, on_error: Callable[[BaseException], str]) -> Any:
    """The C callback of a host function (``lowlevel.add_raw_func``): lift the arguments, call
    ``impl`` with the running request's state, lower its result; any exception becomes the
    guest's trap, with the text ``on_error`` makes of it. One frame per call: the common
    arities are unrolled (a list of arguments per call costs on every request)."""
    lifts = [raw_codec(t, BRIDGE)[0] for _, t in fty.params]
    result = fty.result
    lower = None if result is None else raw_codec(result, BRIDGE)[1]
    current = r.current

    if len(lifts) == 1:
        (lift0,) = lifts

        def call1(_d: Any, ctx: Any, _t: Any, args: Any, n: int, results: Any, nr: int) -> int:
            try:
                out = impl(current(), lift0(ctx, args[0]))
                if lower is not None:
                    lower(ctx, out, results[0])
            except BaseException as e:  # every failure must become a trap
                return raw_trap(on_error(e))
            return 0

        return call1
    if len(lifts) == 2:
        lift0, lift1 = lifts

        def call2(_d: Any, ctx: Any, _t: Any, args: Any, n: int, results: Any, nr: int) -> int:
            try:
                out = impl(current(), lift0(ctx, args[0]), lift1(ctx, args[1]))
                if lower is not None:
                    lower(ctx, out, results[0])
            except BaseException as e:
                return raw_trap(on_error(e))
            return 0

        return call2
    if len(lifts) == 3:
        lift0, lift1, lift2 = lifts

        def call3(_d: Any, ctx: Any, _t: Any, args: Any, n: int, results: Any, nr: int) -> int:
            try:
                out = impl(current(), lift0(ctx, args[0]), lift1(ctx, args[1]), lift2(ctx, args[2]))
                if lower is not None:
                    lower(ctx, out, results[0])
            except BaseException as e:
                return raw_trap(on_error(e))
            return 0

        return call3

    def call(_d: Any, ctx: Any, _t: Any, args: Any, n: int, results: Any, nr: int) -> int:
        try:
            out = impl(current(), *[lift(ctx, args[i]) for i, lift in enumerate(lifts)])
            if lower is not None:
                lower(ctx, out, results[0])
        except BaseException as e:
            return raw_trap(on_error(e))
        return 0

    return call


def _public_call(impl: Impl, fty: cm.FuncType, on_error: Callable[[BaseException], str]) -> Any:
    lifts = [public_codec(t, BRIDGE)[0] for _, t in fty.params]
    result = fty.result
    lower = None if result is None else public_codec(result, BRIDGE)[1]

    def call(store: Any, *raw: Any) -> Any:
        try:
            out = impl(r.current(), *[lift(store, v) for lift, v in zip(lifts, raw, strict=True)])
            return None if lower is None else lower(store, out)
        except BaseException as e:
            raise wasmtime.WasmtimeError(on_error(e)) from None

    return call


class WasiHost:
    """The Python WASI host for one component: ``define`` links its imports (every one, or
    ``names``), ``session`` makes a run's state from its capabilities."""

    def __init__(
        self,
        component: cm.Component,
        engine: wasmtime.Engine,
        *,
        label: str,
        fast: bool = True,
        names: Collection[str] | None = None,
        grants: Any = None,
    ) -> None:
        self.grants = grants  # state.grants.RouteState for every session (None: nothing)
        imports = component.type.imports(engine)
        chosen = list(imports) if names is None else [n for n in imports if n in names]
        self._items: list[tuple[str, str, dict[str, Any]]] = []
        for name in chosen:
            ty = imports[name].ty
            key = interface_key(name)
            if (
                key is None
                or key not in IMPLEMENTATIONS
                or not isinstance(ty, cm.ComponentInstanceType)
            ):
                raise LinkError(f"{label}: imports {name}, which wasmgate's WASI host lacks")
            self._items.append((name, key, ty.exports(engine)))
        self.imports = tuple(chosen)
        self.fast = fast and raw_funcs_supported()
        self.crossing = "public" if not self.fast else "c" if crossing.enabled() else "python"
        if self.fast:
            hold_gil_in_component_calls()

    def define(self, linker: cm.Linker) -> None:
        if not self._items:
            return
        with linker.root() as root:
            for name, key, items in self._items:
                with root.add_instance(name) as inst:
                    _define(inst, key, items, self.crossing)

    def session(self, caps: Capabilities) -> r.RequestState:
        return session(caps, self.grants)


@dataclass(frozen=True, slots=True)
class LinkedComponent:
    """A wasi:http component's host (every import) and its handler export."""

    host: WasiHost
    handler: str  # e.g. "wasi:http/incoming-handler@0.2.12"
    handle_index: cm.ExportIndex
    imports: tuple[str, ...]
    fast: bool
    crossing: str  # how host calls cross: "c", "python" or "public" (WasiHost.crossing)


def handler_export(component: cm.Component, engine: wasmtime.Engine) -> str | None:
    """The name of the component's ``wasi:http/incoming-handler@0.2.x`` export, if any."""
    for name in component.type.exports(engine):
        if interface_key(name) == HANDLER_INTERFACE:
            return name
    return None


def link_component(
    component: cm.Component, engine: wasmtime.Engine, *, label: str, fast: bool = True
) -> LinkedComponent:
    """The host for every import of ``component``; ``LinkError`` if it imports anything outside
    the Python host's interfaces or exports no incoming handler."""
    export = handler_export(component, engine)
    if export is None:
        raise LinkError(f"{label}: exports no {HANDLER_INTERFACE}@0.2.x (not a wasi:http handler)")
    iface_index = component.get_export_index(export)
    handle_index = (
        component.get_export_index("handle", iface_index) if iface_index is not None else None
    )
    if handle_index is None:
        raise LinkError(f"{label}: {export} has no handle function")
    host = WasiHost(component, engine, label=label, fast=fast)
    return LinkedComponent(host, export, handle_index, host.imports, host.fast, host.crossing)


def _define(inst: cm.LinkerInstance, key: str, items: dict[str, Any], how: str) -> None:
    own = RESOURCES.get(key, {})
    for name, ext in items.items():
        ty = ext.ty
        if isinstance(ty, cm.ResourceType):
            cls = own.get(name)
            type_id = cls.TYPE if cls is not None else _NEVER_IDS.get((key, name))
            if type_id is None:  # a ``use``d alias of another interface's resource
                continue
            if how == "c":
                crossing.add_resource(inst, name, type_id, _dropped_rep)
            elif not (how == "python" and add_raw_resource(inst, name, type_id, _dropped_rep)):
                inst.add_resource(name, cm.ResourceType.host(type_id), _dropped)
        elif isinstance(ty, cm.FuncType):
            impl = _resolve(key, name, ty)
            on_error = _failed(f"{key}#{name}")
            if how == "c":
                crossing.add_func(
                    inst, name, impl, ty, current=r.current, on_error=on_error, bridge=BRIDGE
                )
            elif not (
                how == "python" and add_raw_func(inst, name, _raw_callback(impl, ty, on_error))
            ):
                inst.add_func(name, _public_call(impl, ty, on_error))
