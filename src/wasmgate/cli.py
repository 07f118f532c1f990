"""The ``wasmgate`` command line: a thin adapter over ``config`` and ``api``.

Rules:
- Flags mirror the ``wasmtime`` CLI where it has one (``--dir HOST::GUEST``, ``--env``,
  ``--invoke``, ``--fuel``, ``--allow-precompiled``) and the config fields everywhere.
- Errors are mapped to exit statuses here and only here (``main``): a ``WasmgateError`` prints
  one line ``wasmgate: error: ...`` and exits with its ``exit_code``; a trap also prints its wasm
  backtrace. No Python traceback reaches the user for anything we anticipated.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from . import __version__
from .api import load, run
from .capabilities import DirGrant, parse_dir_grant, parse_env_grant
from .config import CacheConfig, RunConfig
from .engine import EngineSettings, engine_version, format_results
from .engine.inspect import describe
from .errors import GuestExit, GuestTrap, LimitExceeded, UsageError, WasmgateError
from .limits import Limits
from .units import parse_duration, parse_size

__all__ = ["cli", "main"]

# Grace given to a guest blocked inside a host call (where epoch interruption cannot reach it)
# after its --timeout, before the process exits anyway.
BLOCKED_GRACE = 1.0


class _Parsed(click.ParamType):  # type: ignore[type-arg]
    """A click type that runs one of our parsers and turns its UsageError into a clean failure."""

    def __init__(self, name: str, parser: Any) -> None:
        self.name = name
        self._parser = parser

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return self._parser(value)
        except UsageError as e:
            self.fail(str(e), param, ctx)


SIZE = _Parsed("size", parse_size)
DURATION = _Parsed("duration", parse_duration)
ENV = _Parsed("KEY=VALUE|NAME", parse_env_grant)
DIR = _Parsed("HOST[::GUEST]", parse_dir_grant)
DIR_RO = _Parsed("HOST[::GUEST]", lambda v: parse_dir_grant(v, read_only=True))


def _positive_int(value: str) -> int:
    try:
        n = int(value, 0)
    except ValueError:
        raise UsageError(f"invalid number {value!r}") from None
    if n <= 0:
        raise UsageError(f"{value!r} must be greater than zero")
    return n


POSITIVE_INT = _Parsed("integer", _positive_int)


def _env_assignment(text: str) -> tuple[str, str]:
    from .wagi.manifest import parse_env_assignment

    return parse_env_assignment(text)


ENV_ASSIGN = _Parsed("KEY=VALUE", _env_assignment)


def _cache_options(f: Any) -> Any:
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


def _cache(cache_dir: Path | None, no_cache: bool) -> CacheConfig:
    return CacheConfig(enabled=not no_cache, directory=cache_dir)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    __version__,
    "-V",
    "--version",
    message=f"wasmgate %(version)s (wasmtime {engine_version()})",
)
def cli() -> None:
    """wasmgate: run, embed and serve sandboxed WebAssembly."""


@cli.command(context_settings={"allow_interspersed_args": False})
@click.argument("module", type=click.Path(path_type=Path, dir_okay=False))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@sandbox_options
@click.option("--invoke", metavar="NAME", help="Call this export with ARGS instead of _start.")
@click.option("--argv0", help="The guest's argv[0] (default: the module's file name).")
@allow_precompiled_option
@_cache_options
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
        limits=Limits(timeout=timeout, fuel=fuel, max_memory=max_memory),
        invoke=invoke,
        allow_precompiled=allow_precompiled,
        cache=_cache(cache_dir, no_cache),
    )
    if timeout is not None:
        _start_watchdog(timeout + BLOCKED_GRACE)
    outcome = run(config)
    sys.stdout.flush()
    for line in format_results(outcome.results):
        click.echo(line)
    err = outcome.error()
    if err is not None:
        raise err


cli.add_command(run_cmd, name="run")


def _start_watchdog(after: float) -> None:
    """Exit 124 if the guest is still blocked in a host call (e.g. a long sleep) after ``after``."""

    def fire() -> None:
        time.sleep(after)
        sys.stderr.write("wasmgate: error: guest timed out (blocked in a host call)\n")
        sys.stderr.flush()
        os._exit(LimitExceeded._EXIT["timeout"])

    threading.Thread(target=fire, name="wasmgate-watchdog", daemon=True).start()


@cli.command()
@click.argument("module", type=click.Path(path_type=Path, dir_okay=False))
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), required=True)
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


@cli.command()
@click.argument("module", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--allow-precompiled", is_flag=True, help="Allow a precompiled artifact.")
@_cache_options
def inspect(
    module: Path, as_json: bool, allow_precompiled: bool, cache_dir: Path | None, no_cache: bool
) -> None:
    """Print a module's kind, imports and exports."""
    guest = load(module, cache=_cache(cache_dir, no_cache), allow_precompiled=allow_precompiled)
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


@cli.command()
@click.option(
    "-c",
    "--config",
    "modules_toml",
    type=click.Path(path_type=Path, dir_okay=False),
    default="modules.toml",
    show_default=True,
    help="The WAGI modules.toml to serve.",
)
@click.option("-l", "--listen", default="127.0.0.1:3000", show_default=True, help="HOST:PORT.")
@click.option("--hostname", help="Host:port for SERVER_NAME when a request has no Host header.")
@click.option("-e", "--env", "env", multiple=True, type=ENV_ASSIGN, help="Guest env KEY=VALUE.")
@click.option("--env-file", type=click.Path(path_type=Path, dir_okay=False), multiple=True)
@click.option("--log-dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--tls-cert", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--tls-key", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--timeout", type=DURATION, help="Default per-request guest timeout [30s].")
@click.option("--max-memory", type=SIZE, help="Default guest linear memory cap [256MiB].")
@click.option("--fuel", type=POSITIVE_INT, help="Default per-request fuel budget [none].")
@click.option("--max-request-body", type=SIZE, help="Default request body limit [10MiB].")
@click.option("--max-response-body", type=SIZE, help="Default response size limit [16MiB].")
@click.option("--workers", type=POSITIVE_INT, help="Worker processes [number of cores].")
@click.option("--threads", type=POSITIVE_INT, help="Guest threads per worker [cores, min 2].")
@click.option("--queue", type=click.IntRange(min=0), default=64, show_default=True)
@click.option(
    "--max-body-buffer",
    type=SIZE,
    help="Request body bytes a worker holds at once; past it, 503 [256MiB].",
)
@click.option(
    "--no-inline",
    is_flag=True,
    help="Always run guests on guest threads, never on the event loop (see README).",
)
@click.option("--metrics-listen", help="HOST:PORT for Prometheus metrics (off by default).")
@click.option("--watch", is_flag=True, help="Reload when modules.toml or a module changes.")
@click.option("--no-access-log", is_flag=True, help="Do not log each request.")
@click.option(
    "--header-timeout",
    type=DURATION,
    help="Time a client has for a request's line and headers, else 408 (e.g. 5s) [10s].",
)
@click.option(
    "--body-timeout",
    type=DURATION,
    help="Time a request body may take before --body-min-rate applies, else 408 [20s].",
)
@click.option(
    "--body-min-rate",
    type=SIZE,
    help="Bytes per second (e.g. 500 or 1KiB) a client must average while sending a body "
    "and reading a response [500].",
)
@click.option(
    "--send-timeout",
    type=DURATION,
    help="Period over which a client must read --body-min-rate bytes/s of its response, "
    "else it is disconnected [30s].",
)
@_cache_options
def serve(
    modules_toml: Path,
    listen: str,
    hostname: str | None,
    env: tuple[tuple[str, str], ...],
    env_file: tuple[Path, ...],
    log_dir: Path | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    timeout: float | None,
    max_memory: int | None,
    fuel: int | None,
    max_request_body: int | None,
    max_response_body: int | None,
    workers: int | None,
    threads: int | None,
    queue: int,
    max_body_buffer: int | None,
    no_inline: bool,
    metrics_listen: str | None,
    watch: bool,
    no_access_log: bool,
    header_timeout: float | None,
    body_timeout: float | None,
    body_min_rate: int | None,
    send_timeout: float | None,
    cache_dir: Path | None,
    no_cache: bool,
) -> None:
    """Serve WAGI modules over HTTP (a drop-in for WAGI's modules.toml)."""
    from .config import GatewayConfig, RouteDefaults
    from .gateway.server import parse_listen
    from .gateway.server import serve as run_server
    from .wagi.cgi import parse_host
    from .wagi.manifest import load_env_file

    _, port = parse_listen(listen)
    host_value = hostname or f"localhost:{port}"
    try:
        parse_host(host_value)
    except ValueError as e:
        raise UsageError(f"--hostname: {e}") from None
    merged: dict[str, str] = {}
    for f in env_file:
        merged.update(load_env_file(f))
    merged.update(env)
    base = RouteDefaults()
    defaults = RouteDefaults(
        timeout=timeout or base.timeout,
        max_memory=max_memory or base.max_memory,
        fuel=fuel or base.fuel,
        max_request_body=max_request_body or base.max_request_body,
        max_response_body=max_response_body or base.max_response_body,
    )
    extra: dict[str, Any] = {"threads": threads} if threads else {}
    if max_body_buffer:
        extra["max_body_buffer"] = max_body_buffer
    if no_inline:
        extra["inline_budget"] = None
    guard = {
        "header_timeout": header_timeout,
        "body_timeout": body_timeout,
        "body_min_rate": body_min_rate,
        "send_timeout": send_timeout,
    }
    extra.update((name, value) for name, value in guard.items() if value is not None)
    workers = workers or os.cpu_count() or 1
    config = GatewayConfig(
        modules_toml=modules_toml,
        listen=listen,
        hostname=host_value,
        env=tuple(merged.items()),
        log_dir=log_dir,
        tls_cert=tls_cert,
        tls_key=tls_key,
        defaults=defaults,
        workers=workers,
        queue=queue,
        metrics_listen=metrics_listen,
        watch=watch,
        access_log=not no_access_log,
        cache=_cache(cache_dir, no_cache),
        **extra,
    )
    _setup_logging()
    raise SystemExit(run_server(config))


def _setup_logging() -> None:
    import logging

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


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
    except GuestExit as e:
        return e.code
    except GuestTrap as e:
        click.echo(f"wasmgate: error: {e}", err=True)
        if e.backtrace:
            click.echo("wasm backtrace:\n" + e.backtrace, err=True)
        return e.exit_code
    except WasmgateError as e:
        click.echo(f"wasmgate: error: {e}", err=True)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    return 0


def _usage_message(e: click.UsageError) -> str:
    missing = isinstance(e, click.MissingParameter)
    if isinstance(e, click.BadParameter) and not missing and e.param is not None and e.param.opts:
        return f"{max(e.param.opts, key=len)}: {e.message}"
    return e.format_message()


if __name__ == "__main__":
    sys.exit(main())


# Registered last: call_cli reuses the ParamTypes defined above.
from . import call_cli  # noqa: E402

cli.add_command(call_cli.call)  # type: ignore[has-type]
