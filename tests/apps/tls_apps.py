"""Apps that report what a TLS connection tells them (tests/e2e/test_tls.py)."""

from __future__ import annotations

import json
from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    info = {
        "scheme": scope["scheme"],
        "http_version": scope["http_version"],
        "tls": scope.get("extensions", {}).get("tls"),
    }
    body = json.dumps(info).encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": body})


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    info = {
        "url_scheme": environ["wsgi.url_scheme"],
        "HTTPS": environ.get("HTTPS"),
        "SERVER_PROTOCOL": environ["SERVER_PROTOCOL"],
    }
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(info).encode()]
