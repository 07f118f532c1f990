"""The configuration objects that feed both the CLI and the Python API.

Rules:
- The CLI is a thin adapter: every ``wasmgate run`` flag is a field here (with the same name), and
  ``wasmgate.run(RunConfig(...))`` does exactly what the command line does.
- Values are validated when the object is built, so a bad value fails before any wasm is loaded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from .capabilities import INHERIT, Capabilities, DirGrant, Stdio
from .engine import CacheConfig, EngineSettings
from .limits import CLI_NAMES, Limits

__all__ = [
    "DEFAULT_BODY_MIN_RATE",
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_HEADER_TIMEOUT",
    "DEFAULT_MAX_SEND_BUFFER",
    "DEFAULT_ROUTE_LIMITS",
    "DEFAULT_SEND_TIMEOUT",
    "CacheConfig",
    "GatewayConfig",
    "RunConfig",
]

# Connection-guard defaults (``wasmgate serve --header-timeout`` etc.; see ``gateway/protocol.py``).
DEFAULT_HEADER_TIMEOUT = 10.0  # seconds for the request line and headers
DEFAULT_BODY_TIMEOUT = 20.0  # seconds of grace for the body before the minimum rate applies
DEFAULT_BODY_MIN_RATE = 500.0  # bytes per second, for request bodies and for reading responses
DEFAULT_SEND_TIMEOUT = 30.0  # seconds over which a client must read its response at that rate
DEFAULT_MAX_SEND_BUFFER = 128 * 1024 * 1024  # response bytes a worker holds for slow readers


@dataclass(frozen=True, slots=True)
class RunConfig:
    """One ``wasmgate run``: a guest, what it is granted, and its limits."""

    module: Path
    args: tuple[str, ...] = ()
    argv0: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    dirs: tuple[DirGrant, ...] = ()
    limits: Limits = Limits()
    invoke: str | None = None
    allow_precompiled: bool = False
    cache: CacheConfig = CacheConfig()
    stdio: Stdio = field(default_factory=lambda: Stdio(INHERIT, INHERIT, INHERIT))

    def capabilities(self) -> Capabilities:
        argv0 = self.argv0 if self.argv0 is not None else self.module.name
        return Capabilities(
            args=(argv0, *self.args), env=self.env, dirs=self.dirs, stdio=self.stdio
        )

    def engine_settings(self) -> EngineSettings:
        return EngineSettings(consume_fuel=self.limits.fuel is not None)


# What every route gets unless the server's flags or its modules.toml entry say otherwise; sane
# for a public gateway: 30 s, 256 MiB of linear memory, no fuel budget, 10 MiB of request body,
# and a response of up to 16 MiB.
DEFAULT_ROUTE_LIMITS = Limits(
    timeout=30.0,
    max_memory=256 * 1024 * 1024,
    max_request_body=10 * 1024 * 1024,
    max_response_body=16 * 1024 * 1024,
).named(CLI_NAMES)


def _default_threads() -> int:
    import os

    return max(2, os.cpu_count() or 2)


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """One ``wasmgate serve``: the modules.toml to serve and how to serve it.

    Every ``serve`` flag is a field here; ``wasmgate.gateway.create_app(GatewayConfig(...))``
    builds the same application the CLI serves.

    The connection guard (``gateway/protocol.py``; applied by ``wasmgate serve``, not by
    ``create_app`` under another ASGI server) takes ``header_timeout`` (seconds for a request's
    line and headers), ``body_timeout`` (seconds before a request body must keep up
    ``body_min_rate``), ``body_min_rate`` (bytes per second, for bodies and for reading
    responses) and ``send_timeout`` (seconds over which a client must read its response at
    ``body_min_rate``). Each must be a positive, finite number; anything else is a one-line
    ``UsageError`` naming the field (exit status 2 from the CLI).

    ``max_body_buffer`` bounds the bytes of request bodies a worker process holds at once
    (received, or being received, for requests not finished yet): a request whose body would
    not fit gets 503 with ``Retry-After`` instead of being read. With ``threads + queue``
    bounding the requests admitted, it bounds the gateway's memory whatever the clients send.

    ``max_send_buffer`` bounds the response bytes a worker process holds for clients that do not
    read them fast enough (``--max-send-buffer``; see ``gateway/protocol.py``): past it, the
    connection holding the most is cut off.

    ``hostname`` is the authority (``name[:port]``) used for ``SERVER_NAME``/``SERVER_PORT`` and
    ``X_FULL_URL`` when a request has no ``Host``; with ``pin_hostname`` (``wasmgate serve
    --hostname``) it is used for every request, whatever ``Host`` the client sent.

    ``inline_budget`` (seconds; None: off) lets a quick, repeatable route run its guests on the
    event loop itself, skipping the hand-off to a guest thread; see ``gateway/placement.py``.

    ``runtime_config_file`` (Spin's runtime-config TOML) names the backend of each key-value
    store label; ``state_dir`` holds the SQLite files of stores it does not place (``default``
    at least; None: ``.wasmgate/state``). See ``state.runtime_config``.
    """

    modules_toml: Path
    listen: str = "127.0.0.1:3000"
    hostname: str = "localhost:3000"
    env: tuple[tuple[str, str], ...] = ()
    log_dir: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    defaults: Limits = DEFAULT_ROUTE_LIMITS
    workers: int = 1
    threads: int = field(default_factory=_default_threads)
    queue: int = 64
    max_body_buffer: int = 256 * 1024 * 1024
    inline_budget: float | None = 0.02
    metrics_listen: str | None = None
    watch: bool = False
    access_log: bool = True
    graceful_timeout: float = 30.0
    cache: CacheConfig = CacheConfig()
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    body_min_rate: float = DEFAULT_BODY_MIN_RATE
    send_timeout: float = DEFAULT_SEND_TIMEOUT
    max_send_buffer: int = DEFAULT_MAX_SEND_BUFFER
    pin_hostname: bool = False
    runtime_config_file: Path | None = None
    state_dir: Path | None = None

    def __post_init__(self) -> None:
        from .errors import UsageError

        # Limits left unset take the built-in defaults: a route is never unbounded by accident.
        object.__setattr__(self, "defaults", DEFAULT_ROUTE_LIMITS.merged(self.defaults))
        for name, unit in (
            ("header_timeout", "seconds"),
            ("body_timeout", "seconds"),
            ("body_min_rate", "bytes per second"),
            ("send_timeout", "seconds"),
        ):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value <= 0
            ):
                raise UsageError(f"{name} must be a positive number of {unit}, got {value!r}")
        if self.workers < 1:
            raise UsageError("workers must be at least 1")
        if self.threads < 1:
            raise UsageError("threads must be at least 1")
        if self.queue < 0:
            raise UsageError("queue must be zero or more")
        if self.max_body_buffer < 1:
            raise UsageError("max_body_buffer must be at least 1 byte")
        if self.max_send_buffer < 1:
            raise UsageError("max_send_buffer must be at least 1 byte")
        if self.inline_budget is not None and not (0 < self.inline_budget <= 1):
            raise UsageError("inline_budget must be a number of seconds in (0, 1], or None")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise UsageError("--tls-cert and --tls-key go together")
