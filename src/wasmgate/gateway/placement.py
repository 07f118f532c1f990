"""Where a route's guests run: inline on the event loop, or on the guest threads (and how much of
them a route may take). State per route, kept on the event loop; no I/O, no threads.

Rules:
- Quick guests run inline. Handing a request to a guest thread and back costs more than a
  quick guest itself (thread wake-ups and GIL hand-offs: measured side by side on a hello
  guest, inline runs served 7% more requests a second with a p99 latency a third lower). So a
  request for a *repeatable* route (no volumes, no outbound HTTP: running it twice is
  invisible; ``ModuleHandler.repeatable``) may first run on the event loop under a budget (the
  gateway's ``inline_budget``). A guest still running at the budget is stopped, its output
  discarded, and the request runs again on a guest thread with the route's full timeout
  (``overran``); the route then stays on threads for ``INLINE_COOLDOWN``, as it does when its
  inline runs take ``INLINE_TYPICAL`` or more of CPU time on average (they would hold up the
  other connections; judged after ``JUDGE_AFTER`` runs, the first ones carry one-off costs).
  A run counts for at most ``OUTLIER_CAP`` times ``INLINE_TYPICAL`` in that average: one slow
  run (a garbage collection of the whole heap, page faults after a reload) must not send a
  quick route to threads for a cooldown, where it would serve fewer requests (about half as many
  with one worker, measured on a hello); a route whose runs keep taking ``INLINE_TYPICAL`` or
  more still goes there within a few runs.
  So the event loop is held at most the budget (plus one epoch tick) once per route per
  cooldown.
- Guest threads are shared between routes by ``workers.GuestPool``; while another route had a
  request in the last ``ACTIVE_WINDOW``, a route whose guests take ``SLOW_ROUTE`` or more on
  average on threads is ``capped``: it never takes the last free thread, so a quick request
  never waits for a slow guest to end. A slow route alone still uses every thread.
- Per-route state is held weakly: a reload's new handlers start afresh, the old ones are freed.
"""

from __future__ import annotations

import logging
import time
import weakref

from ..wagi.handler import ModuleHandler

__all__ = [
    "ACTIVE_WINDOW",
    "INLINE_COOLDOWN",
    "INLINE_TYPICAL",
    "JUDGE_AFTER",
    "OUTLIER_CAP",
    "SLOW_ROUTE",
    "Placement",
]

log = logging.getLogger("wasmgate.gateway")

INLINE_TYPICAL = 0.001  # mean CPU seconds of a route's inline runs from which it uses threads
INLINE_COOLDOWN = 10.0  # seconds a route stays on threads once sent there
JUDGE_AFTER = 10  # inline runs of a route before its mean may send it to threads
OUTLIER_CAP = 2.0  # a run counts for at most this many INLINE_TYPICAL in a route's mean
SLOW_ROUTE = 0.05  # mean guest seconds on threads from which a route never takes the last thread
ACTIVE_WINDOW = 1.0  # ... while another route had a request this recently (seconds)
_EWMA = 0.1  # weight of the newest run in a route's means


class Placement:
    """The running decisions of one gateway (use from its event loop only)."""

    def __init__(self) -> None:
        self._inline: weakref.WeakKeyDictionary[ModuleHandler, tuple[int, float]] = (
            weakref.WeakKeyDictionary()
        )  # (inline runs, mean CPU seconds)
        self._threads_until: weakref.WeakKeyDictionary[ModuleHandler, float] = (
            weakref.WeakKeyDictionary()
        )
        self._thread_mean: weakref.WeakKeyDictionary[ModuleHandler, float] = (
            weakref.WeakKeyDictionary()
        )
        self._last_request: weakref.WeakKeyDictionary[ModuleHandler, float] = (
            weakref.WeakKeyDictionary()
        )

    def seen(self, route: ModuleHandler) -> None:
        """A request for ``route`` arrived."""
        self._last_request[route] = time.monotonic()

    def inline_ok(self, route: ModuleHandler) -> bool:
        if not route.repeatable:
            return False
        until = self._threads_until.get(route)
        return until is None or time.monotonic() >= until

    def inline_ran(self, route: ModuleHandler, cpu_seconds: float) -> None:
        """An inline run of ``route`` ended within its budget, using ``cpu_seconds``."""
        runs, mean = self._inline.get(route, (0, 0.0))
        mean += _EWMA * (min(cpu_seconds, OUTLIER_CAP * INLINE_TYPICAL) - mean)
        self._inline[route] = (runs + 1, mean)
        if runs >= JUDGE_AFTER and mean >= INLINE_TYPICAL:
            self._to_threads(route, f"its inline runs take {mean * 1000:.1f} ms of CPU on average")

    def overran(self, route: ModuleHandler) -> None:
        """An inline run of ``route`` was stopped at its budget."""
        self._to_threads(route, "a guest overran the inline budget")

    def thread_ran(self, route: ModuleHandler, guest_seconds: float) -> None:
        """A run of ``route`` on a guest thread took ``guest_seconds``."""
        if guest_seconds:
            mean = self._thread_mean.get(route, guest_seconds)
            self._thread_mean[route] = mean + _EWMA * (guest_seconds - mean)

    def capped(self, route: ModuleHandler) -> bool:
        """Whether ``route``'s next thread run must leave a thread free for other routes."""
        if self._thread_mean.get(route, 0.0) < SLOW_ROUTE:
            return False
        since = time.monotonic() - ACTIVE_WINDOW
        return any(t > since for r, t in self._last_request.items() if r is not route)

    def _to_threads(self, route: ModuleHandler, why: str) -> None:
        self._threads_until[route] = time.monotonic() + INLINE_COOLDOWN
        self._inline.pop(route, None)
        log.info("%s: %s; running it on guest threads for %gs", route.label, why, INLINE_COOLDOWN)
