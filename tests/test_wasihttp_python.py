"""A componentize-py guest (CPython inside the component, 27 imported interfaces) served in
process: the breadth test of the proxy world's host. Built on first use and cached by source."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from wasmgate.engine.engine import get_engine
from wasmgate.engine.loader import LoadedGuest, load_guest
from wasmgate.limits import Limits
from wasmgate.wagi.handler import RouteSettings
from wasmgate.wasihttp import HttpRequest, ProxyHandler

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "examples" / "http" / "python"
TOOLS = ROOT / ".cache" / "component-tools" / "node_modules" / "@bytecodealliance" / "jco"
COMPONENTIZE = ROOT / ".cache" / "componentize-py" / "bin" / "componentize-py"

pytestmark = pytest.mark.skipif(
    not (TOOLS.is_dir() and COMPONENTIZE.exists()),
    reason="needs componentize-py and the npm tools in .cache (examples/http/python/build.sh)",
)


@pytest.fixture(scope="module")
def python_guest() -> LoadedGuest:
    key = hashlib.sha256((SRC / "app.py").read_bytes() + (SRC / "build.sh").read_bytes())
    out = ROOT / ".cache" / "http-guests" / f"echo-py-{key.hexdigest()[:16]}.wasm"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        subprocess.run(["bash", str(SRC / "build.sh"), str(tmp)], check=True, capture_output=True)
        os.replace(tmp, out)
    return load_guest(out, get_engine())


@pytest.mark.parametrize("fast", [True, False], ids=["raw", "public"])
def test_python_echo(python_guest: LoadedGuest, fast: bool) -> None:
    settings = RouteSettings(Limits(timeout=30.0), 1 << 24, 1 << 24)
    handler = ProxyHandler(python_guest, settings, environment={"A": "1"}, fast=fast)
    body = bytes(range(256)) * 256
    result = handler.serve(HttpRequest("PUT", "/p?q", headers=((b"k", b"v"),), body=body))
    assert result.status == 200, result.reason
    assert result.response is not None
    assert result.response.headers == [
        (b"x-method", b"PUT"),
        (b"x-path", b"/p?q"),
        (b"x-echo-k", b"v"),
    ]
    assert result.response.body == body
    status = handler.serve(HttpRequest("GET", "/status/201"))
    assert status.status == 201
    env = handler.serve(HttpRequest("GET", "/env"))
    assert env.response is not None
    assert env.response.body == b"A=1\n"
