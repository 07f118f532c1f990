"""The wasi:http proxy world's host, in Python: serve components that export
``wasi:http/incoming-handler@0.2.x``.

- ``translate``: requests and responses <-> the proxy world's values (pure, no I/O);
- ``resources``: the per-request resource table and the host resources (fields, bodies, streams);
- ``interfaces``: what each imported function does, by interface and name;
- ``codec`` / ``engine.lowlevel.raw_codec``: value converters compiled once per function type;
- ``host``: links a component's imports by name from its own type;
- ``handler``: one component run per request, answering a ``HandlerResult`` like a WAGI route.
"""

from .handler import ProxyHandler, request_from_cgi
from .host import HANDLER_INTERFACE, handler_export
from .translate import HttpRequest

__all__ = ["HANDLER_INTERFACE", "HttpRequest", "ProxyHandler", "handler_export", "request_from_cgi"]
