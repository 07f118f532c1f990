"""Guests from real toolchains served in process: a componentize-py echo (CPython inside, 27
imported interfaces) and a componentize-js echo (StarlingMonkey, 18 interfaces at 0.2.10): the
breadth tests of the proxy world's host. Built on first use and cached by source."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from wasmgate.engine.engine import get_engine
from wasmgate.engine.loader import LoadedGuest, load_guest
from wasmgate.limits import Limits
from wasmgate.wasihttp import HttpRequest, ProxyHandler

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "http"
TOOLS = ROOT / ".cache" / "component-tools" / "node_modules" / "@bytecodealliance"
COMPONENTIZE_PY = ROOT / ".cache" / "componentize-py" / "bin" / "componentize-py"
SOURCES = {"python": ("app.py", "build.sh"), "js": ("app.js", "build.sh", "componentize.mjs")}
READY = {
    "python": (TOOLS / "jco").is_dir() and COMPONENTIZE_PY.exists(),
    "js": (TOOLS / "componentize-js").is_dir(),
}


def built(kind: str) -> LoadedGuest:
    folder = EXAMPLES / kind
    key = hashlib.sha256(b"".join((folder / name).read_bytes() for name in SOURCES[kind]))
    out = ROOT / ".cache" / "http-guests" / f"echo-{kind}-{key.hexdigest()[:16]}.wasm"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        subprocess.run(
            ["bash", str(folder / "build.sh"), str(tmp)], check=True, capture_output=True
        )
        os.replace(tmp, out)
    return load_guest(out, get_engine())


@pytest.fixture(scope="module", params=["python", "js"])
def toolchain_guest(request: pytest.FixtureRequest) -> LoadedGuest:
    if not READY[request.param]:
        pytest.skip(f"the {request.param} toolchain is not set up (examples/http/README.md)")
    return built(request.param)


@pytest.mark.parametrize("fast", [True, False], ids=["raw", "public"])
def test_toolchain_echo(toolchain_guest: LoadedGuest, fast: bool) -> None:
    settings = Limits(timeout=30.0, max_request_body=1 << 24, max_response_body=1 << 24)
    handler = ProxyHandler(toolchain_guest, settings, fast=fast)
    body = bytes(range(256)) * 256
    request = HttpRequest(
        "PUT", "/p?q", authority="example.test", headers=((b"k", b"v"),), body=body
    )
    result = handler.serve(request)
    assert result.status == 200, result.reason
    assert result.response is not None
    headers = dict(result.response.headers)
    assert headers[b"x-method"] == b"PUT"
    assert headers[b"x-path"] == b"/p?q"
    assert headers[b"x-echo-k"] == b"v"
    assert result.response.body == body
    status = handler.serve(HttpRequest("GET", "/status/201"))  # no authority: the default host
    assert status.status == 201, status.reason
