"""A store in a SQLite file, through the standard library.

Rules:
- One table ``kv(key TEXT PRIMARY KEY, value BLOB, gen, version)`` per file, and a one-row
  table ``kv_meta(epoch)``; the file and its folder are created on first use. The journal is WAL
  (readers never block the writer) with ``synchronous=NORMAL``; every process and thread opens
  its own connection (one per thread), so ``--workers`` processes share the file safely (opening
  retries while another process creates the file: SQLite answers some of those races "locked"
  without waiting).
- Single-key reads and writes are single statements (autocommit). ``increment`` and the batch
  writes run in ``BEGIN IMMEDIATE`` transactions: the write lock is taken before the read, so a
  read-modify-write is atomic across processes. A writer waits up to ``busy_timeout`` seconds for
  the lock, then fails with a ``StoreError`` (the guest sees ``other``).
- Versions, for compare-and-swap: a row's ``(gen, version)`` never repeats over the life of its
  key. Every write of a row adds one to its ``version`` in the statement that writes it; a new
  row takes ``gen`` = the file's ``epoch``, and every delete adds one to the epoch, so a key
  deleted and written again has a ``gen`` no earlier row of it had. Triggers in the file do the
  same for writers that do not (the previous schema's code, or any other program): an update
  that leaves ``version`` alone bumps it, an insert without one gets one, a delete bumps the
  epoch. ``cas_read`` reads value, version and epoch in one statement; a swap is one ``UPDATE
  ... WHERE gen = ? AND version = ?`` (for an absent key: an ``INSERT`` only while the key is
  still absent and the epoch unchanged, so a swap of an absent key also fails when any other key
  was deleted in between).
- The schema's version is ``PRAGMA user_version`` (1). A file of the previous schema (0: ``kv``
  without versions) is migrated when first opened, in one transaction: its rows keep their
  values at version ``(0, 0)``. A file of a later schema is refused (an error, nothing changed).
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

from . import Backend, CasRead, KeyPage, StoreError, StoreLimits

__all__ = ["SCHEMA_VERSION", "SqliteBackend"]

SCHEMA_VERSION = 1
_SCHEMA_0 = (  # the previous code's table, created before the migration makes it current
    "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID"
)
_TO_1 = (
    "ALTER TABLE kv ADD COLUMN gen INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE kv ADD COLUMN version INTEGER NOT NULL DEFAULT 0",
    "CREATE TABLE kv_meta (id INTEGER PRIMARY KEY CHECK (id = 0), epoch INTEGER NOT NULL)",
    "INSERT INTO kv_meta (id, epoch) VALUES (0, 0)",
    # Writers that do not keep versions (the previous code, other programs) get them anyway.
    "CREATE TRIGGER kv_inserted AFTER INSERT ON kv WHEN NEW.version = 0 BEGIN "
    "UPDATE kv SET gen = (SELECT epoch FROM kv_meta), version = 1 WHERE key = NEW.key; END",
    "CREATE TRIGGER kv_updated AFTER UPDATE OF value ON kv WHEN NEW.version = OLD.version "
    "BEGIN UPDATE kv SET version = OLD.version + 1 WHERE key = NEW.key; END",
    "CREATE TRIGGER kv_deleted AFTER DELETE ON kv BEGIN UPDATE kv_meta SET epoch = epoch + 1; END",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)
_UPSERT = (
    "INSERT INTO kv (key, value, gen, version) VALUES (?, ?, (SELECT epoch FROM kv_meta), 1) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = kv.version + 1"
)
_CAS_READ = (
    "SELECT kv.value, kv.gen, kv.version, kv_meta.epoch FROM kv_meta "
    "LEFT JOIN kv ON kv.key = ? WHERE kv_meta.id = 0"
)
_SWAP = "UPDATE kv SET value = ?, version = version + 1 WHERE key = ? AND gen = ? AND version = ?"
_SWAP_ABSENT = (
    "INSERT INTO kv (key, value, gen, version) SELECT ?, ?, epoch, 1 FROM kv_meta "
    "WHERE id = 0 AND epoch = ? ON CONFLICT (key) DO NOTHING"
)


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
            if conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                self._migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Bring the file to ``SCHEMA_VERSION`` (one transaction; another process may be doing
        the same: the write lock orders them, and the second finds the work done)."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            found = conn.execute("PRAGMA user_version").fetchone()[0]
            if found > SCHEMA_VERSION:
                raise StoreError(
                    "other",
                    f"store {self.label!r}: open: the database has schema {found}, "
                    f"newer than this wasmgate's {SCHEMA_VERSION}",
                )
            if found < SCHEMA_VERSION:
                conn.execute(_SCHEMA_0)
                for statement in _TO_1:
                    conn.execute(statement)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

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
            conn.execute(_UPSERT, (key, value))

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
            conn.execute(_UPSERT, (key, str(value).encode("ascii")))
        return value

    def cas_read(self, key: str) -> CasRead:
        self.check_key("cas", key)
        with self._db("cas") as conn:
            value, gen, version, epoch = conn.execute(_CAS_READ, (key,)).fetchone()
        if value is None:  # absent: a swap needs it still absent, and no delete since
            return CasRead(None, ("absent", int(epoch)))
        return CasRead(bytes(value), ("row", int(gen), int(version)))

    def cas_swap(self, key: str, seen: CasRead, value: bytes) -> bool:
        self.check_key("swap", key)
        self.check_value("swap", value)
        token = seen.version
        with self._db("swap") as conn:
            match token:
                case ("row", int(gen), int(version)):
                    cur = conn.execute(_SWAP, (value, key, gen, version))
                case ("absent", int(epoch)):
                    cur = conn.execute(_SWAP_ABSENT, (key, value, epoch))
                case _:
                    raise self.fail("swap", "not a compare-and-swap of this store")
        return cur.rowcount == 1

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
            conn.executemany(_UPSERT, items)

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
