"""``wasmgate serve``: the gateway on an embedded uvicorn server, with reload and metrics.

Rules:
- The configuration is loaded before the socket is bound: a broken modules.toml stops start-up
  with one line and exit status 1, and nothing listens.
- uvicorn (httptools parser, uvloop when installed) was chosen by measurement: see README.
  SIGTERM/SIGINT stop accepting and let in-flight requests finish (up to ``graceful_timeout``).
- SIGHUP, and with ``--watch`` any change to modules.toml or a module file, reloads the
  configuration without dropping requests; a broken new configuration keeps the old one.
- Metrics are served on their own address (``--metrics-listen``), never on the public one.
- Every serving process (the single one, or each ``--workers`` process, which is spawned with
  the whole ``GatewayConfig`` as an argument) builds its uvicorn config and its connection guard
  (``protocol.guarded_protocol``: ``--header-timeout`` and the rest) from that ``GatewayConfig``,
  so every worker gets the same settings.
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
from .protocol import guarded_protocol, limit_heap_retention

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
        # A worker process starts with SIGHUP blocked (see _serve_workers): a reload signal sent
        # before this point waited, and is handled now instead of killing the worker.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGHUP])
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


def _uvicorn_config(config: GatewayConfig, gateway: Gateway) -> uvicorn.Config:
    host, port = parse_listen(config.listen)
    return uvicorn.Config(
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
        http=guarded_protocol(config),  # header/body/send timeouts from the config
        # Never take the client address or scheme from X-Forwarded-* headers: uvicorn trusts them
        # from 127.0.0.1 by default, so any local process could set REMOTE_ADDR and X_FULL_URL.
        proxy_headers=False,
        loop="uvloop" if _has_uvloop() else "asyncio",
        backlog=2048,
    )


def serve(config: GatewayConfig) -> int:
    """Run the gateway until SIGTERM/SIGINT. Returns the process exit status."""
    host, port = parse_listen(config.listen)
    limit_heap_retention()
    gateway = Gateway(config)
    gateway.load()  # refuse to start on a bad configuration, before binding anything
    scheme = "https" if config.tls_cert else "http"
    if config.workers > 1:
        gateway.close()
        return _serve_workers(config, host, port, scheme)
    if config.metrics_listen:
        _start_metrics(config.metrics_listen, gateway.metrics.registry)
    server = _Server(_uvicorn_config(config, gateway), gateway, config.watch)
    log.info("listening on %s://%s:%d (pid %d)", scheme, host, port, os.getpid())
    server.run()
    return 0 if server.started else 1


def _start_metrics(listen: str, registry: object) -> None:
    from prometheus_client import start_http_server

    mhost, mport = parse_listen(listen)
    start_http_server(mport, addr=mhost, registry=registry)  # type: ignore[arg-type]
    log.info("metrics on http://%s:%d/metrics", mhost, mport)


# --- several worker processes ------------------------------------------------------------------
#
# Rules:
# - The parent binds the address, then starts ``workers`` processes with the *spawn* method (fresh
#   interpreters: wasmtime engines and threads do not survive fork). Each worker loads the route
#   table from the shared on-disk artifact cache, which the parent's validation load has filled.
# - Where the system has ``SO_REUSEPORT`` (Linux), each worker listens on a socket of its own
#   bound to that address, and the kernel spreads new connections evenly over them. On one shared
#   socket the first worker to wake takes whole bursts of connections, and keep-alive clients stay
#   where they landed: measured, one worker of two serving all 32 connections of a benchmark at a
#   third of the throughput. The parent keeps its socket bound but never listening (so it gets no
#   connections, and the port stays ours while a worker restarts). Elsewhere, the workers accept
#   on the parent's listening socket.
# - The parent forwards SIGHUP (reload) and SIGTERM/SIGINT (graceful stop) to every worker, and
#   starts a replacement for a worker that dies unexpectedly.
# - Metrics: the parent serves the sum over workers (prometheus multiprocess mode).


def _worker_main(config: GatewayConfig, sock: socket.socket, index: int, reuse_port: bool) -> None:
    _setup_worker_logging(index)
    limit_heap_retention()
    gateway = Gateway(config)
    gateway.load()
    server = _Server(_uvicorn_config(config, gateway), gateway, config.watch)
    if reuse_port:  # our own listening socket on the parent's address
        own = _bind(sock.family, sock.getsockname()[:2], reuse_port=True)
        sock.close()
        own.listen(2048)
        sock = own
    server.run(sockets=[sock])


def _bind(family: int, address: tuple[str, int], *, reuse_port: bool) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    return sock


def _setup_worker_logging(index: int) -> None:
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s %(levelname)s [worker {index}] %(name)s: %(message)s",
    )


def _serve_workers(config: GatewayConfig, host: str, port: int, scheme: str) -> int:
    import multiprocessing
    import shutil
    import tempfile
    import time

    metrics_dir = tempfile.mkdtemp(prefix="wasmgate-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    reuse_port = hasattr(socket, "SO_REUSEPORT") and sys.platform.startswith("linux")
    sock = _bind(family, (host, port), reuse_port=reuse_port)
    if not reuse_port:
        sock.listen(2048)
    sock.set_inheritable(True)
    ctx = multiprocessing.get_context("spawn")
    procs: dict[int, multiprocessing.process.BaseProcess] = {}
    stopping = False

    def start(index: int) -> None:
        p = ctx.Process(
            target=_worker_main,
            args=(config, sock, index, reuse_port),
            name=f"wasmgate-worker-{index}",
        )
        # The new process inherits a blocked SIGHUP until its reload handler is installed: a
        # SIGHUP forwarded while it starts must not kill it (the default action).
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGHUP])
        try:
            p.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        procs[index] = p

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        if signum in (signal.SIGTERM, signal.SIGINT):
            stopping = True
            # Our copy of the listening socket would keep accepting connections into the backlog
            # that no draining worker will ever answer: close it, so new clients are refused.
            sock.close()
        for p in procs.values():
            if p.pid is not None and p.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    try:
        if config.metrics_listen:
            from prometheus_client import CollectorRegistry
            from prometheus_client.multiprocess import MultiProcessCollector

            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=metrics_dir)  # type: ignore[no-untyped-call]
            _start_metrics(config.metrics_listen, registry)
        for i in range(config.workers):
            start(i)
        log.info(
            "listening on %s://%s:%d with %d workers (pid %d)",
            scheme,
            host,
            sock.getsockname()[1],
            config.workers,
            os.getpid(),
        )
        while True:
            time.sleep(0.2)
            for index, p in list(procs.items()):
                if p.is_alive():
                    continue
                p.join()
                _mark_dead(p.pid)
                if stopping:
                    del procs[index]
                else:
                    log.error("worker %d exited (status %s); starting a new one", index, p.exitcode)
                    start(index)
            if stopping and not procs:
                return 0
    finally:
        for p in procs.values():
            if p.is_alive():
                p.terminate()
                p.join(5)
        sock.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _mark_dead(pid: int | None) -> None:
    if pid is None:
        return
    with contextlib.suppress(Exception):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return sys.platform != "win32"
