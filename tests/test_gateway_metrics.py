"""The gateway's request metrics: batched observations count exactly what one observe per
request would, a scrape sees every request finished before it, and the event loop flushes."""

from __future__ import annotations

import asyncio
import math

import pytest
from prometheus_client import generate_latest

from wasmgate.gateway import metrics as metrics_module
from wasmgate.gateway.metrics import FLUSH_PERIOD, GatewayMetrics

# (route, status, cause, duration, guest seconds): every bucket edge case, +Inf, no guest, errors
REQUESTS = [
    ("/a", 200, "ok", 0.0001, 0.00005),
    ("/a", 200, "ok", 0.0005, 0.0005),  # exactly on a bucket bound: that bucket (le)
    ("/a", 200, "ok", 0.0007, None),
    ("/a", 500, "trap", 0.02, 0.019),
    ("/b", 504, "timeout", 31.0, 30.5),  # past the last bound: +Inf only
    ("/b", 404, "no-route", 0.00002, None),
    ("/a", 200, "ok", 2.5, 2.4),
]


def _direct(requests: list[tuple[str, int, str, float, float | None]]) -> bytes:
    """The exposition of one ``observe`` per value, straight into prometheus_client."""
    m = GatewayMetrics()
    for route, status, cause, duration, guest in requests:
        m._observe_now((route, status, cause), duration, guest)
    return generate_latest(m.registry)


def _samples(text: bytes) -> list[tuple[bytes, float]]:
    """Each sample's name and labels, and its value (creation times left out: they differ)."""
    samples = []
    for line in text.splitlines():
        if line.startswith(b"#") or b"_created" in line:
            continue
        name, _, value = line.rpartition(b" ")
        samples.append((name, float(value)))
    return samples


def _same(a: bytes, b: bytes) -> bool:
    """The same samples; sums may differ in the last bits (added in another order)."""
    sa, sb = _samples(a), _samples(b)
    return [n for n, _ in sa] == [n for n, _ in sb] and all(
        math.isclose(x, y, rel_tol=1e-12) for (_, x), (_, y) in zip(sa, sb, strict=True)
    )


def test_batched_observations_expose_what_direct_ones_do() -> None:
    async def run() -> bytes:
        m = GatewayMetrics()
        for _ in range(3):  # three batches: the first decides, the others add to it
            for request in REQUESTS:
                m.observe(*request)
            m.flush()
        return generate_latest(m.registry)

    batched = asyncio.run(run())
    assert _same(batched, _direct(REQUESTS * 3))
    assert b'wasmgate_requests_total{route="/a",status="200"} 12.0' in batched


def test_a_scrape_sees_every_request_finished_before_it() -> None:
    async def run() -> None:
        m = GatewayMetrics()
        m.observe("/a", 200, "ok", 0.001, 0.0005)
        m.observe("/a", 200, "ok", 0.001, 0.0005)
        text = generate_latest(m.registry)  # no flush by hand, no timer yet
        assert b'wasmgate_requests_total{route="/a",status="200"} 2.0' in text
        assert b'wasmgate_guest_duration_seconds_count{route="/a"} 2.0' in text

    asyncio.run(run())


def test_the_event_loop_flushes_within_the_period() -> None:
    async def run() -> None:
        m = GatewayMetrics()
        m.observe("/a", 500, "trap", 0.001, 0.0005)
        child = m.requests.labels("/a", "500")
        assert child._value.get() == 0  # pending, not yet in the metric's own value
        await asyncio.sleep(FLUSH_PERIOD + 0.2)
        assert child._value.get() == 1  # what a worker's multiprocess file would hold now
        assert m.errors.labels("/a", "trap")._value.get() == 1
        m.observe("/a", 500, "trap", 0.001, None)  # the next batch gets its own flush
        await asyncio.sleep(FLUSH_PERIOD + 0.2)
        assert child._value.get() == 2

    asyncio.run(run())


def test_a_loop_closed_before_its_flush_does_not_hold_later_observations() -> None:
    m = GatewayMetrics()
    child = m.requests.labels("/a", "200")

    async def observe_and_leave() -> None:
        m.observe("/a", 200, "ok", 0.001, None)  # its flush is armed on a loop about to close

    async def observe_and_wait() -> None:
        m.observe("/a", 200, "ok", 0.001, None)
        await asyncio.sleep(FLUSH_PERIOD + 0.2)

    asyncio.run(observe_and_leave())
    assert child._value.get() == 0
    asyncio.run(observe_and_wait())  # a new loop arms its own flush: both are counted
    assert child._value.get() == 2


def test_observations_without_a_loop_count_at_once() -> None:
    m = GatewayMetrics()
    m.observe("/a", 200, "ok", 0.001, None)
    assert m.requests.labels("/a", "200")._value.get() == 1


def test_histograms_kept_differently_get_every_value_directly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(metrics_module, "_batchable", lambda histogram: False)

    async def run() -> bytes:
        m = GatewayMetrics()
        for request in REQUESTS:
            m.observe(*request)
        m.flush()  # finds the histograms unbatchable: replays what it gathered
        assert m._batched is False
        for request in REQUESTS:
            m.observe(*request)  # straight in from now on
        assert not m._pending
        return generate_latest(m.registry)

    assert _same(asyncio.run(run()), _direct(REQUESTS * 2))
