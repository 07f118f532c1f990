"""One contract, two real backends: SQLite (a temp file) and Redis (a real redis-server)."""

from __future__ import annotations

import dataclasses
import multiprocessing
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from state_support import free_port
from wasmgate.state.backends import Backend, StoreError, StoreLimits
from wasmgate.state.backends.redis import RedisBackend
from wasmgate.state.backends.sqlite import SCHEMA_VERSION, SqliteBackend

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
    absent = store.cas_read("c")
    assert absent.value is None
    assert store.cas_swap("c", absent, b"1")
    assert not store.cas_swap("c", absent, b"2")  # no longer absent
    assert store.get("c") == b"1"
    seen = store.cas_read("c")
    assert seen.value == b"1"
    store.set("c", b"other")
    assert not store.cas_swap("c", seen, b"2")
    assert store.get("c") == b"other"
    now = store.cas_read("c")
    assert store.cas_swap("c", now, b"3")
    assert store.get("c") == b"3"
    assert not store.cas_swap("c", now, b"4")  # the swap was a write too
    assert store.get("c") == b"3"


def test_cas_sees_a_key_changed_and_changed_back(store: Backend) -> None:
    """ABA: every write in between fails the swap, whatever the value is when it runs."""
    writes: list[Callable[[], object]] = [
        lambda: (store.set("k", b"B"), store.set("k", b"A")),
        lambda: store.set("k", b"A"),  # the same value again: still a write
        lambda: (store.delete("k"), store.set("k", b"A")),
        lambda: store.set_many([("k", b"B"), ("k", b"A")]),
        lambda: (store.delete_many(["k"]), store.set_many([("k", b"A")])),
        lambda: store.cas_swap("k", store.cas_read("k"), b"A"),
    ]
    for write in writes:
        store.set("k", b"A")
        seen = store.cas_read("k")
        write()
        assert store.get("k") == b"A"
        assert not store.cas_swap("k", seen, b"X")
        assert store.get("k") == b"A"
        assert store.cas_swap("k", store.cas_read("k"), b"X")  # a fresh read swaps
    store.set("n", b"5")
    seen = store.cas_read("n")
    store.increment("n", 1)
    store.increment("n", -1)
    assert not store.cas_swap("n", seen, b"9")
    assert store.get("n") == b"5"


def test_cas_of_an_absent_key_sees_it_created_and_deleted(store: Backend) -> None:
    seen = store.cas_read("gone")
    assert seen.value is None
    store.set("gone", b"x")
    store.delete("gone")
    assert not store.cas_swap("gone", seen, b"y")
    assert store.get("gone") is None
    seen = store.cas_read("gone")
    store.increment("gone", 1)
    store.delete_many(["gone"])
    assert not store.cas_swap("gone", seen, b"y")
    seen = store.cas_read("gone")
    store.delete("gone")  # deleting an absent key writes nothing
    assert store.cas_swap("gone", seen, b"y")
    assert store.get("gone") == b"y"


def test_cas_of_another_store_is_refused(tmp_path: Path, store: Backend) -> None:
    other = SqliteBackend("o", tmp_path / "other.db", LIMITS)
    foreign = dataclasses.replace(other.cas_read("k"), version=("nonsense",))
    with pytest.raises(StoreError) as e:
        store.cas_swap("k", foreign, b"v")
    assert e.value.kind == "other"
    other.close()


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
        lambda: store.cas_swap("k", store.cas_read("k"), b"v" * 1025),
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


def _cas_add_one(store: Backend, key: str) -> int:
    """Add one to ``key`` by read + swap, retrying on conflict; the number of tries."""
    tries = 0
    while True:
        tries += 1
        seen = store.cas_read(key)
        if store.cas_swap(key, seen, str(int(seen.value or b"0") + 1).encode()):
            return tries


def test_cas_is_atomic_under_contention(store: Backend) -> None:
    """Counting by read + swap with retries: every successful swap is one count."""

    def work() -> None:
        for _ in range(25):
            _cas_add_one(store, "cas")

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.get("cas") == b"150"


def _cas_loops_in_process(kind: str, where: str, prefix: str, n: int, out: Any) -> None:
    """One of the processes of the test below: 4 threads, each adding one ``n`` times by
    compare-and-swap and A -> B -> A writes on a second key in between."""
    backend: Backend
    if kind == "sqlite":
        backend = SqliteBackend("p", Path(where), StoreLimits())
    else:
        backend = RedisBackend("p", where, StoreLimits(), prefix=prefix)
    tries = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal tries
        for _ in range(n):
            mine = _cas_add_one(backend, "count")
            backend.set("flip", b"B")
            backend.set("flip", b"A")
            with lock:
                tries += mine

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    backend.close()
    out.put(tries)


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_cas_counts_exactly_across_two_processes(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """2 processes x 4 threads of compare-and-swap loops on one key: the count is exact, so no
    swap succeeded over another's write. Meanwhile a second key flips A -> B -> A, and a swap
    made before a flip fails after it, whichever process flipped. SQLite starts from a file of
    the previous schema, which the two processes migrate at once."""
    n = 40
    if kind == "sqlite":
        where, prefix = str(tmp_path / "shared.db"), ""
        _old_schema_file(tmp_path / "shared.db", {"count": b"0"})
    else:
        where, prefix = request.getfixturevalue("redis_url"), f"procs:{uuid.uuid4().hex}:"
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_cas_loops_in_process, args=(kind, where, prefix, n, out))
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    tries = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    check: Backend
    if kind == "sqlite":
        check = SqliteBackend("p", Path(where), StoreLimits())
    else:
        check = RedisBackend("p", where, StoreLimits(), prefix=prefix)
    assert check.get("count") == str(2 * 4 * n).encode()
    assert sum(tries) >= 2 * 4 * n
    seen = check.cas_read("flip")
    assert seen.value == b"A"
    check.set("flip", b"B")
    check.set("flip", b"A")
    assert not check.cas_swap("flip", seen, b"C")
    check.close()


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


def _old_schema_file(path: Path, rows: dict[str, bytes]) -> None:
    """A state file as the previous code made it (its DDL and its pragmas, word for word)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID"
    )
    conn.executemany("INSERT INTO kv (key, value) VALUES (?, ?)", list(rows.items()))
    conn.close()


def _old_code_set(path: Path, key: str, value: bytes) -> None:
    """A write as the previous code did it (it keeps no version)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(
        "INSERT INTO kv (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )
    conn.close()


def test_sqlite_opens_a_file_of_the_previous_schema(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _old_schema_file(path, {"kept": b"yes", "n": b"41", "k": b"A"})
    backend = SqliteBackend("d", path, StoreLimits())
    assert backend.get("kept") == b"yes"
    assert backend.list_keys().keys == ["k", "kept", "n"]
    assert backend.increment("n", 1) == 42
    seen = backend.cas_read("k")
    assert seen.value == b"A"
    backend.set("k", b"B")
    backend.set("k", b"A")
    assert not backend.cas_swap("k", seen, b"C")
    assert backend.cas_swap("k", backend.cas_read("k"), b"C")
    backend.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()
    again = SqliteBackend("d", path, StoreLimits())  # migrated once; opens as it is
    assert again.get_many(["kept", "n", "k"]) == [b"yes", b"42", b"C"]
    again.close()


def test_sqlite_versions_writes_of_code_that_keeps_none(tmp_path: Path) -> None:
    """A process still running the previous code writes without versions (an upgrade with
    two servers on one file): the file's triggers version its writes all the same."""
    path = tmp_path / "mixed.db"
    backend = SqliteBackend("d", path, StoreLimits())
    backend.set("k", b"A")
    seen = backend.cas_read("k")
    _old_code_set(path, "k", b"B")
    _old_code_set(path, "k", b"A")
    assert not backend.cas_swap("k", seen, b"X")
    absent = backend.cas_read("new")
    _old_code_set(path, "new", b"v")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DELETE FROM kv WHERE key = 'new'")
    conn.close()
    assert not backend.cas_swap("new", absent, b"X")
    _old_code_set(path, "new", b"v")  # a new key from such a writer: versioned at once
    seen = backend.cas_read("new")
    _old_code_set(path, "new", b"v")
    assert not backend.cas_swap("new", seen, b"X")
    assert backend.get("new") == b"v"
    backend.close()


def test_sqlite_refuses_a_file_of_a_later_schema(tmp_path: Path) -> None:
    path = tmp_path / "later.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    backend = SqliteBackend("d", path, StoreLimits())
    with pytest.raises(StoreError) as e:
        backend.get("k")
    assert "newer" in e.value.message
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    conn.close()


def test_redis_keys_without_versions(redis_url: str) -> None:
    """Keys the previous code (or another client) wrote carry no version: they read, count and
    swap; a writer that keeps no version is caught when it changes the value."""
    import redis

    prefix = f"old:{uuid.uuid4().hex}:"
    raw = redis.Redis.from_url(redis_url)
    raw.set(prefix + "k", b"A")
    raw.set(prefix + "n", b"41")
    backend = RedisBackend("o", redis_url, StoreLimits(), prefix=prefix)
    assert backend.increment("n", 1) == 42
    seen = backend.cas_read("k")
    assert seen.value == b"A"
    raw.set(prefix + "k", b"B")
    assert not backend.cas_swap("k", seen, b"X")
    seen = backend.cas_read("k")
    backend.set("k", b"A")  # through this code: a version, so even the same value fails it
    assert not backend.cas_swap("k", seen, b"X")
    assert backend.cas_swap("k", backend.cas_read("k"), b"X")
    assert sorted(backend.list_keys().keys) == ["k", "n"]  # the versions hash is not listed
    raw.close()
    backend.close()


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
