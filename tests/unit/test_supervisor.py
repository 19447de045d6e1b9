"""The process manager's small parts, in this process: settings, pid file, identities, log reopening,
systemd sockets, the reload filter and the heartbeat channel."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from tricorn.config import Config
from tricorn.errors import ConfigError
from tricorn.interfaces.wsgi import WorkerPool
from tricorn.supervisor import needs_master
from tricorn.supervisor.heartbeat import (
    BEAT,
    DRAIN,
    READY,
    RETIRING,
    Heartbeat,
    beat_interval,
    channel_pair,
    stuck_threads,
)
from tricorn.supervisor.process import PidFile, ProcessError, read_pid, reopen_log_files, resolve_identity
from tricorn.supervisor.reloader import FileFilter
from tricorn.supervisor.sockets import SD_LISTEN_FDS_START, bind_sockets, systemd_sockets

# -- settings


def test_worker_settings_defaults() -> None:
    config = Config()
    assert (config.workers, config.timeout_worker, config.max_requests, config.max_requests_jitter) == (
        1,
        30.0,
        None,
        0,
    )
    assert (config.preload, config.reload, config.reuse_port) == (False, False, False)
    assert (config.pid, config.user, config.group, config.unix_socket_permissions) == (None,) * 4
    assert (config.reload_dir, config.reload_include, config.reload_exclude) == ((), (), ())


def test_web_concurrency_is_read_when_tricorn_workers_is_not_set(tmp_path: Path) -> None:
    assert Config.load([], {"WEB_CONCURRENCY": "3"}, str(tmp_path)).workers == 3
    assert Config.load([], {"WEB_CONCURRENCY": "3", "TRICORN_WORKERS": "2"}, str(tmp_path)).workers == 2
    assert Config.load(["-w", "4"], {"WEB_CONCURRENCY": "3"}, str(tmp_path)).workers == 4
    with pytest.raises(ConfigError, match=r"workers: 'many' is not an integer \(from WEB_CONCURRENCY\)"):
        Config.load([], {"WEB_CONCURRENCY": "many"}, str(tmp_path))


@pytest.mark.parametrize(("raw", "mode"), [("660", 0o660), ("0660", 0o660), ("0o600", 0o600), (0o640, 0o640)])
def test_unix_socket_permissions_are_octal(raw: object, mode: int) -> None:
    assert Config(unix_socket_permissions=raw).unix_socket_permissions == mode  # type: ignore[arg-type]


@pytest.mark.parametrize("raw", ["rw-rw----", "800", "0o17777", "-1"])
def test_bad_unix_socket_permissions(raw: str) -> None:
    with pytest.raises(ConfigError, match="unix_socket_permissions: "):
        Config(unix_socket_permissions=raw)  # type: ignore[arg-type]


def test_user_and_group_are_names_or_ids() -> None:
    assert Config(user="www-data", group="1000").user == "www-data"
    with pytest.raises(ConfigError, match="user: 'a b' is not a user or group name"):
        Config(user="a b")


def test_reload_lists() -> None:
    config = Config.load(["--reload-dir", "src", "--reload-dir", "lib", "--reload-include", "*.html"], {})
    assert config.reload_dir == ("src", "lib") and config.reload_include == ("*.html",)
    assert Config.load([], {"TRICORN_RELOAD_EXCLUDE": "build, dist"}).reload_exclude == ("build", "dist")


def test_a_master_runs_for_several_workers_reload_or_max_requests() -> None:
    assert not needs_master(Config())
    assert needs_master(Config(workers=2))
    assert needs_master(Config(reload=True))
    assert needs_master(Config(max_requests=1000))


def test_a_timeout_worker_other_than_its_default_needs_a_master_even_for_one_worker() -> None:
    # One process cannot watch its own blocked event loop: a timeout of one's own starts a master.
    assert needs_master(Config(timeout_worker=2))
    assert needs_master(Config.load(["--timeout-worker", "2"], {}, "/"))
    assert needs_master(Config.load([], {"TRICORN_TIMEOUT_WORKER": "60"}, "/"))
    # The default, and 0 (no check), do not: one process stays one process.
    assert not needs_master(Config(timeout_worker=Config().timeout_worker))
    assert not needs_master(Config(timeout_worker=0))


# -- pid file


def test_pid_file_is_written_and_removed(tmp_path: Path) -> None:
    path = tmp_path / "app.pid"
    pidfile = PidFile(str(path))
    assert path.read_text() == f"{os.getpid()}\n"
    assert read_pid(str(path)) == os.getpid()
    PidFile(str(path))  # our own pid: rewritten (a re-executed master)
    pidfile.remove()
    assert not path.exists()
    pidfile.remove()  # gone already: nothing to do


def test_pid_file_of_a_dead_process_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "app.pid"
    path.write_text("999999999\n")
    PidFile(str(path))
    assert read_pid(str(path)) == os.getpid()


def test_pid_file_of_a_live_process_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "app.pid"
    path.write_text(f"{os.getppid()}\n")
    with pytest.raises(ProcessError, match=f"names process {os.getppid()}, which is running"):
        PidFile(str(path))


def test_pid_file_in_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ProcessError, match="cannot write pid file"):
        PidFile(str(tmp_path / "missing" / "app.pid"))


def test_pid_file_is_not_removed_if_another_process_took_it(tmp_path: Path) -> None:
    path = tmp_path / "app.pid"
    pidfile = PidFile(str(path))
    path.write_text("12345\n")
    pidfile.remove()
    assert path.read_text() == "12345\n"


# -- identities


def test_resolve_identity() -> None:
    assert resolve_identity(None, None) is None
    assert resolve_identity("0", None) == (0, 0)
    assert resolve_identity("root", "0") == (0, 0)
    assert resolve_identity(None, "0") == (os.getuid(), 0)
    assert resolve_identity("4242", None) == (4242, os.getgid())  # a numeric id need not have a name
    with pytest.raises(ProcessError, match="user: no user named 'no-such-user-here'"):
        resolve_identity("no-such-user-here", None)
    with pytest.raises(ProcessError, match="group: no group named 'no-such-group-here'"):
        resolve_identity(None, "no-such-group-here")


# -- log files


def test_reopen_log_files(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    logger = logging.getLogger("tricorn.test-reopen")
    handler = logging.FileHandler(path)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("before")
        path.rename(tmp_path / "app.log.1")
        assert reopen_log_files() >= 1
        logger.warning("after")
        handler.flush()
        assert path.read_text() == "after\n"
        assert (tmp_path / "app.log.1").read_text() == "before\n"
    finally:
        logger.removeHandler(handler)
        handler.close()


# -- sockets


def test_systemd_sockets_need_our_pid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LISTEN_FDS", "1")
    monkeypatch.setenv("LISTEN_PID", str(os.getpid() + 1))
    assert systemd_sockets() == []
    assert os.environ["LISTEN_FDS"] == "1"  # not ours: left alone


def test_systemd_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    saved = os.dup(SD_LISTEN_FDS_START)
    try:
        os.dup2(listener.fileno(), SD_LISTEN_FDS_START)
        monkeypatch.setenv("LISTEN_FDS", "1")
        monkeypatch.setenv("LISTEN_PID", str(os.getpid()))
        monkeypatch.setenv("LISTEN_FDNAMES", "http")
        (sock,) = systemd_sockets()
        assert sock.fileno() == SD_LISTEN_FDS_START
        assert sock.getsockname() == listener.getsockname()
        assert not {"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"} & set(os.environ)
        sock.detach()
    finally:
        os.dup2(saved, SD_LISTEN_FDS_START)
        os.close(saved)
        listener.close()


def test_reuse_port_and_unix_permissions(tmp_path: Path) -> None:
    config = Config(
        bind=(f"unix:{tmp_path / 's.sock'}", "127.0.0.1:0"), reuse_port=True, unix_socket_permissions="640"
    )
    unix, tcp = bind_sockets(config.binds, 16, reuse_port=True, unix_mode=0o640)
    try:
        assert (os.stat(tmp_path / "s.sock").st_mode & 0o777) == 0o640
        assert tcp.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
    finally:
        unix.close()
        tcp.close()


# -- reload filter


def test_reload_filter(tmp_path: Path) -> None:
    accept = FileFilter([str(tmp_path)], include=["*.html", "conf/*.toml"], exclude=["build", "*_test.py"])
    assert accept(str(tmp_path / "app.py"))
    assert accept(str(tmp_path / "pkg" / "mod.py"))
    assert accept(str(tmp_path / "templates" / "index.html"))
    assert accept(str(tmp_path / "conf" / "a.toml"))
    assert not accept(str(tmp_path / "a.toml"))
    assert not accept(str(tmp_path / "README.md"))
    assert not accept(str(tmp_path / ".venv" / "lib" / "x.py"))
    assert not accept(str(tmp_path / "pkg" / "__pycache__" / "mod.cpython-311.pyc"))
    assert not accept(str(tmp_path / "build" / "lib" / "x.py"))
    assert not accept(str(tmp_path / "pkg" / "mod_test.py"))
    assert not accept(str(tmp_path / "app.py~"))
    assert not accept("/elsewhere/app.py")


# -- heartbeat


def test_beat_interval() -> None:
    assert beat_interval(30) == 0.5
    assert beat_interval(1) == 0.25
    assert beat_interval(0.01) == 0.05
    assert beat_interval(0) == 0.5


def test_a_pool_is_stuck_only_when_every_thread_is_past_the_timeout() -> None:
    now = 100.0
    both = [(1, 90.0), (2, 97.5)]
    assert stuck_threads(both, 2, now, 2.0) == both
    assert stuck_threads(both, 2, now, 3.0) == []  # one of them started 2.5 s ago
    assert stuck_threads(both[:1], 2, now, 2.0) == []  # a thread is free (or not started yet)
    assert stuck_threads(both, 2, now, 0) == []  # 0 disables the check
    assert stuck_threads([], 0, now, 2.0) == []


def test_the_wsgi_pool_tells_since_when_each_busy_thread_runs_its_job() -> None:
    pool = WorkerPool(2)
    release = threading.Event()
    started = threading.Barrier(3)

    class Job:
        def execute(self, cond: threading.Condition) -> None:
            started.wait()
            release.wait()

    try:
        assert pool.running_since() == []
        before = time.monotonic()
        pool.submit([Job(), Job()])
        started.wait(timeout=10)
        running = pool.running_since()
        assert sorted(ident for ident, _ in running) == sorted(t.ident for t in pool.threads)
        assert all(before <= since <= time.monotonic() for _, since in running)
    finally:
        release.set()
        pool.close()
        assert pool.join(10)
    assert pool.running_since() == []


def test_heartbeat_channel() -> None:
    master, worker = channel_pair()
    events: list[str] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        heartbeat = Heartbeat(
            worker,
            loop,
            0.01,
            on_beat=lambda: events.append("beat"),
            on_drain=lambda: events.append("drain"),
            on_orphaned=lambda: events.append("orphaned"),
        )
        heartbeat.start()
        while events.count("beat") < 3:
            await asyncio.sleep(0.01)
        heartbeat.send(RETIRING)
        master.send(DRAIN)
        while "drain" not in events:
            await asyncio.sleep(0.01)
        master.close()
        while "orphaned" not in events:
            await asyncio.sleep(0.01)
        heartbeat.stop()

    asyncio.run(main())
    worker.close()
    assert events.count("orphaned") == 1


def test_heartbeat_messages_reach_the_master() -> None:
    master, worker = channel_pair()
    received = b""

    async def main() -> None:
        nonlocal received
        heartbeat = Heartbeat(
            worker, asyncio.get_running_loop(), 0.01, lambda: None, lambda: None, lambda: None
        )
        heartbeat.start()
        while received.count(BEAT) < 2:
            await asyncio.sleep(0.01)
            with contextlib.suppress(BlockingIOError):
                received += master.recv(100)
        heartbeat.stop()

    asyncio.run(main())
    assert received.startswith(READY)
    master.close()
    worker.close()
