"""The pre-fork process manager end to end: a real master, real workers, real signals and sockets.

Continuous load is a few threads each sending requests back to back over a keep-alive httpx client,
bounded in time and count; a test that promises "no failed request" asserts the failure count is zero.
Worker pids come from the log (each worker logs ``[pid] [INFO] worker ready``) and from /proc (the
master's children). Every wait polls a condition with a deadline.
"""

from __future__ import annotations

import collections
import contextlib
import grp
import json
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Set
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, TricornProcess, die_with_parent, free_port, wait_for

pytestmark = pytest.mark.e2e

APP = "tests.apps.workers:app"
DEADLINE = 30.0  # generous: the suite shares two cores with other tests
READY = re.compile(r"\[(\d+)\] \[INFO\] worker ready \(")


# -- processes, from /proc


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # fields after "pid (comm) "


def alive(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def children(pid: int) -> set[int]:
    """The live child processes of ``pid``."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None and fields[0] != "Z" and int(fields[1]) == pid:
                found.add(int(entry))
    return found


def group(pgid: int) -> set[int]:
    """The live processes of process group ``pgid``."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None and fields[0] != "Z" and int(fields[2]) == pgid:
                found.add(int(entry))
    return found


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ").strip()


def ready_workers(server: TricornProcess) -> set[int]:
    """The master's children that have logged "worker ready"."""
    ready = {int(pid) for pid in READY.findall(server.output())}
    return ready & children(server.proc.pid)


def wait_workers(server: TricornProcess, count: int, excluding: Set[int] = frozenset()) -> set[int]:
    """Wait until exactly ``count`` children serve, all ready and none of them in ``excluding``."""

    def settled() -> bool:
        kids = children(server.proc.pid)
        return len(kids) == count and kids == ready_workers(server) and not kids & excluding

    wait_for(settled, what=lambda: f"{count} ready workers (log:\n{server.output()[-3000:]})")
    return children(server.proc.pid)


def start(tricorn: type[TricornProcess], *args: str, workers: int = 2, **kwargs: object) -> TricornProcess:
    server = tricorn([APP, "--workers", str(workers), "--no-access-log", *args], **kwargs).wait_ready()  # type: ignore[arg-type]
    wait_workers(server, workers)
    return server


# -- load


class Load:
    """``threads`` clients sending GET ``url`` back to back on keep-alive connections until stopped, for
    at most ``max_seconds`` and ``max_requests``. Counts successes, failures and the pids that answered."""

    def __init__(
        self, url: str, threads: int = 4, max_seconds: float = 60, max_requests: int = 200_000
    ) -> None:
        self.url = url
        self.ok = 0
        self.failures: list[str] = []
        self.pids: collections.Counter[int] = collections.Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._deadline = time.monotonic() + max_seconds
        self._max = max_requests
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=20)

    def _run(self) -> None:
        with httpx.Client(timeout=15) as client:
            while not self._stop.is_set() and time.monotonic() < self._deadline:
                with self._lock:
                    if self.ok + len(self.failures) >= self._max:
                        return
                try:
                    response = client.get(self.url)
                except httpx.HTTPError as exc:
                    with self._lock:
                        self.failures.append(repr(exc))
                    continue
                with self._lock:
                    if response.status_code == 200 and response.text.startswith("pid "):
                        self.ok += 1
                        self.pids[int(response.text.split()[1])] += 1
                    else:
                        self.failures.append(f"{response.status_code} {response.text[:100]!r}")

    def more(self, count: int) -> None:
        """Wait for ``count`` more successful requests (the load goes on serving)."""
        target = self.ok + count
        wait_for(lambda: self.ok >= target or self._stop.is_set(), what=f"{count} more requests")
        assert self.ok >= target, self.failures[:5]


# -- the scenarios of the issue


def test_a_killed_worker_is_replaced_and_requests_keep_succeeding(tricorn: type[TricornProcess]) -> None:
    server = start(tricorn)
    before = children(server.proc.pid)
    victim = min(before)
    with Load(server.url) as load:
        load.more(50)
        os.kill(victim, signal.SIGKILL)
        after = wait_workers(server, 2, excluding={victim})
        failed_at_kill = len(load.failures)
        load.more(200)
    assert len(after - before) == 1
    # Only requests in flight on the killed worker can fail; none after it was replaced.
    assert len(load.failures) == failed_at_kill <= 4, load.failures
    assert f"worker {victim} was killed by SIGKILL unexpectedly; replacing it" in server.output()


@pytest.mark.parametrize("workers", [2, 1])
def test_a_worker_whose_event_loop_blocks_is_killed_and_replaced(
    tricorn: type[TricornProcess], workers: int
) -> None:
    # With one worker too: a --timeout-worker of its own starts a master (one process cannot watch itself).
    server = start(tricorn, "--timeout-worker", "2", workers=workers)
    before = children(server.proc.pid)

    def request_that_blocks() -> None:
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(f"{server.url}/block?seconds=120", timeout=60)

    blocked = threading.Thread(target=request_that_blocks, daemon=True)
    blocked.start()
    match = None

    def detected() -> bool:
        nonlocal match
        match = re.search(r"worker (\d+) sent no heartbeat for 2s", server.output())
        return match is not None

    wait_for(detected, what="the silent worker detected")
    assert match is not None
    victim = int(match[1])
    assert victim in before
    after = wait_workers(server, workers, excluding={victim})
    assert not alive(victim)
    log = server.output()
    # faulthandler's dump names the function that blocked the loop.
    assert "Fatal Python error: Aborted" in log
    assert "in block_event_loop" in log
    assert len(after - before) == 1
    with httpx.Client() as client:
        assert all(client.get(server.url).status_code == 200 for _ in range(20))
    blocked.join(timeout=60)


def test_a_worker_whose_thread_pool_is_stuck_is_killed_and_replaced(tricorn: type[TricornProcess]) -> None:
    server = start(tricorn, "--timeout-worker", "2")
    before = children(server.proc.pid)

    def request_that_hangs() -> None:
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(f"{server.url}/stuck-pool", timeout=60)

    threading.Thread(target=request_that_hangs, daemon=True).start()
    pattern = re.compile(r"worker (\d+) sent no heartbeat for 2s")
    wait_for(lambda: pattern.search(server.output()), what="the stuck worker detected")
    victim = int(pattern.findall(server.output())[0])
    assert victim in before
    wait_workers(server, 2, excluding={victim})
    assert "in block_event_loop" not in server.output()  # the loop itself was free
    assert httpx.get(server.url).status_code == 200


def test_a_worker_whose_wsgi_threads_are_all_stuck_is_replaced(tricorn: type[TricornProcess]) -> None:
    # The loop beats on (the WSGI pool is not the default executor): the worker itself tells the master.
    server = tricorn(
        [
            "tests.apps.workers:wsgi_app",
            "--workers",
            "2",
            "--threads",
            "2",
            "--timeout-worker",
            "2",
            "--timeout-graceful-shutdown",
            "2",
            "--no-access-log",
        ]
    ).wait_ready()
    before = wait_workers(server, 2)

    def wait_forever() -> None:
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(f"{server.url}/wait-forever", timeout=60)

    waiting = re.compile(r"workers wsgi app: waiting forever in pid (\d+)")
    # Which worker accepts is the kernel's call: with two workers, the third request at the latest is
    # the second one on a worker, which then has both its threads stuck.
    for sent in range(1, 4):
        threading.Thread(target=wait_forever, daemon=True).start()
        wait_for(lambda n=sent: len(waiting.findall(server.output())) == n, what=f"{sent} requests waiting")  # type: ignore[misc]
        counts = collections.Counter(int(pid) for pid in waiting.findall(server.output()))
        if max(counts.values()) == 2:
            break
    victim = counts.most_common(1)[0][0]
    assert counts[victim] == 2 and victim in before
    replacing = f"worker {victim} has every wsgi thread stuck on one request; starting its replacement"
    wait_for(lambda: replacing in server.output(), what="the stuck worker detected")
    log = server.output()
    assert f"[{victim}] [ERROR] every wsgi thread (2) has been on one request for more than 2s" in log
    assert log.count("in wait_forever") >= 2  # both threads' stacks
    after = wait_workers(server, 2, excluding={victim})
    new = after - before
    assert len(new) == 1

    def served_by_the_new_worker() -> bool:
        response = httpx.get(server.url, headers={"connection": "close"})
        return response.status_code == 200 and int(response.text.split()[1]) in new

    wait_for(served_by_the_new_worker, what="a request served by the new worker")


def test_hup_under_load_replaces_every_worker_without_a_failed_request(tricorn: type[TricornProcess]) -> None:
    server = start(tricorn)
    old = children(server.proc.pid)
    with Load(server.url) as load:
        load.more(100)
        server.send_signal(signal.SIGHUP)
        new = wait_workers(server, 2, excluding=old)
        load.more(300)
    assert not new & old
    assert load.failures == []
    assert (
        set(load.pids) & new
    )  # the new workers served (which of them gets each reconnection is the kernel's call)
    assert old & set(load.pids)  # and the old ones did, before
    log = server.output()
    assert "received SIGHUP, reloading" in log
    assert "2 new worker(s) ready; draining 2 old one(s)" in log
    assert log.count("workers app: imported in pid") == 4  # the new workers imported the app afresh


def test_hup_rereads_the_settings(tricorn: type[TricornProcess], tmp_path: Path) -> None:
    settings = tmp_path / "tricorn.toml"
    settings.write_text("workers = 2\n")
    server = tricorn([APP, "--config", str(settings), "--no-access-log"]).wait_ready()
    old = wait_workers(server, 2)
    settings.write_text("workers = 3\nbacklog = 100\n")
    server.send_signal(signal.SIGHUP)
    wait_workers(server, 3, excluding=old)
    log = server.output()
    assert "changed settings that apply only after a restart (or SIGUSR2): backlog" in log
    settings.write_text("workers = 'many'\n")
    server.send_signal(signal.SIGHUP)
    wait_for(lambda: "cannot re-read the settings" in server.output())
    assert "workers: 'many' is not an integer (in config file" in server.output()
    assert len(children(server.proc.pid)) == 3


def test_one_process_writes_its_pid_and_stops_fast_on_quit(
    tricorn: type[TricornProcess], tmp_path: Path
) -> None:
    pid_file = tmp_path / "app.pid"
    server = tricorn([APP, "--pid", str(pid_file)]).wait_ready()
    assert not children(server.proc.pid)  # no master: one process
    wait_for(pid_file.exists)
    assert pid_file.read_text() == f"{server.proc.pid}\n"
    server.send_signal(signal.SIGQUIT)
    assert server.wait(DEADLINE) == 0
    assert "received SIGQUIT, stopping now" in server.output()
    assert not pid_file.exists()


def test_one_process_restarts_in_place_on_hup_with_the_app_imported_again(
    tricorn: type[TricornProcess], tmp_path: Path
) -> None:
    source = (ROOT / "tests" / "apps" / "workers.py").read_text()
    module = tmp_path / "hupapp.py"
    module.write_text(source)
    server = tricorn(["hupapp:app", "--app-dir", str(tmp_path), "--no-access-log"]).wait_ready()
    pid = server.proc.pid
    assert not children(pid)  # one process
    assert httpx.get(server.url).text == f"pid {pid} version 1"
    slow: dict[str, object] = {}

    def slow_request() -> None:
        response = httpx.get(f"{server.url}/slow?delay=2", timeout=30)
        slow["status"], slow["body"] = response.status_code, response.text

    thread = threading.Thread(target=slow_request)
    thread.start()
    wait_for(lambda: "slow started" in server.output(), what="the slow request started")
    # A different length: the cached bytecode is checked against the source's mtime and size.
    module.write_text(source.replace('VERSION = "1"', 'VERSION = "two"'))
    with Load(server.url) as load:
        load.more(50)
        server.send_signal(signal.SIGHUP)
        wait_for(lambda: "restarted: serving the application imported again" in server.output())
        load.more(100)
    assert load.failures == []
    assert set(load.pids) == {pid}
    assert httpx.get(server.url).text == f"pid {pid} version two"
    thread.join(timeout=DEADLINE)
    assert slow == {"status": 200, "body": f"slow done in pid {pid}"}  # the previous app finished it
    wait_for(lambda: "the previous application has stopped" in server.output())
    log = server.output()
    assert "received SIGHUP, restarting in place: importing the application again" in log
    assert log.count(f"workers app: imported in pid {pid}") == 2
    assert log.count(f"workers app: started in pid {pid}") == 2  # lifespan startup ran again

    # A change that does not import: logged, and the running app serves on.
    module.write_text(source.replace('VERSION = "1"', "VERSION = (2"))
    server.send_signal(signal.SIGHUP)
    wait_for(lambda: "restart abandoned: the running application goes on serving" in server.output())
    assert "SyntaxError" in server.output()
    assert httpx.get(server.url).text == f"pid {pid} version two"
    assert server.stop() == 0
    assert "stopped" in server.output()


def test_term_lets_a_slow_request_finish_and_leaves_no_process(tricorn: type[TricornProcess]) -> None:
    # WEB_CONCURRENCY is honoured (gunicorn's and Heroku's convention).
    server = tricorn([APP, "--no-access-log"], env={"WEB_CONCURRENCY": "2"}).wait_ready()
    wait_workers(server, 2)
    result: dict[str, object] = {}

    def slow() -> None:
        response = httpx.get(f"{server.url}/slow?delay=2", timeout=30)
        result["status"], result["body"] = response.status_code, response.text

    thread = threading.Thread(target=slow)
    thread.start()
    wait_for(lambda: "slow started" in server.output(), what="the slow request started")
    server.send_signal(signal.SIGTERM)
    assert server.wait(DEADLINE) == 0
    thread.join(timeout=DEADLINE)
    assert result["status"] == 200
    assert str(result["body"]).startswith("slow done")
    assert group(server.proc.pid) == set()  # the session's process group is empty: no orphan worker
    log = server.output()
    assert "received SIGTERM, shutting down gracefully" in log
    assert "master stopped" in log


def test_term_to_the_process_group_stops_without_forking_a_replacement(
    tricorn: type[TricornProcess],
) -> None:
    # docker stop on a shell entry point, systemd's default KillMode and Ctrl-C signal the master and its
    # workers at once; a worker may exit before the master has read its own TERM. Half the runs signal
    # while the workers boot, half once they serve.
    for run in range(20):
        server = tricorn([APP, "--workers", "2", "--no-access-log", "--timeout-graceful-shutdown", "1"])
        server.wait_ready()
        if run % 2:
            wait_workers(server, 2)
        os.killpg(server.proc.pid, signal.SIGTERM)
        assert server.wait(DEADLINE) == 0, server.output()
        log = server.output()
        after_stop = log[log.index("received SIGTERM") :]
        assert "booting worker" not in after_stop, log
        assert "unexpectedly" not in log, log
        assert "did not stop in time" not in log, log  # no worker missed the TERM
        assert "master stopped" in log
        assert group(server.proc.pid) == set()


def test_hup_to_the_process_group_is_a_reload_not_a_crash(tricorn: type[TricornProcess]) -> None:
    # A terminal's hangup, or kill -HUP -PGID, reaches the workers too: they leave it to the master, whose
    # reload replaces them gracefully, instead of dying by it and being replaced as crashes.
    server = start(tricorn)
    first = children(server.proc.pid)
    os.killpg(server.proc.pid, signal.SIGHUP)
    wait_for(lambda: len(children(server.proc.pid) - first) == 2 and not (children(server.proc.pid) & first),
             what="the reload")  # fmt: skip
    log = server.output()
    assert "unexpectedly" not in log and "killed by" not in log, log
    assert httpx.get(server.url).status_code == 200


def test_the_masters_signals_sent_to_a_worker_leave_it_serving(tricorn: type[TricornProcess]) -> None:
    # systemctl kill (the whole unit by default) or kill -- -PGID reaches the workers with the master's
    # TTIN, TTOU and USR2: by their default actions a worker would stop where it is or die with its requests.
    server = start(tricorn)
    workers = children(server.proc.pid)
    for pid in workers:
        for signum in (signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR2):
            os.kill(pid, signum)
    time.sleep(0.5)
    for pid in workers:
        fields = _stat(pid)
        assert fields is not None and fields[0] not in "TtZ", (pid, fields)
    assert children(server.proc.pid) == workers
    for _ in range(4):
        assert httpx.get(server.url).status_code == 200
    log = server.output()
    assert "unexpectedly" not in log and "killed by" not in log, log


def test_ttin_and_ttou_change_the_number_of_workers(tricorn: type[TricornProcess]) -> None:
    server = start(tricorn)
    master = server.proc.pid
    # Process titles (setproctitle is in the test extra).
    assert cmdline(master).startswith(f"tricorn: master [{APP}]")
    assert all(cmdline(pid).startswith(f"tricorn: worker [{APP}]") for pid in children(master))
    server.send_signal(signal.SIGTTIN)
    wait_workers(server, 3)
    server.send_signal(signal.SIGTTOU)
    wait_workers(server, 2)
    server.send_signal(signal.SIGTTOU)
    last = wait_workers(server, 1)
    server.send_signal(signal.SIGTTOU)  # never below one
    wait_for(lambda: "not removing the last one" in server.output())
    assert children(master) == last
    assert httpx.get(server.url).status_code == 200


def test_max_requests_recycles_workers_under_load_without_a_failed_request(
    tricorn: type[TricornProcess],
) -> None:
    server = start(tricorn, "--max-requests", "100", "--max-requests-jitter", "20")
    first = children(server.proc.pid)
    with Load(server.url) as load:
        wait_for(lambda: len(set(load.pids) - first) >= 4 or load.failures, what="four recycled workers")
        load.more(100)
    assert load.failures == []
    log = server.output()
    assert "served its max requests; starting its replacement" in log
    served = re.findall(r"served (\d+) requests \(max requests (\d+)\)", log)
    assert served
    # Each worker asks for its replacement right after the response that reaches its limit.
    assert all(count == limit for count, limit in served), served
    assert all(100 <= int(limit) <= 120 for _, limit in served)


def test_an_app_that_fails_to_import_stops_the_master(tricorn: type[TricornProcess]) -> None:
    server = tricorn(["tests.apps.broken_import:app", "--workers", "3"])
    assert server.wait(DEADLINE) == 3
    log = server.output()
    assert "failed to boot (exited with code 3: the application could not be loaded or started" in log
    assert "No module named 'tricorn_test_no_such_dependency'" in log
    assert log.count("booting worker") == 3  # no respawn loop
    assert group(server.proc.pid) == set()


def test_a_lifespan_startup_failure_stops_the_master(tricorn: type[TricornProcess]) -> None:
    server = tricorn(["tests.apps.lifespan_apps:failing_startup", "--workers", "2"])
    assert server.wait(DEADLINE) == 3
    log = server.output()
    assert "application startup failed: database unreachable at db:5432" in log
    assert "failed to boot" in log


def test_usr2_reexecutes_the_master_and_keeps_serving(tricorn: type[TricornProcess]) -> None:
    server = start(tricorn)
    master = server.proc.pid
    old = children(master)
    with Load(server.url) as load:
        load.more(100)
        server.send_signal(signal.SIGUSR2)
        wait_for(lambda: "re-executed: took over 1 socket(s) and 2 worker(s)" in server.output())
        new = wait_workers(server, 2, excluding=old)
        load.more(300)
    assert load.failures == []
    assert server.proc.poll() is None and server.proc.pid == master  # same process, new program
    assert not new & old and set(load.pids) & new
    assert server.stop() == 0
    assert group(master) == set()


# -- more of the process manager


def test_quit_stops_at_once(tricorn: type[TricornProcess]) -> None:
    server = start(tricorn)
    failed: list[Exception] = []

    def slow() -> None:
        try:
            httpx.get(f"{server.url}/slow?delay=60", timeout=60)
        except httpx.HTTPError as exc:
            failed.append(exc)

    thread = threading.Thread(target=slow)
    thread.start()
    wait_for(lambda: "slow started" in server.output())
    server.send_signal(signal.SIGQUIT)
    assert server.wait(DEADLINE) == 0
    thread.join(timeout=DEADLINE)
    assert failed  # cut, not served
    assert "received SIGQUIT, stopping now" in server.output()
    assert group(server.proc.pid) == set()


def test_workers_stop_when_the_master_is_killed(tricorn: type[TricornProcess]) -> None:
    server = start(tricorn)
    workers = children(server.proc.pid)
    os.kill(server.proc.pid, signal.SIGKILL)
    wait_for(lambda: not any(alive(pid) for pid in workers), what="orphaned workers exiting")
    assert "the master process is gone; stopping" in server.output()


def test_reload_restarts_the_workers_when_a_file_changes(
    tricorn: type[TricornProcess], tmp_path: Path
) -> None:
    source = (ROOT / "tests" / "apps" / "workers.py").read_text()
    module = tmp_path / "reloadable.py"
    module.write_text(source)
    server = tricorn(
        [
            "reloadable:app",
            "--reload",
            "--reload-dir",
            str(tmp_path),
            "--app-dir",
            str(tmp_path),
            "--no-access-log",
        ]
    ).wait_ready()
    wait_workers(server, 1)
    assert httpx.get(server.url).text.endswith("version 1")
    assert "reload: watching" in server.output()
    (tmp_path / "notes.txt").write_text("not a python file: ignored")
    module.write_text(source.replace('VERSION = "1"', 'VERSION = "2"'))
    wait_for(lambda: httpx.get(server.url, headers={"connection": "close"}).text.endswith("version 2"))
    # A change that does not import keeps the last good worker serving.
    module.write_text(source.replace('VERSION = "1"', "VERSION = (2"))
    wait_for(lambda: "reload abandoned, the previous workers go on serving" in server.output())
    assert httpx.get(server.url).text.endswith("version 2")
    assert "notes.txt" not in server.output()


def test_polling_reloader_sees_changes(tmp_path: Path) -> None:
    from tricorn.supervisor.reloader import Reloader

    (tmp_path / "pkg").mkdir()
    (tmp_path / ".hidden").mkdir()
    changes: list[list[str]] = []
    reloader = Reloader([str(tmp_path)], ["*.toml"], ["skip_*"], changes.append, force_polling=True)
    reloader.start()
    try:
        assert reloader.backend == "polling"
        (tmp_path / ".hidden" / "x.py").write_text("hidden")
        (tmp_path / "skip_me.py").write_text("excluded")
        (tmp_path / "pkg" / "data.txt").write_text("not included")
        (tmp_path / "pkg" / "mod.py").write_text("x = 1")
        (tmp_path / "settings.toml").write_text("a = 1")
        wait_for(
            lambda: (
                {p for batch in changes for p in batch}
                >= {
                    str(tmp_path / "pkg" / "mod.py"),
                    str(tmp_path / "settings.toml"),
                }
            )
        )
        seen = {p for batch in changes for p in batch}
        assert seen == {str(tmp_path / "pkg" / "mod.py"), str(tmp_path / "settings.toml")}
    finally:
        reloader.stop()


def test_preload_imports_the_app_once_in_the_master(tricorn: type[TricornProcess]) -> None:
    server = start(tricorn, "--preload")
    log = server.output()
    assert log.count("workers app: imported in pid") == 1
    assert f"workers app: imported in pid {server.proc.pid}" in log
    assert log.count("workers app: started in pid") == 2  # lifespan runs in each worker


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path: unix socket paths are limited to 108 bytes, tmp_path can be longer."""
    directory = Path(tempfile.mkdtemp(prefix="tricorn-", dir="/tmp"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def test_pid_file_and_unix_socket_permissions(
    tricorn: type[TricornProcess], tmp_path: Path, short_dir: Path
) -> None:
    short = short_dir / "app.sock"
    pid_file = tmp_path / "master.pid"
    server = tricorn(
        [
            APP,
            "--workers",
            "2",
            "--bind",
            f"unix:{short}",
            "--unix-socket-permissions",
            "600",
            "--pid",
            str(pid_file),
        ]
    )
    wait_for(lambda: (short.exists() and pid_file.exists()) or server.proc.poll() is not None)
    wait_workers(server, 2)
    assert pid_file.read_text() == f"{server.proc.pid}\n"
    assert stat.S_IMODE(short.stat().st_mode) == 0o600
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(short))) as client:
        assert client.get("http://tricorn/").status_code == 200
    assert server.stop() == 0
    assert not pid_file.exists()
    assert not short.exists()


def test_a_pid_file_naming_a_live_process_is_refused(tricorn: type[TricornProcess], tmp_path: Path) -> None:
    pid_file = tmp_path / "busy.pid"
    pid_file.write_text(f"{os.getpid()}\n")
    server = tricorn([APP, "--pid", str(pid_file)])
    assert server.wait(DEADLINE) == 1
    assert f"pid file {pid_file} names process {os.getpid()}, which is running" in server.output()


def test_systemd_socket_activation(tmp_path: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    log = tmp_path / "out.log"
    fd = listener.fileno()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # systemd passes the sockets from fd 3 on, and names the process it started in LISTEN_PID.
    script = (
        f"import os; os.dup2({fd}, 3); os.environ.update(LISTEN_FDS='1', LISTEN_PID=str(os.getpid())); "
        f"os.execv({sys.executable!r}, [{sys.executable!r}, '-m', 'tricorn', {APP!r}, '--workers', '2'])"
    )
    with log.open("w") as out:
        proc = subprocess.Popen(
            die_with_parent([sys.executable, "-c", script]),
            pass_fds=(fd,),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    listener.close()
    try:
        wait_for(lambda: len(READY.findall(log.read_text())) == 2 or proc.poll() is not None)
        assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 200
        text = log.read_text()
        assert "using 1 socket(s) passed by systemd (LISTEN_FDS)" in text
        assert f"listening on http://127.0.0.1:{port}" in text
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(DEADLINE) == 0


def test_reuse_port_lets_two_servers_share_a_port(tricorn: type[TricornProcess]) -> None:
    port = free_port()
    first = tricorn([APP, "--reuse-port", "--port", str(port)])
    second = tricorn([APP, "--reuse-port", "--port", str(port)])
    for server in (first, second):
        wait_for(lambda s=server: "listening on" in s.output() or s.proc.poll() is not None)  # type: ignore[misc]
        assert server.proc.poll() is None, server.output()
    assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 200


def reachable_by_anyone(path: str) -> bool:
    resolved = Path(path).resolve()
    return all(os.stat(p).st_mode & stat.S_IXOTH for p in (resolved, *resolved.parents))


def ids(pid: int, field: str) -> int:
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith(f"{field}:"))
    return int(line.split()[1])


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_group_is_switched_after_binding(tricorn: type[TricornProcess]) -> None:
    server = start(tricorn, "--group", "nogroup")
    nogroup = grp.getgrnam("nogroup").gr_gid
    assert {ids(pid, "Gid") for pid in {server.proc.pid, *children(server.proc.pid)}} == {nogroup}
    assert httpx.get(server.url).status_code == 200
    assert server.stop() == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
@pytest.mark.skipif(
    not all(reachable_by_anyone(p) for p in (sys.base_prefix, sys.prefix, str(ROOT))),
    reason="this Python or checkout is not readable by other users (e.g. under /root), so nobody cannot run it",
)
def test_user_is_switched_after_binding(tricorn: type[TricornProcess]) -> None:
    nobody = pwd.getpwnam("nobody")
    server = start(tricorn, "--user", "nobody")
    assert {ids(pid, "Uid") for pid in {server.proc.pid, *children(server.proc.pid)}} == {nobody.pw_uid}
    assert httpx.get(server.url).status_code == 200
    assert server.stop() == 0


def test_usr1_reopens_log_files(tricorn: type[TricornProcess], tmp_path: Path) -> None:
    error_log = tmp_path / "error.log"
    config = {
        "version": 1,
        "formatters": {"plain": {"format": "[%(process)d] %(message)s"}},
        "handlers": {
            "file": {"class": "logging.FileHandler", "filename": str(error_log), "formatter": "plain"}
        },
        "loggers": {"tricorn": {"handlers": ["file"], "level": "INFO", "propagate": False}},
    }
    (tmp_path / "logging.json").write_text(json.dumps(config))
    server = tricorn([APP, "--workers", "2", "--log-config", str(tmp_path / "logging.json")]).wait_ready()
    wait_for(lambda: error_log.exists() and error_log.read_text().count("worker ready") == 2)
    rotated = tmp_path / "error.log.1"
    error_log.rename(rotated)
    server.send_signal(signal.SIGUSR1)
    # The master and both workers reopen: three lines in the new file.
    wait_for(lambda: error_log.exists() and error_log.read_text().count("reopened 1 log file(s)") == 3)
    assert "worker ready" in rotated.read_text()
