"""CGI/1.1 end to end: real scripts (POSIX sh, Python, Perl) in temp dirs, run by a real server, asked by
real clients (httpx over HTTP/1.1 and HTTP/2, curl, raw sockets)."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import TricornProcess, raw_request, rss_kib, wait_for

pytestmark = pytest.mark.e2e

PY = sys.executable

SCRIPTS = {
    "hello.sh": """\
        #!/bin/sh
        printf 'Content-Type: text/plain\\r\\n\\r\\nhello from sh\\n'
        """,
    "env.sh": """\
        #!/bin/sh
        printf 'Content-Type: text/plain\\n\\n'
        env
        """,
    "cwd.sh": """\
        #!/bin/sh
        printf 'Content-Type: text/plain\\n\\n'
        pwd
        """,
    "hello.pl": """\
        #!/usr/bin/perl
        print "Status: 201 Created\\r\\nContent-Type: text/plain\\r\\nX-Lang: perl\\r\\n\\r\\n";
        print "hello from perl $ENV{QUERY_STRING}\\n";
        """,
    "echo.py": f"""\
        #!{PY}
        import hashlib, os, sys
        data = sys.stdin.buffer.read()
        sys.stdout.buffer.write(b"Content-Type: text/plain\\n\\n")
        sys.stdout.buffer.write(("%s %d %s" % (os.environ.get("CONTENT_LENGTH"), len(data),
                                 hashlib.sha256(data).hexdigest())).encode())
        """,
    "big.sh": """\
        #!/bin/sh
        printf 'Content-Type: application/octet-stream\\n\\n'
        exec head -c "$QUERY_STRING" /dev/zero
        """,
    "redirect.sh": """\
        #!/bin/sh
        printf 'Location: https://example.com/elsewhere\\n\\n'
        """,
    "local.sh": """\
        #!/bin/sh
        printf 'Location: /cgi-bin/hello.pl?from-local\\n\\n'
        """,
    "toapp.sh": """\
        #!/bin/sh
        printf 'Location: /somewhere/else?q=1\\n\\n'
        """,
    "toapi.sh": """\
        #!/bin/sh
        printf 'Location: /api/x%%20y?q=1\\n\\n'
        """,
    "loop.sh": """\
        #!/bin/sh
        printf 'Location: /cgi-bin/loop.sh\\n\\n'
        """,
    "notype.sh": """\
        #!/bin/sh
        printf 'X-Thing: 1\\n\\nbody\\n'
        """,
    "garbage.sh": """\
        #!/bin/sh
        printf 'this is not a header\\n\\n'
        """,
    "crash.sh": """\
        #!/bin/sh
        echo "about to fail" >&2
        exit 3
        """,
    "nph-raw.sh": """\
        #!/bin/sh
        printf 'HTTP/1.1 299 Whatever\\r\\nContent-Type: text/x-nph\\r\\nStatus: not-parsed\\r\\n\\r\\nraw body'
        """,
    "stderr.sh": """\
        #!/bin/sh
        printf 'line one\\nline\\033[31m two\\n' >&2
        printf 'Content-Type: text/plain\\n\\nok'
        """,
    "session.sh": """\
        #!/bin/sh
        printf 'Content-Type: text/plain\\n\\n'
        echo $$
        cat /proc/$$/stat
        readlink /proc/$$/fd/0
        """,
    "slow.sh": """\
        #!/bin/sh
        echo $$ > "$QUERY_STRING.pid"
        sleep 1000 &
        echo $! > "$QUERY_STRING.child"
        sleep 1000
        """,
    "slowbody.sh": """\
        #!/bin/sh
        printf 'Content-Type: text/plain\\n\\nfirst part\\n'
        echo $$ > "$QUERY_STRING.pid"
        sleep 1000
        """,
    "waiting.sh": """\
        #!/bin/sh
        sleep 0.2
        echo "still waiting" >&2
        while [ ! -e "$QUERY_STRING.go" ]; do sleep 0.02; done
        printf 'Content-Type: text/plain\\n\\ndone\\n'
        """,
    "quick.sh": """\
        #!/bin/sh
        echo $$ > "$QUERY_STRING.pid"
        while [ ! -e "$QUERY_STRING.go" ]; do sleep 0.02; done
        printf 'Content-Type: text/plain\\n\\nfinished\\n'
        """,
}


@pytest.fixture(scope="module")
def cgi_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cgi")
    scripts = root / "cgi-bin"
    scripts.mkdir()
    for name, text in SCRIPTS.items():
        path = scripts / name
        path.write_text(textwrap.dedent(text))
        path.chmod(0o755)
    (scripts / "plain.sh").write_text("#!/bin/sh\necho hi\n")  # not executable
    (scripts / ".hidden.sh").write_text(textwrap.dedent(SCRIPTS["hello.sh"]))
    (scripts / ".hidden.sh").chmod(0o755)
    (scripts / "sub").mkdir()
    (scripts / "sub" / "deep.sh").write_text(textwrap.dedent(SCRIPTS["hello.sh"]))
    (scripts / "sub" / "deep.sh").chmod(0o755)
    outside = root / "outside.sh"
    outside.write_text(textwrap.dedent(SCRIPTS["hello.sh"]))
    outside.chmod(0o755)
    (scripts / "escape.sh").symlink_to(outside)
    (scripts / "inside.sh").symlink_to(scripts / "hello.sh")
    (scripts / "escape-dir").symlink_to(root)  # a directory out of the directory
    (scripts / "loop").symlink_to(scripts)  # the directory itself under another name
    # Names only a lenient decoding reaches: each would run if its path were let through.
    for name in ("%2e%2e/hello.sh", "hello\n.sh", os.fsdecode(b"\xc0\xae.sh"), "%zz.sh"):
        (scripts / name).parent.mkdir(exist_ok=True)
        (scripts / name).write_text(textwrap.dedent(SCRIPTS["hello.sh"]))
        (scripts / name).chmod(0o755)
    return scripts


def start_cgi(
    start: type[TricornProcess],
    cgi_dir: Path,
    *args: str,
    timeout: float | None = None,
    max_concurrent: int | None = None,
    env: dict[str, str] | None = None,
) -> TricornProcess:
    """A server with ``cgi_dir`` at /cgi-bin (``--cgi``) in front of a small app."""
    argv = ["tests.apps.cgi_apps:app", "--cgi", f"/cgi-bin={cgi_dir}", *args]
    if timeout is not None:
        argv += ["--cgi-timeout", str(timeout)]
    if max_concurrent is not None:
        argv += ["--cgi-max-concurrent", str(max_concurrent)]
    return start(argv, env=env).wait_ready()


@pytest.fixture(scope="module")
def server(cgi_dir: Path) -> Iterator[TricornProcess]:
    proc = start_cgi(TricornProcess, cgi_dir, env={"TRICORN_TEST_SECRET": "s3cret-value"})
    yield proc
    proc.close()


def gone(pid: int) -> bool:
    """``pid`` is neither running nor a zombie left unreaped by its parent (a zombie whose parent is
    init, as an orphaned grandchild becomes, is init's to reap)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return fields[0] == "Z" and fields[1] == "1"


def read_pid(path: Path) -> int:
    wait_for(lambda: path.exists() and path.read_text().strip(), what=f"{path} written")
    return int(path.read_text())


# -- the basics, on each language


def test_sh_script(server: TricornProcess) -> None:
    r = httpx.get(f"{server.url}/cgi-bin/hello.sh")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain"
    assert r.text == "hello from sh\n"


def test_perl_script_with_status(server: TricornProcess) -> None:
    r = httpx.get(f"{server.url}/cgi-bin/hello.pl?a=1&b=%20")
    assert r.status_code == 201
    assert r.headers["x-lang"] == "perl"
    assert r.text == "hello from perl a=1&b=%20\n"  # QUERY_STRING is raw (§4.1.7)


def test_script_in_a_subdirectory_and_its_working_directory(server: TricornProcess, cgi_dir: Path) -> None:
    assert httpx.get(f"{server.url}/cgi-bin/sub/deep.sh").text == "hello from sh\n"
    assert httpx.get(f"{server.url}/cgi-bin/cwd.sh").text.strip() == str(cgi_dir)  # §7.2


def test_head_request_sends_no_body(server: TricornProcess) -> None:
    r = httpx.head(f"{server.url}/cgi-bin/hello.sh")
    assert r.status_code == 200 and r.content == b""


def test_other_paths_go_to_the_app(server: TricornProcess) -> None:
    assert httpx.get(f"{server.url}/cgi-binary").text == "app /cgi-binary"
    assert httpx.get(f"{server.url}/x").text == "app /x"


# -- meta-variables


def env_of(server: TricornProcess, target: str = "/cgi-bin/env.sh", **kwargs: object) -> dict[str, str]:
    r = httpx.request(kwargs.pop("method", "GET"), f"{server.url}{target}", **kwargs)  # type: ignore[arg-type]
    assert r.status_code == 200, r.text
    return dict(line.split("=", 1) for line in r.text.splitlines() if "=" in line)


def test_meta_variables(server: TricornProcess, cgi_dir: Path) -> None:
    env = env_of(
        server,
        "/cgi-bin/env.sh/extra/p%20ath?x=%41&y",
        method="POST",
        content=b"a=1",
        headers={"content-type": "application/x-www-form-urlencoded", "x-custom": "v", "accept": "text/a"},
    )
    assert env["GATEWAY_INTERFACE"] == "CGI/1.1"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["SERVER_SOFTWARE"].startswith("tricorn")
    assert env["SERVER_NAME"] == "127.0.0.1"
    assert env["SERVER_PORT"] == str(server.port)
    assert env["REQUEST_METHOD"] == "POST"
    assert env["SCRIPT_NAME"] == "/cgi-bin/env.sh"
    assert env["PATH_INFO"] == "/extra/p ath"  # decoded (§4.1.5)
    assert env["PATH_TRANSLATED"] == f"{cgi_dir}/extra/p ath"
    assert env["QUERY_STRING"] == "x=%41&y"
    assert env["CONTENT_TYPE"] == "application/x-www-form-urlencoded"
    assert env["CONTENT_LENGTH"] == "3"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert int(env["REMOTE_PORT"]) > 0
    assert env["HTTP_X_CUSTOM"] == "v"
    assert env["HTTP_ACCEPT"] == "text/a"
    assert env["HTTP_HOST"] == f"127.0.0.1:{server.port}"
    assert env["PATH"] == "/usr/local/bin:/usr/bin:/bin"
    assert "HTTPS" not in env
    assert "HTTP_CONTENT_LENGTH" not in env and "HTTP_CONTENT_TYPE" not in env


def test_environment_is_built_from_scratch(server: TricornProcess) -> None:
    # The server runs with TRICORN_TEST_SECRET (and the whole test environment): none of it reaches a script.
    env = env_of(server)
    assert "TRICORN_TEST_SECRET" not in env
    assert not any("s3cret-value" in value for value in env.values())
    allowed = {
        "GATEWAY_INTERFACE", "SERVER_PROTOCOL", "SERVER_SOFTWARE", "SERVER_NAME", "SERVER_PORT",
        "REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "REMOTE_ADDR", "REMOTE_HOST",
        "REMOTE_PORT", "REQUEST_SCHEME", "PATH", "PWD", "SHLVL", "_",  # (the last three are sh's own)
    }  # fmt: skip
    assert {k for k in env if not k.startswith("HTTP_")} <= allowed, env


def test_a_script_leads_its_own_session_without_a_terminal(server: TricornProcess) -> None:
    pid, stat_line, stdin = httpx.get(f"{server.url}/cgi-bin/session.sh").text.splitlines()
    pgrp, session, tty = stat_line.rsplit(")", 1)[1].split()[2:5]
    assert (pgrp, session) == (pid, pid)  # setsid: its own session and process group (killed as one)
    assert tty == "0"  # no controlling terminal
    assert stdin == "/dev/null"  # a request without a body: nothing of the server's stdin


def test_httpoxy_and_credentials_are_not_passed(server: TricornProcess) -> None:
    env = env_of(
        server,
        headers={
            "proxy": "http://evil.example:8080",
            "authorization": "Basic dXNlcjpwYXNz",
            "x_forwarded_for": "1.2.3.4",
            "x-forwarded-for": "5.6.7.8",
            "cookie": "a=1",
        },
    )
    assert "HTTP_PROXY" not in env  # CVE-2016-5385
    assert "HTTP_AUTHORIZATION" not in env  # §4.1.18
    assert env["HTTP_X_FORWARDED_FOR"] == "5.6.7.8"  # not shadowed by the underscore spelling
    assert env["HTTP_COOKIE"] == "a=1"


def test_repeated_fields_are_joined(server: TricornProcess) -> None:
    reply = raw_request(
        server.port,
        b"GET /cgi-bin/env.sh HTTP/1.1\r\nHost: x.test:81\r\nX-A: 1\r\nX-A: 2\r\nConnection: close\r\n\r\n",
    )
    assert b"HTTP_X_A=1, 2\n" in reply
    assert b"SERVER_NAME=x.test\n" in reply
    assert b"HTTP_CONNECTION" not in reply


# -- the script's answer


def test_client_redirect(server: TricornProcess) -> None:
    r = httpx.get(f"{server.url}/cgi-bin/redirect.sh")
    assert r.status_code == 302
    assert r.headers["location"] == "https://example.com/elsewhere"


def test_local_redirect_to_another_script(server: TricornProcess) -> None:
    r = httpx.get(f"{server.url}/cgi-bin/local.sh")
    assert r.status_code == 201  # hello.pl's own status: the redirect happened inside the server
    assert r.text == "hello from perl from-local\n"


def test_local_redirect_to_the_app(server: TricornProcess) -> None:
    r = httpx.post(f"{server.url}/cgi-bin/toapp.sh", content=b"body")
    assert r.status_code == 200
    assert r.text == "app /somewhere/else"


def test_local_redirect_loop_is_bounded(server: TricornProcess) -> None:
    r = httpx.get(f"{server.url}/cgi-bin/loop.sh")
    assert r.status_code == 502
    wait_for(lambda: "more than 10 local redirects" in server.output(), what="the loop's log line")


@pytest.mark.parametrize(
    ("script", "logged"),
    [
        ("notype.sh", "no content-type"),
        ("garbage.sh", "malformed header line"),
        ("crash.sh", "no output"),
    ],
)
def test_bad_answers_are_502(server: TricornProcess, script: str, logged: str) -> None:
    r = httpx.get(f"{server.url}/cgi-bin/{script}")
    assert r.status_code == 502
    assert "Traceback" not in r.text
    wait_for(
        lambda: f"cgi script /cgi-bin/{script}: " in server.output() and logged in server.output(),
        what=logged,
    )


def test_nph_script_passes_through(server: TricornProcess) -> None:
    r = httpx.get(f"{server.url}/cgi-bin/nph-raw.sh")
    assert r.status_code == 299
    assert r.headers["content-type"] == "text/x-nph"
    assert r.headers["status"] == "not-parsed"  # no CGI meaning given to any field
    assert r.text == "raw body"


def test_stderr_goes_to_the_log_one_escaped_line_each(server: TricornProcess) -> None:
    assert httpx.get(f"{server.url}/cgi-bin/stderr.sh").text == "ok"
    wait_for(lambda: "stderr: line\\x1b[31m two" in server.output(), what="the stderr lines")
    assert "cgi script /cgi-bin/stderr.sh: stderr: line one\n" in server.output()


# -- which files run


@pytest.mark.parametrize(
    ("target", "status"),
    [
        ("/cgi-bin/plain.sh", 403),  # not executable
        ("/cgi-bin/sub", 403),  # a directory
        ("/cgi-bin/", 403),
        ("/cgi-bin/missing.sh", 404),
        ("/cgi-bin/.hidden.sh", 404),
        ("/cgi-bin/%2ehidden.sh", 404),
        ("/cgi-bin/../outside.sh", 404),
        ("/cgi-bin/%2e%2e/outside.sh", 404),
        ("/cgi-bin/sub%2f..%2fhello.sh", 404),
        ("/cgi-bin/escape.sh", 404),  # a symlink out of the directory
        ("/cgi-bin/hello.sh%00", 404),
        ("/cgi-bin//hello.sh", 404),
        ("/cgi-bin/sub\\..\\hello.sh", 404),
        ("/cgi-bin/escape-dir/outside.sh", 404),
        ("/cgi-bin/loop/hello.sh", 404),
        ("/cgi-bin/sub%5c..%5chello.sh", 404),
        ("/cgi-bin/%252e%252e/hello.sh", 404),  # double encoding ("%2e%2e" after one decoding)
        ("/cgi-bin/%c0%ae.sh", 404),  # an overlong "."
        ("/cgi-bin/hello%0a.sh", 404),  # a control character
        ("/cgi-bin/%zz.sh", 404),  # a malformed escape
    ],
)
def test_refused_paths(server: TricornProcess, target: str, status: int) -> None:
    reply = raw_request(
        server.port, f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    )
    assert reply.startswith(f"HTTP/1.1 {status} ".encode()), reply[:200]


def test_websocket_under_the_prefix_is_404(server: TricornProcess) -> None:
    reply = raw_request(
        server.port,
        b"GET /cgi-bin/hello.sh HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    assert reply.startswith(b"HTTP/1.1 404 "), reply[:100]


def test_symlink_inside_is_followed(server: TricornProcess) -> None:
    assert httpx.get(f"{server.url}/cgi-bin/inside.sh").text == "hello from sh\n"


# -- bodies, both ways


def test_large_upload_streams_to_stdin(server: TricornProcess) -> None:
    data = os.urandom(1 << 20) * 24
    r = httpx.post(f"{server.url}/cgi-bin/echo.py", content=data, timeout=60)
    assert r.text == f"{len(data)} {len(data)} {hashlib.sha256(data).hexdigest()}"


def test_a_script_that_reads_no_body_still_answers(server: TricornProcess) -> None:
    r = httpx.post(f"{server.url}/cgi-bin/hello.sh", content=b"x" * 3_000_000, timeout=30)
    assert r.status_code == 200 and r.text == "hello from sh\n"


def test_chunked_upload_gets_its_content_length(server: TricornProcess) -> None:
    parts = [b"x" * 1000, b"y" * 5000, b"z"]
    r = httpx.post(f"{server.url}/cgi-bin/echo.py", content=iter(parts))  # chunked
    data = b"".join(parts)
    assert r.text == f"{len(data)} {len(data)} {hashlib.sha256(data).hexdigest()}"


def test_long_chunked_upload_is_411(server: TricornProcess) -> None:
    parts = [b"x" * 65536] * 20
    r = httpx.post(f"{server.url}/cgi-bin/echo.py", content=iter(parts))
    assert r.status_code == 411


def test_large_download_to_a_slow_reader_holds_bounded_memory(server: TricornProcess) -> None:
    size = 200 * 1024 * 1024
    before = rss_kib(server.proc.pid)
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(f"GET /cgi-bin/big.sh?{size} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        got = sock.recv(65536)
        time.sleep(1.0)  # the reader stalls: the script must stall too, not the server's memory grow
        assert rss_kib(server.proc.pid) - before < 32 * 1024
        total = 0
        head, _, rest = got.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        pending = rest
        while True:
            total += len(pending)
            if total > size:
                break
            pending = sock.recv(1 << 20)
            if not pending or pending.endswith(b"0\r\n\r\n"):
                total += len(pending)
                break
    assert total > size  # the body, with its chunk framing


# -- ending scripts


def test_timeout_before_the_answer_is_504(
    cgi_dir: Path, tricorn: type[TricornProcess], tmp_path: Path
) -> None:
    server = start_cgi(tricorn, cgi_dir, timeout=1)
    marker = tmp_path / "t"
    r = httpx.get(f"{server.url}/cgi-bin/slow.sh?{marker}", timeout=30)
    assert r.status_code == 504
    pid, child = read_pid(marker.with_suffix(".pid")), read_pid(marker.with_suffix(".child"))
    wait_for(lambda: gone(pid) and gone(child), what="the script and its child killed and reaped")
    assert "killed after --cgi-timeout 1s" in server.output()


def test_timeout_after_the_answer_began_cuts_it(
    cgi_dir: Path, tricorn: type[TricornProcess], tmp_path: Path
) -> None:
    server = start_cgi(tricorn, cgi_dir, timeout=1)
    marker = tmp_path / "b"
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(f"{server.url}/cgi-bin/slowbody.sh?{marker}", timeout=30)
    pid = read_pid(marker.with_suffix(".pid"))
    wait_for(lambda: gone(pid), what="the script killed")


def test_client_disconnect_kills_the_process_group(server: TricornProcess, tmp_path: Path) -> None:
    marker = tmp_path / "d"
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(f"GET /cgi-bin/slow.sh?{marker} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    pid, child = read_pid(marker.with_suffix(".pid")), read_pid(marker.with_suffix(".child"))
    assert not gone(pid) and not gone(child)
    sock.close()
    wait_for(lambda: gone(pid) and gone(child), what="the script and its child killed and reaped")


def test_client_leaving_during_the_upload_kills_the_script(server: TricornProcess, tmp_path: Path) -> None:
    marker = tmp_path / "u"
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(
        f"POST /cgi-bin/slow.sh?{marker} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n".encode()
        + b"x" * 1000
    )
    pid, child = read_pid(marker.with_suffix(".pid")), read_pid(marker.with_suffix(".child"))
    sock.close()
    wait_for(lambda: gone(pid) and gone(child), what="the script and its child killed and reaped")


def test_stderr_of_a_running_script_is_logged_as_it_comes(server: TricornProcess, tmp_path: Path) -> None:
    marker = tmp_path / "e"
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(f"GET /cgi-bin/waiting.sh?{marker} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    wait_for(lambda: "waiting.sh: stderr: still waiting" in server.output(), what="the line, while it runs")
    marker.with_suffix(".go").touch()
    assert b"done" in sock.recv(65536) + sock.recv(65536)
    sock.close()


def test_concurrency_limit_is_503(cgi_dir: Path, tricorn: type[TricornProcess], tmp_path: Path) -> None:
    server = start_cgi(tricorn, cgi_dir, max_concurrent=1)
    marker = tmp_path / "c"
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(f"GET /cgi-bin/quick.sh?{marker} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    read_pid(marker.with_suffix(".pid"))
    r = httpx.get(f"{server.url}/cgi-bin/hello.sh")
    assert r.status_code == 503
    assert r.headers["retry-after"] == "1"
    marker.with_suffix(".go").touch()
    assert b"finished" in sock.recv(65536) + sock.recv(65536)
    sock.close()
    wait_for(lambda: httpx.get(f"{server.url}/cgi-bin/hello.sh").status_code == 200, what="a free slot")


def test_graceful_shutdown_finishes_quick_scripts_and_kills_the_rest(
    cgi_dir: Path, tricorn: type[TricornProcess], tmp_path: Path
) -> None:
    server = start_cgi(tricorn, cgi_dir, "--timeout-graceful-shutdown", "2")
    quick, slow = tmp_path / "q", tmp_path / "s"
    a = socket.create_connection(("127.0.0.1", server.port))
    a.sendall(f"GET /cgi-bin/quick.sh?{quick} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    b = socket.create_connection(("127.0.0.1", server.port))
    b.sendall(f"GET /cgi-bin/slow.sh?{slow} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    quick_pid = read_pid(quick.with_suffix(".pid"))
    slow_pid, child = read_pid(slow.with_suffix(".pid")), read_pid(slow.with_suffix(".child"))
    server.send_signal(signal.SIGTERM)
    wait_for(lambda: "shutting down gracefully" in server.output(), what="the shutdown")
    quick.with_suffix(".go").touch()
    reply = b""
    while chunk := a.recv(65536):
        reply += chunk
    assert reply.startswith(b"HTTP/1.1 200") and b"finished" in reply
    assert server.wait() == 0
    for pid in (quick_pid, slow_pid, child):
        wait_for(lambda pid=pid: gone(pid), what=f"process {pid} gone")  # type: ignore[misc]
    a.close()
    b.close()


# -- over every protocol, and under pre-fork workers


def test_over_http2(server: TricornProcess) -> None:
    with httpx.Client(base_url=server.url, http1=False, http2=True) as client:
        r = client.get("/cgi-bin/hello.pl?h2")
        assert r.http_version == "HTTP/2"
        assert r.status_code == 201 and r.text == "hello from perl h2\n"
        env = dict(
            line.split("=", 1) for line in client.get("/cgi-bin/env.sh").text.splitlines() if "=" in line
        )
        assert env["SERVER_PROTOCOL"] == "HTTP/2.0"
        data = os.urandom(300_000)
        r = client.post("/cgi-bin/echo.py", content=data)  # (httpx sends a content-length)
        assert r.text == f"{len(data)} {len(data)} {hashlib.sha256(data).hexdigest()}"
        r = client.post("/cgi-bin/echo.py", content=iter([data[:1000], data[1000:2000]]))  # no length
        assert r.text == f"2000 2000 {hashlib.sha256(data[:2000]).hexdigest()}"
        assert client.get("/cgi-bin/big.sh?3000000").content == b"\0" * 3_000_000


def test_local_redirect_to_a_wsgi_app_redirects_the_client(
    cgi_dir: Path, tricorn: type[TricornProcess]
) -> None:
    server = tricorn(["tests.apps.wsgi_basic:app", "--cgi", f"/cgi-bin={cgi_dir}"]).wait_ready()
    r = httpx.get(f"{server.url}/cgi-bin/toapp.sh")
    assert r.status_code == 302
    assert r.headers["location"] == "/somewhere/else?q=1"
    assert httpx.get(f"{server.url}/cgi-bin/hello.pl").status_code == 201


def test_script_name_under_a_root_path(cgi_dir: Path, tricorn: type[TricornProcess]) -> None:
    server = start_cgi(tricorn, cgi_dir, "--root-path", "/mounted")
    env = env_of(server, "/cgi-bin/env.sh/x")
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/mounted/cgi-bin/env.sh", "/x")


def test_http2_stream_reset_kills_the_script_and_the_connection_serves_on(
    server: TricornProcess, tmp_path: Path
) -> None:
    from tests.e2e.test_http2 import H2Client

    marker = tmp_path / "h2"
    client = H2Client(server.port)
    stream = client.send_headers(f"/cgi-bin/slow.sh?{marker}")
    pid, child = read_pid(marker.with_suffix(".pid")), read_pid(marker.with_suffix(".child"))
    client.reset(stream)
    wait_for(lambda: gone(pid) and gone(child), what="the script and its child killed and reaped")
    with httpx.Client(base_url=server.url, http1=False, http2=True) as other:
        assert other.get("/cgi-bin/hello.sh").text == "hello from sh\n"
    client.sock.close()


def test_local_redirect_to_a_mounted_app(cgi_dir: Path, tricorn: type[TricornProcess]) -> None:
    server = start_cgi(tricorn, cgi_dir, "--mount", "/api=tests.apps.mounts:api")
    facts = httpx.get(f"{server.url}/cgi-bin/toapi.sh").json()
    assert (facts["app"], facts["root_path"], facts["path"]) == ("api", "/api", "/api/x y")
    assert facts["state_owner"] == "api"  # the mounted app's own lifespan state


def test_over_tls_with_curl(cgi_dir: Path, tricorn: type[TricornProcess], tmp_path: Path) -> None:
    from tests.e2e.test_tls import Certs

    certs = Certs(tmp_path)
    server = start_cgi(tricorn, cgi_dir, *certs.args())
    for flag in ("--http1.1", "--http2"):
        out = subprocess.run(
            ["curl", "-s", "--cacert", str(certs.ca_file), flag,
             f"https://127.0.0.1:{server.port}/cgi-bin/env.sh"],
            capture_output=True, check=True, timeout=30,
        ).stdout.decode()  # fmt: skip
        assert "HTTPS=on" in out and "REQUEST_SCHEME=https" in out


def test_under_two_workers(cgi_dir: Path, tricorn: type[TricornProcess], tmp_path: Path) -> None:
    server = start_cgi(tricorn, cgi_dir, "--workers", "2")
    with httpx.Client(base_url=server.url) as client:
        for _ in range(20):
            assert client.get("/cgi-bin/hello.sh").text == "hello from sh\n"
        marker = tmp_path / "w"
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(f"GET /cgi-bin/slow.sh?{marker} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        pid, child = read_pid(marker.with_suffix(".pid")), read_pid(marker.with_suffix(".child"))
        sock.close()
        wait_for(lambda: gone(pid) and gone(child), what="the script killed in its worker")
