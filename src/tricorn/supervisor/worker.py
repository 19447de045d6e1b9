"""The process around a server: alone (:class:`Standalone`), as a pre-fork worker (:class:`Worker`), or
inside a program of its own (:class:`Embedded`).

:func:`tricorn.serving.serve` loads the app, starts its lifespan and serves; it calls its host at four
points (:class:`Host`): ``add_signal_handlers`` (before the sockets listen), ``listen`` (the sockets),
``serving`` (the server accepts) and ``close`` (after the shutdown). The hosts differ in what they own:

- Standalone binds the sockets itself (or takes systemd's), writes the pid file, drops privileges and
  answers SIGINT and SIGTERM (graceful stop), SIGQUIT (fast stop), SIGHUP (restart in place, see
  :mod:`tricorn.supervisor.restart`), SIGUSR1 (reopen log files).
- Both count requests in a :class:`~tricorn.io.metrics.MetricsSlot` when ``--metrics-bind`` is set;
  Standalone serves the metrics and the probes itself (a Worker's master does).
- Worker serves the sockets its master bound, answers SIGTERM (graceful; a second one changes nothing),
  SIGQUIT (fast) and SIGUSR1 (those that come while it boots wait for its handlers: hold_signals),
  ignores SIGINT (the master, which gets the terminal's Ctrl-C too, decides) and the master's other
  signals (SIGHUP, SIGTTIN, SIGTTOU, SIGUSR2: sent to a whole unit or group), reports READY and beats
  through its channel, asks to be replaced after max-requests or when its WSGI threads are all stuck, and
  drains when the master says so.
- Embedded serves on an event loop that a program of its own runs (``tricorn.serve``, ``tricorn.Server``):
  it binds as Standalone does, but handles only SIGINT and SIGTERM, and only when nobody else does.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import logging
import os
import random
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from tricorn.io.metrics import MetricsSlot, new_slot
from tricorn.supervisor import metrics
from tricorn.supervisor.heartbeat import RETIRING, STUCK, Heartbeat, beat_interval, stuck_threads
from tricorn.supervisor.hooks import Hooks, HookServer, HookWorker
from tricorn.supervisor.probes import TIMEOUT, LoopReactor, Page, ProbeServer, open_probes, probe_page
from tricorn.supervisor.process import PidFile, drop_privileges, reopen_log_files, resolve_identity
from tricorn.supervisor.sockets import describe, open_listeners

if TYPE_CHECKING:
    from tricorn.config import Config
    from tricorn.io.server import ServerState

error_log = logging.getLogger("tricorn.error")

OnSignal = Callable[[int], None]


def quit_now(state: ServerState, stop: asyncio.Event) -> None:
    """SIGQUIT: stop without waiting for requests in progress (their clients see the connection close)."""
    error_log.warning("received SIGQUIT, stopping now")
    stop.set()
    for conn in list(state.connections):
        conn.abort()


def _reopen_logs() -> None:
    count = reopen_log_files()
    error_log.info("received SIGUSR1: reopened %d log file(s)", count)


# The signals a forked worker took before its loop's handlers were in (see hold_signals).
_held: list[int] = []


def hold_signals() -> None:
    """In a forked worker, from the fork to :meth:`Worker.add_signal_handlers`: a signal the worker answers
    is kept for its handlers, which run it once they are in. With the default action, a QUIT or TERM sent
    while the worker boots (after post_worker_init said it is up, say) killed it before worker_int and
    worker_exit ran, and a USR1 (reopen the logs) killed it too. Handlers rather than a blocked mask: the
    threads an app starts while it loads would keep that mask for life, and so would their subprocesses."""
    for signum in Worker.SIGNALS:
        signal.signal(signum, _hold)


def _hold(signum: int, frame: object) -> None:
    _held.append(signum)


class Host(Protocol):
    """What :func:`tricorn.serving.serve` asks of the process around it."""

    metrics: MetricsSlot | None  # where it counts for --metrics-bind, or None
    ready: bool  # /readyz: serving, and not in a restart in place

    def add_signal_handlers(
        self, loop: asyncio.AbstractEventLoop, on_signal: OnSignal, state: ServerState, stop: asyncio.Event
    ) -> None: ...
    def listen(self) -> list[socket.socket]: ...
    def serving(self, state: ServerState, stop: asyncio.Event, backend: str, loop_name: str) -> None: ...
    def close(self) -> None: ...


class Standalone:
    """One process that is its own master and its only worker (``workers = 1``, no reload)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT, signal.SIGHUP, signal.SIGUSR1)

    def __init__(self, config: Config) -> None:
        self.config = config
        self.sockets: list[socket.socket] = []
        self.pidfile: PidFile | None = None
        self._handled: list[int] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unix_paths: list[str] = []
        self._stop: asyncio.Event | None = None
        # --metrics-bind: this process counts, and answers /metrics, /livez and /readyz itself. `ready`
        # is set by tricorn.serving.serve: serving, and not in a restart in place.
        self.metrics = new_slot(config) if config.metrics_bind is not None else None
        self.ready = False
        self._probes: ProbeServer | None = None
        self._sweep: asyncio.TimerHandle | None = None
        self._started = time.time()

    def add_signal_handlers(
        self, loop: asyncio.AbstractEventLoop, on_signal: OnSignal, state: ServerState, stop: asyncio.Event
    ) -> None:
        self._loop, self._stop = loop, stop
        # QUIT and HUP too: the server that serves changes on a restart in place (tricorn.serving.serve).
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT, signal.SIGHUP):
            loop.add_signal_handler(signum, on_signal, signum)
        loop.add_signal_handler(signal.SIGUSR1, _reopen_logs)
        self._handled = list(self.SIGNALS)

    def listen(self) -> list[socket.socket]:
        """Bind (or take systemd's sockets), write the pid file, then drop privileges.

        Raises BindError or ProcessError; nothing is left open then.
        """
        config = self.config
        identity = resolve_identity(config.user, config.group)
        from_systemd = "LISTEN_FDS" in os.environ
        self.sockets = open_listeners(config, unix_owner=identity)
        if not (from_systemd and "LISTEN_FDS" not in os.environ):  # the socket files are ours
            self._unix_paths = [b.path for b in config.binds if b.kind == "unix" and b.path is not None]
        try:
            self._probes = open_probes(
                config, {"/metrics": self._metrics_page, "/livez": self._livez, "/readyz": self._readyz}
            )
            if self._probes is not None and self._probes.unix_path is not None:
                self._unix_paths.append(self._probes.unix_path)
            if config.pid is not None:
                self.pidfile = PidFile(config.pid)
            drop_privileges(identity)
        except BaseException:
            for sock in self.sockets:
                sock.close()
            if self._probes is not None:
                self._probes.close()
            raise
        return self.sockets

    def serving(self, state: ServerState, stop: asyncio.Event, backend: str, loop_name: str) -> None:
        for sock in self.sockets:
            error_log.info(
                "listening on %s (pid %d, %s, %s)",
                describe(sock, "https" if self.config.tls else "http"),
                os.getpid(),
                backend,
                loop_name,
            )
        if self._probes is not None and self._loop is not None:
            self._probes.start(LoopReactor(self._loop))
            self._sweep_probes()

    def _sweep_probes(self) -> None:
        assert self._loop is not None and self._probes is not None
        self._probes.sweep(time.monotonic())
        self._sweep = self._loop.call_later(TIMEOUT / 2, self._sweep_probes)

    def _metrics_page(self) -> Page:
        assert self.metrics is not None
        self.metrics.sample()
        processes = metrics.ProcessTotals([os.getpid()], start_time=self._started)
        return 200, metrics.render([self.metrics], None, processes), metrics.CONTENT_TYPE

    def _livez(self) -> Page:
        return probe_page(True, "live: the event loop answers")

    def _readyz(self) -> Page:
        if self._stop is not None and self._stop.is_set():
            return probe_page(False, "not ready: shutting down")
        if not self.ready:
            return probe_page(False, "not ready: starting, or restarting in place")
        return probe_page(True, "ready")

    def close(self) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        if self._probes is not None:
            self._probes.close()
            self._probes = None
        if self._loop is not None:
            for signum in self._handled:
                self._loop.remove_signal_handler(signum)
            self._handled = []
        if self.pidfile is not None:
            self.pidfile.remove()
            self.pidfile = None
        for path in self._unix_paths:
            with contextlib.suppress(OSError):
                os.unlink(path)
        self._unix_paths = []


class Embedded(Standalone):
    """A server inside a program that owns the process and the event loop.

    It binds (and writes a pid file, and drops privileges, when asked to) as Standalone does. Of the
    signals it takes SIGINT and SIGTERM (a graceful stop; a second one cuts the requests in progress), and
    only when serving from the main thread and when the signal still has Python's default handler: a
    program, or ``asyncio.run``, that handles a signal itself keeps it. ``stop`` is the event that stops
    the server, once :func:`tricorn.serving.serve` has made it; ``on_serving`` is called once it accepts.
    """

    def __init__(self, config: Config, on_serving: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_serving = on_serving

    @property
    def stop(self) -> asyncio.Event | None:
        return self._stop

    def add_signal_handlers(
        self, loop: asyncio.AbstractEventLoop, on_signal: OnSignal, state: ServerState, stop: asyncio.Event
    ) -> None:
        self._loop, self._stop = loop, stop
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(signum) not in (signal.SIG_DFL, signal.default_int_handler):
                continue
            try:
                loop.add_signal_handler(signum, on_signal, signum)
            except (NotImplementedError, RuntimeError, ValueError):
                continue  # a loop without signal support (Windows' proactor, some embedders' loops)
            self._handled.append(signum)

    def serving(self, state: ServerState, stop: asyncio.Event, backend: str, loop_name: str) -> None:
        super().serving(state, stop, backend, loop_name)
        self._on_serving()


class Worker:
    """A pre-fork worker: serves ``sockets`` (inherited from the master) and talks to it over ``channel``.

    ``max_requests`` is this worker's own limit (the setting plus its jitter), or None. ``hooks`` are the
    gunicorn config file's (tricorn.supervisor.hooks), run with ``hook_worker`` as gunicorn's worker.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGQUIT, signal.SIGUSR1)

    def __init__(
        self,
        config: Config,
        sockets: list[socket.socket],
        channel: socket.socket,
        metrics: MetricsSlot | None = None,
        hooks: Hooks | None = None,
        hook_worker: HookWorker | None = None,
        hook_server: HookServer | None = None,
    ) -> None:
        self.config = config
        self.sockets = sockets
        self.channel = channel
        self.metrics = metrics  # shared with the master, which serves the page
        self.ready = False
        self.hooks = hooks if hooks is not None else Hooks({})
        self.hook_worker = hook_worker if hook_worker is not None else HookWorker(config, 0, os.getpid())
        self.hook_server = hook_server
        self.max_requests: int | None = None
        if config.max_requests is not None:
            self.max_requests = config.max_requests + random.randint(0, config.max_requests_jitter)
        self.retiring = False
        self._terminated = False
        self.heartbeat: Heartbeat | None = None
        self._state: ServerState | None = None
        self._stop: asyncio.Event | None = None
        self._handled: list[int] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def add_signal_handlers(
        self, loop: asyncio.AbstractEventLoop, on_signal: OnSignal, state: ServerState, stop: asyncio.Event
    ) -> None:
        self._loop, self._state, self._stop = loop, state, stop
        state.master_pid = os.getppid()  # QUIC: the workers of one master relay each other's datagrams

        def on_term() -> None:
            # Once is enough: the master escalates with SIGQUIT. A second SIGTERM is the same stop sent
            # to the whole process group (systemd's default KillMode, a terminal), not an escalation.
            if not self._terminated:
                self._terminated = True
                on_signal(signal.SIGTERM)

        def on_quit() -> None:
            self.hooks.run("worker_int", self.hook_worker)
            quit_now(state, stop)

        handlers = {signal.SIGTERM: on_term, signal.SIGQUIT: on_quit, signal.SIGUSR1: _reopen_logs}
        # Blocked while the handlers change (see hold_signals): pthread_sigmask runs the Python handler of
        # a signal already caught before it returns, so _hold has it; one that comes meanwhile waits for
        # the loop's handler, which the unblocking delivers it to.
        signal.pthread_sigmask(signal.SIG_BLOCK, self.SIGNALS)
        try:
            for signum, handler in handlers.items():
                loop.add_signal_handler(signum, handler)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, self.SIGNALS)
        self._handled = list(self.SIGNALS)
        for held in _held:
            loop.call_soon(handlers[signal.Signals(held)])
        _held.clear()
        if "worker_abort" in self.hooks:
            # The master's SIGABRT (this worker stopped answering): a Python handler, not the loop's, as the
            # loop is the thing that is stuck; it runs once the main thread runs Python again (a blocked
            # sleep or a busy loop in Python, not a call stuck in C: the master's SIGKILL follows then).
            signal.signal(signal.SIGABRT, self._on_abort)

    def _on_abort(self, signum: int, frame: object) -> None:
        faulthandler.dump_traceback(all_threads=True)
        self.hook_worker.alive = False
        self.hooks.run("worker_abort", self.hook_worker)
        self.hooks.run("worker_exit", self.hook_server, self.hook_worker)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(1)

    def listen(self) -> list[socket.socket]:
        return self.sockets

    def serving(self, state: ServerState, stop: asyncio.Event, backend: str, loop_name: str) -> None:
        assert self._loop is not None
        self.heartbeat = Heartbeat(
            self.channel,
            self._loop,
            beat_interval(self.config.timeout_worker),
            on_beat=self._on_beat,
            on_drain=self._drain,
            on_orphaned=self._orphaned,
        )
        self.heartbeat.start()
        if self.max_requests is not None:
            # Checked right after the response that reaches the limit; the heartbeat checks it too.
            state.request_limit = self.max_requests
            state.on_request_limit = self._check_requests
        error_log.info("worker ready (%s, %s)", backend, loop_name)

    def close(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.stop()
        if self._loop is not None:
            for signum in self._handled:
                self._loop.remove_signal_handler(signum)
                # Stopped already: a late TERM (the master's, after one sent to the process group) must
                # not turn a clean exit into a death by signal. The master's SIGKILL deadline still holds.
                signal.signal(signum, signal.SIG_IGN)
            self._handled = []

    # -- heartbeat callbacks

    def _on_beat(self) -> None:
        self._check_requests()
        self._check_threads()
        if self.metrics is not None:
            self.metrics.sample()  # the gauges the master reads are at most one beat old

    def _check_threads(self) -> None:
        """A WSGI pool whose every thread has been on one request past --timeout-worker serves no one,
        while the loop (and so the heartbeat) runs on: log where the threads are, and ask for a
        replacement, as max-requests does (this worker drains: the requests that can finish, do)."""
        state = self._state
        if self.retiring or state is None or state.wsgi_pool_owner is None:
            return
        pool = state.wsgi_pool_owner.pool
        timeout = self.config.timeout_worker
        stuck = stuck_threads(pool.running_since(), pool.size, time.monotonic(), timeout)
        if not stuck:
            return
        self.retiring = True
        frames = sys._current_frames()
        names = {thread.ident: thread.name for thread in threading.enumerate()}
        now = time.monotonic()
        stacks = []
        for ident, started in stuck:
            frame = frames.get(ident)
            where = "".join(traceback.format_stack(frame)) if frame is not None else "  (gone)\n"
            name = names.get(ident, ident)
            stacks.append(f"thread {name}, on its request for {now - started:.1f}s:\n{where}")
        error_log.error(
            "every wsgi thread (%d) has been on one request for more than %gs: asking for a replacement; "
            "their stacks:\n%s",
            len(stuck),
            timeout,
            "".join(stacks).rstrip("\n"),
        )
        assert self.heartbeat is not None
        self.heartbeat.send(STUCK)

    def _check_requests(self) -> None:
        state = self._state
        limit = self.max_requests
        if limit is None or self.retiring or state is None or state.completed < limit:
            return
        self.retiring = True
        error_log.info(
            "served %d requests (max requests %d): asking for a replacement", state.completed, limit
        )
        assert self.heartbeat is not None
        self.heartbeat.send(RETIRING)

    def _drain(self) -> None:
        state, stop = self._state, self._stop
        if state is None or stop is None or stop.is_set():
            return
        error_log.info("draining: finishing the requests in progress while other workers serve")
        state.lame_duck = True
        stop.set()

    def _orphaned(self) -> None:
        if self._stop is not None and not self._stop.is_set():
            error_log.warning("the master process is gone; stopping")
            self._stop.set()
