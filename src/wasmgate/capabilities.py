"""What a guest may touch: argv, environment, directories and stdio. Deny by default.

Rules:
- A guest sees nothing of the host unless a ``Capabilities`` value grants it: no host environment
  variable, no directory, no stdin. ``Capabilities()`` is a sealed sandbox.
- Environment grants are explicit pairs (or a mapping). Copying a host variable is a deliberate
  act of the caller (``env_from_host``), done once, by name; nothing is inherited wholesale.
- Directories are preopened by the engine under a guest path; the guest cannot leave them (WASI
  resolves every path, ``..`` and symlinks included, inside the preopen). ``read_only`` grants
  cannot create, write, rename or delete anything.
- Stdio is given per stream: ``INHERIT`` (the host process's own stream), ``None`` (closed/empty),
  a ``Path`` (a host file), a file-like object (anything with ``write`` for output, with ``read``
  for stdin), ``CAPTURE`` for output (kept in memory: ``Stdio.stdout.getvalue()``, or the
  instance's ``stdout``), or, for stdin only, ``bytes``. Anything else is a ``TypeError`` when
  the ``Stdio`` is made, never output silently lost.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, Protocol

from .errors import SettingTypeError, UsageError

__all__ = [
    "CAPTURE",
    "INHERIT",
    "Capabilities",
    "Captured",
    "DirGrant",
    "Inherit",
    "StdinSpec",
    "Stdio",
    "StdoutSpec",
    "env_from_host",
    "parse_dir_grant",
    "parse_env_grant",
    "request_capabilities",
    "write_stream",
]

Inherit = Literal["inherit"]
INHERIT: Final[Inherit] = "inherit"
Capture = Literal["capture"]
CAPTURE: Final[Capture] = "capture"


class Readable(Protocol):
    def read(self) -> bytes | str: ...


class Writable(Protocol):
    def write(self, data: Any, /) -> Any: ...


class Captured:
    """A guest's output stream kept in memory (what ``CAPTURE`` becomes)."""

    __slots__ = ("_chunks",)

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._chunks.append(data)
        return len(data)

    def getvalue(self) -> bytes:
        """Everything written so far."""
        if len(self._chunks) > 1:
            self._chunks[:] = [b"".join(self._chunks)]
        return self._chunks[0] if self._chunks else b""

    def __repr__(self) -> str:
        return f"<Captured {len(self.getvalue())} bytes>"


StdinSpec = Inherit | bytes | Path | Readable | None
StdoutSpec = Inherit | Capture | Path | Writable | None


@dataclass(frozen=True, slots=True)
class DirGrant:
    """A host directory preopened for the guest at ``guest`` (an absolute guest path)."""

    host: Path
    guest: str
    read_only: bool = False

    def __post_init__(self) -> None:
        if not self.guest or "\0" in self.guest:
            raise UsageError(f"invalid guest path {self.guest!r}")


@dataclass(frozen=True, slots=True)
class Stdio:
    stdin: StdinSpec = None
    stdout: StdoutSpec = None
    stderr: StdoutSpec = None

    def __post_init__(self) -> None:
        stdin = self.stdin
        if not (
            stdin is None
            or stdin == INHERIT
            or isinstance(stdin, bytes | Path)
            or callable(getattr(stdin, "read", None))
        ):
            raise SettingTypeError(
                "stdin must be INHERIT, None, bytes, a Path or a file-like object with read(), "
                f"got {type(stdin).__name__}"
            )
        for name in ("stdout", "stderr"):
            stream = getattr(self, name)
            if stream == CAPTURE:
                object.__setattr__(self, name, Captured())
            elif not (
                stream is None
                or stream == INHERIT
                or isinstance(stream, Path)
                or callable(getattr(stream, "write", None))
            ):
                raise SettingTypeError(
                    f"{name} must be INHERIT, CAPTURE, None, a Path or a file-like object with "
                    f"write(), got {type(stream).__name__}"
                )


@dataclass(frozen=True, slots=True)
class Capabilities:
    """Everything a guest is granted. The default grants nothing."""

    args: Sequence[str] = ()
    env: tuple[tuple[str, str], ...] | Mapping[str, str] = ()
    dirs: tuple[DirGrant, ...] = ()
    stdio: Stdio = field(default_factory=Stdio)

    def __post_init__(self) -> None:
        # Checked over joined strings first (a served request passes ~30 variables each time);
        # the loop that names the culprit runs only when something is wrong.
        env = self.env
        if type(env) is not dict:  # (a served request's is a dict: skip the ABC check)
            env = env if isinstance(env, Mapping) else dict(env)
        names = "".join(env)
        if "=" in names or "\0" in names or not all(env) or "\0" in "".join(env.values()):
            for key, value in env.items():
                if not key or "=" in key or "\0" in key or "\0" in value:
                    raise UsageError(f"invalid environment variable {key!r}")
        if "\0" in "".join(self.args):
            raise UsageError("arguments cannot contain NUL characters")


def request_capabilities(
    args: Sequence[str],
    env: dict[str, str],
    dirs: tuple[DirGrant, ...],
    stdin: bytes,
    stdout: Path,
    stderr: Path,
) -> Capabilities:
    """``Capabilities`` for values the caller built itself from checked parts (the gateway's CGI
    environment and capture pipes, once per request), without checking them again; WASI still
    refuses a NUL in any argv or environment string."""
    put = object.__setattr__
    stdio = object.__new__(Stdio)
    put(stdio, "stdin", stdin)
    put(stdio, "stdout", stdout)
    put(stdio, "stderr", stderr)
    caps = object.__new__(Capabilities)
    put(caps, "args", args)
    put(caps, "env", env)
    put(caps, "dirs", dirs)
    put(caps, "stdio", stdio)
    return caps


def parse_env_grant(text: str) -> tuple[str, str]:
    """``K=V`` grants ``K`` with value ``V``; a bare ``NAME`` copies that one host variable."""
    key, sep, value = text.partition("=")
    if not key or "\0" in text:
        raise UsageError(f"invalid value {text!r} (expected KEY=VALUE or NAME)")
    if sep:
        return key, value
    return env_from_host(key)


def env_from_host(name: str) -> tuple[str, str]:
    value = os.environ.get(name)
    if value is None:
        raise UsageError(f"{name} is not set in the host environment")
    return name, value


def parse_dir_grant(text: str, *, read_only: bool = False) -> DirGrant:
    """``HOST[::GUEST]`` as the ``wasmtime`` CLI spells it; GUEST defaults to HOST."""
    host, sep, guest = text.partition("::")
    if not host or (sep and not guest):
        raise UsageError(f"invalid directory grant {text!r} (expected HOST[::GUEST])")
    path = Path(host)
    if not path.is_dir():
        raise UsageError(f"directory not found: {host}")
    return DirGrant(host=path, guest=guest if sep else host, read_only=read_only)


def write_stream(stream: Any, data: bytes) -> bool:
    """Write guest output to a file-like ``stream`` given as stdout or stderr: binary, or text
    (decoded as UTF-8, undecodable bytes replaced). Never raises: False when the write failed."""
    try:
        try:
            stream.write(data)
        except TypeError:  # a text stream
            stream.write(data.decode("utf-8", "replace"))
    except Exception:
        return False
    return True
