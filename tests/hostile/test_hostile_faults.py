"""Load and faults: reload under load with a changing module, SIGTERM under load (and with a
guest that would sleep for ever), and a short run of ``benchmarks/soak.py``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from gateway_support import running_server, wat_guest

from .hostile_support import HOST_ENV, ROOT, exchange, guard_args, port_of

Guest = Callable[[str], Path]


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _version(n: int) -> bytes:
    import wasmtime

    return bytes(wasmtime.wat2wasm(wat_guest(f"Content-Type: text/plain\n\nv{n}".encode())))


def test_reload_under_load_loses_no_request(tmp_path: Path) -> None:
    """Four clients hammer a route while its module changes four times (SIGHUP each time, two
    worker processes) and a truncated module is tried once: every request is answered 200 by
    one whole version, and the last good version ends up serving."""
    module = tmp_path / "v.wasm"
    _write_atomically(module, _version(1))
    toml = tmp_path / "modules.toml"
    toml.write_text('[[module]]\nroute = "/v"\nmodule = "v.wasm"\n')
    with running_server(toml, "--workers", "2", "--threads", "2", *guard_args(), env=HOST_ENV) as s:
        bodies: Counter[str] = Counter()
        failures: list[str] = []
        stop = threading.Event()

        def client() -> None:
            with httpx.Client(base_url=s.base, timeout=30) as c:
                while not stop.is_set():
                    try:
                        r = c.get("/v")
                    except httpx.HTTPError as e:
                        failures.append(repr(e))
                        continue
                    if r.status_code != 200:
                        failures.append(f"{r.status_code} {r.text!r}")
                    bodies[r.text] += 1

        threads = [threading.Thread(target=client) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            for n in range(2, 6):
                time.sleep(0.3)
                _write_atomically(module, _version(n))
                s.proc.send_signal(signal.SIGHUP)
            time.sleep(0.3)
            _write_atomically(module, _version(6)[:40])  # truncated: must be refused
            s.proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 15
            while "reload failed" not in s.output():  # the master refused it
                assert time.monotonic() < deadline, s.output()[-3000:]
                time.sleep(0.05)
            time.sleep(0.3)
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert failures == []
        assert sum(bodies.values()) > 50
        assert set(bodies) <= {f"v{n}" for n in range(1, 6)}
        assert "v5" in bodies
        for _ in range(10):  # both workers serve the last good version
            r = httpx.get(s.base + "/v", headers={"Connection": "close"})
            assert r.text == "v5"
        assert "invalid module" in s.output()


def _hog_site(tmp_path: Path, hostile_guest: Guest) -> Path:
    (tmp_path / "hog.wasm").write_bytes(hostile_guest("hog").read_bytes())
    toml = tmp_path / "modules.toml"
    toml.write_text(
        '[[module]]\nroute = "/slow"\nmodule = "hog.wasm"\ntimeout = "10s"\n\n'
        '[[module]]\nroute = "/stuck"\nmodule = "hog.wasm"\ntimeout = "1s"\n'
    )
    return toml


def test_sigterm_drains_in_flight_requests_under_load(tmp_path: Path, hostile_guest: Guest) -> None:
    """Six requests in flight (two running, four queued, on two worker processes): SIGTERM lets
    every one finish with 200, new connections are refused at once (before the fix the parent's
    copy of the listening socket kept accepting them, unanswered, until the drain ended), and
    the server exits 0."""
    toml = _hog_site(tmp_path, hostile_guest)
    with running_server(toml, "--workers", "2", "--threads", "1", *guard_args(), env=HOST_ENV) as s:
        port = port_of(s)
        results: list[int] = []

        def slow() -> None:
            r = exchange(
                port,
                b"GET /slow?sleep&500 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                timeout=30,
            )
            results.extend(x.status for x in r.responses)

        threads = [threading.Thread(target=slow) for _ in range(6)]
        for t in threads:
            t.start()
        time.sleep(0.3)
        s.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        with pytest.raises(ConnectionRefusedError):  # draining: new clients are refused
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        for t in threads:
            t.join()
        assert results == [200] * 6
        assert s.proc.wait(15) == 0


def test_sigterm_with_a_guest_sleeping_for_ever(tmp_path: Path, hostile_guest: Guest) -> None:
    """A guest asleep in poll_oneoff for ~36 years: its request ends at its 1 s deadline (504)
    and the server still shuts down at once. (Before the fix the worker thread stayed blocked,
    and graceful shutdown waited for it for ever.)"""
    toml = _hog_site(tmp_path, hostile_guest)
    with running_server(toml, "--workers", "1", *guard_args(), env=HOST_ENV) as s:
        port = port_of(s)
        results: list[int] = []
        t = threading.Thread(
            target=lambda: results.extend(
                r.status
                for r in exchange(
                    port, b"GET /stuck?sleep HTTP/1.1\r\nHost: x\r\n\r\n", timeout=30
                ).responses
            )
        )
        started = time.monotonic()
        t.start()
        time.sleep(0.3)
        s.proc.send_signal(signal.SIGTERM)
        t.join()
        assert results == [504]
        assert s.proc.wait(15) == 0
        assert time.monotonic() - started < 5
        assert "guest timed out after 1s" in s.output()


def test_soak_short(tmp_path: Path) -> None:
    """benchmarks/soak.py for 5 s: good routes see zero errors while hostile guests and abusive
    clients run alongside; the server's memory comes back and it shuts down cleanly."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "soak.py"), "--duration", "5", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    print(json.dumps(report, indent=1))
    assert report["good_errors"] == 0
    assert report["good"]["requests"] > 0
    assert report["hostile"]["requests"] > 0
    assert report["hostile_unexpected"] == []
    assert report["still_serving"]
    assert report["server_exit_status"] == 0
    rss = report["rss_kib"]
    assert rss["after"] < rss["baseline"] + 64 * 1024
