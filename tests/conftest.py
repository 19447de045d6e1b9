"""Shared fixtures: real tricorn processes on free ports."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ("httptools", "h11")


# Servers run in their own session (a test can signal the whole group, and a Ctrl-C at the terminal
# does not reach them), so an interrupted test run would leave them behind: whatever is still alive when
# the test process exits is killed, group and all. A test process that is killed itself (SIGKILL, a CI
# timeout) runs no atexit: for that, servers are started through die_with_parent.
_LIVE: set[subprocess.Popen[Any]] = set()

# Run in the child, between fork and the server's exec: ask the kernel for SIGTERM when the parent dies
# (prctl(PR_SET_PDEATHSIG), Linux; kept across execve, lost only by set-user-ID programs), then check the
# parent is still the one that started us: if it died before prctl ran, we were already reparented and no
# signal will ever come. A launcher process rather than Popen's preexec_fn, which is unsafe when the
# parent has threads (fork copies one thread; Python code in the child may wait on a lock another held).
_DIE_WITH_PARENT = """\
import ctypes, os, signal, sys
PR_SET_PDEATHSIG = 1
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
    sys.exit("prctl(PR_SET_PDEATHSIG): " + os.strerror(ctypes.get_errno()))
if os.getppid() != int(sys.argv[1]):
    sys.exit("the test process died before its server started")
os.execvp(sys.argv[2], sys.argv[2:])
"""


def die_with_parent(argv: Sequence[str]) -> list[str]:
    """``argv`` run so that the process gets SIGTERM when this process dies, however it dies (on Linux;
    elsewhere ``argv`` as is). The process keeps its pid: the launcher execs ``argv``. The kernel sends the
    signal when the *thread* that started the process ends: start servers from the main thread (pytest's,
    and each pytest-xdist worker's), or from a thread that outlives them."""
    if not sys.platform.startswith("linux"):
        return list(argv)
    # -I -S: the launcher needs only ctypes, and starts in about 40 ms instead of 60.
    return [sys.executable, "-I", "-S", "-c", _DIE_WITH_PARENT, str(os.getpid()), *argv]


@contextlib.contextmanager
def child_process(argv: Sequence[str], env: dict[str, str], cwd: Path) -> Iterator[subprocess.Popen[str]]:
    """``argv`` started as the servers of the tests are (it dies with this process, in a session of its
    own), its output and errors in one text pipe; killed with its process group on the way out."""
    proc = subprocess.Popen(
        die_with_parent(argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )
    _LIVE.add(proc)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.stdout is not None and not proc.stdout.closed:
            proc.communicate()  # read what is left, and close the pipe
        proc.wait()


@atexit.register
def _kill_leftovers() -> None:
    for proc in _LIVE:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TricornProcess:
    """A ``python -m tricorn`` child process; its output goes to a file read back by ``output()``."""

    def __init__(
        self, args: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> None:
        self.port = free_port()
        self.host = "127.0.0.1"
        self.url = f"http://{self.host}:{self.port}"
        self._log = tempfile.NamedTemporaryFile(prefix="tricorn-", suffix=".log", delete=False)  # noqa: SIM115
        full_env = dict(os.environ)
        full_env["PYTHONPATH"] = os.pathsep.join([str(ROOT), full_env.get("PYTHONPATH", "")])
        full_env.update(env or {})
        argv = [sys.executable, "-m", "tricorn", *args]
        if not any(a.startswith(("--port", "--bind", "-b")) for a in args):
            argv += ["--port", str(self.port)]
        self.proc = subprocess.Popen(
            die_with_parent(argv),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=cwd or ROOT,
            start_new_session=True,
        )
        _LIVE.add(self.proc)

    def wait_ready(self, timeout: float = 20.0) -> TricornProcess:
        """Wait until the port accepts a connection (or the process dies).

        The port is this process's only once it says so: free_port() gives a port that was free, and
        another test's server (or a client's ephemeral port) may take it before this process binds; a
        connection would then reach that one. So readiness also waits for the "listening on" line (when
        the log level shows it), or, without it, for the process to be still alive a moment later."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tricorn exited with {self.proc.returncode}:\n{self.output()}")
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), timeout=0.5):
                if self._says_listening(deadline):
                    return self
            time.sleep(0.02)
        raise TimeoutError(f"tricorn did not start listening within {timeout}s:\n{self.output()}")

    def _says_listening(self, deadline: float) -> bool:
        grace = time.monotonic() + 0.5
        while time.monotonic() < min(deadline, grace):
            if "listening on" in self.output():
                return True
            if self.proc.poll() is not None:
                raise RuntimeError(f"tricorn exited with {self.proc.returncode}:\n{self.output()}")
            time.sleep(0.01)
        return self.proc.poll() is None

    def output(self) -> str:
        return Path(self._log.name).read_text(errors="replace")

    def send_signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signum)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.send_signal(signum)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode

    def wait(self, timeout: float = 20.0) -> int:
        return self.proc.wait(timeout)

    def close(self) -> None:
        self.stop()
        self._log.close()
        with contextlib.suppress(OSError):
            os.unlink(self._log.name)


@pytest.fixture
def tricorn() -> Iterator[type[TricornProcess]]:
    """Start tricorn processes: ``tricorn(["tests.apps.basic:app"]).wait_ready()``; all are stopped after."""
    started: list[TricornProcess] = []

    class Started(TricornProcess):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            started.append(self)

    yield Started
    for proc in started:
        proc.close()


def raw_request(port: int, data: bytes, timeout: float = 5.0, read_all: bool = True) -> bytes:
    """Send raw bytes, half-close, and read until the server closes (or ``timeout``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                if not read_all:
                    break
        except TimeoutError:
            pass
        return b"".join(chunks)


WAIT_DEADLINE = 30.0  # generous: the suite shares two cores; a condition that holds costs only its own time


def wait_for(
    predicate: Callable[[], object],
    timeout: float = WAIT_DEADLINE,
    what: str | Callable[[], str] = "condition",
) -> None:
    """Poll ``predicate`` until it is true (a condition, not a delay); TimeoutError, saying ``what``, after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what if isinstance(what, str) else what()} not reached within {timeout}s")
        time.sleep(0.01)  # polling a condition, not waiting for time to pass


def rss_kib(pid: int) -> int:
    """The resident set size of process ``pid``, in KiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def ws_frame(
    opcode: int,
    payload: bytes,
    fin: bool = True,
    mask: bool = True,
    rsv: int = 0,
    length: int | None = None,
    key: bytes | None = None,
) -> bytes:
    """A WebSocket frame as a client sends it (RFC 6455 §5.2), built independently of the server's code.
    ``length`` overrides the declared payload length; ``key`` is the masking key (random if None)."""
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    n = len(payload) if length is None else length
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4) if key is None else key
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


# -- Shared fixtures of the end-to-end tests that drive real applications and a real browser -----------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def django_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh ``django-admin startproject mysite`` (DEBUG on, the admin routed, no database made)."""
    directory = tmp_path_factory.mktemp("django")
    django_admin = Path(sys.executable).with_name("django-admin")
    subprocess.run([str(django_admin), "startproject", "mysite", str(directory)], check=True, timeout=60)
    return directory


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium driven by selenium (Debian's chromium and chromium-driver); skipped, saying what
    to install, without them."""
    if not shutil.which(CHROMIUM) or not shutil.which(CHROMEDRIVER):
        pytest.skip("headless chromium is not installed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=900,700",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
