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
  ``wasmgate_connections_closed{cause}``. Both label sets are fixed by the code. A connection
  moved between ``--workers`` to even their load is counted by both workers in
  ``wasmgate_connections_moved{direction}`` (``handed``, ``adopted``).
- Request observations are batched: ``observe`` adds to plain per-label-set sums and bucket
  counts, and ``flush`` moves them into the metrics. In one process, every scrape of the
  registry flushes first, so a scrape sees every request finished before it; the event loop
  also flushes ``FLUSH_PERIOD`` after the first pending observation, which is what reaches a
  worker's multiprocess files (the master's scrape sees a worker's requests within that
  period), and ``flush`` runs on shutdown (``Gateway.close``). Why: with several workers each
  counter or bucket update is a locked write to a shared file; per request that cost 4.3 µs
  against 0.7 batched (3% of a hello's CPU time).
- The access log (one JSON object per line) is ``accesslog.py``'s.
"""

from __future__ import annotations

import asyncio
import threading
from bisect import bisect_left
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .accesslog import access_log  # the gateway takes both from here

__all__ = ["GatewayMetrics", "access_log"]

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_MAX_CACHED = 4096  # (route, status, cause) label sets whose metric children are kept at hand
FLUSH_PERIOD = 0.25  # seconds from a first pending observation to its flush (see the rules)


class _Pending:
    """What ``observe`` gathered for one label set since the last flush."""

    __slots__ = ("guest", "guest_count", "guest_sum", "latency", "latency_sum", "requests")

    def __init__(self) -> None:
        self.requests = 0
        self.latency_sum = 0.0
        self.latency = [0] * (len(_BUCKETS) + 1)  # per bucket (not cumulative), then +Inf
        self.guest_count = 0
        self.guest_sum = 0.0
        self.guest = [0] * (len(_BUCKETS) + 1)


class _FlushFirst:
    """A collector registered before the metrics: a scrape of the registry flushes first."""

    def __init__(self, metrics: GatewayMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> list[Any]:
        self._metrics.flush()
        return []


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self._pending: dict[tuple[str, int, str], _Pending] = {}
        self._lock = threading.Lock()  # observe (the loop) against flush (a scrape's thread)
        self._timer_loop: asyncio.AbstractEventLoop | None = None  # where a flush is pending
        r.register(_FlushFirst(self))
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
        self.moved = Counter(
            "wasmgate_connections_moved",
            "Connections moved between workers to even their load (balance.py), by direction",
            ["direction"],
            registry=r,
        )
        self.in_flight = Gauge(
            "wasmgate_in_flight",
            "Requests admitted and not yet finished",
            registry=r,
            multiprocess_mode="livesum",
        )
        self._children: dict[tuple[str, int, str], tuple[Any, Any, Any, Any]] = {}
        # Batching adds to a histogram child's own values. Until the first flush has seen a
        # child (None), the observations are also kept one by one; where prometheus_client
        # keeps its values differently (False), they are replayed and observed directly after.
        self._batched: bool | None = None
        self._unbatched: list[tuple[tuple[str, int, str], float, float | None]] = []
        self.queued = Gauge(
            "wasmgate_queued",
            "Admitted requests waiting for a worker thread",
            registry=r,
            multiprocess_mode="livesum",
        )

    def observe(
        self, route: str, status: int, cause: str, duration: float, guest_seconds: float | None
    ) -> None:
        """One finished request (on the event loop); counted at the next flush."""
        key = (route, status, cause)
        if self._batched is False:
            self._observe_now(key, duration, guest_seconds)
            return
        with self._lock:
            if self._batched is not True:  # undecided (or decided against since the test)
                self._unbatched.append((key, duration, guest_seconds))
            pending = self._pending.get(key)
            if pending is None:
                pending = self._pending[key] = _Pending()
            pending.requests += 1
            pending.latency_sum += duration
            pending.latency[bisect_left(_BUCKETS, duration)] += 1
            if guest_seconds is not None:
                pending.guest_count += 1
                pending.guest_sum += guest_seconds
                pending.guest[bisect_left(_BUCKETS, guest_seconds)] += 1
        timer_loop = self._timer_loop
        if timer_loop is not None and not timer_loop.is_closed():
            # A flush is due on a live loop (it flushes what every thread observed). Asked
            # first: asking for the running loop costs a system call (its fork check).
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a direct caller): count at once
            self.flush()
            return
        self._timer_loop = loop
        loop.call_later(FLUSH_PERIOD, self._flush_on_timer)

    def _flush_on_timer(self) -> None:
        self._timer_loop = None
        self.flush()

    def flush(self) -> None:
        """Move the pending observations into the metrics (any thread)."""
        with self._lock:
            pending, self._pending = self._pending, {}
            unbatched, self._unbatched = self._unbatched, []
            if pending and self._batched is None:
                route, status, cause = next(iter(pending))
                self._batched = _batchable(self._children_of(route, status, cause)[1])
        if self._batched is False:
            for key, duration, guest_seconds in unbatched:
                self._observe_now(key, duration, guest_seconds)
            return
        for (route, status, cause), p in pending.items():
            requests, latency, guest_time, errors = self._children_of(route, status, cause)
            requests.inc(p.requests)
            if errors is not None:
                errors.inc(p.requests)
            _add_to_histogram(latency, p.latency_sum, p.latency)
            if p.guest_count:
                _add_to_histogram(guest_time, p.guest_sum, p.guest)

    def _observe_now(
        self, key: tuple[str, int, str], duration: float, guest_seconds: float | None
    ) -> None:
        requests, latency, guest_time, errors = self._children_of(*key)
        requests.inc()
        latency.observe(duration)
        if guest_seconds is not None:
            guest_time.observe(guest_seconds)
        if errors is not None:
            errors.inc()

    def _children_of(self, route: str, status: int, cause: str) -> tuple[Any, Any, Any, Any]:
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
        return children

    def gateway_answered(self, status: int, cause: str) -> None:
        """One response the gateway answered itself (see the rules)."""
        self.answered.labels(str(status), cause).inc()

    def connection_closed(self, cause: str) -> None:
        self.closed.labels(cause).inc()

    def connection_moved(self, direction: str) -> None:
        """A connection this worker handed to another (``"handed"``) or took (``"adopted"``)."""
        self.moved.labels(direction).inc()


def _batchable(histogram: Any) -> bool:
    """Whether a histogram child keeps the values ``_add_to_histogram`` adds to."""
    buckets = getattr(histogram, "_buckets", None)
    return (
        hasattr(getattr(histogram, "_sum", None), "inc")
        and isinstance(buckets, list)
        and len(buckets) == len(_BUCKETS) + 1
        and all(hasattr(b, "inc") for b in buckets)
    )


def _add_to_histogram(histogram: Any, total: float, counts: list[int]) -> None:
    """Add a batch of observations (their sum, and their count per bucket as ``_Pending``
    keeps them) to a histogram child: what one ``observe`` per value would have added."""
    histogram._sum.inc(total)
    buckets = histogram._buckets  # prometheus_client keeps one value per bucket, not cumulative
    for i, n in enumerate(counts):
        if n:
            buckets[i].inc(n)
