"""gunicorn config files end to end: ``./gunicorn.conf.py`` read by default, its settings mapped, and every
server hook run at gunicorn's moment, in the process gunicorn runs it in (each hook appends a line to a file
the test reads: the hook's name, the process it ran in, what it was given)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import TricornProcess, free_port, wait_for
from tests.e2e.test_cli import Spawn, spawn  # noqa: F401 - spawn is a fixture

pytestmark = pytest.mark.e2e

HOOKS = """
import os
HOOKS_FILE = {hooks!r}


def _record(*words):
    with open(HOOKS_FILE, "a") as file:
        file.write(" ".join(str(word) for word in words) + "\\n")


def on_starting(server):
    _record("on_starting", os.getpid(), server.cfg.workers, server.cfg.timeout, server.cfg.bind[0])


def on_reload(server):
    _record("on_reload", os.getpid())
    raise RuntimeError("a broken on_reload")


def when_ready(server):
    _record("when_ready", os.getpid(), server.pid, server.num_workers)


def pre_fork(server, worker):
    _record("pre_fork", os.getpid(), worker.age, worker.pid)


def post_fork(server, worker):
    _record("post_fork", os.getpid(), worker.age, worker.pid, worker.ppid)


def post_worker_init(worker):
    worker.log.info("post_worker_init of worker %s", worker.pid)
    _record("post_worker_init", os.getpid(), worker.pid)


def worker_int(worker):
    _record("worker_int", os.getpid(), worker.pid)


def worker_abort(worker):
    _record("worker_abort", os.getpid(), worker.pid)


def pre_exec(server):
    _record("pre_exec", os.getpid())


def pre_request(worker, req):
    _record("pre_request", os.getpid(), req.method, req.path, req.query)


def post_request(worker, req, environ, resp):
    _record("post_request", os.getpid(), req.path, resp.status, environ["REQUEST_METHOD"])


def child_exit(server, worker):
    _record("child_exit", os.getpid(), worker.pid)


def worker_exit(server, worker):
    _record("worker_exit", os.getpid(), worker.pid)


def nworkers_changed(server, new_value, old_value):
    _record("nworkers_changed", os.getpid(), new_value, old_value)


def on_exit(server):
    _record("on_exit", os.getpid())
"""


def records(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def named(path: Path, name: str) -> list[list[str]]:
    return [record for record in records(path) if record[0] == name]


def wait_records(path: Path, name: str, count: int, proc: TricornProcess) -> list[list[str]]:
    wait_for(
        lambda: len(named(path, name)) >= count,
        timeout=30,
        what=lambda: f"{name} x{count}: {records(path)}\n{proc.output()}",
    )
    return named(path, name)


def test_gunicorn_conf_py_in_the_working_directory_with_every_hook(spawn: Spawn, tmp_path: Path) -> None:  # noqa: F811
    hooks = tmp_path / "hooks.txt"
    port = free_port()
    (tmp_path / "gunicorn.conf.py").write_text(
        HOOKS.format(hooks=str(hooks))
        + f"\nbind = '127.0.0.1:{port}'\nworkers = 2\ntimeout = 25\nkeepalive = 3\nwsgi_app = 'tests.apps.dropin_apps:wsgi'\n"
        "umask = 0o22\nworkerz = 3\n"
    )
    server = spawn([], port=port, cwd=tmp_path)
    server.wait_ready()
    master = str(server.proc.pid)
    # At the start: gunicorn's order, in gunicorn's processes.
    forks = wait_records(hooks, "post_worker_init", 2, server)
    assert named(hooks, "on_starting") == [["on_starting", master, "2", "25.0", f"127.0.0.1:{port}"]]
    assert named(hooks, "when_ready") == [["when_ready", master, master, "2"]]
    assert named(hooks, "nworkers_changed") == [["nworkers_changed", master, "2", "None"]]
    assert [r[:4] for r in named(hooks, "pre_fork")] == [
        ["pre_fork", master, "1", "None"],
        ["pre_fork", master, "2", "None"],
    ]
    workers = sorted(record[1] for record in forks)
    assert sorted(r[1] for r in named(hooks, "post_fork")) == workers
    assert all(r[1] == r[3] and r[4] == master for r in named(hooks, "post_fork"))
    order = [record[0] for record in records(hooks)]
    assert (
        order.index("on_starting")
        < order.index("when_ready")
        < order.index("pre_fork")
        < order.index("post_fork")
    )
    output = server.output()
    assert "read settings and hooks from gunicorn.conf.py" in output
    assert "'workerz' is not a setting gunicorn or tricorn has: ignored, did you mean 'workers'?" in output
    assert "'umask' has no meaning for tricorn: ignored" in output
    assert "post_worker_init of worker" in output  # worker.log is the error log

    # A request: pre_request and post_request in the worker that served it.
    response = httpx.get(f"{server.url}/some/path?x=1")
    assert response.status_code == 200
    pid = str(response.json()["pid"])
    assert named(hooks, "pre_request") == [["pre_request", pid, "GET", "/some/path", "x=1"]]
    wait_records(hooks, "post_request", 1, server)
    assert named(hooks, "post_request") == [["post_request", pid, "/some/path", "200", "OK", "GET"]]

    # TTIN: one more worker; the master says so.
    server.send_signal(signal.SIGTTIN)
    wait_records(hooks, "nworkers_changed", 2, server)
    assert named(hooks, "nworkers_changed")[1] == ["nworkers_changed", master, "3", "2"]
    wait_records(hooks, "post_worker_init", 3, server)

    # SIGQUIT to one worker: worker_int and worker_exit in it, child_exit in the master.
    victim = workers[0]
    os.kill(int(victim), signal.SIGQUIT)
    wait_records(hooks, "child_exit", 1, server)
    assert ["worker_int", victim, victim] in records(hooks)
    assert ["worker_exit", victim, victim] in records(hooks)
    assert named(hooks, "child_exit") == [["child_exit", master, victim]]

    # SIGHUP: on_reload, which raises: logged by name, and the reload goes on.
    server.send_signal(signal.SIGHUP)
    wait_records(hooks, "on_reload", 1, server)
    wait_for(lambda: "hook on_reload raised an exception: carrying on" in server.output(), timeout=30)
    assert "RuntimeError: a broken on_reload" in server.output()
    wait_for(lambda: "new worker(s) ready" in server.output(), timeout=30, what=server.output)

    # SIGUSR2: pre_exec in the master, before it re-executes.
    server.send_signal(signal.SIGUSR2)
    wait_records(hooks, "pre_exec", 1, server)
    assert named(hooks, "pre_exec") == [["pre_exec", master]]
    wait_for(lambda: "re-executed: took over" in server.output(), timeout=30, what=server.output)

    # SIGTERM: on_exit, last, in the master.
    assert server.stop() == 0
    assert records(hooks)[-1] == ["on_exit", master]


ABORT_CONF = """
import os
bind = "127.0.0.1:{port}"
timeout = 1
worker_class = "uvicorn.workers.UvicornWorker"


def worker_abort(worker):
    with open({hooks!r}, "a") as file:
        file.write(f"worker_abort {{os.getpid()}} {{worker.pid}}\\n")
"""


def test_worker_abort_runs_when_the_master_aborts_a_stuck_worker(spawn: Spawn, tmp_path: Path) -> None:  # noqa: F811
    hooks = tmp_path / "hooks.txt"
    port = free_port()
    conf = tmp_path / "conf.py"
    conf.write_text(ABORT_CONF.format(port=port, hooks=str(hooks)))
    server = spawn(["-c", str(conf), "tests.apps.dropin_apps:blocking"], port=port, cwd=tmp_path)
    server.wait_ready()
    pid = httpx.get(server.url + "/").json()["pid"]

    def block() -> None:
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(server.url + "/block", timeout=60)

    thread = threading.Thread(target=block)
    thread.start()
    wait_for(lambda: hooks.exists() and hooks.read_text().strip() != "", timeout=60, what=server.output)
    assert hooks.read_text().split() == ["worker_abort", str(pid), str(pid)]
    thread.join(60)
    assert "worker class uvicorn.workers.UvicornWorker: interface asgi" in server.output()
    assert server.stop() == 0


QUIT_AT_INIT_CONF = """
import os, signal
bind = "127.0.0.1:{port}"
workers = 1
wsgi_app = "tests.apps.dropin_apps:wsgi"


def _record(*words):
    with open({hooks!r}, "a") as file:
        file.write(" ".join(str(word) for word in words) + "\\n")


def post_worker_init(worker):
    _record("post_worker_init", os.getpid(), worker.age)
    if worker.age == 1:
        os.kill(os.getpid(), signal.{signal})


def worker_int(worker):
    _record("worker_int", os.getpid())


def worker_exit(server, worker):
    _record("worker_exit", os.getpid())


def child_exit(server, worker):
    _record("child_exit", worker.pid)
"""


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
@pytest.mark.parametrize("signum", [signal.SIGQUIT, signal.SIGTERM], ids=["QUIT", "TERM"])
def test_a_stop_signal_right_after_post_worker_init_stops_the_worker_as_it_should(
    spawn: Spawn,  # noqa: F811
    tmp_path: Path,
    signum: signal.Signals,
    loop: str,
) -> None:
    # A worker is ready to be signalled once post_worker_init ran (a deployment tool may read the hook as
    # "the worker is up"): the signal is its own to handle then, not the default action's.
    hooks = tmp_path / "hooks.txt"
    port = free_port()
    conf = tmp_path / "conf.py"
    conf.write_text(QUIT_AT_INIT_CONF.format(port=port, hooks=str(hooks), signal=signum.name))
    server = spawn(["-c", str(conf), "--loop", loop], port=port, cwd=tmp_path)
    server.wait_ready()
    first = wait_records(hooks, "post_worker_init", 1, server)[0][1]
    wait_records(hooks, "child_exit", 1, server)
    assert named(hooks, "worker_exit") == [["worker_exit", first]]
    if signum == signal.SIGQUIT:
        assert named(hooks, "worker_int") == [["worker_int", first]]
    else:
        assert named(hooks, "worker_int") == []
    assert f"was killed by {signum.name}" not in server.output()  # (the default action's way out)
    # The master replaced it, and the new worker serves.
    wait_records(hooks, "post_worker_init", 2, server)
    assert httpx.get(server.url + "/").status_code == 200
    assert server.stop() == 0


PRE_REQUEST_ONLY_CONF = """
import json, os
bind = "127.0.0.1:{port}"
wsgi_app = "tests.apps.dropin_apps:wsgi"


def pre_request(worker, req):
    with open({hooks!r}, "a") as file:
        record = {{
            "pid": os.getpid(), "worker": worker.pid, "method": req.method, "path": req.path,
            "query": req.query, "uri": req.uri, "version": list(req.version), "headers": req.headers,
            "remote_addr": req.remote_addr,
        }}
        file.write(json.dumps(record) + "\\n")
"""


def test_a_config_with_only_a_pre_request_hook(spawn: Spawn, tmp_path: Path) -> None:  # noqa: F811
    # No other hook and no other setting of note: the hook alone runs before each request, with what
    # docs/gunicorn.md says it gets, in the worker that serves it, and the server serves as usual.
    hooks = tmp_path / "hooks.jsonl"
    port = free_port()
    (tmp_path / "gunicorn.conf.py").write_text(PRE_REQUEST_ONLY_CONF.format(port=port, hooks=str(hooks)))
    server = spawn([], port=port, cwd=tmp_path)
    server.wait_ready()

    def seen() -> list[dict[str, Any]]:
        return [json.loads(line) for line in hooks.read_text().splitlines()] if hooks.exists() else []

    with httpx.Client(base_url=server.url) as client:
        first = client.get("/some/path?x=1&y=2", headers={"X-Trace": "abc"})
        second = client.post("/form", content=b"a=1")
        third = client.get("/")
    for response in (first, second, third):
        assert response.status_code == 200
        assert response.json()["interface"] == "wsgi"
    records = seen()
    assert [(r["method"], r["path"], r["query"], r["uri"]) for r in records] == [
        ("GET", "/some/path", "x=1&y=2", "/some/path?x=1&y=2"),
        ("POST", "/form", "", "/form"),
        ("GET", "/", "", "/"),
    ]
    pid = first.json()["pid"]
    assert all(r["pid"] == r["worker"] == pid for r in records)  # in the worker that served them
    assert pid != server.proc.pid
    assert all(r["version"] == [1, 1] and r["remote_addr"] == "127.0.0.1" for r in records)
    assert ["X-TRACE", "abc"] in records[0]["headers"]
    assert "hook" not in server.output().replace("read settings and hooks from gunicorn.conf.py", "")
    assert server.stop() == 0
