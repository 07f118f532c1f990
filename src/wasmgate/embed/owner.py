"""What every embedded instance is to its user: the owner of one store, closed once."""

from __future__ import annotations

from typing import Any, Self

import wasmtime

__all__ = ["StoreOwner"]


class StoreOwner:
    """Holds the instance's ``store``; ``close()`` (or leaving a ``with`` block) frees it."""

    name: str
    store: wasmtime.Store
    _closed: bool

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Free the store (and with it the guest's memory) now rather than when garbage is
        collected. Calls after ``close`` fail. Idempotent."""
        if not self._closed:
            self._closed = True
            self.store.close()
