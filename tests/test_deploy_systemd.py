"""The systemd unit (deploy/systemd/wasmgate.service): its stop matches the drain, its settings
are serve flags, ``systemd-analyze verify`` accepts it, and the service it describes runs: started
with the unit's command and environment, reloaded by its ExecReload signal, stopped by SIGTERM to
the main process alone (KillMode=mixed) within TimeoutStopSec, with status 0."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from gateway_support import free_port
from test_deploy_image import SERVE_VARIABLES
from wasmgate.config import GatewayConfig

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "deploy" / "systemd" / "wasmgate.service"
EXAMPLES = ROOT / "examples" / "wagi"


def _unit() -> list[tuple[str, str, str]]:
    entries, section = [], ""
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        entries.append((section, key, value))
    return entries


def _values(key: str) -> list[str]:
    return [v for _, k, v in _unit() if k == key]


def _environment() -> dict[str, str]:
    return dict(v.split("=", 1) for v in _values("Environment"))


def test_stop_fits_the_drain() -> None:
    drain = GatewayConfig(modules_toml=Path("modules.toml")).graceful_timeout
    assert float(_values("TimeoutStopSec")[0]) >= drain + 5
    assert _values("KillMode") == ["mixed"], "SIGTERM to the main process, which forwards it"
    assert _values("KillSignal") == ["SIGTERM"]
    assert _values("ExecReload") == ["/bin/kill -HUP $MAINPID"]
    assert "yes" not in _values("MemoryDenyWriteExecute"), "Wasmtime's code must be executable"


def test_settings_are_serve_flags() -> None:
    env = _environment()
    assert set(env) <= SERVE_VARIABLES, set(env) - SERVE_VARIABLES
    # The cache and log directories are the ones systemd makes for the service.
    assert env["WASMGATE_CACHE_DIR"] == "%C/" + _values("CacheDirectory")[0]
    assert env["WASMGATE_LOG_DIR"] == "%L/" + _values("LogsDirectory")[0]


def _runnable_unit(tmp: Path) -> Path:
    """The unit with its ExecStart pointing at this checkout's wasmgate."""
    (exec_start,) = _values("ExecStart")
    binary = Path(sys.executable).parent / "wasmgate"
    text = UNIT.read_text().replace(exec_start.split()[0], str(binary))
    unit = tmp / UNIT.name
    unit.write_text(text)
    return unit


def test_systemd_analyze_accepts_it(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    proc = subprocess.run(
        [analyze, "verify", "--man=no", str(_runnable_unit(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert UNIT.name not in proc.stderr, proc.stderr  # no "ignoring" warning about a line


def _get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as r:
        return int(r.status)


def test_the_service_starts_reloads_and_drains(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(EXAMPLES / "build.py")], check=True, capture_output=True)
    env = {
        k: v.replace("%C", str(tmp_path / "cache")).replace("%L", str(tmp_path / "log"))
        for k, v in _environment().items()
    }
    port = free_port()
    env.update(
        WASMGATE_MODULES_TOML=str(EXAMPLES / "modules.toml"),
        WASMGATE_LISTEN=f"127.0.0.1:{port}",
        WASMGATE_METRICS_LISTEN=f"127.0.0.1:{free_port()}",
        WASMGATE_WORKERS="2",
        PATH="/usr/bin:/bin",
    )
    (exec_start,) = _values("ExecStart")
    argv = [str(Path(sys.executable).parent / "wasmgate"), *exec_start.split()[1:]]
    log = tmp_path / "service.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if _get(f"http://127.0.0.1:{port}/hello") == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        # ExecReload: SIGHUP to the main process; every worker reloads.
        assert _values("ExecReload")[0].split()[1] == "-HUP"
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while len(re.findall(r"SIGHUP: reloading", log.read_text())) < 2:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert _get(f"http://127.0.0.1:{port}/hello") == 200
        # KillMode=mixed: SIGTERM to the main process only.
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(float(_values("TimeoutStopSec")[0])) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (tmp_path / "cache").is_dir()
