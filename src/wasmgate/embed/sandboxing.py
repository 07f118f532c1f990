"""WASI for an embedded instance: exactly the granted capabilities, nothing left behind.

Rule: in-memory stdin is staged in a temporary file only until the store has opened it (the
binding opens it when the configuration is set), then unlinked at once; an instance may live for
the rest of the process, and its stdin must not outlive it on disk.
"""

from __future__ import annotations

import wasmtime

from ..capabilities import Capabilities
from ..engine.sandbox import wasi_config

__all__ = ["set_wasi"]


def set_wasi(store: wasmtime.Store, capabilities: Capabilities) -> None:
    cfg, staged = wasi_config(capabilities)
    try:
        store.set_wasi(cfg)
    finally:
        if staged is not None:
            staged.close()
