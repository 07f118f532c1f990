"""The ways a host call or a served run crosses into C or stays in Python, for the tests that
check each behaviour on every one: host calls cross in ``c`` (the ``_crossing`` extension),
``python`` (ctypes callbacks and the raw codecs) or ``public`` (the binding's own API)."""

from __future__ import annotations

import os
from typing import Any

import pytest

from wasmgate.engine import crossing, lowlevel
from wasmgate.wasihttp import ProxyHandler

CROSSINGS = ("c", "python", "public")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_native() -> None:
    """Skip a C case where the extension was not built (no C compiler at install); in CI,
    where setup always builds it, fail instead: the C paths must not go untested."""
    if lowlevel.native() is not None:
        return
    message = "wasmgate._crossing is not built (pip install -e . needs a C compiler)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def proxy(how: str, guest: Any, *args: Any, **kwargs: Any) -> ProxyHandler:
    """A ``ProxyHandler`` whose host calls cross the way ``how`` names (checked)."""
    if how == "c":
        require_native()
    if how == "python":
        with crossing.disabled():
            handler = ProxyHandler(guest, *args, fast=True, **kwargs)
    else:
        handler = ProxyHandler(guest, *args, fast=how == "c", **kwargs)
    assert handler.linked.crossing == how
    return handler
