"""A CGI mount's walk to its script (tricorn.interfaces.cgi.CGIMount): it runs on a file thread
(tricorn.interfaces.files.on_file_thread), so a disk that is slow to answer holds its own request and not
the loop that serves the other connections."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from tricorn.interfaces.cgi import CGIMount, CGIScripts
from tricorn.interfaces.files import _settle, on_file_thread


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


def test_on_file_thread_gives_the_result_or_raises_the_exception() -> None:
    def where(n: int) -> tuple[int, int]:
        return n * 2, threading.get_ident()

    def fails() -> None:
        raise PermissionError(13, "denied")

    async def main() -> None:
        doubled, thread = await on_file_thread(where, 21)
        assert doubled == 42 and thread != threading.get_ident()
        with pytest.raises(PermissionError):
            await on_file_thread(fails)

    asyncio.run(main())


def test_the_outcome_of_a_cancelled_wait_is_dropped() -> None:
    """A thread that finishes after its waiter was cancelled settles nothing (no InvalidStateError in a
    callback of the loop)."""

    async def main() -> None:
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        done.cancel()
        _settle(done, 1, None)
        _settle(done, None, OSError(5, "io"))
        assert done.cancelled()

    asyncio.run(main())
