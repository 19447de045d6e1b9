"""Starting a CGI script (tricorn.interfaces.cgi.spawn): the direct _posixsubprocess path and subprocess's
Popen, which must start a script the same way: its environment exactly, its directory, its own session,
stdin/stdout/stderr where they are given and nothing else open; an OSError when it cannot start."""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tricorn.interfaces import cgi

PROBE = f"""#!{sys.executable}
import os, sys
print(os.getcwd(), os.getpid() == os.getsid(0) == os.getpgid(0), sorted(os.listdir("/proc/self/fd")))
print(sorted(os.environ.items()))
sys.stderr.write("err" + sys.stdin.read())
"""


@pytest.fixture(params=["fork_exec", "popen"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "popen":
        monkeypatch.setattr(cgi, "_fork_exec", None)
    elif cgi._fork_exec is None:
        pytest.skip("no direct fork_exec on this Python")
    yield request.param


def run(path: Path, env: dict[bytes, bytes], stdin_data: bytes = b"") -> tuple[bytes, bytes, int]:
    in_r, in_w = os.pipe2(os.O_CLOEXEC)
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    try:
        pid = cgi.spawn(str(path), env, in_r, out_w, err_w)
    finally:
        for fd in (in_r, out_w, err_w):
            os.close(fd)
    os.write(in_w, stdin_data)
    os.close(in_w)
    out = b"".join(iter(lambda: os.read(out_r, 65536), b""))
    err = b"".join(iter(lambda: os.read(err_r, 65536), b""))
    os.close(out_r)
    os.close(err_r)
    _, status = os.waitpid(pid, 0)
    return out, err, os.waitstatus_to_exitcode(status)


def test_a_script_starts_alone_in_its_directory(mode: str, tmp_path: Path) -> None:
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    script.chmod(0o755)
    out, err, code = run(script, {b"ONLY": b"this", b"PATH": b"/usr/bin:/bin"}, b"-in")
    assert code == 0
    first, second = out.decode().splitlines()
    assert first == f"{tmp_path} True ['0', '1', '2', '3']"  # (3: listdir's own descriptor)
    assert "('ONLY', 'this')" in second and "TRICORN" not in second and "HOME" not in second
    assert err == b"err-in"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("echo no interpreter line\n", errno.ENOEXEC),
        ("#!/no/such/interpreter\n", errno.ENOENT),
    ],
)
def test_a_script_that_cannot_start_is_an_oserror(mode: str, tmp_path: Path, text: str, code: int) -> None:
    script = tmp_path / "bad"
    script.write_text(text)
    script.chmod(0o755)
    with pytest.raises(OSError) as info:
        run(script, {})
    assert info.value.errno == code
