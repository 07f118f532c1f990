"""One exception root for everything wasmgate raises on purpose.

Rules:
- Every error wasmgate raises deliberately is a ``WasmgateError``. Each class carries what its
  boundary needs: ``exit_code`` for the CLI, ``http_status`` for the gateway. The CLI maps errors to
  exit statuses in one place (``cli/main.py``); the gateway maps them to HTTP statuses in one place.
- What happened to a guest (``engine.outcome.Outcome.status``) maps to an exit status, an HTTP
  status and an exception through one table each, here: ``EXIT_STATUS``, ``HTTP_STATUS`` and
  ``Outcome.error()`` (which picks the class below). Faces read them and build nothing of their own.
- Invalid settings (``Limits(fuel=1.5)``, ``"-5MiB"``) raise ``InvalidSetting`` (a ``UsageError``
  and a ``ValueError``) or ``SettingTypeError`` (a ``UsageError`` and a ``TypeError``), so Python
  callers can catch the builtin they expect and the CLI still exits with status 2.
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
    "EXIT_STATUS",
    "HTTP_STATUS",
    "ArtifactError",
    "CacheError",
    "CgiError",
    "ConfigError",
    "GuestError",
    "GuestExit",
    "GuestTrap",
    "InvalidSetting",
    "LimitExceeded",
    "LinkError",
    "LoadError",
    "SettingTypeError",
    "UsageError",
    "WasmgateError",
    "given",
]


# Outcome status -> exit status of ``wasmgate run``/``call`` ("exit" is the guest's own status).
EXIT_STATUS: dict[str, int] = {"trap": 134, "timeout": 124, "memory": 137, "fuel": 152, "error": 1}
# Outcome status -> HTTP status a route answers with when its guest failed that way.
HTTP_STATUS: dict[str, int] = {
    "exit": 500,
    "trap": 500,
    "error": 500,
    "fuel": 500,
    "memory": 500,
    "timeout": 504,
}


def given(count: int) -> str:
    """``"1 was given"``, ``"3 were given"``: for argument-count messages."""
    return f"{count} was given" if count == 1 else f"{count} were given"


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


class InvalidSetting(UsageError, ValueError):
    """A setting's value is out of its domain (a negative size, zero fuel, fractional fuel)."""


class SettingTypeError(UsageError, TypeError):
    """A setting was given a value of the wrong type (a float for fuel, a list for a size)."""


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


class GuestError(WasmgateError):
    """What a guest did wrong (exit, trap, limit). ``hint`` is one line of likely cause, or ""
    (e.g. that its memory was at the ``max_memory`` cap when it failed); never a guess that
    replaces the status itself."""

    hint: str = ""


class GuestExit(GuestError):
    """The guest exited with a non-zero status through ``proc_exit`` / ``wasi:cli/exit``."""

    http_status = HTTP_STATUS["exit"]

    def __init__(self, code: int) -> None:
        super().__init__(f"guest exited with status {code}")
        self.code = code
        self.exit_code = code


class GuestTrap(GuestError):
    """The guest trapped: ``kind`` is a short name (``unreachable``, ``stack overflow`` ...)."""

    exit_code = EXIT_STATUS["trap"]
    http_status = HTTP_STATUS["trap"]

    def __init__(self, kind: str, backtrace: str = "") -> None:
        super().__init__(f"guest trapped: {kind}")
        self.kind = kind
        self.backtrace = backtrace


class LimitExceeded(GuestError):
    """A limit stopped the guest: ``kind`` is ``timeout``, ``fuel`` or ``memory``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.exit_code = EXIT_STATUS.get(kind, 1)
        self.http_status = HTTP_STATUS.get(kind, 500)


class CgiError(WasmgateError):
    """A CGI exchange failed; ``http_status`` is the status the gateway answers with."""

    def __init__(self, http_status: int, message: str) -> None:
        super().__init__(message)
        self.http_status = http_status
