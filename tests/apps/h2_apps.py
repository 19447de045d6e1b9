"""The basic test app behind a recorder, for the HTTP/2 end-to-end tests (tests/e2e/test_http2*.py).

Every HTTP request the server hands to the application is recorded as one line, ``"METHOD raw_path?query
value value..."`` (the values of all its header fields), except the tests' own probes (``/__healthy`` and
``/__seen``). ``/__seen?since=N`` returns the records from index N on, with the total: a test that puts a
unique marker in a hostile request's path or a header can prove the request never reached the app.

Routes added to tests.apps.basic's:

- ``/upload``: reads the whole body; answers its size, the number of ``http.request`` messages and its
  SHA-256.
- ``/hold?id=X``: never answers; records ``hold started X`` and, when ``http.disconnect`` comes,
  ``disconnect X`` in ``basic.EVENTS`` (served by ``/events``).
- ``/conn-headers``: a response carrying HTTP/1.1 connection-specific fields (``connection``,
  ``transfer-encoding``, ``keep-alive``, ``proxy-connection``, ``upgrade``), which HTTP/2 forbids.
"""

from __future__ import annotations

import hashlib
from typing import Any

from tests.apps import basic
from tests.apps.hostile import answer_probe

SEEN: list[str] = []


def _record(scope: dict[str, Any]) -> None:
    raw = scope["raw_path"].decode("latin-1")
    query = scope["query_string"].decode("latin-1")
    values = " ".join(value.decode("latin-1") for _, value in scope["headers"])
    SEEN.append(f"{scope['method']} {raw}?{query} {values}")


async def upload(scope: dict[str, Any], receive: basic.Receive, send: basic.Send) -> None:
    digest = hashlib.sha256()
    size = parts = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body = message.get("body", b"")
        digest.update(body)
        size += len(body)
        parts += 1
        if not message.get("more_body", False):
            break
    await basic.respond_json(send, {"bytes": size, "parts": parts, "sha256": digest.hexdigest()})


async def hold(scope: dict[str, Any], receive: basic.Receive, send: basic.Send) -> None:
    name = basic.query(scope).get("id", "-")
    basic.EVENTS.append(f"hold started {name}")
    while (await receive())["type"] != "http.disconnect":
        pass
    basic.EVENTS.append(f"disconnect {name}")


async def conn_headers(scope: dict[str, Any], receive: basic.Receive, send: basic.Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/plain"),
                (b"connection", b"keep-alive"),
                (b"keep-alive", b"timeout=5"),
                (b"transfer-encoding", b"chunked"),
                (b"proxy-connection", b"keep-alive"),
                (b"upgrade", b"h2c"),
                (b"x-kept", b"yes"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b"no connection fields"})


ROUTES = {"/upload": upload, "/hold": hold, "/conn-headers": conn_headers}


async def app(scope: dict[str, Any], receive: basic.Receive, send: basic.Send) -> None:
    if scope["type"] != "http":
        await basic.app(scope, receive, send)
        return
    path = scope["path"]
    if await answer_probe(path, scope, send, SEEN):
        return
    _record(scope)
    handler = ROUTES.get(path)
    if handler is not None:
        await handler(scope, receive, send)
        return
    await basic.app(scope, receive, send)
