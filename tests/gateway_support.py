"""Helpers for gateway tests: WAT guests that print fixed CGI output, a real server process, and
raw HTTP exchanges with it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx


def wat_guest(
    output: bytes = b"Content-Type: text/plain\n\nok\n",
    *,
    exit_code: int | None = None,
    trap: bool = False,
    loop: bool = False,
    repeat: int = 1,
    stderr: bytes = b"",
    extra_import: bool = False,
) -> str:
    """A WAT command that writes ``output`` ``repeat`` times to stdout, then optionally traps,
    exits with ``exit_code`` or spins forever."""
    data = "".join(f"\\{b:02x}" for b in output)
    err = "".join(f"\\{b:02x}" for b in stderr)
    tail = ""
    if trap:
        tail = "unreachable"
    elif loop:
        tail = "(loop br 0)"
    elif exit_code is not None:
        tail = f"(call $exit (i32.const {exit_code}))"
    imp = '(import "env" "not_provided" (func))' if extra_import else ""
    return f"""(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  {imp}
  (memory (export "memory") 1)
  (data (i32.const 64) "{data}")
  (data (i32.const 32768) "{err}")
  (func (export "_start") (local $i i32)
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const {len(output)}))
    (i32.store (i32.const 16) (i32.const 32768))
    (i32.store (i32.const 20) (i32.const {len(stderr)}))
    (drop (call $write (i32.const 2) (i32.const 16) (i32.const 1) (i32.const 8)))
    (block $done (loop $again
      (br_if $done (i32.ge_u (local.get $i) (i32.const {repeat})))
      (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $again)))
    {tail}))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, proc: subprocess.Popen[bytes], base: str, log: Path) -> None:
        self.proc = proc
        self.base = base
        self.log = log

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def running_server(
    toml: Path, *args: str, env: dict[str, str] | None = None, scheme: str = "http"
) -> Iterator[Server]:
    port = free_port()
    log = toml.parent / f"server-{port}.log"
    if "--workers" not in args:
        args = ("--workers", "1", *args)
    full_env = {**os.environ, **(env or {})}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "wasmgate",
                "serve",
                "-c",
                str(toml),
                "-l",
                f"127.0.0.1:{port}",
                *args,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=full_env,
        )
    base = f"{scheme}://127.0.0.1:{port}"
    server = Server(proc, base, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n{server.output()}")
            try:
                httpx.get(base + "/healthz", timeout=1, verify=False)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError("server did not start:\n" + server.output()) from None
                time.sleep(0.05)
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# --- raw HTTP ----------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    raw_head: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


@dataclass
class Exchange:
    """Everything a raw connection received, split into responses (by Content-Length)."""

    raw: bytes
    responses: list[Response] = field(default_factory=list)
    rest: bytes = b""
    closed: bool = False  # the server closed the connection
    timed_out: bool = False


def parse_responses(raw: bytes) -> tuple[list[Response], bytes]:
    responses = []
    while raw.startswith(b"HTTP/"):
        end = raw.find(b"\r\n\r\n")
        if end < 0:
            break
        head = raw[:end]
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
        length = next((int(v) for k, v in headers if k.lower() == "content-length"), 0)
        body = raw[end + 4 : end + 4 + length]
        responses.append(Response(status, headers, body, head))
        raw = raw[end + 4 + length :]
    return responses, raw


def exchange(port: int, data: bytes, *, timeout: float = 5.0, shut_write: bool = False) -> Exchange:
    """Send ``data`` on a fresh connection and read until the server closes or ``timeout``."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        got = Exchange(b"")
        try:
            s.sendall(data)
            if shut_write:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        chunks = []
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                s.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = s.recv(65536)
                if not chunk:
                    got.closed = True
                    break
                chunks.append(chunk)
        except TimeoutError:
            got.timed_out = True
        except OSError:  # reset: the server closed without reading everything we sent
            got.closed = True
        got.raw = b"".join(chunks)
        got.responses, got.rest = parse_responses(got.raw)
        return got


def port_of(server: Server) -> int:
    return int(server.base.rsplit(":", 1)[1])


@contextmanager
def guarded_uvicorn(app: object, **settings: object) -> Iterator[int]:
    """A uvicorn server with the connection guard's protocol serving ``app`` on a free loopback
    port (yielded), in a thread of this process; ``settings`` are more ``uvicorn.Config``
    arguments. Stopped at the end."""
    import threading

    import uvicorn

    from wasmgate.gateway.protocol import GuardedHttpToolsProtocol

    port = free_port()
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        host="127.0.0.1",
        port=port,
        http=GuardedHttpToolsProtocol,
        lifespan="off",
        log_level="warning",
        loop="asyncio",
        access_log=False,
        proxy_headers=False,  # as wasmgate serve: a wrapped application offers no answer_now
        **settings,  # type: ignore[arg-type]
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)
