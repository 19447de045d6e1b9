"""The threads WSGI applications run on (:class:`WorkerPool`) and the way their operations reach the
event loop (:class:`Mailbox`)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Protocol

error_log = logging.getLogger("tricorn.error")

# A job (a request) that takes longer than this has blocked (or computed for long): the pool then wakes a
# thread per waiting job instead of one at a time. Well above a request that does not block (tens of
# microseconds), well below a database round trip.
BLOCKING_JOB = 0.002

# -- threads and the loop -------------------------------------------------------------------------------


class Posted(Protocol):
    """What a :class:`Mailbox` runs by calling its ``loop_run()``."""

    def loop_run(self) -> None: ...


class Mailbox:
    """Operations posted from worker threads, run on the loop thread in the order they were posted.

    One ``call_soon_threadsafe`` wakes the loop for a whole batch: a worker that posts while a drain is
    already scheduled only appends (bench wsgi "hello": the loop writes many responses per wakeup).

    Besides :meth:`post`, a worker posts a :class:`Posted` (whose ``loop_run()`` the drain calls) by
    appending it to ``ops`` itself, then calling :meth:`schedule` if ``scheduled`` is clear: no Python
    call of the mailbox's own, nor a bound method made and called through ``op(*args)`` (bench wsgi
    "hello" posts each whole response so, from WSGICycle.execute).
    """

    __slots__ = ("_call_soon", "ops", "scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.ops: deque[tuple[Callable[..., None], tuple[Any, ...]] | Posted] = deque()
        self.scheduled = False
        self._call_soon = loop.call_soon_threadsafe

    def post(self, op: Callable[..., None], *args: Any) -> None:
        """Run ``op(*args)`` on the loop thread soon. Any thread; never blocks."""
        self.ops.append((op, args))
        if not self.scheduled:
            self.schedule()

    def schedule(self) -> None:
        """Have the loop drain ``ops`` soon; called by a thread that appended to ``ops``, then saw
        ``scheduled`` clear. Any thread; never blocks."""
        # Append, then look at the flag; the drain clears the flag, then pops. So an op appended after a
        # drain's last pop either sees the flag clear (and schedules) or is popped by a drain to come.
        self.scheduled = True
        self._call_soon(self.drain)

    def drain(self) -> None:
        self.scheduled = False
        ops = self.ops
        while ops:
            op = ops.popleft()
            try:
                if type(op) is tuple:
                    call, args = op
                    call(*args)
                else:
                    op.loop_run()  # type: ignore[union-attr]  # (not a tuple: a Posted)
            except Exception:  # pragma: no cover - an op that raises is a bug in this module
                error_log.exception("internal error in a wsgi loop operation")


class _Worker:
    __slots__ = ("cond", "ident", "job_started", "wake")

    def __init__(self) -> None:
        self.wake = threading.Lock()
        self.wake.acquire()  # released to wake this (idle) thread
        self.cond = threading.Condition(threading.Lock())  # for the waits of the jobs it runs
        self.ident = 0  # its thread's, once running
        self.job_started = 0.0  # time.monotonic() when the job it runs started; 0.0 while it runs none


class Job(Protocol):
    """What the pool runs: ``execute(cond)``, given the Condition of the thread that runs it (a
    :class:`~tricorn.interfaces.wsgi.WSGICycle`; a method called on the job, not a callable, so that no
    bound method is made for each: bench wsgi "hello")."""

    def execute(self, cond: threading.Condition) -> None: ...


class WorkerPool:
    """Up to ``size`` daemon threads running jobs in submission order.

    How many threads a batch of jobs wakes depends on how long jobs take. While they are quick (the app
    does not block), at most one thread is *waking* (woken, not yet running a job) at a time: a batch wakes
    one thread, and a thread that takes a job while others still wait wakes one more. So an app that never
    blocks is served by a thread or two running job after job without context switches between them
    (waking a thread per job made each request cost about two context switches, and a third more CPU,
    bench wsgi "hello"). Once a job has taken longer than :data:`BLOCKING_JOB` (the app blocked, or
    computed for long), every waiting job wakes a thread, up to ``size`` (bench wsgi "blocking": waking
    them one by one left most threads idle). Threads start when first needed; the most recently idle
    thread is woken first. Each job's ``execute`` is called with its thread's Condition, for its waits.
    """

    def __init__(self, size: int, name: str = "tricorn-wsgi") -> None:
        self.size = size
        self.name = name
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._backlog: deque[Job] = deque()
        self._waking = 0
        self._blocking = False  # the last job took long (it blocked): wake a thread per waiting job
        self.threads: list[threading.Thread] = []
        self._workers: list[_Worker] = []
        self.busy = 0  # jobs submitted and not finished (for the graceful shutdown)
        self.closed = False

    def submit(self, jobs: Iterable[Job]) -> None:
        """Queue ``jobs`` (any thread)."""
        with self._lock:
            if self.closed:
                raise RuntimeError("worker pool is closed")
            before = len(self._backlog)
            self._backlog.extend(jobs)
            self.busy += len(self._backlog) - before
            self._wake()

    def _wake(self) -> None:
        # Called with the lock held.
        backlog = len(self._backlog)
        wanted = backlog if self._blocking else min(backlog, 1)
        while self._waking < wanted:
            if self._idle:
                self._idle.pop().wake.release()
            elif len(self.threads) < self.size:
                worker = _Worker()
                self._workers.append(worker)
                thread = threading.Thread(
                    target=self._work,
                    args=(worker,),
                    name=f"{self.name}-{len(self.threads) + 1}",
                    daemon=True,
                )
                self.threads.append(thread)
                thread.start()
            else:
                return
            self._waking += 1

    def _work(self, worker: _Worker) -> None:
        lock = self._lock
        backlog = self._backlog
        cond = worker.cond
        monotonic = time.monotonic
        woken = True
        started = ended = 0.0  # ended: when the last job ended; 0.0: none since this thread last waited
        worker.ident = threading.get_ident()
        while True:
            # acquire/release, not `with`: half the instructions (bench wsgi "hello" takes the lock once
            # a request); nothing between them raises but a failed thread start, which leaves the pool
            # short of a thread, not locked.
            lock.acquire()
            try:
                if woken:
                    self._waking -= 1
                    woken = False
                if ended:
                    self.busy -= 1
                    self._blocking = ended - started > BLOCKING_JOB
                if backlog:
                    job: Job | None = backlog.popleft()
                    # (the test _wake starts with, inline: bench wsgi "hello" pops a job a request)
                    if backlog and (self._blocking or not self._waking):
                        self._wake()
                elif self.closed:
                    return
                else:
                    self._idle.append(worker)
                    job = None
            finally:
                lock.release()
            if job is None:
                worker.wake.acquire()
                woken = True
                ended = 0.0
                continue
            # One clock reading a job (bench wsgi "hello"): the end of the last one is this one's start
            # when the thread went straight on to it. Its time then holds the thread's turn at the lock
            # besides the job: the lock is held for the bookkeeping above and a thread's start, far
            # below BLOCKING_JOB, and a job's time holds its waits for the GIL anyway.
            started = worker.job_started = ended or monotonic()
            try:
                job.execute(cond)
            except BaseException:  # pragma: no cover - jobs report their own errors
                error_log.exception("internal error in a wsgi worker thread")
            ended = monotonic()
            worker.job_started = 0.0

    def running_since(self) -> list[tuple[int, float]]:
        """(thread ident, ``time.monotonic()`` its job started) for each thread running a job now. Read
        only, from any thread, without the lock: a snapshot (the heartbeat's stuck-pool check,
        tricorn.supervisor.worker, reads it every beat)."""
        return [(w.ident, w.job_started) for w in self._workers if w.job_started]

    def close(self) -> None:
        """Take no more jobs; idle threads exit now, busy ones once the backlog is done."""
        with self._lock:
            self.closed = True
            idle, self._idle = self._idle, []
            self._waking += len(idle)
        for worker in idle:
            worker.wake.release()

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for every thread to exit; True if they all did."""
        deadline = time.monotonic() + timeout
        while True:  # the backlog may still start threads while we wait
            alive = [thread for thread in self.threads if thread.is_alive()]
            remaining = deadline - time.monotonic()
            if not alive or remaining <= 0:
                return not alive
            alive[0].join(remaining)
