"""Helpers for tests that fork: wait for a child without ever hanging the suite."""

from __future__ import annotations

import os
import signal
import time


def child_exit_code(pid: int, limit: float = 20.0) -> int:
    """The exit code of forked child ``pid``; killed, and the test failed, past ``limit``."""
    deadline = time.monotonic() + limit
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError("the forked child did not finish")
        time.sleep(0.02)
    return os.waitstatus_to_exitcode(done[1])
