"""gunicorn's and uvicorn's command lines, with the word changed to ``tricorn``, end to end.

Each line of :data:`CASES` is one its project's docs give (or a well-trodden guide's: the source is named),
with only the program's name changed, and ports and paths moved to the test's own. Every line is checked
twice: its settings as :func:`tricorn.config.load` reads them (the mapping, exactly), and a real server
started with it and probed over a real socket (TCP, a unix socket, an inherited fd 0, or TLS), which must
serve the app with what the mapping promises (interface, workers, threads, environment, headers, log
files...). Servers are started in batches, in parallel; a line that gives no port gets one from
``TRICORN_PORT`` (the environment layer, below the command line).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import _LIVE, ROOT, die_with_parent, free_port, wait_for
from tricorn.config import load

pytestmark = pytest.mark.e2e

GUNICORN_RUN = "gunicorn.org/run"
GUNICORN_QUICKSTART = "gunicorn.org/quickstart"
GUNICORN_DEPLOY = "docs.gunicorn.org/en/stable/deploy.html"
GUNICORN_SETTINGS = "docs.gunicorn.org/en/stable/settings.html"
TLDR = "tldr-pages gunicorn.md"
UVICORN_DEPLOY = "uvicorn.org/deployment"
UVICORN_SETTINGS = "uvicorn.org/settings"
UVICORN_WORKER = "pypi.org/project/uvicorn-worker"
FASTAPI = "fastapi.tiangolo.com/deployment/server-workers"
FASTAPI_PROXY = "fastapi.tiangolo.com/advanced/behind-a-proxy"
DJANGO = "docs.djangoproject.com/en/stable/howto/deployment/asgi/uvicorn"
DIGITALOCEAN = "digitalocean.com: How To Serve Flask Applications with Gunicorn and Nginx"


@dataclass(frozen=True)
class Probe:
    """What a started line served: the app's JSON, the response headers, the server's output, the site."""

    body: dict[str, Any]
    headers: httpx.Headers
    output: str
    site: Path


@dataclass(frozen=True)
class Case:
    line: str  # as the docs give it, the word changed; {port} and {site} are the test's
    source: str
    settings: dict[str, Any] = field(default_factory=dict)  # what load() must make of it
    site: str = "wsgi"  # the directory of apps it runs in (tests/apps/dropin_apps.py behind each)
    serves: str = "wsgi"  # the interface the app must see
    workers: int = 0  # the workers a master must boot; 0: one process
    check: Callable[[Probe], None] | None = None
    headers: dict[str, str] = field(default_factory=dict)  # what the probe sends
    refused: str | None = None  # the log line that says the probe's connection was refused, as it must be

    @property
    def id(self) -> str:
        return self.line.removeprefix("python -m ")


def threads(expected: bool) -> Callable[[Probe], None]:
    def check(probe: Probe) -> None:
        assert probe.body["multithread"] is expected

    return check


def env_is(value: str) -> Callable[[Probe], None]:
    return body_has("env", value)


def body_has(key: str, value: object) -> Callable[[Probe], None]:
    def check(probe: Probe) -> None:
        assert probe.body[key] == value, probe.body

    return check


def headers_are(expected: dict[str, str | None]) -> Callable[[Probe], None]:
    def check(probe: Probe) -> None:
        for name, value in expected.items():
            assert probe.headers.get(name) == value, probe.headers

    return check


def logged(*texts: str) -> Callable[[Probe], None]:
    def check(probe: Probe) -> None:
        for text in texts:
            assert text in probe.output, text

    return check


def file_has(name: str, *texts: str) -> Callable[[Probe], None]:
    def check(probe: Probe) -> None:
        path = probe.site / name
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # a file another process writes: poll until it says so
            content = path.read_text() if path.exists() else ""
            if all(text in content for text in texts):
                return
            time.sleep(0.05)
        raise AssertionError(f"{name} does not have {texts}: {content!r}")

    return check


def both(*checks: Callable[[Probe], None]) -> Callable[[Probe], None]:
    def check(probe: Probe) -> None:
        for one in checks:
            one(probe)

    return check


UVICORN = {"interface": "asgi"}

CASES = [
    # -- gunicorn: its own docs
    Case("tricorn --workers=2 test:app", GUNICORN_RUN, {"workers": 2, "app": "test:app"}, workers=2),
    Case("tricorn --workers=2 'test:create_app()'", GUNICORN_RUN, {"app": "test:create_app()"}, workers=2),
    Case("tricorn app:app", GUNICORN_QUICKSTART, {"app": "app:app"}),
    Case(
        "tricorn myproject.wsgi",
        GUNICORN_QUICKSTART,
        {"app": "myproject.wsgi"},
        check=logged("serving myproject.wsgi:application (WSGI)"),
    ),
    Case(
        "tricorn app:app --worker-class asgi",
        GUNICORN_QUICKSTART,
        {"worker_class": "asgi", "interface": "asgi"},
        site="asgi",
        serves="asgi",
        check=logged("worker class asgi: interface asgi"),
    ),
    Case("tricorn app:app --workers 4", GUNICORN_QUICKSTART, {"workers": 4}, workers=4),
    Case("tricorn app:app --bind 0.0.0.0:{port}", GUNICORN_QUICKSTART, {"bind": ("0.0.0.0:{port}",)}),
    Case("tricorn -w 4 myapp:app", GUNICORN_RUN, {"workers": 4}, workers=4),
    Case(
        "tricorn -w 2 -b 127.0.0.1:{port} myapp:app",
        GUNICORN_RUN,
        {"workers": 2, "bind": ("127.0.0.1:{port}",)},
        workers=2,
    ),
    Case(
        "tricorn -c python:dropin_conf myapp:app",
        GUNICORN_SETTINGS,
        {"config": "python:dropin_conf", "workers": 2, "timeout_keep_alive": 7.0},
        workers=2,
        check=logged("read settings and hooks from python:dropin_conf"),
    ),
    Case(
        "tricorn --check-config myapp:app",
        GUNICORN_SETTINGS,
        {"check_config": True},
    ),
    Case(
        "tricorn -k gthread --threads 4 myapp:app",
        GUNICORN_SETTINGS,
        {"worker_class": "gthread", "threads": 4, "interface": "wsgi"},
        check=threads(True),
    ),
    Case(
        "tricorn -k sync myapp:app",
        GUNICORN_SETTINGS,
        {"threads": 1, "interface": "wsgi"},
        check=both(threads(False), logged("worker class sync: interface wsgi, threads 1")),
    ),
    Case(
        "tricorn -e DROPIN=from-env myapp:app",
        GUNICORN_SETTINGS,
        {"env": ("DROPIN=from-env",)},
        check=env_is("from-env"),
    ),
    Case(
        "tricorn --env DROPIN=two --env OTHER=1 myapp:app",
        GUNICORN_SETTINGS,
        {"env": ("DROPIN=two", "OTHER=1")},
        check=env_is("two"),
    ),
    Case(
        "tricorn --access-logfile access.log --access-logformat '%(h)s %(r)s %(s)s' myapp:app",
        GUNICORN_SETTINGS,
        {"access_log_file": "access.log", "access_log_format": "%(h)s %(r)s %(s)s"},
        check=file_has("access.log", "127.0.0.1 GET / HTTP/1.1 200"),
    ),
    Case(
        "tricorn --error-logfile error.log myapp:app",
        GUNICORN_SETTINGS,
        {"error_log_file": "error.log"},
        check=file_has("error.log", "serving myapp:app (WSGI)"),
    ),
    Case(
        "tricorn --capture-output --error-logfile captured.log myapp:app",
        GUNICORN_SETTINGS,
        {"capture_output": True, "error_log_file": "captured.log"},
        check=file_has("captured.log", "listening on"),
    ),
    Case(
        "tricorn --max-requests 1000 --max-requests-jitter 50 myapp:app",
        GUNICORN_SETTINGS,
        {"max_requests": 1000, "max_requests_jitter": 50},
        workers=1,
    ),
    Case("tricorn --preload -w 2 myapp:app", GUNICORN_SETTINGS, {"preload": True}, workers=2),
    Case(
        "tricorn --keep-alive 5 --graceful-timeout 10 -t 60 myapp:app",
        GUNICORN_SETTINGS,
        {"timeout_keep_alive": 5.0, "timeout_graceful_shutdown": 10.0, "timeout_worker": 60.0},
        workers=1,
    ),
    Case(
        "tricorn --timeout 30 myapp:app",
        "github.com/benoitc/gunicorn/issues (the '30 taken as APP' report)",
        {"timeout_worker": 30.0, "app": "myapp:app"},
    ),
    Case(
        "tricorn -n dropin-name --pythonpath lib myapp:app",
        GUNICORN_SETTINGS,
        {"proc_name": "dropin-name", "pythonpath": ("lib",)},
        check=body_has("lib", True),
    ),
    Case(
        "tricorn --chdir {site}/src main:app",
        GUNICORN_SETTINGS,
        {"chdir": "{site}/src"},
        site="asgi",
        serves="asgi",
        check=lambda probe: body_has("cwd", str(probe.site / "src"))(probe),
    ),
    Case(
        "tricorn --limit-request-line 4094 --limit-request-fields 100 --limit-request-field_size 8190 myapp:app",
        GUNICORN_SETTINGS,
        {"limit_request_line": 4094, "limit_request_fields": 100, "limit_request_field_size": 8190},
    ),
    Case(
        "tricorn --backlog 2048 --reuse-port -p dropin.pid myapp:app",
        GUNICORN_SETTINGS,
        {"backlog": 2048, "reuse_port": True, "pid": "dropin.pid"},
        check=file_has("dropin.pid", ""),
    ),
    Case(
        "tricorn -D --umask 007 --worker-tmp-dir /dev/shm --no-sendfile myapp:app",
        GUNICORN_SETTINGS,
        {},
        check=logged(
            "-D has no meaning for tricorn: ignored",
            "--umask has no meaning for tricorn: ignored",
            "--worker-tmp-dir has no meaning for tricorn: ignored",
            "--no-sendfile has no meaning for tricorn: ignored",
        ),
    ),
    Case(
        "tricorn --worker-connections 1000 -k gevent myapp:app",
        GUNICORN_SETTINGS,
        {"limit_concurrency": 1000, "interface": "wsgi"},
        check=logged("worker class gevent: interface wsgi: served on --threads threads"),
    ),
    Case("tricorn -b localhost:{port} myapp:app", TLDR, {"bind": ("localhost:{port}",)}),
    Case("tricorn --reload myapp:app", TLDR, {"reload": True}, workers=1),
    Case("tricorn --threads 4 myapp:app", TLDR, {"threads": 4}, check=threads(True)),
    Case(
        "tricorn --certfile cert.pem --keyfile key.pem myapp:app",
        TLDR,
        {"ssl_certfile": "cert.pem", "ssl_keyfile": "key.pem"},
        check=body_has("scheme", "https"),
    ),
    Case(
        "tricorn --workers 3 --bind unix:{site}/myproject.sock -m 007 wsgi:app",
        DIGITALOCEAN,
        {"workers": 3, "bind": ("unix:{site}/myproject.sock",)},
        workers=3,
    ),
    Case(
        "tricorn --access-logfile - --workers 3 --bind unix:{site}/gunicorn.sock myproject.wsgi:application",
        GUNICORN_DEPLOY,
        {"access_log_file": "-", "workers": 3},
        workers=3,
    ),
    Case(
        "tricorn myproject.wsgi:application -w 3 --bind=0.0.0.0:{port} --log-level=debug --log-file=gunicorn.log",
        "a pastebin'd gunicorn start script (--log-file)",
        {"log_level": "debug", "error_log_file": "gunicorn.log"},
        workers=3,
        check=file_has("gunicorn.log", "[DEBUG]"),
    ),
    Case(
        "tricorn app:app -b 0.0.0.0:{port} -w 1 --worker-class eventlet --no-sendfile",
        "a pastebin'd gunicorn line (eventlet)",
        {"worker_class": "eventlet", "interface": "wsgi"},
    ),
    # -- gunicorn with uvicorn's workers (uvicorn's, uvicorn-worker's and FastAPI's docs)
    Case(
        "tricorn main:app --workers 4 --worker-class uvicorn.workers.UvicornWorker --bind 0.0.0.0:{port}",
        FASTAPI,
        {"workers": 4, **UVICORN},
        site="asgi",
        serves="asgi",
        workers=4,
    ),
    Case(
        "tricorn -w 4 -k uvicorn.workers.UvicornWorker main:app",
        UVICORN_DEPLOY,
        UVICORN,
        site="asgi",
        serves="asgi",
        workers=4,
    ),
    Case(
        "tricorn -w 4 -k uvicorn.workers.UvicornH11Worker main:app",
        UVICORN_DEPLOY,
        {"http": "h11", **UVICORN},
        site="asgi",
        serves="asgi",
        workers=4,
        check=logged("worker ready (h11"),
    ),
    Case(
        "tricorn example:app -w 4 -k uvicorn_worker.UvicornWorker",
        UVICORN_WORKER,
        UVICORN,
        site="asgi",
        serves="asgi",
        workers=4,
    ),
    Case(
        "tricorn --keyfile=./key.pem --certfile=./cert.pem -k uvicorn.workers.UvicornWorker main:app",
        UVICORN_DEPLOY,
        {"ssl_keyfile": "./key.pem", **UVICORN},
        site="asgi",
        serves="asgi",
    ),
    Case(
        "tricorn -k uvicorn.workers.UvicornWorker --workers 2 --timeout 0 --bind 0.0.0.0:{port} "
        "--enable-stdio-inheritance --access-logfile - 'api.app:create_app()'",
        "huggingface.co spaces prod.sh (uvicorn workers)",
        {"timeout_worker": 0.0, "app": "api.app:create_app()", **UVICORN},
        site="asgi",
        serves="asgi",
        workers=2,
    ),
    Case(
        "tricorn main:app --workers 2 --worker-class uvicorn.workers.UvicornWorker --bind 0.0.0.0:{port} "
        "--timeout 120 --graceful-timeout 30 --access-logfile - --error-logfile -",
        "betterstack/skills.sh uvicorn guide",
        {"timeout_worker": 120.0, "timeout_graceful_shutdown": 30.0, "error_log_file": "-", **UVICORN},
        site="asgi",
        serves="asgi",
        workers=2,
    ),
    Case(
        "tricorn --worker-class uvicorn.workers.UvicornWorker --chdir {site}/src main:app "
        "--bind 0.0.0.0:{port} --pid {site}/roadtok8s-py.pid",
        "Road to Kubernetes, listing 3.20",
        {"chdir": "{site}/src", **UVICORN},
        site="asgi",
        serves="asgi",
        check=file_has("roadtok8s-py.pid", ""),
    ),
    # -- uvicorn: its own docs
    Case("tricorn main:app", UVICORN_DEPLOY, {"app": "main:app"}, site="asgi", serves="asgi"),
    Case("python -m tricorn main:app", UVICORN_DEPLOY, {}, site="asgi", serves="asgi"),
    Case(
        "tricorn main:app --reload --port {port}",
        UVICORN_DEPLOY,
        {"reload": True},
        site="asgi",
        serves="asgi",
        workers=1,
    ),
    Case(
        "tricorn main:app --workers 4", UVICORN_DEPLOY, {"workers": 4}, site="asgi", serves="asgi", workers=4
    ),
    Case(
        "tricorn main:app --host 0.0.0.0 --port {port}",
        UVICORN_SETTINGS,
        {"host": "0.0.0.0"},
        site="asgi",
        serves="asgi",
    ),
    Case("tricorn --fd 0 main:App", UVICORN_DEPLOY, {"bind": ("fd://0",)}, site="asgi", serves="asgi"),
    Case(
        "tricorn --uds {site}/uvicorn.sock main:app",
        UVICORN_DEPLOY,
        {"bind": ("unix:{site}/uvicorn.sock",)},
        site="asgi",
        serves="asgi",
    ),
    Case(
        "tricorn main:app --port {port} --ssl-keyfile=./key.pem --ssl-certfile=./cert.pem",
        UVICORN_DEPLOY,
        {"ssl_certfile": "./cert.pem"},
        site="asgi",
        serves="asgi",
    ),
    Case(
        "tricorn main:app --root-path /api/v1",
        FASTAPI_PROXY,
        {"root_path": "/api/v1"},
        site="asgi",
        serves="asgi",
        check=body_has("root_path", "/api/v1"),
    ),
    Case(
        "tricorn main:app --env-file .env",
        UVICORN_SETTINGS,
        {"env_file": ".env"},
        site="asgi",
        serves="asgi",
        check=env_is("from-dotenv"),
    ),
    Case(
        "tricorn main:app --log-config log.yaml",
        UVICORN_SETTINGS,
        {"log_config": "log.yaml"},
        site="asgi",
        serves="asgi",
        check=file_has("yaml-access.log", '"GET / HTTP/1.1" 200'),
    ),
    Case(
        "tricorn main:app --header X-Frame-Options:DENY --header 'Server: dropin'",
        UVICORN_SETTINGS,
        {"header": ("X-Frame-Options:DENY", "Server: dropin")},
        site="asgi",
        serves="asgi",
        check=headers_are({"x-frame-options": "DENY", "server": "dropin"}),
    ),
    Case(
        "tricorn main:app --no-server-header --no-date-header",
        UVICORN_SETTINGS,
        {"server_header": False, "date_header": False},
        site="asgi",
        serves="asgi",
        check=headers_are({"server": None, "date": None}),
    ),
    Case(
        "tricorn main:app --limit-max-requests 1000",
        UVICORN_SETTINGS,
        {"max_requests": 1000},
        site="asgi",
        serves="asgi",
        workers=1,
    ),
    Case(
        "tricorn main:app --limit-concurrency 100 --backlog 2048",
        UVICORN_SETTINGS,
        {"limit_concurrency": 100},
        site="asgi",
        serves="asgi",
    ),
    Case(
        "tricorn main:app --timeout-keep-alive 5 --timeout-graceful-shutdown 10",
        UVICORN_SETTINGS,
        {"timeout_keep_alive": 5.0, "timeout_graceful_shutdown": 10.0},
        site="asgi",
        serves="asgi",
    ),
    Case(
        "tricorn main:app --http h11 --loop asyncio",
        UVICORN_SETTINGS,
        {"http": "h11", "loop": "asyncio"},
        site="asgi",
        serves="asgi",
        check=logged("(pid", "h11, asyncio)"),
    ),
    Case(
        "tricorn main:app --ws wsproto",
        UVICORN_SETTINGS,
        {"ws": "wsproto"},
        site="asgi",
        serves="asgi",
        check=logged("ws wsproto: WebSocket is served by tricorn's own implementation"),
    ),
    Case(
        "tricorn asgi2app:App --interface asgi2",
        UVICORN_SETTINGS,
        {"interface": "asgi2"},
        site="asgi",
        serves="asgi",
    ),
    Case(
        "tricorn main:app --interface asgi3",
        UVICORN_SETTINGS,
        {"interface": "asgi3"},
        site="asgi",
        serves="asgi",
    ),
    Case("tricorn myapp:app --interface wsgi", UVICORN_SETTINGS, {"interface": "wsgi"}),
    Case(
        "tricorn main:app --use-colors",
        UVICORN_SETTINGS,
        {},
        site="asgi",
        serves="asgi",
        check=logged("--use-colors has no meaning for tricorn: ignored"),
    ),
    Case(
        "tricorn main:app --no-use-colors --h11-max-incomplete-event-size 16384",
        UVICORN_SETTINGS,
        {},
        site="asgi",
        serves="asgi",
        check=logged("--no-use-colors has no meaning", "--h11-max-incomplete-event-size has no meaning"),
    ),
    Case(
        "tricorn main:app --log-level debug --no-access-log",
        UVICORN_SETTINGS,
        {"log_level": "debug", "access_log": False},
        site="asgi",
        serves="asgi",
    ),
    Case("tricorn main:app --app-dir src", UVICORN_SETTINGS, {"app_dir": "src"}, site="asgi", serves="asgi"),
    Case(
        "tricorn main:create_app --factory",
        UVICORN_SETTINGS,
        {"factory": True, "app": "main:create_app"},
        site="asgi",
        serves="asgi",
    ),
    Case(
        "tricorn main:app --ws-max-size 16777216 --ws-max-queue 32 --ws-ping-interval 20 --ws-ping-timeout 20 "
        "--ws-per-message-deflate false",
        UVICORN_SETTINGS,
        {"ws_max_size": 16777216, "ws_ping_interval": 20.0, "ws_per_message_deflate": False},
        site="asgi",
        serves="asgi",
    ),
    Case(
        "tricorn main:app --reload --reload-dir src --reload-include '*.html' --reload-exclude '*.tmp' "
        "--reload-delay 0.25",
        UVICORN_SETTINGS,
        {"reload_dir": ("src",), "reload_include": ("*.html",), "reload_exclude": ("*.tmp",)},
        site="asgi",
        serves="asgi",
        workers=1,
        check=logged("--reload-delay has no meaning for tricorn: ignored"),
    ),
    Case("tricorn main:app --lifespan on", UVICORN_SETTINGS, {"lifespan": "on"}, site="asgi", serves="asgi"),
    Case(
        "tricorn main:app --ssl-keyfile key.pem --ssl-certfile cert.pem --ssl-version 17 --ssl-cert-reqs 0",
        UVICORN_SETTINGS,
        {"ssl_cert_reqs": "none"},
        site="asgi",
        serves="asgi",
    ),
    Case(
        "tricorn myproject.asgi:application",
        DJANGO,
        {"app": "myproject.asgi:application"},
        site="asgi",
        serves="asgi",
    ),
    Case(
        "tricorn myproject.asgi:application --workers 2",
        DJANGO,
        {"workers": 2},
        site="asgi",
        serves="asgi",
        workers=2,
    ),
    Case(
        "tricorn main:app --proxy-headers --forwarded-allow-ips='*'",
        FASTAPI_PROXY,
        {"proxy_headers": True, "forwarded_allow_ips": ("*",)},
        site="asgi",
        serves="asgi",
        headers={"x-forwarded-proto": "https"},
        check=body_has("scheme", "https"),  # X-Forwarded-Proto from a trusted peer
    ),
    Case(
        "tricorn myapp:app --forwarded-allow-ips='10.170.3.217,10.170.3.220'",
        GUNICORN_SETTINGS,
        {"forwarded_allow_ips": ("10.170.3.217", "10.170.3.220")},
        headers={"x-forwarded-proto": "https"},
        check=body_has("scheme", "http"),  # this peer (127.0.0.1, trusted by default) is no longer trusted
    ),
    Case(
        "tricorn myapp:app --proxy-protocol --proxy-allow-from 10.0.0.1",
        GUNICORN_SETTINGS,
        {"proxy_protocol": True, "proxy_allow_from": ("10.0.0.1",)},
        refused="PROXY protocol: peer not in --proxy-allow-from; connection closed",
    ),
    Case(
        "tricorn myapp:app --proxy-protocol",
        GUNICORN_SETTINGS,
        {"proxy_protocol": True},
    ),
]
assert len(CASES) >= 53


def _argv(case: Case, port: int, site: Path) -> list[str]:
    words = shlex.split(case.line.format(port=port, site=site))
    words = words[3:] if words[:3] == ["python", "-m", "tricorn"] else words[1:]
    return words


def _expected(case: Case, port: int, site: Path) -> dict[str, Any]:
    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return value.format(port=port, site=site)
        if isinstance(value, tuple):
            return tuple(fill(item) for item in value)
        return value

    return {name: fill(value) for name, value in case.settings.items()}


# -- The sites: directories of apps as each project's docs name them -------------------------------------


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture(scope="module")
def sites() -> Iterator[Path]:
    import trustme

    with tempfile.TemporaryDirectory(prefix="tricorn-dropin-") as directory:
        root = Path(directory)
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        wsgi = "from tests.apps.dropin_apps import wsgi as app, make_wsgi as create_app\n"
        asgi = "from tests.apps.dropin_apps import asgi as app, asgi as App, make_asgi as create_app\n"
        for site in ("wsgi", "asgi"):
            base = root / site
            base.mkdir()
            cert.cert_chain_pems[0].write_to_path(str(base / "cert.pem"))
            cert.private_key_pem.write_to_path(str(base / "key.pem"))
            _write(base / ".env", "# uvicorn's --env-file\nexport DROPIN='from-dotenv'\nOTHER=1\n")
            _write(base / "lib" / "dropin_lib.py", "")
            _write(base / "dropin_conf.py", "workers = 2\nkeepalive = 7\n")
            _write(
                base / "log.yaml",
                "version: 1\n"
                "disable_existing_loggers: false\n"
                "formatters:\n  plain:\n    format: '%(message)s'\n"
                "handlers:\n"
                "  access:\n    class: logging.FileHandler\n    filename: yaml-access.log\n"
                "    formatter: plain\n"
                "  error:\n    class: logging.StreamHandler\n    formatter: plain\n"
                "loggers:\n"
                "  tricorn.access:\n    handlers: [access]\n    level: INFO\n    propagate: false\n"
                "  tricorn:\n    handlers: [error]\n    level: INFO\n    propagate: false\n",
            )
        for name in ("test.py", "app.py", "myapp.py", "wsgi.py", "myproject/wsgi.py"):
            _write(root / "wsgi" / name, wsgi.replace(" as app,", " as application, wsgi as app,"))
        _write(root / "wsgi" / "myproject" / "__init__.py", "")
        for name in ("main.py", "app.py", "example.py", "api/app.py", "src/main.py", "myproject/asgi.py"):
            _write(root / "asgi" / name, asgi.replace(" as app,", " as application, asgi as app,"))
        for package in ("api", "myproject"):
            _write(root / "asgi" / package / "__init__.py", "")
        _write(root / "asgi" / "asgi2app.py", "from tests.apps.dropin_apps import Asgi2 as App\n")
        (root / "ca.pem").write_bytes(ca.cert_pem.bytes())
        yield root


# -- The mapping: what load() makes of each line -----------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_each_line_maps_to_tricorns_settings(case: Case, sites: Path) -> None:
    site = sites / case.site
    argv = _argv(case, 8000, site)
    config = load(argv, env={}, cwd=str(site)).config
    for name, value in _expected(case, 8000, site).items():
        assert getattr(config, name) == value, name


# -- Serving: each line started for real, in parallel batches, and probed ------------------------------------


class Server:
    """One line started as a real process in ``site``, on ``port`` (or a unix socket, or fd 0)."""

    def __init__(self, case: Case, site: Path) -> None:
        self.case = case
        self.site = site
        self.port = free_port()
        argv = self.argv = _argv(case, self.port, site)
        self.unix = next((word.split("unix:", 1)[1] for word in argv if "unix:" in word), None)
        if "--uds" in argv:
            self.unix = argv[argv.index("--uds") + 1]
        self.tls = any("cert" in word for word in argv)
        self.log = tempfile.NamedTemporaryFile(prefix="tricorn-dropin-", suffix=".log", delete=False)  # noqa: SIM115
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TRICORN_", "DROPIN"))}
        env["PYTHONPATH"] = str(ROOT)
        env["TRICORN_PORT"] = str(self.port)  # for the lines that give no port: the environment layer
        stdin: Any = subprocess.DEVNULL
        self.listener: socket.socket | None = None
        if "--fd" in argv:  # supervisor's fcgi-program: the listening socket is fd 0
            self.listener = socket.create_server(("127.0.0.1", self.port))
            stdin = self.listener.fileno()
        self.proc = subprocess.Popen(
            die_with_parent([sys.executable, "-m", "tricorn", *argv]),
            stdin=stdin,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=site,
            start_new_session=True,
        )
        _LIVE.add(self.proc)
        if self.listener is not None:
            self.listener.close()

    def output(self) -> str:
        """What the server wrote: its stdout and stderr, and the error log file a line names."""
        text = Path(self.log.name).read_text(errors="replace")
        for word, following in zip(self.argv, [*self.argv[1:], ""], strict=True):
            flag, equals, path = word.partition("=")
            path = path if equals else following
            if flag in ("--log-file", "--error-logfile") and path not in ("", "-"):
                with contextlib.suppress(OSError):
                    text += (self.site / path).read_text(errors="replace")
        return text

    def client(self) -> httpx.Client:
        if self.unix is not None:
            return httpx.Client(transport=httpx.HTTPTransport(uds=self.unix), base_url="http://localhost")
        if self.tls:
            context = ssl.create_default_context(cafile=str(self.site.parent / "ca.pem"))
            return httpx.Client(verify=context, base_url=f"https://127.0.0.1:{self.port}")
        return httpx.Client(base_url=f"http://127.0.0.1:{self.port}")

    def probe(self, deadline: float) -> Probe:
        """The first answer to GET / once the server answers, with every worker ready."""
        if "--proxy-protocol" in self.case.line:
            return self._probe_proxied(deadline)
        last: Exception | None = None
        with self.client() as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(f"exited with {self.proc.returncode}:\n{self.output()}")
                if self.unix is not None and not _unix_listening(self.unix):
                    time.sleep(0.05)  # polling for readiness (httpx leaks a socket it could not connect)
                    continue
                try:
                    response = client.get("/", timeout=5, headers=self.case.headers)
                except httpx.TransportError as exc:
                    last = exc
                    time.sleep(0.05)  # polling for readiness
                    continue
                if self.output().count("worker ready") >= self.case.workers:
                    assert response.status_code == 200, response.text
                    return Probe(response.json(), response.headers, self.output(), self.site)
                time.sleep(0.05)  # the other workers are still booting
        raise AssertionError(f"no answer ({last!r}):\n{self.output()}")

    def _probe_proxied(self, deadline: float) -> Probe:
        """GET / behind a PROXY protocol v1 header (what haproxy's send-proxy writes), by hand: the server
        closes a connection that starts without one."""
        request = (
            b"PROXY TCP4 203.0.113.9 127.0.0.1 40000 80\r\n"
            b"GET / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n"
        )
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"exited with {self.proc.returncode}:\n{self.output()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
                    sock.sendall(request)
                    data = b""
                    while chunk := sock.recv(65536):
                        data += chunk
            except OSError:
                time.sleep(0.05)  # polling for readiness
                continue
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            assert lines[0].startswith("HTTP/1.1 200"), data[:300]
            headers = httpx.Headers([tuple(line.split(": ", 1)) for line in lines[1:]])
            return Probe(json.loads(body), headers, self.output(), self.site)
        raise AssertionError(f"no answer:\n{self.output()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()
        with contextlib.suppress(OSError):
            os.unlink(self.log.name)


def _unix_listening(path: str) -> bool:
    with socket.socket(socket.AF_UNIX) as sock:
        try:
            sock.connect(path)
        except OSError:
            return False
    return True


def _verify(server: Server, deadline: float) -> None:
    case = server.case
    if case.settings.get("check_config"):
        assert server.proc.wait(30) == 0, server.output()
        assert "ok: myapp:app (wsgi)" in server.output()
        assert "workers" in server.output() and "default" in server.output()
        return
    if case.refused is not None:  # a plain request from a peer the setting does not allow
        wait_for(lambda: "listening on" in server.output(), timeout=30, what=server.output)
        with contextlib.suppress(httpx.TransportError), server.client() as client:
            client.get("/", timeout=5)
        wait_for(lambda: case.refused in server.output(), timeout=30, what=server.output)
        return
    probe = server.probe(deadline)
    assert probe.body["interface"] == case.serves, probe.body
    booted = probe.output.count("booting worker")
    assert booted == case.workers, f"{booted} workers booted, {case.workers} expected"
    if case.check is not None:
        case.check(probe)


BATCH = 8
BATCHES = [CASES[i : i + BATCH] for i in range(0, len(CASES), BATCH)]


@pytest.mark.parametrize(
    "batch", BATCHES, ids=[f"lines {i * BATCH + 1}-{i * BATCH + len(b)}" for i, b in enumerate(BATCHES)]
)
def test_each_line_serves_with_its_settings(batch: list[Case], sites: Path) -> None:
    servers: list[Server] = []
    failures: list[str] = []
    try:
        for case in batch:
            servers.append(Server(case, sites / case.site))
        deadline = time.monotonic() + 60
        for server in servers:
            try:
                _verify(server, deadline)
            except AssertionError as exc:
                failures.append(f"{server.case.line}: {exc}")
    finally:
        for server in servers:
            server.stop()
    assert not failures, "\n\n".join(failures)


# -- Requests refused before the app: in the access log too ---------------------------------------------

REFUSED = [
    (b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", 400),
    (b"BREW / HTTP/1.1\r\nHost: x\r\n\r\n", 501),
    (b"GET /" + b"a" * 300 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 300 + b"\r\n\r\n", 431),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n", 413),
    (b"GET / HTTP/3.0\r\nHost: x\r\n\r\n", 505),
    (b"GET / HTTP/1.1\r\nHost: x\r\n", 408),  # the rest of the head never comes
]


def test_refused_requests_have_an_access_line(sites: Path) -> None:
    from tests.conftest import raw_request

    case = Case(
        "tricorn myapp:app --limit-request-line 100 --limit-request-field-size 100 --limit-request-body 10 "
        "--timeout-request-header 0.5 --access-logfile access.log",
        "this test",
    )
    server = Server(case, sites / "wsgi")
    try:
        server.probe(time.monotonic() + 30)
        for data, status in REFUSED:
            answer = raw_request(server.port, data)
            assert answer.startswith(b"HTTP/1.1 %d " % status), (status, answer[:80])
        wanted = [f'"- - -" {status} ' for _, status in REFUSED]
        file_has("access.log", *wanted)(Probe({}, httpx.Headers(), "", server.site))
    finally:
        server.stop()
