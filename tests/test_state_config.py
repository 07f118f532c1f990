"""Parsing the state settings: runtime config (Spin's format), grants and variables in
modules.toml, and the deny-by-default rules of ``RouteState``."""

from __future__ import annotations

import gc
import logging
import threading
from pathlib import Path

import pytest

from wasmgate.errors import ConfigError
from wasmgate.state import runtime_config
from wasmgate.state.backends import StoreError
from wasmgate.state.grants import RouteState, Variable, active, current, parse_variables
from wasmgate.state.runtime_config import (
    StoreConfig,
    StoreRegistry,
    _Pool,
    parse_runtime_config,
    registry_for,
)
from wasmgate.wagi.manifest import parse_manifest


def _rc(text: str, tmp_path: Path) -> dict[str, object]:
    return dict(parse_runtime_config(text, base_dir=tmp_path, source="rc.toml"))


def test_runtime_config_spellings(tmp_path: Path) -> None:
    stores = parse_runtime_config(
        '[key_value_store.default]\ntype = "spin"\npath = "data/kv.db"\n'
        '[key_value_store.cache]\ntype = "redis"\nurl = "redis://:pw@127.0.0.1:1/0"\n'
        'prefix = "app:"\ntimeout = 0.5\nmax_value_bytes = 10\n',
        base_dir=tmp_path,
        source="rc.toml",
    )
    assert stores["default"].type == "sqlite"
    assert stores["default"].path == tmp_path / "data" / "kv.db"
    cache = stores["cache"]
    assert (cache.type, cache.prefix, cache.timeout) == ("redis", "app:", 0.5)
    assert cache.limits.max_value_bytes == 10
    assert "pw" not in repr(cache)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[key_value_store.x]\ntype = "mysql"\n', "type must be"),
        ('[key_value_store.x]\ntype = "redis"\nurl = "http://h"\n', "url must be"),
        ('[key_value_store.x]\ntype = "redis"\nurl = "redis://:pw@h"\nurll = 1\n', "'urll'"),
        ('[key_value_store.X]\ntype = "sqlite"\n', "lower-case"),
        ('[key_value_store.x]\ntype = "sqlite"\nmax_key_bytes = 0\n', "positive"),
        ('[sqlite_database.x]\ntype = "sqlite"\n', "unknown table"),
    ],
)
def test_runtime_config_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        _rc(text, tmp_path)
    assert message in str(e.value)
    assert "pw" not in str(e.value)


def test_default_store_without_a_runtime_config(tmp_path: Path) -> None:
    registry = StoreRegistry({}, tmp_path / "state")
    assert registry.configured("default")
    assert not registry.configured("cache")
    assert not (tmp_path / "state").exists()  # created on first use, not before
    registry.open("default").set("k", b"v")
    assert (tmp_path / "state" / "default.db").exists()
    registry.close()


def test_grants_deny_by_default(tmp_path: Path) -> None:
    registry = StoreRegistry({}, tmp_path)
    state = RouteState(registry, ("default", "ghost"), {})
    assert state.open("default").label == "default"
    with pytest.raises(StoreError) as e:
        state.open("cache")
    assert e.value.kind == "access-denied"
    with pytest.raises(StoreError) as e:
        state.open("ghost")
    assert e.value.kind == "no-such-store"
    assert state.missing() == ["ghost"]
    with pytest.raises(StoreError) as e:
        RouteState(registry, (), {}).open("default")
    assert e.value.kind == "access-denied"


def test_variables(tmp_path: Path) -> None:
    (tmp_path / "pw.txt").write_text("s3cret\n")

    def error(message: str) -> ConfigError:
        return ConfigError(message)

    variables = parse_variables(
        {
            "plain": "v",
            "from_env": {"env": "TOKEN", "secret": True},
            "from_file": {"file": "pw.txt"},
            "public_file": {"file": "pw.txt", "secret": False},
        },
        tmp_path,
        error,
        environ={"TOKEN": "tok-9"},
    )
    assert variables["plain"] == Variable("v")
    assert variables["from_env"].value == "tok-9"
    assert variables["from_env"].secret
    assert variables["from_file"].value == "s3cret"
    assert variables["from_file"].secret
    assert not variables["public_file"].secret
    shown = repr(dict(variables))
    assert "tok-9" not in shown
    assert shown.count("s3cret") == 1  # the public one only
    for bad, message in [
        ({"Bad": "v"}, "lower-case"),
        ({"x": {"env": "NOPE"}}, "has no NOPE"),
        ({"x": {"file": "missing.txt"}}, "cannot read"),
        ({"x": {"env": "TOKEN", "file": "pw.txt"}}, "exactly one"),
        ({"x": 3}, "a string or a table"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_variables(bad, tmp_path, error, environ={"TOKEN": "tok-9"})


def test_manifest_keys(tmp_path: Path) -> None:
    (tmp_path / "m.wasm").write_bytes(b"\0asm\1\0\0\0")
    manifest = parse_manifest(
        '[[module]]\nroute = "/a"\nmodule = "m.wasm"\nkey_value_stores = ["default", "cache"]\n'
        'variables = { greeting = "hi" }\n'
        '[[module]]\nroute = "/b"\nmodule = "m.wasm"\n',
        base_dir=tmp_path,
    )
    a, b = manifest.modules
    assert a.key_value_stores == ("default", "cache")
    assert a.variables["greeting"].value == "hi"
    assert b.key_value_stores == ()
    assert dict(b.variables) == {}
    assert not manifest.warnings
    with pytest.raises(ConfigError, match="key_value_stores"):
        parse_manifest(
            '[[module]]\nroute = "/a"\nmodule = "m.wasm"\nkey_value_stores = "default"\n',
            base_dir=tmp_path,
        )


def test_each_load_reads_the_runtime_config_and_shares_unchanged_backends(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rc = tmp_path / "rc.toml"
    rc.write_text(
        '[key_value_store.default]\ntype = "sqlite"\npath = "a.db"\n'
        '[key_value_store.other]\ntype = "sqlite"\n'
        '[key_value_store.gone]\ntype = "redis"\nurl = "redis://:pw@127.0.0.1:1/0"\n'
    )
    first = registry_for(rc, tmp_path / "state")
    a, other, _ = (first.open(x) for x in ("default", "other", "gone"))
    a.set("k", b"1")
    same = registry_for(rc, tmp_path / "state")  # read again, unchanged: the same backends
    assert same.open("default") is a
    assert same.open("other") is other
    rc.write_text(
        '[key_value_store.default]\ntype = "sqlite"\npath = "b.db"\n'
        '[key_value_store.other]\ntype = "sqlite"\n'
    )
    second = registry_for(rc, tmp_path / "state")
    b = second.open("default")
    assert b is not a
    assert b.get("k") is None
    assert second.open("other") is other
    assert not second.configured("gone")
    with caplog.at_level(logging.INFO, logger="wasmgate.state"):
        del first
        assert "closed" not in caplog.text  # ``same`` still names them
        same.close()
        closed = {r.getMessage() for r in caplog.records if "closed" in r.getMessage()}
    assert closed == {
        "store 'default': closed (no longer in the configuration)",
        "store 'gone': closed (no longer in the configuration)",
    }
    assert "pw" not in caplog.text
    assert second.open("other").get("k") is None  # still open, still working
    with pytest.raises(StoreError) as e:
        same.open("other")
    assert e.value.kind == "other"
    rc.write_text('[key_value_store.default]\ntype = "redis"\nurl = "http://:pw@h"\n')
    with pytest.raises(ConfigError) as ce:
        registry_for(rc, tmp_path / "state")
    assert "pw" not in str(ce.value)
    assert second.open("default") is b
    second.close()


def test_a_registry_given_the_text_does_not_read_the_file(tmp_path: Path) -> None:
    rc = tmp_path / "conf" / "rc.toml"  # never written: the text is a copy of it
    registry = registry_for(
        rc, tmp_path / "state", '[key_value_store.x]\ntype = "sqlite"\npath = "x.db"\n'
    )
    registry.open("x").set("k", b"v")
    assert (tmp_path / "conf" / "x.db").exists()  # relative to the file's folder all the same
    registry.close()


def test_the_pool_takes_releases_from_inside_its_own_lock(tmp_path: Path) -> None:
    """A registry is released when it is garbage, so the garbage collector may release one
    in a thread that holds the pool's lock: the release waits for the holder, never blocks."""
    pool = _Pool()
    key = StoreConfig("x", "sqlite", path=tmp_path / "x.db")
    pool.acquire((key,))
    pool.backend(key).set("k", b"v")
    with pool._locked():
        pool.release((key,))  # as the collector would, with the lock held by this thread
        assert pool._entries[key].backend is not None
    assert pool.open_labels() == []

    shared = {"x": StoreConfig("x", "sqlite", path=tmp_path / "y.db")}

    def churn(i: int) -> None:
        for _ in range(50):
            registry = StoreRegistry(shared, tmp_path)
            registry.open("x").increment("n", 1)
            if i % 2:
                registry.close()

    threads = [threading.Thread(target=churn, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    gc.collect()
    assert "x" not in runtime_config._POOL.open_labels()
    check = StoreRegistry(shared, tmp_path)
    assert check.open("x").get("n") == b"200"
    check.close()


def test_a_committed_load_retires_the_previous_one_once_its_runs_end(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """What a reload does: the new load commits, the old one's stores close when the last run
    on it ends, whether or not the old configuration is garbage yet."""
    rc = tmp_path / "rc.toml"
    rc.write_text(
        '[key_value_store.default]\ntype = "sqlite"\npath = "a.db"\n'
        '[key_value_store.x]\ntype = "sqlite"\n'
        '[key_value_store.same]\ntype = "sqlite"\npath = "same.db"\n'
    )
    first = registry_for(rc, tmp_path / "state")
    first.commit()
    old = RouteState(first, ("default", "x", "same"), {})

    def closed() -> set[str]:
        return {r.getMessage().split("'")[1] for r in caplog.records if "closed" in r.getMessage()}

    with caplog.at_level(logging.INFO, logger="wasmgate.state"):
        with active(old):  # a request on the old configuration, in flight during the reload
            current().open("default").set("k", b"old")
            current().open("x")
            same = current().open("same")
            rc.write_text(
                '[key_value_store.default]\ntype = "sqlite"\npath = "b.db"\n'
                '[key_value_store.same]\ntype = "sqlite"\npath = "same.db"\n'
            )
            uncommitted = registry_for(rc, tmp_path / "state")  # a load that failed later
            del uncommitted
            second = registry_for(rc, tmp_path / "state")
            second.commit()
            assert closed() == set()  # the run still uses them
            assert current().open("default").get("k") == b"old"
        assert closed() == {"default", "x"}  # the run ended: changed and removed ones closed
        assert second.open("same") is same  # unchanged: never closed
        caplog.clear()
        with active(old):  # a late request on the old configuration: its stores come back
            assert current().open("default").get("k") == b"old"
        assert closed() == {"default"}
        assert RouteState(second, ("default",), {}).open("default").get("k") is None
    second.close()
