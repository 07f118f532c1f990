"""The one engine entry: a guest linked once, then run (or instantiated) many times, each time in a
fresh sandboxed store. Every face reaches wasm through it: ``wasmgate run``, ``wasmgate call``, the
embedding API and the gateway's routes.

Rules:
- ``Program(guest, define=..., host=...)`` links once. A core module gets WASI preview1 with the
  bounded host calls (``sandbox.core_linker``). A component gets the WASI its caller's ``host``
  links (a ``ComponentHost``: wasmgate's preview2 in Python, whose waits end by the deadline),
  or, with no host, Wasmtime's own preview2, whose host calls nothing can interrupt (a guest
  asleep in one holds its thread past the deadline: ``wasmgate run`` ends such a process with
  its watchdog; every other face brings the Python host). Then ``define`` adds the face's own
  host imports (outbound HTTP for WAGI routes, Python callables for the embedding API). A core
  module's link is kept as an instance-pre, so a run only instantiates. A link failure (an
  import nobody provides) is kept in ``link_error`` and raised as ``LinkError`` by each run, so
  a server can decide what a broken route means.
- ``run`` makes a fresh store under the limits (``sandbox``: the only place stores and WASI
  configurations are made) granting the capabilities (through a WASI configuration, or through
  the component host's ``session``), instantiates, calls the entry
  point and returns an ``Outcome``. Guest behaviour (exit, trap, limits) is never raised;
  host-side problems (no such export, arguments that do not fit it) are.
- A component's entry is ``wasi:cli/run`` unless the caller brings its own ``invoke`` (a
  wasi:http route calls its handler); a caller may bring the run's ``session`` too (a route's
  holds the request). The session is current on the thread while the guest runs, says first
  what a trap raised by a host call stands for (``Session.outcome``), and is closed with the run.
- A run whose deadline stopped it, in wasm or in a host call (``deadline.cut_off``), is a timeout,
  however the guest ended afterwards: a guest cut off in ``sleep`` may well return at once.
- ``instantiate`` is for callers that keep the instance (the embedding API): it returns the live
  store and instance, or raises the exception the failure's ``Outcome`` stands for. Such a
  caller makes the session (``session``) and makes it current around each call itself.
- Nothing here knows of HTTP, CGI or Python host functions: callers bring them through
  ``define``, ``host`` and the capabilities.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import wasmtime

from ..capabilities import Capabilities
from ..errors import LinkError
from ..limits import Limits
from .deadline import cut_off
from .loader import LoadedGuest
from .lowlevel import CommandRun, call_export, instantiate
from .outcome import Outcome, classify_failure, exported_memory_size, fold_error, timed_out
from .sandbox import component_linker, core_linker, new_store, open_store, run_command

if TYPE_CHECKING:  # the component types load only when a component does (start-up)
    from wasmtime import component as cm

__all__ = ["ComponentHost", "Invoke", "Program", "Session"]

Define = Callable[[Any], None]


class Session(Protocol):
    """One run's (or one embedded instance's) state in a component host."""

    def enter(self) -> Any:
        """Make this the session of the guest running on this thread; returns the one it
        replaces (for ``leave``)."""

    def leave(self, previous: Any) -> None: ...

    def outcome(self, err: BaseException) -> Outcome | None:
        """What the failure ``err`` stands for when the host knows better than the engine (a
        trap raised by a host call: taken, asked once per trap); None otherwise."""

    def close(self) -> None: ...


class ComponentHost(Protocol):
    """WASI (and whatever else) for components, linked by the host itself."""

    def define(self, linker: cm.Linker) -> None: ...

    def session(self, caps: Capabilities) -> Session: ...


# A component's entry: calls into ``instance``; an ``Outcome`` it returns is the run's.
Invoke = Callable[[wasmtime.Store, "cm.Instance"], "Outcome | None"]


class Program:
    """A guest linked with WASI and ``define``'s host imports, ready to run in fresh stores."""

    def __init__(
        self,
        guest: LoadedGuest,
        *,
        define: Define | None = None,
        host: ComponentHost | None = None,
    ) -> None:
        self.guest = guest
        self.name = guest.name
        self.link_error: str | None = None
        self.host = host
        self._pre: wasmtime.InstancePre | None = None
        self._component_linker: cm.Linker | None = None
        self._command: Invoke | None = None
        self._reads_args = self._reads_env = True
        engine = guest.engine
        if guest.kind == "component":
            self.exports: frozenset[str] = frozenset()
            clinker = component_linker(engine, wasip2=host is None)
            if host is not None:
                host.define(clinker)
            if define is not None:
                define(clinker)
            self._component_linker = clinker
            return
        module = guest.core()
        self.exports = frozenset(
            e.name for e in module.exports if isinstance(e.type, wasmtime.FuncType)
        )
        # What the guest can read at all (see ``sandbox``: WASI is not given the rest).
        wasi = {i.name for i in module.imports if i.module == "wasi_snapshot_preview1"}
        self._reads_args = not wasi.isdisjoint(("args_get", "args_sizes_get"))
        self._reads_env = not wasi.isdisjoint(("environ_get", "environ_sizes_get"))
        linker = core_linker(engine)
        if define is not None:
            define(linker)
        try:
            self._pre = linker.instantiate_pre(module)
        except wasmtime.WasmtimeError as e:
            self.link_error = fold_error(e)

    @property
    def reads_environment(self) -> bool:
        """Whether a run can see the environment it is given (a component always can; a core
        module only if it imports ``environ_get`` or ``environ_sizes_get``): a caller may skip
        building one the guest never sees."""
        return self._reads_env

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
        invoke: Invoke | None = None,
        session: Session | None = None,
    ) -> Outcome:
        """Run ``entry`` once in a fresh store; ``timeout`` (seconds) replaces the limit's own
        (a caller's shorter budget). With ``results``, the entry's results are returned in the
        outcome. Components run ``invoke``, by default ``wasi:cli/run`` (``entry`` is not
        used), in ``session`` (default: a new one from the host, granting ``caps``)."""
        if self.link_error is not None:
            self.check_linked()
        if self._component_linker is not None:
            return self._run_component(caps, limits, timeout, invoke, session)
        assert self._pre is not None
        if not (results or args):  # a served request's run: in one C call where it can be
            entries: tuple[str, ...] = (entry,)
            if entry != "_start" and "_initialize" in self.exports:
                entries = ("_initialize", entry)
            started = time.perf_counter()
            ran = run_command(
                self.guest.engine,
                caps,
                limits,
                self._pre,
                entries,
                timeout=timeout,
                args=self._reads_args,
                env=self._reads_env,
                keep_store=limits.fuel is not None,  # to read what was consumed
            )
            if ran is not None:
                return _command_outcome(ran, limits, timeout, started)
        store = self._wasi_store(caps, limits, timeout)
        started = time.perf_counter()
        instance: wasmtime.Instance | None = None
        value: Any = None
        try:
            instance = instantiate(store, self._pre) or self._pre.instantiate(store)
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

    def _wasi_store(
        self, caps: Capabilities, limits: Limits, timeout: float | None
    ) -> wasmtime.Store:
        """A store whose WASI configuration grants ``caps`` (a core module, or a component on
        Wasmtime's own WASI): argv and the environment only if the guest can read them."""
        return open_store(
            self.guest.engine,
            caps,
            limits,
            timeout=timeout,
            args=self._reads_args,
            env=self._reads_env,
        )

    def _run_component(
        self,
        caps: Capabilities,
        limits: Limits,
        timeout: float | None,
        invoke: Invoke | None,
        session: Session | None,
    ) -> Outcome:
        assert self._component_linker is not None
        if invoke is None:
            invoke = self._command or self._find_command()
        if self.host is None:
            store = self._wasi_store(caps, limits, timeout)
        else:
            store = new_store(self.guest.engine, limits, timeout=timeout)
            if session is None:
                session = self.host.session(caps)
        previous = None if session is None else session.enter()
        started = time.perf_counter()
        instance = None
        try:
            instance = self._component_linker.instantiate(store, self.guest.as_component())
            outcome = invoke(store, instance)
        except (wasmtime.WasmtimeError, wasmtime.Trap) as err:
            outcome = None if session is None else session.outcome(err)
            if outcome is None:
                outcome = self._component_failure(err, limits, timeout, instance is None)
            return _finished(outcome, limits, timeout, store, started)
        finally:
            if session is not None:
                session.leave(previous)
                session.close()
        if outcome is not None or cut_off():
            return _finished(outcome or Outcome("ok"), limits, timeout, store, started)
        fuel = None if limits.fuel is None else _fuel_consumed(store, limits)
        return Outcome("ok", elapsed=time.perf_counter() - started, fuel_consumed=fuel)

    def _component_failure(
        self,
        err: wasmtime.WasmtimeError | wasmtime.Trap,
        limits: Limits,
        timeout: float | None,
        instantiating: bool,
    ) -> Outcome:
        """The outcome of an engine failure (not one a host call raised). At instantiation, only
        a failure that is none of the guest's own (a trap, its deadline interrupting its start
        or initializers, fuel, the memory cap) is a ``LinkError``."""
        outcome = classify_failure(err, limits, memory_size=None, timeout=timeout)
        if (
            instantiating
            and outcome.status == "error"
            and not isinstance(err, wasmtime.Trap)
            and not cut_off()
        ):
            raise LinkError(f"{self.name}: cannot instantiate: {fold_error(err)}") from None
        text = str(err)
        if outcome.status != "error" or "wasm backtrace:" not in text:
            return outcome
        # A failure the canonical ABI raised inside the guest's call (a handle it no longer
        # owns, say) has a wasm backtrace but no trap code: it is the guest's trap all the same.
        cause = fold_error(err).rsplit(": ", 1)[-1]
        return Outcome("trap", message=f"guest trapped: {cause}", trap_kind=cause)

    def _find_command(self) -> Invoke:
        """The call of the component's ``wasi:cli/run`` (a ``LinkError`` if it has none)."""
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
        iface = component.get_export_index(run_name)
        index = component.get_export_index("run", iface) if iface is not None else None
        if index is None:
            raise LinkError(f"{self.name}: {run_name} has no `run` function")
        from wasmtime import component as cm

        def run(store: wasmtime.Store, instance: cm.Instance) -> Outcome | None:
            func = instance.get_func(store, index)
            if func is None:
                raise LinkError(f"{self.name}: {run_name} has no `run` function")
            result = func(store)
            func.post_return(store)
            if isinstance(result, cm.Variant) and result.tag == "err":
                return Outcome("exit", exit_code=1, message="guest's run returned an error")
            return None

        self._command = run
        return run

    # --- live instances (the embedding API) -------------------------------------------------

    def session(self, caps: Capabilities) -> Session | None:
        """A new session of the component host granting ``caps`` (None: no host)."""
        return None if self.host is None else self.host.session(caps)

    def instantiate(
        self, caps: Capabilities, limits: Limits, *, session: Session | None = None
    ) -> tuple[wasmtime.Store, wasmtime.Instance | cm.Instance]:
        """A fresh store and a live instance in it (start function and all), for a caller that
        keeps them; a failure raises its outcome's exception (``LinkError`` for a link). A
        component with a host needs the caller's ``session`` (``session()``), current while it
        is instantiated and whenever the caller calls in."""
        self.check_linked()
        previous: Any = None
        if self._component_linker is not None and self.host is not None:
            store = new_store(self.guest.engine, limits)
            if session is not None:
                previous = session.enter()
        else:
            store = self._wasi_store(caps, limits, None)
        try:
            if self._component_linker is not None:
                component = self.guest.as_component()
                return store, self._component_linker.instantiate(store, component)
            assert self._pre is not None
            return store, self._pre.instantiate(store)
        except (wasmtime.WasmtimeError, wasmtime.Trap) as err:
            outcome = None if session is None else session.outcome(err)
            if outcome is None:
                outcome = classify_failure(err, limits, memory_size=None)
                if outcome.status == "error" and not isinstance(err, wasmtime.Trap):
                    raise LinkError(f"{self.name}: cannot instantiate: {outcome.message}") from None
            if cut_off():
                outcome = timed_out(limits)
            error = outcome.error()
            if error is None:  # proc_exit(0) from a start function: nothing to call
                raise LinkError(f"{self.name}: start function exited") from None
            raise error from None
        finally:
            if session is not None:
                session.leave(previous)


def _call(store: wasmtime.Store, instance: wasmtime.Instance, name: str) -> None:
    """Call a no-result export by name: the binding's lower layer where it can (no export map),
    the public API otherwise."""
    if not call_export(store, instance, name):
        func = instance.exports(store)[name]
        assert isinstance(func, wasmtime.Func)
        func(store)


def _command_outcome(
    ran: CommandRun, limits: Limits, timeout: float | None, started: float
) -> Outcome:
    """The outcome of a ``sandbox.run_command`` run: what ``Program.run`` makes of the same
    failure or success on its usual path."""
    if ran.failure is not None:
        assert ran.store is not None  # a failed run's store is always handed back
        memory_size = exported_memory_size(ran.store, ran.instance)
        outcome = classify_failure(ran.failure, limits, memory_size=memory_size, timeout=timeout)
        return _finished(outcome, limits, timeout, ran.store, started)
    if cut_off():
        return _finished(timed_out(limits, timeout), limits, timeout, ran.store, started)
    return Outcome(
        "ok",
        results=(),
        elapsed=time.perf_counter() - started,
        fuel_consumed=_fuel_consumed(ran.store, limits),
    )


def _fuel_consumed(store: wasmtime.Store | None, limits: Limits) -> int | None:
    if limits.fuel is None or store is None:
        return None
    try:
        return limits.fuel - store.get_fuel()
    except wasmtime.WasmtimeError:
        return None


def _finished(
    outcome: Outcome,
    limits: Limits,
    timeout: float | None,
    store: wasmtime.Store | None,
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
