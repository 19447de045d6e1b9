"""Several applications in one server (--mount PREFIX=APP): the table of prefixes, what each app sees of
itself (ASGI root_path and path, WSGI SCRIPT_NAME and PATH_INFO), lifespans, WebSocket routing, HTTP/2,
and a mount that cannot be loaded."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import connect

from tests.conftest import TricornProcess, wait_for

APPS = "tests.apps.mounts"


def mounted(tricorn: type[TricornProcess], *mounts: str, extra: tuple[str, ...] = ()) -> TricornProcess:
    args = [arg for mount in mounts for arg in ("--mount", mount)]
    return tricorn([*args, *extra]).wait_ready()


def facts(server: TricornProcess, path: str, **kwargs: Any) -> dict[str, Any]:
    response = httpx.get(server.url + path, **kwargs)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_wsgi_site_and_asgi_api_side_by_side(tricorn: type[TricornProcess]) -> None:
    server = mounted(tricorn, f"/api={APPS}:api", f"/={APPS}:site")
    assert facts(server, "/api/users/7?x=1") == {
        "app": "api",
        "interface": "asgi",
        "root_path": "/api",
        "path": "/api/users/7",  # the full path, as the ASGI spec asks
        "raw_path": "/api/users/7",
        "state_owner": "api",
        "http_version": "1.1",
    }
    assert facts(server, "/about/team") == {
        "app": "site",
        "interface": "wsgi",
        "script_name": "",
        "path_info": "/about/team",
    }


@pytest.mark.parametrize(
    ("path", "app", "seen"),
    [
        ("/api", "api", "/api"),  # the prefix itself
        ("/api/", "api", "/api/"),
        ("/api/v2", "api_v2", "/api/v2"),  # the longest prefix wins
        ("/api/v2/items", "api_v2", "/api/v2/items"),
        ("/api/v20", "api", "/api/v20"),  # segment boundaries: /api/v2 is not a prefix of /api/v20
        ("/apix", "site", "/apix"),  # nor /api of /apix
        ("/", "site", "/"),
        ("/%61pi/x", "site", "/api/x"),  # matched as sent: an escaped prefix is not the prefix
    ],
)
def test_longest_prefix_on_segment_boundaries(
    tricorn: type[TricornProcess], path: str, app: str, seen: str
) -> None:
    server = mounted(tricorn, f"/api={APPS}:api", f"/api/v2/={APPS}:api_v2", f"/={APPS}:site")
    got = facts(server, path)
    assert got["app"] == app
    assert (got.get("path") or got["path_info"]) == seen


def test_wsgi_mounts_see_their_prefix_in_script_name(tricorn: type[TricornProcess]) -> None:
    server = mounted(
        tricorn, f"/legacy={APPS}:legacy@wsgi", f"/={APPS}:api", extra=("--root-path", "/proxied")
    )
    got = facts(server, "/legacy/report%20one")
    assert got == {
        "app": "site",
        "interface": "wsgi",
        "script_name": "/proxied/legacy",
        "path_info": "/report one",
    }
    assert facts(server, "/legacy") == {**got, "path_info": ""}
    root = facts(server, "/x")
    assert (root["root_path"], root["path"]) == ("/proxied", "/proxied/x")


def test_the_app_argument_is_the_root_mount(tricorn: type[TricornProcess]) -> None:
    server = tricorn(["--mount", f"/chat={APPS}:chat", f"{APPS}:site"]).wait_ready()
    assert facts(server, "/chat/room")["app"] == "chat"
    assert facts(server, "/other")["app"] == "site"


def test_mounts_without_an_app_answer_404_elsewhere(tricorn: type[TricornProcess]) -> None:
    server = mounted(tricorn, f"/api={APPS}:api")
    assert facts(server, "/api/x")["app"] == "api"
    response = httpx.get(server.url + "/elsewhere")
    assert response.status_code == 404
    assert "no application is mounted" in response.text


def test_each_asgi_mount_has_its_own_lifespan_in_mount_order(tricorn: type[TricornProcess]) -> None:
    server = tricorn(
        ["--mount", f"/chat={APPS}:chat", "--mount", f"/api/v2={APPS}:api_v2", f"{APPS}:api"]
    ).wait_ready()
    assert facts(server, "/")["state_owner"] == "api"
    assert facts(server, "/chat")["state_owner"] == "chat"
    assert facts(server, "/api/v2/x")["state_owner"] == "api_v2"
    assert server.stop() == 0
    lines = [line for line in server.output().splitlines() if line.startswith("mounts: ")]
    assert lines == [
        "mounts: api startup",
        "mounts: chat startup",
        "mounts: api_v2 startup",
        "mounts: api_v2 shutdown",
        "mounts: chat shutdown",
        "mounts: api shutdown",
    ]


def test_a_mount_that_cannot_be_imported_stops_startup_naming_it(tricorn: type[TricornProcess]) -> None:
    server = tricorn(["--mount", "/ws=tests.apps.no_such_module:app", f"{APPS}:site"])
    assert server.wait() == 3
    assert "mount /ws (tests.apps.no_such_module:app): could not import module" in server.output()


def test_a_mount_whose_startup_fails_stops_the_server_naming_it(tricorn: type[TricornProcess]) -> None:
    server = tricorn(["--mount", f"/cache={APPS}:failing", "--mount", f"/chat={APPS}:chat", f"{APPS}:api"])
    assert server.wait() == 3
    output = server.output()
    assert f"mount /cache ({APPS}:failing): cache unreachable" in output
    # The app started before it is shut down again; the one after it never starts.
    assert "mounts: api startup" in output and "mounts: api shutdown" in output
    assert "mounts: chat startup" not in output


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("/api", "is not PREFIX=module:app"),
        ("api=x:y", "must be a plain path starting with '/'"),
        ("/a/../b=x:y", "must be a plain path starting with '/'"),
        ("/a=x:y@cgi", "the interface must be one of auto, asgi, wsgi"),
        ("/a=not a spec", "is not in the form module:attribute"),
    ],
)
def test_bad_mounts_are_one_line_naming_the_setting(
    tricorn: type[TricornProcess], bad: str, message: str
) -> None:
    server = tricorn(["--mount", bad])
    assert server.wait() == 2
    assert message in server.output()
    assert "Traceback" not in server.output()


def test_root_mounted_twice_is_refused(tricorn: type[TricornProcess]) -> None:
    server = tricorn(["--mount", f"/={APPS}:api", f"{APPS}:site"])
    assert server.wait() == 2
    assert "'/' is mounted" in server.output()


def test_websockets_route_by_the_same_table(tricorn: type[TricornProcess]) -> None:
    server = mounted(tricorn, f"/chat={APPS}:chat", f"/={APPS}:site")
    ws_url = server.url.replace("http", "ws")

    async def talk() -> dict[str, Any]:
        async with connect(ws_url + "/chat/room/1") as ws:
            return json.loads(await ws.recv())  # type: ignore[no-any-return]

    assert asyncio.run(talk()) == {"app": "chat", "root_path": "/chat", "path": "/chat/room/1"}

    async def to_wsgi() -> None:
        async with connect(ws_url + "/other"):
            pass

    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        asyncio.run(to_wsgi())
    assert refused.value.response.status_code == 404


def test_http2_streams_route_by_the_same_table(tricorn: type[TricornProcess]) -> None:
    server = mounted(tricorn, f"/api={APPS}:api", f"/={APPS}:site")
    with httpx.Client(http1=False, http2=True) as client:
        api = client.get(server.url + "/api/x")
        site = client.get(server.url + "/x")
    assert api.http_version == "HTTP/2"
    assert api.json()["app"] == "api" and api.json()["http_version"] == "2"
    assert site.json() == {"app": "site", "interface": "wsgi", "script_name": "", "path_info": "/x"}


def test_two_workers_and_the_access_log_names_the_mount(tricorn: type[TricornProcess]) -> None:
    server = mounted(
        tricorn,
        f"/api={APPS}:api",
        f"/legacy={APPS}:legacy",
        f"/={APPS}:site",
        extra=("--workers", "2", "--access-log-format", "%(r)s %(s)s mount=%(mount)s"),
    )
    with httpx.Client(base_url=server.url) as client:
        for _ in range(10):
            assert client.get("/api/a").json()["app"] == "api"
            assert client.get("/legacy/b").json()["path_info"] == "/b"
            assert client.get("/c").json()["path_info"] == "/c"
    wait_for(lambda: server.output().count("mount=") >= 30, what="the access lines")
    output = server.output()
    assert '"GET /api/a HTTP/1.1" 200 mount=/api' not in output  # the format has no quotes
    assert "GET /api/a HTTP/1.1 200 mount=/api" in output
    assert "GET /legacy/b HTTP/1.1 200 mount=/legacy" in output
    assert "GET /c HTTP/1.1 200 mount=/" in output
