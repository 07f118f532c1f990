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
  stdio inherited, WASI (preview1 or preview2) linked. Other imports come from ``--host``; guests
  whose imports are still missing fail with the full list of what is missing.
- The calling itself is ``invoke.call_export``, shared with ``wasmgate run --invoke``.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..api import load
from ..capabilities import INHERIT, Capabilities, Stdio
from ..engine import EngineSettings
from .invoke import call_export, load_host
from .options import (
    Sandbox,
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
@click.option(
    "--host",
    metavar="FILE.py[:NAME]",
    help="Python host functions for the guest's imports: a HostFunctions named `host` "
    "(or NAME) in FILE.py or an importable module.",
)
@allow_precompiled_option
@cache_options
def call(
    module: Path,
    function: str,
    args: tuple[str, ...],
    sandbox: Sandbox,
    host: str | None,
    allow_precompiled: bool,
    cache_dir: Path | None,
    no_cache: bool,
) -> None:
    """Call FUNCTION of MODULE and print the result.

    \b
    Components take WAVE values:  wasmgate call comp.wasm 'greet("world")'
    Core modules take numbers:    wasmgate call mod.wasm add 1 2
    ... and strings (the guest exports an allocator):  wasmgate call m.wasm shout '"hi"'
    """
    caps = Capabilities(
        args=(module.name,),
        env=sandbox.env,
        dirs=sandbox.dirs,
        stdio=Stdio(INHERIT, INHERIT, INHERIT),
    )
    guest = load(
        module,
        settings=EngineSettings(consume_fuel=sandbox.limits.fuel is not None),
        cache=cache_config(cache_dir, no_cache),
        allow_precompiled=allow_precompiled,
    )
    imports = load_host(host) if host is not None else None
    with watchdog(sandbox.limits.timeout):  # from the guest's start: compiling is not its time
        call_export(guest, caps, sandbox.limits, function, args, imports)
