"""The ASGI half of a mixed site (FastAPI: a page and a WebSocket echo) and a Flask app, for --mount tests
beside a Django project."""

from __future__ import annotations

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import HTMLResponse
from flask import Flask, url_for

realtime = FastAPI()

PAGE = """<!doctype html>
<html><body>
<p id="status">connecting</p><ul id="log"></ul>
<script>
const ws = new WebSocket(location.origin.replace("http", "ws") + "%(echo)s");
ws.onopen = () => { document.getElementById("status").textContent = "connected"; ws.send("hi from the page"); };
ws.onmessage = (event) => {
  const item = document.createElement("li");
  item.className = "echo";
  item.textContent = event.data;
  document.getElementById("log").appendChild(item);
};
</script>
</body></html>
"""


@realtime.get("/", response_class=HTMLResponse)
async def page(request: Request) -> str:
    # url_for builds on root_path: under a mount, the page's WebSocket URL carries the prefix.
    return PAGE % {"echo": request.url_for("echo").path}


@realtime.get("/where")
async def where(request: Request) -> dict[str, str]:
    return {"root_path": request.scope["root_path"], "echo": str(request.url_for("echo"))}


@realtime.websocket("/echo", name="echo")
async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        text = await websocket.receive_text()
        await websocket.send_text(f"echo: {text} (root_path {websocket.scope['root_path']})")


flask_app = Flask(__name__)


@flask_app.route("/hello/<name>")
def hello(name: str) -> dict[str, str]:
    return {
        "hello": name,
        "self": url_for("hello", name=name),
        "external": url_for("hello", name=name, _external=True),
    }
