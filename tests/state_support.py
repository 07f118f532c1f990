"""For the state tests: a real ``redis-server`` started on a free loopback port and stopped
after, and the componentize-py counter (examples/state/python) built once per source version.

Without the ``redis-server`` binary the Redis tests are skipped, unless ``CI`` is set (then they
fail: ``.ci/run`` installs it through tools/install-toolchains.sh). Without the Python component
toolchain (examples/http/README.md) the counter's tests are skipped.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STATE_EXAMPLE = ROOT / "examples" / "state"
TOOLS = ROOT / ".cache" / "component-tools" / "node_modules" / "@bytecodealliance"
COMPONENTIZE_PY = ROOT / ".cache" / "componentize-py" / "bin" / "componentize-py"
COUNTER_SOURCES = (
    "python/app.py",
    "python/build.sh",
    "wit/keyvalue/package.wit",
    "wit/config/package.wit",
)


def build_counter_py() -> Path:
    """counter-py.wasm, built on first use (cached by the hash of its sources); skips the test
    when the toolchain is not set up."""
    if not ((TOOLS / "jco").is_dir() and COMPONENTIZE_PY.exists()):
        pytest.skip("the Python component toolchain is not set up (examples/http/README.md)")
    key = hashlib.sha256(b"".join((STATE_EXAMPLE / n).read_bytes() for n in COUNTER_SOURCES))
    out = ROOT / ".cache" / "state-guests" / f"counter-py-{key.hexdigest()[:16]}.wasm"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        subprocess.run(
            ["bash", str(STATE_EXAMPLE / "python" / "build.sh"), str(tmp)],
            check=True,
            capture_output=True,
        )
        os.replace(tmp, out)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            if os.environ.get("CI"):
                pytest.fail("redis-server is not installed (tools/install-toolchains.sh)")
            pytest.skip("redis-server is not installed (tools/install-toolchains.sh)")
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.directory),
                "--protected-mode", "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


@contextmanager
def redis_server(directory: Path) -> Iterator[RedisServer]:
    server = RedisServer(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()
