"""Guest output attacks: whatever a guest prints, the client gets exactly one well-formed HTTP
response (checked on the raw bytes of the socket), never a split one, and the server logs why it
refused the output."""

from __future__ import annotations

import pytest

from gateway_support import Server

from .hostile_support import OUTPUTS, exchange, wait_for_log

# name -> (status, logged reason); 200 entries must pass through, the rest are refused.
EXPECTED: dict[str, tuple[int, str]] = {
    "ok": (200, ""),
    "cr-in-value": (502, "CGI header X-Evil has a control character"),
    "crlf-lines": (200, ""),  # CRLF ends a line: the guest's own next header, not an injection
    "split-body": (200, ""),  # a body that looks like a response is just a body
    "nul-in-value": (502, "has a control character"),
    "vt-in-value": (502, "has a control character"),
    "del-in-value": (502, "has a control character"),
    "space-in-name": (502, "invalid CGI header name"),
    "colon-name": (502, "invalid CGI header name"),
    "utf8-name": (502, "invalid CGI header name"),
    "folded": (502, "obsolete header line folding"),
    "no-colon": (502, "malformed CGI header line"),
    "status-99999": (502, "invalid Status header"),
    "status-1000": (502, "invalid Status header"),
    "status-099": (502, "invalid Status header"),
    "status-100": (502, "informational"),
    "status-abc": (502, "invalid Status header"),
    "status-twice": (502, "more than one status header"),
    "location-ctl": (502, "has a control character"),
    "location-cr": (502, "has a control character"),
    "no-blank-line": (502, "no blank line ends the CGI headers"),
    "no-blank-huge": (502, "no blank line ends the CGI headers within 64 KiB"),
    "no-type": (500, "Exactly one of 'location' or 'content-type' must be specified"),
    "empty": (500, "the module wrote nothing to stdout"),
    "fake-length": (200, ""),
    "fake-chunked": (200, ""),
    "fake-connection": (200, ""),
}


def test_every_output_has_an_expectation() -> None:
    assert set(EXPECTED) == set(OUTPUTS)


@pytest.mark.parametrize("name", sorted(OUTPUTS))
def test_guest_output_attack(hostile: Server, hport: int, name: str) -> None:
    status, reason = EXPECTED[name]
    # Two requests on one keep-alive connection: a split response would shift the second.
    req = f"GET /out/{name} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    req += b"GET /good?ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    got = exchange(hport, req)
    assert [r.status for r in got.responses] == [status, 200], got.raw[:400]
    assert got.rest == b""  # nothing outside the two framed responses
    first, second = got.responses
    assert second.body == b"ok\n"
    assert b"pwned" not in first.raw_head.lower()
    assert all(k.lower() != "set-cookie" for k, _ in first.headers)
    assert got.raw.count(b"HTTP/1.1 ") == 2 + first.body.count(b"HTTP/1.1 ")
    # Framing always belongs to the gateway.
    assert first.header("content-length") == str(len(first.body))
    assert first.header("transfer-encoding") is None
    assert "upgrade" not in (first.header("connection") or "").lower()
    if status != 200:
        assert first.body == b""
        wait_for_log(hostile, rf"/out/{name} -> {status}: .*{reason}")
        wait_for_log(hostile, rf'"path":"/out/{name}",.*"status":{status},"cause":"bad-output"')


def test_body_is_passed_through_byte_exact(hport: int) -> None:
    got = exchange(hport, b"GET /out/split-body HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    (response,) = got.responses
    assert response.body == b"HTTP/1.1 200 OK\r\nSet-Cookie: pwned=1\r\n\r\n"
    assert response.header("set-cookie") is None
    got = exchange(hport, b"GET /out/fake-length HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert got.responses[0].body == b"0123456789"
    got = exchange(hport, b"GET /out/fake-chunked HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert got.responses[0].body == b"0\r\n\r\nSMUGGLED"
    got = exchange(hport, b"GET /out/crlf-lines HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert (got.responses[0].header("x-a"), got.responses[0].header("x-b")) == ("a", "b")
