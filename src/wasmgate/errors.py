"""One exception root for everything wasmgate raises on purpose.

Rules:
- Every error wasmgate raises deliberately is a ``WasmgateError``. Each class carries what its
  boundary needs: ``exit_code`` for the CLI, ``http_status`` for the gateway. The CLI maps errors to
  exit statuses in one place (``cli.py``); the gateway maps them to HTTP statuses in one place.
- Messages are one line, name the thing at fault, and never contain host paths the user did not
  give us, host environment values or Python tracebacks.
- Exceptions raised by a user's Python host function are *not* wrapped: they reach the caller
  as they were raised (see ``embed.hostfuncs``).

Exit statuses (documented in the README, mirroring the ``wasmtime`` CLI and coreutils where they
have a convention):

======  =====================================================================
0-125   the guest's own ``proc_exit`` status
1       host-side error: missing file, bad module, link error, bad config
2       usage error (bad flag or argument)
124     wall-clock timeout (``--timeout``), as coreutils ``timeout``
134     the guest trapped (as ``wasmtime run``: 128 + SIGABRT)
137     the guest ran out of memory under ``--max-memory`` (128 + SIGKILL, as an OOM kill)
152     the guest ran out of fuel (``--fuel``) (128 + SIGXCPU, a CPU budget exceeded)
======  =====================================================================
"""

from __future__ import annotations

__all__ = [
    "ArtifactError",
    "CacheError",
    "CgiError",
    "ConfigError",
    "GuestExit",
    "GuestTrap",
    "LimitExceeded",
    "LinkError",
    "LoadError",
    "UsageError",
    "WasmgateError",
]


class WasmgateError(Exception):
    """Root of every error wasmgate raises on purpose."""

    exit_code: int = 1
    http_status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(WasmgateError):
    """A bad flag, argument or API parameter."""

    exit_code = 2


class ConfigError(WasmgateError):
    """A configuration file or object is invalid (modules.toml, limits, capabilities)."""


class LoadError(WasmgateError):
    """A module could not be read, parsed, validated or compiled."""


class ArtifactError(LoadError):
    """A precompiled artifact was refused (not allowed, or built for another engine)."""


class CacheError(WasmgateError):
    """The compiled-artifact cache could not be used (it is then bypassed, never trusted)."""


class LinkError(WasmgateError):
    """A module imports something the host does not provide, or exports lack an entry point."""


class GuestExit(WasmgateError):
    """The guest exited with a non-zero status through ``proc_exit`` / ``wasi:cli/exit``."""

    def __init__(self, code: int) -> None:
        super().__init__(f"guest exited with status {code}")
        self.code = code
        self.exit_code = code


class GuestTrap(WasmgateError):
    """The guest trapped: ``kind`` is a short name (``unreachable``, ``stack overflow`` ...)."""

    exit_code = 134

    def __init__(self, kind: str, backtrace: str = "") -> None:
        super().__init__(f"guest trapped: {kind}")
        self.kind = kind
        self.backtrace = backtrace


class LimitExceeded(WasmgateError):
    """A limit stopped the guest: ``kind`` is ``timeout``, ``fuel`` or ``memory``."""

    _EXIT = {"timeout": 124, "memory": 137, "fuel": 152}
    _HTTP = {"timeout": 504, "memory": 500, "fuel": 500}

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.exit_code = self._EXIT.get(kind, 1)
        self.http_status = self._HTTP.get(kind, 500)


class CgiError(WasmgateError):
    """A CGI exchange failed; ``http_status`` is the status the gateway answers with."""

    def __init__(self, http_status: int, message: str) -> None:
        super().__init__(message)
        self.http_status = http_status
