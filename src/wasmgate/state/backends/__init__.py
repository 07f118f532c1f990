"""The one contract every key-value backend keeps, and the checks they share.

Rules:
- A backend holds one store (a label of the runtime configuration). Keys are non-empty UTF-8
  strings of at most ``max_key_bytes`` bytes; values are bytes of at most ``max_value_bytes``.
  A key or value over its limit, and a page size over ``max_page_size``, is a ``StoreError``
  (kind ``other``) raised before the backend is touched; so is a batch of more than
  ``max_batch`` keys.
- Every failure a guest can cause or meet (limits, a non-integer under ``increment``, an
  unreachable server, a locked database past its busy timeout) is a ``StoreError``, never another
  exception: the faces turn it into the interface's error value, so a guest never traps on it.
  Error messages name the store label and the operation, never a key's value, a URL or a password.
- Read-your-writes: an operation sees every write that returned before it, from any process
  sharing the backend (no client-side caching).
- ``increment`` treats the value as a decimal ASCII integer (Redis's INCRBY format; an absent key
  is 0) and is atomic across threads, processes and servers sharing the backend; a result outside
  the signed 64-bit range is an error and changes nothing.
- Compare-and-swap is by version, not by value: ``cas_read`` returns a ``CasRead``, the key's
  current value (None: absent) and the backend's version of it; ``cas_swap(key, seen, value)``
  writes only if nothing wrote the key since ``seen`` was read, atomically, and says whether it
  wrote. Every write path (set, increment, delete, the batch writes, a swap) changes the
  version, so a key changed and changed back (A -> B -> A), or deleted and written again, fails
  the swap; so does, for a ``seen`` of an absent key, a key created and deleted again. A swap may
  fail without a write to its key (each backend says when: rarely, never silently succeeding);
  a guest retries on failure anyway.
- ``list_keys(cursor, page)`` returns at most ``page`` keys and the cursor of the next page (None
  after the last). Every key present for the whole listing appears at least once across pages.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Backend", "CasRead", "KeyPage", "StoreError", "StoreLimits"]

ErrorKind = Literal["no-such-store", "access-denied", "other"]
S64_MIN, S64_MAX = -(2**63), 2**63 - 1


class StoreError(Exception):
    """A failure reported to the guest as ``wasi:keyvalue/store.error`` (see the rules)."""

    def __init__(self, kind: ErrorKind, message: str = "") -> None:
        super().__init__(message or kind)
        self.kind: ErrorKind = kind
        self.message = message or kind


@dataclass(frozen=True, slots=True)
class StoreLimits:
    """Size limits of one store (runtime-config keys of the same names)."""

    max_key_bytes: int = 256
    max_value_bytes: int = 1024 * 1024
    max_page_size: int = 1000
    default_page_size: int = 100
    max_batch: int = 1000

    def __post_init__(self) -> None:
        for name in self.__slots__:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if self.default_page_size > self.max_page_size:
            raise ValueError("default_page_size must not exceed max_page_size")


@dataclass(frozen=True, slots=True)
class KeyPage:
    keys: list[str]
    cursor: str | None


@dataclass(frozen=True, slots=True)
class CasRead:
    """What ``cas_read`` saw: the value (None: absent) and the backend's version of the key
    (opaque: only the backend that made it reads it)."""

    value: bytes | None
    version: object = field(default=None, repr=False)


class Backend(ABC):
    """One store; thread-safe; see the module rules for the contract."""

    def __init__(self, label: str, limits: StoreLimits) -> None:
        self.label = label
        self.limits = limits

    # --- checks shared by every backend ------------------------------------------------

    def check_key(self, op: str, key: str) -> None:
        if not key:
            raise StoreError("other", f"store {self.label!r}: {op}: empty key")
        size = len(key.encode("utf-8", "surrogatepass"))
        if size > self.limits.max_key_bytes:
            raise StoreError(
                "other",
                f"store {self.label!r}: {op}: key of {size} bytes over the limit of "
                f"{self.limits.max_key_bytes}",
            )

    def check_value(self, op: str, value: bytes) -> None:
        if len(value) > self.limits.max_value_bytes:
            raise StoreError(
                "other",
                f"store {self.label!r}: {op}: value of {len(value)} bytes over the limit of "
                f"{self.limits.max_value_bytes}",
            )

    def check_batch(self, op: str, keys: Sequence[str]) -> None:
        if len(keys) > self.limits.max_batch:
            raise StoreError(
                "other",
                f"store {self.label!r}: {op}: {len(keys)} keys over the batch limit of "
                f"{self.limits.max_batch}",
            )
        for key in keys:
            self.check_key(op, key)

    def page_size(self, page: int | None) -> int:
        if page is None:
            return self.limits.default_page_size
        if page < 1 or page > self.limits.max_page_size:
            raise StoreError(
                "other",
                f"store {self.label!r}: list-keys: page size {page} outside 1.."
                f"{self.limits.max_page_size}",
            )
        return page

    def fail(self, op: str, what: str) -> StoreError:
        return StoreError("other", f"store {self.label!r}: {op}: {what}")

    def parse_counter(self, op: str, raw: bytes | None) -> int:
        if raw is None:
            return 0
        try:
            text = raw.decode("ascii")
            if text.strip() != text or not text:
                raise ValueError
            return int(text)
        except ValueError:
            raise self.fail(op, "the value is not a decimal integer") from None

    def check_range(self, op: str, value: int) -> None:
        if not S64_MIN <= value <= S64_MAX:
            raise self.fail(op, "the result is outside the signed 64-bit range")

    # --- the contract --------------------------------------------------------------------

    @abstractmethod
    def get(self, key: str) -> bytes | None: ...

    @abstractmethod
    def set(self, key: str, value: bytes) -> None: ...

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def list_keys(self, cursor: str | None = None, page: int | None = None) -> KeyPage: ...

    @abstractmethod
    def increment(self, key: str, delta: int) -> int: ...

    @abstractmethod
    def cas_read(self, key: str) -> CasRead:
        """The key's value and version, read at once, for a later ``cas_swap``."""

    @abstractmethod
    def cas_swap(self, key: str, seen: CasRead, value: bytes) -> bool:
        """Write ``value`` if nothing wrote ``key`` since ``seen`` was read (atomically)."""

    @abstractmethod
    def get_many(self, keys: Sequence[str]) -> list[bytes | None]: ...

    @abstractmethod
    def set_many(self, items: Sequence[tuple[str, bytes]]) -> None: ...

    @abstractmethod
    def delete_many(self, keys: Sequence[str]) -> None: ...

    def close(self) -> None:  # noqa: B027 - optional for backends without connections
        """Release connections (the store stays usable: the next call reconnects)."""
