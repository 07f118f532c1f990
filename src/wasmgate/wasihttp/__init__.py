"""wasmgate's WASI preview2 host, in Python: serve components that export
``wasi:http/incoming-handler@0.2.x``, and give embedded components and commands their WASI.

- ``translate``: requests and responses <-> the proxy world's values (pure, no I/O);
- ``resources``: the per-run resource table and the host resources (fields, bodies, streams);
- ``interfaces``: what each imported function does, by interface and name;
- ``codec`` / ``engine.lowlevel.raw_codec``: value converters compiled once per function type;
- ``host``: links a component's imports by name from its own type (``WasiHost``);
- ``session``: a run's state from the ``Capabilities`` it is granted (stdio, arguments, folders);
- ``handler``: one component run per request, answering a ``HandlerResult`` like a WAGI route.
"""

from typing import TYPE_CHECKING, Any

# Names resolve on first use (PEP 562): the embedding API and `wasmgate run` need the host, not
# the HTTP handler and the gateway modules it brings.
if TYPE_CHECKING:
    from .handler import ProxyHandler, request_from_cgi
    from .host import HANDLER_INTERFACE, handler_export
    from .translate import HttpRequest

_LAZY = {
    "HANDLER_INTERFACE": "host",
    "HttpRequest": "translate",
    "ProxyHandler": "handler",
    "handler_export": "host",
    "request_from_cgi": "handler",
}


def __getattr__(name: str) -> Any:
    import importlib

    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = ["HANDLER_INTERFACE", "HttpRequest", "ProxyHandler", "handler_export", "request_from_cgi"]
