"""The coalescing transport of the connection guard: one write per event-loop pass, order kept."""

from __future__ import annotations

import asyncio
from typing import Any

from wasmgate.gateway.protocol import CoalescingTransport


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
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
