"""``wasmgate run``'s use of the engine entry: a WASI command, or one export with ``--invoke``.

Rules:
- Core modules run ``_start`` (a WASI command) or, with ``invoke``, any exported function after
  the reactor initialiser ``_initialize`` if there is one. Components run ``wasi:cli/run``.
- The run itself is ``Program.run``: a fresh store, the same grants, limits and outcomes as every
  other face. Only host-side problems (bad arguments, missing exports, unresolvable imports)
  raise ``WasmgateError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import wasmtime

from ..capabilities import Capabilities
from ..errors import LinkError, UsageError, given
from ..limits import Limits
from .loader import LoadedGuest
from .outcome import Outcome
from .program import Program

__all__ = ["format_results", "parse_invoke_args", "run_guest"]


def run_guest(
    guest: LoadedGuest,
    caps: Capabilities,
    limits: Limits = Limits(),
    *,
    invoke: str | None = None,
    invoke_args: Sequence[str] = (),
) -> Outcome:
    if guest.kind == "component":
        if invoke is not None:
            raise UsageError(
                f"{guest.name}: --invoke calls core-module exports; "
                "call component functions with `wasmgate call`"
            )
        return Program(guest).run(caps, limits)
    program = Program(guest)
    if invoke is None:
        _export_type(guest, "_start", hint=True)
        return program.run(caps, limits)
    ty = _export_type(guest, invoke, hint=False)
    args = parse_invoke_args(invoke, ty, invoke_args)
    return program.run(caps, limits, entry=invoke, args=args, results=True)


def _export_type(guest: LoadedGuest, name: str, *, hint: bool) -> wasmtime.FuncType:
    exports = guest.core().exports
    for item in exports:
        if item.name == name:
            if isinstance(item.type, wasmtime.FuncType):
                return item.type
            raise LinkError(f"{guest.name}: export {name!r} is not a function")
    funcs = sorted(e.name for e in exports if isinstance(e.type, wasmtime.FuncType))
    more = f"; exported functions: {', '.join(funcs)}" if funcs else ""
    advice = " (use --invoke NAME to call another export)" if hint else ""
    raise LinkError(f"{guest.name}: has no exported function {name!r}{advice}{more}")


def parse_invoke_args(name: str, ty: wasmtime.FuncType, raw: Sequence[str]) -> list[Any]:
    """Parse CLI strings into the export's parameter types (i32/i64/f32/f64 only)."""
    params = ty.params
    if len(raw) != len(params):
        sig = ", ".join(str(p) for p in params) or "no parameters"
        raise UsageError(f"{name} takes {len(params)} argument(s) ({sig}), but {given(len(raw))}")
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
