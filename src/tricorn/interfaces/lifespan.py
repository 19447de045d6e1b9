"""ASGI lifespan protocol: startup before serving, shutdown after, with a shared ``state`` dict."""

from __future__ import annotations

import asyncio
import logging
from enum import Enum
from typing import Any, Literal

from tricorn.errors import LifespanFailure
from tricorn.interfaces.asgi import ASGIApp, Message

error_log = logging.getLogger("tricorn.error")

# How long the lifespan task has to return once it answered shutdown, or once it was cancelled after a
# phase timed out (it is then abandoned: the process is stopping).
TASK_GRACE = 5.0


class LifespanPhase(Enum):
    IDLE = 0
    STARTING = 1
    STARTED = 2
    SHUTTING_DOWN = 3
    DONE = 4
    UNSUPPORTED = 5  # the app raised or returned before answering startup (mode "auto" tolerates it)
    FAILED = 6


# The phases a timed-out startup or shutdown leaves behind when it cancels the app (see _abandon).
_ABANDONED = (LifespanPhase.FAILED, LifespanPhase.DONE)
_SERVING = (LifespanPhase.STARTED, LifespanPhase.SHUTTING_DOWN)


class Lifespan:
    """Runs the app's lifespan scope in its own task.

    ``startup()`` returns once the app answered ``lifespan.startup.complete`` (or, in mode ``auto``, once
    it turned out not to speak lifespan); it raises LifespanFailure on ``startup.failed``, when the app
    raised SystemExit or KeyboardInterrupt, when it did not answer within ``timeout`` seconds or, in mode
    ``on``, when the app does not support lifespan. ``shutdown()`` never raises: failures are logged, and
    after ``timeout`` seconds without an answer it cancels the app's lifespan task and returns.
    """

    def __init__(
        self, app: ASGIApp, mode: Literal["auto", "on", "off"], timeout: float, name: str = "application"
    ) -> None:
        self.app = app
        self.name = name  # in log lines: "application", or "mount /ws (chat:app)"
        self.prefix = "" if name == "application" else f"{name}: "
        self.mode = mode
        self.timeout = timeout
        self.phase = LifespanPhase.IDLE
        self.state: dict[str, Any] = {}
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._answered: asyncio.Event = asyncio.Event()
        self._failure = ""
        self._task: asyncio.Task[None] | None = None

    @property
    def shared_state(self) -> dict[str, Any] | None:
        """The state dict copied into each request scope, or None when lifespan did not run."""
        return self.state if self.phase is LifespanPhase.STARTED else None

    async def startup(self) -> None:
        if self.mode == "off":
            return
        self.phase = LifespanPhase.STARTING
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.4"}, "state": self.state}
        self._task = asyncio.get_running_loop().create_task(self._main(scope))
        await self._inbox.put({"type": "lifespan.startup"})
        if not await self._wait_answer():
            self.phase = LifespanPhase.FAILED
            await self._abandon()
            raise LifespanFailure(f"did not complete within {self.timeout:g}s (--timeout-lifespan)")
        if self.phase is LifespanPhase.FAILED:
            raise LifespanFailure(self._failure or "lifespan startup failed")
        if self.phase is LifespanPhase.UNSUPPORTED and self.mode == "on":
            raise LifespanFailure(self._failure or "the application does not support the lifespan protocol")

    async def shutdown(self) -> None:
        if self.phase is not LifespanPhase.STARTED:
            return
        if self._task is not None and self._task.done():
            # The app's lifespan task has ended already (returned, raised, or cancelled with every task
            # of an embedding program's loop, as asyncio.run does on its way out): no one will answer.
            self.phase = LifespanPhase.DONE
            return
        self.phase = LifespanPhase.SHUTTING_DOWN
        self._answered.clear()
        await self._inbox.put({"type": "lifespan.shutdown"})
        if not await self._wait_answer():
            self.phase = LifespanPhase.DONE
            error_log.error(
                "%s shutdown failed: did not complete within %ss (--timeout-lifespan)",
                self.name,
                f"{self.timeout:g}",
            )
            await self._abandon()
            return
        if self._failure:
            error_log.error("%s shutdown failed: %s", self.name, self._failure)
        if self._task is not None:
            await asyncio.wait([self._task], timeout=TASK_GRACE)

    async def _wait_answer(self) -> bool:
        """Wait for the app's answer to the current phase; False if ``timeout`` passed first."""
        try:
            await asyncio.wait_for(self._answered.wait(), self.timeout)
        except TimeoutError:
            return False
        return True

    async def _abandon(self) -> None:
        """The app did not answer in time: cancel its lifespan task and give it a moment to unwind."""
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=TASK_GRACE)

    async def _main(self, scope: dict[str, Any]) -> None:
        try:
            await self.app(scope, self._receive, self._send)
        except BaseException as exc:
            phase = self.phase
            if isinstance(exc, asyncio.CancelledError) and phase in _ABANDONED:
                pass  # cancelled by _abandon once the phase timed out, which is logged already
            elif isinstance(exc, asyncio.CancelledError) and phase in _SERVING:
                # Cancelled from outside: the loop of a program that embeds the server is ending
                # (asyncio.run cancels every task left), not a failure of the application.
                error_log.info("lifespan task cancelled: the application's lifespan shutdown did not run")
            elif phase is LifespanPhase.STARTING and isinstance(exc, (SystemExit, KeyboardInterrupt)):
                # The app asked the process to stop: a startup failure (exit code 3) in every mode, not a
                # sign that it does not speak lifespan. Elsewhere it is logged like any exception and the
                # worker goes on (docs/deployment.md, "When an app raises SystemExit").
                self.phase = LifespanPhase.FAILED
                self._failure = f"{type(exc).__name__}: {exc}"
                error_log.error("%slifespan startup raised an exception", self.prefix, exc_info=exc)
            elif phase is LifespanPhase.STARTING:
                self.phase = LifespanPhase.UNSUPPORTED
                self._failure = f"{type(exc).__name__}: {exc}"
                if self.mode == "on":
                    error_log.error("%slifespan startup raised an exception", self.prefix, exc_info=exc)
                else:
                    error_log.info("asgi lifespan not supported by the %s (%s)", self.name, self._failure)
            elif phase is LifespanPhase.SHUTTING_DOWN:
                self._failure = f"{type(exc).__name__}: {exc}"
                error_log.error("%slifespan shutdown raised an exception", self.prefix, exc_info=exc)
            else:
                error_log.error("%slifespan task raised an exception", self.prefix, exc_info=exc)
        else:
            if self.phase is LifespanPhase.STARTING:
                self.phase = LifespanPhase.UNSUPPORTED
                self._failure = "the application returned from the lifespan scope before startup completed"
        finally:
            self._answered.set()

    async def _receive(self) -> Message:
        return await self._inbox.get()

    async def _send(self, message: Message) -> None:
        kind = message.get("type")
        phase = self.phase
        if phase is LifespanPhase.STARTING and kind == "lifespan.startup.complete":
            self.phase = LifespanPhase.STARTED
        elif phase is LifespanPhase.STARTING and kind == "lifespan.startup.failed":
            self.phase = LifespanPhase.FAILED
            self._failure = str(message.get("message", "")) or "lifespan startup failed"
        elif phase is LifespanPhase.SHUTTING_DOWN and kind == "lifespan.shutdown.complete":
            self.phase = LifespanPhase.DONE
        elif phase is LifespanPhase.SHUTTING_DOWN and kind == "lifespan.shutdown.failed":
            self.phase = LifespanPhase.DONE
            self._failure = str(message.get("message", "")) or "lifespan shutdown failed"
        else:
            raise RuntimeError(f"unexpected lifespan message {kind!r} in phase {phase.name.lower()}")
        self._answered.set()


class Lifespans:
    """The lifespans of every ASGI app a worker serves (the APP and its ``--mount`` apps), one each with
    its own state: started in mount order (the APP first), shut down in the reverse order, like nested
    context managers. A failed startup shuts down the ones already started, and names the app."""

    def __init__(self, lifespans: list[Lifespan]) -> None:
        self.lifespans = lifespans
        self._started: list[Lifespan] = []

    async def startup(self) -> None:
        for lifespan in self.lifespans:
            try:
                await lifespan.startup()
            except LifespanFailure as exc:
                await self.shutdown()
                if lifespan.name == "application":
                    raise
                raise LifespanFailure(f"{lifespan.name}: {exc}") from None
            self._started.append(lifespan)

    async def shutdown(self) -> None:
        started, self._started = self._started, []
        for lifespan in reversed(started):
            await lifespan.shutdown()
