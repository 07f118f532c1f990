"""What a component is granted, as the Python WASI host's state: ``Capabilities`` in, a
``RequestState`` out, for the runs that are not served requests (an embedded component's life,
a command run by ``wasmgate run``).

Rules (the embedding API's ``Stdio``, as ``sandbox`` gives it to core modules):
- arguments and environment as granted; the directories as ``wasi:filesystem`` preopens, read-only
  ones for reading only (``files``).
- stdin: ``None`` is empty; ``bytes`` are the stream; a ``Path`` is that file, opened now; a
  file-like object is read now (what it holds now is the guest's stdin); ``INHERIT`` reads the
  host's own stdin, a blocking read waiting at most until the guest's deadline.
- stdout and stderr: ``None`` discards (the stream accepts and drops what is written, as
  Wasmtime's sink does); ``INHERIT`` writes to the host's own stream (its file descriptor, as
  Wasmtime does: unbuffered); a ``Path`` is that file, created or truncated now; anything with
  ``write`` (a ``Captured`` too) gets the bytes (a text stream gets them decoded as UTF-8). A
  failed write closes the guest's stream (the guest sees ``closed``), never raises in the host.
- Files the state opens are closed with it (``RequestState.close``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..capabilities import INHERIT, Capabilities, write_stream
from ..errors import UsageError
from . import resources as r

__all__ = ["close_quietly", "session"]

_STDIN_FD = 0
_STDOUT_FD = 1
_STDERR_FD = 2


def session(caps: Capabilities, grants: Any = None) -> r.RequestState:
    """A fresh state granting exactly ``caps`` (and ``grants``: a ``state.grants.RouteState``,
    the stores and variables)."""
    env = caps.env
    pairs = list(env.items()) if isinstance(env, Mapping) else list(env)
    state = r.RequestState(
        environment=pairs,
        arguments=tuple(caps.args),
        volumes=tuple(caps.dirs),
        log_keep=0,
        grants=grants,
    )
    try:
        io = caps.stdio
        state.stdin = _stdin(io.stdin, state)
        state.stdout = _sink(io.stdout, _STDOUT_FD, state)
        state.stderr = _sink(io.stderr, _STDERR_FD, state)
    except BaseException:
        state.close()
        raise
    for grant in caps.dirs:
        if not grant.host.is_dir():
            state.close()
            raise UsageError(f"cannot preopen directory {grant.host}")
    return state


def _stdin(spec: Any, state: r.RequestState) -> r.InputStream:
    if spec is None:
        return r.InputStream(b"")
    if isinstance(spec, bytes):
        return r.InputStream(spec)
    if isinstance(spec, str) and spec == INHERIT:
        return r.FdInputStream(_STDIN_FD)
    if isinstance(spec, Path):
        try:
            fd = os.open(spec, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            raise UsageError(f"cannot open stdin file {spec}") from None
        state.closers += (lambda: os.close(fd),)
        return r.FdInputStream(fd)
    data = spec.read()  # a file-like object: what it holds now is the guest's stdin
    return r.InputStream(data.encode() if isinstance(data, str) else bytes(data))


def _discard(data: bytes) -> bool:
    return True


def _sink(spec: Any, fd: int, state: r.RequestState) -> r.Sink:
    if spec is None:
        return _discard
    if isinstance(spec, str):  # INHERIT (CAPTURE became a Captured)
        return _fd_writer(fd)
    if isinstance(spec, Path):
        try:
            out = os.open(spec, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        except OSError:
            raise UsageError(f"cannot open output file {spec}") from None
        state.closers += (lambda: os.close(out),)
        return _fd_writer(out)
    return _stream_writer(spec)


def _fd_writer(fd: int) -> r.Sink:
    def write(data: bytes) -> bool:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view) :]
        except OSError:
            return False
        return True

    return write


def _stream_writer(stream: Any) -> r.Sink:
    def write(data: bytes) -> bool:
        return write_stream(stream, data)

    return write


def close_quietly(state: r.RequestState) -> None:
    """Close ``state`` (for finalizers: never raises)."""
    with contextlib.suppress(Exception):
        state.close()
