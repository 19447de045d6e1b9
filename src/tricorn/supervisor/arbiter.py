"""The pre-fork master: the POSIX shell around :class:`~tricorn.supervisor.policy.Policy`.

The arbiter binds the listening sockets, forks the workers (which inherit them), reaps them, and turns
what happens into policy events: signals (whose handlers only append to a queue; ``set_wakeup_fd`` wakes
the loop), bytes on the workers' channels (ready, heartbeat, max-requests reached), children's exits,
changed files (``--reload``) and time. It carries out the actions the policy returns: fork, signal, write
to a channel, log, re-execute, exit. It never imports the application (unless ``--preload``), so every
new worker, after SIGHUP or a change, imports the code that is on disk then.

Signals (gunicorn's meanings): TERM and INT stop gracefully, QUIT stops fast, HUP reloads (re-read
settings, new workers, then the old ones drain), TTIN and TTOU add and remove a worker, USR1 reopens log
files (the master's and, through USR1, the workers'), USR2 re-executes the master with the code on disk,
keeping its pid, its listening sockets and, until their replacements are ready, its workers.
"""

from __future__ import annotations

import collections
import contextlib
import faulthandler
import gc
import json
import logging
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from types import FrameType
from typing import Any

from tricorn import supervisor
from tricorn.config import Config
from tricorn.errors import AppLoadError, ConfigError
from tricorn.importer import load_apps, object_name
from tricorn.io import tls
from tricorn.io.metrics import MetricsSlot, mount_labels, new_slot
from tricorn.logs import configure_logging
from tricorn.supervisor import metrics
from tricorn.supervisor import policy as p
from tricorn.supervisor.heartbeat import BEAT, DRAIN, READY, RETIRING, STUCK, channel_pair, late_after
from tricorn.supervisor.hooks import HookServer, HookWorker, hooks_of
from tricorn.supervisor.probes import Page, ProbeServer, SelectorReactor, open_probes, probe_page
from tricorn.supervisor.process import (
    PidFile,
    ProcessError,
    drop_privileges,
    reopen_log_files,
    resolve_identity,
    set_title,
)
from tricorn.supervisor.reloader import Reloader
from tricorn.supervisor.sockets import BindError, describe, open_listeners

error_log = logging.getLogger("tricorn.error")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2
EXIT_APP = 3

# The environment variable through which a master hands its sockets and workers to the master it
# re-executes (SIGUSR2): {"sockets": [fd, ...], "workers": [[pid, channel fd], ...]}.
UPGRADE_ENV = "TRICORN_UPGRADE"
# Run before re-executing: the new code must import and accept the settings, or the master stays as is.
PREFLIGHT = (
    "import sys; import tricorn.serving, tricorn.supervisor.arbiter; from tricorn.config import Config; "
    "Config.load(sys.argv[1:])"
)
# The longest the master sleeps between two looks at the time (deadlines come from the policy).
MAX_SLEEP = 1.0
# Settings a SIGHUP cannot change: the sockets are bound, the privileges dropped, the master's modules
# imported. A restart (or SIGUSR2, for the reload settings) applies them.
RESTART_SETTINGS = (
    "host",
    "port",
    "bind",
    "backlog",
    "reuse_port",
    "unix_socket_permissions",
    "pid",
    "user",
    "group",
    "preload",
    "reload",
    "reload_dir",
    "reload_include",
    "reload_exclude",
    "metrics_bind",
)
SIGNALS = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGQUIT,
    signal.SIGHUP,
    signal.SIGTTIN,
    signal.SIGTTOU,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGCHLD,
)


@dataclass(slots=True)
class WorkerHandle:
    wid: int
    pid: int
    channel: socket.socket
    open: bool = True  # the channel is registered with the selector
    metrics: MetricsSlot | None = None  # its counters (--metrics-bind), shared memory it writes


class Arbiter:
    """Runs the master for ``config`` until it stops; :meth:`run` returns the exit status.

    ``argv`` are the command-line arguments to re-read on SIGHUP and re-execute with on SIGUSR2
    (default: :data:`tricorn.supervisor.command_line`); without them SIGHUP keeps the settings and
    SIGUSR2 is refused. ``app`` is an application object given from Python (:func:`tricorn.run`): the
    workers inherit it through the fork, as they inherit a preloaded one, and every worker, a
    SIGHUP's new ones included, serves that object.
    """

    def __init__(self, config: Config, argv: list[str] | None = None, app: Any = None) -> None:
        self.config = config
        self.app = app
        self.app_name = config.app if app is None else object_name(app)
        self.argv = argv if argv is not None else supervisor.command_line
        self.sockets: list[socket.socket] = []
        self.handles: dict[int, WorkerHandle] = {}
        self.policy = p.Policy(
            config.workers,
            config.timeout_worker,
            config.timeout_graceful_shutdown,
            dev_reload=config.reload,
            late_after=late_after(config.timeout_worker),
        )
        self.exit_code: int | None = None
        self.pidfile: PidFile | None = None
        self.reloader: Reloader | None = None
        self.selector: selectors.BaseSelector | None = None
        self._signals: collections.deque[int] = collections.deque()
        self._changes: collections.deque[list[str]] = collections.deque()
        self._wakeup: tuple[int, int] | None = None
        self._previous_handlers: dict[int, Any] = {}
        self._previous_wakeup = -1
        self._unix_paths: list[str] = []
        self._stopping_signal: int | None = None
        # --metrics-bind: the listener, and what the workers that are gone had counted (and their CPU).
        self.probes: ProbeServer | None = None
        self.retired: MetricsSlot | None = None
        self.reaped_cpu = 0.0
        self.started = time.time()
        self._init = os.getpid() == 1  # a container's entry point: orphans are ours to reap
        # gunicorn's server hooks, if a gunicorn config file has any, and the objects they are given.
        self.hooks = hooks_of(config)
        self.hook_server = HookServer(config, lambda: self.policy.target, lambda: self.hook_workers.values())
        self.hook_workers: dict[int, HookWorker] = {}
        self._forked = 0
        self._worker_count: int | None = None

    # -- setup and teardown

    def run(self) -> int:
        config = self.config
        try:
            configure_logging(config)
        except ConfigError as exc:
            error_log.error("%s", exc)
            return EXIT_CONFIG
        supervisor.log_startup_notes()
        if config.preload and config.reload:
            error_log.error("preload: cannot be combined with reload (a reload must import the code anew)")
            return EXIT_CONFIG
        try:
            # Before the sockets listen: a client (or a supervisor's probe) may connect, and a signal
            # follow, from the moment listen() returns; the default SIGTERM action would kill the master
            # without a word (a TERM sent while it starts is handled once it runs its loop).
            self._setup_signals()
            self.hooks.run("on_starting", self.hook_server)
            try:
                adopted = self._setup_sockets()
            except (BindError, ProcessError) as exc:
                error_log.error("%s", exc)
                return EXIT_FAILURE
            set_title(f"tricorn: master [{config.proc_name or self.app_name}]")
            if config.preload and self.app is None:
                code = self._preload()
                if code:
                    return code
            for sock in self.sockets:
                error_log.info(
                    "listening on %s (master pid %d, %d worker(s))",
                    describe(sock, "https" if self.config.tls else "http"),
                    os.getpid(),
                    config.workers,
                )
            if self.probes is not None:
                assert self.selector is not None
                self.retired = MetricsSlot(mount_labels(config))
                self.probes.start(SelectorReactor(self.selector))
            if config.reload:
                self.reloader = Reloader(
                    list(config.reload_dir),
                    config.reload_include,
                    config.reload_exclude,
                    self._on_files_changed,
                )
                self.reloader.start()
            self._count_workers()
            self.hooks.run("when_ready", self.hook_server)
            self._feed(p.Boot(adopted=len(adopted)))
            code = self._loop()
            self.hooks.run("on_exit", self.hook_server)
            return code
        finally:
            self._teardown()

    def _setup_sockets(self) -> list[WorkerHandle]:
        """Bind (or inherit) the sockets, write the pid file, drop privileges; adopt an old master's
        workers. Raises BindError or ProcessError."""
        config = self.config
        identity = resolve_identity(config.user, config.group)
        inherited = os.environ.pop(UPGRADE_ENV, None)
        adopted: list[WorkerHandle] = []
        from_systemd = False
        if inherited:
            state = json.loads(inherited)
            for fd in state["sockets"]:
                sock = socket.socket(fileno=fd)
                sock.set_inheritable(False)
                sock.setblocking(False)
                self.sockets.append(sock)
            for wid, (pid, fd) in enumerate(state["workers"], start=1):
                channel = socket.socket(fileno=fd)
                channel.set_inheritable(False)
                channel.setblocking(False)
                adopted.append(WorkerHandle(wid, pid, channel))
            error_log.info(
                "re-executed: took over %d socket(s) and %d worker(s)", len(self.sockets), len(adopted)
            )
        else:
            offered = "LISTEN_FDS" in os.environ
            self.sockets = open_listeners(config, unix_owner=identity)
            from_systemd = offered and "LISTEN_FDS" not in os.environ
        if inherited or not from_systemd:  # the socket files are ours to remove on exit
            self._unix_paths = [b.path for b in config.binds if b.kind == "unix" and b.path is not None]
        try:
            self.probes = open_probes(
                config, {"/metrics": self._metrics_page, "/livez": self._livez, "/readyz": self._readyz}
            )
            if self.probes is not None and self.probes.unix_path is not None:
                self._unix_paths.append(self.probes.unix_path)
            if config.pid is not None:
                self.pidfile = PidFile(config.pid)
            drop_privileges(identity)
        except (BindError, ProcessError):
            for sock in self.sockets:
                sock.close()
            self.sockets = []
            if self.probes is not None:
                self.probes.close()
                self.probes = None
            raise
        assert self.selector is not None
        for handle in adopted:
            self.handles[handle.wid] = handle
            self.selector.register(handle.channel, selectors.EVENT_READ, handle.wid)
        return adopted

    def _preload(self) -> int:
        try:
            load_apps(self.config)
        except AppLoadError as exc:
            error_log.error("%s", exc, exc_info=exc.__cause__ is not None)
            return EXIT_APP
        # Objects the app created at import are shared with the workers, copy-on-write: keep the
        # collector from touching (and so copying) them.
        gc.collect()
        gc.freeze()
        return 0

    def _setup_signals(self) -> None:
        self.selector = selectors.DefaultSelector()
        read_fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._wakeup = (read_fd, write_fd)
        self.selector.register(read_fd, selectors.EVENT_READ, None)
        self._previous_wakeup = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        for signum in SIGNALS:
            self._previous_handlers[signum] = signal.signal(signum, self._enqueue_signal)
        # A master re-executed by SIGUSR2 starts with these blocked (see _upgrade): what arrived while it
        # started is delivered now.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)

    def _metrics_page(self) -> Page:
        handles = list(self.handles.values())
        processes = metrics.ProcessTotals(
            [os.getpid(), *(h.pid for h in handles)], self.reaped_cpu, start_time=self.started
        )
        supervision = metrics.Supervision(self.policy.restarts, self.policy.heartbeat_misses, len(handles))
        page = metrics.render(
            [h.metrics for h in handles if h.metrics is not None], self.retired, processes, supervision
        )
        return 200, page, metrics.CONTENT_TYPE

    def _livez(self) -> Page:
        late = self.policy.late(time.monotonic())
        if late:
            names = ", ".join(f"{name} silent for {silent:.1f}s" for name, silent in late)
            return probe_page(False, f"not live: {names}")
        return probe_page(True, f"live: the master and {len(self.policy.workers)} worker(s) beating")

    def _readyz(self) -> Page:
        ready, why = self.policy.readiness()
        return probe_page(ready, ("ready: " if ready else "not ready: ") + why)

    def _teardown(self) -> None:
        if self.probes is not None:
            self.probes.close()
            self.probes = None
        if self.reloader is not None:
            self.reloader.stop()
        if self._previous_handlers:
            for signum, handler in self._previous_handlers.items():
                signal.signal(signum, handler)
            signal.set_wakeup_fd(self._previous_wakeup)
        self._close_event_fds()
        for sock in self.sockets:
            sock.close()
        for path in self._unix_paths:
            with contextlib.suppress(OSError):
                os.unlink(path)
        if self.pidfile is not None:
            self.pidfile.remove()

    # -- the loop

    def _enqueue_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals.append(signum)

    def _on_files_changed(self, paths: list[str]) -> None:
        # Called from the reloader's thread: queue, and wake the loop.
        self._changes.append(paths)
        if self._wakeup is not None:
            with contextlib.suppress(OSError):
                os.write(self._wakeup[1], b"\0")

    def _loop(self) -> int:
        assert self.selector is not None and self._wakeup is not None
        while self.exit_code is None:
            now = time.monotonic()
            deadline = self.policy.next_deadline(now)
            timeout = MAX_SLEEP if deadline is None else min(MAX_SLEEP, max(0.0, deadline - now))
            if self._signals or self._changes:
                timeout = 0
            for key, _ in self.selector.select(timeout):
                if key.data is None:
                    with contextlib.suppress(OSError):
                        while os.read(self._wakeup[0], 4096):
                            pass
                elif callable(key.data):  # the metrics listener and its connections
                    key.data()
                else:
                    self._read_channel(key.data)
            if self.probes is not None:
                self.probes.sweep(time.monotonic())
            # Exits, then signals, then the Tick: a worker that exited on a TERM sent to the whole process
            # group is reaped after the master's own TERM was delivered (the kernel signals the group at
            # once), so its handler has queued it by now, and the policy, which replaces such a worker only
            # on the Tick, sees the stop first (see the policy's docstring).
            self._reap()
            while self._signals and self.exit_code is None:
                self._on_signal(self._signals.popleft())
            if self._changes and self.exit_code is None:
                paths = [path for batch in self._changes for path in batch]
                self._changes.clear()
                self._on_change(paths)
            if self.exit_code is None:
                self._feed(p.Tick())
        error_log.info("master stopped")
        return self.exit_code

    def _feed(self, event: p.Event) -> None:
        for action in self.policy.on_event(event, time.monotonic()):
            self._do(action)
        self._count_workers()

    def _count_workers(self) -> None:
        # gunicorn's nworkers_changed: at the start (from None), then on every change of the target.
        if self.policy.target != self._worker_count:
            old, self._worker_count = self._worker_count, self.policy.target
            self.hooks.run("nworkers_changed", self.hook_server, self.policy.target, old)

    def _read_channel(self, wid: int) -> None:
        handle = self.handles.get(wid)
        if handle is None:
            return
        data = b""
        while True:
            try:
                chunk = handle.channel.recv(4096)
            except BlockingIOError:
                break
            except OSError:
                chunk = b""
            if not chunk:
                # End of file: the worker is exiting; its exit status comes through waitpid.
                self._close_channel(handle)
                break
            data += chunk
        if READY in data:
            self._feed(p.WorkerReady(wid))
        if BEAT in data:
            self._feed(p.WorkerBeat(wid))
        if RETIRING in data:
            self._feed(p.WorkerRetiring(wid))
        if STUCK in data:
            self._feed(p.WorkerRetiring(wid, "has every wsgi thread stuck on one request", "wsgi_stuck"))

    def _close_channel(self, handle: WorkerHandle) -> None:
        if handle.open and self.selector is not None:
            handle.open = False
            self.selector.unregister(handle.channel)

    def _reap(self) -> None:
        if self._init:
            self._reap_as_init()
            return
        for handle in list(self.handles.values()):
            try:
                pid, status, usage = os.wait4(handle.pid, os.WNOHANG)
            except ChildProcessError:
                self._worker_gone(handle, None, 0.0)
                continue
            if pid != 0:
                self._worker_gone(handle, os.waitstatus_to_exitcode(status), usage.ru_utime + usage.ru_stime)

    def _reap_as_init(self) -> None:
        """As PID 1 (a container's entry point), every process orphaned in the container becomes our
        child: an app's subprocess whose worker died, say. Reap them all, or they stay zombies; the master
        runs no app code that waits for children of its own, so waiting for any child steals nothing."""
        workers = {handle.pid: handle for handle in self.handles.values()}
        while True:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:  # no child at all: a worker still listed was waited for elsewhere
                for handle in workers.values():
                    self._worker_gone(handle, None, 0.0)
                break
            if pid == 0:
                break
            if pid in workers:
                cpu = usage.ru_utime + usage.ru_stime
                self._worker_gone(workers.pop(pid), os.waitstatus_to_exitcode(status), cpu)
            else:
                error_log.debug("reaped process %d, orphaned in the container", pid)

    def _worker_gone(self, handle: WorkerHandle, code: int | None, cpu: float) -> None:
        self.reaped_cpu += cpu
        self._close_channel(handle)
        handle.channel.close()
        if handle.metrics is not None:
            # Its counters are kept, so the totals never go backwards; its gauges go with it.
            if self.retired is not None:
                self.retired.add(handle.metrics)
            handle.metrics.close()
        del self.handles[handle.wid]
        hook_worker = self.hook_workers.pop(handle.wid, None)
        if hook_worker is not None:
            hook_worker.alive = False
            self.hooks.run("child_exit", self.hook_server, hook_worker)
        if code is not None and code < 0:
            self._feed(p.WorkerExited(handle.wid, signal=-code))
        else:
            self._feed(p.WorkerExited(handle.wid, code=code))

    def _on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if signum == signal.SIGCHLD:
            return  # reaped at every turn of the loop
        if signum in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
            fast = signum == signal.SIGQUIT or self._stopping_signal is not None
            if signum != signal.SIGQUIT:
                if self._stopping_signal is None:
                    error_log.info("received %s, shutting down gracefully", name)
                else:
                    error_log.warning("received %s again, stopping now", name)
                self._stopping_signal = signum
            else:
                error_log.warning("received SIGQUIT, stopping now")
            self._feed(p.StopRequested(fast=fast))
        elif signum == signal.SIGHUP:
            error_log.info("received SIGHUP, reloading")
            self.hooks.run("on_reload", self.hook_server)
            config = self._reread_config()
            if config is not None:
                self._feed(p.ReloadRequested(config.workers, "reload (SIGHUP)"))
        elif signum in (signal.SIGTTIN, signal.SIGTTOU):
            error_log.info("received %s", name)
            self._feed(p.ScaleRequested(1 if signum == signal.SIGTTIN else -1))
        elif signum == signal.SIGUSR1:
            self._feed(p.ReopenLogsRequested())
        elif signum == signal.SIGUSR2:
            error_log.info("received SIGUSR2, upgrading the master")
            self._feed(p.UpgradeRequested())

    def _on_change(self, paths: list[str]) -> None:
        shown = ", ".join(os.path.relpath(path) for path in paths[:3])
        more = f" and {len(paths) - 3} more" if len(paths) > 3 else ""
        self._feed(p.ReloadRequested(self.config.workers, f"changed: {shown}{more}"))

    def _reread_config(self) -> Config | None:
        """The settings re-read from the command line, environment and files, and the TLS certificate
        files read again; None (and an error logged) if they are invalid. Settings that need a restart keep
        their values."""
        new = self.config
        try:
            if self.argv is not None:
                new = Config.load(self.argv)
                configure_logging(new)
                self.hooks = hooks_of(new)
        except ConfigError as exc:
            error_log.error("cannot re-read the settings (%s): not reloading", exc)
            return None
        changed = [name for name in RESTART_SETTINGS if getattr(new, name) != getattr(self.config, name)]
        if changed:
            error_log.warning(
                "changed settings that apply only after a restart (or SIGUSR2): %s", ", ".join(changed)
            )
            new = new.replace(**{name: getattr(self.config, name) for name in changed})
        try:
            # The certificate files as they are now (a renewal), read here in the master: the workers it
            # forks serve this context (they may have dropped the privileges the key file needs), and a
            # broken renewal keeps the old workers serving instead of failing every new one.
            tls.prepare(new)
        except ConfigError as exc:
            error_log.error("cannot read the TLS files again (%s): not reloading", exc)
            return None
        self.config = new
        if self.retired is not None:  # room for the counters of mounts the reload added
            self.retired = self.retired.widened(mount_labels(new))
        self.policy.set_timeouts(
            new.timeout_worker, new.timeout_graceful_shutdown, late_after(new.timeout_worker)
        )
        return new

    # -- actions

    def _do(self, action: p.Action) -> None:
        kind = type(action)
        if kind is p.Log:
            assert isinstance(action, p.Log)
            error_log.log(action.level, "%s", action.message)
        elif kind is p.Spawn:
            assert isinstance(action, p.Spawn)
            self._spawn(action.wid)
        elif kind is p.Drain:
            assert isinstance(action, p.Drain)
            self._drain(action.wid)
        elif kind in _SIGNAL_ACTIONS:
            self._kill(action.wid, _SIGNAL_ACTIONS[kind])  # type: ignore[union-attr]  # all have a wid
        elif kind is p.ReopenLogs:
            assert isinstance(action, p.ReopenLogs)
            count = reopen_log_files()
            error_log.info("received SIGUSR1: reopened %d log file(s); telling the workers", count)
            for wid in action.wids:
                self._kill(wid, signal.SIGUSR1)
        elif kind is p.CloseListeners:
            for sock in self.sockets:
                sock.close()
            self.sockets = []
        elif kind is p.Upgrade:
            self._upgrade()
        elif kind is p.Exit:
            assert isinstance(action, p.Exit)
            self.exit_code = action.code

    def _kill(self, wid: int, signum: int) -> None:
        handle = self.handles.get(wid)
        if handle is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(handle.pid, signum)

    def _drain(self, wid: int) -> None:
        handle = self.handles.get(wid)
        if handle is None:
            return
        try:
            handle.channel.send(DRAIN)
        except OSError:
            self._kill(wid, signal.SIGTERM)  # a graceful stop, without the lame-duck courtesy

    def _spawn(self, wid: int) -> None:
        slot = new_slot(self.config) if self.retired is not None else None
        self._forked += 1
        hook_worker = HookWorker(self.config, self._forked)
        self.hooks.run("pre_fork", self.hook_server, hook_worker)
        master_end, worker_end = channel_pair()
        _flush_output()
        # The signals wait while we fork, until the child has the default handlers: one that reached it
        # (a TERM sent to the process group) with the master's handler would only be queued in its copy of
        # the master's state, and the worker would boot and serve on as if it had not been told to stop.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        try:
            pid = os.fork()
        except OSError as exc:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            master_end.close()
            worker_end.close()
            if slot is not None:
                slot.close()
            error_log.error("cannot fork a worker: %s", exc.strerror or exc)
            self._feed(p.WorkerExited(wid, code=EXIT_FAILURE))
            return
        if pid == 0:  # the worker
            code = EXIT_FAILURE
            try:
                master_end.close()
                hook_worker.pid, hook_worker.ppid = os.getpid(), os.getppid()
                code = self._worker_main(worker_end, mask, slot, hook_worker)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else EXIT_FAILURE
            except BaseException:
                traceback.print_exc()
            finally:
                hook_worker.alive = False
                self.hooks.run("worker_exit", self.hook_server, hook_worker)
                _flush_output()
                os._exit(code)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        worker_end.close()
        handle = WorkerHandle(wid, pid, master_end, metrics=slot)
        self.handles[wid] = handle
        hook_worker.pid = pid
        self.hook_workers[wid] = hook_worker
        assert self.selector is not None
        self.selector.register(master_end, selectors.EVENT_READ, wid)
        self._feed(p.WorkerForked(wid, pid))

    def _close_event_fds(self) -> None:
        """Close what the master's event loop reads: the workers' channels, the selector, the wakeup pipe
        (at the master's exit, and in a forked worker, which must not hold them)."""
        for handle in self.handles.values():
            handle.channel.close()
        if self.selector is not None:
            self.selector.close()
        if self._wakeup is not None:
            for fd in self._wakeup:
                os.close(fd)

    def _worker_main(
        self,
        channel: socket.socket,
        mask: set[int | signal.Signals],
        slot: MetricsSlot | None,
        hook_worker: HookWorker,
    ) -> int:
        """In the forked child: shed the master's state, then serve (tricorn.serving.run) as a worker.
        ``mask`` is the signal mask to restore once the master's handlers are gone; ``slot`` is where it
        counts for the master's metrics; ``hook_worker`` is what gunicorn's hooks are given of it."""
        from tricorn.supervisor.worker import Worker, hold_signals

        signal.set_wakeup_fd(-1)
        for signum in SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the master too; it decides
        # HUP, TTIN, TTOU and USR2 sent to every process (a terminal's hangup, kill -HUP -PGID, systemctl
        # kill, whose default is the whole unit) are the master's to act on: with their default actions HUP
        # and USR2 would kill every worker at once, to be replaced as crashes, and TTIN and TTOU stop them
        # where they are until the heartbeat's deadline. (An app may still take USR2 for itself.)
        for signum in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR2):
            signal.signal(signum, signal.SIG_IGN)
        # The worker's own signals wait for its handlers (hold_signals); another that came since the fork
        # is delivered now, with its default action.
        hold_signals()
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        if self.probes is not None:
            self.probes.drop()
        for handle in self.handles.values():  # the other workers' counters are not this one's business
            if handle.metrics is not None:
                handle.metrics.close()
        if self.retired is not None:
            self.retired.close()
        self._close_event_fds()
        self.hooks.run("post_fork", self.hook_server, hook_worker)
        set_title(f"tricorn: worker [{self.config.proc_name or self.app_name}]")
        # SIGABRT from the master (a worker that stopped beating) dumps every thread's stack to stderr.
        faulthandler.enable(all_threads=True)
        from tricorn.serving import run

        worker = Worker(self.config, self.sockets, channel, slot, self.hooks, hook_worker, self.hook_server)
        return run(self.config, worker, self.app)

    def _upgrade(self) -> None:
        """SIGUSR2: check the new code, then re-execute this process with it, handing over the sockets
        and the workers (they keep serving until the new master's workers are ready)."""
        if self.argv is None:
            error_log.error("SIGUSR2: only a master started by the tricorn command can re-execute itself")
            return
        try:
            check = subprocess.run(
                [sys.executable, "-c", PREFLIGHT, *self.argv],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            error_log.error("SIGUSR2: cannot check the new code (%s); not upgrading", exc)
            return
        if check.returncode != 0:
            last = (check.stderr.strip().splitlines() or ["no output"])[-1]
            error_log.error("SIGUSR2: the new code does not start (%s); not upgrading", last)
            return
        if any(signum in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT) for signum in self._signals):
            error_log.warning("SIGUSR2: a stop was requested meanwhile; not upgrading")
            return
        handles = sorted(self.handles.values(), key=lambda h: h.wid)
        inheritable = [s.fileno() for s in self.sockets] + [h.channel.fileno() for h in handles]
        state = {
            "sockets": [s.fileno() for s in self.sockets],
            "workers": [[h.pid, h.channel.fileno()] for h in handles],
        }
        for fd in inheritable:
            os.set_inheritable(fd, True)
        env = dict(os.environ)
        env[UPGRADE_ENV] = json.dumps(state)
        argv = [sys.executable, "-m", "tricorn", *self.argv]
        error_log.info("re-executing the master (pid %d) with %d worker(s)", os.getpid(), len(handles))
        self.hooks.run("pre_exec", self.hook_server)
        _flush_output()
        # The signal mask survives exec: a signal sent while the new interpreter starts stays pending
        # until it can handle it, instead of meeting the default action (SIGTERM would kill it and
        # orphan the workers). Signals queued here but not handled yet are re-sent for it.
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        for signum in set(self._signals) - {signal.SIGCHLD}:
            os.kill(os.getpid(), signum)
        self._signals.clear()
        try:
            os.execve(sys.executable, argv, env)
        except OSError as exc:
            error_log.error("SIGUSR2: cannot re-execute %s: %s", sys.executable, exc.strerror or exc)
            for fd in inheritable:
                os.set_inheritable(fd, False)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)


_SIGNAL_ACTIONS: dict[type, int] = {
    p.Terminate: signal.SIGTERM,
    p.Quit: signal.SIGQUIT,
    p.Abort: signal.SIGABRT,
    p.Kill: signal.SIGKILL,
}


def _flush_output() -> None:
    # Buffered output would otherwise be written twice, by the master and by the child.
    for handler in logging.getLogger("tricorn").handlers + logging.getLogger("tricorn.access").handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
