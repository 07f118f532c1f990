"""CGI translation: request -> environment and argv, stdout -> response."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from wasmgate.errors import CgiError, UsageError
from wasmgate.wagi.cgi import (
    CGI_VARIABLES,
    MAX_HEADER_BYTES,
    MISSING_CONTENT_TYPE,
    CgiRequest,
    CgiResponse,
    build_argv,
    build_environ,
    parse_host,
    parse_output,
)
from wasmgate.wagi.routes import Route, RouteMatch, RoutePattern, RouteTable

SOFTWARE = "wasmgate/0.1"


def match_for(route: str, path: str) -> RouteMatch[str]:
    found = RouteTable([Route(RoutePattern(route), "handler")]).match(path)
    assert isinstance(found, RouteMatch), f"{route} does not match {path}"
    return found


def request(
    path: str = "/",
    *,
    query: str = "",
    headers: list[tuple[bytes, bytes]] | None = None,
    **fields: Any,
) -> CgiRequest:
    return CgiRequest(
        method=fields.pop("method", "GET"),
        raw_path=path,
        query_string=query,
        headers=tuple(headers or ()),
        client=fields.pop("client", ("10.0.0.7", 51234)),
        **fields,
    )


def environ(
    req: CgiRequest,
    route: str = "/...",
    *,
    base_env: dict[str, str] | None = None,
    default_host: str = "localhost:3000",
) -> dict[str, str]:
    return build_environ(
        req,
        match_for(route, req.raw_path),
        base_env=base_env or {},
        default_host=default_host,
        server_software=SOFTWARE,
    )


# --- the whole environment ----------------------------------------------------------------------

BASE_EXPECTED = {
    "AUTH_TYPE": "",
    "CONTENT_LENGTH": "0",
    "CONTENT_TYPE": "",
    "GATEWAY_INTERFACE": "CGI/1.1",
    "PATH_INFO": "",
    "PATH_TRANSLATED": "",
    "QUERY_STRING": "",
    "REMOTE_ADDR": "10.0.0.7",
    "REMOTE_HOST": "10.0.0.7",
    "REMOTE_USER": "",
    "REQUEST_METHOD": "GET",
    "SCRIPT_NAME": "/env",
    "SERVER_NAME": "localhost",
    "SERVER_PORT": "3000",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "SERVER_SOFTWARE": SOFTWARE,
    "X_FULL_URL": "http://localhost:3000/env",
    "X_MATCHED_ROUTE": "/env",
    "X_RAW_PATH_INFO": "",
}

ENV_CASES = [
    pytest.param("/env", request("/env"), {}, id="exact-route-no-host"),
    pytest.param(
        "/env",
        request(
            "/env",
            query="greet=matt&foo=bar",
            headers=[
                (b"host", b"foo.example.com"),
                (b"user-agent", b"curl/8.0"),
                (b"accept", b"*/*"),
            ],
        ),
        {
            "QUERY_STRING": "greet=matt&foo=bar",
            "SERVER_NAME": "foo.example.com",
            "SERVER_PORT": "80",
            "X_FULL_URL": "http://foo.example.com:80/env?greet=matt&foo=bar",
            "HTTP_HOST": "foo.example.com",
            "HTTP_USER_AGENT": "curl/8.0",
            "HTTP_ACCEPT": "*/*",
        },
        id="wagi-docs-example",
    ),
    pytest.param(
        "/test/...",
        request("/test/fizz/buzz"),
        {
            "PATH_INFO": "/fizz/buzz",
            "PATH_TRANSLATED": "/fizz/buzz",
            "X_RAW_PATH_INFO": "/fizz/buzz",
            "SCRIPT_NAME": "/test",
            "X_MATCHED_ROUTE": "/test/...",
            "X_FULL_URL": "http://localhost:3000/test/fizz/buzz",
        },
        id="wildcard-route",
    ),
    pytest.param(
        "/test/...",
        request("/test"),
        {
            "SCRIPT_NAME": "/test",
            "X_MATCHED_ROUTE": "/test/...",
            "X_FULL_URL": "http://localhost:3000/test",
        },
        id="wildcard-route-base",
    ),
    pytest.param(
        "/...",
        request("/a%20b/c%2Fd"),
        {
            "PATH_INFO": "/a b/c/d",
            "PATH_TRANSLATED": "/a b/c/d",
            "X_RAW_PATH_INFO": "/a%20b/c%2Fd",
            "SCRIPT_NAME": "",
            "X_MATCHED_ROUTE": "/...",
            "X_FULL_URL": "http://localhost:3000/a%20b/c%2Fd",
        },
        id="catch-all-percent-decoding",
    ),
    pytest.param(
        "/...",
        request("/caf%C3%A9"),
        {
            "PATH_INFO": "/caf\u00e9",
            "PATH_TRANSLATED": "/caf\u00e9",
            "X_RAW_PATH_INFO": "/caf%C3%A9",
            "SCRIPT_NAME": "",
            "X_MATCHED_ROUTE": "/...",
            "X_FULL_URL": "http://localhost:3000/caf%C3%A9",
        },
        id="utf8-path",
    ),
    pytest.param(
        "/env",
        request(
            "/env",
            method="POST",
            scheme="https",
            http_version="2",
            content_length=11,
            client=("2001:db8::1", 443),
            headers=[
                (b"host", b"[2001:db8::2]"),
                (b"content-type", b"application/json"),
                (b"content-length", b"11"),
            ],
        ),
        {
            "REQUEST_METHOD": "POST",
            "CONTENT_LENGTH": "11",
            "CONTENT_TYPE": "application/json",
            "REMOTE_ADDR": "2001:db8::1",
            "REMOTE_HOST": "2001:db8::1",
            "SERVER_NAME": "[2001:db8::2]",
            "SERVER_PORT": "443",
            "SERVER_PROTOCOL": "HTTP/2",
            "X_FULL_URL": "https://[2001:db8::2]:443/env",
            "HTTP_HOST": "[2001:db8::2]",
            "HTTP_CONTENT_TYPE": "application/json",
            "HTTP_CONTENT_LENGTH": "11",
        },
        id="https-post-ipv6",
    ),
    pytest.param(
        "/env",
        request("/env", client=None, headers=[(b"host", b"Example.COM:8443")]),
        {
            "REMOTE_ADDR": "",
            "REMOTE_HOST": "",
            "SERVER_NAME": "Example.COM",
            "SERVER_PORT": "8443",
            "X_FULL_URL": "http://Example.COM:8443/env",
            "HTTP_HOST": "Example.COM:8443",
        },
        id="no-client-host-with-port",
    ),
    pytest.param(
        "/env",
        request("/env", headers=[(b"host", b"")]),
        {"HTTP_HOST": ""},
        id="empty-host-uses-default",
    ),
]


@pytest.mark.parametrize(("route", "req", "changes"), ENV_CASES)
def test_environment(route: str, req: CgiRequest, changes: dict[str, str]) -> None:
    assert environ(req, route) == BASE_EXPECTED | changes


def test_cgi_variables_constant_lists_every_fixed_variable() -> None:
    assert frozenset(environ(request("/env"), "/env")) == CGI_VARIABLES


@pytest.mark.parametrize(
    ("default_host", "scheme", "name", "port"),
    [
        ("localhost:3000", "http", "localhost", "3000"),
        ("example.org", "http", "example.org", "80"),
        ("example.org", "https", "example.org", "443"),
        ("example.org:", "https", "example.org", "443"),
        ("[::1]:8080", "http", "[::1]", "8080"),
    ],
)
def test_default_host(default_host: str, scheme: str, name: str, port: str) -> None:
    env = environ(request("/", scheme=scheme), default_host=default_host)
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == (name, port)
    assert env["X_FULL_URL"] == f"{scheme}://{name}:{port}/"


@pytest.mark.parametrize("default_host", ["", "a b", "host:99999", "user@host", "host/path"])
def test_invalid_default_host_is_a_usage_error(default_host: str) -> None:
    with pytest.raises(UsageError, match="default host"):
        environ(request("/"), default_host=default_host)


@pytest.mark.parametrize(
    "host",
    [
        b"evil.com\r\nX-Injected: 1",
        b"evil.com\n",
        b"evil .com",
        b"evil.com/path",
        b"user@evil.com",
        b"evil.com:80:80",
        b"evil.com:http",
        b"evil.com:65536",
        b"evil.com:123456",
        b"evil.com?x",
        b"evil.com#x",
        b"[::1",
        b"caf\xc3\xa9.com",
        b"a\x00b",
    ],
)
def test_invalid_host_header_is_refused(host: bytes) -> None:
    with pytest.raises(CgiError) as info:
        environ(request("/", headers=[(b"host", host)]))
    assert info.value.http_status == 400


def test_repeated_host_header_is_refused() -> None:
    req = request("/", headers=[(b"host", b"a.com"), (b"host", b"b.com")])
    with pytest.raises(CgiError, match="more than one Host") as info:
        environ(req)
    assert info.value.http_status == 400


def test_parse_host() -> None:
    assert parse_host("example.com") == ("example.com", None)
    assert parse_host("example.com:8080") == ("example.com", "8080")
    assert parse_host("127.0.0.1:1") == ("127.0.0.1", "1")
    with pytest.raises(ValueError, match="invalid host"):
        parse_host("exa mple.com")


# --- HTTP_* headers -----------------------------------------------------------------------------


def http_vars(headers: list[tuple[bytes, bytes]], **kwargs: Any) -> dict[str, str]:
    env = environ(request("/", headers=headers), **kwargs)
    return {k: v for k, v in env.items() if k.startswith("HTTP_")}


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([(b"x-custom", b"1")], {"HTTP_X_CUSTOM": "1"}),
        ([(b"X-Custom", b"1")], {"HTTP_X_CUSTOM": "1"}),
        ([(b"authorization", b"Bearer secret")], {}),
        ([(b"connection", b"keep-alive")], {}),
        ([(b"proxy", b"http://evil:8080")], {}),
        ([(b"x_custom", b"spoof")], {}),
        ([(b"x-custom", b"real"), (b"x_custom", b"spoof")], {"HTTP_X_CUSTOM": "real"}),
        ([(b"bad name", b"1")], {}),
        ([(b"bad:name", b"1")], {}),
        ([(b"", b"1")], {}),
        ([(b"x-a", b"1"), (b"x-a", b"2")], {"HTTP_X_A": "1, 2"}),
        ([(b"X-A", b"1"), (b"x-a", b"2")], {"HTTP_X_A": "1, 2"}),
        ([(b"cookie", b"a=1"), (b"cookie", b"b=2")], {"HTTP_COOKIE": "a=1; b=2"}),
        ([(b"x-a", b"a\x00b")], {}),
        ([(b"x-a", b"a\r\nb")], {}),
        ([(b"x-a", b"a\nb")], {}),
        ([(b"x-a", b"a\x7fb")], {}),
        ([(b"x-a", b"a\tb")], {"HTTP_X_A": "a\tb"}),
        ([(b"x-a", b"bad\x00"), (b"x-a", b"good")], {"HTTP_X_A": "good"}),
        ([(b"x-a", b"caf\xc3\xa9")], {"HTTP_X_A": "caf\u00e9"}),
        ([(b"x-a", b"caf\xe9")], {"HTTP_X_A": "caf\u00e9"}),
        ([(b"x-a", b"a=b")], {"HTTP_X_A": "a=b"}),
        ([(b"x.dotted", b"1")], {"HTTP_X.DOTTED": "1"}),
    ],
)
def test_http_header_variables(
    headers: list[tuple[bytes, bytes]], expected: dict[str, str]
) -> None:
    assert http_vars(headers) == expected


def test_content_type_follows_the_request_header() -> None:
    req = request("/", headers=[(b"content-type", b"text/csv")], content_length=3)
    env = environ(req)
    assert (env["CONTENT_TYPE"], env["CONTENT_LENGTH"]) == ("text/csv", "3")
    # A content type dropped for a control character does not reach CONTENT_TYPE either.
    assert environ(request("/", headers=[(b"content-type", b"a\x00")]))["CONTENT_TYPE"] == ""


def test_base_environment_is_kept_and_cgi_variables_win() -> None:
    base = {
        "GREETING": "hello",
        "SCRIPT_NAME": "/spoofed",
        "X_FULL_URL": "http://spoofed",
        "HTTP_X_A": "from config",
        "HTTP_X_B": "from config",
        "CONTENT_TYPE": "spoofed",
    }
    env = environ(request("/env", headers=[(b"x-a", b"from request")]), "/env", base_env=base)
    assert env["GREETING"] == "hello"
    assert env["SCRIPT_NAME"] == "/env"
    assert env["X_FULL_URL"] == "http://localhost:3000/env"
    assert env["HTTP_X_A"] == "from request"
    assert env["HTTP_X_B"] == "from config"
    assert env["CONTENT_TYPE"] == ""
    assert base["SCRIPT_NAME"] == "/spoofed"  # the caller's mapping is not modified


# --- refused requests ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/a%00b", "encoded NUL"),
        ("/a%ffb", "not UTF-8"),
        ("/a%C3", "not UTF-8"),
        ("/%ED%A0%80", "not UTF-8"),  # an encoded surrogate is not UTF-8
    ],
)
def test_undecodable_path_info_is_refused(path: str, message: str) -> None:
    with pytest.raises(CgiError, match=message) as info:
        environ(request(path))
    assert info.value.http_status == 400


def test_exact_route_never_decodes_the_path() -> None:
    # PATH_INFO is empty for an exact route, so nothing needs decoding.
    assert environ(request("/a%00"), "/a%00")["PATH_INFO"] == ""


@pytest.mark.parametrize(
    "fields",
    [
        {"method": "GE\x00T"},
        {"path": "/a\x00"},
        {"query": "a=\x00"},
        {"scheme": "ht\x00tp"},
        {"http_version": "1.\x001"},
        {"client": ("1.2.3.4\x00", 1)},
        {"path": "/\ud800"},
        {"query": "\udcff"},
    ],
)
def test_hand_built_request_with_nul_or_bad_text_is_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(CgiError) as info:
        environ(request(**fields))
    assert info.value.http_status == 400


# --- ASGI scope ---------------------------------------------------------------------------------


def test_from_asgi_scope_maps_every_field() -> None:
    scope = {
        "type": "http",
        "method": "PUT",
        "scheme": "https",
        "http_version": "2",
        "path": "/a b",
        "raw_path": b"/a%20b",
        "query_string": b"x=1&y=%20",
        "headers": [(b"Host", b"example.com"), (b"content-length", b"5")],
        "client": ["192.0.2.1", 4000],
        "server": ("127.0.0.1", 3000),
    }
    assert CgiRequest.from_asgi_scope(scope) == CgiRequest(
        method="PUT",
        raw_path="/a%20b",
        query_string="x=1&y=%20",
        headers=((b"host", b"example.com"), (b"content-length", b"5")),
        scheme="https",
        http_version="2",
        client=("192.0.2.1", 4000),
        content_length=5,
    )


@pytest.mark.parametrize(
    ("scope_part", "raw_path", "query"),
    [
        ({"raw_path": b"/x?y=1"}, "/x", ""),
        ({"raw_path": bytearray(b"/x?y=1"), "query_string": bytearray(b"y=1")}, "/x", "y=1"),
        ({"raw_path": None, "path": "/a b/100%"}, "/a%20b/100%25", ""),
        ({"raw_path": None, "path": "/caf\u00e9"}, "/caf%C3%A9", ""),
        ({"raw_path": b"/caf\xc3\xa9 x"}, "/caf%C3%A9%20x", ""),
        ({"raw_path": b"/x", "query_string": b"a=\xff b"}, "/x", "a=%FF%20b"),
        ({"raw_path": b"/x", "query_string": b"a=\x00"}, "/x", "a=%00"),
    ],
)
def test_from_asgi_scope_keeps_raw_text_ascii(
    scope_part: dict[str, Any], raw_path: str, query: str
) -> None:
    scope: dict[str, Any] = {"type": "http", "method": "GET", "path": "/x", "headers": []}
    scope.update(scope_part)
    req = CgiRequest.from_asgi_scope(scope)
    assert (req.raw_path, req.query_string) == (raw_path, query)


def test_from_asgi_scope_defaults() -> None:
    req = CgiRequest.from_asgi_scope({"type": "http", "method": "GET", "path": "/"})
    assert req == CgiRequest(method="GET", raw_path="/")
    assert (req.scheme, req.http_version, req.client, req.content_length) == (
        "http",
        "1.1",
        None,
        None,
    )


@pytest.mark.parametrize("value", [b"abc", b"-1", b"", b"1 2"])
def test_from_asgi_scope_ignores_malformed_content_length(value: bytes) -> None:
    scope = {"method": "GET", "path": "/", "headers": [(b"content-length", value)]}
    assert CgiRequest.from_asgi_scope(scope).content_length is None


def test_gateway_sets_the_body_length_it_read() -> None:
    req = dataclasses.replace(request("/"), content_length=42)
    assert environ(req)["CONTENT_LENGTH"] == "42"


# --- argv ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "path", "query", "template", "argv"),
    [
        ("/env", "/env", "", None, ["/env"]),
        ("/env", "/env", "greet=matt&foo=bar", None, ["/env", "greet=matt", "foo=bar"]),
        ("/...", "/a%20b", "x=%20y", None, ["/a%20b", "x=%20y"]),
        ("/...", "/", "a&&b", None, ["/", "a", "", "b"]),
        ("/...", "/", "single", None, ["/", "single"]),
        ("/app/...", "/app/x", "a=1&b=2", "${SCRIPT_NAME} ${ARGS}", ["/app", "a=1", "b=2"]),
        ("/app/...", "/app/x", "", "${SCRIPT_NAME} ${ARGS}", ["/app"]),
        ("/app/...", "/app/x", "a&&b", "${SCRIPT_NAME} ${ARGS}", ["/app", "a", "b"]),
        ("/...", "/x", "a=1", "${SCRIPT_NAME} ${ARGS}", ["/", "a=1"]),
        ("/app", "/app", "a=1", "prog --flag ${ARGS} --end", ["prog", "--flag", "a=1", "--end"]),
        ("/app", "/app", "a=1", "  x\t${ARGS}\n", ["x", "a=1"]),
        ("/app", "/app", "a=1", "--name=${SCRIPT_NAME}", ["--name=/app"]),
        ("/app", "/app", "a=1", "${OTHER} $ARGS", ["${OTHER}", "$ARGS"]),
        # Substitution is one pass: a value that looks like a placeholder stays as it is.
        ("/${ARGS}", "/${ARGS}", "a=1", "${SCRIPT_NAME}", ["/${ARGS}"]),
        ("/app", "/app", "${SCRIPT_NAME}", "${ARGS}", ["${SCRIPT_NAME}"]),
    ],
)
def test_argv(route: str, path: str, query: str, template: str | None, argv: list[str]) -> None:
    assert build_argv(request(path, query=query), match_for(route, path), template) == argv


# --- response parsing ---------------------------------------------------------------------------


def parsed(out: bytes, **kwargs: Any) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    response = parse_output(out, **kwargs)
    assert isinstance(response, CgiResponse)
    return response.status, response.headers, response.body


CT = (b"content-type", b"text/plain")

RESPONSE_CASES = [
    pytest.param(b"Content-Type: text/plain\n\nhello\n", 200, [CT], b"hello\n", id="lf"),
    pytest.param(b"Content-Type: text/plain\r\n\r\nhello", 200, [CT], b"hello", id="crlf"),
    pytest.param(b"Content-Type: text/plain\n\r\nhello", 200, [CT], b"hello", id="lf-then-crlf"),
    pytest.param(b"content-type:text/plain\n\n", 200, [CT], b"", id="no-space-empty-body"),
    pytest.param(
        b"Content-Type: text/plain\r\n\r\na\r\n\r\nb\n\nc\r",
        200,
        [CT],
        b"a\r\n\r\nb\n\nc\r",
        id="body-byte-exact",
    ),
    pytest.param(
        b"Content-Type: application/octet-stream\n\n\x00\xff\r\n\x1b",
        200,
        [(b"content-type", b"application/octet-stream")],
        b"\x00\xff\r\n\x1b",
        id="binary-body",
    ),
    pytest.param(
        b"Content-Type: text/plain\nSet-Cookie: a=1\nSet-Cookie: b=2\n\n",
        200,
        [CT, (b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")],
        b"",
        id="two-set-cookie-kept",
    ),
    pytest.param(
        b"Status: 404 Not Found\nContent-Type: text/plain\n\nnope",
        404,
        [CT],
        b"nope",
        id="status-with-reason",
    ),
    pytest.param(b"Status: 503\n\n", 503, [], b"", id="status-alone-is-enough"),
    pytest.param(b"status:\t201\tCreated\n\n", 201, [], b"", id="status-tab"),
    pytest.param(
        b"Location: https://example.com/\n\n",
        302,
        [(b"location", b"https://example.com/")],
        b"",
        id="location-alone-302",
    ),
    pytest.param(
        b"Location: /new\nStatus: 301 Moved Permanently\n\n",
        301,
        [(b"location", b"/new")],
        b"",
        id="status-wins-over-location-after",
    ),
    pytest.param(
        b"Status: 307\nLocation: /new\n\n",
        307,
        [(b"location", b"/new")],
        b"",
        id="status-wins-over-location-before",
    ),
    pytest.param(
        b"Content-Type : text/plain\nX-A:   padded  \t\nX-Empty:\n\n",
        200,
        [CT, (b"x-a", b"padded"), (b"x-empty", b"")],
        b"",
        id="whitespace-trimmed",
    ),
    pytest.param(
        b"Content-Type: text/plain\nX-Tab: a\tb\nX-Utf8: caf\xc3\xa9\n\n",
        200,
        [CT, (b"x-tab", b"a\tb"), (b"x-utf8", b"caf\xc3\xa9")],
        b"",
        id="tab-and-obs-text-allowed",
    ),
    pytest.param(
        b"Content-Type: text/plain\nConnection: close\nTransfer-Encoding: chunked\n"
        b"Content-Length: 999\nKeep-Alive: timeout=5\nUpgrade: h2c\nTE: trailers\n"
        b"Trailer: X\nProxy-Connection: close\nX-Kept: yes\n\nbody",
        200,
        [CT, (b"x-kept", b"yes")],
        b"body",
        id="framing-headers-dropped",
    ),
    pytest.param(
        b"Content-Type: text/plain\nContent-Length: 4\n\nbody",
        200,
        [CT],
        b"body",
        id="matching-content-length-dropped-too",
    ),
    pytest.param(b"Status: 204\n\nstray", 204, [], b"", id="204-loses-body"),
    pytest.param(b"Status: 304\nETag: x\n\nstray", 304, [(b"etag", b"x")], b"", id="304"),
    pytest.param(
        b"Content-Type: text/plain\n\nX-Not-A-Header: 1\n\nbody",
        200,
        [CT],
        b"X-Not-A-Header: 1\n\nbody",
        id="only-first-blank-line-splits",
    ),
]


@pytest.mark.parametrize(("out", "status", "headers", "body"), RESPONSE_CASES)
def test_parse_output(
    out: bytes, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    assert parsed(out) == (status, headers, body)


@pytest.mark.parametrize(
    ("out", "status", "message"),
    [
        (b"", 500, "wrote nothing"),
        (b"\n\nbody", 500, MISSING_CONTENT_TYPE),
        (b"\r\n\r\nbody", 500, MISSING_CONTENT_TYPE),
        (b"X-A: 1\n\nbody", 500, MISSING_CONTENT_TYPE),
        (b"Content-Type: text/plain\n", 502, "no blank line"),
        (b"hello world", 502, "no blank line"),
        (b"Content-Type: text/plain\r\nbody without separator", 502, "no blank line"),
        (b"Status: 99\n\n", 502, "invalid Status"),
        (b"Status: 600\n\n", 502, "invalid Status"),
        (b"Status: 4040\n\n", 502, "invalid Status"),
        (b"Status: abc\n\n", 502, "invalid Status"),
        (b"Status: 20\n\n", 502, "invalid Status"),
        (b"Status:\n\n", 502, "invalid Status"),
        (b"Status: 404Not Found\n\n", 502, "invalid Status"),
        (b"Status: 101 Switching Protocols\n\n", 502, "informational"),
        (b"Status: 200\nStatus: 404\n\n", 502, "more than one status"),
        (b"Content-Type: a\ncontent-type: b\n\n", 502, "more than one content-type"),
        (b"Location: /a\nLocation: /b\n\n", 502, "more than one location"),
        (b"Content-Type: text/plain\nBad Name: x\n\n", 502, "invalid CGI header name"),
        (b"Content-Type: text/plain\nX(y): x\n\n", 502, "invalid CGI header name"),
        (b"Content-Type: text/plain\n: x\n\n", 502, "invalid CGI header name"),
        (b"Content-Type: text/plain\nno colon here\n\n", 502, "malformed CGI header line"),
        (b"Content-Type: text/plain\n folded\n\n", 502, "folding"),
        (b"Content-Type: text/plain\n\tfolded\n\n", 502, "folding"),
        # Response-splitting attempts: a bare CR, NUL or other control character in a value.
        (b"Content-Type: text/plain\rX-Injected: 1\n\n", 502, "control character"),
        (b"Content-Type: text/plain\nX-A: a\rb\n\n", 502, "control character"),
        (b"Content-Type: text/plain\nX-A: a\r\r\n\r\n", 502, "control character"),
        (b"Content-Type: text/plain\nX-A: a\x00b\n\n", 502, "control character"),
        (b"Content-Type: text/plain\nX-A: a\x0bb\n\n", 502, "control character"),
        (b"Content-Type: text/plain\nX-A: a\x7fb\n\n", 502, "control character"),
        (b"Location: /ok\r\nLocation2\x00: x\r\n\r\n", 502, "invalid CGI header name"),
    ],
)
def test_parse_output_errors(out: bytes, status: int, message: str) -> None:
    with pytest.raises(CgiError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        parse_output(out)
    assert info.value.http_status == status
    assert "\n" not in str(info.value)


def test_parsing_a_header_block_again_gives_the_same_answer() -> None:
    """Small header blocks are parsed once and remembered: each response still gets headers of
    its own, and a bad block is refused every time."""
    out = b"Content-Type: text/plain\nX-A: 1\n\nbody"
    first = parse_output(out)
    first.headers.append((b"x-added", b"by the caller"))
    second = parse_output(out)
    assert second.headers == [(b"content-type", b"text/plain"), (b"x-a", b"1")]
    assert second.headers is not first.headers
    assert parse_output(b"Status: 404\nContent-Type: text/plain\n\n").status == 404
    for _ in range(2):
        with pytest.raises(CgiError, match="more than one"):
            parse_output(b"Status: 200\nStatus: 201\nContent-Type: a/b\n\n")
    big = b"Content-Type: text/plain\nX-Long: " + b"v" * 2000 + b"\n\nbody"  # not remembered
    assert parse_output(big).headers[1] == (b"x-long", b"v" * 2000)


def test_missing_content_type_message_is_wagis() -> None:
    assert MISSING_CONTENT_TYPE == "Exactly one of 'location' or 'content-type' must be specified"


def test_max_body() -> None:
    out = b"Content-Type: text/plain\n\n" + b"x" * 10
    assert parsed(out, max_body=10)[2] == b"x" * 10
    with pytest.raises(CgiError, match=r"response body is 11 bytes.*max_response_body") as info:
        parse_output(out + b"x", max_body=10)
    assert info.value.http_status == 502
    # The limit counts the body only, after the headers.
    assert parsed(b"Content-Type: text/plain\n\n", max_body=1)[2] == b""


def test_header_block_size_is_bounded() -> None:
    long_value = b"x" * MAX_HEADER_BYTES
    with pytest.raises(CgiError, match="64 KiB") as info:
        parse_output(b"Content-Type: text/plain\nX-Big: " + long_value + b"\n\nbody")
    assert info.value.http_status == 502
    with pytest.raises(CgiError, match="64 KiB"):
        parse_output(b"Content-Type: text/plain\nX-Big: " + long_value)
    # Just under the bound is fine, and the body may be as large as it likes.
    value = b"x" * (MAX_HEADER_BYTES - 100)
    out = b"Content-Type: text/plain\nX-Big: " + value + b"\n\n" + b"y" * (MAX_HEADER_BYTES * 2)
    status, headers, body = parsed(out)
    assert (status, headers[1], len(body)) == (200, (b"x-big", value), MAX_HEADER_BYTES * 2)
