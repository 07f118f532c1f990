"""``wasmgate run``: a WASI command (or one export, with ``--invoke``) in a sandbox."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..api import load_for, run
from ..capabilities import DirGrant
from ..config import RunConfig
from ..engine import format_results
from ..limits import CLI_NAMES, Limits
from .options import (
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
@click.option("--invoke", metavar="NAME", help="Call this export with ARGS instead of _start.")
@click.option("--argv0", help="The guest's argv[0] (default: the module's file name).")
@allow_precompiled_option
@cache_options
def run_cmd(
    module: Path,
    args: tuple[str, ...],
    dirs: tuple[DirGrant, ...],
    dirs_ro: tuple[DirGrant, ...],
    env: tuple[tuple[str, str], ...],
    fuel: int | None,
    timeout: float | None,
    max_memory: int | None,
    invoke: str | None,
    argv0: str | None,
    allow_precompiled: bool,
    cache_dir: Path | None,
    no_cache: bool,
) -> None:
    """Run a WASI command (core module or component) in a sandbox. Grants nothing by default."""
    config = RunConfig(
        module=module,
        args=args,
        argv0=argv0,
        env=env,
        dirs=dirs + dirs_ro,
        limits=Limits(timeout=timeout, fuel=fuel, max_memory=max_memory).named(CLI_NAMES),
        invoke=invoke,
        allow_precompiled=allow_precompiled,
        cache=cache_config(cache_dir, no_cache),
    )
    guest = load_for(config)
    with watchdog(timeout):  # from the guest's start: compiling is not its time
        outcome = run(config, guest)
    sys.stdout.flush()
    for line in format_results(outcome.results):
        click.echo(line)
    err = outcome.error()
    if err is not None:
        raise err
