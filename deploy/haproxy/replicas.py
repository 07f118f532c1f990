"""Several ``wasmgate serve`` replicas on one machine behind HAProxy: the configuration, and the
parts the replica test and benchmark drive (``tests/test_replicas.py``,
``benchmarks/bench_replicas.py``).

- ``haproxy_config``: an HAProxy configuration for replicas on loopback, with health checks on
  ``/healthz``, connection retries and redispatch to another replica, and layer-7 retries of
  idempotent requests (GET, HEAD) whose replica died before answering. Printed for your own
  addresses by ``python deploy/haproxy/replicas.py 127.0.0.1:8081 127.0.0.1:8082 ...``.
- ``Replica``: one ``wasmgate serve`` process (start, SIGTERM drain, SIGHUP reload, SIGKILL).
- ``Haproxy``: HAProxy in the foreground with that configuration, and its runtime API (the stats
  socket) to read each server's state.
- ``run_load``: a bounded HTTP/1.1 keep-alive client (count and time both bounded) that records
  every request: when it started and ended, its status, body, and the replica that answered
  (HAProxy's ``X-Replica`` response header).

Loopback only: every address here is 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Haproxy",
    "Replica",
    "Request",
    "free_port",
    "haproxy_config",
    "run_load",
    "sleep_guest_wat",
]

# Health checks: every CHECK_INTER, a server is down after FALL failures and up after RISE passes.
CHECK_INTER_MS = 200
FALL = 2
RISE = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def haproxy_config(
    listen: str,
    servers: Sequence[tuple[str, str]],
    *,
    stats_socket: Path | None = None,
    check_inter_ms: int = CHECK_INTER_MS,
    server_close: bool = False,
) -> str:
    """An HAProxy configuration: ``listen`` (HOST:PORT) balanced over ``servers`` (name,
    HOST:PORT), least connections first.

    - ``option httpchk GET /healthz`` every ``check_inter_ms``; ``fall``/``rise`` as above; a
      check waits up to 1 s for its answer (``timeout check``).
    - ``retries 3`` + ``option redispatch 1``: a connection refused (a replica that stopped
      listening, draining or dead) is retried on another replica, for every method.
    - ``retry-on conn-failure empty-response response-timeout``: for GET and HEAD only (the
      ``disable-l7-retry`` rule), a request whose replica closed or died without answering is
      sent again to another one. A POST in flight on a replica that is killed is not replayed:
      its client gets 502. That is the cost of a kill -9: the non-idempotent requests in flight.
    - Keep-alive to the replicas. A replica's SIGTERM closes its listening socket at once (a
      connection still in its accept queue is reset) and its connections that carry no request
      yet: a request HAProxy sends at that moment gets no answer. A GET is then sent again to
      another replica (above); a POST is not. So a rolling restart first takes the replica out
      of the balancer (``drain``: no new requests, those in flight finish), then sends SIGTERM,
      as Kubernetes does by removing the pod's endpoint before its ``preStop`` hook ends.
      ``server_close`` (``option http-server-close``: a new connection per request) does not
      close that window: the accept queue is reset all the same.
    - No ``on-marked-down shutdown-sessions``: a replica draining after SIGTERM fails its health
      checks at once (it stops listening) but must finish the requests it holds.
    - ``X-Replica`` names the replica that answered (for tests; drop it in production).
    """
    lines = [
        "global",
        "    maxconn 4096",
    ]
    if stats_socket is not None:
        lines.append(f"    stats socket {stats_socket} mode 600 level admin")
    lines += [
        "",
        "defaults",
        "    mode http",
        "    timeout connect 1s",
        "    timeout client 60s",
        "    timeout server 60s",
        "    timeout http-request 10s",
        "    timeout http-keep-alive 30s",
        "    timeout check 1s",
        "    retries 3",
        "    option redispatch 1",
        "    retry-on conn-failure empty-response response-timeout",
        "",
        "frontend gateway",
        f"    bind {listen}",
        "    default_backend replicas",
        "",
        "backend replicas",
        "    balance leastconn",
        "    option httpchk GET /healthz",
        "    http-check expect status 200",
        "    http-request disable-l7-retry if !METH_GET",
        "    http-response set-header X-Replica %s",
        *(["    option http-server-close"] if server_close else []),
        f"    default-server check inter {check_inter_ms}ms fall {FALL} rise {RISE}",
    ]
    lines += [f"    server {name} {address}" for name, address in servers]
    return "\n".join(lines) + "\n"


def _get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (loopback URLs only)
        return int(r.status), bytes(r.read())


def wait_until(what: str, ready: object, timeout: float, interval: float = 0.05) -> None:
    """Poll ``ready()`` until it is true; RuntimeError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError, ValueError):
            if ready():  # type: ignore[operator]
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@dataclass
class Replica:
    """One ``wasmgate serve`` process on 127.0.0.1:``port`` serving ``toml``."""

    name: str
    toml: Path
    port: int
    args: Sequence[str] = ()
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.toml.parent / f"{self.name}.log"

    def start(self) -> None:
        self.starts += 1
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "wasmgate",
                    "serve",
                    "-c",
                    str(self.toml),
                    "-l",
                    self.address,
                    "--no-access-log",
                    *self.args,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
            )

    def healthy(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            return False
        try:
            return _get(f"http://{self.address}/healthz", timeout=1)[0] == 200
        except OSError:
            return False

    def wait_healthy(self, timeout: float = 30) -> None:
        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{self.tail()}")
            return self.healthy()

        wait_until(f"{self.name} to answer /healthz", ready, timeout)

    def get(self, path: str) -> tuple[int, bytes]:
        """A request straight to this replica, past the load balancer."""
        return _get(f"http://{self.address}{path}")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 40) -> int:
        """SIGTERM (drain), then wait for the exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class Haproxy:
    """HAProxy in the foreground (``-db``) with ``haproxy_config``; ``servers`` by name."""

    def __init__(self, workdir: Path, servers: Sequence[tuple[str, str]], port: int) -> None:
        binary = shutil.which("haproxy") or (
            "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None
        )
        if binary is None:
            raise RuntimeError("haproxy is not installed (Debian: apt-get install haproxy)")
        self.binary = binary
        self.port = port
        self.socket = workdir / "haproxy.sock"
        self.config = workdir / "haproxy.cfg"
        self.config.write_text(
            haproxy_config(f"127.0.0.1:{port}", servers, stats_socket=self.socket)
        )
        self.log = workdir / "haproxy.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        check = subprocess.run(
            [self.binary, "-c", "-q", "-f", str(self.config)], capture_output=True, timeout=30
        )
        if check.returncode != 0:
            raise RuntimeError(f"haproxy refused its configuration:\n{check.stderr.decode()}")
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [self.binary, "-db", "-f", str(self.config)], stdout=out, stderr=subprocess.STDOUT
            )
        wait_until("haproxy's stats socket", self.socket.exists, 10)

    def command(self, line: str) -> str:
        """One command on the runtime API (the stats socket)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(str(self.socket))
            s.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def states(self) -> dict[str, str]:
        """Each server's status as HAProxy sees it (``UP``, ``DOWN``, ``MAINT``, ...)."""
        lines = self.command("show stat").splitlines()
        header = lines[0].lstrip("# ").split(",")
        out: dict[str, str] = {}
        for line in lines[1:]:
            row = dict(zip(header, line.split(","), strict=False))
            if row.get("pxname") == "replicas" and row.get("svname") not in ("BACKEND", None):
                out[row["svname"]] = row["status"].split()[0]
        return out

    def wait_state(self, name: str, state: str, timeout: float = 15) -> None:
        wait_until(f"haproxy to see {name} {state}", lambda: self.states()[name] == state, timeout)

    def stat(self, name: str, column: str) -> str:
        lines = self.command("show stat").splitlines()
        header = lines[0].lstrip("# ").split(",")
        for line in lines[1:]:
            row = dict(zip(header, line.split(","), strict=False))
            if row.get("pxname") == "replicas" and row.get("svname") == name:
                return row[column]
        raise KeyError(name)

    def drain(self, name: str, timeout: float = 15) -> None:
        """Send ``name`` no new request, and wait until it holds none."""
        self.command(f"set server replicas/{name} state drain")
        wait_until(
            f"{name} to finish its requests", lambda: self.stat(name, "scur") == "0", timeout
        )

    def ready(self, name: str) -> None:
        """Take ``name`` back (after ``drain``); it is used once its health checks pass."""
        self.command(f"set server replicas/{name} state ready")

    def enable_only(self, names: Sequence[str], all_names: Sequence[str]) -> None:
        """Put the servers not in ``names`` in maintenance, the others back in service."""
        for name in all_names:
            state = "ready" if name in names else "maint"
            self.command(f"set server replicas/{name} state {state}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextlib.contextmanager
def cluster(
    workdir: Path, replicas: Sequence[Replica], *, start_timeout: float = 60
) -> Iterator[Haproxy]:
    """Start ``replicas`` and HAProxy in front of them; stop everything on the way out."""
    lb = Haproxy(workdir, [(r.name, r.address) for r in replicas], free_port())
    try:
        for r in replicas:
            r.start()
        for r in replicas:
            r.wait_healthy(start_timeout)
        lb.start()
        for r in replicas:
            lb.wait_state(r.name, "UP")
        yield lb
    finally:
        lb.stop()
        for r in replicas:
            with contextlib.suppress(Exception):
                if r.proc is not None and r.proc.poll() is None:
                    r.stop(40)
            r.cleanup()


# --- the load ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Request:
    """One request of the load: monotonic start and end, what came back."""

    method: str
    start: float
    end: float
    status: int  # 0: no HTTP response (connection error or time-out)
    replica: str
    body: bytes
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in header_lines:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(parts)
    else:
        body = b""
    return status, headers, body


async def _connection(
    port: int,
    path: str,
    methods: Sequence[str],
    deadline: float,
    budget: list[int],
    records: list[Request],
    request_timeout: float,
    stop: threading.Event | None,
) -> None:
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    i = 0
    while time.monotonic() < deadline and budget[0] > 0 and not (stop and stop.is_set()):
        budget[0] -= 1
        method = methods[i % len(methods)]
        i += 1
        body = b"ping" if method == "POST" else b""
        start = time.monotonic()
        try:
            if writer is None:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", port), request_timeout
                )
            assert reader is not None
            writer.write(
                f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            status, headers, data = await asyncio.wait_for(_read_response(reader), request_timeout)
            records.append(
                Request(method, start, time.monotonic(), status, headers.get("x-replica", ""), data)
            )
            if headers.get("connection", "").lower() == "close":
                writer.close()
                writer = None
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError,
                TimeoutError) as e:  # fmt: skip
            records.append(Request(method, start, time.monotonic(), 0, "", b"", repr(e)))
            if writer is not None:
                writer.close()
            writer = None
    if writer is not None:
        writer.close()


async def _load(
    port: int,
    path: str,
    connections: int,
    duration: float,
    max_requests: int,
    methods: Sequence[str],
    request_timeout: float,
    stop: threading.Event | None,
) -> list[Request]:
    deadline = time.monotonic() + duration
    budget = [max_requests]
    records: list[Request] = []
    await asyncio.gather(
        *(
            _connection(port, path, methods, deadline, budget, records, request_timeout, stop)
            for _ in range(connections)
        )
    )
    return records


def run_load(
    port: int,
    path: str,
    *,
    connections: int,
    duration: float,
    max_requests: int,
    methods: Sequence[str] = ("GET",),
    request_timeout: float = 10.0,
    stop: threading.Event | None = None,
) -> list[Request]:
    """Send requests to 127.0.0.1:``port`` over ``connections`` keep-alive connections until
    ``duration`` seconds have passed or ``max_requests`` were sent (whichever comes first);
    each connection cycles through ``methods``. Blocks; run it in a thread to act meanwhile,
    and set ``stop`` to end it early."""
    return asyncio.run(
        _load(port, path, connections, duration, max_requests, methods, request_timeout, stop)
    )


def sleep_guest_wat(body: str, sleep_ms: int) -> str:
    """A WAGI guest in WAT that sleeps ``sleep_ms`` in ``poll_oneoff`` (a host call: no CPU),
    then answers ``body`` as text/plain (``sleep_ms=0``: at once, no host call but the write)."""
    data = f"Content-Type: text/plain\n\n{body}".encode()
    call = "(drop (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))"
    escaped = "".join(f"\\{b:02x}" for b in data)
    return f"""(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 256) "{escaped}")
  (func (export "_start")
    (i64.store (i32.const 0) (i64.const 0))
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (i64.const {sleep_ms * 1_000_000}))
    (i64.store (i32.const 32) (i64.const 0))
    (i32.store16 (i32.const 40) (i32.const 0))
    {call if sleep_ms > 0 else ""}
    (i32.store (i32.const 160) (i32.const 256))
    (i32.store (i32.const 164) (i32.const {len(data)}))
    (drop (call $write (i32.const 1) (i32.const 160) (i32.const 1) (i32.const 168)))))
"""


def main(argv: Sequence[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: replicas.py HOST:PORT... (prints an haproxy.cfg for these replicas)")
        return 0 if argv else 2
    servers = [(f"replica{i}", address) for i, address in enumerate(argv)]
    sys.stdout.write(haproxy_config(":80", servers))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
