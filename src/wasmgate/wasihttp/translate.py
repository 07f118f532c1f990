"""HTTP requests and responses <-> the values of the ``wasi:http`` proxy world (pure, no I/O).

Values use the shapes of the host's value codecs: a WIT variant is ``(case, payload)``, a
``result`` is ``("ok", v)`` / ``("err", e)``, an ``option`` is ``None`` or the value, a record is
a ``dict`` keyed by WIT field name, ``list<u8>`` is ``bytes``.

Rules:
- Methods: the nine standard methods are their own cases (``get`` ... ``patch``); any other
  token is ``other(name)`` as sent. A method that is not an RFC 9110 token is refused.
- Field names are case-insensitive and kept lower-case (as HTTP/2 and ``wasmtime serve`` do);
  a name must be an RFC 9110 token and a value may hold no CR, LF or NUL, nor any other control
  byte except horizontal tab: otherwise ``header-error.invalid-syntax``.
- Hop-by-hop and connection-level fields (``FORBIDDEN``) belong to the server: a guest setting
  one gets ``header-error.forbidden``; in a request they are still shown to the guest.
- A response's status code is valid in 200..=599: a 1xx is not a final response and codes past
  599 are not HTTP's (RFC 9110 15); ``set-status-code`` refuses others with its error value.
- A ``content-length`` set by the guest must match the body it wrote; otherwise the response is
  the guest's failure. The server then frames the response itself (one content-length).
- A response the guest answered with ``err(error-code)`` is ``error_status(code)``: 500 for
  every code except the few that name a client's fault (bad method, URI or sizes: 4xx).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "FORBIDDEN",
    "HttpRequest",
    "HttpResponse",
    "check_content_length",
    "error_status",
    "field_error",
    "format_error_code",
    "method_from_wit",
    "method_to_wit",
    "scheme_to_wit",
    "split_target",
    "valid_status",
]

_STANDARD = ("get", "head", "post", "put", "delete", "connect", "options", "trace", "patch")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TOKEN_STR = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Bytes a field value may not hold: controls other than HTAB, and DEL.
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")

FORBIDDEN = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
        "te",
        "http2-settings",
    }
)

_CLIENT_ERRORS = {
    "HTTP-request-method-invalid": 405,
    "HTTP-request-URI-invalid": 400,
    "HTTP-request-URI-too-long": 414,
    "HTTP-request-body-size": 413,
    "HTTP-request-header-section-size": 431,
    "HTTP-request-header-size": 431,
    "HTTP-request-length-required": 411,
}


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """An incoming request as the guest sees it (names lower-case bytes, in order)."""

    method: str
    path_with_query: str
    scheme: str = "http"
    authority: str | None = None
    headers: tuple[tuple[bytes, bytes], ...] = ()
    body: bytes = b""


@dataclass(slots=True)
class HttpResponse:
    """What the guest answered."""

    status: int = 200
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""


def method_to_wit(method: str) -> tuple[str, str | None]:
    """``"GET"`` -> ``("get", None)``; ``"PURGE"`` -> ``("other", "PURGE")``."""
    if not _TOKEN_STR.fullmatch(method):
        raise ValueError(f"invalid HTTP method {method!r}")
    lower = method.lower()
    if lower in _STANDARD and method.upper() == method:
        return (lower, None)
    return ("other", method)


def method_from_wit(value: tuple[str, Any]) -> str:
    """The inverse of ``method_to_wit``; ``ValueError`` for an invalid ``other`` name."""
    tag, payload = value
    if tag == "other":
        if not isinstance(payload, str) or not _TOKEN_STR.fullmatch(payload):
            raise ValueError(f"invalid HTTP method {payload!r}")
        return payload
    if tag not in _STANDARD:
        raise ValueError(f"unknown method case {tag!r}")
    return tag.upper()


def scheme_to_wit(scheme: str) -> tuple[str, str | None]:
    lower = scheme.lower()
    if lower == "http":
        return ("HTTP", None)
    if lower == "https":
        return ("HTTPS", None)
    return ("other", scheme)


def split_target(raw_path: str, query_string: str) -> str:
    """The request's path-with-query as the guest gets it (``/p`` or ``/p?q``)."""
    path = raw_path or "/"
    return f"{path}?{query_string}" if query_string else path


def field_error(name: str, value: bytes | None = None, *, guest: bool = True) -> str | None:
    """The ``header-error`` case for a field the guest sets (None when it is fine)."""
    if not _TOKEN_STR.fullmatch(name):
        return "invalid-syntax"
    if value is not None and _BAD_VALUE.search(value):
        return "invalid-syntax"
    if guest and name.lower() in FORBIDDEN:
        return "forbidden"
    return None


def valid_status(code: int) -> bool:
    return 200 <= code <= 599


def check_content_length(headers: Iterable[tuple[bytes, bytes]], body_size: int) -> str | None:
    """Why the guest's ``content-length`` does not fit the body it wrote (None if it fits)."""
    for name, value in headers:
        if name == b"content-length":
            text = value.strip()
            if not text.isdigit():
                return f"invalid content-length {value!r}"
            if int(text) != body_size:
                return f"content-length {int(text)} but the body has {body_size} bytes"
    return None


def error_status(code: tuple[str, Any]) -> int:
    """The HTTP status for a guest's ``err(error-code)`` answer."""
    return _CLIENT_ERRORS.get(code[0], 500)


def format_error_code(code: tuple[str, Any]) -> str:
    """``error-code`` as one line for logs: ``internal-error("boom")``."""
    tag, payload = code
    if payload is None:
        return tag
    if isinstance(payload, dict):
        inner = ", ".join(f"{k}: {v!r}" for k, v in payload.items() if v is not None)
        return f"{tag}({inner})"
    return f"{tag}({payload!r})"
