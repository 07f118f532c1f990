"""``wasmgate serve``: the gateway on an embedded uvicorn server, with reload and metrics.

Rules:
- The configuration is loaded before the socket is bound: a broken modules.toml stops start-up
  with one line and exit status 1, and nothing listens.
- uvicorn (httptools parser, uvloop when installed) was chosen by measurement: see README.
  SIGTERM/SIGINT stop accepting and let in-flight requests finish (up to ``graceful_timeout``).
- SIGHUP, and with ``--watch`` any change to modules.toml or a module file, reloads the
  configuration without dropping requests; a broken new configuration keeps the old one.
- Metrics are served on their own address (``--metrics-listen``), never on the public one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from ..config import GatewayConfig
from ..errors import UsageError
from .app import Gateway

__all__ = ["parse_listen", "serve"]

log = logging.getLogger("wasmgate.gateway")
WATCH_INTERVAL = 1.0


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(
            f"invalid listen address {text!r} (expected HOST:PORT, e.g. 127.0.0.1:3000)"
        )
    return host.strip("[]"), int(port)


def _mtimes(paths: tuple[Path, ...]) -> dict[Path, float]:
    out: dict[Path, float] = {}
    for p in paths:
        try:
            out[p] = p.stat().st_mtime_ns
        except OSError:
            out[p] = -1
    return out


async def _watch(gateway: Gateway) -> None:
    seen = _mtimes(gateway.state.watched)
    while True:
        await asyncio.sleep(WATCH_INTERVAL)
        now = _mtimes(gateway.state.watched)
        if now != seen:
            log.info("change detected, reloading")
            await gateway.reload()
            seen = _mtimes(gateway.state.watched)


class _Server(uvicorn.Server):
    """uvicorn's server plus our SIGHUP reload and file watcher."""

    def __init__(self, config: uvicorn.Config, gateway: Gateway, watch: bool) -> None:
        super().__init__(config)
        self.gateway = gateway
        self.watch = watch
        self._tasks: set[asyncio.Task[None]] = set()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGHUP, self._reload)
        if self.watch:
            task = loop.create_task(_watch(self.gateway))
            self._tasks.add(task)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn re-raises SIGTERM/SIGINT after a graceful shutdown so the process dies by the
        # signal; a gateway that drained cleanly exits with status 0 instead.
        with super().capture_signals():
            yield
            self._captured_signals.clear()

    def _reload(self) -> None:
        log.info("SIGHUP: reloading")
        task = asyncio.get_running_loop().create_task(self._do_reload())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _do_reload(self) -> None:
        await self.gateway.reload()


def serve(config: GatewayConfig) -> int:
    """Run the gateway until SIGTERM/SIGINT. Returns the process exit status."""
    host, port = parse_listen(config.listen)
    gateway = Gateway(config)
    gateway.load()
    if config.metrics_listen:
        from prometheus_client import start_http_server

        mhost, mport = parse_listen(config.metrics_listen)
        start_http_server(mport, addr=mhost, registry=gateway.metrics.registry)
        log.info("metrics on http://%s:%d/metrics", mhost, mport)
    uv_config = uvicorn.Config(
        gateway,
        host=host,
        port=port,
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
        date_header=True,
        timeout_graceful_shutdown=int(config.graceful_timeout),
        ssl_certfile=str(config.tls_cert) if config.tls_cert else None,
        ssl_keyfile=str(config.tls_key) if config.tls_key else None,
        http="httptools",
        loop="uvloop" if _has_uvloop() else "asyncio",
        limit_concurrency=None,
        backlog=2048,
    )
    server = _Server(uv_config, gateway, config.watch)
    scheme = "https" if config.tls_cert else "http"
    log.info("listening on %s://%s:%d (pid %d)", scheme, host, port, os.getpid())
    server.run()
    return 0 if server.started else 1


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return sys.platform != "win32"
