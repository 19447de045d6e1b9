"""tricorn: a Python application server for ASGI and WSGI apps (HTTP/1.1, WebSocket, HTTP/2, TLS, pre-fork
workers), started with gunicorn's or uvicorn's command lines as well as its own."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from tricorn.api import Server, run, serve
    from tricorn.config import Config

__all__ = ["Config", "Server", "__version__", "run", "serve"]


def __getattr__(name: str) -> Any:
    # Lazy, so that importing a submodule (a worker, a protocol core) does not pull in the CLI's modules.
    if name == "Config":
        from tricorn.config import Config

        return Config
    if name in ("Server", "run", "serve"):
        from tricorn import api

        return getattr(api, name)
    raise AttributeError(f"module 'tricorn' has no attribute {name!r}")
