"""The checked-in wasi:http example components are what their sources build to, byte for byte."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / ".cache" / "component-tools" / "node_modules" / "@bytecodealliance" / "jco"


@pytest.mark.skipif(
    shutil.which("node") is None or not TOOLS.is_dir(),
    reason="needs node and the npm tools (examples/components/tools/setup-npm.sh)",
)
def test_http_guests_rebuild_byte_identical() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "http" / "build.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "same: hello-http.wasm" in proc.stdout
    assert "same: echo-http.wasm" in proc.stdout
