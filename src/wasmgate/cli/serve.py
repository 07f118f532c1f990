"""``wasmgate serve``: the gateway's flags, turned into one ``GatewayConfig``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from ..errors import UsageError
from ..limits import CLI_NAMES, Limits
from .options import cache_config, cache_options
from .params import DURATION, ENV_ASSIGN, POSITIVE_INT, SIZE

__all__ = ["ENV_PREFIX", "serve"]

# Every flag can also come from the environment: WASMGATE_<PARAMETER NAME> (WASMGATE_LISTEN,
# WASMGATE_WORKERS, WASMGATE_MODULES_TOML for -c, WASMGATE_NO_INLINE=1, ...); a flag given on the
# command line wins. docs/deploying.md lists them (generated from these params, checked by tests).
ENV_PREFIX = "WASMGATE"


@click.command(context_settings={"auto_envvar_prefix": ENV_PREFIX})
@click.argument(
    "component", required=False, type=click.Path(path_type=Path, dir_okay=False, exists=True)
)
@click.option(
    "-c",
    "--config",
    "modules_toml",
    type=click.Path(path_type=Path, dir_okay=False),
    default="modules.toml",
    show_default=True,
    help="The WAGI modules.toml to serve.",
)
# --addr: the spelling of `wasmtime serve`, for `wasmgate serve app.wasm --addr HOST:PORT`.
@click.option(
    "-l",
    "--listen",
    "--addr",
    "listen",
    default="127.0.0.1:3000",
    show_default=True,
    help="HOST:PORT.",
)
@click.option(
    "--hostname",
    help="Public host:port: pins SERVER_NAME, SERVER_PORT and X_FULL_URL's authority for every "
    "request, whatever Host the client sent [the Host header, else localhost:PORT].",
)
@click.option("-e", "--env", "env", multiple=True, type=ENV_ASSIGN, help="Guest env KEY=VALUE.")
@click.option(
    "--env-file",
    type=click.Path(path_type=Path, dir_okay=False),
    multiple=True,
    help="File of KEY=VALUE lines for every guest's environment (repeatable; -e wins).",
)
@click.option(
    "--log-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder for each route's guest stderr log (one file per module).",
)
@click.option(
    "--tls-cert",
    type=click.Path(path_type=Path, dir_okay=False),
    help="PEM certificate chain: serve HTTPS (with --tls-key).",
)
@click.option(
    "--tls-key",
    type=click.Path(path_type=Path, dir_okay=False),
    help="PEM private key for --tls-cert.",
)
@click.option("--timeout", type=DURATION, help="Default per-request guest timeout [30s].")
@click.option("--max-memory", type=SIZE, help="Default guest linear memory cap [256MiB].")
@click.option("--fuel", type=POSITIVE_INT, help="Default per-request fuel budget [none].")
@click.option("--max-request-body", type=SIZE, help="Default request body limit [10MiB].")
@click.option("--max-response-body", type=SIZE, help="Default response size limit [16MiB].")
@click.option("--workers", type=POSITIVE_INT, help="Worker processes [number of cores].")
@click.option("--threads", type=POSITIVE_INT, help="Guest threads per worker [cores, min 2].")
@click.option(
    "--queue",
    type=click.IntRange(min=0),
    default=64,
    show_default=True,
    help="Requests a worker admits beyond its guest threads before answering 503.",
)
@click.option(
    "--max-body-buffer",
    type=SIZE,
    help="Request body bytes a worker holds at once; past it, 503 [256MiB].",
)
@click.option(
    "--max-send-buffer",
    type=SIZE,
    help="Response bytes a worker holds for clients that read slowly; past it, the one "
    "holding the most is cut off [128MiB].",
)
@click.option(
    "--no-inline",
    is_flag=True,
    help="Always run guests on guest threads, never on the event loop (see README).",
)
@click.option("--metrics-listen", help="HOST:PORT for Prometheus metrics (off by default).")
@click.option(
    "--watch",
    is_flag=True,
    help="Reload when modules.toml, the runtime config file or a module changes.",
)
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
@click.option(
    "--runtime-config-file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Spin-style runtime config: [key_value_store.<label>] backends (see README, State); "
    "read again at every reload.",
)
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder for SQLite key-value stores, created on first use [.wasmgate/state].",
)
@cache_options
def serve(
    component: Path | None,
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
    max_send_buffer: int | None,
    no_inline: bool,
    metrics_listen: str | None,
    watch: bool,
    no_access_log: bool,
    header_timeout: float | None,
    body_timeout: float | None,
    body_min_rate: int | None,
    send_timeout: float | None,
    runtime_config_file: Path | None,
    state_dir: Path | None,
    cache_dir: Path | None,
    no_cache: bool,
) -> None:
    """Serve WAGI modules over HTTP (a drop-in for WAGI's modules.toml), or one wasi:http
    COMPONENT on every path (``wasmgate serve app.wasm``, as ``wasmtime serve``)."""
    from ..config import GatewayConfig
    from ..gateway.server import parse_listen
    from ..gateway.server import serve as run_server
    from ..wagi.cgi import parse_host
    from ..wagi.manifest import load_env_file

    if component is not None:
        modules_toml = _one_route_manifest(component)
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
    defaults = Limits(
        timeout=timeout,
        max_memory=max_memory,
        fuel=fuel,
        max_request_body=max_request_body,
        max_response_body=max_response_body,
    ).named(CLI_NAMES)
    extra: dict[str, Any] = {"threads": threads} if threads else {}
    if max_body_buffer:
        extra["max_body_buffer"] = max_body_buffer
    if max_send_buffer:
        extra["max_send_buffer"] = max_send_buffer
    if hostname:
        extra["pin_hostname"] = True
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
        cache=cache_config(cache_dir, no_cache),
        runtime_config_file=runtime_config_file,
        state_dir=state_dir,
        **extra,
    )
    _setup_logging()
    raise SystemExit(run_server(config))


def _one_route_manifest(component: Path) -> Path:
    """A private modules.toml serving ``component`` on ``/...`` (kept until this process ends:
    workers and reloads read it)."""
    import atexit
    import json
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="wasmgate-serve-")
    atexit.register(shutil.rmtree, folder, True)
    toml = Path(folder) / "modules.toml"
    module = json.dumps(str(component.resolve()))
    toml.write_text(f'[[module]]\nroute = "/..."\nmodule = {module}\n')
    return toml


def _setup_logging() -> None:
    import logging

    from ..gateway.server import LOG_FORMAT

    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
