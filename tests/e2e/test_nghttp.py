"""nghttp (nghttp2's client) against tricorn: HTTP/2 by prior knowledge, by Upgrade: h2c, and over TLS,
with a request body and several concurrent streams on one connection."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import TricornProcess

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        shutil.which("nghttp") is None, reason="nghttp is not installed (apt-get install nghttp2-client)"
    ),
]


@pytest.fixture(scope="module")
def server() -> Iterator[TricornProcess]:
    proc = TricornProcess(["tests.apps.basic:app"]).wait_ready()
    yield proc
    proc.close()


def nghttp(*args: str) -> str:
    done = subprocess.run(["nghttp", *args], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_prior_knowledge_with_concurrent_streams(server: TricornProcess) -> None:
    url = f"{server.url}/"
    out = nghttp("-nv", url, url + "echo", url + "stream")
    assert out.count("recv HEADERS frame") >= 3
    assert "SETTINGS_MAX_CONCURRENT_STREAMS(0x03):100" in out
    assert out.count(":status: 200") == 3


def test_upgrade_h2c(server: TricornProcess) -> None:
    out = nghttp("-nvu", f"{server.url}/")
    assert "HTTP Upgrade response" in out and "HTTP Upgrade success" in out
    assert ":status: 200" in out


def test_request_body(server: TricornProcess, tmp_path: Path) -> None:
    body = tmp_path / "body"
    body.write_bytes(b"x" * 300_000)
    out = nghttp("-d", str(body), f"{server.url}/echo")
    assert '"body": "' + "x" * 100 in out


def test_over_tls(tmp_path: Path) -> None:
    import trustme

    cert = trustme.CA().issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    proc = TricornProcess(
        [
            "tests.apps.basic:app",
            "--ssl-certfile",
            str(tmp_path / "cert.pem"),
            "--ssl-keyfile",
            str(tmp_path / "key.pem"),
        ]
    ).wait_ready()
    try:
        out = nghttp("-nv", f"https://127.0.0.1:{proc.port}/")
    finally:
        proc.close()
    assert "h2 is negotiated" in out or "The negotiated protocol: h2" in out
    assert ":status: 200" in out
