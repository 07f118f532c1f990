"""Helpers for the hostile-input suite: guest outputs, modules built as bytes, raw HTTP,
process memory and log matching."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
ROOT = TESTS.parent
GUESTS = HERE / "guests"
EXAMPLES = ROOT / "examples" / "wagi"
for _p in (str(TESTS), str(ROOT / "tools"), str(ROOT / "benchmarks")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from soak import tree_rss_kib  # noqa: E402

from gateway_support import (  # noqa: E402, F401  (the raw HTTP helpers, re-exported)
    Exchange,
    Response,
    Server,
    exchange,
    parse_responses,
    port_of,
)

GUARD_TIMEOUT = 1.0  # --header-timeout / --body-timeout / --send-timeout of the shared server
HOST_ENV = {"HOST_SECRET": "do-not-leak"}  # a host variable no guest may ever see
HOG_TIMEOUT = 0.5

# name -> CGI output the guest prints; the expected status is in test_hostile_output.py.
OUTPUTS: dict[str, bytes] = {
    "ok": b"Content-Type: text/plain\n\nfine\n",
    "cr-in-value": b"Content-Type: text/plain\nX-Evil: a\rSet-Cookie: pwned=1\n\nx",
    "crlf-lines": b"Content-Type: text/plain\r\nX-A: a\r\nX-B: b\r\n\r\nx",
    "split-body": (
        b"Content-Type: text/plain\nX-A: 1\n\nHTTP/1.1 200 OK\r\nSet-Cookie: pwned=1\r\n\r\n"
    ),
    "nul-in-value": b"Content-Type: text/plain\nX-Evil: a\x00b\n\nx",
    "vt-in-value": b"Content-Type: text/plain\nX-Evil: a\x0bb\n\nx",
    "del-in-value": b"Content-Type: text/plain\nX-Evil: a\x7fb\n\nx",
    "space-in-name": b"Content-Type: text/plain\nBad Name: x\n\nx",
    "colon-name": b"Content-Type: text/plain\n: x\n\nx",
    "utf8-name": "Content-Type: text/plain\nX-\u00e9: x\n\nx".encode(),
    "folded": b"Content-Type: text/plain\nX-A: 1\n continued\n\nx",
    "no-colon": b"Content-Type: text/plain\nJustText\n\nx",
    "status-99999": b"Status: 99999\nContent-Type: text/plain\n\nx",
    "status-1000": b"Status: 1000\nContent-Type: text/plain\n\nx",
    "status-099": b"Status: 099\nContent-Type: text/plain\n\nx",
    "status-100": b"Status: 100 Continue\nContent-Type: text/plain\n\nx",
    "status-abc": b"Status: abc\nContent-Type: text/plain\n\nx",
    "status-twice": b"Status: 200\nStatus: 404\nContent-Type: text/plain\n\nx",
    "location-ctl": b"Location: /x\x01y\n\n",
    "location-cr": b"Location: /x\rSet-Cookie: pwned=1\n\n",
    "no-blank-line": b"Content-Type: text/plain\nX-A: 1\n",
    "no-blank-huge": b"X-Pad: " + b"p" * 1000 + b"\n",  # printed OUTPUT_REPEAT times
    "no-type": b"X-A: 1\n\nbody",
    "empty": b"",
    "fake-length": b"Content-Type: text/plain\nContent-Length: 2\n\n0123456789",
    "fake-chunked": b"Content-Type: text/plain\nTransfer-Encoding: chunked\n\n0\r\n\r\nSMUGGLED",
    "fake-connection": (
        b"Content-Type: text/plain\nConnection: keep-alive, Upgrade\nUpgrade: h2c\n\nx"
    ),
}
OUTPUT_REPEAT = {"no-blank-huge": 100}  # ~100 KiB of header lines, never a blank line
EXIT_CODES = ("126", "255", "-1", "2147483648")


# --- modules built in the test -----------------------------------------------------------------


def _leb(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _section(ident: int, payload: bytes) -> bytes:
    return bytes([ident]) + _leb(len(payload)) + payload


def _vec(items: list[bytes]) -> bytes:
    return _leb(len(items)) + b"".join(items)


def _name(text: str) -> bytes:
    return _leb(len(text)) + text.encode()


def big_data_module(size: int, answer: bytes = b"Content-Type: text/plain\n\nbig\n") -> bytes:
    """A core module whose one active data segment is ``size`` bytes at address 0, beginning
    with ``answer``; ``_start`` writes ``answer`` (read back from the segment) to stdout.

    Built as bytes directly: 100 MiB of WAT text would take far longer to write and parse."""
    assert size >= len(answer) + 16
    pages = size // 65536 + 2
    iov = size + 16  # the iovec and nwritten live just past the segment
    types = _section(1, _vec([b"\x60\x04\x7f\x7f\x7f\x7f\x01\x7f", b"\x60\x00\x00"]))
    imports = _section(2, _vec([_name("wasi_snapshot_preview1") + _name("fd_write") + b"\x00\x00"]))
    funcs = _section(3, _vec([b"\x01"]))
    memory = _section(5, _vec([b"\x00" + _leb(pages)]))
    exports = _section(7, _vec([_name("memory") + b"\x02\x00", _name("_start") + b"\x00\x01"]))

    def i32(v: int) -> bytes:  # i32.const, signed LEB128 of a non-negative value
        out = bytearray()
        while True:
            byte, v = v & 0x7F, v >> 7
            if (v == 0 and not byte & 0x40) or v == -1:
                out.append(byte)
                return bytes(out)
            out.append(byte | 0x80)

    body = b"".join(
        [
            b"\x41" + i32(iov) + b"\x41\x00\x36\x02\x00",  # iov.buf = 0
            b"\x41" + i32(iov + 4) + b"\x41" + i32(len(answer)) + b"\x36\x02\x00",  # iov.len
            b"\x41\x01\x41" + i32(iov) + b"\x41\x01\x41" + i32(iov + 8),  # 1, iov, 1, &nw
            b"\x10\x00\x1a\x0b",  # call fd_write; drop; end
        ]
    )
    code = _section(10, _vec([_leb(len(body) + 1) + b"\x00" + body]))
    segment = b"\x00\x41\x00\x0b" + _leb(size) + answer + b"Z" * (size - len(answer))
    data = _section(11, _vec([segment]))
    header = b"\x00asm\x01\x00\x00\x00"
    return header + types + imports + funcs + memory + exports + code + data


def exit_wat(code: str) -> str:
    return f"""(module (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (call $exit (i32.const {code}))))"""


START_TRAP_WAT = '(module (memory (export "memory") 1) (func $s unreachable) (start $s) ' + (
    '(func (export "_start")))'
)
NO_IMPORT_WAT = (
    '(module (import "env" "not_provided" (func)) (memory (export "memory") 1) '
    '(func (export "_start")))'
)


# --- raw HTTP (the helpers are gateway_support's) -------------------------------------------


def get(port: int, target: str, headers: str = "", timeout: float = 10.0) -> Response:
    """One ``GET`` with ``Connection: close``; the single response."""
    req = f"GET {target} HTTP/1.1\r\nHost: hostile.test\r\n{headers}Connection: close\r\n\r\n"
    got = exchange(port, req.encode(), timeout=timeout)
    assert len(got.responses) == 1, got.raw[:500]
    return got.responses[0]


def wait_for_log(server: Server, pattern: str, timeout: float = 5.0) -> re.Match[str]:
    """The first match of the regex ``pattern`` in the server log, waiting for it to appear."""
    deadline = time.monotonic() + timeout
    while True:
        m = re.search(pattern, server.output())
        if m is not None:
            return m
        if time.monotonic() > deadline:
            raise AssertionError(f"no log line matching {pattern!r}:\n{server.output()[-3000:]}")
        time.sleep(0.05)


def guard_args(timeout: float = GUARD_TIMEOUT) -> tuple[str, ...]:
    """``wasmgate serve`` flags for short connection-guard timeouts."""
    value = f"{timeout:g}s"
    return ("--header-timeout", value, "--body-timeout", value, "--send-timeout", value)


def rss_settled(pid: int, seconds: float = 0.6) -> int:
    """RSS (KiB, process tree) after letting the server go idle for ``seconds``."""
    time.sleep(seconds)
    return tree_rss_kib(pid)
