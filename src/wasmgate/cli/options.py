"""Option groups shared by several commands, and the configuration values they build."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from ..capabilities import DirGrant
from ..config import CacheConfig
from ..errors import EXIT_STATUS, UsageError
from ..limits import CLI_NAMES, Limits
from ..units import format_duration, parse_duration, parse_size
from .params import DIR, DIR_RO, DURATION, ENV, POSITIVE_INT, SIZE, ParsedType, positive_int

__all__ = [
    "BLOCKED_GRACE",
    "Sandbox",
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


@dataclass(frozen=True, slots=True)
class Sandbox:
    """What the sandbox flags of ``run`` and ``call`` grant, and their limits."""

    dirs: tuple[DirGrant, ...]
    env: tuple[tuple[str, str], ...]
    limits: Limits


# wasmtime's -W and -S keys that wasmgate takes, and what each sets.
WASM_KEYS = {"fuel": "fuel", "timeout": "timeout", "max-memory-size": "max_memory"}
WASI_KEYS = ("inherit-env",)
# wasmtime's other -S keys: what wasmgate does instead (one line each).
_WASI_HINTS = {
    "http": "a command gets no network; serve wasi:http components with `wasmgate serve`",
    "inherit-network": "a guest gets no network in wasmgate",
    "tcp": "a guest gets no sockets in wasmgate",
    "udp": "a guest gets no sockets in wasmgate",
    "cli": "WASI's command-line interfaces are always linked",
    "preview2": "components get WASI preview2 and core modules preview1, always",
}


def _wasm_options(text: str) -> tuple[tuple[str, Any], ...]:
    """``fuel=N,timeout=5s,max-memory-size=64MiB`` (wasmtime's ``-W`` spelling)."""
    out: list[tuple[str, Any]] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if key not in WASM_KEYS:
            known = ", ".join(WASM_KEYS)
            raise UsageError(f"{key}: not a -W option wasmgate takes (it takes {known})")
        if not sep or not value:
            raise UsageError(f"{key} needs a value ({key}=...)")
        field = WASM_KEYS[key]
        parse = {"fuel": positive_int, "timeout": parse_duration, "max_memory": parse_size}[field]
        out.append((field, parse(value)))
    return tuple(out)


def _wasi_options(text: str) -> tuple[tuple[str, bool], ...]:
    """``inherit-env[=y|n]`` (wasmtime's ``-S`` spelling)."""
    out: list[tuple[str, bool]] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if key in _WASI_HINTS:
            raise UsageError(f"{key}: {_WASI_HINTS[key]}")
        if key not in WASI_KEYS:
            raise UsageError(f"{key}: not a -S option wasmgate takes (it takes inherit-env)")
        flag = value.lower() if sep else "y"
        if flag not in ("y", "yes", "true", "n", "no", "false"):
            raise UsageError(f"{key}={value}: expected y or n")
        out.append((key, flag in ("y", "yes", "true")))
    return tuple(out)


WASM_OPTS = ParsedType("KEY=VALUE[,...]", _wasm_options)
WASI_OPTS = ParsedType("KEY[=VALUE][,...]", _wasi_options)


def sandbox_options(f: Any) -> Any:
    """The grant and limit flags shared by every command that runs a guest (run, call); the
    command receives them as one ``sandbox: Sandbox``."""

    @functools.wraps(f)
    def command(
        *args: Any,
        dirs: tuple[DirGrant, ...],
        dirs_ro: tuple[DirGrant, ...],
        env: tuple[tuple[str, str], ...],
        fuel: int | None,
        timeout: float | None,
        max_memory: int | None,
        wasm: tuple[tuple[tuple[str, Any], ...], ...],
        wasi: tuple[tuple[tuple[str, bool], ...], ...],
        **kwargs: Any,
    ) -> Any:
        limits: dict[str, Any] = {"fuel": fuel, "timeout": timeout, "max_memory": max_memory}
        for field, value in (pair for group in wasm for pair in group):
            if limits[field] is not None:
                raise UsageError(f"{CLI_NAMES[field]} is given twice (a flag and -W)")
            limits[field] = value
        granted = env
        if any(on for group in wasi for key, on in group if key == "inherit-env"):
            # As `wasmtime -S inherit-env`: the user's explicit choice to grant all of it.
            granted = (*os.environ.items(), *env)
        sandbox = Sandbox(dirs + dirs_ro, granted, Limits(**limits).named(CLI_NAMES))
        return f(*args, sandbox=sandbox, **kwargs)

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
        click.option("--max-memory", type=SIZE, help="Linear memory cap (e.g. 64MiB)."),
        click.option(
            "-W",
            "--wasm",
            "wasm",
            multiple=True,
            type=WASM_OPTS,
            help="wasmtime's spelling of the limits: fuel=N,timeout=5s,max-memory-size=64MiB.",
        ),
        click.option(
            "-S",
            "--wasi",
            "wasi",
            multiple=True,
            type=WASI_OPTS,
            help="wasmtime's WASI options: inherit-env grants the whole host environment.",
        ),
    ]
    for decorate in reversed(decorators):
        command = decorate(command)
    return command


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
            limit = format_duration(timeout)
            sys.stderr.write(
                f"wasmgate: error: guest timed out after {limit} (wall clock; it was blocked "
                "in a host call)\n"
            )
            sys.stderr.flush()
            os._exit(EXIT_STATUS["timeout"])

    threading.Thread(target=fire, name="wasmgate-watchdog", daemon=True).start()
    try:
        yield
    finally:
        done.set()
