"""What every embedded instance is to its user: the owner of one store, closed once, and of the
output its capabilities captured."""

from __future__ import annotations

from typing import Any, Self

import wasmtime

from ..capabilities import Capabilities, Captured

__all__ = ["StoreOwner", "captured"]


class StoreOwner:
    """Holds the instance's ``store``; ``close()`` (or leaving a ``with`` block) frees it."""

    name: str
    store: wasmtime.Store
    capabilities: Capabilities = Capabilities()
    _closed: bool

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def stdout(self) -> bytes:
        """What the guest wrote to stdout, when its capabilities said ``stdout=CAPTURE``."""
        return captured(self, "stdout")

    @property
    def stderr(self) -> bytes:
        """What the guest wrote to stderr, when its capabilities said ``stderr=CAPTURE``."""
        return captured(self, "stderr")

    def close(self) -> None:
        """Free the store (and with it the guest's memory) now rather than when garbage is
        collected. Calls after ``close`` fail. Idempotent."""
        if not self._closed:
            self._closed = True
            self.store.close()


def captured(owner: StoreOwner, stream: str) -> bytes:
    """The bytes a guest wrote to ``stream`` when its capabilities captured it."""
    sink = getattr(owner.capabilities.stdio, stream)
    if not isinstance(sink, Captured):
        raise ValueError(
            f"{owner.name}: {stream} is not captured (give capabilities="
            f"Capabilities(stdio=Stdio({stream}=CAPTURE)) to instantiate)"
        )
    return sink.getvalue()
