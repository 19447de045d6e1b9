"""Choosing the event loop and the HTTP parser backend."""

from __future__ import annotations

import asyncio

from tricorn.errors import ConfigError
from tricorn.proto.h1 import available_backends


def new_event_loop(name: str) -> asyncio.AbstractEventLoop:
    if name in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if name == "uvloop":
                raise ConfigError(
                    "loop", "uvloop is not installed (pip install uvloop), use auto or asyncio"
                ) from None
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def http_backend(name: str) -> str:
    backends = available_backends()
    if name == "auto":
        return backends[0]
    if name not in backends:
        raise ConfigError("http", f"{name} is not installed (pip install {name}), use auto or h11")
    return name
