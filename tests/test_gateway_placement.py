"""Where a route's guests run: the placement policy on its own, with a stand-in clock."""

from __future__ import annotations

from typing import Any

import pytest

from wasmgate.gateway import placement as P
from wasmgate.gateway.placement import Placement


class Route:
    def __init__(self, label: str, repeatable: bool = True) -> None:
        self.label = label
        self.repeatable = repeatable


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(P.time, "monotonic", lambda: now[0])
    return now


def test_only_repeatable_routes_run_inline(clock: list[float]) -> None:
    p = Placement()
    route: Any = Route("r")
    volume: Any = Route("v", repeatable=False)
    assert p.inline_ok(route)
    assert not p.inline_ok(volume)


def test_an_overrun_sends_a_route_to_threads_for_the_cooldown(clock: list[float]) -> None:
    p = Placement()
    route: Any = Route("r")
    p.overran(route)
    assert not p.inline_ok(route)
    clock[0] += P.INLINE_COOLDOWN - 0.1
    assert not p.inline_ok(route)
    clock[0] += 0.2
    assert p.inline_ok(route)


def test_routes_whose_inline_runs_cost_too_much_cpu_go_to_threads(clock: list[float]) -> None:
    p = Placement()
    quick: Any = Route("quick")
    heavy: Any = Route("heavy")
    p.inline_ran(heavy, 1.0)  # a cold first run is not judged
    assert p.inline_ok(heavy)
    for _ in range(P.JUDGE_AFTER * 3):
        p.inline_ran(quick, P.INLINE_TYPICAL / 10)
        p.inline_ran(heavy, P.INLINE_TYPICAL * 3)
    assert p.inline_ok(quick)
    assert not p.inline_ok(heavy)


def test_one_slow_run_does_not_send_a_quick_route_to_threads(clock: list[float]) -> None:
    p = Placement()
    quick: Any = Route("quick")
    for _ in range(P.JUDGE_AFTER * 3):
        p.inline_ran(quick, P.INLINE_TYPICAL / 10)
    p.inline_ran(quick, 0.05)  # e.g. a full garbage collection during the run
    assert p.inline_ok(quick)
    for _ in range(P.JUDGE_AFTER):
        p.inline_ran(quick, P.INLINE_TYPICAL / 10)
        p.inline_ran(quick, 0.05)  # every other run slow: no outlier any more
    assert not p.inline_ok(quick)


def test_slow_routes_are_capped_only_while_others_are_in_use(clock: list[float]) -> None:
    p = Placement()
    slow: Any = Route("slow")
    other: Any = Route("other")
    for _ in range(20):
        p.thread_ran(slow, P.SLOW_ROUTE * 4)
    p.seen(slow)
    assert not p.capped(slow)  # alone: may use every thread
    p.seen(other)
    assert p.capped(slow)
    assert not p.capped(other)  # quick
    clock[0] += P.ACTIVE_WINDOW + 0.1
    assert not p.capped(slow)  # the other route went quiet
