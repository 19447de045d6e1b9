"""A real Django site (``django-admin startproject``, DEBUG off): ``collectstatic`` output with
ManifestStaticFilesStorage served by ``--static`` beside ``mysite.wsgi``, and Django's FileResponse
through ``wsgi.file_wrapper``, over HTTP/1.1 and HTTP/2, with two workers."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import TricornProcess

pytestmark = pytest.mark.e2e

SETTINGS = """
DEBUG = False
ALLOWED_HOSTS = ["*"]
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
}
"""

URLS = """
from django.http import FileResponse

def download(request):
    return FileResponse(open(BASE / "payload.bin", "rb"), as_attachment=True)

from pathlib import Path
BASE = Path(__file__).resolve().parent.parent
urlpatterns.append(path("download/", download))
"""

PAYLOAD = bytes(range(256)) * 1024 * 3  # 768 KiB


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("django-static")
    django_admin = Path(sys.executable).with_name("django-admin")
    subprocess.run([str(django_admin), "startproject", "mysite", str(directory)], check=True, timeout=120)
    with open(directory / "mysite" / "settings.py", "a") as file:
        file.write(SETTINGS)
    with open(directory / "mysite" / "urls.py", "a") as file:
        file.write(URLS)
    (directory / "payload.bin").write_bytes(PAYLOAD)
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput"],
        cwd=directory,
        check=True,
        timeout=120,
        capture_output=True,
    )
    return directory


def test_collectstatic_output_beside_mysite_wsgi(site: Path, tricorn: type[TricornProcess]) -> None:
    server = tricorn(
        [
            "mysite.wsgi:application",
            "--app-dir",
            str(site),
            "--static",
            f"/static={site / 'staticfiles'}",
            "--workers",
            "2",
        ]
    ).wait_ready()
    manifest = json.loads((site / "staticfiles" / "staticfiles.json").read_text())["paths"]
    hashed = manifest["admin/css/base.css"]
    assert re.search(r"\.[0-9a-f]{12}\.css$", hashed)
    for http2 in (False, True):
        with httpx.Client(base_url=server.url, http1=not http2, http2=http2, timeout=60) as client:
            page = client.get("/admin/login/")
            assert (
                page.status_code == 200 and f"/static/{hashed}" in page.text
            )  # Django links the hashed name
            css = client.get(f"/static/{hashed}")
            assert css.status_code == 200
            assert css.content == (site / "staticfiles" / hashed).read_bytes()
            assert css.headers["content-type"] == "text/css; charset=utf-8"
            assert css.headers["cache-control"] == "public, max-age=31536000, immutable"
            plain = client.get("/static/admin/css/base.css")
            assert plain.status_code == 200 and plain.headers["cache-control"] == "public, max-age=60"
            again = client.get(f"/static/{hashed}", headers={"If-None-Match": css.headers["etag"]})
            assert again.status_code == 304
            missing = client.get("/static/admin/css/nope.css")
            assert missing.status_code == 404 and "Django" not in missing.text  # ours, not the app's
            assert client.get("/static/staticfiles.json/").status_code == 404
            download = client.get("/download/")
            assert download.status_code == 200 and download.content == PAYLOAD
            assert download.headers["content-disposition"] == 'attachment; filename="payload.bin"'
    assert "Traceback" not in server.output()
