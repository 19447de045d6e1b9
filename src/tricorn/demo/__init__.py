"""The built-in demo served by ``tricorn`` with no APP: a page about the request, and ``/echo``."""

from __future__ import annotations

import base64
import html
import json
import os
import sys
from typing import Any

from tricorn import __version__

Scope = dict[str, Any]

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tricorn {version}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; color: #222 }}
h1 {{ font-size: 1.6rem }} table {{ border-collapse: collapse; width: 100% }}
td, th {{ text-align: left; padding: .25rem .5rem; border-bottom: 1px solid #ddd; vertical-align: top }}
th {{ width: 11rem; color: #555; font-weight: 600 }} code {{ background: #f3f3f3; padding: 0 .2rem }}
</style></head>
<body>
<h1>tricorn {version} is serving</h1>
<p>This is tricorn's built-in demo. Serve your own application with <code>tricorn module:app</code>.</p>
<table>
<tr><th>interface</th><td id="interface">{interface}</td></tr>
<tr><th>protocol</th><td id="protocol">{protocol}</td></tr>
<tr><th>worker pid</th><td id="pid">{pid}</td></tr>
<tr><th>python</th><td>{python}</td></tr>
</table>
<h2>Your request</h2>
<table>
<tr><th>method</th><td>{method}</td></tr>
<tr><th>path</th><td>{path}</td></tr>
<tr><th>query</th><td>{query}</td></tr>
<tr><th>client</th><td>{client}</td></tr>
{headers}
</table>
<p>Try <a href="/echo?hello=world"><code>/echo</code></a>: it returns the request as JSON.</p>
</body></html>
"""


def describe_request(scope: Scope, body: bytes) -> dict[str, Any]:
    try:
        text: str | None = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    client = scope.get("client")
    return {
        "server": f"tricorn/{__version__}",
        "interface": "asgi",
        "protocol": f"HTTP/{scope['http_version']}",
        "pid": os.getpid(),
        "method": scope["method"],
        "path": scope["path"],
        "raw_path": scope["raw_path"].decode("latin-1"),
        "query_string": scope["query_string"].decode("latin-1"),
        "root_path": scope.get("root_path", ""),
        "scheme": scope["scheme"],
        "client": list(client) if client else None,
        "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
        "body": text,
        "body_base64": None if text is not None else base64.b64encode(body).decode("ascii"),
    }


async def _read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def app(scope: Scope, receive: Any, send: Any) -> None:
    """ASGI 3 demo app."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    body = await _read_body(receive)
    info = describe_request(scope, body)
    path = scope["path"]
    if path == "/echo":
        payload = json.dumps(info, indent=2).encode()
        content_type = b"application/json"
        status = 200
    elif path == "/":
        e = html.escape
        rows = "\n".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in info["headers"])
        payload = _PAGE.format(
            version=__version__,
            interface="ASGI 3.0",
            protocol=e(info["protocol"]),
            pid=info["pid"],
            python=e(sys.version.split()[0]),
            method=e(info["method"]),
            path=e(info["path"]),
            query=e(info["query_string"]) or "&ndash;",
            client=e(":".join(map(str, info["client"] or ["-"]))),
            headers=rows,
        ).encode()
        content_type = b"text/html; charset=utf-8"
        status = 200
    else:
        payload = b"not found\n"
        content_type = b"text/plain; charset=utf-8"
        status = 404
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), (b"content-length", str(len(payload)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": payload if scope["method"] != "HEAD" else b""})
