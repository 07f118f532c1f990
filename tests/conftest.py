"""Shared fixtures: guests built from source (cached), and the real CLI as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUESTS = ROOT / "tests" / "guests"
sys.path.insert(0, str(ROOT / "tools"))

from guestbuild import build  # noqa: E402


@pytest.fixture(scope="session")
def guest() -> Callable[[str], Path]:
    """``guest("hello")`` -> path of tests/guests/hello.{c,wat} built to wasm (cached)."""

    def get(name: str) -> Path:
        for suffix in (".c", ".wat"):
            src = GUESTS / f"{name}{suffix}"
            if src.exists():
                return build(src)
        raise FileNotFoundError(f"no guest source named {name}")

    return get


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("wasmgate-cache")


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def wasmgate(cache_dir: Path) -> Callable[..., Result]:
    """Run the real ``wasmgate`` CLI in a subprocess with a clean, known environment."""

    def run(
        *args: str | os.PathLike[str],
        input: bytes | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 60,
        cwd: Path | None = None,
    ) -> Result:
        full_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),
            "WASMGATE_CACHE_DIR": str(cache_dir),
            "HOST_SECRET": "do-not-leak",
        }
        full_env.update(env or {})
        cmd: Sequence[str] = [sys.executable, "-m", "wasmgate", *map(str, args)]
        proc = subprocess.run(
            cmd, input=input or b"", capture_output=True, env=full_env, timeout=timeout, cwd=cwd
        )
        return Result(
            proc.returncode,
            proc.stdout.decode("utf-8", "replace"),
            proc.stderr.decode("utf-8", "replace"),
        )

    return run


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``redis-server`` on a free loopback port for the session (tests/state_support)."""
    from state_support import redis_server

    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server.url
