"""wasi:keyvalue and wasi:config for components: the componentize-py counter
(examples/state/python) served by a real server on loopback, on SQLite and Redis stores."""

from __future__ import annotations

import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from gateway_support import running_server
from state_support import build_counter_py, free_port


@pytest.fixture(scope="module")
def counter_py() -> Path:
    return build_counter_py()


def _site(tmp_path: Path, counter_py: Path) -> Path:
    shutil.copy(counter_py, tmp_path / "counter-py.wasm")
    (tmp_path / "secret.txt").write_text("file-secret-42\n")
    toml = tmp_path / "modules.toml"
    toml.write_text(
        '[[module]]\nroute = "/..."\nmodule = "counter-py.wasm"\n'
        'key_value_stores = ["default", "cache", "ghost", "down"]\n'
        "[module.variables]\n"
        'greeting = "hello"\n'
        'token = { env = "KV_TEST_TOKEN", secret = true }\n'
        'from_file = { file = "secret.txt" }\n'
    )
    return toml


def test_component_stores_grants_and_config(
    tmp_path: Path, counter_py: Path, redis_url: str
) -> None:
    toml = _site(tmp_path, counter_py)
    rc = tmp_path / "runtime-config.toml"
    rc.write_text(
        f'[key_value_store.cache]\ntype = "redis"\nurl = "{redis_url}"\n'
        f'prefix = "c:{uuid.uuid4().hex}:"\n'
        f'[key_value_store.down]\ntype = "redis"\nurl = "redis://:pw9@127.0.0.1:{free_port()}"\n'
        "timeout = 0.5\n"
    )
    env = {"KV_TEST_TOKEN": "env-secret-17"}
    args = ("--runtime-config-file", str(rc), "--state-dir", str(tmp_path / "state"))
    with running_server(toml, *args, env=env) as s:

        def get(path: str) -> httpx.Response:
            return httpx.get(s.base + path, timeout=60)

        assert get("/count").text == "count=1\n"
        assert get("/count").text == "count=2\n"
        assert get("/count?store=cache").text == "count=1\n"
        r = get("/count?store=nope")
        assert (r.status_code, r.text) == (403, "error=Error_AccessDenied \n")
        r = get("/count?store=ghost")
        assert (r.status_code, r.text) == (404, "error=Error_NoSuchStore \n")
        r = get("/count?store=down")  # an error value, and the route keeps serving
        assert r.status_code == 503
        assert r.text == "error=Error_Other store 'down': increment: Redis server unreachable\n"
        assert get("/count").text == "count=3\n"
        assert get("/batch").text.splitlines() == [
            "get-many [('b00', b'0'), None, ('b24', b'24')]",
            "list-keys 25 keys",
            "after delete-many None False",
            "get b'\\x00\\xff'",
        ]
        with ThreadPoolExecutor(8) as pool:
            cas = list(pool.map(lambda _: get("/cas").text, range(24)))
        assert sorted(int(t.strip().removeprefix("cas=")) for t in cas) == list(range(1, 25))
        assert get("/config").text == (
            "from_file=file-secret-42\ngreeting=hello\ntoken=env-secret-17\n"
        )
        assert get("/config/greeting").text == "greeting=hello\n"
        assert get("/config/absent").text == "absent=None\n"
        assert (tmp_path / "state" / "default.db").exists()
    log = s.output()
    assert "env-secret-17" not in log
    assert "file-secret-42" not in log


def test_component_counts_exactly_across_two_workers(tmp_path: Path, counter_py: Path) -> None:
    toml = _site(tmp_path, counter_py)
    env = {"KV_TEST_TOKEN": "x"}
    state = tmp_path / "state"
    with running_server(toml, "--workers", "2", "--state-dir", str(state), env=env) as s:

        def one(_: int) -> int:
            r = httpx.get(s.base + "/count", timeout=120)
            assert r.status_code == 200, r.text
            return int(r.text.strip().removeprefix("count="))

        with ThreadPoolExecutor(64) as pool:
            counts = list(pool.map(one, range(128)))
    assert sorted(counts) == list(range(1, 129))
