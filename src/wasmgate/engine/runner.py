"""Run a guest once: a fresh store with WASI and limits, instantiate, call, classify.

Rules:
- Each run gets a fresh ``Store``: nothing (memory, globals, handles, fuel) survives between runs.
- Core modules run ``_start`` (a WASI command) or, with ``invoke``, any exported function after
  the reactor initialiser ``_initialize`` if there is one. Components run ``wasi:cli/run``.
- Guest behaviour (exit, trap, limits) comes back as an ``Outcome``; only host-side problems
  (bad arguments, missing exports, unresolvable imports) raise ``WasmgateError``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import wasmtime
from wasmtime import component as cm

from ..capabilities import Capabilities
from ..errors import LinkError, UsageError
from ..limits import Limits
from .loader import LoadedGuest
from .outcome import Outcome, classify_failure, exported_memory_size, fold_error
from .sandbox import define_wasi, wasi_config

__all__ = ["format_results", "parse_invoke_args", "run_guest"]


def run_guest(
    guest: LoadedGuest,
    caps: Capabilities,
    limits: Limits = Limits(),
    *,
    invoke: str | None = None,
    invoke_args: Sequence[str] = (),
) -> Outcome:
    store = guest.engine.new_store(
        timeout=limits.timeout, fuel=limits.fuel, max_memory=limits.max_memory
    )
    cfg, staged = wasi_config(caps)
    store.set_wasi(cfg)
    try:
        if guest.kind == "component":
            if invoke is not None:
                raise UsageError(
                    f"{guest.name}: --invoke calls core-module exports; "
                    "call component functions with `wasmgate call`"
                )
            return _run_component(guest, store, limits)
        return _run_module(guest, store, limits, invoke, invoke_args)
    finally:
        if staged is not None:
            staged.close()


def _link_error(guest: LoadedGuest, err: wasmtime.WasmtimeError) -> LinkError:
    text = fold_error(err)
    return LinkError(f"{guest.name}: cannot instantiate: {text}")


def _run_module(
    guest: LoadedGuest,
    store: wasmtime.Store,
    limits: Limits,
    invoke: str | None,
    invoke_args: Sequence[str],
) -> Outcome:
    module = guest.core()
    linker = wasmtime.Linker(guest.engine.engine)
    define_wasi(linker)
    started = time.perf_counter()
    instance: wasmtime.Instance | None = None
    try:
        instance = linker.instantiate(store, module)
        exports = instance.exports(store)
        if invoke is None:
            func = _export_func(guest, exports, "_start", hint=True)
            args: list[Any] = []
        else:
            func = _export_func(guest, exports, invoke, hint=False)
            args = parse_invoke_args(invoke, func.type(store), invoke_args)
            init = exports.get("_initialize")
            if isinstance(init, wasmtime.Func):
                init(store)
        result = func(store, *args)
    except (wasmtime.WasmtimeError, wasmtime.Trap) as err:
        if instance is None and not isinstance(err, wasmtime.Trap):
            if "exceeds memory limits" in str(err) and limits.max_memory is not None:
                return _outcome_from(err, limits, store, None, started)
            raise _link_error(guest, err) from None
        return _outcome_from(err, limits, store, instance, started)
    results: tuple[Any, ...]
    if result is None:
        results = ()
    elif isinstance(result, list):
        results = tuple(result)
    else:
        results = (result,)
    return Outcome(
        "ok",
        results=results,
        elapsed=time.perf_counter() - started,
        fuel_consumed=_fuel_consumed(store, limits),
        memory_size=exported_memory_size(store, instance),
    )


def _export_func(guest: LoadedGuest, exports: Any, name: str, *, hint: bool) -> wasmtime.Func:
    item = exports.get(name)
    if isinstance(item, wasmtime.Func):
        return item
    if item is not None:
        raise LinkError(f"{guest.name}: export {name!r} is not a function")
    funcs = sorted(e.name for e in guest.core().exports if isinstance(e.type, wasmtime.FuncType))
    more = f"; exported functions: {', '.join(funcs)}" if funcs else ""
    advice = " (use --invoke NAME to call another export)" if hint else ""
    raise LinkError(f"{guest.name}: has no exported function {name!r}{advice}{more}")


def _fuel_consumed(store: wasmtime.Store, limits: Limits) -> int | None:
    if limits.fuel is None:
        return None
    try:
        return limits.fuel - store.get_fuel()
    except wasmtime.WasmtimeError:
        return None


def _outcome_from(
    err: wasmtime.WasmtimeError | wasmtime.Trap,
    limits: Limits,
    store: wasmtime.Store,
    instance: wasmtime.Instance | None,
    started: float,
) -> Outcome:
    memory_size = exported_memory_size(store, instance)
    if instance is None and limits.max_memory is not None and not isinstance(err, wasmtime.Trap):
        memory_size = limits.max_memory
    outcome = classify_failure(
        err,
        timeout=limits.timeout,
        fuel=limits.fuel,
        max_memory=limits.max_memory,
        memory_size=memory_size,
    )
    return Outcome(
        outcome.status,
        exit_code=outcome.exit_code,
        message=outcome.message,
        trap_kind=outcome.trap_kind,
        backtrace=outcome.backtrace,
        elapsed=time.perf_counter() - started,
        fuel_consumed=_fuel_consumed(store, limits),
        memory_size=memory_size,
    )


def _run_component(guest: LoadedGuest, store: wasmtime.Store, limits: Limits) -> Outcome:
    component = guest.as_component()
    engine = guest.engine.engine
    run_name = next(
        (n for n in component.type.exports(engine) if n.startswith("wasi:cli/run@")), None
    )
    if run_name is None:
        raise LinkError(
            f"{guest.name}: component does not export wasi:cli/run, so it is not a command "
            "(call its functions with `wasmgate call`)"
        )
    linker = cm.Linker(engine)
    linker.add_wasip2()
    started = time.perf_counter()
    try:
        instance = linker.instantiate(store, component)
    except wasmtime.Trap as err:
        return _outcome_from(err, limits, store, None, started)
    except wasmtime.WasmtimeError as err:
        raise _link_error(guest, err) from None
    iface = instance.get_export_index(store, run_name)
    index = instance.get_export_index(store, "run", iface) if iface is not None else None
    func = instance.get_func(store, index) if index is not None else None
    if func is None:
        raise LinkError(f"{guest.name}: {run_name} has no `run` function")
    try:
        result = func(store)
        func.post_return(store)
    except (wasmtime.WasmtimeError, wasmtime.Trap) as err:
        return _outcome_from(err, limits, store, None, started)
    elapsed = time.perf_counter() - started
    if isinstance(result, cm.Variant) and result.tag == "err":
        return Outcome(
            "exit", exit_code=1, message="guest's run returned an error", elapsed=elapsed
        )
    return Outcome("ok", elapsed=elapsed, fuel_consumed=_fuel_consumed(store, limits))


def parse_invoke_args(name: str, ty: wasmtime.FuncType, raw: Sequence[str]) -> list[Any]:
    """Parse CLI strings into the export's parameter types (i32/i64/f32/f64 only)."""
    params = ty.params
    if len(raw) != len(params):
        sig = ", ".join(str(p) for p in params) or "no parameters"
        raise UsageError(
            f"{name} takes {len(params)} argument(s) ({sig}), but {len(raw)} were given"
        )
    values: list[Any] = []
    for i, (text, param) in enumerate(zip(raw, params, strict=True)):
        kind = str(param)
        try:
            if kind in ("i32", "i64"):
                value: Any = int(text, 0)
                bits = 32 if kind == "i32" else 64
                if not -(2 ** (bits - 1)) <= value < 2**bits:
                    raise ValueError
                if value >= 2 ** (bits - 1):
                    value -= 2**bits
            elif kind in ("f32", "f64"):
                value = float(text)
            else:
                raise UsageError(
                    f"{name}: parameter {i} has type {kind}, which --invoke cannot pass"
                )
        except ValueError:
            raise UsageError(f"{name}: argument {i} {text!r} is not a valid {kind}") from None
        values.append(value)
    return values


def format_results(results: Sequence[Any]) -> list[str]:
    return [repr(v) if isinstance(v, float) else str(v) for v in results]
