"""Property tests: the CGI translation's invariants hold for arbitrary input."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from wasmgate.errors import CgiError
from wasmgate.wagi.cgi import (
    CGI_VARIABLES,
    MAX_HEADER_BYTES,
    CgiRequest,
    build_argv,
    build_environ,
    check_request,
    parse_output,
)
from wasmgate.wagi.routes import Route, RouteMatch, RoutePattern, RouteTable

T = TypeVar("T")


def outcome(call: Callable[[], T]) -> T | CgiError:
    """The call's result, or the ``CgiError`` it raised (any other exception propagates)."""
    try:
        return call()
    except CgiError as exc:
        return exc


FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
SPECIAL_RESPONSE_HEADERS = {
    b"status",
    b"location",
    b"content-type",
    b"content-length",
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"te",
    b"trailer",
    b"transfer-encoding",
    b"upgrade",
}

# Output that looks like CGI often enough to reach every header rule, plus arbitrary bytes.
plausible_line = st.sampled_from(
    [
        b"Content-Type: text/plain",
        b"Status: 404 Not Found",
        b"x-b:\ttext/html ",
        b"Location: /x",
        b"Set-Cookie: a=1",
        b"X-A: 1",
        b"X-A:",
        b"Content-Length: 3",
        b"Transfer-Encoding: chunked",
    ]
)
hostile_line = st.one_of(
    st.sampled_from([b"Status: 99", b" folded", b"", b"X-A: a\rb", b"Bad Name: 1", b"X:\x00"]),
    st.binary(max_size=40),
)
cgi_like_output = st.one_of(
    st.binary(max_size=300),
    st.builds(
        lambda lines, newline, body: newline.join(lines) + newline + newline + body,
        st.lists(plausible_line, max_size=6, unique=True)
        | st.lists(plausible_line | hostile_line, max_size=6),
        st.sampled_from([b"\n", b"\r\n", b"\n", b"\r\n", b"\r"]),
        st.binary(max_size=50),
    ),
)


@FUZZ
@given(cgi_like_output, st.none() | st.none() | st.integers(min_value=0, max_value=100))
def test_parse_output_only_raises_cgi_error_and_never_emits_unsafe_headers(
    out: bytes, max_body: int | None
) -> None:
    response = outcome(lambda: parse_output(out, max_body=max_body))
    if isinstance(response, CgiError):
        event(f"refused {response.http_status}")
        assert response.http_status in (500, 502)
        assert "\n" not in str(response)
        return
    event("parsed")
    assert 200 <= response.status <= 599
    assert response.body in out
    if max_body is not None:
        assert len(response.body) <= max_body
    for name, value in response.headers:
        assert name
        assert name == name.lower()
        assert name not in (b"status", b"content-length", b"transfer-encoding", b"connection")
        for forbidden in (b"\r", b"\n", b"\x00", b":", b" "):
            assert forbidden not in name
        for forbidden in (b"\r", b"\n", b"\x00"):
            assert forbidden not in value


header_name = st.text(alphabet=TCHAR, min_size=1, max_size=20).map(str.encode)
# Values: no surrounding whitespace (it is trimmed), no control characters, obs-text allowed.
header_value = st.binary(max_size=30).map(
    lambda v: bytes(b for b in v if b >= 0x20 and b != 0x7F).strip(b" \t")
)


@FUZZ
@given(
    st.lists(
        st.tuples(header_name, header_value).filter(
            lambda h: h[0].lower() not in SPECIAL_RESPONSE_HEADERS
        ),
        max_size=8,
    ),
    st.binary(max_size=200),
    st.sampled_from([b"\n", b"\r\n"]),
    st.sampled_from([b": ", b":", b":\t", b" : "]),
)
def test_well_formed_output_round_trips(
    headers: list[tuple[bytes, bytes]], body: bytes, newline: bytes, colon: bytes
) -> None:
    all_headers = [(b"Content-Type", b"text/plain"), *headers]
    out = b"".join(name + colon + value + newline for name, value in all_headers) + newline + body
    response = parse_output(out)
    assert response.status == 200
    assert response.headers == [(name.lower(), value) for name, value in all_headers]
    assert response.body == body


ROUTES = RouteTable(
    [
        Route(RoutePattern(text), text)
        for text in ("/exact", "/dir/...", "/a%20b/...", "/caf%C3%A9", "/...")
    ]
)
BASE_ENV = {"GREETING": "hello", "SCRIPT_NAME": "config", "HTTP_X_A": "config"}

raw_path = st.one_of(
    st.text(max_size=30).map(lambda s: "/" + s),
    st.lists(
        st.sampled_from(["dir", "exact", "%00", "%ff", "%2F", "%C3%A9", "a%20b", "..", "", "x"]),
        max_size=4,
    ).map(lambda parts: "/" + "/".join(parts)),
)
request_header = st.tuples(
    st.one_of(
        st.sampled_from(
            [b"host", b"cookie", b"content-type", b"x-a", b"x_a", b"authorization", b"proxy"]
        ),
        st.binary(max_size=12),
    ),
    st.one_of(
        st.sampled_from([b"example.com", b"example.com:8080", b"[::1]:1", b"a\r\nb: c"]),
        st.binary(max_size=20),
    ),
)
requests = st.builds(
    CgiRequest,
    method=st.one_of(st.sampled_from(["GET", "POST"]), st.text(max_size=8)),
    raw_path=raw_path,
    query_string=st.text(max_size=20),
    headers=st.lists(request_header, max_size=6).map(tuple),
    scheme=st.sampled_from(["http", "https"]),
    http_version=st.sampled_from(["1.0", "1.1", "2"]),
    client=st.one_of(st.none(), st.tuples(st.text(max_size=15), st.integers(0, 65535))),
    content_length=st.one_of(st.none(), st.integers(min_value=0, max_value=10**9)),
)


def _environ(request: CgiRequest, match: RouteMatch[str]) -> dict[str, str]:
    return build_environ(
        request,
        match,
        base_env=BASE_ENV,
        default_host="localhost:3000",
        server_software="wasmgate/test",
    )


@FUZZ
@given(requests)
def test_build_environ_only_raises_cgi_error_and_builds_a_safe_environment(
    request: CgiRequest,
) -> None:
    match = ROUTES.match(request.raw_path)
    if not isinstance(match, RouteMatch):
        return
    env = outcome(lambda: _environ(request, match))
    if isinstance(env, CgiError):
        event("refused")
        assert env.http_status == 400
        assert "\n" not in str(env)
        return
    event("built")
    for key, value in env.items():
        assert key
        assert "\x00" not in key
        assert "=" not in key
        assert "\x00" not in value
        (key + value).encode("utf-8")  # a WASI environment is UTF-8: this must not raise
        assert key in CGI_VARIABLES or key.startswith("HTTP_") or key in BASE_ENV
    assert env.keys() >= CGI_VARIABLES
    assert env["GREETING"] == "hello"
    assert env["SCRIPT_NAME"] + env["X_RAW_PATH_INFO"] == request.raw_path
    assert "HTTP_AUTHORIZATION" not in env
    assert "HTTP_PROXY" not in env
    for forbidden in ("\r", "\n", " ", "/", "@"):
        assert forbidden not in env["SERVER_NAME"]
    argv = build_argv(request, match, None)
    assert argv[0] == request.raw_path


@FUZZ
@given(
    st.integers(min_value=-8, max_value=8),
    st.lists(st.sampled_from([b"\n", b"\r", b"x", b"\n\n", b"\n\r\n"]), max_size=6),
)
def test_parse_output_near_the_header_bound(offset: int, tail: list[bytes]) -> None:
    head = b"Content-Type: text/plain\nX: "
    out = head + b"x" * (MAX_HEADER_BYTES - len(head) + offset) + b"".join(tail) + b"\n\nbody"
    response = outcome(lambda: parse_output(out))
    if isinstance(response, CgiError):
        assert response.http_status == 502
        return
    end = min(i for i in (out.find(b"\n\n"), out.find(b"\n\r\n")) if i >= 0)
    assert end <= MAX_HEADER_BYTES
    assert response.body == out[end:].removeprefix(b"\n").removeprefix(b"\r").removeprefix(b"\n")


@FUZZ
@given(requests)
def test_check_request_refuses_exactly_what_build_environ_refuses(request: CgiRequest) -> None:
    """A guest that reads no environment gets ``check_request`` instead of ``build_environ``
    (``ModuleHandler``): the same requests are refused with the same error, and the same server
    name, port and path info are accepted."""
    match = ROUTES.match(request.raw_path)
    if not isinstance(match, RouteMatch):
        return
    env = outcome(lambda: _environ(request, match))
    checked = outcome(lambda: check_request(request, match, default_host="localhost:3000"))
    if isinstance(env, CgiError):
        event("refused")
        assert isinstance(checked, CgiError)
        assert (checked.http_status, str(checked)) == (env.http_status, str(env))
        return
    event("accepted")
    assert checked == (env["SERVER_NAME"], env["SERVER_PORT"], env["PATH_INFO"])
