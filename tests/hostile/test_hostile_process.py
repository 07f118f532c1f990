"""Crashed processes and operators' mistakes (issue 12, items 3 and 4): workers die with their
master and leave nothing behind; a taken address stops start-up at once with one line and exit
status 1; a worker restarted while modules.toml is broken or being edited serves the master's
validated configuration, and restarts back off."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from gateway_support import Server, running_server, wat_guest

from .hostile_support import HOST_ENV, wait_for_log

Guest = Callable[[str], Path]


def _site(tmp_path: Path, text: str = "one") -> Path:
    (tmp_path / "v.wat").write_text(wat_guest(f"Content-Type: text/plain\n\n{text}".encode()))
    toml = tmp_path / "modules.toml"
    toml.write_text('[[module]]\nroute = "/v"\nmodule = "v.wat"\n')
    return toml


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _workers(server: Server, count: int) -> list[int]:
    """The worker pids (spawned processes whose command line names the worker entry)."""
    deadline = time.monotonic() + 20
    while True:
        found = []
        for child in _children(server.proc.pid):
            try:
                cmd = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if b"multiprocessing" in cmd and b"resource_tracker" not in cmd:
                found.append(child)
        if len(found) >= count:
            return found
        assert time.monotonic() < deadline, f"workers not found: {found}"
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose.
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def _run_dir(pid: int) -> Path:
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    for entry in environ:
        if entry.startswith(b"PROMETHEUS_MULTIPROC_DIR="):
            return Path(entry.split(b"=", 1)[1].decode()).parent
    raise AssertionError("no metrics directory in the worker's environment")


def _serve(toml: Path, listen: str, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "wasmgate", "serve", "-c", str(toml), "-l", listen, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def test_workers_die_with_their_master_and_clean_up(tmp_path: Path) -> None:
    toml = _site(tmp_path)
    with running_server(toml, "--workers", "2", env=HOST_ENV) as s:
        workers = _workers(s, 2)
        run_dir = _run_dir(workers[0])
        assert run_dir.is_dir()
        s.proc.kill()  # kill -9: no chance to clean up or forward anything
        s.proc.wait()
        deadline = time.monotonic() + 10
        while any(_alive(w) for w in workers):
            assert time.monotonic() < deadline, ([w for w in workers if _alive(w)], s.output())
            time.sleep(0.1)
        while run_dir.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not run_dir.exists(), sorted(os.listdir(run_dir))
        # The port is free again: a new server starts on it.
        port = s.base.rsplit(":", 1)[1]
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", int(port)))


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_taken_port_stops_start_up_with_one_line(tmp_path: Path, workers: str) -> None:
    toml = _site(tmp_path)
    with running_server(toml, "--workers", "2", env=HOST_ENV) as s:
        listen = s.base.split("//", 1)[1]
        started = time.monotonic()
        r = _serve(toml, listen, "--workers", workers)
        assert time.monotonic() - started < 20
        assert r.returncode == 1
        assert r.stderr.strip() == f"wasmgate: error: {listen} is already in use", r.stderr
        assert "listening" not in r.stdout + r.stderr


def test_a_stranger_sharing_the_port_is_refused(tmp_path: Path) -> None:
    """A program listening with SO_REUSEPORT would have been joined silently, the kernel
    splitting traffic between it and wasmgate."""
    toml = _site(tmp_path)
    with socket.socket() as stranger:
        stranger.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        stranger.bind(("127.0.0.1", 0))
        stranger.listen()
        listen = f"127.0.0.1:{stranger.getsockname()[1]}"
        r = _serve(toml, listen, "--workers", "2")
    assert r.returncode == 1
    assert r.stderr.strip() == f"wasmgate: error: {listen} is already in use", r.stderr


def _answers(base: str, n: int = 20) -> set[str]:
    out = set()
    for _ in range(n):  # fresh connections: the kernel spreads them over both workers
        r = httpx.get(base + "/v", timeout=5, headers={"Connection": "close"})
        out.add(f"{r.status_code} {r.text}")
    return out


def test_restarted_worker_serves_the_masters_configuration(tmp_path: Path) -> None:
    toml = _site(tmp_path)
    with running_server(toml, "--workers", "2", env=HOST_ENV) as s:
        # Both workers up first (the server answers as soon as one is): a worker killed while
        # starting would never log its first start-up, and the count below would be off.
        wait_for_log(s, r"Application startup complete(.|\n)*Application startup complete", 20)
        victim = _workers(s, 2)[0]
        # Both workers up first: one killed before its own start-up completes never logs it.
        wait_for_log(
            s, r"Application startup complete(.|\n)*Application startup complete", timeout=20
        )
        # Edited but valid (a new route), then broken: neither reaches a restarted worker.
        (tmp_path / "w.wat").write_text(wat_guest(b"Content-Type: text/plain\n\ntwo"))
        toml.write_text('[[module]]\nroute = "/w"\nmodule = "w.wat"\n')
        os.kill(victim, signal.SIGKILL)
        wait_for_log(s, r"worker \d exited \(status -9\); restarting it in 0\.5s")
        wait_for_log(
            s,
            r"Application startup complete(.|\n)*Application startup complete"
            r"(.|\n)*Application startup complete",
            timeout=20,
        )
        assert _answers(s.base) == {"200 one"}
        # The module file itself broken on disk after the master checked it: a restarted
        # worker loads the master's copy (issue 12), not the file.
        (tmp_path / "v.wat").write_text("(module")
        toml.write_text("[[module]\nbroken")
        os.kill(_workers(s, 2)[0], signal.SIGKILL)
        time.sleep(1.5)
        _workers(s, 2)
        assert _answers(s.base) == {"200 one"}
        assert "Traceback" not in s.output()
        # A reload of the broken file is refused once, by the master; the workers keep theirs.
        s.proc.send_signal(signal.SIGHUP)
        wait_for_log(s, r"reload failed, keeping the running configuration: .*invalid TOML")
        assert _answers(s.base) == {"200 one"}


def test_crashing_worker_restarts_back_off(tmp_path: Path) -> None:
    toml = _site(tmp_path)
    with running_server(toml, "--workers", "2", env=HOST_ENV) as s:
        deadline = time.monotonic() + 20
        while s.output().count("Application startup complete") < 2:  # both workers are up
            assert time.monotonic() < deadline, s.output()
            time.sleep(0.05)
        # What the workers load breaks (the master's copies: a worker never reads the operator's
        # files), so a restarted worker cannot start.
        for copy in (_run_dir(_workers(s, 2)[0]) / "modules").iterdir():
            copy.write_text("(module")
        os.kill(_workers(s, 2)[0], signal.SIGKILL)
        # The connections a killed worker held die with it. From then on every request is
        # answered by the other worker: one that fails to start is never given connections
        # (its socket listens only once it is ready), however many times it is restarted.
        wait_for_log(s, r"worker \d exited \(status -9\)")
        until = time.monotonic() + 3.5
        answers = []
        while time.monotonic() < until:
            r = httpx.get(s.base + "/v", timeout=5, headers={"Connection": "close"})
            answers.append(f"{r.status_code} {r.text}")
            time.sleep(0.02)
        assert set(answers) == {"200 one"}
        out = s.output()
        restarts = re.findall(
            r"worker (\d) exited \(status -?\d+\); restarting it in ([\d.]+)s", out
        )
        assert len({index for index, _ in restarts}) == 1, out[-3000:]  # only the one killed
        delays = [float(d) for _, d in restarts]
        # 0.5 + 1 + 2 s: three or four restarts in 4 s, not dozens.
        assert 2 <= len(delays) <= 4, out[-3000:]
        assert delays[:3] == [0.5, 1.0, 2.0][: len(delays[:3])]
        assert "Traceback" not in out
        assert re.search(r"worker \d cannot start: .*v\.wat", out)
        assert httpx.get(s.base + "/v", timeout=5).text == "one"  # the other worker serves
