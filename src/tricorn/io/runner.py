"""Running request coroutines eagerly, with a real task identity.

Most requests finish without ever waiting (a hello-world app awaits only ``send``, which does not suspend
while the socket accepts data). Creating an ``asyncio.Task`` for each of them, and waiting for the loop to
schedule it, is a large part of a request's cost (bench "hello"). So requests run in *host tasks*:

- A request's coroutine is first stepped directly, in a fresh copy of the context, while a host task
  is entered as the loop's current task: the *spare* of the runner's :class:`Hosts`. Steps are batched:
  every request that became ready in one loop turn is stepped by one callback after the reads (see
  :class:`_Batch`). Code that asks for ``asyncio.current_task()`` (anyio cancel scopes,
  ``asyncio.timeout``) sees a real, stable task.
- If the coroutine finishes in that step, nothing else happens: no task was created or scheduled, and
  the spare stays the spare.
- If it suspends, it is handed to that host task, which goes on driving it (in the same context, so
  context variables set by the app stay with the request) until it finishes. ``current_task()`` is the
  same host task before and after the suspension, so cancel scopes entered in the first step exit in the
  right task, and cancelling the host delivers ``CancelledError`` into the request. The host is no longer
  the spare meanwhile (the next first step makes another); once done it is the spare again, or ends.
- While a host drives one of a connection's requests (an app still running after its response, say), a
  later request on the same connection gets an ordinary task of its own, held in ``tasks`` until it ends.

The HTTP/1.1 connections of a server share one :class:`Hosts` (``ServerState.hosts``): a new connection
whose requests all finish in their first step makes no task at all (bench "close": a task made, stepped
twice and ended cost a new connection 27k instructions, and an open keep-alive connection about 1 kB).
Other runners have Hosts of their own, ended with them. Requests are never started from inside another
request's step (starts go through the batch callback), so a host is never entered twice.
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


# What a first step gives when the request finished in it (see AppRunner.first_step).
_FINISHED: Any = object()


@types.coroutine
def _scheduled() -> Generator[None, None, None]:
    """Where a new host's coroutine waits for its task's first step (see _Host.__init__)."""
    yield


@types.coroutine
def _resume(coro: Coro, waiting: Any, ctx: contextvars.Context, cancel: bool) -> Generator[Any, Any, None]:
    """Drive ``coro`` from the point where it yielded ``waiting``, each step inside ``ctx``."""
    send, throw = coro.send, coro.throw
    if cancel:
        # The host was cancelled before it first resumed the request (by the request itself, before it
        # suspended, or by anyone since the hand-over): deliver it now.
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
        # A spare host stays entered as the loop's current task from one item to the next while it stays
        # the spare (entering and leaving cost about 1.3k instructions a request: bench "hello8").
        entered: asyncio.Task[None] | None = None
        loop: Any = None
        try:
            for runner, coro in items:
                host = runner.hosts.spare
                if host is None or runner.busy or _enter_task is None:
                    if entered is not None:  # (a first host, a busy connection: step() sorts it out)
                        _leave_task(loop, entered)
                        entered = None
                    runner.step(coro)
                    continue
                task = host.task
                if task is not entered:
                    loop = runner.loop
                    if entered is not None:
                        _leave_task(loop, entered)
                    _enter_task(loop, task)
                    entered = task
                if not runner.first_step(coro, host, task):
                    _leave_task(loop, task)
                    entered = None
        finally:
            if entered is not None:
                _leave_task(loop, entered)


# One batch per loop, found once per connection. Weak keys, and no reference from a batch back to its
# loop, so a closed loop (one per test, say) is not kept alive by the batch it used.
_BATCHES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Batch] = weakref.WeakKeyDictionary()


class Hosts:
    """The host tasks where requests are first stepped (see the module docstring): the spare, made when a
    first step needs one, and the hosts driving suspended requests, each the spare again when done (or
    ended, when there is one already)."""

    __slots__ = ("closed", "loop", "spare")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.spare: _Host | None = None
        self.closed = False

    def close(self) -> None:
        """Nothing more starts here: the spare ends now, a host driving a request once it is done."""
        self.closed = True
        host, self.spare = self.spare, None
        if host is not None:
            host.wake_up()


class _Host:
    """One host task and what it is given to drive."""

    __slots__ = ("hosts", "item", "task", "wake")

    def __init__(self, hosts: Hosts) -> None:
        self.hosts = hosts
        self.item: tuple[AppRunner, Coro, Any, contextvars.Context, bool] | None = None
        self.wake: asyncio.Future[None] | None = None
        # A request may cancel the host (its current task) before the host first ran. Before 3.13 that
        # cancellation stays pending even once the request's step has uncancel()ed it, and a task throws it
        # into its coroutine at the first step: an unstarted coroutine cannot catch it, and the host would
        # end without resuming the request. So the coroutine is run to its first line (_scheduled) before
        # it becomes a task, where _main catches it. One generator step per host, none per request.
        main = self._main()
        main.send(None)
        self.task = hosts.loop.create_task(main)

    def wake_up(self) -> None:
        wake = self.wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def _main(self) -> None:
        hosts = self.hosts
        loop = hosts.loop
        wait: Any = _scheduled()  # the first wait, entered before this is a task (see __init__)
        while True:
            cancelled = False
            if wait is not None:
                try:
                    await wait
                except asyncio.CancelledError:
                    if self.item is None:
                        # Cancelled while idle: the loop is shutting down, or a request that finished in
                        # its first step cancelled its task (step() no longer offers this host). Done.
                        if hosts.spare is self:
                            hosts.spare = None
                        return
                    # A request was handed over in this loop turn and this host (its task) cancelled
                    # before it ran again: by the request itself before it suspended (the item says so
                    # too), or by anyone since (a server shutting down). Either way it is the request's.
                    cancelled = True
                wait = None
            item = self.item
            if item is None:
                if hosts.spare is not self:  # (ended by Hosts.close, or replaced: see step)
                    return
                wait = self.wake = loop.create_future()
                continue
            self.item = None
            runner, coro, waiting, ctx, cancel = item
            try:
                await _resume(coro, waiting, ctx, cancel or cancelled)
            except BaseException:  # pragma: no cover - the request wrapper reports its own errors
                pass
            finally:
                runner.busy = False
                runner.driving = None
                task = self.task
                while task.cancelling():
                    task.uncancel()
            if hosts.spare is not None or hosts.closed:
                return
            hosts.spare = self


class AppRunner:
    """Runs one connection's request coroutines (see the module docstring), in the host tasks of
    ``hosts`` (shared with other connections), or of its own (ended by :meth:`close`)."""

    __slots__ = ("_batch", "_own", "busy", "driving", "hosts", "loop", "tasks")

    def __init__(self, loop: asyncio.AbstractEventLoop, hosts: Hosts | None = None) -> None:
        self.loop = loop
        self._own = hosts is None
        self.hosts = Hosts(loop) if hosts is None else hosts
        self.driving: _Host | None = None  # the host driving this connection's suspended request
        self.busy = False
        # The tasks of requests that got one of their own; the loop holds tasks only weakly, and one
        # waiting on a future nobody else holds would be collected mid-request (uvicorn keeps a set too).
        self.tasks: set[asyncio.Task[None]] | None = None
        self._batch: _Batch | None = None

    @property
    def host(self) -> asyncio.Task[None] | None:
        """The task this connection's requests run in now: the host driving its suspended request, else
        the spare its next request is first stepped in (None until one is needed)."""
        host = self.driving or self.hosts.spare
        return host.task if host is not None else None

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
        hosts = self.hosts
        host = hosts.spare
        if host is None:
            if hosts.closed:  # (a closed Hosts has no spare)
                return self._own_task(coro)
            host = hosts.spare = _Host(hosts)
        task = host.task
        try:
            _enter_task(loop, task)
        except RuntimeError:  # called from inside a task (not from a transport callback)
            return self._own_task(coro)
        try:
            self.first_step(coro, host, task)
        finally:
            _leave_task(loop, task)
        return None

    def first_step(self, coro: Coro, host: _Host, task: asyncio.Task[None]) -> bool:
        """Step ``coro`` for the first time in ``host`` (the spare), whose ``task`` the caller entered as
        the loop's current task; True if ``host`` is still the spare after it."""
        ctx = contextvars.copy_context()
        # Stepped as an iterator, whose end next() reports as its default: coro.send() would raise
        # StopIteration for a request that finished, an exception made and caught for most requests
        # (about 1.1k instructions, bench "hello8").
        waiting = ctx.run(next, coro.__await__(), _FINISHED)
        if waiting is _FINISHED:
            if task.cancelling():
                # The request cancelled its task: that host ends at its next step (its wait is cancelled),
                # so it is no longer offered; the next first step makes another.
                self.hosts.spare = None
                return False
            return True
        # It suspended: this host takes it from here, and is no longer the spare.
        self.hosts.spare = None
        self.busy = True
        self.driving = host
        cancel = task.cancelling() > 0
        if cancel:
            task.uncancel()
        host.item = (self, coro, waiting, ctx, cancel)
        host.wake_up()
        return False

    def _own_task(self, coro: Coro) -> asyncio.Task[None]:
        task = self.loop.create_task(coro)
        tasks = self.tasks
        if tasks is None:
            tasks = self.tasks = set()
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return task

    def close(self) -> None:
        """The connection is gone. Hosts of its own end once idle (a shared spare stays for others)."""
        if self._own:
            self.hosts.close()
