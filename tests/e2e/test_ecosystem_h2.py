"""Real applications over HTTP/2 (h2c by prior knowledge, httpx with http2=True): Starlette, FastAPI and
Django's asgi.py (ASGI), Flask and Django's wsgi.py (WSGI). The same apps' HTTP/1.1 tests are in
test_ecosystem.py and test_wsgi_apps.py; these hold that nothing in them depends on HTTP/1.1."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import TricornProcess
from tests.e2e.test_wsgi_apps import serve

pytestmark = pytest.mark.e2e


def h2(server: TricornProcess) -> httpx.Client:
    return httpx.Client(base_url=server.url, http1=False, http2=True)


@pytest.fixture(scope="module")
def django_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("django-h2")
    django_admin = Path(sys.executable).with_name("django-admin")
    subprocess.run([str(django_admin), "startproject", "mysite", str(directory)], check=True, timeout=120)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "mysite.settings", "PYTHONPATH": str(directory)}
    subprocess.run(
        [sys.executable, str(directory / "manage.py"), "migrate", "--verbosity", "0"],
        check=True,
        timeout=300,
        env=env,
        cwd=directory,
    )
    return directory


def test_starlette_over_h2() -> None:
    for server in serve(["tests.apps.starlette_app:app"]):
        with h2(server) as client:
            response = client.get("/json", params={"a": "1"})
            assert response.http_version == "HTTP/2"
            assert response.json()["query"] == {"a": "1"}
            data = bytes(range(256)) * 4096
            body = client.post("/body", content=data)
            assert body.status_code == 200
            with client.stream("GET", "/stream", params={"n": "20"}) as streamed:
                assert [line for line in streamed.iter_lines() if line] == [f"line {i}" for i in range(20)]


def test_fastapi_over_h2() -> None:
    for server in serve(["tests.apps.fastapi_app:app"]):
        with h2(server) as client:
            assert client.get("/openapi.json").json()["info"]["title"]
            response = client.get("/docs")
            assert response.status_code == 200 and response.http_version == "HTTP/2"


def test_django_asgi_over_h2(django_project: Path) -> None:
    for server in serve(
        ["--app-dir", str(django_project), "mysite.asgi:application"],
        env={"DJANGO_SETTINGS_MODULE": "mysite.settings"},
    ):
        with h2(server) as client:
            response = client.get("/admin/login/")
            assert response.status_code == 200 and response.http_version == "HTTP/2"
            assert "Django administration" in response.text


def test_django_wsgi_over_h2_with_csrf_post(django_project: Path) -> None:
    for server in serve(
        ["--app-dir", str(django_project), "mysite.wsgi:application"],
        env={"DJANGO_SETTINGS_MODULE": "mysite.settings"},
    ):
        with h2(server) as client:
            page = client.get("/admin/login/")
            assert page.http_version == "HTTP/2"
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
            assert token is not None
            response = client.post(
                "/admin/login/",
                data={"csrfmiddlewaretoken": token.group(1), "username": "nobody", "password": "wrong"},
                headers={"referer": f"{server.url}/admin/login/"},
            )
            assert response.status_code == 200  # the form again, with its error: CSRF passed over HTTP/2
            assert "Please enter the correct username and password" in response.text


def test_flask_over_h2() -> None:
    pytest.importorskip("flask")
    for server in serve(["tests.apps.flask_app:app"]):
        with h2(server) as client:
            response = client.get("/")
            assert response.status_code == 200 and response.http_version == "HTTP/2"
