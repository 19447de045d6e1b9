"""Write-side flow control shared by the connection protocols."""

from __future__ import annotations

import asyncio


class WriteFlow:
    """``pause_writing``/``resume_writing`` for an asyncio Protocol; ``release_drain`` wakes a waiting
    sender (also when the connection is lost). Subclasses declare ``write_paused`` and ``_drain_waiter``
    in their own ``__slots__``."""

    __slots__ = ()
    write_paused: bool
    _drain_waiter: asyncio.Future[None] | None

    def pause_writing(self) -> None:
        self.write_paused = True  # type: ignore[misc]  # the slot is the subclass's

    def resume_writing(self) -> None:
        self.write_paused = False  # type: ignore[misc]  # the slot is the subclass's
        self.release_drain()

    def release_drain(self) -> None:
        waiter = self._drain_waiter
        if waiter is not None:
            self._drain_waiter = None  # type: ignore[misc]  # the slot is the subclass's
            if not waiter.done():
                waiter.set_result(None)
