"""Key-value stores and configuration for embedded components (issue 17): the grants of a served
route, from ``instantiate_component``'s keywords, on the same backends.

Guests: tests/guests/comp_state.wat (wasi:keyvalue store + atomics, wasi:config/store; always
built) and the componentize-py counter of examples/state/python (when its toolchain is set up),
which shares its store with a served route.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

import wasmgate
from conftest import GUESTS
from state_support import build_counter_py, free_port
from wasmgate import ComponentError, Variable
from wasmgate.config import GatewayConfig
from wasmgate.errors import ConfigError
from wasmgate.gateway import create_app

STATE = GUESTS / "comp_state.wat"


def _error(call: Any) -> Any:
    with pytest.raises(ComponentError) as err:
        call()
    return err.value.value


def test_granted_stores_count_and_the_grants_hold(tmp_path: Path) -> None:
    inst = wasmgate.instantiate_component(
        STATE, key_value_stores=["default", "ghost"], state_dir=tmp_path / "state"
    )
    assert inst.exports.count("default", 1) == 1
    assert inst.exports.count("default", 41) == 42
    assert _error(lambda: inst.exports.count("cache", 1)).tag == "access-denied"  # not granted
    assert _error(lambda: inst.exports.count("ghost", 1)).tag == "no-such-store"  # no backend
    assert (tmp_path / "state" / "default.db").is_file()
    again = wasmgate.instantiate_component(
        STATE, key_value_stores=["default"], state_dir=tmp_path / "state"
    )
    assert again.exports.count("default", 1) == 43  # the same store, as every server sees it


def test_nothing_is_granted_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    inst = wasmgate.instantiate_component(STATE)
    assert _error(lambda: inst.exports.count("default", 1)).tag == "access-denied"
    assert inst.exports.config("greeting") is None
    assert not (tmp_path / ".wasmgate").exists()  # nothing opened, nothing created


def test_variables_and_secrets(tmp_path: Path) -> None:
    variables = {"greeting": "hello", "token": Variable("s3cr3t-value", secret=True)}
    inst = wasmgate.instantiate_component(STATE, variables=variables)
    assert inst.exports.config("greeting") == "hello"
    assert inst.exports.config("token") == "s3cr3t-value"  # the guest gets it
    assert inst.exports.config("absent") is None
    assert "s3cr3t" not in repr(variables["token"])


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"key_value_stores": "default"}, TypeError, "a sequence of store labels"),
        ({"key_value_stores": ["Default"]}, ValueError, "lower-case letters"),
        ({"key_value_stores": [3]}, TypeError, "a label is a str"),
        ({"variables": {"Bad-Name": "x"}}, ValueError, "a name is lower-case"),
        ({"variables": {"token": 1234567}}, TypeError, "expected a str or a Variable"),
    ],
)
def test_grants_are_checked(kwargs: dict[str, Any], error: type, message: str) -> None:
    with pytest.raises(error, match=message) as err:
        wasmgate.instantiate_component(STATE, **kwargs)
    assert "1234567" not in str(err.value)  # a value is never quoted


def test_runtime_config_and_a_store_that_is_down(tmp_path: Path, redis_url: str) -> None:
    rc = tmp_path / "runtime-config.toml"
    rc.write_text(
        f'[key_value_store.cache]\ntype = "redis"\nurl = "{redis_url}"\nprefix = "embed:"\n'
        f'[key_value_store.down]\ntype = "redis"\nurl = "redis://:pw9@127.0.0.1:{free_port()}"\n'
        "timeout = 0.5\n"
        f'[key_value_store.local]\ntype = "sqlite"\npath = "local.db"\n'
    )
    inst = wasmgate.instantiate_component(
        STATE, key_value_stores=["cache", "down", "local"], runtime_config_file=rc
    )
    assert inst.exports.count("cache", 2) == 2
    assert inst.exports.count("local", 5) == 5
    assert (tmp_path / "local.db").is_file()  # relative to the runtime config file
    down = _error(lambda: inst.exports.count("down", 1))
    assert down.tag == "other"
    assert down.payload == "store 'down': increment: Redis server unreachable"
    assert inst.exports.count("cache", 1) == 3  # the instance keeps working
    broken = tmp_path / "broken.toml"
    broken.write_text('[key_value_store.x]\ntype = "memcached"\n')
    with pytest.raises(ConfigError, match="type must be"):
        wasmgate.instantiate_component(STATE, key_value_stores=["x"], runtime_config_file=broken)


@pytest.mark.anyio
async def test_the_counter_embedded_and_served_shares_its_store(tmp_path: Path) -> None:
    counter = build_counter_py()
    state_dir = tmp_path / "state"
    # the componentize-py counter links embedded (wasi:http, wasi:keyvalue, wasi:config and
    # the rest of its 30 imports from the same host), with its grants
    inst = wasmgate.instantiate_component(
        counter, key_value_stores=["default"], variables={"greeting": "hi"}, state_dir=state_dir
    )
    assert any("incoming-handler" in name for name in inst.exports)
    # the cheap guest counts "hits" in the store the counter serves from
    embedded = wasmgate.instantiate_component(
        STATE, key_value_stores=["default"], state_dir=state_dir
    )
    assert embedded.exports.count("default", 10) == 10
    toml = tmp_path / "modules.toml"
    (tmp_path / "counter-py.wasm").write_bytes(counter.read_bytes())
    toml.write_text(
        '[[module]]\nroute = "/..."\nmodule = "counter-py.wasm"\nkey_value_stores = ["default"]\n'
    )
    app = create_app(GatewayConfig(modules_toml=toml, state_dir=state_dir, threads=1))
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            r = await client.get("/count", timeout=120)
            assert (r.status_code, r.text) == (200, "count=11\n")
            r = await client.get("/count?store=other", timeout=120)
            assert (r.status_code, r.text) == (403, "error=Error_AccessDenied \n")
    finally:
        app.close()
    assert embedded.exports.count("default", 1) == 12
