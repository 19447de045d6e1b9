"""Apps that answer with files through the ASGI pathsend and zerocopysend extensions (and Starlette's
FileResponse, which uses pathsend when the server offers it). ``FILE_DIR`` names the directory."""

from __future__ import annotations

import os
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

Scope = dict[str, Any]


def _dir() -> str:
    return os.environ["FILE_DIR"]


async def raw(scope: Scope, receive: Any, send: Any) -> None:
    """/pathsend/NAME, /zerocopy/NAME (the whole file), /zerocopy-part/NAME?OFFSET,COUNT (a slice, then a
    trailer of body bytes after it), /extensions (the scope's extension names). Run with --lifespan off."""
    path: str = scope["path"]
    if path == "/extensions":
        body = " ".join(sorted(scope["extensions"])).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"%d" % len(body))],
            }
        )
        await send({"type": "http.response.body", "body": body})
        return
    kind, _, name = path[1:].partition("/")
    file_path = os.path.join(_dir(), name)
    size = os.path.getsize(file_path)
    if kind == "pathsend":
        headers = [(b"content-length", b"%d" % size), (b"content-type", b"application/octet-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.pathsend", "path": file_path})
    elif kind == "zerocopy":
        with open(file_path, "rb") as file:
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % size)]}
            )
            await send({"type": "http.response.zerocopysend", "file": file})
    elif kind == "zerocopy-part":
        offset, count = (int(v) for v in scope["query_string"].split(b","))
        with open(file_path, "rb") as file:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-length", b"%d" % (count + 4))],
                }
            )
            await send(
                {
                    "type": "http.response.zerocopysend",
                    "file": file,
                    "offset": offset,
                    "count": count,
                    "more_body": True,
                }
            )
            await send({"type": "http.response.body", "body": b"|end"})
    elif kind == "pathsend-missing":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1")]})
        await send({"type": "http.response.pathsend", "path": file_path + ".missing"})


async def starlette_file(request: Request) -> Response:
    return FileResponse(os.path.join(_dir(), request.path_params["name"]))


starlette_app = Starlette(routes=[Route("/{name:path}", starlette_file)])
