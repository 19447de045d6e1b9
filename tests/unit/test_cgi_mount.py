"""A CGI mount's walk to its script (tricorn.interfaces.cgi.CGIMount): it runs on a file thread, so a disk
that is slow to answer holds its own request and not the loop that serves the other connections."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from tricorn.interfaces.cgi import CGIMount, CGIScripts


def test_the_path_is_resolved_off_the_loop(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    release = threading.Event()
    threads: list[int] = []

    class SlowDisk(CGIMount):
        def _resolve(self, raw_path: bytes, root_path: str) -> Any:
            threads.append(threading.get_ident())
            # Released by the loop: on the loop's own thread this would wait in vain.
            assert release.wait(30), "the loop stood still while the path was resolved"
            return super()._resolve(raw_path, root_path)

    mount = SlowDisk("/cgi-bin", str(tmp_path), CGIScripts(5.0, 4))
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {"type": "http.disconnect"}

    scope = {"type": "http", "raw_path": b"/cgi-bin/missing.sh", "client": ("127.0.0.1", 5000)}

    async def main() -> None:
        asyncio.get_running_loop().call_soon(release.set)
        await mount(scope, receive, send)

    with caplog.at_level(logging.INFO, logger="tricorn.error"):
        asyncio.run(main())
    assert threads and threads[0] != threading.get_ident()
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 404
    assert [r.getMessage() for r in caplog.records] == [
        "127.0.0.1:5000 404 cgi: /cgi-bin/missing.sh no such script"
    ]
