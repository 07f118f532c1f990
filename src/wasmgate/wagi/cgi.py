"""The CGI/1.1 translation WAGI uses, as plain functions on bytes and dataclasses (no I/O).

A request becomes an environment (``build_environ``) and an argument vector (``build_argv``); the
body goes to stdin (the gateway's job). The guest's stdout becomes a response (``parse_output``).
Behaviour follows deislabs/wagi 0.8 except where a rule below says otherwise.

Request representation (``CgiRequest.from_asgi_scope``): ``method`` <- ``scope["method"]``;
``raw_path`` <- ``scope["raw_path"]`` up to any ``?`` (some servers include the query), or
``scope["path"]`` percent-encoded again when the server gives no raw path; ``query_string`` <-
``scope["query_string"]``; ``headers`` <- ``scope["headers"]`` (names lower-cased); ``scheme``,
``http_version`` and ``client`` <- the scope keys of the same names; ``content_length`` <- a
well-formed ``Content-Length`` header. In ``raw_path`` and ``query_string`` every byte outside
printable ASCII is percent-encoded, so both are ASCII text. ``root_path`` <- ``scope["root_path"]``
(the mount point when the gateway is mounted inside another ASGI app, e.g. ``/wasm``), removed from
the front of ``raw_path`` when the server left it there, so ``raw_path`` is the path within the
gateway (the routes match it) and ``root_path + raw_path`` is the path the client asked for. The
gateway should set ``content_length`` to the length of the body it
actually read (``dataclasses.replace``) before building the environment.

Environment rules:
- Layers: the base environment (``-e``/``--env-file`` then the module's ``environment``; the
  caller merges them) first, then the CGI variables, which always win. Nothing comes from the
  host process.
- ``AUTH_TYPE`` and ``REMOTE_USER`` are empty: wasmgate authenticates nobody.
- ``CONTENT_LENGTH`` is the body length, ``"0"`` when there is none; ``CONTENT_TYPE`` is the
  request's Content-Type, empty when absent (FIX: WAGI always left it empty).
- ``SCRIPT_NAME`` is ``root_path`` + the route without ``/...`` (``""`` for ``/...`` unmounted,
  where WAGI said ``"/"``: this keeps RFC 3875's ``SCRIPT_NAME + PATH_INFO == path``, the path the
  client asked for, mount point included). ``X_MATCHED_ROUTE`` is the route
  text. ``X_RAW_PATH_INFO`` is the raw rest of the path; ``PATH_INFO`` and ``PATH_TRANSLATED`` are
  that rest percent-decoded. If the decoded bytes contain NUL (WASI environment entries are
  NUL-terminated) or are not UTF-8 (WASI environment entries are UTF-8 strings), the request is
  refused with ``CgiError(400)``: a lossy replacement would hand the guest a path nobody asked for.
- ``SERVER_NAME``/``SERVER_PORT`` come from the Host header, else from the configured default host
  (``--hostname``, e.g. ``localhost:3000``). Without a port, the scheme's default port is used (80
  or 443; WAGI kept the default host's port, which produced wrong URLs behind proxies). A Host
  header that is not ``name[:port]`` (letters, digits, ``-._~``, or a bracketed IPv6 literal; port
  at most 65535) or that is repeated is refused with ``CgiError(400)``, as RFC 7230 section 5.4
  requires, so it can never be injected into ``SERVER_NAME`` or ``X_FULL_URL``.
- ``X_FULL_URL`` is ``scheme://SERVER_NAME:SERVER_PORT`` + ``root_path`` + raw path + ``?query``
  (the ``?`` only when there is a query). ``SERVER_PROTOCOL`` is ``HTTP/`` + the HTTP version.
- ``HTTP_*``: one variable per request header, named ``HTTP_`` + the name upper-cased with ``-``
  turned into ``_``. Dropped: ``Authorization`` and ``Connection`` (RFC 3875 section 4.1.18),
  ``Proxy`` (so ``HTTP_PROXY`` cannot redirect a guest's outgoing HTTP: "httpoxy"), any name
  containing ``_`` (so ``X_Foo`` cannot pose as ``X-Foo``), any name that is not an RFC 7230 token,
  and any header whose value holds a control character other than tab (NUL cannot travel in a WASI
  environment, and CR/LF have no business there). Repeated headers are joined with ``", "``, except
  Cookie, joined with ``"; "`` (RFC 7540 section 8.1.2.5). Values are decoded as UTF-8, or as
  ISO-8859-1 when they are not valid UTF-8 (RFC 7230's historical charset), so no byte is lost.
- A request whose method, path, query, scheme, version or client address holds NUL or text that
  cannot be encoded as UTF-8 is refused with ``CgiError(400)`` (only a hand-built ``CgiRequest``
  can carry one: ``from_asgi_scope`` never produces it).

Argument rules (``build_argv``):
- Without a template: ``[raw path, *query.split("&")]``, or just ``[raw path]`` with no query,
  exactly as WAGI (nothing is percent-decoded).
- With a template: ``${SCRIPT_NAME}`` becomes ``SCRIPT_NAME`` (or ``/`` when that is empty: an
  empty word would vanish in the split below and shift every argument) and ``${ARGS}`` becomes the
  query's ``&``-separated items joined by spaces; both are replaced in one pass (a value is never
  re-expanded), then the result is split on whitespace. The raw path and query hold no whitespace,
  so substituted values never split apart.

Response rules (``parse_output``):
- The headers end at the first blank line (``\\n\\n`` or ``\\n\\r\\n``); one CR before each LF is
  dropped in the header part only, and the body is every byte after the blank line, untouched. No
  blank line within the first 64 KiB is ``CgiError(502)``: the output is never guessed apart.
- Empty output is ``CgiError(500)``. Without ``Content-Type``, ``Status`` or ``Location`` the
  answer is WAGI's ``CgiError(500, "Exactly one of 'location' or 'content-type' must be
  specified")``.
- Each header line is ``Name: value``. The name must be an RFC 7230 token (whitespace before the
  colon is removed, as RFC 7230 section 3.2.4 tells proxies to); the value loses surrounding spaces
  and tabs and must hold no control character other than tab (CR, LF and NUL included); a line
  starting with whitespace (obsolete folding) or without a colon is malformed. Any of these is
  ``CgiError(502)`` (FIX: WAGI crashed or dropped them silently), so no guest can split a response.
- ``Status: 404 Not Found`` sets 404 (the reason phrase is dropped: ASGI cannot carry it). A
  status that is not three digits in 200..599 is ``CgiError(502)``; 1xx is refused too, as it is
  not a final response. ``Location`` without ``Status`` means 302; an explicit ``Status`` always
  wins. Otherwise the status is 200.
- ``Status``, ``Content-Type`` and ``Location`` may appear once each (a second one is
  ``CgiError(502)``: which one the guest meant is unknowable); every other header may repeat and
  all copies are kept in order (FIX: WAGI kept the last ``Set-Cookie`` only). ``Status`` itself
  is not passed on.
- Framing belongs to the gateway, never to the guest: ``Content-Length`` and the hop-by-hop
  headers (``Connection``, ``Keep-Alive``, ``Proxy-Connection``, ``TE``, ``Trailer``,
  ``Transfer-Encoding``, ``Upgrade``) are dropped, and a 204 or 304 response loses its body (RFC
  7230 section 3.3.3: those responses end with their headers).
- A body longer than ``max_body`` is ``CgiError(502)`` naming both sizes.
- Header names are returned lower-cased, as ASGI requires; values are bytes as the guest wrote
  them.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from ..errors import CgiError, UsageError
from ..units import format_size
from .routes import RouteMatch

__all__ = [
    "CGI_VARIABLES",
    "GATEWAY_INTERFACE",
    "MAX_HEADER_BYTES",
    "MISSING_CONTENT_TYPE",
    "CgiRequest",
    "CgiResponse",
    "build_argv",
    "build_environ",
    "check_request",
    "parse_host",
    "parse_output",
]

GATEWAY_INTERFACE = "CGI/1.1"
MAX_HEADER_BYTES = 64 * 1024
MISSING_CONTENT_TYPE = "Exactly one of 'location' or 'content-type' must be specified"

CGI_VARIABLES = frozenset(
    {
        "AUTH_TYPE",
        "CONTENT_LENGTH",
        "CONTENT_TYPE",
        "GATEWAY_INTERFACE",
        "PATH_INFO",
        "PATH_TRANSLATED",
        "QUERY_STRING",
        "REMOTE_ADDR",
        "REMOTE_HOST",
        "REMOTE_USER",
        "REQUEST_METHOD",
        "SCRIPT_NAME",
        "SERVER_NAME",
        "SERVER_PORT",
        "SERVER_PROTOCOL",
        "SERVER_SOFTWARE",
        "X_FULL_URL",
        "X_MATCHED_ROUTE",
        "X_RAW_PATH_INFO",
    }
)

# RFC 7230 section 3.2.6: token = 1*tchar.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Control characters other than horizontal tab.
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_NOT_PRINTABLE_ASCII = re.compile(rb"[^\x21-\x7e]")
_PERCENT_ENCODED = tuple(f"%{b:02X}" if not 0x21 <= b <= 0x7E else chr(b) for b in range(256))
# What urllib.parse.quote must leave alone when re-encoding a decoded ASGI path (RFC 3986 pchar
# and "/", without "%": a literal "%" in a decoded path must become "%25").
_PATH_SAFE = "/!$&'()*+,;=:@-._~"
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~-]+)(?::([0-9]{0,5}))?")
_STATUS = re.compile(rb"([0-9]{3})(?:[ \t].*)?", re.DOTALL)
_TEMPLATE_FIELD = re.compile(r"\$\{(SCRIPT_NAME|ARGS)\}")

_DROPPED_REQUEST_HEADERS = frozenset({b"authorization", b"connection", b"proxy"})
_FRAMING_RESPONSE_HEADERS = frozenset(
    {
        b"connection",
        b"content-length",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
_SINGLE_RESPONSE_HEADERS = frozenset({b"status", b"content-type", b"location"})
_BODILESS_STATUSES = frozenset({204, 304})
_DEFAULT_PORTS = MappingProxyType({"https": "443", "wss": "443"})
_EMPTY_ENV: Mapping[str, str] = MappingProxyType({})


def _ascii_text(raw: bytes) -> str:
    """``raw`` as ASCII text, percent-encoding each byte that is not printable ASCII."""
    if _NOT_PRINTABLE_ASCII.search(raw) is None:
        return raw.decode("ascii")
    return "".join([_PERCENT_ENCODED[b] for b in raw])


@dataclass(frozen=True, slots=True)
class CgiRequest:
    """What the CGI translation needs from an HTTP request (see the module docstring)."""

    method: str
    raw_path: str
    query_string: str = ""
    headers: tuple[tuple[bytes, bytes], ...] = ()
    scheme: str = "http"
    http_version: str = "1.1"
    client: tuple[str, int] | None = None
    content_length: int | None = None
    root_path: str = ""

    @classmethod
    def from_asgi_scope(cls, scope: Mapping[str, Any]) -> CgiRequest:
        # Once per served request: plain bytes (what servers give) take the short ways.
        raw_path = scope.get("raw_path")
        if type(raw_path) is bytes:
            path = _ascii_text(raw_path.partition(b"?")[0])
        elif isinstance(raw_path, bytearray):
            path = _ascii_text(bytes(raw_path).partition(b"?")[0])
        else:
            path = urllib.parse.quote(str(scope["path"]), safe=_PATH_SAFE)
        headers = tuple(
            [(bytes(name).lower(), bytes(value)) for name, value in scope.get("headers", ())]
        )
        content_length = None
        for name, value in headers:
            if name == b"content-length" and value.isdigit():
                content_length = int(value)
        client = scope.get("client")
        root = str(scope.get("root_path") or "")
        if root:
            root = urllib.parse.quote(root, safe=_PATH_SAFE).rstrip("/")
            if path == root or path.startswith(root + "/"):
                path = path[len(root) :] or "/"
        query = scope.get("query_string", b"")
        return cls(
            str(scope["method"]),
            path,
            _ascii_text(bytes(query)) if query else "",
            headers,
            str(scope.get("scheme", "http")),
            str(scope.get("http_version", "1.1")),
            (str(client[0]), int(client[1])) if client else None,
            content_length,
            root,
        )


@dataclass(frozen=True, slots=True)
class CgiResponse:
    """A guest's response: final status, headers (lower-case names, in order) and body."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


def parse_host(value: str) -> tuple[str, str | None]:
    """Split ``name[:port]`` into name and port (``None`` if absent); ``ValueError`` if invalid."""
    m = _HOST.fullmatch(value)
    if m is None:
        raise ValueError(f"invalid host {value!r} (expected name[:port], e.g. localhost:3000)")
    port = m.group(2) or None
    if port is not None and int(port) > 65535:
        raise ValueError(f"invalid host {value!r}: port out of range")
    return m.group(1), port


@lru_cache(maxsize=16)
def _default_authority(default_host: str) -> tuple[str, str | None]:
    try:
        return parse_host(default_host)
    except ValueError as exc:
        raise UsageError(f"default host: {exc}") from None


@lru_cache(maxsize=512)
def _header_variable(name: bytes) -> str | None:
    """The ``HTTP_*`` name for a request header name, or ``None`` when the header is dropped."""
    name = name.lower()
    if _TOKEN.fullmatch(name) is None or b"_" in name or name in _DROPPED_REQUEST_HEADERS:
        return None
    return "HTTP_" + name.decode("ascii").upper().replace("-", "_")


def _header_text(value: bytes) -> str | None:
    if _CONTROL.search(value) is not None:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def _check_request_text(request: CgiRequest) -> None:
    client_host = request.client[0] if request.client else ""
    text = "".join(
        (
            request.method,
            request.raw_path,
            request.query_string,
            request.scheme,
            request.http_version,
            client_host,
        )
    )
    if "\x00" in text:
        raise CgiError(400, "request line contains NUL")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise CgiError(400, "request line is not valid text") from None


def _decode_path_info(raw: str) -> str:
    if "%" not in raw:
        return raw
    decoded = urllib.parse.unquote_to_bytes(raw)
    if b"\x00" in decoded:
        raise CgiError(400, "request path contains an encoded NUL (%00)")
    try:
        return decoded.decode("utf-8")
    except UnicodeDecodeError:
        raise CgiError(400, "request path is not UTF-8 once percent-decoded") from None


@lru_cache(maxsize=256)  # a server sees few Host values; a client sending many only evicts
def _server_authority(host: bytes | None, default_host: str, scheme: str) -> tuple[str, str]:
    if host:
        try:
            name, port = parse_host(host.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            raise CgiError(400, "invalid Host header") from None
    else:
        name, port = _default_authority(default_host)
    return name, port or _DEFAULT_PORTS.get(scheme, "80")


def check_request(
    request: CgiRequest, match: RouteMatch[Any], *, default_host: str
) -> tuple[str, str, str]:
    """``(SERVER_NAME, SERVER_PORT, PATH_INFO)`` for ``request`` on ``match``, or ``CgiError(400)``
    for a bad request: every check ``build_environ`` makes, for a guest that reads no
    environment (its request must be refused all the same)."""
    _check_request_text(request)
    hosts = [value for name, value in request.headers if name.lower() == b"host"]
    if len(hosts) > 1:
        raise CgiError(400, "more than one Host header")
    server_name, server_port = _server_authority(
        hosts[0] if hosts else None, default_host, request.scheme
    )
    return server_name, server_port, _decode_path_info(match.raw_path_info)


def build_environ(
    request: CgiRequest,
    match: RouteMatch[Any],
    *,
    base_env: Mapping[str, str] = _EMPTY_ENV,
    default_host: str,
    server_software: str,
) -> dict[str, str]:
    """The guest's environment for ``request`` on ``match``; ``CgiError(400)`` for a bad request
    (``check_request``).

    ``default_host`` is ``name[:port]`` (``UsageError`` if it is not); ``base_env`` holds the
    global and per-module variables, already merged and validated.
    """
    server_name, server_port, path_info = check_request(request, match, default_host=default_host)
    collected: dict[str, list[str]] = {}
    for name, value in request.headers:
        variable = _header_variable(name)
        if variable is None:
            continue
        text = _header_text(value)
        if text is not None:
            collected.setdefault(variable, []).append(text)
    raw_path_info = match.raw_path_info
    pattern = match.route.pattern
    query = request.query_string
    client_host = request.client[0] if request.client else ""
    root = request.root_path
    full_url = f"{request.scheme}://{server_name}:{server_port}{root}{request.raw_path}"

    env = dict(base_env)
    for variable, values in collected.items():
        separator = "; " if variable == "HTTP_COOKIE" else ", "
        env[variable] = values[0] if len(values) == 1 else separator.join(values)
    env["AUTH_TYPE"] = ""
    env["CONTENT_LENGTH"] = str(request.content_length or 0)
    env["CONTENT_TYPE"] = env["HTTP_CONTENT_TYPE"] if "HTTP_CONTENT_TYPE" in collected else ""
    env["GATEWAY_INTERFACE"] = GATEWAY_INTERFACE
    env["PATH_INFO"] = path_info
    env["PATH_TRANSLATED"] = path_info
    env["QUERY_STRING"] = query
    env["REMOTE_ADDR"] = client_host
    env["REMOTE_HOST"] = client_host
    env["REMOTE_USER"] = ""
    env["REQUEST_METHOD"] = request.method
    env["SCRIPT_NAME"] = root + pattern.script_name
    env["SERVER_NAME"] = server_name
    env["SERVER_PORT"] = server_port
    env["SERVER_PROTOCOL"] = "HTTP/" + request.http_version
    env["SERVER_SOFTWARE"] = server_software
    env["X_FULL_URL"] = f"{full_url}?{query}" if query else full_url
    env["X_MATCHED_ROUTE"] = pattern.text
    env["X_RAW_PATH_INFO"] = raw_path_info
    return env


def build_argv(request: CgiRequest, match: RouteMatch[Any], template: str | None) -> list[str]:
    """The guest's argv: WAGI's default, or ``template`` expanded (see the module docstring)."""
    query = request.query_string
    if template is None:
        return [request.raw_path, *query.split("&")] if query else [request.raw_path]
    values = {
        "SCRIPT_NAME": request.root_path + match.route.pattern.script_name or "/",
        "ARGS": " ".join(query.split("&")),
    }
    return _TEMPLATE_FIELD.sub(lambda m: values[m.group(1)], template).split()


def _header_lines(block: bytes) -> Iterable[tuple[bytes, bytes]]:
    """Split a header block into validated ``(lower-case name, value)`` pairs."""
    for line in block.split(b"\n"):
        line = line.removesuffix(b"\r")
        if line[:1] in (b" ", b"\t"):
            raise CgiError(502, "obsolete header line folding is not supported")
        name, colon, value = line.partition(b":")
        if not colon:
            raise CgiError(502, f"malformed CGI header line {line[:60]!r} (expected Name: value)")
        name = name.rstrip(b" \t")
        if _TOKEN.fullmatch(name) is None:
            raise CgiError(502, f"invalid CGI header name {name[:60]!r}")
        value = value.strip(b" \t")
        if _CONTROL.search(value) is not None:
            raise CgiError(502, f"CGI header {name.decode('ascii')} has a control character")
        yield name.lower(), value


def _split_output(stdout: bytes) -> tuple[bytes, bytes]:
    """Split at the first blank line: (header block without its last newline, body)."""
    if stdout.startswith(b"\n"):
        return b"", stdout[1:]
    if stdout.startswith(b"\r\n"):
        return b"", stdout[2:]
    window = MAX_HEADER_BYTES + 3
    found = (stdout.find(b"\n\n", 0, window), stdout.find(b"\n\r\n", 0, window))
    ends = [i for i in found if i >= 0]
    if not ends:
        if len(stdout) > MAX_HEADER_BYTES:
            raise CgiError(502, "no blank line ends the CGI headers within 64 KiB")
        raise CgiError(502, "no blank line ends the CGI headers")
    end = min(ends)
    if end > MAX_HEADER_BYTES:
        raise CgiError(502, "CGI headers are longer than 64 KiB")
    separator = 2 if stdout[end + 1 : end + 2] == b"\n" else 3
    return stdout[:end], stdout[end + separator :]


def _parse_status(value: bytes) -> int:
    m = _STATUS.fullmatch(value)
    code = int(m.group(1)) if m else 0
    if not 100 <= code <= 599:
        raise CgiError(502, f"invalid Status header {value[:60]!r}")
    if code < 200:
        raise CgiError(502, f"Status {code} is informational, not a final response")
    return code


def parse_output(stdout: bytes, *, max_body: int | None = None) -> CgiResponse:
    """Turn a guest's stdout into a response, or raise ``CgiError`` saying which status to send."""
    if not stdout:
        raise CgiError(500, "the module wrote nothing to stdout")
    block, body = _split_output(stdout)
    parse = _parse_header_block_cached if len(block) <= _CACHED_BLOCK else _parse_header_block
    status, headers = parse(block)
    if status in _BODILESS_STATUSES:
        body = b""
    if max_body is not None and len(body) > max_body:
        raise CgiError(
            502,
            f"response body is {len(body)} bytes, over the route's max_response_body "
            f"of {max_body} bytes ({format_size(max_body)})",
        )
    return CgiResponse(status, list(headers), body)


def _parse_header_block(block: bytes) -> tuple[int, tuple[tuple[bytes, bytes], ...]]:
    """The status and the headers a CGI header block gives (``CgiError`` if it is bad)."""
    status: int | None = None
    seen: set[bytes] = set()  # the single-use headers met so far
    headers: list[tuple[bytes, bytes]] = []
    for name, value in _header_lines(block) if block else ():
        if name in _SINGLE_RESPONSE_HEADERS:
            if name in seen:
                raise CgiError(502, f"more than one {name.decode('ascii')} header")
            seen.add(name)
            if name == b"status":
                status = _parse_status(value)
                continue
        elif name in _FRAMING_RESPONSE_HEADERS:
            continue
        headers.append((name, value))
    if not seen:
        raise CgiError(500, MISSING_CONTENT_TYPE)
    if status is None:
        status = 302 if b"location" in seen else 200
    return status, tuple(headers)


# A route's guest mostly writes the same header block every time (its content type): the blocks
# up to _CACHED_BLOCK bytes are parsed once (a pure function of the bytes; a bad block raises
# each time, as errors are not cached), which halves parse_output for a hello.
_CACHED_BLOCK = 1024
_parse_header_block_cached = lru_cache(maxsize=256)(_parse_header_block)
