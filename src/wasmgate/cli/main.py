"""The ``wasmgate`` command group and the one place errors become exit statuses (``main``)."""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

import click

from .. import __version__
from ..engine import engine_version
from ..errors import GuestExit, GuestTrap, WasmgateError

__all__ = ["cli", "console", "main"]

# Each command's module is imported when the command runs (or help lists it): `wasmgate run`
# pays nothing for `serve`'s or `call`'s imports at start-up.
COMMANDS = {
    "run": ("run", "run_cmd"),
    "call": ("call", "call"),
    "serve": ("serve", "serve"),
    "compile": ("tools", "compile"),
    "inspect": ("tools", "inspect"),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            module, attr = COMMANDS[cmd_name]
            command = getattr(importlib.import_module(f".{module}", __package__), attr)
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    __version__,
    "-V",
    "--version",
    message=f"wasmgate %(version)s (wasmtime {engine_version()})",
)
def cli() -> None:
    """wasmgate: run, embed and serve sandboxed WebAssembly."""


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; maps every error to its exit status."""
    try:
        cli.main(args=list(argv) if argv is not None else None, standalone_mode=False)
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.Abort:
        click.echo("wasmgate: aborted", err=True)
        return 130
    except click.UsageError as e:  # bad flags and arguments: one line, exit status 2
        click.echo(f"wasmgate: error: {_usage_message(e)}", err=True)
        return e.exit_code
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except GuestExit as e:  # the guest's own status; it said what it wanted to say
        _hint(e)
        return e.code
    except GuestTrap as e:
        click.echo(f"wasmgate: error: {e}", err=True)
        if e.backtrace:
            click.echo("wasm backtrace:\n" + e.backtrace, err=True)
        _hint(e)
        return e.exit_code
    except WasmgateError as e:
        click.echo(f"wasmgate: error: {e}", err=True)
        _hint(e)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    return 0


def console() -> NoReturn:
    """The ``wasmgate`` console script (and ``python -m wasmgate``): ``main``, then a quick exit.

    Once the command is done, what interpreter shutdown does that anyone can see is run:
    ``atexit`` handlers (temporary directories, logging's flush) and flushing stdout and stderr.
    Tearing down every module and object is not: it changes nothing outside the process and
    costs ~10 ms, a tenth of ``wasmgate run`` on a large guest. While a non-daemon thread still
    runs, the exit is the ordinary one (which waits for it). ``main`` itself never exits, so
    callers in Python (tests, embedding) keep their interpreter."""
    status = main()
    import threading

    current = threading.current_thread()
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not current):
        sys.exit(status)
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # closed, or a reader that went away
            stream.flush()
    os._exit(status & 0xFF)


def _hint(error: WasmgateError) -> None:
    hint = getattr(error, "hint", "")
    if hint:
        click.echo(f"wasmgate: hint: {hint}", err=True)


# Flags of the `wasmtime` CLI that wasmgate spells otherwise or does not take: one line each.
WASMTIME_HINTS = {
    "--mapdir": "grant directories with --dir HOST::GUEST (or --dir-ro)",
    "-O": "wasmgate compiles with wasmtime's default optimisation settings",
    "--optimize": "wasmgate compiles with wasmtime's default optimisation settings",
    "-C": "wasmgate compiles with wasmtime's default code generation settings",
    "--codegen": "wasmgate compiles with wasmtime's default code generation settings",
    "-D": "wasmgate has no debug options; guests' traps come with a wasm backtrace",
    "--debug": "wasmgate has no debug options; guests' traps come with a wasm backtrace",
    "--preload": "link modules yourself, or give imports from Python with `call --host`",
    "--profile": "profile the host with py-spy; wasmgate has no guest profiler",
    "--tcplisten": "a guest gets no sockets in wasmgate",
    "--listenfd": "a guest gets no sockets in wasmgate",
    "--fuel-metering": "--fuel N both meters and limits fuel (`compile --fuel-metering` too)",
    "--wasm-timeout": "use --timeout DURATION (or -W timeout=DURATION)",
    "--max-wasm-stack": "wasmgate runs guests with a fixed 512 KiB wasm stack",
    "--wasi-modules": "WASI is always linked: preview1 for modules, preview2 for components",
}


def _usage_message(e: click.UsageError) -> str:
    if isinstance(e, click.NoSuchOption) and e.option_name in WASMTIME_HINTS:
        return f"no such option {e.option_name}: {WASMTIME_HINTS[e.option_name]}"
    missing = isinstance(e, click.MissingParameter)
    if isinstance(e, click.BadParameter) and not missing and e.param is not None and e.param.opts:
        return f"{max(e.param.opts, key=len)}: {e.message}"
    return e.format_message()
