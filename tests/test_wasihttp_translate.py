"""wasihttp.translate: the pure request/response <-> proxy-world rules, table-driven, no wasm."""

from __future__ import annotations

import socket

import pytest

from wasmgate.wagi.outbound_client import TransportError
from wasmgate.wasihttp.outbound import error_for_transport, request_url
from wasmgate.wasihttp.translate import (
    check_content_length,
    error_status,
    field_error,
    format_error_code,
    method_from_wit,
    method_to_wit,
    scheme_to_wit,
    split_target,
    valid_status,
)


@pytest.mark.parametrize(
    ("method", "wit"),
    [
        ("GET", ("get", None)),
        ("HEAD", ("head", None)),
        ("POST", ("post", None)),
        ("PUT", ("put", None)),
        ("DELETE", ("delete", None)),
        ("CONNECT", ("connect", None)),
        ("OPTIONS", ("options", None)),
        ("TRACE", ("trace", None)),
        ("PATCH", ("patch", None)),
        ("PURGE", ("other", "PURGE")),
        ("get", ("other", "get")),  # methods are case-sensitive (RFC 9110 9.1)
        ("M-SEARCH", ("other", "M-SEARCH")),
    ],
)
def test_method_round_trip(method: str, wit: tuple[str, str | None]) -> None:
    assert method_to_wit(method) == wit
    assert method_from_wit(wit) == method


@pytest.mark.parametrize("bad", ["", "GE T", "GET\r\n", "(x)", "é"])
def test_invalid_methods_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid HTTP method"):
        method_to_wit(bad)
    with pytest.raises(ValueError, match="invalid HTTP method"):
        method_from_wit(("other", bad))


def test_unknown_method_case_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown method case"):
        method_from_wit(("fetch", None))


@pytest.mark.parametrize(
    ("scheme", "wit"),
    [("http", ("HTTP", None)), ("HTTPS", ("HTTPS", None)), ("ws", ("other", "ws"))],
)
def test_scheme(scheme: str, wit: tuple[str, str | None]) -> None:
    assert scheme_to_wit(scheme) == wit


@pytest.mark.parametrize(
    ("path", "query", "target"),
    [("/a", "", "/a"), ("/a", "x=1&y", "/a?x=1&y"), ("", "", "/"), ("/%20", "q", "/%20?q")],
)
def test_split_target(path: str, query: str, target: str) -> None:
    assert split_target(path, query) == target


@pytest.mark.parametrize(
    ("name", "value", "error"),
    [
        ("content-type", b"text/plain", None),
        ("X-Custom", b"a\tb \xff", None),  # tab and obs-text are allowed
        ("x", b"", None),
        ("bad name", b"v", "invalid-syntax"),
        ("", b"v", "invalid-syntax"),
        ("x:y", b"v", "invalid-syntax"),
        ("x", b"a\r\nb", "invalid-syntax"),
        ("x", b"a\x00", "invalid-syntax"),
        ("x", b"\x7f", "invalid-syntax"),
        ("connection", b"close", "forbidden"),
        ("Transfer-Encoding", b"chunked", "forbidden"),
        ("upgrade", b"h2c", "forbidden"),
        ("keep-alive", b"5", "forbidden"),
    ],
)
def test_field_rules(name: str, value: bytes, error: str | None) -> None:
    assert field_error(name, value) == error


def test_forbidden_fields_pass_when_not_set_by_the_guest() -> None:
    assert field_error("connection", b"close", guest=False) is None


@pytest.mark.parametrize(
    ("code", "ok"),
    [(99, False), (101, False), (199, False), (200, True), (599, True), (600, False), (999, False)],
)
def test_valid_status(code: int, ok: bool) -> None:
    assert valid_status(code) is ok


@pytest.mark.parametrize(
    ("headers", "size", "problem"),
    [
        ([], 5, None),
        ([(b"content-length", b"5")], 5, None),
        ([(b"content-length", b" 5 ")], 5, None),
        ([(b"content-length", b"4")], 5, "content-length 4 but the body has 5 bytes"),
        ([(b"content-length", b"x")], 5, "invalid content-length b'x'"),
    ],
)
def test_content_length(headers: list[tuple[bytes, bytes]], size: int, problem: str | None) -> None:
    assert check_content_length(headers, size) == problem


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (("internal-error", None), 500),
        (("HTTP-request-denied", None), 500),
        (("HTTP-request-body-size", 10), 413),
        (("HTTP-request-method-invalid", None), 405),
        (("HTTP-request-URI-too-long", None), 414),
        (("HTTP-request-header-size", None), 431),
    ],
)
def test_error_status(code: tuple[str, object], status: int) -> None:
    assert error_status(code) == status


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (("DNS-timeout", None), "DNS-timeout"),
        (("internal-error", "boom"), "internal-error('boom')"),
        (
            ("DNS-error", {"rcode": "NXDOMAIN", "info-code": None}),
            "DNS-error(rcode: 'NXDOMAIN')",
        ),
    ],
)
def test_format_error_code(code: tuple[str, object], text: str) -> None:
    assert format_error_code(code) == text


@pytest.mark.parametrize(
    ("scheme", "authority", "path", "url"),
    [
        (None, "a.test", "/x?y", "https://a.test/x?y"),
        (("HTTP", None), "a.test:8080", None, "http://a.test:8080/"),
        (("HTTPS", None), "a.test", "x", "https://a.test/x"),
        (("other", "ftp"), "a.test", "/f", "ftp://a.test/f"),
    ],
)
def test_outgoing_request_url(
    scheme: tuple[str, str | None] | None, authority: str, path: str | None, url: str
) -> None:
    assert request_url(scheme, authority, path) == url


def test_outgoing_request_needs_an_authority() -> None:
    with pytest.raises(ValueError, match="authority"):
        request_url(None, None, "/")


def _transport(text: str, cause: BaseException | None = None) -> TransportError:
    exc = TransportError(text)
    exc.__cause__ = cause
    return exc


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (
            _transport("HTTP exchange failed", ConnectionRefusedError()),
            ("connection-refused", None),
        ),
        (
            _transport("HTTP exchange failed", socket.gaierror()),
            ("DNS-error", {"rcode": None, "info-code": None}),
        ),
        (_transport("request timed out"), ("connection-timeout", None)),
        (_transport("response body is larger than 10 bytes"), ("HTTP-response-body-size", None)),
        (_transport("response has a malformed header line"), ("HTTP-protocol-error", None)),
        (_transport("more than 10 redirects"), ("internal-error", "more than 10 redirects")),
    ],
)
def test_transport_errors_map_to_error_codes(exc: TransportError, code: object) -> None:
    assert error_for_transport(exc) == code
