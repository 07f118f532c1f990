"""``wasi:http/outgoing-handler``: a guest's outbound requests, under the route's allow-list.

Rules:
- The same policy, client, timeouts and per-hop redirect checks as WAGI's
  ``wasi_experimental_http`` (``wagi.outbound.OutboundPolicy`` and ``wagi.outbound_client.send``):
  no ``allowed_hosts`` (absent or empty) means no request is ever sent. A host the allow-list
  does not permit, first hop or redirect, is ``error-code.HTTP-request-denied``.
- The URL is ``scheme://authority/path-with-query`` of the outgoing request: no scheme means
  ``https`` (as wasmtime), no authority is ``HTTP-request-URI-invalid``, no path is ``/``.
- The exchange happens when the guest first asks the future for its response (``get``, or a
  pollable wait on it): by then a guest following the usual order (``handle``, write the body,
  ``finish``) has written its whole body, which is sent with ``content-length``. Bodies are
  buffered both ways (streaming is a later step of issue 11).
- ``http_max_concurrency`` bounds the outgoing requests whose future a guest holds at once; one
  more is ``error-code.connection-limit-reached``.
- A guest blocked on an outbound request cannot be interrupted: the request's timeout is the
  policy's, cut to what is left of the guest's own deadline.
- Transport failures map to the closest ``error-code``: refused connection
  ``connection-refused``, DNS failure ``DNS-error``, timeout ``connection-timeout``, a response
  body over the limit ``HTTP-response-body-size``, a malformed response ``HTTP-protocol-error``,
  anything else ``internal-error`` with the reason.
"""

from __future__ import annotations

import socket
import time
from typing import Any

from ..wagi.outbound import HttpError, OutboundPolicy
from ..wagi.outbound_client import DestinationDenied, OutboundRequest, TransportError, send
from ..wagi.outbound_url import InvalidUrl, parse_url
from .translate import method_from_wit

__all__ = ["error_for_transport", "perform", "request_url"]

DENIED: tuple[str, Any] = ("HTTP-request-denied", None)


def request_url(scheme: tuple[str, Any] | None, authority: str | None, path: str | None) -> str:
    """The URL an outgoing request's parts make (``ValueError`` without an authority)."""
    if not authority:
        raise ValueError("an outgoing request needs an authority")
    if scheme is None or scheme[0] == "HTTPS":
        text = "https"
    elif scheme[0] == "HTTP":
        text = "http"
    else:
        text = str(scheme[1])
    path = path or "/"
    if not path.startswith("/"):
        path = "/" + path
    return f"{text}://{authority}{path}"


def error_for_transport(exc: TransportError) -> tuple[str, Any]:
    """The ``error-code`` for a failed exchange."""
    cause = exc.__cause__
    text = str(exc)
    if isinstance(cause, ConnectionRefusedError):
        return ("connection-refused", None)
    if isinstance(cause, socket.gaierror):
        return ("DNS-error", {"rcode": None, "info-code": None})
    if "timed out" in text:
        return ("connection-timeout", None)
    if "larger than" in text:
        return ("HTTP-response-body-size", None)
    if "malformed" in text or "invalid Content-Length" in text:
        return ("HTTP-protocol-error", None)
    return ("internal-error", text)


def perform(
    policy: OutboundPolicy | None,
    method: tuple[str, Any],
    url_text: str,
    headers: list[tuple[str, bytes]],
    body: bytes,
    deadline: float | None,
) -> tuple[str, Any]:
    """Send one request: ``("ok", (status, headers, body))`` or ``("err", error-code)``."""
    if policy is None or not policy.allowed_hosts:
        return ("err", DENIED)
    try:
        url = parse_url(url_text)
        name = method_from_wit(method)
    except (InvalidUrl, ValueError):
        return ("err", ("HTTP-request-URI-invalid", None))
    verdict = policy.check_url(url_text)
    if verdict is not HttpError.SUCCESS:
        return ("err", DENIED)
    timeout = policy.timeout
    if deadline is not None:
        timeout = min(timeout, deadline - time.monotonic())
        if timeout <= 0:
            return ("err", ("connection-timeout", None))
    request = OutboundRequest(
        method=name,
        url=url,
        headers=tuple((n, v.decode("latin-1")) for n, v in headers),
        body=body,
    )
    try:
        response = send(
            request,
            allow=lambda u: policy.check_url(u.serialize()) is HttpError.SUCCESS,
            timeout=timeout,
            max_body=policy.max_response_body,
            max_redirects=policy.max_redirects if policy.follow_redirects else None,
        )
    except DestinationDenied:
        return ("err", DENIED)
    except TransportError as exc:
        return ("err", error_for_transport(exc))
    return ("ok", (response.status, list(response.headers), response.body))
