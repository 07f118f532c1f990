"""Capabilities -> a WASI configuration. The only place that grants a guest anything.

Rules:
- Start from an empty ``WasiConfig`` (wasmtime's default grants nothing: no env, no preopens,
  stdio closed) and add exactly what ``Capabilities`` lists. Nothing is inherited implicitly.
- In-memory stdin is staged through an unlinked-on-close temporary file, which the returned
  ``StdioFiles`` owns; callers close it when the run ends.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import wasmtime

from ..capabilities import INHERIT, Capabilities, Stdio
from ..errors import UsageError

__all__ = ["StagedStdin", "wasi_config"]


class StagedStdin:
    """A temporary file holding stdin bytes for the duration of one run."""

    def __init__(self, data: bytes) -> None:
        fd, path = tempfile.mkstemp(prefix="wasmgate-stdin-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        self.path = path

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.path)


def wasi_config(
    caps: Capabilities, stdio: Stdio | None = None
) -> tuple[wasmtime.WasiConfig, StagedStdin | None]:
    """The WASI configuration granting exactly ``caps`` (stdio from ``stdio`` if given)."""
    cfg = wasmtime.WasiConfig()
    if caps.args:
        cfg.argv = list(caps.args)
    if caps.env:
        cfg.env = [list(pair) for pair in caps.env]
    for grant in caps.dirs:
        try:
            cfg.preopen_dir(str(grant.host), grant.guest, not grant.read_only)
        except wasmtime.WasmtimeError:
            raise UsageError(f"cannot preopen directory {grant.host}") from None
    io = stdio if stdio is not None else caps.stdio
    staged = None
    if io.stdin == INHERIT:
        cfg.inherit_stdin()
    elif isinstance(io.stdin, bytes):
        staged = StagedStdin(io.stdin)
        cfg.stdin_file = staged.path
    elif isinstance(io.stdin, Path):
        _stdin_file(cfg, io.stdin)
    if io.stdout == INHERIT:
        cfg.inherit_stdout()
    elif isinstance(io.stdout, Path):
        cfg.stdout_file = str(io.stdout)
    if io.stderr == INHERIT:
        cfg.inherit_stderr()
    elif isinstance(io.stderr, Path):
        cfg.stderr_file = str(io.stderr)
    return cfg, staged


def _stdin_file(cfg: wasmtime.WasiConfig, path: Path) -> None:
    try:
        cfg.stdin_file = path
    except wasmtime.WasmtimeError:
        raise UsageError(f"cannot open stdin file {path}") from None
