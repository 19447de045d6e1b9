"""The basic test app behind a recorder, for tests/e2e/test_hostile.py.

Every HTTP request the server hands to the application is recorded as ``"METHOD raw_path?query"``, except
the test's own probes: ``/__healthy`` (the background keep-alive client) and ``/__seen``, which returns the
records from index ``?since=N`` on, with the total. So a test can prove a hostile request (or a request
hidden in another one's body) never reached the application. Also routes whose response headers an
HTTP/1.1 server must refuse to send (no response splitting); everything else is tests.apps.basic.
"""

from __future__ import annotations

from typing import Any

from tests.apps import basic

SEEN: list[str] = []

# Response headers that would split or corrupt the response if written as given.
BAD_HEADERS: dict[str, tuple[bytes, bytes]] = {
    "/bad-header-crlf": (b"x-bad", b"value\r\ninjected: yes"),
    "/bad-header-lf": (b"x-bad", b"value\ninjected: yes"),
    "/bad-header-cr": (b"x-bad", b"value\rinjected: yes"),
    "/bad-header-nul": (b"x-bad", b"value\x00injected: yes"),
    "/bad-header-name-crlf": (b"x-bad\r\ninjected", b"yes"),
    "/bad-header-name-colon": (b"injected: yes\r\nx-bad", b"value"),
}


async def answer_probe(path: str, scope: dict[str, Any], send: basic.Send, seen: list[str]) -> bool:
    """Answer the tests' own probes (``/__healthy``, ``/__seen?since=N`` from the records ``seen``), which
    are not recorded; False for any other request."""
    if path == "/__healthy":
        await basic.respond(send, b"healthy")
        return True
    if path == "/__seen":
        since = int(basic.query(scope).get("since", "0"))
        await basic.respond_json(send, {"total": len(seen), "seen": seen[since:]})
        return True
    return False


async def app(scope: dict[str, Any], receive: basic.Receive, send: basic.Send) -> None:
    if scope["type"] != "http":
        await basic.app(scope, receive, send)
        return
    path = scope["path"]
    if await answer_probe(path, scope, send, SEEN):
        return
    raw = scope["raw_path"].decode("latin-1")
    query = scope["query_string"].decode("latin-1")
    SEEN.append(f"{scope['method']} {raw}?{query}" if query else f"{scope['method']} {raw}")
    bad = BAD_HEADERS.get(path)
    if bad is not None:
        await basic.respond(send, b"never sent", headers=[bad])
        return
    await basic.app(scope, receive, send)
