"""The Python API: tricorn.run(), tricorn.serve() and tricorn.Server, over real sockets.

Servers on the test's own event loop (Server, serve) and in a background thread (Server.run), as the
pytest fixtures of docs/deployment.md run them; tricorn.run() in a script of its own, as a program calls
it, one process and a master with workers serving an application object."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

import tricorn
from tests.conftest import ROOT, child_process, free_port, wait_for
from tricorn.errors import AppLoadError, ConfigError, LifespanFailure
from tricorn.supervisor.sockets import BindError

pytestmark = pytest.mark.e2e


class App:
    """An ASGI app that records its lifespan and serves /, /slow (answers once released) and /pid."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.release = asyncio.Event()
        self.slow_started = asyncio.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].removeprefix("lifespan.")
                self.events.append(kind)
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        body = b"hello"
        if scope["path"] == "/slow":
            self.slow_started.set()
            await self.release.wait()
            body = b"slow done"
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": body})


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"wsgi {environ['wsgi.url_scheme']} {environ['PATH_INFO']}".encode()]


# -- settings -------------------------------------------------------------------------------------------


def test_unknown_keyword_is_named_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match=r"^prot: not a tricorn setting \(did you mean 'port'\?\)$"):
        tricorn.Server(App(), prot=9000)
    with pytest.raises(ConfigError, match=r"limit_max_requests: .*did you mean max_requests\?"):
        tricorn.run(App(), limit_max_requests=100)
    with pytest.raises(ConfigError, match=r"^zzz: not a tricorn setting \(see tricorn.Config"):
        tricorn.run(App(), zzz=1)


def test_bad_values_are_config_errors_before_anything_starts() -> None:
    with pytest.raises(ConfigError, match="port: 70000 is out of range"):
        tricorn.Server(App(), port=70000)
    with pytest.raises(ConfigError, match="app: 'not a spec' is not in the form module:attribute"):
        tricorn.run("not a spec")
    with pytest.raises(ConfigError, match="app: is given twice"):
        tricorn.Server(App(), app="tests.apps.basic:app")


def test_an_object_cannot_be_reloaded() -> None:
    with pytest.raises(ConfigError, match=r"^reload: needs the application as 'module:attribute'"):
        tricorn.run(App(), reload=True)


def test_a_server_on_a_loop_has_no_master() -> None:
    for settings in ({"workers": 2}, {"max_requests": 10}, {"timeout_worker": 5}):
        with pytest.raises(ConfigError, match=f"^{next(iter(settings))}: needs a master process"):
            tricorn.Server(App(), **settings)


def test_run_inside_a_running_loop_says_to_await_serve() -> None:
    async def main() -> None:
        tricorn.run(App(), port=0)

    with pytest.raises(RuntimeError, match=r"use 'await tricorn.serve\(app, ...\)'"):
        asyncio.run(main())

    errors: list[BaseException] = []

    def in_a_thread() -> None:
        try:
            tricorn.run(App(), port=0)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join()
    (error,) = errors
    assert isinstance(error, RuntimeError) and "use tricorn.Server(app, ...).run()" in str(error)


def test_settings_file_then_keywords(tmp_path: Path) -> None:
    settings = tmp_path / "tricorn.toml"
    settings.write_text('port = 9001\nhost = "::1"\ntimeout-keep-alive = 7\n')
    server = tricorn.Server(App(), config=str(settings), port=0)
    assert (server.config.host, server.config.port, server.config.timeout_keep_alive) == ("::1", 0, 7.0)


def test_a_config_object_with_keywords_over_it() -> None:
    server = tricorn.Server(tricorn.Config(app="tests.apps.basic:app", port=1234), port=0)
    assert (server.config.app, server.config.port) == ("tests.apps.basic:app", 0)


# -- Server and serve() on the test's loop ------------------------------------------------------------


async def serving(server: tricorn.Server) -> asyncio.Task[None]:
    task = asyncio.create_task(server.serve())
    await server.wait_started()
    return task


def test_server_serves_an_object_on_port_0_and_shuts_down_gracefully() -> None:
    app = App()

    async def main() -> None:
        server = tricorn.Server(app, port=0, log_level="warning")
        assert not server.started
        task = await serving(server)
        assert server.started
        (address,) = server.addresses
        assert address.kind == "tcp" and address.host == "127.0.0.1" and address.port != 0
        assert server.url == f"http://127.0.0.1:{address.port}"
        async with httpx.AsyncClient(base_url=server.url) as client:
            assert (await client.get("/")).text == "hello"
            slow = asyncio.create_task(client.get("/slow"))
            await app.slow_started.wait()
            server.shutdown()
            await asyncio.sleep(0.1)  # let the shutdown begin: the listener closes, the request is kept
            async with httpx.AsyncClient() as other:
                with pytest.raises(httpx.ConnectError):
                    await other.get(server.url)
            assert not task.done()
            app.release.set()
            assert (await slow).text == "slow done"
        await task
        assert app.events == ["startup", "shutdown"]

    asyncio.run(main())


def test_serve_an_import_string_and_a_wsgi_object_on_several_addresses(tmp_path: Path) -> None:
    sock = tmp_path / "s.sock"

    async def main() -> None:
        server = tricorn.Server(wsgi_app, bind=["127.0.0.1:0", f"unix:{sock}"])
        task = await serving(server)
        tcp, unix = server.addresses
        assert tcp.port != 0 and unix.kind == "unix" and unix.path == str(sock)
        async with httpx.AsyncClient(base_url=server.url) as client:
            assert (await client.get("/x")).text == "wsgi http /x"
        async with httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=str(sock))) as client:
            assert (await client.get("http://localhost/y")).text == "wsgi http /y"
        server.shutdown()
        await task
        assert not sock.exists()

        named = tricorn.Server("tests.apps.basic:app", port=0)
        task = await serving(named)
        async with httpx.AsyncClient(base_url=named.url) as client:
            assert (await client.get("/")).status_code == 200
        named.shutdown()
        await task

    asyncio.run(main())


def test_cancelling_serve_is_a_graceful_stop() -> None:
    app = App()

    port = free_port()

    async def main() -> None:
        task = asyncio.create_task(tricorn.serve(app, port=port, timeout_graceful_shutdown=20))
        while "startup" not in app.events:
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient() as client:
            slow = asyncio.create_task(client.get(f"http://127.0.0.1:{port}/slow"))
            await app.slow_started.wait()
            task.cancel()
            await asyncio.sleep(0.1)
            assert not task.done()  # the request in progress is waited for
            app.release.set()
            assert (await slow).text == "slow done"
        with pytest.raises(asyncio.CancelledError):
            await task
        assert app.events == ["startup", "shutdown"]

    asyncio.run(main())


def test_start_failures_raise_from_serve_and_wait_started() -> None:
    taken = free_port()

    async def main() -> None:
        with socket.socket() as holder:
            holder.bind(("127.0.0.1", taken))
            holder.listen()
            server = tricorn.Server(App(), port=taken)
            task = asyncio.create_task(server.serve())
            with pytest.raises(BindError, match=f"could not bind to http://127.0.0.1:{taken}"):
                await server.wait_started()
            with pytest.raises(BindError):
                await task
        with pytest.raises(AppLoadError, match="could not import module 'no_such_module'"):
            await tricorn.serve("no_such_module:app", port=0)
        with pytest.raises(LifespanFailure):
            await tricorn.serve("tests.apps.lifespan_apps:failing_startup", port=0, lifespan="on")
        server = tricorn.Server(App(), port=0)
        task = asyncio.create_task(server.serve())
        await server.wait_started()
        server.shutdown()
        await task
        with pytest.raises(RuntimeError, match="has served already"):
            await server.serve()

    asyncio.run(main())


def test_shutdown_before_serve_starts_stops_it_at_once() -> None:
    app = App()

    async def main() -> None:
        server = tricorn.Server(app, port=0)
        server.shutdown()
        await server.serve()
        assert server.started and app.events == ["startup", "shutdown"]

    asyncio.run(main())


# -- The fixtures of docs/deployment.md --------------------------------------------------------------------


@pytest.fixture
def live_server() -> Iterator[tricorn.Server]:
    """docs/deployment.md, "A test fixture in a thread": the app on a port of its own, for sync clients."""
    server = tricorn.Server("tests.apps.basic:app", port=0)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            pytest.fail("the server did not start")
        time.sleep(0.01)
    yield server
    server.shutdown()
    thread.join()


def test_fixture_in_a_thread(live_server: tricorn.Server) -> None:
    response = httpx.get(live_server.url + "/")
    assert response.status_code == 200
    assert live_server.addresses[0].port != 0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def async_server() -> AsyncIterator[tricorn.Server]:
    """docs/deployment.md, "An async test fixture": the app on the test's own event loop."""
    server = tricorn.Server("tests.apps.basic:app", port=0)
    task = asyncio.create_task(server.serve())
    await server.wait_started()
    yield server
    server.shutdown()
    await task


@pytest.mark.anyio
async def test_async_fixture(async_server: tricorn.Server) -> None:
    async with httpx.AsyncClient(base_url=async_server.url) as client:
        assert (await client.get("/")).status_code == 200


# -- tricorn.run() in a program of its own --------------------------------------------------------------

SCRIPT = """\
import os, sys
import tricorn

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].removeprefix("lifespan.")
            print(f"app: lifespan {{kind}} in {{os.getpid()}}", flush=True)
            await send({{"type": f"lifespan.{{kind}}.complete"}})
            if kind == "shutdown":
                return
    body = str(os.getpid()).encode()
    await send({{"type": "http.response.start", "status": 200, "headers": []}})
    await send({{"type": "http.response.body", "body": body}})

if __name__ == "__main__":
    {call}
    print("app: run returned", flush=True)
"""


@contextlib.contextmanager
def program(tmp_path: Path, call: str) -> Iterator[subprocess.Popen[str]]:
    script = tmp_path / "prog.py"
    script.write_text(SCRIPT.format(call=call))
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    with child_process([sys.executable, str(script)], env, tmp_path) as proc:
        yield proc


def get_pids(port: int, count: int) -> set[str]:
    pids: set[str] = set()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            # A new connection each time: the kernel spreads them over the workers.
            pids.add(httpx.get(f"http://127.0.0.1:{port}/", headers={"Connection": "close"}).text)
        if len(pids) >= count:
            break
    return pids


def test_run_an_object_with_two_workers(tmp_path: Path) -> None:
    port = free_port()
    with program(tmp_path, f"tricorn.run(app, port={port}, workers=2)") as proc:
        pids = get_pids(port, 2)
        assert len(pids) == 2 and str(proc.pid) not in pids
        # SIGHUP: new workers, forked from the master with the same object, then the old ones drain.
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: not pids & get_pids(port, 2), what="new workers serving")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert out.count("app: lifespan startup") == 4 and out.count("app: lifespan shutdown") == 4, out
    assert "app: run returned" in out


def test_run_one_process_ignores_sighup_for_an_object(tmp_path: Path) -> None:
    port = free_port()
    with program(tmp_path, f"tricorn.run(app, port={port})") as proc:
        (pid,) = get_pids(port, 1)
        assert pid == str(proc.pid)
        proc.send_signal(signal.SIGHUP)
        assert proc.stdout is not None
        lines = [proc.stdout.readline()]
        wait_for(
            lambda: "received SIGHUP" in lines[-1] or lines.append(proc.stdout.readline()), what="SIGHUP"
        )
        assert "the application was given as an object and cannot be imported again" in lines[-1]
        assert get_pids(port, 1) == {pid}
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "app: run returned" in out, out


def test_run_exits_with_the_commands_status_when_it_cannot_start(tmp_path: Path) -> None:
    with program(tmp_path, "tricorn.run('no_such_module:app', port=0)") as proc:
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 3, out
    assert "could not import module 'no_such_module'" in out and "run returned" not in out


def test_serve_in_a_program_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    call = f"import asyncio; asyncio.run(tricorn.serve(app, port={port}))"
    with program(tmp_path, call) as proc:
        get_pids(port, 1)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "received SIGTERM, shutting down gracefully" in out and "app: lifespan shutdown" in out, out


def test_a_factory_object_and_an_object_that_is_no_app() -> None:
    app = App()

    async def main() -> None:
        server = tricorn.Server(lambda: app, factory=True, port=0)
        task = await serving(server)
        async with httpx.AsyncClient(base_url=server.url) as client:
            assert (await client.get("/")).text == "hello"
        server.shutdown()
        await task
        assert app.events == ["startup", "shutdown"]
        with pytest.raises(AppLoadError, match=r"^app 'builtins:int' is not callable \(got int\)$"):
            await tricorn.serve(42, port=0)

    asyncio.run(main())


def test_a_server_over_tls_with_http2(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))

    async def main() -> None:
        server = tricorn.Server(
            App(), port=0, ssl_certfile=str(tmp_path / "cert.pem"), ssl_keyfile=str(tmp_path / "key.pem")
        )
        task = await serving(server)
        assert server.url.startswith("https://127.0.0.1:")
        verify = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        async with httpx.AsyncClient(verify=verify, http2=True) as client:
            response = await client.get(server.url)
        assert (response.http_version, response.text) == ("HTTP/2", "hello")
        server.shutdown()
        await task

    asyncio.run(main())


def test_a_loop_that_ends_under_a_server_stops_it() -> None:
    """asyncio.run() ending with the server still serving cancels every task left, the app's lifespan
    task with the server's: the server stops gracefully and does not wait for a lifespan shutdown that
    no one can answer (timeout_lifespan, 600 s here, would outlast the test's own timeout)."""
    app = App()
    port = free_port()

    async def main() -> None:
        server = tricorn.Server(app, port=port, timeout_lifespan=600)
        asyncio.get_running_loop().create_task(server.serve())
        await server.wait_started()

    asyncio.run(main())
    assert app.events == ["startup"]
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/")


def test_an_ipv6_address_in_the_url() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")

    async def main() -> None:
        server = tricorn.Server(App(), bind="[::1]:0")
        try:
            task = await serving(server)
        except BindError as exc:
            pytest.skip(f"no IPv6 loopback here: {exc}")
        (address,) = server.addresses
        assert server.url == f"http://[::1]:{address.port}"
        async with httpx.AsyncClient(base_url=server.url) as client:
            assert (await client.get("/")).text == "hello"
        server.shutdown()
        await task

    asyncio.run(main())
