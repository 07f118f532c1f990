"""``wasmgate run``: a WASI command (or one export, with ``--invoke``) in a sandbox."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..api import load_for, run
from ..config import RunConfig
from ..engine import format_results
from .invoke import call_export
from .options import (
    Sandbox,
    allow_precompiled_option,
    cache_config,
    cache_options,
    sandbox_options,
    watchdog,
)

__all__ = ["run_cmd"]


@click.command(name="run", context_settings={"allow_interspersed_args": False})
@click.argument("module", type=click.Path(path_type=Path, dir_okay=False))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@sandbox_options
@click.option(
    "--invoke",
    metavar="NAME|CALL",
    help="Call this export with ARGS instead of _start (WAVE for components).",
)
@click.option("--argv0", help="The guest's argv[0] (default: the module's file name).")
@allow_precompiled_option
@cache_options
def run_cmd(
    module: Path,
    args: tuple[str, ...],
    sandbox: Sandbox,
    invoke: str | None,
    argv0: str | None,
    allow_precompiled: bool,
    cache_dir: Path | None,
    no_cache: bool,
) -> None:
    """Run a WASI command (core module or component) in a sandbox. Grants nothing by default.

    With --invoke, call one export instead: numbers for core modules (`--invoke add m.wasm 1 2`),
    WAVE for components (`--invoke 'greet("Ada")' c.wasm`), as `wasmgate call` does.
    """
    config = RunConfig(
        module=module,
        args=args,
        argv0=argv0,
        env=sandbox.env,
        dirs=sandbox.dirs,
        limits=sandbox.limits,
        invoke=invoke,
        allow_precompiled=allow_precompiled,
        cache=cache_config(cache_dir, no_cache),
    )
    guest = load_for(config)
    with watchdog(sandbox.limits.timeout):  # from the guest's start: compiling is not its time
        if invoke is not None and guest.kind == "component":
            call_export(guest, config.capabilities(), config.limits, invoke, args)
            return
        outcome = run(config, guest)
    sys.stdout.flush()
    for line in format_results(outcome.results):
        click.echo(line)
    err = outcome.error()
    if err is not None:
        raise err
