"""A store on a Redis server, through the ``redis`` client library.

Rules:
- Keys are the guest's keys under the store's ``prefix`` (runtime config; default none), so
  several labels, or several deployments, can share one database. Values are Redis strings
  (what the previous code wrote, and what other Redis clients read and write).
- Versions, for compare-and-swap, are kept in one hash per store, ``<prefix>\\xffwasmgate:kv``
  (a name no guest key can have: guest keys are UTF-8): a field per key holds the number its last
  write took from the hash's counter (field ``\\xffseq``, which never goes back), and field
  ``\\xffepoch`` counts deletes. Every write path (set, increment, delete, the batch writes, a
  swap) is one Lua script that writes the value and its version together: atomic on the server,
  across every process and server sharing it. A delete removes the key's field. The hash costs
  one field per key; it has no TTL, so an ``allkeys-*`` eviction policy could drop it, and its
  counter would start again: a swap read before could then succeed over a write that happened
  to take the same number and put the same value back. A ``volatile-*`` policy never drops it.
- ``cas_read`` reads value, version and epoch in one script; ``cas_swap`` is one script that
  writes only if the value and the version are both still those read (for an absent key: if it
  is still absent and the epoch unchanged, so a swap of an absent key also fails when any other
  key was deleted in between). Keys without a version (written by the previous code, or by
  another client) work: their version is "none" until the first write through this code; a
  writer that keeps no version (a server still running the previous code, during an upgrade)
  is still caught whenever it changes the value, as the previous code caught it.
- Every command has a connect and a read timeout (``timeout`` seconds) and is not retried: a
  server that is down or slow is a ``StoreError`` (``other``) for that one call, the route keeps
  serving, and the next call reconnects. Messages never carry the URL (it may hold a password).
- ``increment`` is INCRBY in the same script as its version (atomic on the server; INCRBY's own
  error for a non-integer or an overflow, and then nothing is written).
- ``list_keys`` is SCAN with a MATCH on the prefix; the cursor is SCAN's (a SCAN page may hold
  fewer or more keys than asked, so pages are filled and trimmed here; keys past a trimmed page
  are fetched again from the page's SCAN cursor, so a key can appear twice, never be missed).
  Names that are not UTF-8 (the versions hash, keys other clients wrote) are not listed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from . import Backend, CasRead, KeyPage, StoreLimits

__all__ = ["RedisBackend"]

T = TypeVar("T")

# Every script gets the store's keys in KEYS (the versions hash last) and the guest keys, as
# the hash's field names, in ARGV. '\255' is the byte 0xff.
_BUMP = (
    r"redis.call('HSET', meta, f, "
    r"string.format('%d', redis.call('HINCRBY', meta, '\255seq', 1)))"
)
_SET = rf"""
local meta = KEYS[#KEYS]
for i = 1, #KEYS - 1 do
  local f = ARGV[2 * i - 1]
  redis.call('SET', KEYS[i], ARGV[2 * i])
  {_BUMP}
end
return 1
"""
_INCREMENT = rf"""
local meta, f = KEYS[2], ARGV[1]
redis.call('INCRBY', KEYS[1], ARGV[2])
{_BUMP}
return redis.call('GET', KEYS[1])
"""
_DELETE = r"""
local meta = KEYS[#KEYS]
local n = 0
for i = 1, #KEYS - 1 do
  n = n + redis.call('DEL', KEYS[i])
  redis.call('HDEL', meta, ARGV[i])
end
if n > 0 then redis.call('HINCRBY', meta, '\255epoch', n) end
return n
"""
_CAS_READ = r"""
return {redis.call('GET', KEYS[1]), redis.call('HGET', KEYS[2], ARGV[1]),
        redis.call('HGET', KEYS[2], '\255epoch')}
"""
_SWAP = rf"""
local meta, f = KEYS[2], ARGV[1]
local cur = redis.call('GET', KEYS[1])
if ARGV[2] == 'absent' then
  if cur then return 0 end
  if (redis.call('HGET', meta, '\255epoch') or '') ~= ARGV[3] then return 0 end
else
  if cur ~= ARGV[4] then return 0 end
  if (redis.call('HGET', meta, f) or '') ~= ARGV[3] then return 0 end
end
redis.call('SET', KEYS[1], ARGV[5])
{_BUMP}
return 1
"""
META = b"\xffwasmgate:kv"


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
        self._prefix_len = len(prefix.encode("utf-8"))
        self._meta = prefix.encode("utf-8") + META
        script = self._client.register_script
        self._set_script: Any = script(_SET)
        self._increment_script: Any = script(_INCREMENT)
        self._delete_script: Any = script(_DELETE)
        self._cas_read_script: Any = script(_CAS_READ)
        self._swap_script: Any = script(_SWAP)

    def _k(self, key: str) -> str:
        return self.prefix + key

    def _set(self, op: str, items: Sequence[tuple[str, bytes]]) -> None:
        keys: list[str | bytes] = [self._k(k) for k, _ in items]
        keys.append(self._meta)
        args = [x for pair in items for x in pair]
        self._call(op, lambda: self._set_script(keys=keys, args=args))

    def _delete(self, op: str, names: Sequence[str]) -> None:
        keys: list[str | bytes] = [self._k(k) for k in names]
        keys.append(self._meta)
        self._call(op, lambda: self._delete_script(keys=keys, args=list(names)))

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
        self._set("set", [(key, value)])

    def delete(self, key: str) -> None:
        self.check_key("delete", key)
        self._delete("delete", [key])

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
            names = _names(batch, self._prefix_len)
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
        keys = [self._k(key), self._meta]
        out: Any = self._call(
            "increment", lambda: self._increment_script(keys=keys, args=[key, str(delta)])
        )
        return int(out)

    def cas_read(self, key: str) -> CasRead:
        self.check_key("cas", key)
        keys = [self._k(key), self._meta]
        out: Any = self._call("cas", lambda: self._cas_read_script(keys=keys, args=[key]))
        value, version, epoch = (None if v is None else bytes(v) for v in out)
        if value is None:
            return CasRead(None, ("absent", epoch or b""))
        return CasRead(value, ("row", version or b""))

    def cas_swap(self, key: str, seen: CasRead, value: bytes) -> bool:
        self.check_key("swap", key)
        self.check_value("swap", value)
        match seen.version:
            case ("absent", bytes(epoch)):
                args = [key, "absent", epoch, b"", value]
            case ("row", bytes(version)) if seen.value is not None:
                args = [key, "row", version, seen.value, value]
            case _:
                raise self.fail("swap", "not a compare-and-swap of this store")
        keys = [self._k(key), self._meta]
        out: Any = self._call("swap", lambda: self._swap_script(keys=keys, args=args))
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
            self._set("set-many", items)

    def delete_many(self, keys: Sequence[str]) -> None:
        self.check_batch("delete-many", keys)
        if keys:
            self._delete("delete-many", keys)

    def close(self) -> None:
        self._client.close()


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _names(batch: list[Any], skip: int) -> list[str]:
    """The guest keys among SCAN's names (``skip``: the prefix's length in bytes): names that
    are not UTF-8 are no guest's."""
    out: list[str] = []
    for raw in batch:
        try:
            out.append(bytes(raw)[skip:].decode("utf-8"))
        except UnicodeDecodeError:
            continue
    return out
