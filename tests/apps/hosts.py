"""The application of the several-hosts tests (tests/e2e/test_hosts.py): it answers with its host's name.

``?delay=SECONDS`` answers after that long (a request in progress when its host is stopped or killed);
``?id=ID`` first writes a file named ID, holding the host's name, in ``TEST_HOST_RECORD`` (a directory),
so a test knows which host holds which request. A request body is read whole (POST).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

HOST = os.environ.get("TEST_HOST_NAME", "host")
RECORD = os.environ.get("TEST_HOST_RECORD")


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].removeprefix("lifespan.")
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    if scope["type"] != "http":
        return
    query = {k: v[-1] for k, v in parse_qs(scope["query_string"].decode()).items()}
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    if "id" in query and RECORD:
        (Path(RECORD) / query["id"]).write_text(HOST)
    if "delay" in query:
        await asyncio.sleep(float(query["delay"]))
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": HOST.encode()})
