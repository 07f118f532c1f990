"""A reload (SIGHUP, ``--watch``) reads ``--runtime-config-file`` again, through a real server on
loopback: requests see a store label moved to another SQLite file; an invalid runtime config
keeps the old one serving with one log line and no secret; a store whose config did not change
keeps its connections, and a removed or changed one is closed; with ``--workers``, the master
validates and the workers (and a worker restarted while the file is broken) load its copy."""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from gateway_support import Server, running_server
from state_support import free_port

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from guestbuild import build  # noqa: E402


@pytest.fixture(scope="module")
def counter() -> Path:
    return build(ROOT / "examples" / "state" / "counter.c")


def _site(tmp_path: Path, counter: Path) -> Path:
    (tmp_path / "counter.wasm").write_bytes(counter.read_bytes())
    toml = tmp_path / "modules.toml"
    toml.write_text(
        '[[module]]\nroute = "/counter"\nmodule = "counter.wasm"\n'
        'key_value_stores = ["default", "cache", "down"]\n'
    )
    return toml


def _write(path: Path, text: str) -> None:
    """Write ``text`` with a modification time no earlier write had (``--watch`` compares
    modification times)."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    stamp = max(time.time_ns(), before + 1_000_000_000)
    os.utime(path, ns=(stamp, stamp))


def _count(base: str, store: str | None = None) -> tuple[int, str]:
    query = "" if store is None else f"?store={store}"
    r = httpx.get(base + "/counter" + query, timeout=60)
    return r.status_code, r.text


def _hits(db: Path) -> int | None:
    conn = sqlite3.connect(db)
    try:
        row = conn.execute("SELECT value FROM kv WHERE key = 'hits'").fetchone()
    finally:
        conn.close()
    return None if row is None else int(row[0])


def _wait(s: Server, what: Callable[[str], bool], timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        out = s.output()
        if what(out):
            return out
        assert time.monotonic() < deadline, out[-3000:]
        time.sleep(0.05)


def _open_files(pid: int) -> set[str]:
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            continue
    return out


def _redis_client_ids(pid: int, redis_url: str) -> set[int]:
    """The ids Redis gives the connections process ``pid`` holds to it (by their local ports)."""
    import redis

    inodes = {
        link[len("socket:[") : -1] for link in _open_files(pid) if link.startswith("socket:[")
    }
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    client = redis.Redis.from_url(redis_url)
    try:
        return {
            int(c["id"])
            for c in client.client_list()
            if int(str(c["addr"]).rsplit(":", 1)[1]) in ports
        }
    finally:
        client.close()


def test_sighup_rereads_the_runtime_config(tmp_path: Path, counter: Path, redis_url: str) -> None:
    toml = _site(tmp_path, counter)
    rc = tmp_path / "runtime-config.toml"
    cache = (
        f'[key_value_store.cache]\ntype = "redis"\nurl = "{redis_url}"\n'
        f'prefix = "reload:{uuid.uuid4().hex}:"\n'
    )
    down = f"redis://:s3cret-pw@127.0.0.1:{free_port()}/0"
    _write(
        rc,
        '[key_value_store.default]\ntype = "sqlite"\npath = "a.db"\n'
        + cache
        + f'[key_value_store.down]\ntype = "redis"\nurl = "{down}"\ntimeout = 0.5\n',
    )
    args = ("--runtime-config-file", str(rc), "--state-dir", str(tmp_path / "state"))
    with running_server(toml, *args) as s:
        assert _count(s.base) == (200, "count=1\n")
        assert _count(s.base) == (200, "count=2\n")
        assert _count(s.base, "cache") == (200, "count=1\n")
        assert _count(s.base, "down") == (503, "error=7\n")
        kept = _redis_client_ids(s.proc.pid, redis_url)
        assert kept  # the cache store's connection

        # default moves to another file; down goes; cache stays as it was.
        _write(rc, '[key_value_store.default]\ntype = "sqlite"\npath = "b.db"\n' + cache)
        s.proc.send_signal(signal.SIGHUP)
        _wait(s, lambda out: "reloaded: serving" in out)
        assert _count(s.base) == (200, "count=1\n")
        assert _count(s.base) == (200, "count=2\n")
        assert _count(s.base, "cache") == (200, "count=2\n")
        assert _count(s.base, "down") == (404, "error=1\n")  # granted, no longer configured
        # The unchanged store kept its connection; the changed and removed ones were closed.
        assert _redis_client_ids(s.proc.pid, redis_url) == kept
        out = _wait(s, lambda out: "store 'down': closed" in out)
        assert "store 'default': closed" in out
        assert "store 'cache': closed" not in out
        files = _open_files(s.proc.pid)
        assert str(tmp_path / "b.db") in files
        assert str(tmp_path / "a.db") not in files

        # An invalid runtime config: one line each, the old configuration keeps serving.
        bad = [
            '[key_value_store.default]\ntype = "redis"\nurl = "http://:s3cret-pw@h/0"\n',
            '[key_value_store.default\ntype = "sqlite"\n# s3cret-pw\n',
        ]
        for n, text in enumerate(bad, 1):
            _write(rc, text)
            s.proc.send_signal(signal.SIGHUP)
            out = _wait(s, lambda out, n=n: out.count("reload failed") == n)
            assert _count(s.base) == (200, f"count={2 + n}\n")
        failed = [line for line in out.splitlines() if "reload failed" in line]
        assert len(failed) == 2
        assert all(str(rc) in line for line in failed), failed
        assert "url must be" in failed[0]
        assert "invalid TOML" in failed[1]
        assert out.count("reloaded: serving") == 1
    out = s.output()
    assert "s3cret" not in out
    assert redis_url not in out
    assert _hits(tmp_path / "a.db") == 2
    assert _hits(tmp_path / "b.db") == 4


def test_watch_rereads_the_runtime_config(tmp_path: Path, counter: Path) -> None:
    toml = _site(tmp_path, counter)
    rc = tmp_path / "rc.toml"
    _write(rc, '[key_value_store.default]\ntype = "sqlite"\npath = "a.db"\n')
    with running_server(toml, "--runtime-config-file", str(rc), "--watch") as s:
        assert _count(s.base) == (200, "count=1\n")
        _write(rc, '[key_value_store.default]\ntype = "sqlite"\npath = "b.db"\n')
        _wait(s, lambda out: "reloaded: serving" in out)
        assert _count(s.base) == (200, "count=1\n")
        assert _count(s.base) == (200, "count=2\n")
    assert _hits(tmp_path / "a.db") == 1
    assert _hits(tmp_path / "b.db") == 2


def _children(pid: int) -> set[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return {int(p) for p in text.split()}


def _workers(master: int) -> set[int]:
    out = set()
    for pid in _children(master):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:
            out.add(pid)
    return out


def test_workers_reload_the_masters_copy(tmp_path: Path, counter: Path) -> None:
    """--workers 2 --watch: the master validates the changed runtime config and both workers
    load it (exact counts in the new file); an invalid one keeps both on the old one, and a
    worker restarted meanwhile starts from the master's copy, not from the broken file."""
    toml = _site(tmp_path, counter)
    rc = tmp_path / "rc.toml"
    _write(rc, '[key_value_store.default]\ntype = "sqlite"\npath = "a.db"\n')

    def hammer(base: str, n: int) -> list[int]:
        def one(_: int) -> int:
            status, text = _count(base)
            assert status == 200, text
            return int(text.strip().removeprefix("count="))

        with ThreadPoolExecutor(32) as pool:
            return sorted(pool.map(one, range(n)))

    args = ("--workers", "2", "--watch", "--runtime-config-file", str(rc))
    with running_server(toml, *args) as s:
        assert hammer(s.base, 32) == list(range(1, 33))
        _write(rc, '[key_value_store.default]\ntype = "sqlite"\npath = "b.db"\n')
        _wait(s, lambda out: out.count("reloaded: serving") == 2)  # each worker once
        assert hammer(s.base, 64) == list(range(1, 65))

        _write(rc, '[key_value_store.default]\ntype = "sqlite"\npath = 7\n')
        out = _wait(s, lambda out: "reload failed" in out)
        assert "path must be a non-empty string" in out
        assert hammer(s.base, 32) == list(range(65, 97))

        workers = _workers(s.proc.pid)
        assert len(workers) == 2
        loads = s.output().count("serving 1 routes")
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while True:
            now = _workers(s.proc.pid)
            if len(now) == 2 and victim not in now:
                break
            assert time.monotonic() < deadline, s.output()[-3000:]
            time.sleep(0.1)
        (fresh,) = now - workers
        _wait(s, lambda out: out.count("serving 1 routes") == loads + 1)  # the new worker
        assert hammer(s.base, 64) == list(range(97, 161))
        assert str(tmp_path / "b.db") in _open_files(fresh)
        out = s.output()
        assert "cannot start" not in out
        assert out.count("reload failed") == 1
    assert _hits(tmp_path / "a.db") == 32
    assert _hits(tmp_path / "b.db") == 160
