"""A store on a Redis server, through the ``redis`` client library.

Rules:
- Keys are the guest's keys under the store's ``prefix`` (runtime config; default none), so
  several labels, or several deployments, can share one database. Values are Redis strings.
- Every command has a connect and a read timeout (``timeout`` seconds) and is not retried: a
  server that is down or slow is a ``StoreError`` (``other``) for that one call, the route keeps
  serving, and the next call reconnects. Messages never carry the URL (it may hold a password).
- ``increment`` is INCRBY (atomic on the server; its own error for a non-integer or an overflow);
  ``cas_swap`` is one Lua script that compares and writes atomically on the server.
- ``list_keys`` is SCAN with a MATCH on the prefix; the cursor is SCAN's (a SCAN page may hold
  fewer or more keys than asked, so pages are filled and trimmed here; keys past a trimmed page
  are fetched again from the page's SCAN cursor, so a key can appear twice, never be missed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from . import Backend, KeyPage, StoreLimits

__all__ = ["RedisBackend"]

T = TypeVar("T")

_CAS = """
local cur = redis.call('GET', KEYS[1])
if ARGV[1] == '0' then
  if cur then return 0 end
elseif cur ~= ARGV[2] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[3])
return 1
"""


class RedisBackend(Backend):
    def __init__(
        self,
        label: str,
        url: str,
        limits: StoreLimits,
        *,
        prefix: str = "",
        timeout: float = 2.0,
    ) -> None:
        super().__init__(label, limits)
        self.prefix = prefix
        try:
            self._client: redis.Redis = redis.Redis.from_url(
                url,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=Retry(NoBackoff(), 0),
                retry_on_timeout=False,
            )
        except ValueError:
            raise self.fail("open", "the Redis URL is not valid") from None
        self._cas: Any = self._client.register_script(_CAS)

    def _k(self, key: str) -> str:
        return self.prefix + key

    def _call(self, op: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except (redis.ConnectionError, redis.TimeoutError) as e:
            what = "timed out" if isinstance(e, redis.TimeoutError) else "server unreachable"
            raise self.fail(op, f"Redis {what}") from None
        except redis.ResponseError as e:
            text = str(e)
            if "not an integer" in text or "overflow" in text:
                raise self.fail(op, "the value is not an integer or would overflow") from None
            raise self.fail(op, "Redis refused the command") from None
        except redis.RedisError as e:
            raise self.fail(op, f"Redis error ({type(e).__name__})") from None

    def get(self, key: str) -> bytes | None:
        self.check_key("get", key)
        out: Any = self._call("get", lambda: self._client.get(self._k(key)))
        return None if out is None else bytes(out)

    def set(self, key: str, value: bytes) -> None:
        self.check_key("set", key)
        self.check_value("set", value)
        self._call("set", lambda: self._client.set(self._k(key), value))

    def delete(self, key: str) -> None:
        self.check_key("delete", key)
        self._call("delete", lambda: self._client.delete(self._k(key)))

    def exists(self, key: str) -> bool:
        self.check_key("exists", key)
        n: Any = self._call("exists", lambda: self._client.exists(self._k(key)))
        return bool(n)

    def list_keys(self, cursor: str | None = None, page: int | None = None) -> KeyPage:
        size = self.page_size(page)
        if cursor is not None and not cursor.isdigit():
            raise self.fail("list-keys", "not a cursor this store returned")
        scan = int(cursor) if cursor is not None else 0
        pattern = _glob_escape(self.prefix) + "*"
        keys: list[str] = []
        while True:
            start = scan
            res: Any = self._call(
                "list-keys", partial(self._client.scan, start, match=pattern, count=size)
            )
            scan, batch = int(res[0]), res[1]
            names = [bytes(b).decode("utf-8", "surrogateescape")[len(self.prefix) :] for b in batch]
            if len(keys) + len(names) > size:
                # Return what fits; the next page rescans this SCAN page (duplicates, no loss).
                if not keys:
                    keys = names  # one SCAN page over the size: return it whole, move on
                    return KeyPage(keys, None if scan == 0 else str(scan))
                return KeyPage(keys, str(start))
            keys.extend(names)
            if scan == 0:
                return KeyPage(keys, None)
            if len(keys) == size:
                return KeyPage(keys, str(scan))

    def increment(self, key: str, delta: int) -> int:
        self.check_key("increment", key)
        self.check_range("increment", delta)
        out: Any = self._call("increment", lambda: self._client.incrby(self._k(key), delta))
        return int(out)

    def cas_read(self, key: str) -> bytes | None:
        return self.get(key)

    def cas_swap(self, key: str, expected: bytes | None, value: bytes) -> bool:
        self.check_key("swap", key)
        self.check_value("swap", value)
        args = ["0", b"", value] if expected is None else ["1", expected, value]
        out: Any = self._call("swap", lambda: self._cas(keys=[self._k(key)], args=args))
        return int(out) == 1

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        self.check_batch("get-many", keys)
        if not keys:
            return []
        out: Any = self._call("get-many", lambda: self._client.mget([self._k(k) for k in keys]))
        return [None if v is None else bytes(v) for v in out]

    def set_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        self.check_batch("set-many", [k for k, _ in items])
        for _, value in items:
            self.check_value("set-many", value)
        if items:
            self._call("set-many", lambda: self._client.mset({self._k(k): v for k, v in items}))

    def delete_many(self, keys: Sequence[str]) -> None:
        self.check_batch("delete-many", keys)
        if keys:
            self._call("delete-many", lambda: self._client.delete(*[self._k(k) for k in keys]))

    def close(self) -> None:
        self._client.close()


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
