"""The channel between the master and each worker: a unix socket pair, one byte per message.

The worker writes from its event loop: ``READY`` once it serves, ``BEAT`` on a timer, ``RETIRING`` when it
has served its max-requests, ``STUCK`` when every thread of its WSGI pool has been on one request for
longer than the timeout (:func:`stuck_threads`; the loop still beats, so only the worker can tell). Each
beat first makes a round trip through the loop's default thread pool (the one ``run_in_executor`` and
``asyncio.to_thread`` use), so a worker beats only while both its loop and that pool run: a blocked loop
(a synchronous call in a coroutine) or a pool whose every thread is stuck stops the beats, which is what
the master watches for. The master writes ``DRAIN`` to retire a worker while others keep serving. When the
master dies, the worker reads end of file on its end and stops: no orphan keeps serving with nobody to
supervise it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Sequence

error_log = logging.getLogger("tricorn.error")

BEAT = b"."
READY = b"R"
RETIRING = b"M"
STUCK = b"S"
DRAIN = b"D"

# Heartbeats per timeout: a worker is declared silent after missing about four in a row. The interval is
# capped so that max-requests is noticed promptly, and floored so a tiny timeout does not spin the loop.
BEATS_PER_TIMEOUT = 4
MAX_BEAT_INTERVAL = 0.5
MIN_BEAT_INTERVAL = 0.05


def channel_pair() -> tuple[socket.socket, socket.socket]:
    """(master's end, worker's end), both non-blocking and closed on exec."""
    master_end, worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    master_end.setblocking(False)
    worker_end.setblocking(False)
    return master_end, worker_end


def stuck_threads(
    running: Sequence[tuple[int, float]], size: int, now: float, timeout: float
) -> list[tuple[int, float]]:
    """``running`` (thread ident, start of its job) if it is a pool of ``size`` threads all running one job
    each for longer than ``timeout`` seconds (0 disables), else []. One thread free, or a job shorter than
    that, and the pool still serves."""
    if timeout <= 0 or size <= 0 or len(running) < size:
        return []
    if all(now - started > timeout for _, started in running):
        return list(running)
    return []


def beat_interval(timeout_worker: float) -> float:
    if timeout_worker <= 0:
        return MAX_BEAT_INTERVAL
    return min(MAX_BEAT_INTERVAL, max(MIN_BEAT_INTERVAL, timeout_worker / BEATS_PER_TIMEOUT))


# Beats a worker may miss before it counts as late (the /livez probe fails, a heartbeat miss is counted):
# one late beat is scheduling noise, three in a row (1.5 s at the default interval) a blocked loop.
LATE_BEATS = 3


def late_after(timeout_worker: float) -> float:
    """Seconds of silence after which a worker is late (see the policy): well before it is killed."""
    interval = beat_interval(timeout_worker)
    late = LATE_BEATS * interval
    return late if timeout_worker <= 0 else min(late, timeout_worker - interval)


class Heartbeat:
    """The worker's end of the channel, driven by its event loop.

    :meth:`start` sends READY and then a BEAT every ``interval`` seconds from a loop timer; each beat also
    calls ``on_beat`` (the max-requests check). ``on_drain`` is called when the master sends DRAIN,
    ``on_orphaned`` when the master is gone (end of file, or a broken channel on write).
    """

    def __init__(
        self,
        sock: socket.socket,
        loop: asyncio.AbstractEventLoop,
        interval: float,
        on_beat: Callable[[], None],
        on_drain: Callable[[], None],
        on_orphaned: Callable[[], None],
    ) -> None:
        self.sock = sock
        self.loop = loop
        self.interval = interval
        self.on_beat = on_beat
        self.on_drain = on_drain
        self.on_orphaned = on_orphaned
        self._timer: asyncio.TimerHandle | None = None
        self._probe: asyncio.Future[None] | None = None
        self._reading = False
        self._orphaned = False

    def start(self) -> None:
        self.send(READY)
        self.loop.add_reader(self.sock.fileno(), self._on_readable)
        self._reading = True
        self._timer = self.loop.call_later(self.interval, self._beat)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._reading:
            self._reading = False
            self.loop.remove_reader(self.sock.fileno())

    def send(self, message: bytes) -> None:
        try:
            self.sock.send(message)
        except BlockingIOError:
            pass  # the master is behind on reading; it has many beats from us already
        except OSError:
            self._orphan()

    def _beat(self) -> None:
        self._timer = self.loop.call_later(self.interval, self._beat)
        self.on_beat()
        if self._probe is not None:
            return  # the last probe is still queued in the thread pool: no beat until it comes back
        try:
            self._probe = self.loop.run_in_executor(None, _nothing)
        except RuntimeError:  # the default executor was shut down (the loop is closing)
            self.send(BEAT)
            return
        self._probe.add_done_callback(self._probed)

    def _probed(self, probe: asyncio.Future[None]) -> None:
        self._probe = None
        if self._timer is not None:  # not stopped meanwhile
            self.send(BEAT)

    def _on_readable(self) -> None:
        try:
            data = self.sock.recv(64)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._orphan()
            return
        if DRAIN in data:
            self.on_drain()

    def _orphan(self) -> None:
        if self._orphaned:
            return
        self._orphaned = True
        if self._reading:
            self._reading = False
            self.loop.remove_reader(self.sock.fileno())
        self.on_orphaned()


def _nothing() -> None:
    pass
