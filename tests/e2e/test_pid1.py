"""tricorn as a container's PID 1, started as deploy/Dockerfile starts it (its ENV, ENTRYPOINT and CMD), in
a new PID namespace (unshare --pid --fork): no Docker engine needed to check what matters in one.

A namespace's PID 1 gets only the signals it has a handler for (pid_namespaces(7)): a server that left
SIGTERM at its default would ignore `docker stop` and be SIGKILLed 10 s later. These tests send SIGTERM
from outside, as the container runtime does, and hold that tricorn finishes the request in progress and
exits 0, alone and as a master with workers, and that the master reaps a process orphaned in the
container (an app's subprocess whose parent has gone), which would otherwise stay a zombie."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import child_process, free_port, wait_for
from tests.unit.test_deploy_files import DEPLOY, dockerfile_env, dockerfile_instructions

pytestmark = pytest.mark.e2e

APP = """\
import asyncio, os, subprocess

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/slow":
        await asyncio.sleep(1.0)
        body = b"slow done"
    elif path == "/orphan":
        # sh starts sleep in the background and exits: sleep's parent is gone, and the kernel gives it
        # to the namespace's PID 1.
        command = "sleep 1 </dev/null >/dev/null 2>&1 & echo $!"
        out = subprocess.run(["sh", "-c", command], capture_output=True, check=True).stdout
        body = out.strip()
    else:
        body = f"{os.getpid()} {os.getppid()}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})
"""


def proc_stat(pid: int) -> tuple[str, str, int] | None:
    """(comm, state, ppid) of ``pid``, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    comm = text[text.index("(") + 1 : text.rindex(")")]
    state, ppid = text[text.rindex(")") + 2 :].split()[:2]
    return comm, state, int(ppid)


def children(pid: int) -> dict[int, tuple[str, str]]:
    """The children of ``pid``: {pid: (comm, state)}."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = proc_stat(int(entry))
            if stat is not None and stat[2] == pid:
                found[int(entry)] = stat[:2]
    return found


@contextlib.contextmanager
def container(tmp_path: Path, workers: int) -> Iterator[tuple[subprocess.Popen[str], int, int, int]]:
    """deploy/Dockerfile's command and environment in a new PID namespace; yields (the unshare process,
    tricorn's pid outside the namespace, the application's port, the metrics port)."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    instructions = dict(dockerfile_instructions((DEPLOY / "Dockerfile").read_text()))
    argv = json.loads(instructions["ENTRYPOINT"]) + json.loads(instructions["CMD"])
    (tmp_path / "myapp").mkdir()
    (tmp_path / "myapp" / "__init__.py").write_text("")
    (tmp_path / "myapp" / "main.py").write_text(APP)
    port, metrics_port = free_port(), free_port()
    env = dict(os.environ)
    env.update(dockerfile_env(list(dockerfile_instructions((DEPLOY / "Dockerfile").read_text()))))
    # What `docker run -e` would override here: loopback, free ports, the number of workers.
    env.update(
        TRICORN_HOST="127.0.0.1",
        TRICORN_PORT=str(port),
        TRICORN_METRICS_BIND=f"127.0.0.1:{metrics_port}",
        WEB_CONCURRENCY=str(workers),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
    )
    with child_process(["unshare", "--pid", "--fork", "--kill-child", *argv], env, tmp_path) as proc:
        wait_for(lambda: proc.poll() is not None or children(proc.pid), what="the namespace's PID 1")
        if proc.poll() is not None:
            out = proc.communicate()[0]
            if "Operation not permitted" in out or "unshare failed" in out:
                pytest.skip(f"the kernel refuses a new PID namespace here: {out.strip()}")
            raise AssertionError(out)
        (pid1,) = children(proc.pid)
        yield proc, pid1, port, metrics_port


def get(port: int, path: str, timeout: float = 10.0) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=timeout, headers={"Connection": "close"})


def wait_serving(proc: subprocess.Popen[str], port: int) -> None:
    def answers() -> bool:
        assert proc.poll() is None, "tricorn exited"
        with contextlib.suppress(httpx.TransportError):
            return get(port, "/", timeout=2).status_code == 200
        return False

    wait_for(answers, what="tricorn answering")


def term_during_a_request(proc: subprocess.Popen[str], pid1: int, port: int) -> tuple[int, str]:
    """SIGTERM from outside the namespace while /slow is in progress: its response, then the exit."""
    result: dict[str, httpx.Response | BaseException] = {}

    def slow() -> None:
        try:
            result["response"] = get(port, "/slow")
        except BaseException as exc:  # reported below
            result["response"] = exc

    thread = threading.Thread(target=slow)
    thread.start()
    # The request is in: the server has accepted it (ESTABLISHED), and it takes a second to answer.
    wait_for(lambda: established(pid1, port) or any(established(c, port) for c in children(pid1)))
    os.kill(pid1, signal.SIGTERM)
    thread.join(30)
    response = result["response"]
    assert isinstance(response, httpx.Response), repr(response)
    assert response.text == "slow done"
    out = proc.communicate(timeout=30)[0]
    return proc.returncode, out


def established(pid: int, port: int) -> bool:
    """Whether ``pid`` holds an established TCP connection on ``port`` (the request being served)."""
    try:
        inodes = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
    except OSError:
        return False
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].rsplit(":", 1)[1], 16)
        if local_port == port and fields[3] == "01" and f"socket:[{fields[9]}]" in inodes:
            return True
    return False


def test_one_process_as_pid_1_stops_gracefully_on_sigterm(tmp_path: Path) -> None:
    with container(tmp_path, workers=1) as (proc, pid1, port, metrics_port):
        wait_serving(proc, port)
        assert get(port, "/").text == "1 0"  # the server itself is PID 1
        # The probes of deploy/kubernetes/deployment.yaml, on the metrics port.
        assert get(metrics_port, "/livez").status_code == 200
        assert get(metrics_port, "/readyz").status_code == 200
        code, out = term_during_a_request(proc, pid1, port)
    assert code == 0, out
    assert "received SIGTERM, shutting down gracefully" in out and "stopped" in out, out


def test_a_master_as_pid_1_reaps_orphans_and_stops_gracefully(tmp_path: Path) -> None:
    with container(tmp_path, workers=2) as (proc, pid1, port, metrics_port):
        wait_serving(proc, port)
        wait_for(lambda: get(metrics_port, "/readyz").status_code == 200, what="/readyz")
        assert get(metrics_port, "/livez").status_code == 200
        assert get(port, "/").text.endswith(" 1")  # a worker, whose parent is the master, PID 1
        workers = set(children(pid1))
        assert len(workers) == 2
        get(port, "/orphan")
        # The orphaned sleep is the master's child now; once it exits, the master reaps it.
        wait_for(lambda: set(children(pid1)) - workers, what="the orphan given to PID 1")
        wait_for(lambda: set(children(pid1)) == workers, what=lambda: f"the orphan reaped: {children(pid1)}")
        code, out = term_during_a_request(proc, pid1, port)
    assert code == 0, out
    assert "master stopped" in out, out
