"""tricorn: one Python application server for ASGI, WSGI and CGI apps."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from tricorn.config import Config
    from tricorn.run import run

__all__ = ["Config", "__version__", "run"]


def __getattr__(name: str) -> Any:
    # Lazy, so that importing a submodule (a worker, a protocol core) does not pull in the CLI's modules.
    if name == "Config":
        from tricorn.config import Config

        return Config
    if name == "run":
        from tricorn.run import run

        return run
    raise AttributeError(f"module 'tricorn' has no attribute {name!r}")
