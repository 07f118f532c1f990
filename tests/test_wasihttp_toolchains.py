"""Guests from real toolchains served in process: a componentize-py echo (CPython inside, 27
imported interfaces) and a componentize-js echo (StarlingMonkey, 18 interfaces at 0.2.10): the
breadth tests of the proxy world's host. Built on first use and cached by source; the build
scripts install their tools on first use (componentize-py from PyPI into a venv of its own, jco
and componentize-js from npm), so they need only python3, node and npm. Without those the tests
skip, and fail under CI=true (``.ci/run`` runs ``tools/install-toolchains.sh``, which installs
everything)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from wasihttp_support import CROSSINGS, proxy
from wasmgate.engine.engine import get_engine
from wasmgate.engine.loader import LoadedGuest, load_guest
from wasmgate.limits import Limits
from wasmgate.wasihttp import HttpRequest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "http"
SETUP = ROOT / "examples" / "components" / "tools"
SOURCES = {"python": ("app.py", "build.sh"), "js": ("app.js", "build.sh", "componentize.mjs")}
NEEDS = {"python": ("python3", "node", "npm"), "js": ("node", "npm")}
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# The first test builds its guest (componentize-py or componentize-js, 5 to 20 s) and compiles it
# (3 to 7 s) on top of the tools' first install.
pytestmark = pytest.mark.timeout(600)


def built(kind: str) -> LoadedGuest:
    folder = EXAMPLES / kind
    inputs = [folder / name for name in SOURCES[kind]]
    inputs += [SETUP / "package-lock.json", SETUP / "setup-componentize-py.sh"]
    key = hashlib.sha256(b"".join(path.read_bytes() for path in inputs))
    out = ROOT / ".cache" / "http-guests" / f"echo-{kind}-{key.hexdigest()[:16]}.wasm"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        proc = subprocess.run(
            ["bash", str(folder / "build.sh"), str(tmp)], capture_output=True, text=True
        )
        if proc.returncode != 0:
            pytest.fail(f"{kind}/build.sh failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}")
        os.replace(tmp, out)
    return load_guest(out, get_engine())


@pytest.fixture(scope="module", params=["python", "js"])
def toolchain_guest(request: pytest.FixtureRequest) -> LoadedGuest:
    missing = [tool for tool in NEEDS[request.param] if not shutil.which(tool)]
    if missing:
        message = f"the {request.param} toolchain needs {', '.join(missing)} (Debian packages)"
        if IN_CI:
            pytest.fail(f"{message}; CI=true: tools/install-toolchains.sh must install it")
        pytest.skip(message)
    return built(request.param)


@pytest.mark.parametrize("how", CROSSINGS)
def test_toolchain_echo(toolchain_guest: LoadedGuest, how: str) -> None:
    settings = Limits(timeout=30.0, max_request_body=1 << 24, max_response_body=1 << 24)
    handler = proxy(how, toolchain_guest, settings)
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
