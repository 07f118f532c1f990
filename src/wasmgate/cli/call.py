"""``wasmgate call``: call one exported function from the command line and print its result.

Rules:
- Components take WAVE text, as ``wasmtime run --invoke`` does: ``call comp.wasm 'greet("Ada")'``,
  or the function name followed by one WAVE value per parameter (``call comp.wasm greet '"Ada"'``).
  The result is printed in WAVE on one line; a top-level ``err(..)`` is printed too, and then the
  command fails (exit status 1) saying so on stderr.
- Core modules take the export name and plain numbers (``call mod.wasm add 1 2``) or the same
  call syntax (``'add(1, 2)'``); results print one per line, as ``wasmgate run --invoke`` prints.
- Importing this module is cheap (the embedding layer loads when a call runs), so registering
  the command costs ``wasmgate run`` nothing at start-up.
- The sandbox and limits are ``wasmgate run``'s: the same flags, nothing granted by default,
  stdio inherited, WASI (preview1 or preview2) linked. Guests whose other imports the host does
  not provide fail with the full list of what is missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from ..api import load
from ..capabilities import INHERIT, Capabilities, DirGrant, Stdio
from ..engine import EngineSettings, LoadedGuest, format_results, parse_invoke_args
from ..errors import UsageError, WasmgateError
from ..limits import CLI_NAMES, Limits
from .options import (
    allow_precompiled_option,
    cache_config,
    cache_options,
    sandbox_options,
    watchdog,
)

__all__ = ["call"]


@click.command(name="call", context_settings={"allow_interspersed_args": False})
@click.argument("module", type=click.Path(path_type=Path, dir_okay=False))
@click.argument("function")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@sandbox_options
@allow_precompiled_option
@cache_options
def call(
    module: Path,
    function: str,
    args: tuple[str, ...],
    dirs: tuple[DirGrant, ...],
    dirs_ro: tuple[DirGrant, ...],
    env: tuple[tuple[str, str], ...],
    fuel: int | None,
    timeout: float | None,
    max_memory: int | None,
    allow_precompiled: bool,
    cache_dir: Path | None,
    no_cache: bool,
) -> None:
    """Call FUNCTION of MODULE and print the result.

    \b
    Components take WAVE values:  wasmgate call comp.wasm 'greet("world")'
    Core modules take numbers:    wasmgate call mod.wasm add 1 2
    """
    caps = Capabilities(
        args=(module.name,),
        env=env,
        dirs=dirs + dirs_ro,
        stdio=Stdio(INHERIT, INHERIT, INHERIT),
    )
    limits = Limits(timeout=timeout, fuel=fuel, max_memory=max_memory).named(CLI_NAMES)
    guest = load(
        module,
        settings=EngineSettings(consume_fuel=fuel is not None),
        cache=cache_config(cache_dir, no_cache),
        allow_precompiled=allow_precompiled,
    )
    with watchdog(timeout):  # from the guest's start: compiling is not its time
        if guest.kind == "component":
            _call_component(guest, caps, limits, function, args)
        else:
            _call_module(guest, caps, limits, function, args)


def _call_component(
    guest: LoadedGuest, caps: Capabilities, limits: Limits, function: str, args: Sequence[str]
) -> None:
    from ..embed.component import instantiate_component
    from ..embed.values import Err
    from ..embed.wave import WaveError, format_value, parse_args, parse_call, parse_value

    call_syntax = "(" in function
    name, rest = parse_call(function) if call_syntax else (function, "")
    if call_syntax and args:
        raise UsageError(f"{name}: give the arguments inside the call, or as separate values")
    with instantiate_component(guest, capabilities=caps, limits=limits) as inst:
        func = inst.func(name, raise_errors=False)
        types = [ty for _, ty in func.type.params]
        try:
            if call_syntax:
                values = parse_args(rest, types)
            else:
                if len(args) != len(types):
                    raise WaveError(f"expected {len(types)} argument(s), got {len(args)}")
                values = [parse_value(text, ty) for text, ty in zip(args, types, strict=True)]
        except WaveError as e:
            raise UsageError(f"{name}: {e}") from None
        result = func(*values)
        result_ty = func.type.result
        if result_ty is not None:
            click.echo(format_value(result, result_ty))
        if isinstance(result, Err):
            raise WasmgateError(f"{name} returned an error")


def _call_module(
    guest: LoadedGuest, caps: Capabilities, limits: Limits, function: str, args: Sequence[str]
) -> None:
    from ..embed.instance import instantiate
    from ..embed.wave import parse_call

    if "(" in function:
        if args:
            raise UsageError(f"{function}: give the arguments inside the call, or after the name")
        name, rest = parse_call(function)
        inner = rest.strip()
        if not (inner.startswith("(") and inner.endswith(")")):
            raise UsageError(f"expected a call like {name}(1, 2), got {function!r}")
        body = inner[1:-1].strip()
        args = [a.strip() for a in body.split(",")] if body else []
        function = name
    with instantiate(guest, capabilities=caps, limits=limits) as inst:
        func = inst.func(function)
        values = parse_invoke_args(function, func.type, args)
        result = func(*values)
        results = () if result is None else result if isinstance(result, tuple) else (result,)
        for line in format_results(results):
            click.echo(line)
