"""The console script's quick exit (``cli.main.console``): what interpreter shutdown does that
can be seen still happens (atexit handlers, buffered output, the exit status, waiting for
non-daemon threads); only the teardown of every object is skipped."""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = r"""
import atexit, sys, threading, time
from wasmgate.cli import console

mode = sys.argv[1]
atexit.register(lambda: print("atexit ran"))
print("buffered line", end="")  # no newline: still in sys.stdout's buffer
if mode == "thread":
    def late():
        time.sleep(0.5)
        print(" thread done", end="")
    threading.Thread(target=late).start()
sys.argv = ["wasmgate", "--version"] if mode != "bad" else ["wasmgate", "run", "--no-such-flag"]
console()
print("not reached")
"""


@pytest.mark.parametrize(("mode", "status"), [("ok", 0), ("thread", 0), ("bad", 2)])
def test_the_quick_exit_keeps_what_shutdown_does(mode: str, status: int) -> None:
    r = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == status, r.stderr
    out = r.stdout
    assert out.startswith("buffered line")
    assert "atexit ran" in out
    assert "not reached" not in out
    if mode == "ok":
        assert "wasmgate " in out  # the version line
    if mode == "thread":
        assert out.index(" thread done") < out.index("atexit ran")  # waited for, as usual
    if mode == "bad":
        assert "No such option" in r.stderr
