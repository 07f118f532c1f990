"""A store in a SQLite file, through the standard library.

Rules:
- One table ``kv(key TEXT PRIMARY KEY, value BLOB)`` per file; the file and its folder are
  created on first use. The journal is WAL (readers never block the writer) with
  ``synchronous=NORMAL``; every process and thread opens its own connection (one per thread), so
  ``--workers`` processes share the file safely (opening retries while another process creates
  the file: SQLite answers some of those races "locked" without waiting).
- Single-key reads and writes are single statements (autocommit). ``increment``, ``cas_swap`` and
  the batch writes run in ``BEGIN IMMEDIATE`` transactions: the write lock is taken before the
  read, so a read-modify-write is atomic across processes. A writer waits up to ``busy_timeout``
  seconds for the lock, then fails with a ``StoreError`` (the guest sees ``other``).
- ``list_keys`` pages in key order; the cursor is the last key of the page.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from . import Backend, KeyPage, StoreLimits

__all__ = ["SqliteBackend"]

_SCHEMA = "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID"


class SqliteBackend(Backend):
    def __init__(
        self, label: str, path: Path, limits: StoreLimits, *, busy_timeout: float = 5.0
    ) -> None:
        super().__init__(label, limits)
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        # Processes opening a new file at once race to create the table and switch it to WAL;
        # SQLite answers some of those races "locked" at once, without its busy handler, so the
        # set-up is retried until the busy timeout.
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                conn = self._open_once()
                break
            except sqlite3.OperationalError as e:
                if _reason(e) != "database is locked" or time.monotonic() > deadline:
                    raise self.fail("open", f"cannot open the database ({_reason(e)})") from None
                time.sleep(0.01)
            except (sqlite3.Error, OSError) as e:
                raise self.fail("open", f"cannot open the database ({type(e).__name__})") from None
        self._local.conn = conn
        with self._lock:
            self._all.append(conn)
        return conn

    def _open_once(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            os.fspath(self.path),
            timeout=self.busy_timeout,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute(_SCHEMA)
        except BaseException:
            conn.close()
            raise
        return conn

    @contextmanager
    def _db(self, op: str) -> Iterator[sqlite3.Connection]:
        try:
            yield self._connect()
        except sqlite3.Error as e:
            raise self.fail(op, f"database error ({_reason(e)})") from None

    @contextmanager
    def _transaction(self, op: str) -> Iterator[sqlite3.Connection]:
        with self._db(op) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def get(self, key: str) -> bytes | None:
        self.check_key("get", key)
        with self._db("get") as conn:
            row = conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def set(self, key: str, value: bytes) -> None:
        self.check_key("set", key)
        self.check_value("set", value)
        with self._db("set") as conn:
            conn.execute(
                "INSERT INTO kv (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def delete(self, key: str) -> None:
        self.check_key("delete", key)
        with self._db("delete") as conn:
            conn.execute("DELETE FROM kv WHERE key = ?", (key,))

    def exists(self, key: str) -> bool:
        self.check_key("exists", key)
        with self._db("exists") as conn:
            row = conn.execute("SELECT 1 FROM kv WHERE key = ?", (key,)).fetchone()
        return row is not None

    def list_keys(self, cursor: str | None = None, page: int | None = None) -> KeyPage:
        size = self.page_size(page)
        with self._db("list-keys") as conn:
            if cursor is None:
                rows = conn.execute(
                    "SELECT key FROM kv ORDER BY key LIMIT ?", (size + 1,)
                ).fetchall()
            else:
                rows = conn.execute(
                    "SELECT key FROM kv WHERE key > ? ORDER BY key LIMIT ?", (cursor, size + 1)
                ).fetchall()
        keys = [r[0] for r in rows[:size]]
        return KeyPage(keys, keys[-1] if len(rows) > size else None)

    def increment(self, key: str, delta: int) -> int:
        self.check_key("increment", key)
        with self._transaction("increment") as conn:
            row = conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
            value = self.parse_counter("increment", None if row is None else bytes(row[0]))
            value += delta
            self.check_range("increment", value)
            conn.execute(
                "INSERT INTO kv (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, str(value).encode("ascii")),
            )
        return value

    def cas_read(self, key: str) -> bytes | None:
        return self.get(key)

    def cas_swap(self, key: str, expected: bytes | None, value: bytes) -> bool:
        self.check_key("swap", key)
        self.check_value("swap", value)
        with self._transaction("swap") as conn:
            row = conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
            current = None if row is None else bytes(row[0])
            if current != expected:
                return False
            conn.execute(
                "INSERT INTO kv (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )
        return True

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        self.check_batch("get-many", keys)
        if not keys:
            return []
        with self._db("get-many") as conn:
            found: dict[str, bytes] = {}
            unique = list(dict.fromkeys(keys))
            for i in range(0, len(unique), 500):
                chunk = unique[i : i + 500]
                marks = ",".join("?" * len(chunk))
                for k, v in conn.execute(
                    f"SELECT key, value FROM kv WHERE key IN ({marks})",  # noqa: S608 - only ? marks
                    chunk,
                ):
                    found[k] = bytes(v)
        return [found.get(k) for k in keys]

    def set_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        self.check_batch("set-many", [k for k, _ in items])
        for _, value in items:
            self.check_value("set-many", value)
        with self._transaction("set-many") as conn:
            conn.executemany(
                "INSERT INTO kv (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                items,
            )

    def delete_many(self, keys: Sequence[str]) -> None:
        self.check_batch("delete-many", keys)
        with self._transaction("delete-many") as conn:
            conn.executemany("DELETE FROM kv WHERE key = ?", [(k,) for k in keys])

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            with suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()


def _reason(e: sqlite3.Error) -> str:
    text = str(e)
    return "database is locked" if "locked" in text or "busy" in text else type(e).__name__
