"""Real applications from the ecosystem, served by a real tricorn process: Starlette, FastAPI, Django."""

from __future__ import annotations

import hashlib
import importlib.util
import re
from pathlib import Path

import httpx
import pytest

from tests.conftest import TricornProcess, wait_for

pytestmark = pytest.mark.e2e

BACKENDS = [pytest.param(["--http", "httptools"], id="httptools"), pytest.param(["--http", "h11"], id="h11")]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> list[str]:
    return request.param  # type: ignore[no-any-return]


# -- Starlette


@pytest.fixture
def starlette(tricorn: type[TricornProcess], backend: list[str]) -> TricornProcess:
    return tricorn([*backend, "tests.apps.starlette_app:app"]).wait_ready()


def test_starlette_routes_and_json(starlette: TricornProcess) -> None:
    with httpx.Client(base_url=starlette.url) as client:
        assert client.get("/").text == "hello from starlette"
        first = client.get("/json", params={"a": "1", "b": "two words"}).json()
        second = client.get("/json").json()
        assert client.get("/items/42").json() == {"item_id": 42}
        assert client.get("/items/not-a-number").status_code == 404
        assert client.get("/nowhere").status_code == 404
        assert client.post("/").status_code == 405
    assert first["db"] == "connected"  # lifespan state, through scope["state"]
    assert first["query"] == {"a": "1", "b": "two words"}
    assert first["client_host"] == "127.0.0.1"
    assert first["url"] == f"{starlette.url}/json?a=1&b=two+words"
    assert second["visits"] == first["visits"] + 1  # the state's objects are shared between requests


def test_starlette_streaming_response(starlette: TricornProcess) -> None:
    with httpx.stream("GET", f"{starlette.url}/stream", params={"n": "50"}) as response:
        assert response.headers["transfer-encoding"] == "chunked"
        lines = list(response.iter_lines())
    assert lines == [f"line {i}" for i in range(50)]


def test_starlette_request_body(starlette: TricornProcess) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB, arriving in many parts
    response = httpx.post(f"{starlette.url}/body", content=data)
    assert response.json() == {"length": len(data), "sha256": hashlib.sha256(data).hexdigest()}

    def chunks():  # type: ignore[no-untyped-def]
        for i in range(0, len(data), 100_000):
            yield data[i : i + 100_000]

    chunked = httpx.post(f"{starlette.url}/body", content=chunks())
    assert chunked.json()["sha256"] == hashlib.sha256(data).hexdigest()


@pytest.mark.skipif(
    importlib.util.find_spec("python_multipart") is None, reason="python-multipart not installed"
)
def test_starlette_form(starlette: TricornProcess) -> None:
    response = httpx.post(f"{starlette.url}/form", data={"name": "tricorn", "hat": "three corners"})
    assert response.json() == {"name": "tricorn", "hat": "three corners"}


def test_starlette_background_task(starlette: TricornProcess) -> None:
    with httpx.Client(base_url=starlette.url) as client:
        assert client.get("/background", params={"name": "job-1"}).text == "accepted"
        # The task runs after the response was sent: wait for it to show up.
        wait_for(lambda: "job-1" in client.get("/background-done").json())


def test_starlette_error_is_a_500_and_the_server_goes_on(starlette: TricornProcess) -> None:
    response = httpx.get(f"{starlette.url}/fail")
    assert response.status_code == 500
    assert "starlette handler failed" not in response.text
    # Starlette sends its 500 and re-raises: tricorn logs the traceback after the response went out.
    wait_for(lambda: "RuntimeError: starlette handler failed" in starlette.output())
    assert "Traceback (most recent call last)" in starlette.output()
    assert httpx.get(starlette.url).status_code == 200


def test_starlette_lifespan_runs_around_serving(starlette: TricornProcess) -> None:
    assert "starlette app: startup" in starlette.output()
    assert starlette.stop() == 0
    assert starlette.output().index("starlette app: shutdown") > starlette.output().index("shutting down")


# -- FastAPI


@pytest.fixture
def fastapi(tricorn: type[TricornProcess], backend: list[str]) -> TricornProcess:
    return tricorn([*backend, "tests.apps.fastapi_app:app"]).wait_ready()


def test_fastapi_sync_endpoint_runs_in_a_thread(fastapi: TricornProcess) -> None:
    response = httpx.get(f"{fastapi.url}/sync")
    assert response.status_code == 200
    assert response.json()["in_main_thread"] is False


def test_fastapi_async_endpoint_and_lifespan_state(fastapi: TricornProcess) -> None:
    response = httpx.get(f"{fastapi.url}/async")
    assert response.json() == {"in_main_thread": True, "greeting": "hello from lifespan"}


def test_fastapi_pydantic_body_and_dependency(fastapi: TricornProcess) -> None:
    with httpx.Client(base_url=fastapi.url) as client:
        item = {"name": "hat", "price": 2.5, "quantity": 4, "tags": ["felt"]}
        created = client.post("/items", json=item, headers={"x-token": "secret"})
        assert created.status_code == 201
        assert created.json() == {"item": item, "total": 10.0}
        assert client.post("/items", json=item).status_code == 401
        invalid = client.post("/items", json={"name": "", "price": -1}, headers={"x-token": "secret"})
        assert invalid.status_code == 422
        assert {error["loc"][-1] for error in invalid.json()["detail"]} == {"name", "price"}
        assert client.get("/items", params={"offset": 5, "limit": 2}).json() == {
            "page": {"offset": 5, "limit": 2},
            "items": ["item-5", "item-6"],
        }
        assert client.get("/items/7", params={"q": "x"}).json() == {"item_id": 7, "q": "x"}
        assert client.get("/items/seven").status_code == 422


def test_fastapi_openapi_and_docs(fastapi: TricornProcess) -> None:
    schema = httpx.get(f"{fastapi.url}/openapi.json").json()
    assert "/items" in schema["paths"]
    assert "swagger-ui" in httpx.get(f"{fastapi.url}/docs").text


def test_fastapi_concurrent_sync_requests(fastapi: TricornProcess) -> None:
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: httpx.get(f"{fastapi.url}/sync").status_code, range(32)))
    assert results == [200] * 32


# -- Django


@pytest.fixture
def django(tricorn: type[TricornProcess], backend: list[str], django_project: Path) -> TricornProcess:
    return tricorn(
        [*backend, "--app-dir", str(django_project), "mysite.asgi:application"],
        env={"DJANGO_SETTINGS_MODULE": "mysite.settings"},
    ).wait_ready()


def test_django_default_page(django: TricornProcess) -> None:
    response = httpx.get(django.url)
    # DEBUG=True with only the admin routed: Django's "install worked" page.
    assert response.status_code in (200, 404)
    assert "The install worked successfully!" in response.text


def test_django_admin_login(django: TricornProcess) -> None:
    with httpx.Client(base_url=django.url) as client:
        assert client.get("/admin/").status_code == 302
        response = client.get("/admin/login/")
        assert response.status_code == 200
        assert re.search(r'<input type="hidden" name="csrfmiddlewaretoken" value="[^"]+"', response.text)
        assert "csrftoken" in response.cookies
        # Posting without the token is refused by Django's CSRF protection.
        refused = httpx.post(f"{django.url}/admin/login/", data={"username": "a", "password": "b"})
        assert refused.status_code == 403


def test_django_404_and_lifespan(django: TricornProcess) -> None:
    response = httpx.get(f"{django.url}/no/such/page/")
    assert response.status_code == 404
    assert "Page not found" in response.text
    # Django does not speak lifespan: with --lifespan auto that is noted, not an error.
    assert "ERROR" not in django.output()
    assert django.stop() == 0
