"""The built-in demo served by ``tricorn`` with no APP: a page about the request, and ``/echo``.

``app`` is the ASGI demo (the default); ``wsgi_app`` is its WSGI twin (``tricorn tricorn.demo:wsgi_app``).
"""

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
td {{ overflow-wrap: anywhere; word-break: break-word }} table {{ table-layout: fixed }}
th {{ width: 11rem; color: #555; font-weight: 600 }} code {{ background: #f3f3f3; padding: 0 .2rem }}
</style></head>
<body>
<h1>tricorn {version} is serving</h1>
<p>This is tricorn's built-in demo. Serve your own application with <code>tricorn module:app</code>
(ASGI or WSGI: tricorn tells them apart); the same demo as a WSGI app is <code>tricorn.demo:wsgi_app</code>.</p>
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
<p>Try <a href="/echo?hello=world"><code>/echo</code></a>: it returns the request as JSON, and
<a href="/chat"><code>/chat</code></a>: a chat page over the WebSocket echo at <code>/ws</code>.</p>
</body></html>
"""


# Credentials a visitor's browser sends on its own: the demo says they came, never what they are (a page
# or a screenshot of it is easily shared).
_MASKED = frozenset((b"cookie", b"authorization", b"proxy-authorization"))


def _shown(name: bytes, value: bytes) -> str:
    if name.lower() in _MASKED:
        return f"(hidden: {len(value)} bytes)"
    return value.decode("latin-1")


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
        "headers": [[k.decode("latin-1"), _shown(k, v)] for k, v in scope["headers"]],
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
    if scope["type"] == "websocket":
        await _websocket_echo(scope, receive, send)
        return
    if scope["type"] != "http":
        return
    body = await _read_body(receive)
    info = describe_request(scope, body)
    if scope["path"] == "/chat":
        status_line, content_type, payload = "200 OK", "text/html; charset=utf-8", CHAT_PAGE.encode()
    else:
        status_line, content_type, payload = _render(info, scope["path"], "ASGI 3.0")
    status = int(status_line[:3])
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload if scope["method"] != "HEAD" else b""})


# -- the WSGI twin ----------------------------------------------------------------------------------------


def _wsgi_scope(environ: dict[str, Any]) -> Scope:
    """The parts of an ASGI scope the page shows, from a WSGI environ."""
    headers = [
        (key[5:].replace("_", "-").lower().encode("latin-1"), value.encode("latin-1"))
        for key, value in environ.items()
        if key.startswith("HTTP_")
    ]
    for key, name in (("CONTENT_TYPE", b"content-type"), ("CONTENT_LENGTH", b"content-length")):
        if environ.get(key):
            headers.append((name, environ[key].encode("latin-1")))
    path = environ.get("PATH_INFO", "")
    client = environ.get("REMOTE_ADDR")
    return {
        "http_version": environ.get("SERVER_PROTOCOL", "HTTP/1.1").removeprefix("HTTP/"),
        "method": environ["REQUEST_METHOD"],
        # PATH_INFO is bytes-as-latin-1 (PEP 3333): the page shows it as the UTF-8 it most likely is.
        "path": environ.get("SCRIPT_NAME", "") + path.encode("latin-1").decode("utf-8", "replace"),
        "raw_path": path.encode("latin-1"),
        "query_string": environ.get("QUERY_STRING", "").encode("latin-1"),
        "root_path": environ.get("SCRIPT_NAME", ""),
        "scheme": environ.get("wsgi.url_scheme", "http"),
        "client": (client, int(environ.get("REMOTE_PORT") or 0)) if client else None,
        "headers": headers,
    }


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """The same demo as a WSGI (PEP 3333) app: ``tricorn tricorn.demo:wsgi_app``."""
    scope = _wsgi_scope(environ)
    body = environ["wsgi.input"].read()
    info = describe_request(scope, body)
    info["interface"] = "wsgi"
    status, content_type, payload = _render(info, environ.get("PATH_INFO", ""), "WSGI (PEP 3333)")
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(payload)))])
    return [payload] if environ["REQUEST_METHOD"] != "HEAD" else [b""]


def _render(info: dict[str, Any], path: str, interface: str) -> tuple[str, str, bytes]:
    if path == "/echo":
        return "200 OK", "application/json", json.dumps(info, indent=2).encode()
    if path == "/":
        e = html.escape
        rows = "\n".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in info["headers"])
        page = _PAGE.format(
            version=__version__,
            interface=interface,
            protocol=e(info["protocol"]),
            pid=info["pid"],
            python=e(sys.version.split()[0]),
            method=e(info["method"]),
            path=e(info["path"]),
            query=e(info["query_string"]) or "&ndash;",
            client=e(":".join(map(str, info["client"] or ["-"]))),
            headers=rows,
        )
        return "200 OK", "text/html; charset=utf-8", page.encode()
    return "404 Not Found", "text/plain; charset=utf-8", b"not found\n"


# -- WebSocket: the echo at /ws and the chat page at /chat -------------------------------------------------

CHAT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tricorn chat</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { font: 16px/1.5 system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; padding: 0 1rem; color: #222 }
#log { list-style: none; padding: .5rem; border: 1px solid #ddd; min-height: 12rem; margin: 1rem 0 }
#log li { padding: .15rem 0 } #log .me { color: #555 } #log .echo { color: #06c } #log .info { color: #888 }
form { display: flex; gap: .5rem } #message { flex: 1; font: inherit; padding: .3rem }
</style></head>
<body>
<h1>tricorn chat</h1>
<p>Messages go to <code>/ws</code> over a WebSocket and come back from the server.
Status: <strong id="status">connecting</strong></p>
<ul id="log"></ul>
<form id="form"><input id="message" autocomplete="off" placeholder="say something" autofocus>
<button id="send" type="submit">Send</button></form>
<script>
const log = document.getElementById("log");
const status = document.getElementById("status");
function add(text, kind) {
  const item = document.createElement("li");
  item.className = kind;
  item.textContent = text;
  log.appendChild(item);
}
const scheme = location.protocol === "https:" ? "wss://" : "ws://";
const socket = new WebSocket(scheme + location.host + "/ws");
socket.onopen = () => { status.textContent = "connected"; };
socket.onclose = (event) => { status.textContent = "closed (" + event.code + ")"; };
socket.onmessage = (event) => { add("echo: " + event.data, "echo"); };
document.getElementById("form").onsubmit = (event) => {
  event.preventDefault();
  const input = document.getElementById("message");
  if (input.value && socket.readyState === WebSocket.OPEN) {
    add("you: " + input.value, "me");
    socket.send(input.value);
    input.value = "";
  }
};
</script>
</body></html>
"""


async def _websocket_echo(scope: Scope, receive: Any, send: Any) -> None:
    """``/ws``: accept, then send every message back as it came (text as text, bytes as bytes)."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    if scope["path"] != "/ws":
        await send({"type": "websocket.close", "code": 1008})  # before accept: a 403
        return
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})
