"""Prometheus metrics and the structured access log of the gateway.

Rules:
- Each gateway has its own registry (two gateways in one process never mix their numbers); the
  server exposes it on a separate ``--metrics-listen`` address, never on the public one.
- With several worker processes, ``wasmgate serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` before
  starting them: each worker's values go to shared files and the parent serves their sum. Gauges
  are therefore moved with ``inc``/``dec`` (``livesum``), never computed by callbacks.
- Labels are bounded: ``route`` is the route *pattern* (from modules.toml), never the request path,
  and ``cause`` is one of a fixed set, so a client cannot create new time series. ``observe``
  runs on the event loop only; it keeps the metric children of each label set it has seen.
- Every response the gateway answers itself (no guest ran: 400, 404, 408, 413, 414, 431, 501,
  503, ...) is counted once in ``wasmgate_gateway_responses{status, cause}``, whether the
  connection guard (``protocol.py``) or the application answered it; a connection the gateway
  cuts (a slow reader, a slow body after the response began) is counted in
  ``wasmgate_connections_closed{cause}``. Both label sets are fixed by the code.
- The access log (one JSON object per line) is ``accesslog.py``'s.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .accesslog import access_log  # the gateway takes both from here

__all__ = ["GatewayMetrics", "access_log"]

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_MAX_CACHED = 4096  # (route, status, cause) label sets whose metric children are kept at hand


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "wasmgate_requests", "Requests answered", ["route", "status"], registry=r
        )
        self.errors = Counter(
            "wasmgate_errors", "Requests that failed, by cause", ["route", "cause"], registry=r
        )
        self.latency = Histogram(
            "wasmgate_request_duration_seconds",
            "Time from request to response",
            ["route"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.guest_time = Histogram(
            "wasmgate_guest_duration_seconds",
            "Time spent running the guest",
            ["route"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.reloads = Counter("wasmgate_reloads", "Configuration reloads", ["result"], registry=r)
        self.answered = Counter(
            "wasmgate_gateway_responses",
            "Responses the gateway answered itself (no guest), by status and cause",
            ["status", "cause"],
            registry=r,
        )
        self.closed = Counter(
            "wasmgate_connections_closed",
            "Connections the gateway closed on a client, by cause",
            ["cause"],
            registry=r,
        )
        self.in_flight = Gauge(
            "wasmgate_in_flight",
            "Requests admitted and not yet finished",
            registry=r,
            multiprocess_mode="livesum",
        )
        self._children: dict[tuple[str, int, str], tuple[Any, Any, Any, Any]] = {}
        self.queued = Gauge(
            "wasmgate_queued",
            "Admitted requests waiting for a worker thread",
            registry=r,
            multiprocess_mode="livesum",
        )

    def observe(
        self, route: str, status: int, cause: str, duration: float, guest_seconds: float | None
    ) -> None:
        key = (route, status, cause)
        children = self._children.get(key)
        if children is None:  # labels() takes a lock and builds keys: look each set up once
            children = (
                self.requests.labels(route, str(status)),
                self.latency.labels(route),
                self.guest_time.labels(route),
                self.errors.labels(route, cause) if cause != "ok" else None,
            )
            if len(self._children) < _MAX_CACHED:
                self._children[key] = children
        requests, latency, guest_time, errors = children
        requests.inc()
        latency.observe(duration)
        if guest_seconds is not None:
            guest_time.observe(guest_seconds)
        if errors is not None:
            errors.inc()

    def gateway_answered(self, status: int, cause: str) -> None:
        """One response the gateway answered itself (see the rules)."""
        self.answered.labels(str(status), cause).inc()

    def connection_closed(self, cause: str) -> None:
        self.closed.labels(cause).inc()
