"""The coalescing transport of the connection guard: one write per event-loop pass, order kept;
one flush per pass for the whole loop, and the work that waits for it run after it."""

from __future__ import annotations

import asyncio
import gc
import logging
import weakref
from typing import Any

import pytest

from wasmgate.gateway.protocol import CoalescingTransport, LoopPass


class _Recorder:
    def __init__(self, log: list[tuple[str, Any]] | None = None) -> None:
        self.calls: list[tuple[str, Any]] = [] if log is None else log
        self.closing = False

    def write(self, data: bytes) -> None:
        self.calls.append(("write", data))

    def close(self) -> None:
        self.calls.append(("close", None))
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 7

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


def test_writes_of_one_pass_go_out_as_one_in_order() -> None:
    async def main() -> list[tuple[str, Any]]:
        real = _Recorder()
        t = CoalescingTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
        t.write(b"HTTP/1.1 200 OK\r\n\r\n")
        t.write(b"body")
        assert real.calls == []  # nothing yet: sent at the next pass
        assert t.get_write_buffer_size() == 7 + 23
        await asyncio.sleep(0)
        t.write(b"next")
        await asyncio.sleep(0)
        return real.calls

    assert asyncio.run(main()) == [("write", b"HTTP/1.1 200 OK\r\n\r\nbody"), ("write", b"next")]


def test_close_sends_what_is_pending_first_and_nothing_after() -> None:
    async def main() -> list[tuple[str, Any]]:
        real = _Recorder()
        t = CoalescingTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
        t.write(b"last words")
        t.close()
        t.write(b"too late")
        await asyncio.sleep(0)
        assert t.is_closing()
        assert t.get_extra_info("peername") == "info:peername"
        return real.calls

    assert asyncio.run(main()) == [("write", b"last words"), ("close", None)]


def test_one_pass_flushes_every_connection_in_order_then_runs_the_work_after_it() -> None:
    async def main() -> tuple[list[tuple[str, Any]], int]:
        loop = asyncio.get_running_loop()
        calls: list[tuple[str, Any]] = []
        a = CoalescingTransport(_Recorder(calls), loop)  # type: ignore[arg-type]
        b = CoalescingTransport(_Recorder(calls), loop)  # type: ignore[arg-type]
        assert a.loop_pass is b.loop_pass is LoopPass.of(loop)
        ready = len(loop._ready)  # type: ignore[attr-defined]
        # Work asked for before the writes of the pass still waits for all of them.
        a.loop_pass.after_flush(lambda: calls.append(("after", 1)))
        b.write(b"b1")
        a.write(b"a1")
        b.write(b"b2")
        a.loop_pass.after_flush(lambda: calls.append(("after", 2)))
        scheduled = len(loop._ready) - ready  # type: ignore[attr-defined]
        assert calls == []
        await asyncio.sleep(0)
        return calls, scheduled

    calls, scheduled = asyncio.run(main())
    assert scheduled == 1  # one callback for the whole pass, not one per connection
    assert calls == [("write", b"b1b2"), ("write", b"a1"), ("after", 1), ("after", 2)]


def test_a_failing_flush_or_work_is_logged_and_the_rest_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class _Broken(_Recorder):
        def write(self, data: bytes) -> None:
            raise OSError("broken transport")

    def fail() -> None:
        raise ValueError("work failed")

    async def main() -> list[tuple[str, Any]]:
        loop = asyncio.get_running_loop()
        calls: list[tuple[str, Any]] = []
        broken = CoalescingTransport(_Broken(), loop)  # type: ignore[arg-type]
        good = CoalescingTransport(_Recorder(calls), loop)  # type: ignore[arg-type]
        broken.write(b"lost")
        good.write(b"sent")
        good.loop_pass.after_flush(fail)
        good.loop_pass.after_flush(lambda: calls.append(("after", None)))
        await asyncio.sleep(0)
        good.write(b"next pass")  # the pass is due again after a failure
        await asyncio.sleep(0)
        return calls

    with caplog.at_level(logging.ERROR, logger="wasmgate.gateway"):
        calls = asyncio.run(main())
    assert calls == [("write", b"sent"), ("after", None), ("write", b"next pass")]
    messages = [r.getMessage() for r in caplog.records]
    assert any("sending a connection's writes" in m for m in messages)
    assert any("after a response" in m for m in messages)


def test_each_loop_has_its_own_pass_which_does_not_keep_it_alive() -> None:
    async def of_this_loop() -> tuple[LoopPass, weakref.ref[asyncio.AbstractEventLoop]]:
        loop = asyncio.get_running_loop()
        return LoopPass.of(loop), weakref.ref(loop)

    first, first_loop = asyncio.run(of_this_loop())
    second, _ = asyncio.run(of_this_loop())
    assert first is not second
    gc.collect()
    assert first_loop() is None  # a finished loop is freed, and its pass with it
    first.after_flush(lambda: None)  # a pass outliving its loop schedules nothing
