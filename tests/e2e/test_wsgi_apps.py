"""Real WSGI applications from the ecosystem, served by a real tricorn process: Flask, Django's wsgi.py
(from ``django-admin startproject``) and Falcon. One server per app and module (their tests only read)."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import TricornProcess
from tests.e2e.test_http import log_lines

pytestmark = pytest.mark.e2e


def serve(args: list[str], env: dict[str, str] | None = None) -> Iterator[TricornProcess]:
    process = TricornProcess(args, env=env)
    try:
        yield process.wait_ready()
    finally:
        process.close()


# -- Flask


@pytest.fixture(scope="module")
def flask_server() -> Iterator[TricornProcess]:
    pytest.importorskip("flask")
    yield from serve(["tests.apps.flask_app:app"])


def test_flask_routes(flask_server: TricornProcess) -> None:
    with httpx.Client(base_url=flask_server.url) as client:
        assert client.get("/").text == "hello from flask"
        item = client.get("/items/42", params={"q": "a b"}).json()
        assert client.get("/items/not-a-number").status_code == 404
        assert client.post("/").status_code == 405
    assert item == {
        "item_id": 42,
        "q": "a b",
        "url": f"{flask_server.url}/items/42?q=a+b",
        "remote": "127.0.0.1",
    }


def test_flask_form_post(flask_server: TricornProcess) -> None:
    response = httpx.post(f"{flask_server.url}/form", data={"name": "tricorn", "hat": "three corners"})
    assert response.json() == {"name": "tricorn", "hat": "three corners"}


def test_flask_file_upload(flask_server: TricornProcess) -> None:
    data = os.urandom(3 * 1024 * 1024)
    response = httpx.post(
        f"{flask_server.url}/upload",
        files={"file": ("hat.bin", data, "application/octet-stream")},
        data={"note": "a big hat"},
        timeout=30,
    )
    assert response.json() == {
        "filename": "hat.bin",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "note": "a big hat",
    }


def test_flask_streamed_response(flask_server: TricornProcess) -> None:
    with httpx.stream("GET", f"{flask_server.url}/stream", params={"n": "50"}) as response:
        assert response.headers["transfer-encoding"] == "chunked"
        lines = list(response.iter_lines())
    assert lines == [f"line {i} of /stream" for i in range(50)]


def test_flask_error_is_a_500_and_the_server_goes_on(flask_server: TricornProcess) -> None:
    response = httpx.get(f"{flask_server.url}/fail")
    assert response.status_code == 500
    assert "flask handler failed" not in response.text
    log_lines(flask_server, 1, "RuntimeError: flask handler failed")  # Flask logs it (wsgi.errors)
    assert httpx.get(flask_server.url).status_code == 200
    # As Flask wrote it: one header line, then the traceback, its quotes and lines untouched.
    output = flask_server.output()
    header = next(line for line in output.splitlines() if "Exception on /fail [GET]" in line)
    traceback_text = output.split(header, 1)[1].split("RuntimeError: flask handler failed", 1)[0]
    assert traceback_text.startswith("\nTraceback (most recent call last):\n")
    assert '  File "' in traceback_text and "\\x22" not in traceback_text
    assert "[ERROR]" not in traceback_text


# -- Django


@pytest.fixture(scope="module")
def django_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TricornProcess]:
    pytest.importorskip("django")
    directory = tmp_path_factory.mktemp("django-wsgi")
    django_admin = Path(sys.executable).with_name("django-admin")
    subprocess.run([str(django_admin), "startproject", "mysite", str(directory)], check=True, timeout=120)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "mysite.settings", "PYTHONPATH": str(directory)}
    manage = [sys.executable, str(directory / "manage.py")]
    subprocess.run([*manage, "migrate", "--verbosity", "0"], check=True, timeout=300, env=env, cwd=directory)
    subprocess.run(
        [*manage, "shell", "-c", "from django.contrib.auth.models import User; "
         "User.objects.create_superuser('admin', 'admin@example.com', 'tricorn-secret')"],
        check=True,
        timeout=120,
        env=env,
        cwd=directory,
    )  # fmt: skip
    yield from serve(
        ["--app-dir", str(directory), "mysite.wsgi:application"],
        env={"DJANGO_SETTINGS_MODULE": "mysite.settings"},
    )


def test_django_admin_login_page(django_server: TricornProcess) -> None:
    with httpx.Client(base_url=django_server.url) as client:
        assert client.get("/admin/").status_code == 302
        response = client.get("/admin/login/")
    assert response.status_code == 200
    assert "Django administration" in response.text
    assert re.search(r'<input type="hidden" name="csrfmiddlewaretoken" value="[^"]+"', response.text)
    assert "csrftoken" in response.cookies


def test_django_csrf_protected_form_post(django_server: TricornProcess) -> None:
    # Without the token, Django's CSRF protection refuses the post.
    refused = httpx.post(f"{django_server.url}/admin/login/", data={"username": "admin", "password": "x"})
    assert refused.status_code == 403
    with httpx.Client(base_url=django_server.url) as client:
        page = client.get("/admin/login/?next=/admin/")
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert match is not None
        form = {"csrfmiddlewaretoken": match[1], "username": "admin", "next": "/admin/"}
        wrong = client.post("/admin/login/?next=/admin/", data={**form, "password": "wrong"})
        assert wrong.status_code == 200
        assert "Please enter the correct username and password" in wrong.text
        right = client.post("/admin/login/?next=/admin/", data={**form, "password": "tricorn-secret"})
        assert right.status_code == 302
        assert right.headers["location"] == "/admin/"
        index = client.get("/admin/")
    assert index.status_code == 200
    assert "Site administration" in index.text


def test_django_404_and_static_404(django_server: TricornProcess) -> None:
    response = httpx.get(f"{django_server.url}/no/such/page/")
    assert response.status_code == 404
    assert "Page not found" in response.text
    assert "ERROR" not in django_server.output()


# -- Falcon


@pytest.fixture(scope="module")
def falcon_server() -> Iterator[TricornProcess]:
    pytest.importorskip("falcon")
    yield from serve(["tests.apps.falcon_app:app"])


def test_falcon_resources(falcon_server: TricornProcess) -> None:
    with httpx.Client(base_url=falcon_server.url) as client:
        created = client.post("/things", json={"name": "tricorn", "corners": 3})
        assert created.status_code == 201
        assert created.json() == {"name": "tricorn", "corners": 3}
        listing = client.get("/things", params={"limit": "10"}).json()
        assert {"name": "tricorn", "corners": 3} in listing["things"]
        assert listing["limit"] == 10
        assert client.get("/things/hat").text == "thing hat"
        bad = client.post("/things", json={"corners": 2})
        assert bad.status_code == 400
        assert bad.json()["title"] == "a thing needs a name"
        assert client.get("/nowhere").status_code == 404
