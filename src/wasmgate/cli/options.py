"""Option groups shared by several commands, and the configuration values they build."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..config import CacheConfig
from .params import DIR, DIR_RO, DURATION, ENV, POSITIVE_INT, SIZE

__all__ = ["allow_precompiled_option", "cache_config", "cache_options", "sandbox_options"]


def cache_options(f: Any) -> Any:
    f = click.option(
        "--cache-dir",
        type=click.Path(file_okay=False, path_type=Path),
        help="Compiled-artifact cache (default: $WASMGATE_CACHE_DIR or ~/.cache/wasmgate).",
    )(f)
    return click.option("--no-cache", is_flag=True, help="Compile every time; read no cache.")(f)


allow_precompiled_option = click.option(
    "--allow-precompiled", is_flag=True, help="Allow a precompiled artifact (runs native code)."
)


def sandbox_options(f: Any) -> Any:
    """The grant and limit flags shared by every command that runs a guest (run, call)."""
    decorators = [
        click.option(
            "--dir", "dirs", multiple=True, type=DIR, help="Grant a directory read-write."
        ),
        click.option(
            "--dir-ro", "dirs_ro", multiple=True, type=DIR_RO, help="Grant a directory read-only."
        ),
        click.option(
            "--env", "env", multiple=True, type=ENV, help="Grant KEY=VALUE, or copy host NAME."
        ),
        click.option(
            "--fuel", type=POSITIVE_INT, help="Instruction budget; exit 152 when exhausted."
        ),
        click.option("--timeout", type=DURATION, help="Wall-clock limit (e.g. 5s); exit 124."),
        click.option("--max-memory", type=SIZE, help="Linear memory cap (e.g. 64MiB); exit 137."),
    ]
    for decorate in reversed(decorators):
        f = decorate(f)
    return f


def cache_config(cache_dir: Path | None, no_cache: bool) -> CacheConfig:
    return CacheConfig(enabled=not no_cache, directory=cache_dir)
