"""``wasmgate compile`` and ``wasmgate inspect``: work on a module without running it."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..api import load
from ..config import CacheConfig
from ..engine import EngineSettings, describe
from ..errors import WasmgateError
from .options import allow_precompiled_option, cache_config, cache_options

__all__ = ["compile", "inspect"]


@click.command()
@click.argument("module", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="Where to write the native artifact.",
)
@click.option("--fuel-metering", is_flag=True, help="Compile for runs that use --fuel.")
def compile(module: Path, output: Path, fuel_metering: bool) -> None:
    """Precompile MODULE to a native artifact (load it with `run --allow-precompiled`)."""
    guest = load(
        module, settings=EngineSettings(consume_fuel=fuel_metering), cache=CacheConfig(False)
    )
    artifact = guest.module if guest.module is not None else guest.as_component()
    try:
        output.write_bytes(bytes(artifact.serialize()))
    except OSError as e:
        raise WasmgateError(f"cannot write {output}: {e.strerror}") from None
    click.echo(f"wrote {output} ({guest.kind}, {output.stat().st_size} bytes)")


@click.command()
@click.argument("module", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@allow_precompiled_option
@cache_options
def inspect(
    module: Path, as_json: bool, allow_precompiled: bool, cache_dir: Path | None, no_cache: bool
) -> None:
    """Print a module's kind, imports and exports."""
    guest = load(
        module, cache=cache_config(cache_dir, no_cache), allow_precompiled=allow_precompiled
    )
    info = describe(guest)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"{info['name']}: {info['kind']}")
    for section in ("imports", "exports"):
        items = info[section]
        click.echo(f"{section} ({len(items)}):")
        for item in items:
            click.echo(f"  {item['name']}: {item['type']}")
