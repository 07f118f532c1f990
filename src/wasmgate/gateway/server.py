"""``wasmgate serve``: the gateway on an embedded uvicorn server, with reload and metrics.

Rules:
- Start-up order: the address is checked first (a bind without listening, then released),
  then the configuration (and the TLS files) are loaded, then the address is claimed for real
  and only then is "listening" logged. A broken modules.toml stops start-up with one line and
  exit status 1, and nothing listens.
- The address is claimed once, by the serving process (the master with ``--workers``): a plain
  bind (no ``SO_REUSEPORT``), so an address another program or another ``wasmgate serve``
  listens on (with or without ``SO_REUSEPORT``) stops start-up at once with one line,
  ``wasmgate: error: HOST:PORT is already in use``, and exit status 1 (the check above says it
  before any configuration is loaded). Two servers never share a port silently.
- TLS is terminated by the gateway's own layer (``protocol.tls_protocol``), so the handshake is
  bounded by ``--header-timeout``; uvicorn is given no certificate.
- uvicorn (httptools parser, uvloop when installed) was chosen by measurement: see README.
  SIGTERM/SIGINT stop accepting and let in-flight requests finish (up to ``graceful_timeout``).
- SIGHUP, and with ``--watch`` any change to modules.toml, the runtime config file or a module
  file, reloads the configuration (runtime config included) without dropping requests; a broken
  new configuration keeps the old one.
- Metrics are served on their own address (``--metrics-listen``), never on the public one.
- The access log is written by each serving process in batches, straight to stderr
  (``accesslog.start_direct``), in the lines ``LOG_FORMAT`` gives every other record; what is
  left is written when uvicorn has drained (``stop_direct``).
- Every serving process (the single one, or each ``--workers`` process, which is spawned with
  the whole ``GatewayConfig`` as an argument) builds its uvicorn config and its connection guard
  (``protocol.guarded_protocol``: ``--header-timeout`` and the rest) from that ``GatewayConfig``,
  so every worker gets the same settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
import ssl
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn

from ..config import GatewayConfig
from ..errors import UsageError, WasmgateError
from .accesslog import start_direct, stop_direct
from .app import Gateway
from .balance import Balancer, WorkerTable
from .protocol import guarded_protocol, limit_heap_retention, server_tls_context, tls_protocol
from .snapshot import Snapshot, WorkerSnapshot
from .state import read_manifest_text

__all__ = ["parse_listen", "serve"]

log = logging.getLogger("wasmgate.gateway")
WATCH_INTERVAL = 1.0
# The log lines of ``wasmgate serve`` (each worker puts ``[worker N]`` before the logger's name).
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


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

    def __init__(
        self,
        config: uvicorn.Config,
        gateway: Gateway,
        watch: bool,
        master: int | None = None,
        balancer: Balancer | None = None,
    ) -> None:
        super().__init__(config)
        self.gateway = gateway
        self.watch = watch
        self.master = master  # a worker's master: stop when it is gone
        self.balancer = balancer  # a worker's share of the connections (balance.py)
        self._tasks: set[asyncio.Task[None]] = set()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        loop = asyncio.get_running_loop()
        if self.balancer is not None and self.started:
            config = self.config

            def protocol() -> Any:  # what uvicorn makes for a connection it accepts
                return config.http_protocol_class(  # type: ignore[call-arg]
                    config=config, server_state=self.server_state, app_state=self.lifespan.state
                )

            self.balancer.start(loop, protocol)
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGHUP, self._reload)
        # A worker process starts with SIGHUP blocked (see _serve_workers): a reload signal sent
        # before this point waited, and is handled now instead of killing the worker.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGHUP])
        if self.watch:
            task = loop.create_task(_watch(self.gateway))
            self._tasks.add(task)
        if self.master is not None:
            self._tasks.add(loop.create_task(self._watch_master(self.master)))

    async def _watch_master(self, master: int) -> None:
        while os.getppid() == master:
            await asyncio.sleep(PARENT_CHECK)
        log.warning("master process %d is gone; stopping", master)
        self.should_exit = True

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn re-raises SIGTERM/SIGINT after a graceful shutdown so the process dies by the
        # signal; a gateway that drained cleanly exits with status 0 instead.
        with super().capture_signals():
            yield
            self._captured_signals.clear()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.balancer is not None:  # no more connections handed to this worker
            self.balancer.leave()
        await super().shutdown(sockets=sockets)

    def _reload(self) -> None:
        log.info("SIGHUP: reloading")
        task = asyncio.get_running_loop().create_task(self._do_reload())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _do_reload(self) -> None:
        await self.gateway.reload()


def _uvicorn_config(
    config: GatewayConfig, gateway: Gateway, balancer: Balancer | None = None
) -> uvicorn.Config:
    host, port = parse_listen(config.listen)
    # timeouts and limits from the config
    http: Any = guarded_protocol(config, gateway.metrics, balancer)
    if config.tls_cert and config.tls_key:  # our TLS layer: its handshake is on the clock too
        http = tls_protocol(config, _tls_context(config), gateway.metrics)
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
        http=http,
        # Never take the client address or scheme from X-Forwarded-* headers: uvicorn trusts them
        # from 127.0.0.1 by default, so any local process could set REMOTE_ADDR and X_FULL_URL.
        proxy_headers=False,
        loop="uvloop" if _has_uvloop() else "asyncio",
        backlog=2048,
    )


def _tls_context(config: GatewayConfig) -> ssl.SSLContext:
    assert config.tls_cert is not None
    assert config.tls_key is not None
    try:
        return server_tls_context(str(config.tls_cert), str(config.tls_key))
    except (OSError, ssl.SSLError) as e:
        reason = getattr(e, "strerror", None) or getattr(e, "reason", None) or str(e)
        raise WasmgateError(f"cannot load --tls-cert/--tls-key: {reason}") from None


def serve(config: GatewayConfig) -> int:
    """Run the gateway until SIGTERM/SIGINT. Returns the process exit status; raises
    ``WasmgateError`` (one line) for a broken configuration or an address in use."""
    host, port = parse_listen(config.listen)
    limit_heap_retention()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    claim_address(family, host, port, listen=False).close()  # taken? say so before anything
    _check_cache_dir(config)
    if config.tls_cert:
        _tls_context(config)  # a bad certificate stops start-up with one line
    text = read_manifest_text(config.modules_toml)
    scheme = "https" if config.tls_cert else "http"
    if config.workers > 1:  # validated there, from the copies its workers will load
        return _serve_workers(config, host, port, scheme, family, text)
    gateway = Gateway(config, manifest_text=text)
    gateway.load()  # refuse to start on a bad configuration, before binding anything
    sock = claim_address(family, host, port)
    gateway.manifest_text = None  # one process: a reload reads the file again
    if config.metrics_listen:
        _start_metrics(config.metrics_listen, gateway.metrics.registry)
    server = _Server(_uvicorn_config(config, gateway), gateway, config.watch)
    log.info("listening on %s://%s:%d (pid %d)", scheme, host, sock.getsockname()[1], os.getpid())
    if config.access_log:
        start_direct(LOG_FORMAT)
    try:
        server.run(sockets=[sock])
    finally:
        stop_direct()
    return 0 if server.started else 1


def claim_address(
    family: int, host: str, port: int, backlog: int = 2048, *, listen: bool = True
) -> socket.socket:
    """A listening socket on (host, port) bound without ``SO_REUSEPORT`` (see the rules);
    ``WasmgateError`` naming the address when it is taken or cannot be used. With ``listen``
    False, only bound: a check that the address is free (a bind conflicts with any listener)."""
    shown = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # SO_REUSEADDR only lets us reuse a port whose old connections linger in TIME_WAIT;
        # it never lets two listeners share one.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        if listen:
            sock.listen(backlog)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise WasmgateError(f"{shown} is already in use") from None
        raise WasmgateError(f"cannot listen on {shown}: {e.strerror}") from None
    sock.set_inheritable(True)
    return sock


def _check_cache_dir(config: GatewayConfig) -> None:
    """Warn once at start-up when the artifact cache cannot be written (modules are then
    compiled by every process at every start, which is slow but works)."""
    if not config.cache.enabled:
        return
    from ..engine import default_cache_dir

    directory = config.cache.directory or default_cache_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        writable = os.access(directory, os.W_OK | os.X_OK)
    except OSError:
        writable = False
    if not writable:
        log.warning(
            "the artifact cache directory is not writable; modules will be compiled "
            "at every start (set --cache-dir or WASMGATE_CACHE_DIR)"
        )


def _start_metrics(listen: str, registry: object) -> None:
    from prometheus_client import start_http_server

    mhost, mport = parse_listen(listen)
    start_http_server(mport, addr=mhost, registry=registry)  # type: ignore[arg-type]
    log.info("metrics on http://%s:%d/metrics", mhost, mport)


# --- several worker processes ------------------------------------------------------------------
#
# Rules:
# - The master claims the address (``claim_address``), then starts ``workers`` processes with
#   the *spawn* method (fresh interpreters: wasmtime engines and threads do not survive fork).
# - Where the system has ``SO_REUSEPORT`` (Linux), the master then binds one more listening
#   socket per worker on that address with ``SO_REUSEPORT`` and hands each worker its own; the
#   kernel spreads new connections evenly over them. (On one shared socket the first worker to
#   wake takes whole bursts of connections, and keep-alive clients stay where they landed:
#   measured, one worker of two serving all 32 connections of a benchmark at a third of the
#   throughput.) The claiming socket, which has no ``SO_REUSEPORT``, is then closed: its job
#   was to prove the port free; the workers' listening sockets keep any later plain bind out.
#   Elsewhere the workers accept on the claiming socket. Workers never bind anything. (The
#   claiming socket is closed just before the workers' sockets are bound: a plain socket and
#   ``SO_REUSEPORT`` ones cannot be bound at once.)
# - A hash spreads connections evenly only on average (32 keep-alive clients split 11/21 as
#   often as not): a worker holding two more than the least loaded one hands a new plain-HTTP
#   connection over to it before reading from it (``balance.py``: a table of counts in the run
#   directory, the socket passed over a Unix socket). The master marks a dead worker's row so
#   nothing is handed to it.
# - The configuration is the master's: it reads modules.toml, validates it (a full load), and
#   keeps the text in its private run directory, with copies of the modules and the runtime
#   config file's text (``snapshot.py``). Workers load those, never the files, so a worker
#   (re)started while a file is being edited or is broken serves what the others serve.
#   SIGHUP, and ``--watch``, make the master read and validate the files again; only a valid
#   configuration replaces the copies, and then the workers are told to reload them. Reloads
#   are counted once, by the master.
# - A worker that dies is replaced, with back-off: 0.5 s after an exit, doubling up to 10 s
#   while workers keep dying within 10 s of their start; one log line per exit. Its listening
#   socket is closed at once (connections waiting in it are refused rather than left hanging)
#   and the replacement gets a fresh one.
# - Workers die with their master: each asks the kernel for SIGTERM when its parent dies
#   (``PR_SET_PDEATHSIG``, Linux) and also checks once a second that its parent is still the
#   master; either way it stops gracefully. A worker leaving after its master's death removes
#   its metric files, and the last one removes the run directory.
# - The master forwards SIGTERM/SIGINT (graceful stop) to every worker.
# - Metrics: the parent serves the sum over workers (prometheus multiprocess mode).

RESTART_FIRST = 0.5
RESTART_MAX = 10.0
RESTART_STABLE = 10.0  # a worker that lived this long resets the back-off
PARENT_CHECK = 1.0


def _worker_main(
    config: GatewayConfig,
    sock: socket.socket,
    index: int,
    master: int,
    run_dir: str,
) -> None:
    _die_with_parent()
    # SIGTERM (the master's death, or its stop) ends the worker through the ``finally`` below,
    # not by the default action, which would leave its files behind: before uvicorn installs
    # its handlers, and after, when uvicorn raises the signal it caught again.
    signal.signal(signal.SIGTERM, _stop_starting)
    # Spawned with SIGTERM blocked (see ``start`` in _serve_workers): one sent while this
    # process was still importing waited for the handler above, and is handled now.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM])
    try:
        _setup_worker_logging(index)
        if config.access_log:
            start_direct(LOG_FORMAT, f"[worker {index}] ")
        if os.getppid() != master:  # the master died before we could ask to die with it
            return
        limit_heap_retention()
        gateway = Gateway(config, snapshot=WorkerSnapshot(Path(run_dir)))
        gateway.count_reloads = False
        try:
            gateway.load()
        except WasmgateError as e:  # e.g. no memory for its engine: the master retries
            log.error("worker %d cannot start: %s", index, e)
            raise SystemExit(1) from None
        balancer = None
        if not config.tls_cert:  # TLS connections are served where accepted (balance.py)
            balancer = Balancer(Path(run_dir), index, config.workers, gateway.metrics)
        server = _Server(
            _uvicorn_config(config, gateway, balancer),
            gateway,
            watch=False,
            master=master,
            balancer=balancer,
        )
        try:
            server.run(sockets=[sock])
        finally:
            if balancer is not None:
                balancer.close()
    finally:
        # Ending anyway: let no further SIGTERM (uvicorn raises the one it caught again once
        # it has stopped; a dying master's parent-death signal may come twice) cut this short.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop_direct()
        if _orphaned(run_dir, master):
            _orphan_cleanup(run_dir, master)


def _orphaned(run_dir: str, master: int) -> bool:
    """Whether this worker is ending because its master is gone. A master that stops its
    workers says so first (``_STOPPING``). A dying master can still have a live thread when the
    parent-death signal comes: its children then belong to that thread, and ``getppid()``
    names the master for a moment longer; so wait up to ``PARENT_CHECK`` for that to change."""
    deadline = time.monotonic() + PARENT_CHECK
    while os.getppid() == master:
        if os.path.exists(os.path.join(run_dir, _STOPPING)) or time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def _stop_starting(signum: int, frame: object) -> None:
    raise SystemExit(0)


_PR_SET_PDEATHSIG = 1
_STOPPING = ".stopping"  # in the run directory: the master is stopping its workers


def _die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _orphan_cleanup(run_dir: str, master: int) -> None:
    """After the master's death: remove this worker's metric files, and the run directory
    when no process that wrote into it is alive any more. Workers do this one at a time (a lock
    in the run directory): two leaving at once would each see the other alive, and neither
    would remove the directory. The master's own files never count: it is dead, though until
    its parent reaps it, it still answers as a process (a zombie)."""
    import fcntl

    try:
        lock = os.open(os.path.join(run_dir, ".cleanup"), os.O_WRONLY | os.O_CREAT, 0o600)
    except OSError:  # another worker removed the directory already
        return
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        metrics = Path(run_dir) / "metrics"
        _mark_dead(os.getpid())
        # A worker that has been through here counts as gone even while its process lives on:
        # its metric threads may write a file again before it exits.
        Path(run_dir, f".left-{os.getpid()}").touch()
        alive = False
        for f in metrics.glob("*.db"):
            pid = f.stem.rpartition("_")[2]
            if pid == str(os.getpid()):
                with contextlib.suppress(OSError):
                    f.unlink()
            elif (
                pid.isdigit()
                and int(pid) != master
                and _alive(int(pid))
                and not Path(run_dir, f".left-{pid}").exists()
            ):
                alive = True
        if not alive:
            import shutil

            shutil.rmtree(run_dir, ignore_errors=True)
    finally:
        os.close(lock)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _bind_shared(family: int, address: tuple[str, int], listen: bool) -> socket.socket:
    """A worker's own ``SO_REUSEPORT`` socket. Not listening (``listen=False``), it holds the
    port but the kernel gives it no connections until the worker itself listens, which uvicorn
    does once the worker has loaded: a restarted worker that cannot start never has clients
    queued on it, to be reset when it dies."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    if listen:
        sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _setup_worker_logging(index: int) -> None:
    logging.basicConfig(
        level=logging.INFO, format=LOG_FORMAT.replace("%(name)s", f"[worker {index}] %(name)s")
    )


def _serve_workers(
    config: GatewayConfig, host: str, port: int, scheme: str, family: int, text: str
) -> int:
    import multiprocessing
    import shutil
    import tempfile
    import time

    run_dir = Path(tempfile.mkdtemp(prefix="wasmgate-serve-"))
    snapshot = Snapshot(run_dir)
    try:  # refuse to start on a bad configuration, before binding anything
        snapshot.publish(config, text)
        claim = claim_address(family, host, port)
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    address = (host, claim.getsockname()[1])
    reuse_port = hasattr(socket, "SO_REUSEPORT") and sys.platform.startswith("linux")
    metrics_dir = run_dir / "metrics"
    metrics_dir.mkdir()
    table = WorkerTable.create(run_dir, config.workers)  # the workers' connection counts
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    ctx = multiprocessing.get_context("spawn")
    procs: dict[int, multiprocessing.process.BaseProcess] = {}
    socks: dict[int, socket.socket] = {}
    started_at: dict[int, float] = {}
    failures: dict[int, int] = {}
    restart_at: dict[int, float] = {}
    stopping = False
    reload_asked = False

    def start(index: int, first: bool = False) -> bool:
        """Spawn worker ``index``. The first workers' sockets listen at once (connections wait
        in them while the workers load); a restarted worker's listens once it is ready."""
        if reuse_port:
            try:
                socks[index] = _bind_shared(family, address, listen=first)
            except OSError as e:  # every worker was down and someone took the port meanwhile
                log.error("worker %d: cannot listen on %s: %s", index, config.listen, e.strerror)
                return False
        sock = socks[index] if reuse_port else claim
        p = ctx.Process(
            target=_worker_main,
            args=(config, sock, index, os.getpid(), str(run_dir)),
            name=f"wasmgate-worker-{index}",
        )
        # The new process inherits a blocked SIGHUP until its reload handler is installed: a
        # SIGHUP forwarded while it starts must not kill it (the default action). SIGTERM too,
        # until its clean-up handler is: the master's death (the parent-death signal) or its
        # stop while the worker still imports must end through the clean-up, not the default
        # action, which left the run directory behind.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGHUP, signal.SIGTERM])
        try:
            p.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        procs[index] = p
        started_at[index] = time.monotonic()
        return True

    def forward(signum: int) -> None:
        for p in procs.values():
            if p.pid is not None and p.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signum)

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping, reload_asked
        if signum == signal.SIGHUP:
            reload_asked = True  # validated by the main loop, outside the handler
            return
        stopping = True
        with contextlib.suppress(OSError):  # the workers are not orphans: see _orphaned
            (run_dir / _STOPPING).touch()
        # Our listening sockets would keep accepting connections into backlogs that no
        # draining worker will ever answer: close them, so new clients are refused.
        claim.close()
        for sock in socks.values():
            sock.close()
        forward(signum)

    from prometheus_client import values

    from .metrics import GatewayMetrics

    # prometheus_client chose its value class when first imported, before the directory was
    # set: choose again, so the master's own counters go to the shared files too.
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    master_metrics = GatewayMetrics()  # the master's reload counts

    def reload() -> None:
        nonlocal text
        log.info("reloading: checking %s", config.modules_toml.name)
        try:
            new = read_manifest_text(config.modules_toml)
            snapshot.publish(config, new)
        except WasmgateError as e:
            master_metrics.reloads.labels("failed").inc()
            log.error("reload failed, keeping the running configuration: %s", e)
            return
        text = new
        master_metrics.reloads.labels("ok").inc()
        forward(signal.SIGHUP)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    try:
        if reuse_port:
            claim.close()  # proved the port ours; the workers' sockets hold it now
        if config.metrics_listen:
            from prometheus_client import CollectorRegistry
            from prometheus_client.multiprocess import MultiProcessCollector

            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=str(metrics_dir))  # type: ignore[no-untyped-call]
            _start_metrics(config.metrics_listen, registry)
        for i in range(config.workers):
            if not start(i, first=True):
                raise WasmgateError(f"{config.listen} is already in use")
        log.info(
            "listening on %s://%s:%d with %d workers (pid %d)",
            scheme,
            host,
            address[1],
            config.workers,
            os.getpid(),
        )
        watched = _mtimes(_watched(config, text)) if config.watch else {}
        next_watch = time.monotonic() + WATCH_INTERVAL
        while True:
            time.sleep(0.2)
            now = time.monotonic()
            if reload_asked and not stopping:
                reload_asked = False
                reload()
            if config.watch and not stopping and now >= next_watch:
                next_watch = now + WATCH_INTERVAL
                seen = _mtimes(_watched(config, text))
                if seen != watched:
                    log.info("change detected, reloading")
                    reload()
                    watched = _mtimes(_watched(config, text))
            for index, p in list(procs.items()):
                if p.is_alive():
                    continue
                p.join()
                _mark_dead(p.pid)
                table.clear(index)  # no connections handed to it while it is gone
                del procs[index]
                if index in socks:  # refuse what waits in it rather than leave it hanging
                    socks.pop(index).close()
                if stopping:
                    continue
                lived = now - started_at[index]
                failures[index] = 1 if lived >= RESTART_STABLE else failures.get(index, 0) + 1
                delay = min(RESTART_MAX, RESTART_FIRST * 2 ** (failures[index] - 1))
                restart_at[index] = now + delay
                log.error(
                    "worker %d exited (status %s); restarting it in %gs",
                    index,
                    p.exitcode,
                    delay,
                )
            for index, when in list(restart_at.items()):
                if stopping:
                    restart_at.clear()
                elif now >= when:
                    del restart_at[index]
                    if not start(index):
                        restart_at[index] = now + RESTART_MAX
            if stopping and not procs:
                return 0
    finally:
        for p in procs.values():
            if p.is_alive():
                p.terminate()
                p.join(5)
        claim.close()
        for sock in socks.values():
            sock.close()
        shutil.rmtree(run_dir, ignore_errors=True)


def _watched(config: GatewayConfig, text: str) -> tuple[Path, ...]:
    """modules.toml, the runtime config file and the module files the validated text names
    (for ``--watch``)."""
    from ..wagi.manifest import parse_manifest

    files: tuple[Path, ...] = (config.modules_toml,)
    if config.runtime_config_file is not None:
        files += (config.runtime_config_file,)
    base = config.modules_toml.absolute().parent
    try:
        manifest = parse_manifest(text, base_dir=base, source=str(config.modules_toml))
    except WasmgateError:
        return files
    return (*files, *sorted({m.module_path for m in manifest.modules}))


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
