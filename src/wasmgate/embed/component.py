"""Components embedded in a Python program: WIT functions called with Python values.

Rules:
- ``instantiate_component`` loads through the shared engine and cache, checks every import up
  front (``linking``), links wasmgate's WASI preview2 host (``wasihttp.host.WasiHost``, the one
  wasi:http routes and ``wasmgate run`` use) granting exactly ``capabilities``, and the
  caller's functions, and makes one store per instance through the engine entry.
- The WASI host's waits (``wasi:io/poll``, ``pollable.block``, a blocking read of inherited
  stdin) end at the call's deadline: a component asleep in one is stopped at its ``timeout``
  and the call raises ``LimitExceeded("timeout")``, as for one spinning in wasm.
- Key-value stores and configuration are granted as for a served route: ``key_value_stores``
  (labels it may open; any other is ``access-denied``, a granted label no store is configured
  for ``no-such-store``) over the backends of ``runtime_config_file`` / ``state_dir`` (the
  ``serve`` settings of the same names), and ``variables`` for ``wasi:config/store``.
- Functions are named as ``wasmgate inspect`` prints them: ``greet`` at the top level,
  ``my:pkg/iface#greet`` inside an exported interface; as attributes of ``inst.exports`` they are
  spelt in snake_case (``inst.exports.echo_people``).
- Each function is prepared once (export index, binding function, converters from its WIT
  signature); a call converts and checks the arguments (``values``) before any wasm runs, arms the
  limits (``guard``), calls, and converts the result.
- Host functions for the component's imports get converted arguments and return plain Python
  values; see ``hostfuncs`` for names and ``values`` for the mapping.
- A trap (limits included, and a host function's exception) leaves a component instance unusable:
  the component model forbids entering an instance that trapped, so later calls raise
  ``GuestTrap`` saying so. Core instances have no such rule.
- An instance (its store) is for one thread at a time; make one instance per thread.
- ``max_memory`` bounds a component's memories, but a component's core memory is not visible
  from outside, so running out is reported as the guest reports it (``memory.grow`` returns -1,
  or the guest traps), not as ``LimitExceeded("memory")``.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import wasmtime
from wasmtime import component as cm

from ..capabilities import Capabilities
from ..engine import CacheConfig, EngineSettings, LoadedGuest, Program, item_type, named_types
from ..errors import GuestTrap, LinkError, UsageError
from ..limits import Limits
from ..state.grants import Variable, route_state
from .call_limits import CallGuard
from .hostfuncs import HostFunction, HostFunctions
from .linking import check_component_imports
from .owner import StoreOwner
from .source import Source, resolve
from .values import ComponentError, Mismatch, Signature, TypeBuilder, py_name

__all__ = [
    "ComponentExports",
    "ComponentFunction",
    "ComponentInstance",
    "instantiate_component",
]


_POISONED = "cannot enter component instance"


class ComponentFunction:
    """One exported component function, callable with Python values.

    With ``raise_errors`` (the default) a top-level ``result`` comes back as its ok value and an
    ``err`` is raised as ``ComponentError``; without it, as ``Ok``/``Err`` values.
    """

    __slots__ = (
        "_func",
        "_guard",
        "_lowers",
        "_nparams",
        "_raise_errors",
        "_session",
        "_store",
        "name",
        "signature",
        "type",
    )

    def __init__(
        self,
        name: str,
        func: cm.Func,
        fty: cm.FuncType,
        signature: Signature,
        store: wasmtime.Store,
        guard: CallGuard,
        raise_errors: bool,
    ) -> None:
        self.name = name
        self.type = fty
        self.signature = signature
        self._func = func
        self._store = store
        self._guard = guard
        self._lowers = signature.lowers
        self._nparams = len(signature.lowers)
        self._raise_errors = raise_errors
        self._session = guard.session

    def __repr__(self) -> str:
        return f"<ComponentFunction {self.name}: {item_type(self.type)}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs or len(args) != self._nparams:
            args = self.signature.bind(args, kwargs)
        try:
            lowered = [lower(value) for lower, value in zip(self._lowers, args, strict=True)]
        except Mismatch:
            lowered = self.signature.lower_args(args)  # raises the TypeError with its path
        guard = self._guard
        guard.arm()
        session = self._session
        previous = None if session is None else session.enter()
        try:
            raw = self._func(self._store, *lowered)
        except (wasmtime.WasmtimeError, wasmtime.Trap) as err:
            failure = guard.failure(err)
        except BaseException:
            guard.pending = None  # the binding re-raised the host function's own exception
            raise
        else:
            return self._finish(raw)
        finally:
            if session is not None:
                session.leave(previous)
        if failure is None:
            return None
        if isinstance(failure, GuestTrap) and failure.kind == _POISONED:
            failure = GuestTrap(
                f"{_POISONED}: it trapped in an earlier call, and the component model forbids "
                "entering it again (instantiate the component again)"
            )
        raise failure

    def _finish(self, raw: Any) -> Any:
        sig = self.signature
        result = sig.result
        if result is None:
            return None
        if self._raise_errors and sig.result_is_result:
            is_ok, value = result.lift_case(raw)  # type: ignore[attr-defined]
            if is_ok:
                return value
            raise ComponentError(value)
        return result.lift(raw)


class ComponentExports:
    """``inst.exports.greet("Ada")`` or ``inst.exports["my:pkg/iface#greet"]("Ada")``."""

    _instance: ComponentInstance

    def __init__(self, instance: ComponentInstance) -> None:
        object.__setattr__(self, "_instance", instance)

    def __getattr__(self, name: str) -> ComponentFunction:
        if name.startswith("__"):
            raise AttributeError(name)
        inst = self._instance
        wit = inst.attribute_names().get(name)
        if wit is None:
            raise AttributeError(
                f"{inst.name}: no exported function {name!r} "
                f"(exported functions: {', '.join(inst.function_names()) or 'none'})"
            )
        func = inst.func(wit)
        object.__setattr__(self, name, func)
        return func

    def __getitem__(self, name: str) -> ComponentFunction:
        return self._instance.func(name)

    def __contains__(self, name: object) -> bool:
        return name in self._instance.function_names()

    def __iter__(self) -> Iterator[str]:
        return iter(self._instance.function_names())

    def __dir__(self) -> list[str]:
        return list(self._instance.attribute_names())


class ComponentInstance(StoreOwner):
    """A live component instance: one store, its exported functions and its limits."""

    def __init__(
        self,
        guest: LoadedGuest,
        store: wasmtime.Store,
        raw: cm.Instance,
        guard: CallGuard,
        builder: TypeBuilder,
    ) -> None:
        self.guest = guest
        self.name = guest.name
        self.store = store
        self.raw = raw
        self._guard = guard
        self._builder = builder
        self._closed = False
        self._funcs: dict[tuple[str, bool], ComponentFunction] = {}
        self._types = _export_functions(guest)
        self._attributes = {py_name(n.rpartition("#")[2]): n for n in self._types}
        self.exports = ComponentExports(self)
        session = guard.session
        # The host's state holds open files (granted folders, stdio files): closed with the
        # instance, or when it is collected.
        self._release = None if session is None else weakref.finalize(self, session.close)

    def close(self) -> None:
        super().close()
        if self._release is not None:
            self._release()

    @property
    def types(self) -> dict[str, type]:
        """The Python classes made for the component's named records, by WIT name."""
        return dict(self._builder.classes)

    @property
    def fuel_consumed(self) -> int | None:
        """Fuel used by the most recent call (None without a fuel limit)."""
        return self._guard.fuel_consumed()

    def function_names(self) -> list[str]:
        return list(self._types)

    def attribute_names(self) -> dict[str, str]:
        return self._attributes

    def func(self, name: str, *, raise_errors: bool = True) -> ComponentFunction:
        """The exported function ``name`` (``greet`` or ``my:pkg/iface#greet``), prepared once."""
        key = (name, raise_errors)
        func = self._funcs.get(key)
        if func is not None:
            return func
        found = self._types.get(name)
        if found is None:
            raise LinkError(
                f"{self.name}: no exported function {name!r} "
                f"(exported functions: {', '.join(self._types) or 'none'})"
            )
        iface, fname, fty = found
        store = self.store
        parent = None
        if iface is not None:
            parent = self.raw.get_export_index(store, iface)
        index = self.raw.get_export_index(store, fname, parent)
        raw = self.raw.get_func(store, index) if index is not None else None
        if raw is None:
            raise LinkError(f"{self.name}: export {name!r} is not a function")
        signature = Signature(name, fty, self._builder)
        func = ComponentFunction(name, raw, fty, signature, store, self._guard, raise_errors)
        self._funcs[key] = func
        return func

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call export ``name`` with Python values: ``inst.call("greet", "Ada")``."""
        return self.func(name)(*args, **kwargs)


def _export_functions(guest: LoadedGuest) -> dict[str, tuple[str | None, str, cm.FuncType]]:
    engine = guest.engine.engine
    out: dict[str, tuple[str | None, str, cm.FuncType]] = {}
    for name, ext in guest.as_component().type.exports(engine).items():
        ty = ext.ty
        if isinstance(ty, cm.FuncType):
            out[name] = (None, name, ty)
        elif isinstance(ty, cm.ComponentInstanceType):
            for fname, fext in ty.exports(engine).items():
                fty = fext.ty
                if isinstance(fty, cm.FuncType):
                    out[f"{name}#{fname}"] = (name, fname, fty)
    return out


def _host_callback(hf: HostFunction, sig: Signature, guard: CallGuard) -> Any:
    fn = hf.fn
    returns_result = sig.result_is_result

    def call(store: Any, *raw_args: Any) -> Any:
        try:
            args = sig.lift_args(raw_args)
            try:
                value, failed = fn(*args), None
            except ComponentError as e:
                if not returns_result:
                    raise
                value, failed = None, e
            return sig.lower_result(value, failed)
        except BaseException as e:
            guard.pending = e
            if isinstance(e, Exception) and not isinstance(e, wasmtime.WasmtimeError):
                raise
            # The binding only carries Exceptions across wasm; the original waits in ``guard``.
            raise wasmtime.WasmtimeError(f"host function {hf.name} failed") from None

    return call


def _define_imports(
    linker: cm.Linker,
    provided: list[tuple[str | None, str, HostFunction, cm.FuncType]],
    builder: TypeBuilder,
    guard: CallGuard,
) -> None:
    by_iface: dict[str | None, list[tuple[str, Any]]] = {}
    for iface, fname, hf, fty in provided:
        label = f"host function {fname}" if iface is None else f"host function {iface}#{fname}"
        sig = Signature(label, fty, builder)
        by_iface.setdefault(iface, []).append((fname, _host_callback(hf, sig, guard)))
    with linker.root() as root:
        for fname, cb in by_iface.pop(None, []):
            root.add_func(fname, cb)
        for iface, funcs in by_iface.items():
            assert iface is not None
            with root.add_instance(iface) as inst:
                for fname, cb in funcs:
                    inst.add_func(fname, cb)


def instantiate_component(
    source: Source,
    *,
    imports: HostFunctions | None = None,
    capabilities: Capabilities | None = None,
    limits: Limits = Limits(),
    wasi: bool = True,
    key_value_stores: Sequence[str] = (),
    variables: Mapping[str, str | Variable] | None = None,
    runtime_config_file: Path | str | None = None,
    state_dir: Path | str | None = None,
    settings: EngineSettings | None = None,
    cache: CacheConfig = CacheConfig(),
    allow_precompiled: bool = False,
) -> ComponentInstance:
    """Load (or reuse) a component and instantiate it in a sandbox.

    ``source`` is a path, component bytes, WAT text (a ``str`` starting with ``(``) or a
    ``LoadedGuest``. ``imports`` provides the component's function imports; with ``wasi`` (the
    default) wasmgate's WASI preview2 host is linked, granting exactly ``capabilities``, the
    stores labelled in ``key_value_stores`` (backends from ``runtime_config_file``, SQLite files
    in ``state_dir``) and ``variables``.
    """
    state = route_state(key_value_stores, variables, runtime_config_file, state_dir)
    guest = resolve(source, limits, settings, cache, allow_precompiled)
    if guest.kind != "component":
        raise UsageError(f"{guest.name}: is a core module; use wasmgate.instantiate")
    component = guest.as_component()
    engine = guest.engine.engine
    ctype = component.type
    names = named_types(ctype, engine)
    provided = check_component_imports(
        guest.name, ctype.imports(engine), engine, imports, wasi=wasi, names=names
    )
    builder = TypeBuilder(names)
    for tname, ty in builder.names:
        if isinstance(ty, cm.RecordType):
            builder.build(ty, tname)
    host = None
    if provided.wasi:
        from ..wasihttp.host import WasiHost

        host = WasiHost(component, engine, label=guest.name, names=provided.wasi, grants=state)
    guard = CallGuard(guest.engine, limits, host_calls=host is not None)
    program = Program(
        guest,
        host=host,
        define=lambda linker: _define_imports(linker, provided.functions, builder, guard),
    )
    store, raw = guard.start(program, capabilities or Capabilities())
    assert isinstance(raw, cm.Instance)
    inst = ComponentInstance(guest, store, raw, guard, builder)
    inst.capabilities = capabilities or Capabilities()
    return inst
