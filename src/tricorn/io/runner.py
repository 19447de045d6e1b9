"""Running request coroutines eagerly, with a real task identity.

Most requests finish without ever waiting (a hello-world app awaits only ``send``, which does not suspend
while the socket accepts data). Creating an ``asyncio.Task`` for each of them, and waiting for the loop to
schedule it, is a large part of a request's cost (bench "hello"). So each connection owns one *host task*:

- A request's coroutine is first stepped directly, in a fresh copy of the context, while the host task
  is entered as the loop's current task. Steps are batched: every request that became ready in one loop
  turn is stepped by one callback after the reads (see :class:`_Batch`). Code that asks for
  ``asyncio.current_task()`` (anyio cancel scopes, ``asyncio.timeout``) sees a real, stable task.
- If the coroutine finishes in that step, nothing else happens: no task was created or scheduled.
- If it suspends, it is handed to the host task, which goes on driving it (in the same context, so
  context variables set by the app stay with the request) until it finishes. ``current_task()`` is the
  same host task before and after the suspension, so cancel scopes entered in the first step exit in the
  right task, and cancelling the host delivers ``CancelledError`` into the request.
- While the host is busy with one coroutine (an app still running after its response, say), a later
  request on the same connection gets an ordinary task of its own, held in ``tasks`` until it ends.

Requests of one connection are started one after another, and never from inside another request's
step (starts go through the batch callback), so the host is never entered twice.
"""

from __future__ import annotations

import asyncio
import contextvars
import types
import weakref
from collections.abc import Coroutine, Generator
from typing import Any

try:  # private, but stable since 3.7; without them every request gets its own task
    from asyncio.tasks import _enter_task, _leave_task
except ImportError:  # pragma: no cover
    _enter_task = _leave_task = None  # type: ignore[assignment]

Coro = Coroutine[Any, Any, None]


@types.coroutine
def _scheduled() -> Generator[None, None, None]:
    """Where a new host's coroutine waits for its task's first step (see AppRunner._new_host)."""
    yield


@types.coroutine
def _resume(coro: Coro, waiting: Any, ctx: contextvars.Context, cancel: bool) -> Generator[Any, Any, None]:
    """Drive ``coro`` from the point where it yielded ``waiting``, each step inside ``ctx``."""
    send, throw = coro.send, coro.throw
    if cancel:
        # The request cancelled its task (the host) before it first suspended: deliver it now.
        try:
            waiting = ctx.run(throw, asyncio.CancelledError())
        except StopIteration:
            return
    while True:
        try:
            value = yield waiting
        except BaseException as exc:  # cancellation (or anything thrown into the task) goes to the app
            try:
                waiting = ctx.run(throw, exc)
            except StopIteration:
                return
        else:
            try:
                waiting = ctx.run(send, value)
            except StopIteration:
                return


class _Batch:
    """The coroutines to start in this loop turn, stepped together by one callback.

    Stepping an app inside ``data_received`` wrote each response in the middle of the loop's reads; with
    64 connections, reading all that is ready and then running all the apps in one callback served twice
    the requests for the same CPU (bench "hello", user CPU per request measured with /proc/PID/stat),
    and one callback per turn is cheaper than a task or a handle per request.
    """

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[tuple[AppRunner, Coro]] = []

    def run(self) -> None:
        items, self.items = self.items, []
        for runner, coro in items:
            runner.step(coro)


# One batch per loop, found once per connection. Weak keys, and no reference from a batch back to its
# loop, so a closed loop (one per test, say) is not kept alive by the batch it used.
_BATCHES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Batch] = weakref.WeakKeyDictionary()


class AppRunner:
    """Runs one connection's request coroutines (see the module docstring)."""

    __slots__ = ("_batch", "_item", "_wake", "busy", "closed", "host", "loop", "tasks")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.host: asyncio.Task[None] | None = None
        self.busy = False
        self.closed = False
        # The tasks of requests that got one of their own; the loop holds tasks only weakly, and one
        # waiting on a future nobody else holds would be collected mid-request (uvicorn keeps a set too).
        self.tasks: set[asyncio.Task[None]] | None = None
        self._batch: _Batch | None = None
        self._item: tuple[Coro, Any, contextvars.Context, bool] | None = None
        self._wake: asyncio.Future[None] | None = None

    def run(self, coro: Coro) -> None:
        """Start ``coro`` soon: in this loop turn's batch, after the current callbacks (see _Batch)."""
        batch = self._batch
        if batch is None:
            loop = self.loop
            batch = _BATCHES.get(loop)
            if batch is None:
                batch = _BATCHES[loop] = _Batch()
            self._batch = batch
        items = batch.items
        if not items:
            self.loop.call_soon(batch.run)
        items.append((self, coro))

    def step(self, coro: Coro) -> asyncio.Task[None] | None:
        """Start ``coro`` now; return the task it runs in if it got one of its own, else None."""
        loop = self.loop
        if self.busy or _enter_task is None:
            return self._own_task(coro)
        host = self.host
        if host is None:
            host = self.host = self._new_host()
        ctx = contextvars.copy_context()
        try:
            _enter_task(loop, host)
        except RuntimeError:  # called from inside a task (not from a transport callback)
            return self._own_task(coro)
        try:
            waiting = ctx.run(coro.send, None)
        except StopIteration:
            return None
        finally:
            _leave_task(loop, host)
        # It suspended: the host task takes it from here.
        self.busy = True
        cancel = host.cancelling() > 0
        if cancel:
            host.uncancel()
        self._item = (coro, waiting, ctx, cancel)
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)
        return None

    def _new_host(self) -> asyncio.Task[None]:
        # A request may cancel the host (its current task) before the host first ran. Before 3.13 that
        # cancellation stays pending even once the request's step has uncancel()ed it, and a task throws it
        # into its coroutine at the first step: an unstarted coroutine cannot catch it, and the host would
        # end without resuming the request. So the coroutine is run to its first line (_scheduled) before
        # it becomes a task, where _main catches it. One generator step per connection, none per request.
        main = self._main()
        main.send(None)
        return self.loop.create_task(main)

    def _own_task(self, coro: Coro) -> asyncio.Task[None]:
        task = self.loop.create_task(coro)
        tasks = self.tasks
        if tasks is None:
            tasks = self.tasks = set()
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return task

    async def _main(self) -> None:
        loop = self.loop
        wait: Any = _scheduled()  # the first wait, entered before this is a task (see _new_host)
        while True:
            if wait is not None:
                try:
                    await wait
                except asyncio.CancelledError:
                    if self._item is None:
                        # Cancelled while idle: the connection closed, the loop is shutting down, or a
                        # request that finished in its first step cancelled its task. In every case this
                        # host is done; the next request (if any) gets a new one.
                        if self.host is asyncio.current_task():
                            self.host = None
                        return
                    # The request handed over in this loop turn cancelled its task (this host) before it
                    # suspended, which cancelled this wait: _resume delivers it to the request.
                wait = None
            if self._item is None:
                if self.closed:
                    return
                wait = self._wake = loop.create_future()
                continue
            coro, waiting, ctx, cancel = self._item
            self._item = None
            try:
                await _resume(coro, waiting, ctx, cancel)
            except BaseException:  # pragma: no cover - the request wrapper reports its own errors
                pass
            finally:
                self.busy = False
                host = self.host
                if host is not None:
                    while host.cancelling():
                        host.uncancel()

    def close(self) -> None:
        """The connection is gone: let the host task end once it is idle."""
        self.closed = True
        host = self.host
        if host is not None and not self.busy:
            self.host = None
            host.cancel()
