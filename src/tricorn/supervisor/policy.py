"""The pre-fork master's decisions, as a pure state machine: events in, actions out.

Theory of operation
-------------------
:class:`Policy` knows the workers only by the ids it gives them (``wid``) and their pids, for messages.
The arbiter (:mod:`tricorn.supervisor.arbiter`) turns what happens to the processes (a signal, a
heartbeat, a child's exit, time passing) into events, calls :meth:`Policy.on_event` with the time, and
carries out the actions it returns, in order: fork, send a signal, write to a worker's channel, log, exit.
Nothing here reads a clock, forks or signals, so every decision is tested with plain calls.

Workers belong to a *generation*. The master keeps ``target`` workers of the current generation booting
or ready. A reload (SIGHUP, a changed file, an upgraded master) starts a new generation: its workers are
spawned next to the old ones, and only when all of them are ready are the old ones drained (they stop
accepting, finish what they serve and exit), so no request meets a closed door. If a new worker fails to
boot, the reload is abandoned and the old generation goes on serving. A worker that reached its
max-requests is replaced the same way: its successor is ready before it is drained.

Worker states::

    BOOTING --ready--> READY --drain--> DRAINING --exit--> (gone)
       |                 |--stop (TERM)--> STOPPING --exit-->
       |                 |--quit (QUIT)--> QUITTING --exit-->
       +--silent too long, or any of the above past its deadline--> ABORTED (SIGABRT) --> KILLED (SIGKILL)

A worker that exits before it is ready with a boot-failure status (the app cannot be imported, its
lifespan startup failed, a bad setting) stops the master with that status: every new worker would fail
the same way, so respawning would only hide the error. Other early deaths are retried, with a backoff
once they come in a row, and stop the master after ``MAX_BOOT_CRASHES``.

A worker that stops as if it had been told to (exit status 0, or killed by SIGTERM, SIGINT or SIGQUIT)
without the master asking is judged on the next Tick, not at once. A stop sent to the whole process group
(``docker stop`` on a shell entry point, systemd's default KillMode, Ctrl-C) reaches the master and its
workers together, and a worker may exit before the master has read its own signal: the arbiter feeds the
exits and signals of one turn of its loop before that turn's Tick, so by the Tick the policy knows whether
the master is stopping. If it is, the worker stopped with it; if not, it is a crash (a ``kill -TERM`` of one
worker), replaced then. Once the master is stopping, no worker exit makes it fork another.
"""

from __future__ import annotations

import logging
import signal
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType

__all__ = [
    "Abort",
    "Action",
    "Boot",
    "CloseListeners",
    "Drain",
    "Event",
    "Exit",
    "Kill",
    "Log",
    "Phase",
    "Policy",
    "Quit",
    "ReloadRequested",
    "ReopenLogs",
    "ReopenLogsRequested",
    "ScaleRequested",
    "Spawn",
    "StopRequested",
    "Terminate",
    "Tick",
    "Upgrade",
    "UpgradeRequested",
    "WorkerBeat",
    "WorkerExited",
    "WorkerForked",
    "WorkerReady",
    "WorkerRetiring",
    "WorkerState",
]

# -- Named limits, each with its precedent ---------------------------------------------------------------

# Exit statuses of a worker that mean "a new worker would fail the same way": tricorn.serving.EXIT_CONFIG (a
# bad setting) and EXIT_APP (import or lifespan startup failed). gunicorn: WORKER_BOOT_ERROR, APP_LOAD_ERROR.
BOOT_FAILURE_CODES = (2, 3)
_BOOT_FAILURES = {2: "a setting is not usable", 3: "the application could not be loaded or started"}
EXIT_BOOT_FAILED = 3
# Early deaths in a row (before ready, any other cause) after which the master gives up. gunicorn gives
# up at the first boot error; a crash (a segfault in a C extension while importing) may be transient.
MAX_BOOT_CRASHES = 5
# A worker must be ready within max(timeout_worker, this) of its fork: importing a large app and its
# lifespan startup may take longer than a heartbeat interval (gunicorn applies `timeout` to boots too).
BOOT_TIMEOUT_FLOOR = 30.0
# After SIGTERM or a drain, a worker has timeout_graceful_shutdown to finish its requests, and this
# margin for its lifespan shutdown, before SIGKILL.
STOP_MARGIN = 5.0
# After SIGQUIT (fast stop), the time a worker has before SIGKILL. uvicorn's supervisor: 5 s.
QUIT_GRACE = 5.0
# The signals with which a worker is stopped (a worker answers TERM and QUIT by exiting 0; a booting one,
# before its handlers are installed, dies by them): an exit by one of these, unasked, is a stop sent from
# outside, maybe to the whole process group, and its replacement waits for the next Tick.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
# After SIGABRT (faulthandler dumps the stacks and the worker dies), the time before SIGKILL.
ABORT_GRACE = 2.0
# Crash backoff: the first CRASHES_FREE crashes within CRASH_WINDOW are replaced at once (a SIGKILL or
# an OOM kill is replaced within a second); later ones wait BACKOFF_BASE, doubling up to BACKOFF_MAX.
CRASH_WINDOW = 10.0
CRASHES_FREE = 3
BACKOFF_BASE = 0.5
BACKOFF_MAX = 10.0


class WorkerState(Enum):
    BOOTING = 0
    READY = 1
    DRAINING = 2  # retiring (reload, max-requests, fewer workers): others keep serving
    STOPPING = 3  # SIGTERM: the master is stopping
    QUITTING = 4  # SIGQUIT: the master is stopping fast
    ABORTED = 5  # SIGABRT sent: its stack is being dumped
    KILLED = 6  # SIGKILL sent


class Phase(Enum):
    RUNNING = 0
    STOPPING = 1
    QUITTING = 2
    DONE = 3


# -- Events (what happened) --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Boot:
    """The master started. ``adopted`` workers are already running (handed over by the master this one
    re-executed): they get ids 1 to ``adopted``, in order, and are replaced like a reload."""

    adopted: int = 0


@dataclass(frozen=True, slots=True)
class WorkerForked:
    wid: int
    pid: int


@dataclass(frozen=True, slots=True)
class WorkerReady:
    """The worker's app is loaded, its lifespan started and it accepts connections."""

    wid: int


@dataclass(frozen=True, slots=True)
class WorkerBeat:
    wid: int


@dataclass(frozen=True, slots=True)
class WorkerRetiring:
    """The worker asks to be replaced (it keeps serving until drained): it served its max-requests, or
    every thread of its WSGI pool is stuck; ``reason`` says which, for the log, ``cause`` for the
    restarts' metric."""

    wid: int
    reason: str = "served its max requests"
    cause: str = "max_requests"


@dataclass(frozen=True, slots=True)
class WorkerExited:
    """The worker process is gone: it exited with ``code``, or a signal ``signal`` killed it."""

    wid: int
    code: int | None = None
    signal: int | None = None


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed (deadlines are checked on every event; this one carries nothing else)."""


@dataclass(frozen=True, slots=True)
class StopRequested:
    """SIGTERM or SIGINT (graceful), SIGQUIT (``fast``). A second graceful request becomes a fast one."""

    fast: bool = False


@dataclass(frozen=True, slots=True)
class ReloadRequested:
    """Start a new generation of ``workers`` workers (SIGHUP with the re-read configuration, a changed
    source file)."""

    workers: int
    reason: str = "reload"


@dataclass(frozen=True, slots=True)
class ScaleRequested:
    """SIGTTIN (+1) or SIGTTOU (-1)."""

    delta: int


@dataclass(frozen=True, slots=True)
class ReopenLogsRequested:
    """SIGUSR1."""


@dataclass(frozen=True, slots=True)
class UpgradeRequested:
    """SIGUSR2: re-execute the master (with the listening sockets and the workers)."""


Event = (
    Boot
    | WorkerForked
    | WorkerReady
    | WorkerBeat
    | WorkerRetiring
    | WorkerExited
    | Tick
    | StopRequested
    | ReloadRequested
    | ScaleRequested
    | ReopenLogsRequested
    | UpgradeRequested
)

# -- Actions (what to do) ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Spawn:
    """Fork a worker of ``generation``; report it with WorkerForked (or WorkerExited if fork fails)."""

    wid: int
    generation: int


@dataclass(frozen=True, slots=True)
class Drain:
    """Ask the worker to retire: stop accepting, finish its requests, close keep-alive connections after
    their next response (others keep serving)."""

    wid: int


@dataclass(frozen=True, slots=True)
class Terminate:
    """SIGTERM: graceful stop."""

    wid: int


@dataclass(frozen=True, slots=True)
class Quit:
    """SIGQUIT: fast stop."""

    wid: int


@dataclass(frozen=True, slots=True)
class Abort:
    """SIGABRT: the worker's faulthandler dumps every thread's stack to stderr, and it dies."""

    wid: int


@dataclass(frozen=True, slots=True)
class Kill:
    """SIGKILL."""

    wid: int


@dataclass(frozen=True, slots=True)
class ReopenLogs:
    """Reopen the master's log files and send SIGUSR1 to these workers."""

    wids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class CloseListeners:
    """Close the master's copies of the listening sockets (nothing will accept on them again)."""


@dataclass(frozen=True, slots=True)
class Upgrade:
    """Re-execute the master, handing over the listening sockets and the workers."""


@dataclass(frozen=True, slots=True)
class Log:
    level: int
    message: str


@dataclass(frozen=True, slots=True)
class Exit:
    code: int


Action = Spawn | Drain | Terminate | Quit | Abort | Kill | ReopenLogs | CloseListeners | Upgrade | Log | Exit

_LIVE = (WorkerState.BOOTING, WorkerState.READY)
# The states in which a worker's heartbeat is checked (a quitting one has a short deadline anyway).
_BEATING = (WorkerState.READY, WorkerState.DRAINING, WorkerState.STOPPING)


@dataclass(slots=True)
class WorkerRecord:
    """The policy's view of one worker."""

    wid: int
    generation: int
    state: WorkerState
    spawned_at: float
    last_beat: float
    pid: int | None = None
    ready_at: float | None = None
    deadline: float | None = None  # when the current state escalates (SIGKILL)
    retiring: bool = False  # reached max-requests: replaced, then drained
    late: bool = False  # its heartbeat is late (counted once as a miss until it beats again)

    @property
    def name(self) -> str:
        return f"worker {self.pid}" if self.pid is not None else f"worker #{self.wid}"


class Policy:
    """Decides what the master does. :meth:`on_event` returns the actions for one event at time ``now``
    (a monotonic clock, in seconds); :meth:`next_deadline` says when the next Tick has work to do.

    ``workers`` is the initial target; ``timeout_worker`` (0 disables) the heartbeat timeout;
    ``timeout_graceful_shutdown`` what a stopping worker is allowed; ``dev_reload`` (``--reload``) makes a
    boot failure wait for the next change instead of stopping the master. A worker silent for more than
    ``late_after`` seconds (0: never) is *late*: counted once in ``heartbeat_misses``, logged, and shown by
    :meth:`late` (the ``/livez`` probe), long before ``timeout_worker`` has it killed.

    ``restarts`` counts the workers replaced, by cause (:mod:`tricorn.supervisor.metrics` names them).
    """

    def __init__(
        self,
        workers: int,
        timeout_worker: float,
        timeout_graceful_shutdown: float,
        dev_reload: bool = False,
        late_after: float = 0.0,
    ) -> None:
        self.target = max(1, workers)
        self.late_after = late_after
        self.restarts: Counter[str] = Counter()
        self.heartbeat_misses = 0
        self.timeout_worker = timeout_worker
        self.timeout_graceful_shutdown = timeout_graceful_shutdown
        self.dev_reload = dev_reload
        self.boot_timeout = max(timeout_worker, BOOT_TIMEOUT_FLOOR) if timeout_worker > 0 else None
        self.phase = Phase.RUNNING
        self.generation = 1
        self.reload_from: int | None = None  # the generation serving while a reload is in progress
        self.waiting_for_change = False  # --reload after a boot failure: spawn nothing until a change
        self.upgrade_pending = False
        self.exit_code = 0
        self.spawn_not_before = 0.0
        self._workers: dict[int, WorkerRecord] = {}
        self._next_wid = 1
        self._next_generation = 2
        self._boot_crashes = 0
        self._crashes: deque[float] = deque()
        self._listeners_closed = False
        # Workers stopped from outside, and how: judged on the next Tick (see the module docstring).
        self._held: list[tuple[WorkerRecord, str]] = []

    @property
    def workers(self) -> Mapping[int, WorkerRecord]:
        """The workers alive (not yet reported exited), by id."""
        return MappingProxyType(self._workers)

    @property
    def reloading(self) -> bool:
        return self.reload_from is not None

    def set_timeouts(
        self, timeout_worker: float, timeout_graceful_shutdown: float, late_after: float | None = None
    ) -> None:
        """New timeouts (re-read settings on SIGHUP); they apply to deadlines set from now on."""
        if late_after is not None:
            self.late_after = late_after
        self.timeout_worker = timeout_worker
        self.timeout_graceful_shutdown = timeout_graceful_shutdown
        self.boot_timeout = max(timeout_worker, BOOT_TIMEOUT_FLOOR) if timeout_worker > 0 else None

    def late(self, now: float) -> list[tuple[str, float]]:
        """The serving workers whose heartbeat is late, as (name, seconds since their last beat)."""
        if self.late_after <= 0:
            return []
        return [
            (w.name, now - w.last_beat)
            for w in self._workers.values()
            if w.state in _BEATING and now - w.last_beat > self.late_after
        ]

    def readiness(self) -> tuple[bool, str]:
        """Whether the server should be sent traffic (the ``/readyz`` probe), and why not: it is not when
        stopping, during a reload until the previous workers are gone, or with no worker ready."""
        if self.phase is not Phase.RUNNING:
            return False, "shutting down"
        if self.reload_from is not None or any(
            w.generation != self.generation and w.state is not WorkerState.BOOTING
            for w in self._workers.values()
        ):
            return False, "reloading: the previous workers are being replaced"
        ready = sum(
            1
            for w in self._workers.values()
            if w.state is WorkerState.READY and w.generation == self.generation
        )
        if not ready:
            return False, "no worker is ready yet"
        return True, f"{ready} worker(s) ready"

    # -- the entry point

    def on_event(self, event: Event, now: float) -> list[Action]:
        out: list[Action] = []
        if self.phase is Phase.DONE:
            return out
        handler = getattr(self, f"_on_{type(event).__name__}")
        handler(event, now, out)
        self._check_deadlines(now, out)
        if self.phase is Phase.RUNNING:
            if type(event) is Tick and self._held:
                self._release_held(now, out)
            self._manage(now, out)
        elif not self._workers:
            self.phase = Phase.DONE
            out.append(Exit(self.exit_code))
        return out

    def next_deadline(self, now: float) -> float | None:
        """The earliest time at which a Tick would do something, or None if only an event can."""
        times = []
        for w in self._workers.values():
            if w.deadline is not None:
                times.append(w.deadline)
            if w.state is WorkerState.BOOTING and self.boot_timeout is not None:
                times.append(w.spawned_at + self.boot_timeout)
            elif w.state in _BEATING and self.timeout_worker > 0:
                times.append(w.last_beat + self.timeout_worker)
            if w.state in _BEATING and self.late_after > 0 and not w.late:
                times.append(w.last_beat + self.late_after)
        if self.phase is Phase.RUNNING and self._deficit() > 0:
            if self._held:
                times.append(now)
            elif self.spawn_not_before > now:
                times.append(self.spawn_not_before)
        return min(times) if times else None

    # -- events

    def _on_Boot(self, event: Boot, now: float, out: list[Action]) -> None:
        for wid in range(1, event.adopted + 1):
            self._workers[wid] = WorkerRecord(
                wid, 0, WorkerState.READY, spawned_at=now, last_beat=now, ready_at=now
            )
        self._next_wid = event.adopted + 1
        if event.adopted:
            self.reload_from = 0
            out.append(
                Log(
                    logging.INFO,
                    f"took over {event.adopted} worker(s) from the previous master; replacing them",
                )
            )

    def _on_WorkerForked(self, event: WorkerForked, now: float, out: list[Action]) -> None:
        w = self._workers.get(event.wid)
        if w is not None:
            w.pid = event.pid
            out.append(Log(logging.INFO, f"booting worker {event.pid}"))

    def _on_WorkerReady(self, event: WorkerReady, now: float, out: list[Action]) -> None:
        w = self._workers.get(event.wid)
        if w is None or w.ready_at is not None:
            return
        w.ready_at = w.last_beat = now
        self._boot_crashes = 0
        if w.state is WorkerState.BOOTING:
            w.state = WorkerState.READY
            out.append(Log(logging.DEBUG, f"{w.name} ready"))

    def _on_WorkerBeat(self, event: WorkerBeat, now: float, out: list[Action]) -> None:
        w = self._workers.get(event.wid)
        if w is not None:
            w.last_beat = now
            if w.late:
                w.late = False
                out.append(Log(logging.INFO, f"{w.name} is beating again"))

    def _on_WorkerRetiring(self, event: WorkerRetiring, now: float, out: list[Action]) -> None:
        w = self._workers.get(event.wid)
        if w is None or w.retiring or w.state is not WorkerState.READY or self.phase is not Phase.RUNNING:
            return
        w.retiring = True
        self.restarts[event.cause] += 1
        out.append(Log(logging.INFO, f"{w.name} {event.reason}; starting its replacement"))

    def _on_WorkerExited(self, event: WorkerExited, now: float, out: list[Action]) -> None:
        w = self._workers.pop(event.wid, None)
        if w is None:
            return
        how = _describe_exit(event)
        if self.phase is Phase.RUNNING and w.state in _LIVE and _stopped_from_outside(event):
            self._held.append((w, how))
        elif w.state is WorkerState.BOOTING:
            if event.code in BOOT_FAILURE_CODES:
                meaning = _BOOT_FAILURES[event.code]
                reason = f"{w.name} failed to boot ({how}: {meaning}; its error is above)"
                self._boot_failed(w, reason, event.code, now, out)
            else:
                self._boot_crashed(w, f"{w.name} {how} before it was ready", now, out)
        elif w.state is WorkerState.READY and (w.generation != self.generation or w.retiring):
            out.append(Log(logging.WARNING, f"{w.name} {how} unexpectedly (it was being replaced)"))
        elif w.state is WorkerState.READY:
            out.append(Log(logging.WARNING, f"{w.name} {how} unexpectedly; replacing it"))
            self._crashed(now, out)
        elif w.state in (WorkerState.ABORTED, WorkerState.KILLED) and w.ready_at is None:
            self._boot_crashed(w, f"{w.name} {how} before it was ready", now, out, cause="boot_timeout")
        elif w.state in (WorkerState.ABORTED, WorkerState.KILLED):
            out.append(Log(logging.WARNING, f"{w.name} {how}"))
        else:
            out.append(Log(logging.INFO, f"{w.name} {how}"))

    def _on_Tick(self, event: Tick, now: float, out: list[Action]) -> None:
        pass

    def _on_StopRequested(self, event: StopRequested, now: float, out: list[Action]) -> None:
        if self.phase is Phase.RUNNING and not event.fast:
            out.append(Log(logging.INFO, f"stopping {len(self._workers)} worker(s) gracefully"))
            self._stop(now, out, fast=False)
        elif self.phase in (Phase.RUNNING, Phase.STOPPING):
            out.append(Log(logging.WARNING, f"stopping {len(self._workers)} worker(s) now"))
            self._stop(now, out, fast=True)

    def _on_ReloadRequested(self, event: ReloadRequested, now: float, out: list[Action]) -> None:
        if self.phase is not Phase.RUNNING:
            return
        self.waiting_for_change = False
        self.upgrade_pending = False
        serving = [w for w in self._workers.values() if w.state in _LIVE]
        if self.reload_from is None and serving:
            self.reload_from = self.generation
        elif not serving:
            self.reload_from = None
        self.generation = self._next_generation
        self._next_generation += 1
        self.target = max(1, event.workers)
        self.spawn_not_before = 0.0
        self._crashes.clear()
        out.append(Log(logging.INFO, f"{event.reason}: starting {self.target} new worker(s)"))

    def _on_ScaleRequested(self, event: ScaleRequested, now: float, out: list[Action]) -> None:
        if self.phase is not Phase.RUNNING:
            return
        target = max(1, self.target + event.delta)
        if target == self.target:
            out.append(Log(logging.INFO, f"already at {target} worker; not removing the last one"))
            return
        self.target = target
        out.append(Log(logging.INFO, f"number of workers: {target}"))

    def _on_ReopenLogsRequested(self, event: ReopenLogsRequested, now: float, out: list[Action]) -> None:
        out.append(ReopenLogs(tuple(self._workers)))

    def _on_UpgradeRequested(self, event: UpgradeRequested, now: float, out: list[Action]) -> None:
        if self.phase is not Phase.RUNNING:
            return
        self.upgrade_pending = True
        if self._busy():
            out.append(Log(logging.INFO, "upgrade requested: waiting for the workers being started"))

    # -- decisions

    def _manage(self, now: float, out: list[Action]) -> None:
        """Keep ``target`` current workers; finish reloads and max-requests replacements; upgrade."""
        current = self._current()
        excess = len(current) - self.target
        if excess > 0:
            booting = sorted((w for w in current if w.state is WorkerState.BOOTING), key=lambda w: -w.wid)
            oldest = sorted((w for w in current if w.state is WorkerState.READY), key=lambda w: w.wid)
            for w in (booting + oldest)[:excess]:
                self._retire(w, now, out)
        elif excess < 0 and not self.waiting_for_change and not self._held and now >= self.spawn_not_before:
            for _ in range(-excess):
                self._spawn(now, out)
        current = self._current()
        ready = sum(1 for w in current if w.state is WorkerState.READY)
        if ready >= self.target:
            if self.reload_from is not None:
                old = [
                    w for w in self._workers.values() if w.generation != self.generation and w.state in _LIVE
                ]
                self.reload_from = None
                self.restarts["reload"] += len(old)
                out.append(Log(logging.INFO, f"{ready} new worker(s) ready; draining {len(old)} old one(s)"))
                for w in old:
                    self._retire(w, now, out)
            for w in list(self._workers.values()):
                if w.retiring and w.state is WorkerState.READY:
                    self._retire(w, now, out)
        if self.upgrade_pending and not self._busy():
            self.upgrade_pending = False
            out.append(Upgrade())

    def _current(self) -> list[WorkerRecord]:
        return [
            w
            for w in self._workers.values()
            if w.generation == self.generation and w.state in _LIVE and not w.retiring
        ]

    def _deficit(self) -> int:
        return self.target - len(self._current())

    def _busy(self) -> bool:
        return self.reload_from is not None or any(
            w.state is WorkerState.BOOTING for w in self._workers.values()
        )

    def _spawn(self, now: float, out: list[Action]) -> None:
        wid = self._next_wid
        self._next_wid += 1
        self._workers[wid] = WorkerRecord(
            wid, self.generation, WorkerState.BOOTING, spawned_at=now, last_beat=now
        )
        out.append(Spawn(wid, self.generation))

    def _release_held(self, now: float, out: list[Action]) -> None:
        """The Tick after workers stopped from outside, and the master is not stopping: they crashed."""
        held, self._held = self._held, []
        for w, how in held:
            if w.state is WorkerState.BOOTING:
                self._boot_crashed(w, f"{w.name} {how} before it was ready", now, out)
            elif w.generation != self.generation or w.retiring:
                out.append(Log(logging.WARNING, f"{w.name} {how} unexpectedly (it was being replaced)"))
            else:
                out.append(Log(logging.WARNING, f"{w.name} {how} unexpectedly; replacing it"))
                self._crashed(now, out)

    def _retire(self, w: WorkerRecord, now: float, out: list[Action]) -> None:
        """Take ``w`` out of service while others serve: drain it if ready, stop it if still booting."""
        w.deadline = now + self.timeout_graceful_shutdown + STOP_MARGIN
        if w.state is WorkerState.READY:
            w.state = WorkerState.DRAINING
            out.append(Drain(w.wid))
        else:
            w.state = WorkerState.STOPPING
            out.append(Terminate(w.wid))

    def _stop(self, now: float, out: list[Action], fast: bool) -> None:
        self.phase = Phase.QUITTING if fast else Phase.STOPPING
        self.upgrade_pending = False
        held, self._held = self._held, []
        for w, how in held:  # they were stopped with the master (a stop sent to the process group)
            out.append(Log(logging.INFO, f"{w.name} {how}"))
        if not self._listeners_closed:
            self._listeners_closed = True
            out.append(CloseListeners())
        for w in self._workers.values():
            if fast and w.state not in (WorkerState.QUITTING, WorkerState.ABORTED, WorkerState.KILLED):
                w.state = WorkerState.QUITTING
                w.deadline = now + QUIT_GRACE
                out.append(Quit(w.wid))
            elif not fast and w.state in (WorkerState.BOOTING, WorkerState.READY, WorkerState.DRAINING):
                if w.state is not WorkerState.DRAINING:
                    w.deadline = now + self.timeout_graceful_shutdown + STOP_MARGIN
                w.state = WorkerState.STOPPING
                out.append(Terminate(w.wid))

    def _check_deadlines(self, now: float, out: list[Action]) -> None:
        for w in list(self._workers.values()):
            if w.deadline is not None and now >= w.deadline:
                if w.state is WorkerState.ABORTED:
                    message = f"{w.name} did not die after SIGABRT; killing it"
                elif w.state is WorkerState.KILLED:
                    continue
                else:
                    message = f"{w.name} did not stop in time; killing it"
                w.state = WorkerState.KILLED
                w.deadline = None
                out.append(Log(logging.WARNING, message))
                out.append(Kill(w.wid))
            elif w.state is WorkerState.BOOTING:
                if self.boot_timeout is not None and now - w.spawned_at > self.boot_timeout:
                    self._abort(w, f"{w.name} was not ready after {self.boot_timeout:g}s", now, out)
            elif w.state in _BEATING and self.timeout_worker > 0 and now - w.last_beat > self.timeout_worker:
                self._count_restart("heartbeat_timeout")
                self._abort(
                    w,
                    f"{w.name} sent no heartbeat for {self.timeout_worker:g}s "
                    "(a blocked event loop?); dumping its stack and killing it",
                    now,
                    out,
                )
            elif w.state in _BEATING and 0 < self.late_after < now - w.last_beat and not w.late:
                w.late = True
                self.heartbeat_misses += 1
                out.append(
                    Log(
                        logging.WARNING,
                        f"{w.name} has sent no heartbeat for {now - w.last_beat:.1f}s (a blocked event loop?)",
                    )
                )

    def _abort(self, w: WorkerRecord, message: str, now: float, out: list[Action]) -> None:
        w.state = WorkerState.ABORTED
        w.deadline = now + ABORT_GRACE
        out.append(Log(logging.ERROR, message))
        out.append(Abort(w.wid))

    def _boot_failed(self, w: WorkerRecord, reason: str, code: int, now: float, out: list[Action]) -> None:
        if self.reload_from is not None and w.generation != self.reload_from:
            out.append(Log(logging.ERROR, f"{reason}; reload abandoned, the previous workers go on serving"))
            self._abandon_reload(now, out)
        elif self.dev_reload:
            out.append(Log(logging.ERROR, f"{reason}; waiting for a file change to try again"))
            self.waiting_for_change = True
        elif self.phase is Phase.RUNNING:
            out.append(Log(logging.ERROR, f"{reason}; stopping, as every new worker would fail the same way"))
            self.exit_code = code
            self._stop(now, out, fast=False)

    def _boot_crashed(
        self, w: WorkerRecord, reason: str, now: float, out: list[Action], cause: str = "crash"
    ) -> None:
        self._boot_crashes += 1
        if self._boot_crashes >= MAX_BOOT_CRASHES:
            self._boot_crashes = 0
            self._boot_failed(w, f"{reason}, {MAX_BOOT_CRASHES} times in a row", EXIT_BOOT_FAILED, now, out)
        else:
            out.append(Log(logging.WARNING, f"{reason}; retrying"))
            self._crashed(now, out, cause)

    def _abandon_reload(self, now: float, out: list[Action]) -> None:
        assert self.reload_from is not None
        good = self.reload_from
        for w in list(self._workers.values()):
            if w.generation != good and w.state in _LIVE:
                self._retire(w, now, out)
        self.generation = good
        self.reload_from = None

    def _count_restart(self, cause: str) -> None:
        if self.phase is Phase.RUNNING:  # a worker killed while the master stops is not replaced
            self.restarts[cause] += 1

    def _crashed(self, now: float, out: list[Action], cause: str = "crash") -> None:
        self.restarts[cause] += 1
        crashes = self._crashes
        crashes.append(now)
        while crashes and crashes[0] < now - CRASH_WINDOW:
            crashes.popleft()
        if len(crashes) > CRASHES_FREE:
            delay = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (len(crashes) - CRASHES_FREE - 1))
            self.spawn_not_before = now + delay
            out.append(
                Log(
                    logging.WARNING, f"{len(crashes)} worker crashes in {CRASH_WINDOW:g}s; waiting {delay:g}s"
                )
            )


def _stopped_from_outside(event: WorkerExited) -> bool:
    """Whether the worker stopped as if told to: a clean exit, or death by a stop signal."""
    return event.code == 0 or event.signal in STOP_SIGNALS


def _describe_exit(event: WorkerExited) -> str:
    if event.signal is not None:
        try:
            name = signal.Signals(event.signal).name
        except ValueError:
            name = f"signal {event.signal}"
        return f"was killed by {name}"
    if event.code is None:
        return "is gone"
    return f"exited with code {event.code}"
