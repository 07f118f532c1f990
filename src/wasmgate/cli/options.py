"""Option groups shared by several commands, and the configuration values they build."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from ..config import CacheConfig
from ..errors import EXIT_STATUS
from .params import DIR, DIR_RO, DURATION, ENV, POSITIVE_INT, SIZE

__all__ = [
    "BLOCKED_GRACE",
    "allow_precompiled_option",
    "cache_config",
    "cache_options",
    "sandbox_options",
    "watchdog",
]

# Grace given to a guest blocked inside a host call that the engine cannot cut short (WASI
# preview2's, in components) after its --timeout, before the process exits anyway: every
# timeout ends within half a second of the limit.
BLOCKED_GRACE = 0.3


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


@contextlib.contextmanager
def watchdog(timeout: float | None) -> Iterator[None]:
    """While the guest runs: exit with the timeout status if it is still running
    ``BLOCKED_GRACE`` after its ``timeout`` (it is blocked in a host call the engine cannot
    interrupt). Disarmed when the block ends, so it never outlives the run."""
    if timeout is None:
        yield
        return
    done = threading.Event()

    def fire() -> None:
        if not done.wait(timeout + BLOCKED_GRACE):
            sys.stderr.write("wasmgate: error: guest timed out (blocked in a host call)\n")
            sys.stderr.flush()
            os._exit(EXIT_STATUS["timeout"])

    threading.Thread(target=fire, name="wasmgate-watchdog", daemon=True).start()
    try:
        yield
    finally:
        done.set()
