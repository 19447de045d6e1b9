"""A mixed site in one server (--mount): a Django project (WSGI) with its admin, a FastAPI service (ASGI)
with a WebSocket that a real browser talks to, and Flask, each building its URLs under its own prefix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import TricornProcess

SITE = "tests.apps.mixed_site"


def start_site(tricorn: type[TricornProcess], project: Path, *mounts: str) -> TricornProcess:
    args = [arg for mount in mounts for arg in ("--mount", mount)]
    return tricorn(
        [*args, "--app-dir", str(project), "--workers", "2"],
        env={"DJANGO_SETTINGS_MODULE": "mysite.settings"},
    ).wait_ready()


@pytest.mark.parametrize("prefix", ["", "/site"])
def test_django_admin_builds_its_urls_under_its_mount(
    tricorn: type[TricornProcess], django_project: Path, prefix: str
) -> None:
    server = start_site(
        tricorn, django_project, f"{prefix or '/'}=mysite.wsgi:application", f"/realtime={SITE}:realtime"
    )
    # A generous timeout: Django renders its first admin page after importing templates, on a loaded machine.
    with httpx.Client(base_url=server.url, timeout=60) as client:
        redirect = client.get(f"{prefix}/admin/")
        assert redirect.status_code == 302
        # reverse() under SCRIPT_NAME: the login URL carries the prefix.
        assert redirect.headers["location"] == f"{prefix}/admin/login/?next={prefix}/admin/"
        login = client.get(f"{prefix}/admin/login/")
        assert login.status_code == 200
        assert f'action="{prefix}/admin/login/' in login.text
        where = client.get("/realtime/where").json()
    assert where == {"root_path": "/realtime", "echo": f"{server.url.replace('http', 'ws')}/realtime/echo"}


def test_flask_url_for_under_its_mount(tricorn: type[TricornProcess]) -> None:
    server = tricorn(["--mount", f"/flask={SITE}:flask_app", "--mount", f"/={SITE}:realtime"]).wait_ready()
    got = httpx.get(f"{server.url}/flask/hello/ada").json()
    assert got == {"hello": "ada", "self": "/flask/hello/ada", "external": f"{server.url}/flask/hello/ada"}


def test_browser_websocket_to_the_asgi_mount_beside_django(
    tricorn: type[TricornProcess], django_project: Path, browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    server = start_site(tricorn, django_project, "/=mysite.wsgi:application", f"/realtime={SITE}:realtime")
    browser.get(f"{server.url}/realtime/")
    wait = WebDriverWait(browser, 30)
    wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "connected"))
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "#log .echo"), "hi from the page"))
    assert browser.find_element(By.CSS_SELECTOR, "#log .echo").text == (
        "echo: hi from the page (root_path /realtime)"
    )
    # The Django admin answers beside it, from the same server.
    browser.get(f"{server.url}/admin/login/")
    assert "Django administration" in browser.page_source
