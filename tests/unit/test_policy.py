"""tricorn.supervisor.policy: the master's decisions, with plain calls and a fake clock (no processes)."""

from __future__ import annotations

import logging
import signal
from typing import Any, TypeVar

import pytest

from tricorn import serving as run
from tricorn.supervisor import policy as p
from tricorn.supervisor.policy import (
    ABORT_GRACE,
    BOOT_FAILURE_CODES,
    BOOT_TIMEOUT_FLOOR,
    CRASH_WINDOW,
    CRASHES_FREE,
    MAX_BOOT_CRASHES,
    QUIT_GRACE,
    STOP_MARGIN,
    Abort,
    Action,
    Boot,
    CloseListeners,
    Drain,
    Exit,
    Kill,
    Log,
    Phase,
    Policy,
    Quit,
    ReloadRequested,
    ReopenLogs,
    ReopenLogsRequested,
    ScaleRequested,
    Spawn,
    StopRequested,
    Terminate,
    Tick,
    Upgrade,
    UpgradeRequested,
    WorkerBeat,
    WorkerExited,
    WorkerForked,
    WorkerReady,
    WorkerRetiring,
    WorkerState,
)

A = TypeVar("A")

TIMEOUT = 10.0
GRACEFUL = 3.0


class Master:
    """A policy driven with a fake clock; ``pid(wid)`` is 1000 + wid."""

    def __init__(self, workers: int = 2, timeout: float = TIMEOUT, dev_reload: bool = False) -> None:
        self.policy = Policy(workers, timeout, GRACEFUL, dev_reload=dev_reload)
        self.now = 100.0
        self.log: list[Action] = []

    def send(self, event: p.Event, after: float = 0.0) -> list[Action]:
        self.now += after
        actions = self.policy.on_event(event, self.now)
        self.log += actions
        for action in actions:  # the arbiter reports each fork at once
            if isinstance(action, Spawn):
                self.policy.on_event(WorkerForked(action.wid, 1000 + action.wid), self.now)
        return actions

    def boot(self, adopted: int = 0) -> list[int]:
        """Boot and make every spawned worker ready; return their ids."""
        wids = spawned(self.send(Boot(adopted)))
        for wid in wids:
            self.send(WorkerReady(wid))
        return wids

    def state(self, wid: int) -> WorkerState:
        return self.policy.workers[wid].state

    def live(self) -> list[int]:
        return sorted(self.policy.workers)


def of(actions: list[Action], kind: type[A]) -> list[A]:
    return [a for a in actions if isinstance(a, kind)]


def spawned(actions: list[Action]) -> list[int]:
    return [a.wid for a in of(actions, Spawn)]


def wids(actions: list[Action], kind: type[Any]) -> list[int]:
    return [a.wid for a in of(actions, kind)]


def messages(actions: list[Action], level: int | None = None) -> list[str]:
    return [a.message for a in of(actions, Log) if level is None or a.level == level]


# -- booting and steady state


def test_boot_spawns_the_target_and_waits_for_ready() -> None:
    m = Master(workers=3)
    actions = m.send(Boot())
    assert of(actions, Spawn) == [Spawn(1, 1), Spawn(2, 1), Spawn(3, 1)]
    assert all(m.state(w) is WorkerState.BOOTING for w in (1, 2, 3))
    assert m.policy.workers[1].pid == 1001
    assert messages(m.policy.on_event(WorkerForked(1, 1001), m.now)) == ["booting worker 1001"]
    for wid in (1, 2, 3):
        assert spawned(m.send(WorkerReady(wid))) == []
    assert all(m.state(w) is WorkerState.READY for w in (1, 2, 3))
    assert spawned(m.send(Tick(), after=1)) == []


def test_the_master_never_has_fewer_than_one_worker() -> None:
    assert Policy(0, TIMEOUT, GRACEFUL).target == 1


def test_boot_failure_codes_are_the_serving_process_exit_statuses() -> None:
    assert BOOT_FAILURE_CODES == (run.EXIT_CONFIG, run.EXIT_APP)


def test_events_for_unknown_workers_are_ignored() -> None:
    m = Master()
    m.boot()
    for event in (WorkerReady(99), WorkerBeat(99), WorkerRetiring(99), WorkerExited(99, code=1)):
        assert m.send(event) == []


# -- crashes


def test_a_crashed_worker_is_replaced_at_once() -> None:
    m = Master()
    m.boot()
    actions = m.send(WorkerExited(1, signal=signal.SIGKILL), after=5)
    assert spawned(actions) == [3]
    assert messages(actions, logging.WARNING) == [
        "worker 1001 was killed by SIGKILL unexpectedly; replacing it"
    ]
    assert m.live() == [2, 3]


def test_repeated_crashes_back_off_then_respawn_on_a_tick() -> None:
    m = Master(workers=1)
    m.boot()
    wid = 1
    for _ in range(CRASHES_FREE):
        (wid,) = spawned(m.send(WorkerExited(wid, code=1), after=0.1))
        m.send(WorkerReady(wid))
    actions = m.send(WorkerExited(wid, code=1), after=0.1)
    assert spawned(actions) == []
    assert any("waiting 0.5s" in message for message in messages(actions))
    deadline = m.policy.next_deadline(m.now)
    assert deadline == pytest.approx(m.now + 0.5)
    assert spawned(m.send(Tick(), after=0.4)) == []
    assert len(spawned(m.send(Tick(), after=0.1))) == 1


def test_crashes_outside_the_window_are_forgotten() -> None:
    m = Master(workers=1)
    m.boot()
    wid = 1
    for _ in range(CRASHES_FREE + 3):
        (wid,) = spawned(m.send(WorkerExited(wid, code=1), after=CRASH_WINDOW))
        m.send(WorkerReady(wid))


def test_boot_failure_stops_the_master_with_the_workers_status() -> None:
    m = Master(workers=3)
    m.send(Boot())
    m.send(WorkerReady(1))
    actions = m.send(WorkerExited(2, code=run.EXIT_APP))
    assert spawned(actions) == []
    assert of(actions, CloseListeners) == [CloseListeners()]
    assert sorted(wids(actions, Terminate)) == [1, 3]
    (error,) = messages(actions, logging.ERROR)
    assert "worker 1002 failed to boot (exited with code 3: the application could not be loaded" in error
    assert "stopping" in error
    assert m.policy.phase is Phase.STOPPING
    assert m.send(WorkerExited(1, code=0)) == [Log(logging.INFO, "worker 1001 exited with code 0")]
    assert of(m.send(WorkerExited(3, code=run.EXIT_APP)), Exit) == [Exit(run.EXIT_APP)]
    assert m.policy.phase is Phase.DONE
    assert m.send(Tick(), after=1) == []


def test_a_lone_worker_failing_to_boot_exits_at_once() -> None:
    m = Master(workers=1)
    m.send(Boot())
    actions = m.send(WorkerExited(1, code=run.EXIT_CONFIG))
    assert of(actions, Exit) == [Exit(run.EXIT_CONFIG)]
    assert "a setting is not usable" in messages(actions, logging.ERROR)[0]


def test_early_deaths_are_retried_then_give_up() -> None:
    m = Master(workers=1)
    (wid,) = spawned(m.send(Boot()))
    for _ in range(1, MAX_BOOT_CRASHES):
        actions = m.send(WorkerExited(wid, signal=signal.SIGSEGV), after=CRASH_WINDOW)
        assert messages(actions, logging.WARNING)[0].endswith(
            "was killed by SIGSEGV before it was ready; retrying"
        )
        (wid,) = spawned(actions)
    actions = m.send(WorkerExited(wid, signal=signal.SIGSEGV), after=CRASH_WINDOW)
    assert of(actions, Exit) == [Exit(p.EXIT_BOOT_FAILED)]
    assert f"{MAX_BOOT_CRASHES} times in a row" in messages(actions, logging.ERROR)[0]


def test_a_ready_worker_resets_the_early_death_count() -> None:
    m = Master(workers=1)
    (wid,) = spawned(m.send(Boot()))
    for _ in range(3 * MAX_BOOT_CRASHES):
        (wid,) = spawned(m.send(WorkerExited(wid, code=1), after=CRASH_WINDOW))
        if wid % 2:
            m.send(WorkerReady(wid))
    assert m.policy.phase is Phase.RUNNING


# -- heartbeats and timeouts


def test_a_silent_worker_is_aborted_then_killed_then_replaced() -> None:
    m = Master()
    m.boot()
    m.send(WorkerBeat(2), after=TIMEOUT / 2)
    # Worker 1's deadline: its last beat was when it became ready.
    assert m.policy.next_deadline(m.now) == pytest.approx(m.now + TIMEOUT / 2)
    actions = m.send(Tick(), after=TIMEOUT / 2 + 0.01)
    assert wids(actions, Abort) == [1]
    assert "worker 1001 sent no heartbeat for 10s" in messages(actions, logging.ERROR)[0]
    assert m.state(1) is WorkerState.ABORTED
    assert spawned(actions) == [3]  # its replacement boots while the stack is dumped
    assert m.policy.next_deadline(m.now) == pytest.approx(m.now + ABORT_GRACE)
    actions = m.send(Tick(), after=ABORT_GRACE)
    assert wids(actions, Kill) == [1]
    actions = m.send(WorkerExited(1, signal=signal.SIGKILL))
    assert spawned(actions) == []
    assert messages(actions, logging.WARNING) == ["worker 1001 was killed by SIGKILL"]


def test_beating_workers_are_left_alone() -> None:
    m = Master()
    m.boot()
    for _ in range(50):
        for wid in (1, 2):
            m.send(WorkerBeat(wid), after=TIMEOUT / 4)
        assert of(m.log, Abort) == []


def test_an_aborted_worker_that_dies_is_not_killed() -> None:
    m = Master()
    m.boot()
    m.send(WorkerBeat(2), after=TIMEOUT)
    m.send(Tick(), after=0.1)
    m.send(WorkerExited(1, signal=signal.SIGABRT))
    assert of(m.send(Tick(), after=ABORT_GRACE), Kill) == []


def test_booting_is_allowed_the_boot_timeout() -> None:
    m = Master(timeout=2)
    m.send(Boot())
    assert m.policy.next_deadline(m.now) == pytest.approx(m.now + BOOT_TIMEOUT_FLOOR)
    assert of(m.send(Tick(), after=BOOT_TIMEOUT_FLOOR - 1), Abort) == []
    actions = m.send(Tick(), after=1.01)
    assert sorted(wids(actions, Abort)) == [1, 2]
    assert spawned(actions) == [3, 4]
    assert "was not ready after 30s" in messages(actions, logging.ERROR)[0]
    # A worker killed while booting is an early death, counted towards giving up.
    assert "before it was ready; retrying" in messages(m.send(WorkerExited(1, signal=signal.SIGABRT)))[0]


def test_timeout_zero_disables_the_checks() -> None:
    m = Master(timeout=0)
    m.boot()
    assert m.policy.next_deadline(m.now) is None
    assert of(m.send(Tick(), after=10_000), Abort) == []


def test_a_draining_worker_is_watched_too() -> None:
    m = Master(workers=1, timeout=2)
    m.boot()
    m.send(ScaleRequested(1))
    m.send(WorkerReady(2))
    m.send(ScaleRequested(-1))
    assert m.state(1) is WorkerState.DRAINING
    m.send(WorkerBeat(2), after=2)
    assert wids(m.send(Tick(), after=0.1), Abort) == [1]


# -- stopping


def test_graceful_stop_terminates_everyone_and_exits_when_all_are_gone() -> None:
    m = Master(workers=3)
    m.boot()
    m.send(ScaleRequested(1))  # one still booting
    actions = m.send(StopRequested())
    assert of(actions, CloseListeners) == [CloseListeners()]
    assert sorted(wids(actions, Terminate)) == [1, 2, 3, 4]
    assert m.policy.phase is Phase.STOPPING
    for wid in (1, 2, 3):
        assert of(m.send(WorkerExited(wid, code=0)), Spawn) == []
    assert m.send(WorkerReady(4)) == []
    assert of(m.send(WorkerExited(4, code=0)), Exit) == [Exit(0)]


def test_a_worker_that_does_not_stop_in_time_is_killed() -> None:
    m = Master(workers=1)
    m.boot()
    m.send(StopRequested())
    assert m.policy.next_deadline(m.now) == pytest.approx(m.now + GRACEFUL + STOP_MARGIN)
    m.send(WorkerBeat(1), after=GRACEFUL)
    m.send(WorkerBeat(1), after=STOP_MARGIN / 2)
    actions = m.send(Tick(), after=STOP_MARGIN / 2)
    assert wids(actions, Kill) == [1]
    assert of(m.send(WorkerExited(1, signal=signal.SIGKILL)), Exit) == [Exit(0)]


def test_a_second_stop_request_is_a_fast_stop() -> None:
    m = Master()
    m.boot()
    m.send(StopRequested())
    actions = m.send(StopRequested())
    assert sorted(wids(actions, Quit)) == [1, 2]
    assert of(actions, CloseListeners) == []
    assert m.policy.phase is Phase.QUITTING
    assert sorted(wids(m.send(Tick(), after=QUIT_GRACE), Kill)) == [1, 2]
    assert m.send(StopRequested()) == []


def test_quit_stops_fast_at_once() -> None:
    m = Master()
    m.boot()
    actions = m.send(StopRequested(fast=True))
    assert sorted(wids(actions, Quit)) == [1, 2]
    assert of(actions, CloseListeners) == [CloseListeners()]


def test_stopping_with_no_workers_exits_at_once() -> None:
    m = Master(workers=1)
    m.boot()
    for _ in range(CRASHES_FREE + 1):  # crash until the master waits before respawning
        m.send(WorkerExited(max(m.policy.workers), code=1), after=0.01)
    assert m.policy.workers == {}
    assert of(m.send(StopRequested()), Exit) == [Exit(0)]


def test_a_stop_sent_to_the_process_group_forks_no_replacement() -> None:
    # TERM to the whole group: a worker exits (status 0) before the master has read its own TERM; the
    # arbiter feeds that turn's signals before its Tick, and by then the master is stopping.
    m = Master()
    m.boot()
    exited = m.send(WorkerExited(1, code=0), after=1)
    assert exited == []  # judged on the Tick that ends the arbiter's turn
    assert m.policy.next_deadline(m.now) == m.now
    stop = m.send(StopRequested())
    assert wids(stop, Terminate) == [2]
    assert messages(stop) == ["stopping 1 worker(s) gracefully", "worker 1001 exited with code 0"]
    assert spawned(m.send(Tick())) == []
    assert of(m.send(WorkerExited(2, code=0)), Exit) == [Exit(0)]
    assert spawned(m.log) == [1, 2]


def test_a_booting_worker_killed_by_the_groups_term_is_not_retried_while_stopping() -> None:
    m = Master()
    m.send(Boot())
    m.send(WorkerReady(1))
    killed = m.send(WorkerExited(2, signal=signal.SIGTERM))  # no handlers yet: TERM's default action
    assert killed == []
    assert "worker 1002 was killed by SIGTERM" in messages(m.send(StopRequested()))
    m.send(Tick())
    assert of(m.send(WorkerExited(1, code=0)), Exit) == [Exit(0)]
    assert spawned(m.log) == [1, 2]


def test_a_worker_stopped_from_outside_is_replaced_on_the_next_tick() -> None:
    # kill -TERM <worker pid>: without a stop of the master, the worker is replaced (gunicorn does too).
    m = Master()
    m.boot()
    assert m.send(WorkerExited(1, code=0), after=1) == []
    tick = m.send(Tick())
    assert spawned(tick) == [3]
    assert messages(tick) == ["worker 1001 exited with code 0 unexpectedly; replacing it"]
    assert m.send(WorkerExited(2, signal=signal.SIGQUIT), after=1) == []
    assert spawned(m.send(Tick())) == [4]
    deadline = m.policy.next_deadline(m.now)
    assert deadline is None or deadline > m.now
    assert m.live() == [3, 4]
    # And one killed by TERM while booting is retried like any early death.
    assert m.send(WorkerExited(4, signal=signal.SIGTERM)) == []
    tick = m.send(Tick())
    assert spawned(tick) == [5]
    assert messages(tick) == ["worker 1004 was killed by SIGTERM before it was ready; retrying"]


def test_a_crash_is_still_replaced_at_once_after_a_stop_from_outside() -> None:
    m = Master(workers=3)
    m.boot()
    m.send(WorkerExited(1, code=0))
    actions = m.send(WorkerExited(2, code=1))
    assert messages(actions, logging.WARNING) == ["worker 1002 exited with code 1 unexpectedly; replacing it"]
    assert spawned(actions) == []  # held with the other until the Tick: both replaced then
    assert spawned(m.send(Tick())) == [4, 5]


def test_nothing_changes_the_workers_while_stopping() -> None:
    m = Master()
    m.boot()
    m.send(StopRequested())
    for event in (ReloadRequested(4), ScaleRequested(1), UpgradeRequested(), WorkerRetiring(1)):
        assert [a for a in m.send(event) if not isinstance(a, Log)] == []


# -- reload


def test_reload_drains_the_old_workers_only_when_all_new_ones_are_ready() -> None:
    m = Master()
    m.boot()
    actions = m.send(ReloadRequested(2, "reload (SIGHUP)"))
    assert of(actions, Spawn) == [Spawn(3, 2), Spawn(4, 2)]
    assert messages(actions) == ["reload (SIGHUP): starting 2 new worker(s)"]
    assert m.policy.reloading
    assert of(m.send(WorkerReady(3)), Drain) == []
    actions = m.send(WorkerReady(4))
    assert sorted(wids(actions, Drain)) == [1, 2]
    assert not m.policy.reloading
    # The old ones' exits are expected: not replaced.
    assert spawned(m.send(WorkerExited(1, code=0))) == []
    assert spawned(m.send(WorkerExited(2, code=0))) == []
    assert m.live() == [3, 4]


def test_reload_can_change_the_number_of_workers() -> None:
    m = Master(workers=2)
    m.boot()
    assert len(spawned(m.send(ReloadRequested(3)))) == 3
    for wid in (3, 4, 5):
        actions = m.send(WorkerReady(wid))
    assert sorted(wids(actions, Drain)) == [1, 2]


def test_a_reload_whose_workers_fail_to_boot_is_abandoned() -> None:
    m = Master()
    m.boot()
    m.send(ReloadRequested(2))
    m.send(WorkerReady(3))
    actions = m.send(WorkerExited(4, code=run.EXIT_APP))
    assert "reload abandoned, the previous workers go on serving" in messages(actions, logging.ERROR)[0]
    assert wids(actions, Drain) == [3]
    assert of(actions, Exit) == []
    assert m.state(1) is WorkerState.READY and m.state(2) is WorkerState.READY
    assert m.policy.generation == 1 and not m.policy.reloading
    # The old generation is the current one again: a crash of one of them is replaced.
    assert len(spawned(m.send(WorkerExited(1, signal=signal.SIGKILL)))) == 1


def test_a_reload_during_a_reload_keeps_the_serving_generation_until_the_newest_is_ready() -> None:
    m = Master(workers=1)
    m.boot()
    m.send(ReloadRequested(1))  # worker 2, generation 2
    actions = m.send(ReloadRequested(1))  # worker 3, generation 3
    assert of(actions, Spawn) == [Spawn(3, 3)]
    assert m.policy.reload_from == 1
    assert of(m.send(WorkerReady(2)), Drain) == []  # generation 2 is already outdated
    actions = m.send(WorkerReady(3))
    assert sorted(wids(actions, Drain)) == [1, 2]


def test_an_old_worker_crashing_during_a_reload_is_not_replaced() -> None:
    m = Master()
    m.boot()
    m.send(ReloadRequested(2))
    actions = m.send(WorkerExited(1, signal=signal.SIGKILL))
    assert spawned(actions) == []
    assert "it was being replaced" in messages(actions, logging.WARNING)[0]


# -- scaling


def test_ttin_adds_and_ttou_drains_the_oldest() -> None:
    m = Master()
    m.boot()
    actions = m.send(ScaleRequested(1))
    assert spawned(actions) == [3]
    assert "number of workers: 3" in messages(actions)
    m.send(WorkerReady(3))
    actions = m.send(ScaleRequested(-1))
    assert wids(actions, Drain) == [1]
    actions = m.send(ScaleRequested(-1))
    assert wids(actions, Drain) == [2]
    actions = m.send(ScaleRequested(-1))
    assert of(actions, Drain) == []
    assert "not removing the last one" in messages(actions)[0]
    assert m.policy.target == 1


def test_ttou_stops_a_booting_worker_first() -> None:
    m = Master()
    m.boot()
    m.send(ScaleRequested(1))
    actions = m.send(ScaleRequested(-1))
    assert wids(actions, Terminate) == [3]
    assert of(actions, Drain) == []


# -- max requests


def test_a_retiring_worker_is_drained_once_its_replacement_is_ready() -> None:
    m = Master()
    m.boot()
    actions = m.send(WorkerRetiring(1))
    assert spawned(actions) == [3]
    assert "worker 1001 served its max requests; starting its replacement" in messages(actions)
    assert m.state(1) is WorkerState.READY  # still serving meanwhile
    assert m.send(WorkerRetiring(1)) == []  # said twice: nothing more
    assert wids(m.send(WorkerReady(3)), Drain) == [1]
    assert spawned(m.send(WorkerExited(1, code=0))) == []


def test_a_worker_with_its_wsgi_threads_stuck_is_replaced_like_a_retiring_one() -> None:
    m = Master()
    m.boot()
    actions = m.send(WorkerRetiring(2, "has every wsgi thread stuck on one request"))
    assert spawned(actions) == [3]
    assert messages(actions) == [
        "worker 1002 has every wsgi thread stuck on one request; starting its replacement"
    ]
    assert wids(m.send(WorkerReady(3)), Drain) == [2]


def test_two_retiring_workers_wait_for_enough_replacements() -> None:
    m = Master()
    m.boot()
    m.send(WorkerRetiring(1))
    m.send(WorkerRetiring(2))
    assert m.live() == [1, 2, 3, 4]
    assert of(m.send(WorkerReady(3)), Drain) == []
    assert sorted(wids(m.send(WorkerReady(4)), Drain)) == [1, 2]


def test_a_retiring_worker_that_crashes_is_not_replaced_twice() -> None:
    m = Master()
    m.boot()
    m.send(WorkerRetiring(1))
    assert spawned(m.send(WorkerExited(1, signal=signal.SIGKILL))) == []
    assert m.live() == [2, 3]


def test_retiring_is_ignored_before_ready() -> None:
    m = Master()
    m.send(Boot())
    assert m.send(WorkerRetiring(1)) == []


# -- development reload


def test_dev_reload_waits_for_a_change_after_a_boot_failure() -> None:
    m = Master(workers=1, dev_reload=True)
    m.send(Boot())
    actions = m.send(WorkerExited(1, code=run.EXIT_APP))
    assert "waiting for a file change" in messages(actions, logging.ERROR)[0]
    assert of(actions, Exit) == [] and spawned(actions) == []
    assert spawned(m.send(Tick(), after=60)) == []
    actions = m.send(ReloadRequested(1, "changed: app.py"))
    assert spawned(actions) == [2]
    assert not m.policy.reloading  # nothing old to keep
    m.send(WorkerReady(2))
    assert m.policy.phase is Phase.RUNNING


def test_dev_reload_with_a_broken_change_keeps_the_old_worker() -> None:
    m = Master(workers=1, dev_reload=True)
    m.boot()
    m.send(ReloadRequested(1, "changed: app.py"))
    actions = m.send(WorkerExited(2, code=run.EXIT_APP))
    assert "reload abandoned" in messages(actions, logging.ERROR)[0]
    assert m.live() == [1]


# -- upgrade (SIGUSR2) and adoption


def test_upgrade_when_steady() -> None:
    m = Master()
    m.boot()
    assert of(m.send(UpgradeRequested()), Upgrade) == [Upgrade()]


def test_upgrade_waits_for_booting_workers() -> None:
    m = Master()
    m.send(Boot())
    actions = m.send(UpgradeRequested())
    assert of(actions, Upgrade) == []
    assert "waiting" in messages(actions)[0]
    m.send(WorkerReady(1))
    assert of(m.send(WorkerReady(2)), Upgrade) == [Upgrade()]
    assert of(m.send(Tick(), after=1), Upgrade) == []


def test_a_reload_cancels_a_pending_upgrade() -> None:
    m = Master()
    m.send(Boot())
    m.send(UpgradeRequested())
    m.send(ReloadRequested(2))
    for wid in (1, 2, 3, 4):
        assert of(m.send(WorkerReady(wid)), Upgrade) == []


def test_adopted_workers_are_replaced_like_a_reload() -> None:
    m = Master()
    actions = m.send(Boot(adopted=2))
    assert m.state(1) is WorkerState.READY and m.state(2) is WorkerState.READY
    assert of(actions, Spawn) == [Spawn(3, 1), Spawn(4, 1)]
    assert m.policy.reloading
    m.send(WorkerReady(3))
    assert sorted(wids(m.send(WorkerReady(4)), Drain)) == [1, 2]
    # Their exits are expected and named by id (the policy never learnt their pids).
    assert messages(m.send(WorkerExited(1, code=0))) == ["worker #1 exited with code 0"]


def test_adopted_workers_serve_on_if_the_new_code_fails_to_boot() -> None:
    m = Master()
    m.send(Boot(adopted=2))
    actions = m.send(WorkerExited(3, code=run.EXIT_APP))
    assert of(actions, Exit) == []
    assert m.live() == [1, 2, 4]
    assert m.policy.generation == 0


# -- logs


def test_reopen_logs_names_every_live_worker() -> None:
    m = Master()
    m.boot()
    m.send(WorkerExited(1, code=1))
    assert m.send(ReopenLogsRequested()) == [ReopenLogs((2, 3))]


def test_new_timeouts_apply() -> None:
    m = Master()
    m.boot()
    m.policy.set_timeouts(1.0, 0.5)
    assert wids(m.send(Tick(), after=1.01), Abort) == [1, 2]
