"""WAGI routes with key-value stores, through a real server on loopback (``wasmgate serve``):
grants, the ``wasmgate_kv`` codes, exact counts under concurrency across two workers,
persistence across a restart, two servers sharing one Redis, and a Redis that is down."""

from __future__ import annotations

import shutil
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from gateway_support import running_server
from state_support import free_port

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from guestbuild import build  # noqa: E402


@pytest.fixture(scope="module")
def guests() -> dict[str, Path]:
    return {
        name: build(ROOT / "examples" / "state" / f"{name}.c") for name in ("counter", "kvtool")
    }


def _site(tmp_path: Path, guests: dict[str, Path], extra: str = "") -> Path:
    for path in guests.values():
        shutil.copy(path, tmp_path / path.name)
    toml = tmp_path / "modules.toml"
    toml.write_text(
        '[[module]]\nroute = "/counter"\nmodule = "counter.wasm"\n'
        'key_value_stores = ["default", "cache", "ghost"]\n'
        '[[module]]\nroute = "/kv"\nmodule = "kvtool.wasm"\n'
        'key_value_stores = ["default", "cache"]\n'
        '[[module]]\nroute = "/none"\nmodule = "kvtool.wasm"\n' + extra
    )
    return toml


def _runtime(tmp_path: Path, redis_url: str, prefix: str, **limits: int) -> Path:
    extra = "".join(f"{k} = {v}\n" for k, v in limits.items())
    rc = tmp_path / "runtime-config.toml"
    rc.write_text(
        f'[key_value_store.default]\ntype = "sqlite"\npath = "data/default.db"\n{extra}'
        f'[key_value_store.cache]\ntype = "redis"\nurl = "{redis_url}"\nprefix = "{prefix}"\n'
        f"{extra}"
    )
    return rc


def _kv(base: str, script: str, route: str = "/kv") -> list[str]:
    r = httpx.post(base + route, content=script.encode(), timeout=30)
    assert r.status_code == 200, r.text
    return r.text.splitlines()


def test_codes_grants_and_limits(tmp_path: Path, guests: dict[str, Path], redis_url: str) -> None:
    toml = _site(tmp_path, guests)
    rc = _runtime(tmp_path, redis_url, f"t:{uuid.uuid4().hex}:", max_value_bytes=1000)
    with running_server(toml, "--runtime-config-file", str(rc)) as s:
        assert "no store 'ghost' is configured" in s.output()
        for store in ("default", "cache"):
            lines = _kv(
                s.base,
                f"exists {store} a\nget {store} a 10\nset {store} a hello\n"
                f"exists {store} a\nget {store} a 10\nget {store} a 3\n"
                f"setn {store} big 1000\nsetn {store} big 1001\n"
                f"incr {store} n 5\nincr {store} n -2\nincr {store} a 1\n"
                f"del {store} a\nexists {store} a\nbadkey {store}\noob {store} k\n",
            )
            assert lines == [
                "exists rc=0 out=0",
                "get rc=3 len=2863311530 value=",
                "set rc=0",
                "exists rc=0 out=1",
                "get rc=0 len=5 value=hello",
                "get rc=4 len=5 value=",
                "setn rc=0",
                "setn rc=7",
                "incr rc=0 value=5",
                "incr rc=0 value=3",
                "incr rc=7 value=-1",
                "del rc=0",
                "exists rc=0 out=0",
                "badkey rc=6",
                "oob rc=5",
            ], store
        # Not granted: access-denied, whether or not the store exists; granted but unknown.
        assert _kv(s.base, "get other a 10\nset cache a b\n", route="/none") == [
            "get rc=2 len=2863311530 value=",
            "set rc=2",
        ]
        r = httpx.get(s.base + "/counter?store=ghost", timeout=30)
        assert (r.status_code, r.text) == (404, "error=1\n")
        r = httpx.get(s.base + "/counter?store=nope", timeout=30)
        assert (r.status_code, r.text) == (403, "error=2\n")
    assert (tmp_path / "data" / "default.db").exists()
    assert redis_url not in s.output()


def test_counter_is_exact_across_two_workers_and_a_restart(
    tmp_path: Path, guests: dict[str, Path]
) -> None:
    toml = _site(tmp_path, guests)
    state = tmp_path / "state"
    assert not state.exists()

    def hammer(base: str, n: int) -> list[int]:
        def one(_: int) -> int:
            r = httpx.get(base + "/counter", timeout=60)
            assert r.status_code == 200, r.text
            return int(r.text.strip().removeprefix("count="))

        with ThreadPoolExecutor(64) as pool:
            return list(pool.map(one, range(n)))

    with running_server(toml, "--workers", "2", "--state-dir", str(state)) as s:
        counts = hammer(s.base, 256)
        assert sorted(counts) == list(range(1, 257))  # every count once: no lost update
    assert (state / "default.db").exists()
    with running_server(toml, "--state-dir", str(state)) as s:
        r = httpx.get(s.base + "/counter", timeout=30)
        assert r.text == "count=257\n"


def test_two_servers_share_one_redis(
    tmp_path: Path, guests: dict[str, Path], redis_url: str
) -> None:
    toml = _site(tmp_path, guests)
    rc = _runtime(tmp_path, redis_url, f"share:{uuid.uuid4().hex}:")
    with (
        running_server(toml, "--runtime-config-file", str(rc)) as a,
        running_server(toml, "--runtime-config-file", str(rc)) as b,
    ):

        def one(i: int) -> int:
            base = (a, b)[i % 2].base
            r = httpx.get(base + "/counter?store=cache", timeout=60)
            assert r.status_code == 200, r.text
            return int(r.text.strip().removeprefix("count="))

        with ThreadPoolExecutor(64) as pool:
            counts = list(pool.map(one, range(200)))
        assert sorted(counts) == list(range(1, 201))


def test_redis_down_is_an_error_and_the_route_keeps_serving(
    tmp_path: Path, guests: dict[str, Path]
) -> None:
    toml = _site(tmp_path, guests)
    dead = f"redis://:s3cret-pw@127.0.0.1:{free_port()}/0"
    rc = tmp_path / "rc.toml"
    rc.write_text(f'[key_value_store.cache]\ntype = "redis"\nurl = "{dead}"\ntimeout = 0.5\n')
    with running_server(
        toml, "--runtime-config-file", str(rc), "--state-dir", str(tmp_path / "st")
    ) as s:
        for _ in range(3):
            r = httpx.get(s.base + "/counter?store=cache", timeout=30)
            assert (r.status_code, r.text) == (503, "error=7\n")
        r = httpx.get(s.base + "/counter", timeout=30)
        assert (r.status_code, r.text) == (200, "count=1\n")
    assert "s3cret" not in s.output()
    assert "unreachable" in s.output()
