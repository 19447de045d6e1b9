"""The test harness itself: servers started by a test process die with it, however it dies."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's"),
]

# A stand-in for a pytest process: starts a server the way the tests do, says which, and waits to be killed.
TEST_PROCESS = """\
import sys
from tests.conftest import TricornProcess
server = TricornProcess(sys.argv[1:]).wait_ready()
print(server.proc.pid, server._log.name, flush=True)
sys.stdin.read()
"""


def alive(pid: int) -> bool:
    """Whether ``pid`` runs: a zombie (dead, not yet reaped by whoever inherited it) does not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if int((entry / "stat").read_text().rpartition(")")[2].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def wait_until(predicate: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)  # polling a condition, not waiting for time to pass
    return True


@pytest.mark.parametrize("options", [[], ["--workers", "2"]], ids=["single", "workers"])
def test_servers_die_with_a_killed_test_process(options: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen(
        [sys.executable, "-c", TEST_PROCESS, *options, "tests.apps.basic:app"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    ) as test_process:
        assert test_process.stdout is not None
        server_pid, log_name = 0, ""
        try:
            line = test_process.stdout.readline()  # the server is ready, or the stand-in failed (EOF)
            server_pid, log_name = int(line.split()[0]), line.split()[1]
            workers = 2 if options else 0
            assert wait_until(lambda: len(children(server_pid)) == workers), Path(log_name).read_text()
            processes = [server_pid, *children(server_pid)]
            assert all(alive(pid) for pid in processes)

            test_process.kill()  # no atexit, no fixture teardown: only the kernel can tell the server
            test_process.wait()

            assert wait_until(lambda: not any(alive(pid) for pid in processes)), Path(log_name).read_text()
        finally:
            test_process.kill()
            if server_pid and alive(server_pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(server_pid, signal.SIGKILL)
            if log_name:
                with contextlib.suppress(OSError):
                    os.unlink(log_name)
