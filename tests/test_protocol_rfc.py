"""The pure request-head rules of the connection guard (RFC 9112), and the pure helpers behind
guest stderr logging and body accounting: no sockets, no wasm."""

from __future__ import annotations

import pytest

from wasmgate.gateway.app import _BodyBudget, _BufferFull, escape_line, stderr_lines
from wasmgate.gateway.protocol import _absolute_authority, head_problem

H = list[tuple[bytes, bytes]]


@pytest.mark.parametrize(
    ("version", "url", "headers", "expected"),
    [
        ("1.1", b"/", [(b"host", b"a")], None),
        ("1.1", b"/", [], (400, "missing-host")),
        ("1.0", b"/", [], None),
        ("1.1", b"http://a.example/x", [], None),  # absolute form carries its authority
        ("1.1", b"/", [(b"host", b"a"), (b"transfer-encoding", b"chunked")], None),
        ("1.1", b"/", [(b"host", b"a"), (b"transfer-encoding", b"Chunked ")], None),
        ("1.1", b"/", [(b"host", b"a"), (b"transfer-encoding", b"gzip, chunked")], (501, None)),
        (
            "1.1",
            b"/",
            [(b"host", b"a"), (b"transfer-encoding", b"gzip"), (b"transfer-encoding", b"chunked")],
            (501, None),
        ),
        ("1.1", b"/", [(b"host", b"a"), (b"transfer-encoding", b"chunked, chunked")], (501, None)),
    ],
)
def test_head_problem(
    version: str, url: bytes, headers: H, expected: tuple[int, str | None] | None
) -> None:
    got = head_problem(version, url, headers)
    if expected is None:
        assert got is None
        return
    assert got is not None
    status, reason, cause = got
    assert status == expected[0]
    assert "\n" not in reason
    if expected[1] is not None:
        assert cause == expected[1]
    if status == 501:
        assert cause == "unsupported-coding"


@pytest.mark.parametrize(
    ("url", "authority"),
    [
        (b"/x", None),
        (b"*", None),
        (b"http://a.example/x?y", b"a.example"),
        (b"HTTPS://A.example:8443", b"A.example:8443"),
        (b"http://user:pw@a.example:81/x", b"a.example:81"),
        (b"http://a.example?q", b"a.example"),
        (b"ftp://a.example/", None),
    ],
)
def test_absolute_authority(url: bytes, authority: bytes | None) -> None:
    assert _absolute_authority(url) == authority


@pytest.mark.parametrize(
    ("line", "escaped"),
    [
        ("plain text", "plain text"),
        ("a\rb", "a\\rb"),
        ("tab\there", "tab\\there"),
        ("esc\x1b[31m", "esc\\x1b[31m"),
        ("nul\x00", "nul\\x00"),
        ("back\\slash", "back\\\\slash"),
        ("c1\x85 del\x7f", "c1\\x85 del\\x7f"),
        ("sep\u2028par\u2029", "sep\\u2028par\\u2029"),
        ("é ünicode", "é ünicode"),
    ],
)
def test_escape_line(line: str, escaped: str) -> None:
    assert escape_line(line) == escaped
    assert "\n" not in escape_line(line)
    assert "\r" not in escape_line(line)


def test_stderr_lines() -> None:
    assert stderr_lines(b"a\nb\n") == ["a", "b"]
    assert stderr_lines(b"a\n\nb") == ["a", "", "b"]
    assert stderr_lines(b"\xff\n") == ["\ufffd"]
    assert stderr_lines(b"") == []


def test_body_budget_shares() -> None:
    budget = _BodyBudget(1000)  # a client may hold 250, a route 500
    budget.take(200, "c1", "r1")
    with pytest.raises(_BufferFull, match="client's share"):
        budget.take(100, "c1", "r2")
    budget.take(250, "c2", "r1")
    with pytest.raises(_BufferFull, match="route's share"):
        budget.take(100, "c3", "r1")
    budget.take(250, "c3", "r2")
    budget.take(250, "c4", "r2")
    with pytest.raises(_BufferFull, match="--max-body-buffer"):
        budget.take(60, "c5", "r3")
    for n, client, route in (
        (200, "c1", "r1"),
        (250, "c2", "r1"),
        (250, "c3", "r2"),
        (250, "c4", "r2"),
    ):
        budget.give(n, client, route)
    assert budget.held == 0
    assert budget.by_client == {}
    assert budget.by_route == {}
