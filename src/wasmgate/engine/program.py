"""The one engine entry: a guest linked once, then run (or instantiated) many times, each time in a
fresh sandboxed store. Every face reaches wasm through it: ``wasmgate run``, ``wasmgate call``, the
embedding API and the gateway's routes.

Rules:
- ``Program(guest, define=...)`` links once: WASI (preview1 with the bounded host calls for core
  modules, preview2 for components) plus whatever host imports ``define`` adds to the linker
  (outbound HTTP for WAGI routes, Python callables for the embedding API). A core module's link
  is kept as an instance-pre, so a run only instantiates. A link failure (an import nobody
  provides) is kept in ``link_error`` and raised as ``LinkError`` by each run, so a server can
  decide what a broken route means.
- ``run`` makes a fresh store granting the capabilities under the limits (``sandbox.open_store``:
  the only place stores and WASI configurations are made), instantiates, calls the entry point
  and returns an ``Outcome``. Guest behaviour (exit, trap, limits) is never raised; host-side
  problems (no such export, arguments that do not fit it) are.
- A run whose deadline stopped it, in wasm or in a host call (``deadline.cut_off``), is a timeout,
  however the guest ended afterwards: a guest cut off in ``sleep`` may well return at once.
- ``instantiate`` is for callers that keep the instance (the embedding API): it returns the live
  store and instance, or raises the exception the failure's ``Outcome`` stands for.
- Nothing here knows of HTTP, CGI or Python host functions: callers bring them through
  ``define`` and the capabilities.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import wasmtime

from ..capabilities import Capabilities
from ..errors import LinkError
from ..limits import Limits
from .deadline import cut_off
from .loader import LoadedGuest
from .lowlevel import call_export
from .outcome import Outcome, classify_failure, exported_memory_size, fold_error, timed_out
from .sandbox import component_linker, core_linker, open_store

if TYPE_CHECKING:  # the component types load only when a component does (start-up)
    from wasmtime import component as cm

__all__ = ["Program"]

Define = Callable[[Any], None]


class Program:
    """A guest linked with WASI and ``define``'s host imports, ready to run in fresh stores."""

    def __init__(self, guest: LoadedGuest, *, define: Define | None = None) -> None:
        self.guest = guest
        self.name = guest.name
        self.link_error: str | None = None
        self._pre: wasmtime.InstancePre | None = None
        self._component_linker: cm.Linker | None = None
        engine = guest.engine
        if guest.kind == "component":
            self.exports: frozenset[str] = frozenset()
            clinker = component_linker(engine)
            if define is not None:
                define(clinker)
            self._component_linker = clinker
            return
        module = guest.core()
        self.exports = frozenset(
            e.name for e in module.exports if isinstance(e.type, wasmtime.FuncType)
        )
        linker = core_linker(engine)
        if define is not None:
            define(linker)
        try:
            self._pre = linker.instantiate_pre(module)
        except wasmtime.WasmtimeError as e:
            self.link_error = fold_error(e)

    def check_linked(self) -> None:
        """Raise ``LinkError`` if the guest could not be linked."""
        if self.link_error is not None:
            raise LinkError(f"{self.name}: cannot instantiate: {self.link_error}")

    # --- runs -----------------------------------------------------------------------------

    def run(
        self,
        caps: Capabilities,
        limits: Limits,
        *,
        entry: str = "_start",
        args: Sequence[Any] = (),
        results: bool = False,
        timeout: float | None = None,
    ) -> Outcome:
        """Run ``entry`` once in a fresh store; ``timeout`` (seconds) replaces the limit's own
        (a caller's shorter budget). With ``results``, the entry's results are returned in the
        outcome. Components run ``wasi:cli/run`` (``entry`` is not used)."""
        if self.link_error is not None:
            self.check_linked()
        store = open_store(self.guest.engine, caps, limits, timeout=timeout)
        if self._component_linker is not None:
            return self._run_component(store, limits, timeout)
        assert self._pre is not None
        started = time.perf_counter()
        instance: wasmtime.Instance | None = None
        value: Any = None
        try:
            instance = self._pre.instantiate(store)
            if entry != "_start" and "_initialize" in self.exports:
                _call(store, instance, "_initialize")
            if results or args:
                func = instance.exports(store)[entry]
                assert isinstance(func, wasmtime.Func)
                value = func(store, *args)
            else:
                _call(store, instance, entry)
        except (wasmtime.WasmtimeError, wasmtime.Trap) as err:
            memory_size = exported_memory_size(store, instance)
            outcome = classify_failure(err, limits, memory_size=memory_size, timeout=timeout)
            return _finished(outcome, limits, timeout, store, started)
        if cut_off():
            return _finished(timed_out(limits, timeout), limits, timeout, store, started)
        values: tuple[Any, ...]
        if value is None:
            values = ()
        elif isinstance(value, list):
            values = tuple(value)
        else:
            values = (value,)
        fuel = None if limits.fuel is None else _fuel_consumed(store, limits)
        return Outcome(
            "ok", results=values, elapsed=time.perf_counter() - started, fuel_consumed=fuel
        )

    def _run_component(
        self, store: wasmtime.Store, limits: Limits, timeout: float | None
    ) -> Outcome:
        assert self._component_linker is not None
        component = self.guest.as_component()
        engine = self.guest.engine.engine
        run_name = next(
            (n for n in component.type.exports(engine) if n.startswith("wasi:cli/run@")), None
        )
        if run_name is None:
            raise LinkError(
                f"{self.name}: component does not export wasi:cli/run, so it is not a command "
                "(call its functions with `wasmgate call`)"
            )
        started = time.perf_counter()
        try:
            instance = self._component_linker.instantiate(store, component)
        except wasmtime.Trap as err:
            outcome = classify_failure(err, limits, memory_size=None, timeout=timeout)
            return _finished(outcome, limits, timeout, store, started)
        except wasmtime.WasmtimeError as err:
            if "exceeds memory limits" in str(err) and limits.max_memory is not None:
                outcome = classify_failure(err, limits, memory_size=None, timeout=timeout)
                return _finished(outcome, limits, timeout, store, started)
            raise LinkError(f"{self.name}: cannot instantiate: {fold_error(err)}") from None
        iface = instance.get_export_index(store, run_name)
        index = instance.get_export_index(store, "run", iface) if iface is not None else None
        func = instance.get_func(store, index) if index is not None else None
        if func is None:
            raise LinkError(f"{self.name}: {run_name} has no `run` function")
        try:
            result = func(store)
            func.post_return(store)
        except (wasmtime.WasmtimeError, wasmtime.Trap) as err:
            outcome = classify_failure(err, limits, memory_size=None, timeout=timeout)
            return _finished(outcome, limits, timeout, store, started)
        if cut_off():
            return _finished(timed_out(limits, timeout), limits, timeout, store, started)
        from wasmtime import component as cm

        if isinstance(result, cm.Variant) and result.tag == "err":
            outcome = Outcome("exit", exit_code=1, message="guest's run returned an error")
            return _finished(outcome, limits, timeout, store, started)
        return Outcome(
            "ok", elapsed=time.perf_counter() - started, fuel_consumed=_fuel_consumed(store, limits)
        )

    # --- live instances (the embedding API) -------------------------------------------------

    def instantiate(
        self, caps: Capabilities, limits: Limits
    ) -> tuple[wasmtime.Store, wasmtime.Instance | cm.Instance]:
        """A fresh store and a live instance in it (start function and all), for a caller that
        keeps them; a failure raises its outcome's exception (``LinkError`` for a link)."""
        self.check_linked()
        store = open_store(self.guest.engine, caps, limits)
        try:
            if self._component_linker is not None:
                component = self.guest.as_component()
                return store, self._component_linker.instantiate(store, component)
            assert self._pre is not None
            return store, self._pre.instantiate(store)
        except (wasmtime.WasmtimeError, wasmtime.Trap) as err:
            outcome = classify_failure(err, limits, memory_size=None)
            if outcome.status == "error" and not isinstance(err, wasmtime.Trap):
                raise LinkError(f"{self.name}: cannot instantiate: {outcome.message}") from None
            if cut_off():
                outcome = timed_out(limits)
            error = outcome.error()
            if error is None:  # proc_exit(0) from a start function: nothing to call
                raise LinkError(f"{self.name}: start function exited") from None
            raise error from None


def _call(store: wasmtime.Store, instance: wasmtime.Instance, name: str) -> None:
    """Call a no-result export by name: the binding's lower layer where it can (no export map),
    the public API otherwise."""
    if not call_export(store, instance, name):
        func = instance.exports(store)[name]
        assert isinstance(func, wasmtime.Func)
        func(store)


def _fuel_consumed(store: wasmtime.Store, limits: Limits) -> int | None:
    if limits.fuel is None:
        return None
    try:
        return limits.fuel - store.get_fuel()
    except wasmtime.WasmtimeError:
        return None


def _finished(
    outcome: Outcome,
    limits: Limits,
    timeout: float | None,
    store: wasmtime.Store,
    started: float,
) -> Outcome:
    """``outcome`` with its timing and fuel; a run cut off at its deadline is a timeout."""
    if outcome.status != "timeout" and cut_off():
        outcome = timed_out(limits, timeout)
    return Outcome(
        outcome.status,
        exit_code=outcome.exit_code,
        message=outcome.message,
        trap_kind=outcome.trap_kind,
        backtrace=outcome.backtrace,
        elapsed=time.perf_counter() - started,
        fuel_consumed=_fuel_consumed(store, limits),
        memory_size=outcome.memory_size,
        hint=outcome.hint,
    )
