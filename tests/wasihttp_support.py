"""The three ways a wasi:http host's calls cross (``WasiHost.crossing``), for the tests that check
each behaviour on every one of them: ``c`` (the ``_crossing`` extension), ``python`` (ctypes
callbacks and the raw codecs) and ``public`` (the binding's own API)."""

from __future__ import annotations

from typing import Any

from wasmgate.engine import crossing
from wasmgate.wasihttp import ProxyHandler

CROSSINGS = ("c", "python", "public")


def proxy(how: str, guest: Any, *args: Any, **kwargs: Any) -> ProxyHandler:
    """A ``ProxyHandler`` whose host calls cross the way ``how`` names (checked: a build without
    the extension fails the ``c`` cases rather than testing the Python path twice)."""
    if how == "python":
        with crossing.disabled():
            handler = ProxyHandler(guest, *args, fast=True, **kwargs)
    else:
        handler = ProxyHandler(guest, *args, fast=how == "c", **kwargs)
    assert handler.linked.crossing == how
    return handler
