"""The WAGI gateway: an ASGI application and the server that runs it."""

from .app import Gateway, create_app

__all__ = ["Gateway", "create_app"]
