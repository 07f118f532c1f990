"""One contract, two real backends: SQLite (a temp file) and Redis (a real redis-server)."""

from __future__ import annotations

import multiprocessing
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from state_support import free_port
from wasmgate.state.backends import Backend, StoreError, StoreLimits
from wasmgate.state.backends.redis import RedisBackend
from wasmgate.state.backends.sqlite import SqliteBackend

LIMITS = StoreLimits(
    max_key_bytes=64, max_value_bytes=1024, max_page_size=50, default_page_size=20, max_batch=20
)


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    backend: Backend
    if request.param == "sqlite":
        backend = SqliteBackend("t", tmp_path / "kv.db", LIMITS)
    else:
        url = request.getfixturevalue("redis_url")
        backend = RedisBackend("t", url, LIMITS, prefix=f"test:{uuid.uuid4().hex}:")
    yield backend
    backend.close()


def test_get_set_delete_exists(store: Backend) -> None:
    assert store.get("a") is None
    assert not store.exists("a")
    store.set("a", b"\x00one\xff")
    assert store.get("a") == b"\x00one\xff"
    assert store.exists("a")
    store.set("a", b"")
    assert store.get("a") == b""
    assert store.exists("a")
    store.delete("a")
    store.delete("a")  # absent: nothing to do, no error
    assert store.get("a") is None
    assert not store.exists("a")


def test_unicode_keys(store: Backend) -> None:
    store.set("clé/ü", b"v")
    assert store.get("clé/ü") == b"v"
    assert store.list_keys().keys == ["clé/ü"]


def test_list_keys_pages_cover_every_key(store: Backend) -> None:
    keys = {f"k{i:03}" for i in range(123)}
    store.set_many([(k, b"x") for k in sorted(keys)[:20]])
    for k in sorted(keys)[20:]:
        store.set(k, b"x")
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = store.list_keys(cursor, 10)
        assert len(page.keys) <= 10 or isinstance(store, RedisBackend)
        seen.extend(page.keys)
        pages += 1
        assert pages < 200
        if page.cursor is None:
            break
        cursor = page.cursor
    assert set(seen) == keys
    assert pages > 1
    assert set(store.list_keys(None, 50).keys) <= keys


def test_increment(store: Backend) -> None:
    assert store.increment("n", 1) == 1
    assert store.increment("n", 41) == 42
    assert store.increment("n", -50) == -8
    assert store.get("n") == b"-8"
    store.set("m", b"100")
    assert store.increment("m", 5) == 105
    store.set("bad", b"abc")
    with pytest.raises(StoreError) as e:
        store.increment("bad", 1)
    assert e.value.kind == "other"
    assert "'t'" in e.value.message
    assert store.get("bad") == b"abc"
    store.set("big", str(2**63 - 1).encode())
    with pytest.raises(StoreError):
        store.increment("big", 1)
    assert store.get("big") == str(2**63 - 1).encode()


def test_cas(store: Backend) -> None:
    assert store.cas_read("c") is None
    assert store.cas_swap("c", None, b"1")
    assert not store.cas_swap("c", None, b"2")  # no longer absent
    assert store.get("c") == b"1"
    seen = store.cas_read("c")
    assert seen == b"1"
    store.set("c", b"other")
    assert not store.cas_swap("c", seen, b"2")
    assert store.get("c") == b"other"
    assert store.cas_swap("c", b"other", b"3")
    assert store.get("c") == b"3"


def test_batch(store: Backend) -> None:
    store.set_many([("x", b"1"), ("y", b"2")])
    assert store.get_many(["x", "nope", "y", "x"]) == [b"1", None, b"2", b"1"]
    assert store.get_many([]) == []
    store.delete_many(["x", "nope"])
    assert store.get_many(["x", "y"]) == [None, b"2"]


def test_limits_are_errors(store: Backend) -> None:
    cases: list[Callable[[], object]] = [
        lambda: store.set("k", b"v" * 1025),
        lambda: store.set("k" * 65, b"v"),
        lambda: store.get(""),
        lambda: store.list_keys(None, 51),
        lambda: store.list_keys(None, 0),
        lambda: store.get_many([f"k{i}" for i in range(21)]),
        lambda: store.set_many([("a", b"v" * 2000)]),
        lambda: store.cas_swap("k", None, b"v" * 1025),
    ]
    for case in cases:
        with pytest.raises(StoreError) as e:
            case()
        assert e.value.kind == "other"
        assert "vvvv" not in e.value.message  # never a value in a message
    store.set("k", b"v" * 1024)  # at the limit: fine
    store.set("k" * 64, b"v")
    assert not store.exists("a")


def test_threads_increment_exactly(store: Backend) -> None:
    def work() -> None:
        for _ in range(50):
            store.increment("shared", 1)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.get("shared") == b"400"


def test_cas_is_atomic_under_contention(store: Backend) -> None:
    """Counting by read + swap with retries: every successful swap is one count."""

    def work() -> None:
        for _ in range(25):
            while True:
                seen = store.cas_read("cas")
                new = str(int(seen or b"0") + 1).encode()
                if store.cas_swap("cas", seen, new):
                    break

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.get("cas") == b"150"


def _count_in_process(path: str, n: int) -> None:
    backend = SqliteBackend("p", Path(path), StoreLimits())
    for _ in range(n):
        backend.increment("procs", 1)
    backend.close()


def test_sqlite_increment_is_atomic_across_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_count_in_process, args=(path, 100)) for _ in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert SqliteBackend("p", Path(path), StoreLimits()).get("procs") == b"600"


def test_sqlite_persists_and_creates_its_folder(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "kv.db"
    a = SqliteBackend("d", path, StoreLimits())
    a.set("kept", b"yes")
    a.close()
    b = SqliteBackend("d", path, StoreLimits())
    assert b.get("kept") == b"yes"


def test_redis_down_is_an_error_value() -> None:
    backend = RedisBackend(
        "cache", f"redis://:hunter2@127.0.0.1:{free_port()}/0", StoreLimits(), timeout=0.5
    )
    for op in (lambda: backend.get("k"), lambda: backend.increment("k", 1)):
        with pytest.raises(StoreError) as e:
            op()
        assert e.value.kind == "other"
        assert "unreachable" in e.value.message
        assert "hunter2" not in e.value.message
        assert "redis://" not in e.value.message


def test_redis_servers_share_one_store(redis_url: str) -> None:
    prefix = f"share:{uuid.uuid4().hex}:"
    a = RedisBackend("s", redis_url, StoreLimits(), prefix=prefix)
    b = RedisBackend("s", redis_url, StoreLimits(), prefix=prefix)
    a.increment("n", 2)
    assert b.increment("n", 3) == 5
    other = RedisBackend("s", redis_url, StoreLimits(), prefix=prefix + "x:")
    assert other.get("n") is None
