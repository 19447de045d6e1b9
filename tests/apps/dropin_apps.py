"""Apps for the gunicorn and uvicorn command lines of tests/e2e/test_dropin.py: each answers every request
with what the server gave it (interface, pid, environment, working directory, threads, scheme, root path),
as JSON, so the test can see that a mapped setting took effect."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable
from typing import Any


def _common() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "env": os.environ.get("DROPIN"),
        "cwd": os.getcwd(),
        "lib": "dropin_lib" in sys.modules or _try_lib(),
    }


def _try_lib() -> bool:
    # --pythonpath puts a directory holding dropin_lib.py on sys.path.
    try:
        import dropin_lib  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return False
    return True


def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = json.dumps(
        {
            **_common(),
            "interface": "wsgi",
            "multithread": environ["wsgi.multithread"],
            "multiprocess": environ["wsgi.multiprocess"],
            "scheme": environ["wsgi.url_scheme"],
            "root_path": environ.get("SCRIPT_NAME", ""),
        }
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def make_wsgi() -> Callable[..., Iterable[bytes]]:
    return wsgi


async def asgi(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    body = json.dumps(
        {
            **_common(),
            "interface": "asgi",
            "asgi": scope["asgi"].get("version"),
            "scheme": scope["scheme"],
            "root_path": scope.get("root_path", ""),
            "http_version": scope["http_version"],
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def make_asgi() -> Callable[..., Any]:
    return asgi


class Asgi2:
    """An ASGI 2 application (uvicorn's --interface asgi2): the class takes the scope, its instance serves."""

    def __init__(self, scope: dict[str, Any]) -> None:
        self.scope = scope

    async def __call__(self, receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        await asgi(self.scope, receive, send)


async def blocking(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
    """An ASGI app whose /block stops its event loop (a synchronous sleep): the master's timeout aborts it."""
    if scope["type"] == "http" and scope["path"] == "/block":
        import time

        time.sleep(120)
    await asgi(scope, receive, send)
