"""The ``tricorn`` command end to end: real processes, their exit statuses, output, and what they serve.

Unlike the ``tricorn`` fixture, ``spawn`` adds no ``--port`` of its own and starts from an environment
without ``TRICORN_*`` variables, so the tests can set the port (and everything else) through each layer:
command line, environment, ``--config`` file, ``pyproject.toml``.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

import httpx
import pytest

import tricorn
from tests.conftest import ROOT, TricornProcess, die_with_parent, free_port

pytestmark = pytest.mark.e2e

APP = "tests.apps.basic:app"
GROUPS = [
    "General",
    "Application",
    "Binding",
    "Protocol",
    "Timeouts",
    "Limits",
    "Logging",
    "Processes",
    "Reload",
    "Configuration",
]


def clean_env(env: dict[str, str] | None) -> dict[str, str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("TRICORN_")}
    full["PYTHONPATH"] = os.pathsep.join([str(ROOT), full.get("PYTHONPATH", "")])
    full.update(env or {})
    return full


class Spawned(TricornProcess):
    """A tricorn process started with exactly ``args``; ``port`` is where the test expects it to listen."""

    def __init__(
        self, args: Sequence[str], port: int, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> None:
        self.port = port
        self.host = "127.0.0.1"
        self.url = f"http://{self.host}:{self.port}"
        self._log = tempfile.NamedTemporaryFile(prefix="tricorn-", suffix=".log", delete=False)  # noqa: SIM115
        self.proc = subprocess.Popen(
            die_with_parent([sys.executable, "-m", "tricorn", *args]),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=clean_env(env),
            cwd=cwd or ROOT,
            start_new_session=True,
        )

    def wait_unix_ready(self, path: str, timeout: float = 20.0) -> Spawned:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tricorn exited with {self.proc.returncode}:\n{self.output()}")
            with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as sock:
                sock.connect(path)
                return self
            time.sleep(0.02)  # polling for readiness
        raise TimeoutError(f"tricorn did not listen on {path}:\n{self.output()}")


class Spawn(Protocol):
    def __call__(
        self,
        args: Sequence[str],
        port: int | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Spawned: ...


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    started: list[Spawned] = []

    def start(
        args: Sequence[str],
        port: int | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Spawned:
        proc = Spawned(args, port or 0, env, cwd)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.close()


def run(
    args: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run tricorn to completion (for the cases that exit by themselves)."""
    return subprocess.run(
        [sys.executable, "-m", "tricorn", *args],
        capture_output=True,
        text=True,
        env=clean_env(env),
        cwd=cwd or ROOT,
        timeout=60,
    )


# -- --version, --help, bad settings


def test_version() -> None:
    result = run(["--version"])
    assert result.returncode == 0
    python = f"Python {platform.python_version()}, {platform.python_implementation()}"
    assert result.stdout == f"tricorn {tricorn.__version__} ({python})\n"


def test_help_shows_the_groups_in_order() -> None:
    result = run(["--help"])
    assert result.returncode == 0
    out = result.stdout
    assert out.startswith("usage: tricorn")
    positions = [out.index(f"\n{group}:\n") for group in GROUPS]
    assert positions == sorted(positions)
    for option in ("--bind ADDRESS, -b ADDRESS", "--http {auto,httptools,h11}", "--limit-concurrency N"):
        assert option in out
    assert "TRICORN_PORT" in out


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["--port", "abc"], {}, "tricorn: error: port: 'abc' is not an integer (from --port)"),
        (["--http", "foo"], {}, "tricorn: error: http: "),
        (["--timeout-keep-alive", "-1"], {}, "tricorn: error: timeout_keep_alive: "),
        ([], {"TRICORN_LIMIT_CONCURRENCY": "zero"}, "tricorn: error: limit_concurrency: "),
        (["--no-such-option"], {}, "tricorn: error: unknown option --no-such-option"),
        (
            ["tests/apps/basic.py"],
            {},
            "tricorn: error: app: 'tests/apps/basic.py' is not in the form module:attribute",
        ),
    ],
    ids=["port", "http", "timeout", "env", "unknown-option", "app-as-a-path"],
)
def test_bad_setting_is_one_line_and_exit_2(args: list[str], env: dict[str, str], expected: str) -> None:
    result = run(args if args[-1:] == ["tests/apps/basic.py"] else [*args, APP], env=env)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(expected)
    if env:
        assert next(iter(env)) in lines[0]  # names where the bad value came from


def test_a_module_without_application_or_app_is_named(tmp_path: Path) -> None:
    (tmp_path / "noapp.py").write_text("handler = None\n")
    result = run(["noapp", "--port", "0"], cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 3
    assert "module 'noapp' has neither 'application' nor 'app': name the application as noapp:ATTRIBUTE" in (
        result.stderr
    )


def test_bad_setting_in_config_file(tmp_path: Path) -> None:
    (tmp_path / "tricorn.toml").write_text('prot = 9000\napp = "tests.apps.basic:app"\n')
    result = run(["--config", "tricorn.toml"], cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        "tricorn: error: config file tricorn.toml: unknown setting 'prot' (did you mean 'port'?)\n"
    )


# -- applications that cannot be loaded or started


@pytest.mark.parametrize(
    ("app", "message", "traceback"),
    [
        (
            "tricorn_no_such_module:app",
            "could not import module 'tricorn_no_such_module': No module named 'tricorn_no_such_module'",
            False,
        ),
        ("tests.apps.basic:nope", "attribute 'nope' not found in module 'tests.apps.basic'", False),
        (
            "tests.apps.broken_import:app",
            "error while importing 'tests.apps.broken_import': ModuleNotFoundError: "
            "No module named 'tricorn_test_no_such_dependency'",
            True,
        ),
        (
            "tests.apps.raising_import:app",
            "error while importing 'tests.apps.raising_import': ImportError: raising_import refuses to load",
            True,
        ),
    ],
    ids=["module-missing", "attribute-missing", "import-inside-fails", "raises-importerror"],
)
def test_app_that_fails_to_load(app: str, message: str, traceback: bool) -> None:
    result = run(["--port", str(free_port()), app])
    assert result.returncode == 3, result.stderr
    assert message in result.stderr
    # A missing module or attribute is the user's typo: no traceback. A failure inside the app's own
    # import is the app's bug: the traceback shows where.
    assert ("Traceback (most recent call last)" in result.stderr) is traceback
    if traceback:
        assert "tests/apps/" in result.stderr
    assert "listening on" not in result.stderr


def test_lifespan_startup_failure_exits_with_the_apps_message() -> None:
    result = run(["--port", str(free_port()), "tests.apps.lifespan_apps:failing_startup"])
    assert result.returncode == 3
    assert "application startup failed: database unreachable at db:5432" in result.stderr
    assert "listening on" not in result.stderr


def test_lifespan_startup_raising_with_lifespan_on() -> None:
    result = run(["--port", str(free_port()), "--lifespan", "on", "tests.apps.lifespan_apps:raising_startup"])
    assert result.returncode == 3
    assert "RuntimeError: lifespan exploded during startup" in result.stderr


def test_lifespan_on_requires_lifespan_support() -> None:
    result = run(["--port", str(free_port()), "--lifespan", "on", "tests.apps.lifespan_apps:no_lifespan"])
    assert result.returncode == 3
    assert "application startup failed" in result.stderr
    assert "unsupported scope type 'lifespan'" in result.stderr


@pytest.mark.parametrize("app", ["no_lifespan", "returns_on_lifespan", "raising_startup"])
def test_lifespan_auto_tolerates_apps_without_lifespan(tricorn: type[TricornProcess], app: str) -> None:
    server = tricorn(["--lifespan", "auto", f"tests.apps.lifespan_apps:{app}"]).wait_ready()
    response = httpx.get(server.url)
    assert response.status_code == 200
    assert server.stop() == 0
    assert "ERROR" not in server.output()


def test_lifespan_off_never_sends_lifespan(tricorn: type[TricornProcess]) -> None:
    server = tricorn(["--lifespan", "off", "tests.apps.lifespan_apps:failing_startup"]).wait_ready()
    assert httpx.get(server.url).text == "never served"


def test_sys_exit_in_lifespan_startup_is_a_startup_failure() -> None:
    # In mode auto too: an app that asks to stop is not one that does not speak lifespan. sys.exit() is
    # status 0: the process used to exit with it, as if nothing had gone wrong.
    result = run(["--port", str(free_port()), "tests.apps.lifespan_apps:exits_in_startup"])
    assert result.returncode == 3, result.stderr
    assert "application startup failed: SystemExit: " in result.stderr
    assert "listening on" not in result.stderr


def test_sys_exit_in_lifespan_shutdown_is_logged_and_the_server_stops_normally(
    tricorn: type[TricornProcess],
) -> None:
    server = tricorn(["tests.apps.lifespan_apps:exits_in_shutdown"]).wait_ready()
    assert httpx.get(server.url).text == "started"
    assert server.stop() == 0
    output = server.output()
    assert "application shutdown failed: SystemExit: 4" in output
    assert "[INFO] stopped" in output


def test_lifespan_startup_that_never_answers_fails_after_the_timeout() -> None:
    # Without a bound it waited forever (run() gives up after 60 s).
    result = run(
        ["--port", str(free_port()), "--timeout-lifespan", "0.5", "tests.apps.lifespan_apps:silent_startup"]
    )
    assert result.returncode == 3, result.stderr
    assert "application startup failed: did not complete within 0.5s (--timeout-lifespan)" in result.stderr
    assert "listening on" not in result.stderr


def test_lifespan_shutdown_that_never_answers_stops_after_the_timeout(tricorn: type[TricornProcess]) -> None:
    server = tricorn(["--timeout-lifespan", "0.5", "tests.apps.lifespan_apps:silent_shutdown"]).wait_ready()
    assert httpx.get(server.url).text == "started"
    # stop() sends SIGTERM and, after 15 s without an exit, SIGKILL (status -9).
    assert server.stop() == 0
    output = server.output()
    assert "application shutdown failed: did not complete within 0.5s (--timeout-lifespan)" in output
    assert "[INFO] stopped" in output


# -- finding the application


@pytest.mark.parametrize(
    "args",
    [["--factory", "tests.apps.factory:create_app"], ["tests.apps.factory:create_app()"]],
    ids=["flag", "call"],
)
def test_factory(tricorn: type[TricornProcess], args: list[str]) -> None:
    server = tricorn(args).wait_ready()
    assert httpx.get(server.url).text == "made by the factory (calls: 1)"


def test_app_dir(tricorn: type[TricornProcess], tmp_path: Path) -> None:
    app_dir = tmp_path / "somewhere"
    app_dir.mkdir()
    (app_dir / "tricorn_appdir_probe.py").write_text(
        "async def app(scope, receive, send):\n"
        "    if scope['type'] != 'http':\n"
        "        return\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': b'from the app dir'})\n"
    )
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    server = tricorn(["--app-dir", "../somewhere", "tricorn_appdir_probe:app"], cwd=cwd).wait_ready()
    assert httpx.get(server.url).text == "from the app dir"


# -- configuration layers


def echo(url: str) -> dict[str, object]:
    response = httpx.get(f"{url}/echo")
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


def test_config_file(spawn: Spawn, tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "tricorn.toml"
    config.write_text(f'app = "{APP}"\nport = {port}\nroot-path = "/from-file"\naccess_log = false\n')
    server = spawn(["--config", str(config)], port=port).wait_ready()
    assert echo(server.url)["root_path"] == "/from-file"
    assert '"GET /' not in server.output()


def test_config_file_with_tool_table(spawn: Spawn, tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "settings.toml").write_text(
        f'[project]\nname = "x"\n\n[tool.tricorn]\napp = "{APP}"\nport = {port}\nroot_path = "/tool"\n'
    )
    server = spawn(["--config", "conf/settings.toml"], port=port, cwd=tmp_path).wait_ready()
    assert echo(server.url)["root_path"] == "/tool"


def test_pyproject_in_the_working_directory(spawn: Spawn, tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "pyproject.toml").write_text(
        f'[project]\nname = "x"\n\n[tool.tricorn]\napp = "{APP}"\nport = {port}\nroot-path = "/pyproject"\n'
    )
    server = spawn([], port=port, cwd=tmp_path).wait_ready()
    assert echo(server.url)["root_path"] == "/pyproject"


def test_environment(spawn: Spawn) -> None:
    port = free_port()
    server = spawn(
        [], port=port, env={"TRICORN_PORT": str(port), "TRICORN_APP": APP, "TRICORN_ROOT_PATH": "/env"}
    )
    server.wait_ready()
    assert echo(server.url)["root_path"] == "/env"


def test_precedence_argv_over_env_over_file(spawn: Spawn, tmp_path: Path) -> None:
    file_port, env_port, argv_port = free_port(), free_port(), free_port()
    (tmp_path / "pyproject.toml").write_text(
        f'[tool.tricorn]\napp = "{APP}"\nport = {file_port}\nroot_path = "/file"\nhttp = "h11"\n'
    )
    env = {"TRICORN_PORT": str(env_port), "TRICORN_ROOT_PATH": "/env"}

    everything = spawn(
        ["--port", str(argv_port), "--root-path", "/argv"], port=argv_port, env=env, cwd=tmp_path
    )
    assert echo(everything.wait_ready().url)["root_path"] == "/argv"

    no_argv = spawn([], port=env_port, env=env, cwd=tmp_path).wait_ready()
    assert echo(no_argv.url)["root_path"] == "/env"

    file_only = spawn([], port=file_port, cwd=tmp_path).wait_ready()
    assert echo(file_only.url)["root_path"] == "/file"
    # Layers merge per setting: "http" from the file holds under all three.
    for server in (everything, no_argv, file_only):
        wait_for_line(server, "listening on")
        assert ", h11, " in server.output()


def wait_for_line(server: TricornProcess, text: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in server.output():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{text!r} not in the log:\n{server.output()}")
        time.sleep(0.01)  # polling the log for a line


# -- binding


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    # AF_UNIX paths are limited to ~108 bytes: pytest's tmp_path can be longer.
    with tempfile.TemporaryDirectory(prefix="tricorn-", dir="/tmp") as name:
        yield Path(name)


def test_bind_unix_socket(spawn: Spawn, short_tmp: Path) -> None:
    path = str(short_tmp / "t.sock")
    server = spawn(["--bind", f"unix:{path}", APP]).wait_unix_ready(path)
    with httpx.Client(transport=httpx.HTTPTransport(uds=path), base_url="http://tricorn") as client:
        scope = client.get("/echo").json()
        assert client.get("/").text == "hello, world"
    assert scope["server"] == [path, None]
    assert scope["client"] is None
    wait_for_line(server, "listening on")
    assert f"listening on unix:{path}" in server.output()


def ipv6_loopback_works() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not ipv6_loopback_works(), reason="no IPv6 loopback")
def test_bind_ipv6(spawn: Spawn) -> None:
    with socket.socket(socket.AF_INET6) as probe:
        probe.bind(("::1", 0))
        port = probe.getsockname()[1]
    server = spawn(["--bind", f"[::1]:{port}", APP], port=port)
    server.host = "::1"
    server.wait_ready()
    scope = echo(f"http://[::1]:{port}")
    assert scope["server"] == ["::1", port]
    assert scope["client"][0] == "::1"  # type: ignore[index]


def test_two_binds(spawn: Spawn, short_tmp: Path) -> None:
    port1, port2 = free_port(), free_port()
    path = str(short_tmp / "t.sock")
    server = spawn(
        ["-b", f"127.0.0.1:{port1}", "--bind", f"127.0.0.1:{port2}", "-b", f"unix:{path}", APP], port=port1
    )
    server.wait_ready().wait_unix_ready(path)
    assert echo(f"http://127.0.0.1:{port1}")["server"] == ["127.0.0.1", port1]
    assert echo(f"http://127.0.0.1:{port2}")["server"] == ["127.0.0.1", port2]
    with httpx.Client(transport=httpx.HTTPTransport(uds=path)) as client:
        assert client.get("http://tricorn/").text == "hello, world"
    wait_for_line(server, "listening on unix:")
    assert server.output().count("listening on") == 3


def test_port_in_use_is_reported() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run(["--port", str(port), APP])
    assert result.returncode != 0
    assert f"could not bind to http://127.0.0.1:{port}" in result.stderr


# -- the demo


def test_demo_is_served_without_an_app(spawn: Spawn) -> None:
    port = free_port()
    server = spawn(["--port", str(port)], port=port).wait_ready()
    page = httpx.get(server.url)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert f"tricorn {tricorn.__version__}" in page.text
    assert "ASGI" in page.text
    assert "HTTP/1.1" in page.text
    assert f'<td id="pid">{server.proc.pid}</td>' in page.text
    info = httpx.post(f"{server.url}/echo?hello=world", content=b"hi").json()
    assert info["method"] == "POST"
    assert info["path"] == "/echo"
    assert info["query_string"] == "hello=world"
    assert info["body"] == "hi"
    assert info["pid"] == server.proc.pid
    assert info["protocol"] == "HTTP/1.1"
    assert httpx.get(f"{server.url}/missing").status_code == 404
    # The startup log says what is served, and that it is the demo because no APP was given.
    assert "serving the built-in demo app (no APP given) (ASGI)" in server.output()


def test_demo_masks_credentials_and_wraps_long_values(spawn: Spawn) -> None:
    port = free_port()
    server = spawn(["--port", str(port)], port=port).wait_ready()
    secret = {"Cookie": "session=s3cr3t-cookie", "Authorization": "Bearer s3cr3t-token"}
    long_value = "x" * 3000
    page = httpx.get(server.url, headers={**secret, "X-Long": long_value})
    assert "s3cr3t" not in page.text
    assert "(hidden: 21 bytes)" in page.text and "(hidden: 19 bytes)" in page.text
    assert long_value in page.text
    assert "overflow-wrap: anywhere" in page.text  # a value longer than the column wraps in it
    info = httpx.get(f"{server.url}/echo", headers=secret).json()
    assert "s3cr3t" not in json.dumps(info)
    assert dict(info["headers"])["cookie"] == "(hidden: 21 bytes)"


# -- gunicorn's and uvicorn's command lines: errors that name the flag, YAML log configs, --check-config


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--timout", "30", "tests.apps.basic:app"], "unknown option --timout (did you mean --timeout?)"),
        (["--wokers", "2", "tests.apps.basic:app"], "unknown option --wokers (did you mean --workers?)"),
        (["tests.apps.basic:app", "--timeout"], "option --timeout needs a value (--timeout SECONDS)"),
        (["-b", "-w", "2", "tests.apps.basic:app"], "option -b needs a value (-b ADDRESS)"),
        (
            ["-k", "uvicorn.workers.UvicornWorkr", "tests.apps.basic:app"],
            "did you mean 'uvicorn.workers.UvicornWorker'?",
        ),
    ],
)
def test_errors_name_the_flag_never_the_app(args: list[str], message: str) -> None:
    result = run(args)
    assert result.returncode == 2
    assert result.stderr.startswith("tricorn: error: ")
    assert message in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert "tests.apps.basic" not in result.stderr


YAML_LOG_CONFIG = """\
version: 1
disable_existing_loggers: false
formatters:
  tagged:
    format: 'yaml-formatted %(levelname)s %(message)s'
handlers:
  console:
    class: logging.StreamHandler
    formatter: tagged
    stream: ext://sys.stderr
loggers:
  tricorn:
    handlers: [console]
    level: INFO
    propagate: false
"""


def test_a_yaml_log_config_is_used(spawn: Spawn, tmp_path: Path) -> None:
    (tmp_path / "logging.yaml").write_text(YAML_LOG_CONFIG)
    port = free_port()
    server = spawn([APP, "--port", str(port), "--log-config", str(tmp_path / "logging.yaml")], port=port)
    server.wait_ready()
    assert httpx.get(server.url).status_code == 200
    assert "yaml-formatted INFO listening on" in server.output()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: 1\nhandlers: [unclosed\n", "log_config: '{path}' is not valid YAML: "),
        ("- just\n- a list\n", "log_config: cannot load '{path}'"),
        ("version: 1\nhandlers:\n  h:\n    class: no.such.Handler\n", "log_config: cannot load '{path}'"),
    ],
)
def test_a_bad_yaml_log_config_is_one_error_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "logging.yaml"
    path.write_text(text)
    result = run([APP, "--log-config", str(path)])
    assert result.returncode == 2
    assert result.stderr.startswith("tricorn: error: " + message.format(path=path))
    assert len(result.stderr.splitlines()) == 1, result.stderr


def test_check_config_prints_each_setting_and_where_it_came_from(tmp_path: Path) -> None:
    (tmp_path / "gunicorn.conf.py").write_text("workers = 3\nkeepalive = 4\nbind = '127.0.0.1:9999'\n")
    result = run(
        ["--check-config", "-t", "20", "-k", "sync", "tests.apps.wsgi_basic"],
        env={"TRICORN_LOG_LEVEL": "debug", "PYTHONPATH": str(ROOT)},
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if " = " in line}
    assert lines["workers"].split("=")[1].split()[0] == "3"
    assert lines["workers"].endswith("in config file gunicorn.conf.py")
    assert lines["timeout_keep_alive"].endswith("in config file gunicorn.conf.py")
    assert lines["timeout_worker"].endswith("from --timeout-worker")
    assert lines["log_level"].endswith("from TRICORN_LOG_LEVEL")
    assert lines["threads"].endswith("from worker class sync")
    assert lines["port"].endswith("default")
    assert lines["config"].endswith("found in the working directory (as gunicorn reads it)")
    assert "ok: tests.apps.wsgi_basic:app (wsgi)" in result.stdout
    result = run(["--check-config", "tests.apps.no_such_module:app"], cwd=tmp_path)
    assert result.returncode == 3
    assert result.stderr.startswith("tricorn: error: could not import module 'tests.apps.no_such_module'")
