"""Calling one export from the command line: shared by ``wasmgate call`` and ``wasmgate run
--invoke`` (as ``wasmtime run --invoke`` takes a WAVE call for components).

Rules:
- Components take WAVE text: ``'greet("Ada")'``, or the function name followed by one WAVE value
  per parameter. The result is printed in WAVE on one line; a top-level ``err(..)`` is printed
  too, and then the command fails (exit status 1) saying so.
- Core modules take numbers (``add 1 2`` or ``'add(1, 2)'``); results print one per line. A WAVE
  string argument (``'"hello"'``) uses the string convention of the embedding API (the guest's
  allocator, ``(ptr, len)`` parameters, a packed ``i64`` result), and the result prints as a WAVE
  string.
- Host imports come from a ``HostFunctions`` registry the user names (``--host``), exactly as
  the embedding API takes them; anything still missing is listed in full.
- Importing this module is cheap: the embedding layer loads when a call runs.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..capabilities import Capabilities
from ..engine import LoadedGuest, format_results, parse_invoke_args
from ..errors import UsageError, WasmgateError
from ..limits import Limits

if TYPE_CHECKING:
    from ..embed.hostfuncs import HostFunctions

__all__ = ["call_export", "load_host"]


def call_export(
    guest: LoadedGuest,
    caps: Capabilities,
    limits: Limits,
    function: str,
    args: Sequence[str],
    host: HostFunctions | None = None,
) -> None:
    """Call ``function`` of ``guest`` with command-line ``args`` and print the result."""
    if guest.kind == "component":
        _call_component(guest, caps, limits, function, args, host)
    else:
        _call_module(guest, caps, limits, function, args, host)


def load_host(spec: str) -> HostFunctions:
    """The ``HostFunctions`` that ``--host`` names: ``FILE.py`` (its ``host`` attribute) or
    ``FILE.py:NAME`` / ``package.module:NAME``."""
    from ..embed.hostfuncs import HostFunctions

    where, _, attr = spec.partition(":")
    attr = attr or "host"
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise UsageError(f"--host: {where}: no such file")
        module_spec = importlib.util.spec_from_file_location(f"wasmgate_host_{path.stem}", path)
        if module_spec is None or module_spec.loader is None:
            raise UsageError(f"--host: {where}: cannot be imported")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_spec.name] = module
        module_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as e:
            raise UsageError(f"--host: cannot import {where}: {e}") from None
    found = getattr(module, attr, None)
    if not isinstance(found, HostFunctions):
        raise UsageError(
            f"--host: {where} has no HostFunctions named {attr!r} "
            "(define `host = wasmgate.HostFunctions()` there, or name it as FILE.py:NAME)"
        )
    return found


def _call_component(
    guest: LoadedGuest,
    caps: Capabilities,
    limits: Limits,
    function: str,
    args: Sequence[str],
    host: HostFunctions | None,
) -> None:
    from ..embed.component import instantiate_component
    from ..embed.values import Err
    from ..embed.wave import WaveError, format_value, parse_args, parse_call, parse_value

    call_syntax = "(" in function
    name, rest = parse_call(function) if call_syntax else (function, "")
    if call_syntax and args:
        raise UsageError(f"{name}: give the arguments inside the call, or as separate values")
    with instantiate_component(guest, imports=host, capabilities=caps, limits=limits) as inst:
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


def _split_call(function: str, args: Sequence[str]) -> tuple[str, list[str]]:
    """``add(1, "x")`` -> (``add``, [``1``, ``"x"``]); a bare name keeps ``args``."""
    from ..embed.wave import WaveError, _Parser, parse_call

    if "(" not in function:
        return function, list(args)
    if args:
        raise UsageError(f"{function}: give the arguments inside the call, or after the name")
    name, rest = parse_call(function)
    inner = rest.strip()
    if not (inner.startswith("(") and inner.endswith(")")):
        raise UsageError(f"expected a call like {name}(1, 2), got {function!r}")
    # Split on the commas outside string literals, by letting the WAVE parser skip strings.
    items: list[str] = []
    body = inner[1:-1]
    start = depth = 0
    i = 0
    while i < len(body):
        c = body[i]
        if c == '"':
            parser = _Parser(body[i:])
            try:
                parser.string()
            except WaveError as e:
                raise UsageError(f"{name}: {e}") from None
            i += parser.pos
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth == 0:
            items.append(body[start:i].strip())
            start = i + 1
        i += 1
    if body.strip():
        items.append(body[start:].strip())
    return name, items


def _call_module(
    guest: LoadedGuest,
    caps: Capabilities,
    limits: Limits,
    function: str,
    args: Sequence[str],
    host: HostFunctions | None,
) -> None:
    from ..embed.instance import instantiate
    from ..embed.wave import format_string, parse_string

    name, texts = _split_call(function, args)
    with instantiate(guest, imports=host, capabilities=caps, limits=limits) as inst:
        if not any(t.startswith('"') for t in texts):
            func = inst.func(name)
            values = parse_invoke_args(name, func.type, texts)
            result = func(*values)
            results = () if result is None else result if isinstance(result, tuple) else (result,)
            for line in format_results(results):
                click.echo(line)
            return
        mixed: list[Any] = []
        for text in texts:
            if text.startswith('"'):
                mixed.append(parse_string(text))
            else:
                try:
                    mixed.append(int(text, 0))
                except ValueError:
                    raise UsageError(
                        f"{name}: argument {text!r} is not a string or an integer"
                    ) from None
        click.echo(format_string(inst.call_str(name, *mixed)))
