"""The image's ``HEALTHCHECK``: GET ``/healthz`` where ``wasmgate serve`` listens.

The address is the container's own ``WASMGATE_LISTEN`` (an all-interfaces host becomes the
loopback address); ``https`` when ``WASMGATE_TLS_CERT`` is set (the certificate is not checked:
this is the container asking itself). Exit status 0 when the answer is 200, else 1. The image
has no curl: this runs on its Python.
"""

from __future__ import annotations

import os
import ssl
import sys
import urllib.request

TIMEOUT = 2.0  # seconds; the Dockerfile's HEALTHCHECK --timeout is longer


def url() -> str:
    listen = os.environ.get("WASMGATE_LISTEN", "127.0.0.1:3000")
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0"):  # noqa: S104 (an address to reach, not to bind)
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    scheme = "https" if os.environ.get("WASMGATE_TLS_CERT") else "http"
    return f"{scheme}://{host}:{port}/healthz"


def main() -> int:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url(), timeout=TIMEOUT, context=context) as r:  # noqa: S310
            ok = r.status == 200
    except OSError as e:
        print(f"healthcheck: {url()}: {e}", file=sys.stderr)
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
