"""Compile every module of the image's app at build time (the Dockerfile's ``RUN ... warm.py``).

It starts ``wasmgate serve`` itself, configured as the container will be (every ``WASMGATE_*``
variable of the image), with three differences: the compiled-artifact cache is ``WARM_CACHE`` (a
directory inside the image), it listens on a free loopback port, and serves no metrics. The
server compiles each module of modules.toml, with the engine settings each route needs (fuel or
not), into that cache before it answers ``/healthz``; then it is stopped with SIGTERM. So the
cache holds what a pod's start-up will look up, by construction. The entry point copies it into
the writable cache volume, and the pod starts without compiling anything.

Fails (exit status 1) if the server does not start, does not stop cleanly, or left no artifact.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

START_TIMEOUT = 300.0  # seconds: compiling large modules on a slow builder takes a while


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 (a loopback URL)
            return bool(r.status == 200)
    except OSError:
        return False


def main() -> int:
    seed = os.environ.get("WARM_CACHE")
    if not seed:
        print("warm: WARM_CACHE is not set", file=sys.stderr)
        return 1
    cache = Path(seed)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "WASMGATE_METRICS_LISTEN"}
    env.update(
        WASMGATE_CACHE_DIR=str(cache),
        WASMGATE_LISTEN=f"127.0.0.1:{port}",
        WASMGATE_WORKERS="1",
        WASMGATE_WATCH="0",
        WASMGATE_NO_CACHE="0",
    )
    env.pop("WASMGATE_TLS_CERT", None)
    env.pop("WASMGATE_TLS_KEY", None)
    proc = subprocess.Popen([sys.executable, "-m", "wasmgate", "serve"], env=env)
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while not _healthy(f"http://127.0.0.1:{port}/healthz"):
            if proc.poll() is not None:
                print(f"warm: wasmgate serve exited ({proc.returncode})", file=sys.stderr)
                return 1
            if time.monotonic() > deadline:
                print("warm: wasmgate serve did not start", file=sys.stderr)
                return 1
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        status = proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    artifacts = sorted(p.name for p in cache.glob("*.cwasm"))
    if status != 0 or not artifacts:
        print(f"warm: exit status {status}, {len(artifacts)} artifacts", file=sys.stderr)
        return 1
    for p in cache.glob("*.cwasm"):
        p.chmod(0o644)
    cache.chmod(0o755)
    print(f"warm: {len(artifacts)} compiled artifacts in {cache}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
