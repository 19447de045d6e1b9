"""WebSocket end to end: a real tricorn process, the independent ``websockets`` client, and raw sockets.

The ``websockets`` client checks behaviour a real peer sees (echo, sizes, fragmentation, ping, compression,
subprotocols, close codes, denial, many clients); raw sockets send what no polite client sends
(malformed handshakes and frames) and read the exact bytes the server answers.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import struct
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import TricornProcess, wait_for
from tests.conftest import ws_frame as frame

pytestmark = pytest.mark.e2e

APP = "tests.apps.ws_apps:app"
KEY = base64.b64encode(b"0123456789abcdef").decode()

Start = Callable[..., TricornProcess]


BACKENDS = [
    pytest.param(["--http", "httptools"], id="httptools"),
    pytest.param(["--http", "h11", "--loop", "asyncio"], id="h11-asyncio"),
]


@pytest.fixture(params=BACKENDS)
def start(request: pytest.FixtureRequest, tricorn: type[TricornProcess]) -> Start:
    """``start(*options)``: a server of its own, for tests that need options or a fresh state."""
    backend: list[str] = request.param

    def starter(*options: str, app: str = APP, env: dict[str, str] | None = None) -> TricornProcess:
        return tricorn([*backend, *options, app], env=env).wait_ready()

    return starter


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest) -> Iterator[TricornProcess]:
    """One server per backend for the module's tests with default options (what they record in
    ``/events`` is told apart by a unique path)."""
    process = TricornProcess([*request.param, APP]).wait_ready()
    yield process
    process.close()


def unique(prefix: str = "/") -> str:
    return f"{prefix}{uuid.uuid4().hex}"


def ws_url(server: TricornProcess, path: str = "/") -> str:
    return f"ws://{server.host}:{server.port}{path}"


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


def events(server: TricornProcess) -> dict[str, Any]:
    return httpx.get(f"{server.url}/events", headers={"connection": "close"}).json()


# -- a raw WebSocket client, independent of the server's code ---------------------------------------------


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


class RawClient:
    def __init__(
        self, port: int, path: str = "/", headers: dict[str, str] | None = None, timeout: float = 10.0
    ) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.path = path
        self.headers = headers

    def handshake_bytes(self, extra: bytes = b"") -> bytes:
        headers = {
            "Host": "test",
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": KEY,
            "Sec-WebSocket-Version": "13",
        }
        if self.headers is not None:
            headers.update(self.headers)
        lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items() if v is not None)
        return f"GET {self.path} HTTP/1.1\r\n{lines}\r\n".encode() + extra

    def handshake(self, extra: bytes = b"") -> tuple[str, dict[str, str]]:
        self.sock.sendall(self.handshake_bytes(extra))
        return self.response_head()

    def response_head(self) -> tuple[str, dict[str, str]]:
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        status, *lines = head.decode("latin-1").split("\r\n")
        return status, {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}

    def _fill(self) -> None:
        data = self.sock.recv(1 << 20)
        if not data:
            raise EOFError(f"connection closed; unread {self.buf[:100]!r}")
        self.buf += data

    def exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_frame(self) -> tuple[int, bool, bytes]:
        b1, b2 = self.exact(2)
        assert not b2 & 0x80, "server frames are never masked"
        n = b2 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", self.exact(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", self.exact(8))
        return b1 & 0x0F, bool(b1 & 0x80), self.exact(n)

    def read_close(self) -> tuple[int, bytes]:
        """Read frames up to the close frame; return its code and reason."""
        while True:
            opcode, _, payload = self.read_frame()
            if opcode == 8:
                return struct.unpack("!H", payload[:2])[0], payload[2:]

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def at_eof(self) -> bool:
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            return True
        self.buf += data
        return data == b""

    def close(self) -> None:
        self.sock.close()


def accepted(server: TricornProcess, path: str = "/") -> RawClient:
    client = RawClient(server.port, path)
    status, _ = client.handshake()
    assert status == "HTTP/1.1 101 Switching Protocols"
    return client


# -- the handshake ---------------------------------------------------------------------------------------


def test_handshake_response(server: TricornProcess) -> None:
    client = RawClient(server.port)
    status, headers = client.handshake()
    assert status == "HTTP/1.1 101 Switching Protocols"
    assert headers["upgrade"].lower() == "websocket"
    assert headers["connection"].lower() == "upgrade"
    # RFC 6455 §1.3: base64(SHA-1(key + GUID)).
    assert headers["sec-websocket-accept"] == "BACScCJPNqyz+UBoqMH89VmURoA="
    assert headers["server"] == "tricorn" and "date" in headers
    assert "sec-websocket-extensions" not in headers  # not offered, not given
    client.close()


def test_rfc_example_key(server: TricornProcess) -> None:
    client = RawClient(server.port, headers={"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    _, headers = client.handshake()
    assert headers["sec-websocket-accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455 §1.3
    client.close()


@pytest.mark.parametrize("version", ["12", "8", "14", "13, 8", "abc"])
def test_unsupported_version_is_426(server: TricornProcess, version: str) -> None:
    client = RawClient(server.port, headers={"Sec-WebSocket-Version": version})
    status, headers = client.handshake()
    assert status.startswith("HTTP/1.1 426 ")
    assert headers["sec-websocket-version"] == "13"
    assert headers["connection"] == "close"
    client.close()


def test_missing_version_is_426(server: TricornProcess) -> None:
    client = RawClient(server.port, headers={"Sec-WebSocket-Version": None})  # type: ignore[dict-item]
    status, headers = client.handshake()
    assert status.startswith("HTTP/1.1 426 ")
    assert headers["sec-websocket-version"] == "13"
    client.close()


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Sec-WebSocket-Key": None}, id="missing-key"),
        pytest.param({"Sec-WebSocket-Key": "not base64!"}, id="key-not-base64"),
        pytest.param({"Sec-WebSocket-Key": base64.b64encode(b"short").decode()}, id="key-too-short"),
        pytest.param({"Sec-WebSocket-Key": base64.b64encode(b"x" * 17).decode()}, id="key-too-long"),
        pytest.param({"Upgrade": "websocket, h2c"}, id="upgrade-list"),
        pytest.param({"Connection": None}, id="missing-connection"),
        pytest.param({"Connection": "keep-alive"}, id="connection-without-upgrade"),
        pytest.param(
            {"Sec-WebSocket-Extensions": 'permessage-deflate; x="unterminated'}, id="bad-extensions"
        ),
    ],
)
def test_malformed_handshake_is_400(server: TricornProcess, headers: dict[str, str]) -> None:
    client = RawClient(server.port, headers=headers)
    status, _ = client.handshake()
    assert status.startswith("HTTP/1.1 400 "), status
    client.close()


def test_two_keys_is_400(server: TricornProcess) -> None:
    client = RawClient(server.port)
    client.send(
        client.handshake_bytes().replace(b"\r\n\r\n", f"\r\nSec-WebSocket-Key: {KEY}\r\n\r\n".encode())
    )
    status, _ = client.response_head()
    assert status.startswith("HTTP/1.1 400 ")
    client.close()


def test_non_get_handshake_is_400(server: TricornProcess) -> None:
    client = RawClient(server.port)
    client.send(client.handshake_bytes().replace(b"GET ", b"DELETE ", 1))
    status, _ = client.response_head()
    assert status.startswith("HTTP/1.1 400 ")
    client.close()


def test_http10_upgrade_is_plain_http(server: TricornProcess) -> None:
    client = RawClient(server.port)
    client.send(client.handshake_bytes().replace(b"HTTP/1.1", b"HTTP/1.0", 1))
    status, _ = client.response_head()
    assert status.endswith(" 200 OK")  # RFC 9110 §7.8: Upgrade in HTTP/1.0 is ignored
    client.close()


def test_ws_none_serves_upgrades_as_plain_http(start: Start) -> None:
    server = start("--ws", "none")
    client = RawClient(server.port, "/anything")
    status, _ = client.handshake()
    assert status == "HTTP/1.1 200 OK"
    assert client.exact(len(b"plain http: /anything")) == b"plain http: /anything"
    client.close()


def test_pipelined_request_before_the_handshake(server: TricornProcess) -> None:
    client = RawClient(server.port, "/")
    client.send(b"GET /first HTTP/1.1\r\nHost: test\r\n\r\n" + client.handshake_bytes())
    status, headers = client.response_head()
    assert status == "HTTP/1.1 200 OK"
    assert client.exact(int(headers["content-length"])) == b"plain http: /first"
    status, _ = client.response_head()
    assert status == "HTTP/1.1 101 Switching Protocols"
    client.send(frame(1, b"after"))
    assert client.read_frame() == (1, True, b"after")
    client.close()


def test_pipelined_request_that_suspends_before_the_handshake(server: TricornProcess) -> None:
    client = RawClient(server.port, "/")
    client.send(b"GET /yield HTTP/1.1\r\nHost: test\r\n\r\n" + client.handshake_bytes(frame(1, b"queued")))
    status, headers = client.response_head()
    assert status == "HTTP/1.1 200 OK"
    assert client.exact(int(headers["content-length"])) == b"plain http: /yield"
    status, _ = client.response_head()
    assert status == "HTTP/1.1 101 Switching Protocols"
    assert client.read_frame() == (1, True, b"queued")
    client.close()


def test_frames_sent_with_the_handshake(server: TricornProcess) -> None:
    client = RawClient(server.port)
    status, _ = client.handshake(frame(1, b"early") + frame(2, b"bird"))
    assert status == "HTTP/1.1 101 Switching Protocols"
    assert client.read_frame() == (1, True, b"early")
    assert client.read_frame() == (2, True, b"bird")
    client.close()


def test_scope(server: TricornProcess) -> None:
    async def main() -> dict[str, Any]:
        async with connect(ws_url(server, "/scope?x=%C3%A9"), subprotocols=["a", "b"]) as ws:  # type: ignore[list-item]
            return json.loads(await ws.recv())  # type: ignore[arg-type]

    scope = run(main())
    assert scope["type"] == "websocket"
    assert scope["asgi"]["version"] == "3.0"
    assert scope["asgi"]["spec_version"] >= "2.4"
    assert scope["scheme"] == "ws"
    assert scope["http_version"] == "1.1"
    assert scope["path"] == "/scope"
    assert scope["raw_path"] == "/scope"
    assert scope["query_string"] == "x=%C3%A9"
    assert scope["subprotocols"] == ["a", "b"]
    assert scope["extensions"] == {"websocket.http.response": {}}
    assert scope["client"][0] == "127.0.0.1"
    assert scope["server"] == ["127.0.0.1", server.port]
    assert "method" not in scope
    assert ["upgrade", "websocket"] in scope["headers"]


# -- messages with the websockets client ------------------------------------------------------------------


def test_echo_text_and_binary(server: TricornProcess) -> None:
    async def main() -> None:
        async with connect(ws_url(server)) as ws:
            await ws.send("héllo ✓")
            assert await ws.recv() == "héllo ✓"
            await ws.send(b"\x00\xff" * 100)
            assert await ws.recv() == b"\x00\xff" * 100
            await ws.send("")
            assert await ws.recv() == ""
            await ws.send(b"")
            assert await ws.recv() == b""

    run(main())


def test_large_messages(server: TricornProcess) -> None:
    text = "é" * 2_000_000  # 4 MB of UTF-8
    data = os.urandom(4 * 1024 * 1024)

    async def main() -> None:
        async with connect(ws_url(server), max_size=None) as ws:
            await ws.send(text)
            assert await ws.recv() == text
            await ws.send(data)
            assert await ws.recv() == data

    run(main())


def test_fragmented_messages(server: TricornProcess) -> None:
    async def main() -> None:
        async with connect(ws_url(server)) as ws:
            await ws.send(["frag", "ment", "ed ✓"])
            assert await ws.recv() == "fragmented ✓"
            await ws.send([b"a" * 70000, b"b", b"c" * 10])
            assert await ws.recv() == b"a" * 70000 + b"b" + b"c" * 10

    run(main())


def test_fragments_with_interleaved_ping(server: TricornProcess) -> None:
    client = accepted(server)
    client.send(frame(1, b"one ", fin=False) + frame(9, b"ping!") + frame(0, b"two ", fin=False))
    client.send(frame(10, b"unsolicited pong") + frame(0, b"three"))
    assert client.read_frame() == (10, True, b"ping!")
    assert client.read_frame() == (1, True, b"one two three")
    client.close()


def test_ping(server: TricornProcess) -> None:
    async def main() -> float:
        async with connect(ws_url(server)) as ws:
            pong = await ws.ping(b"are you there")
            return await pong

    assert run(main()) >= 0


@pytest.mark.parametrize("deflate", [True, False], ids=["deflate", "no-deflate"])
def test_compression(start: Start, deflate: bool) -> None:
    server = start() if deflate else start("--no-ws-per-message-deflate")
    text = "compress me " * 10000

    async def main() -> list[str]:
        async with connect(ws_url(server), compression="deflate") as ws:
            await ws.send(text)
            assert await ws.recv() == text
            await ws.send(os.urandom(10000))
            await ws.recv()
            return [type(e).__name__ for e in ws.protocol.extensions]

    assert run(main()) == (["PerMessageDeflate"] if deflate else [])


def test_compression_parameters_are_honoured(server: TricornProcess) -> None:
    client = RawClient(
        server.port,
        headers={
            "Sec-WebSocket-Extensions": "permessage-deflate; server_no_context_takeover; "
            "client_max_window_bits; server_max_window_bits=10"
        },
    )
    status, headers = client.handshake()
    assert status == "HTTP/1.1 101 Switching Protocols"
    params = {p.strip() for p in headers["sec-websocket-extensions"].split(";")}
    assert params == {
        "permessage-deflate",
        "server_no_context_takeover",
        "server_max_window_bits=10",
        "client_max_window_bits=12",
    }
    client.close()


def test_unacceptable_compression_offer_is_declined(server: TricornProcess) -> None:
    # server_max_window_bits=8 cannot be honoured with zlib: the offer is skipped, not refused.
    client = RawClient(
        server.port,
        headers={"Sec-WebSocket-Extensions": "permessage-deflate; server_max_window_bits=8, x-unknown"},
    )
    status, headers = client.handshake()
    assert status == "HTTP/1.1 101 Switching Protocols"
    assert "sec-websocket-extensions" not in headers
    client.close()


def test_decompression_bomb_stops_at_the_limit(start: Start) -> None:
    server = start("--ws-max-size", "1000000")

    async def main() -> Any:
        async with connect(ws_url(server), compression="deflate", max_size=None) as ws:
            await ws.send(b"\0" * 50_000_000)  # about 50 KB on the wire
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            return info.value.rcvd

    received = run(main())
    assert received is not None and received.code == 1009


def test_subprotocol(server: TricornProcess) -> None:
    async def main() -> str | None:
        async with connect(ws_url(server, "/subprotocol"), subprotocols=["one", "two"]) as ws:  # type: ignore[list-item]
            return ws.subprotocol

    assert run(main()) == "two"


def test_accept_headers(server: TricornProcess) -> None:
    async def main() -> Any:
        async with connect(ws_url(server, "/headers")) as ws:
            assert ws.response is not None
            return ws.response.headers

    headers = run(main())
    assert headers["x-tricorn-test"] == "yes"
    assert headers["set-cookie"] == "a=b"


@pytest.mark.parametrize("code", [1000, 1001, 1008, 3000, 4001, 4999])
def test_app_close_codes(server: TricornProcess, code: int) -> None:
    path = unique(f"/close/{code}/")

    async def main() -> Any:
        async with connect(ws_url(server, path)) as ws:
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            return info.value.rcvd

    received = run(main())
    assert (received.code, received.reason) == (code, "bye")
    wait_for(lambda: [code, "bye", path] in events(server)["disconnects"])


def test_app_returning_closes_normally(server: TricornProcess) -> None:
    async def main() -> Any:
        async with connect(ws_url(server, "/return")) as ws:
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            return info.value

    closed = run(main())
    assert closed.rcvd.code == 1000 and closed.rcvd_then_sent is True  # the server closed first


@pytest.mark.parametrize("code", [1000, 1001, 4002])
def test_disconnect_code_reaches_the_app(server: TricornProcess, code: int) -> None:
    path = unique()

    async def main() -> None:
        async with connect(ws_url(server, path)) as ws:
            await ws.close(code, "client leaving")

    run(main())
    wait_for(lambda: [code, "client leaving", path] in events(server)["disconnects"])


def test_lost_connection_is_1006(server: TricornProcess) -> None:
    path = unique()
    client = accepted(server, path)
    client.send(frame(1, b"hi"))
    assert client.read_frame() == (1, True, b"hi")
    client.close()
    wait_for(lambda: [1006, "", path] in events(server)["disconnects"])


def test_send_after_disconnect_raises_an_oserror(server: TricornProcess) -> None:
    path = unique("/send-after-disconnect/")

    async def main() -> None:
        async with connect(ws_url(server, path)) as ws:
            await ws.close(1000)

    run(main())
    wait_for(lambda: [1000, "ClientDisconnected", path] in events(server)["disconnects"])


def test_close_before_accept_is_403(server: TricornProcess) -> None:
    async def main() -> None:
        async with connect(ws_url(server, "/reject")):
            pass

    with pytest.raises(InvalidStatus) as info:
        run(main())
    assert info.value.response.status_code == 403


def test_denial_response(server: TricornProcess) -> None:
    async def main() -> None:
        async with connect(ws_url(server, "/deny")):
            pass

    with pytest.raises(InvalidStatus) as info:
        run(main())
    response = info.value.response
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Basic"
    assert response.body == b"go away"


def test_app_error_before_accept_is_500(server: TricornProcess) -> None:
    client = RawClient(server.port, "/error-before-accept")
    status, _ = client.handshake()
    assert status.startswith("HTTP/1.1 500 ")
    client.close()
    assert "failing before the accept" in server.output()


def test_app_returning_without_accepting_is_500(server: TricornProcess) -> None:
    client = RawClient(server.port, "/no-accept")
    status, _ = client.handshake()
    assert status.startswith("HTTP/1.1 500 ")
    client.close()


def test_app_error_after_accept_is_1011(server: TricornProcess) -> None:
    client = accepted(server, "/error-after-accept")
    client.send(frame(1, b"boom"))
    assert client.read_close()[0] == 1011
    assert client.at_eof()
    client.close()


def test_100_concurrent_clients(server: TricornProcess) -> None:
    async def one(i: int) -> None:
        async with connect(ws_url(server)) as ws:
            for j in range(5):
                await ws.send(f"client {i} message {j}")
                assert await ws.recv() == f"client {i} message {j}"
            await ws.send(bytes([i]) * 1000)
            assert await ws.recv() == bytes([i]) * 1000

    async def main() -> None:
        await asyncio.gather(*(one(i) for i in range(100)))

    run(main())


# -- malformed frames over raw sockets ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        pytest.param(frame(1, b"unmasked", mask=False), 1002, id="unmasked"),
        pytest.param(frame(3, b"x"), 1002, id="reserved-opcode-3"),
        pytest.param(frame(11, b""), 1002, id="reserved-control-opcode-11"),
        pytest.param(frame(1, b"x", rsv=4), 1002, id="rsv1-without-extension"),
        pytest.param(frame(1, b"x", rsv=1), 1002, id="rsv3"),
        pytest.param(frame(9, b"x" * 126), 1002, id="control-frame-too-long"),
        pytest.param(frame(9, b"x", fin=False), 1002, id="fragmented-ping"),
        pytest.param(frame(0, b"x"), 1002, id="continuation-without-start"),
        pytest.param(frame(1, b"a", fin=False) + frame(1, b"b"), 1002, id="new-message-inside-fragments"),
        pytest.param(frame(1, b"\xff\xfe"), 1007, id="invalid-utf8"),
        pytest.param(frame(1, "é".encode()[:1]), 1007, id="truncated-utf8"),
        pytest.param(frame(1, b"ok \xed\xa0\x80"), 1007, id="utf8-surrogate"),
        pytest.param(
            frame(1, b"valid", fin=False) + frame(0, b"\xc0\xaf", fin=False),
            1007,
            id="invalid-utf8-in-fragment",
        ),
        pytest.param(frame(8, b"\x03"), 1002, id="close-one-byte"),
        pytest.param(frame(8, close_payload(999)), 1002, id="close-code-999"),
        pytest.param(frame(8, close_payload(1004)), 1002, id="close-code-1004"),
        pytest.param(frame(8, close_payload(1005)), 1002, id="close-code-1005"),
        pytest.param(frame(8, close_payload(1006)), 1002, id="close-code-1006"),
        pytest.param(frame(8, close_payload(1016)), 1002, id="close-code-1016"),
        pytest.param(frame(8, close_payload(2999)), 1002, id="close-code-2999"),
        pytest.param(frame(8, close_payload(5000)), 1002, id="close-code-5000"),
        pytest.param(frame(8, close_payload(1000, b"\xff")), 1007, id="close-reason-invalid-utf8"),
    ],
)
def test_malformed_frame_fails_the_connection(server: TricornProcess, frames: bytes, code: int) -> None:
    client = accepted(server)
    client.send(frames)
    assert client.read_close()[0] == code
    assert client.at_eof()  # the server closes the TCP connection (RFC 6455 §7.1.1)
    client.close()


def test_oversized_frame_is_refused_before_its_payload(start: Start) -> None:
    server = start("--ws-max-size", "1024")
    client = accepted(server)
    # Only the header of a 1 GiB frame: the server must not wait for (or buffer) the payload.
    client.send(frame(2, b"", length=1 << 30)[:10])
    assert client.read_close()[0] == 1009
    client.close()


def test_oversized_fragmented_message(start: Start) -> None:
    server = start("--ws-max-size", "1024")
    client = accepted(server)
    client.send(frame(2, b"x" * 600, fin=False) + frame(0, b"x" * 600))
    assert client.read_close()[0] == 1009
    client.close()


def test_message_at_the_limit_is_accepted(start: Start) -> None:
    server = start("--ws-max-size", "1024")
    client = accepted(server)
    client.send(frame(2, b"x" * 1024))
    assert client.read_frame() == (2, True, b"x" * 1024)
    client.close()


def test_close_handshake_initiated_by_the_client(server: TricornProcess) -> None:
    client = accepted(server)
    client.send(frame(8, close_payload(1000, b"done")))
    assert client.read_frame() == (8, True, close_payload(1000, b"done"))
    assert client.at_eof()
    client.close()


def test_empty_close_frame_is_echoed(server: TricornProcess) -> None:
    path = unique()
    client = accepted(server, path)
    client.send(frame(8, b""))
    assert client.read_frame() == (8, True, b"")
    assert client.at_eof()
    wait_for(lambda: [1005, "", path] in events(server)["disconnects"])
    client.close()


def test_frames_with_debug_logging(start: Start) -> None:
    # With the debug log on, frames are read by the websockets library, which logs each one, and not by
    # the fast lane (proto/ws.py, WSConnection._fast_frames), which does not: what a client gets back is
    # the same either way, and every frame read and written has its debug line.
    server = start("--log-level", "debug")
    path = unique()
    client = accepted(server, path)
    big = os.urandom(70000)  # a 64-bit length
    # Several whole frames in one write, as the fast lane would take them.
    client.send(frame(1, "héllo ✓".encode()) + frame(2, b"\x00\xff" * 100) + frame(2, big))
    assert client.read_frame() == (1, True, "héllo ✓".encode())
    assert client.read_frame() == (2, True, b"\x00\xff" * 100)
    assert client.read_frame() == (2, True, big)
    # A ping, then a fragmented text message (its UTF-8 split across the fragments) in the same write.
    text = "fragmented ✓".encode()
    client.send(frame(9, b"ping!") + frame(1, text[:11], fin=False) + frame(0, text[11:]))
    assert client.read_frame() == (10, True, b"ping!")
    assert client.read_frame() == (1, True, text)
    # A masked close with a reason: unmasked, echoed, and its code and reason given to the app.
    client.send(frame(8, close_payload(1000, b"done here"), key=b"\xa5\x5a\xff\x01"))
    assert client.read_frame() == (8, True, close_payload(1000, b"done here"))
    assert client.at_eof()
    client.close()
    wait_for(lambda: [1000, "done here", path] in events(server)["disconnects"])
    wait_for(lambda: "> CLOSE 1000 (OK) done here" in server.output(), what=server.output)
    output = server.output()
    for line in (
        "< TEXT 'héllo ✓' [10 bytes]",
        "> TEXT 'héllo ✓' [10 bytes]",
        "< BINARY 00 ff 00 ff",
        "< BINARY",
        "[70000 bytes]",
        "< TEXT 'fragmented ' [11 bytes, continued]",
        "< CONT '✓' [text, 3 bytes]",
        "> TEXT 'fragmented ✓' [14 bytes]",
        "< PING 'ping!' [text, 5 bytes]",
        "> PONG 'ping!' [text, 5 bytes]",
        "< CLOSE 1000 (OK) done here [11 bytes]",
    ):
        assert line in output, line


def test_closing_handshake_times_out(start: Start) -> None:
    server = start("--ws-close-timeout", "0.2")
    client = accepted(server, "/close/4000")
    assert client.read_close() == (4000, b"bye")
    # The client never answers the close frame: the server drops the connection after the timeout.
    assert client.at_eof()
    client.close()


def test_keepalive_ping_and_timeout(start: Start) -> None:
    server = start("--ws-ping-interval", "0.1", "--ws-ping-timeout", "0.3")
    client = accepted(server)
    opcode, _, payload = client.read_frame()
    assert opcode == 9
    client.send(frame(10, payload))  # answer the first ping
    opcode, _, payload2 = client.read_frame()
    assert opcode == 9 and payload2 != payload  # the next one comes after the interval
    # Do not answer the second: the connection is closed with 1011.
    assert client.read_close()[0] == 1011
    assert client.at_eof()
    client.close()


def test_keepalive_off(start: Start) -> None:
    server = start("--ws-ping-interval", "none")
    client = accepted(server)
    client.send(frame(1, b"still here"))
    assert client.read_frame() == (1, True, b"still here")
    client.close()


# -- flow control ------------------------------------------------------------------------------------------


def test_slow_reader_makes_the_app_wait(start: Start) -> None:
    server = start()  # its own: the app's progress counters are per process
    count, size = 200, 256 * 1024  # 50 MiB in all, far more than the socket buffers hold
    client = accepted(server, f"/flood/{count}/{size}")
    # The client reads nothing: the app's send() must suspend while most messages are still unsent.
    wait_for(lambda: (e := events(server))["in_send"] and e["sent"] > 0)
    assert events(server)["sent"] < count // 2
    for _ in range(count):
        opcode, fin, payload = client.read_frame()
        assert (opcode, fin, len(payload)) == (2, True, size)
    wait_for(lambda: events(server)["sent"] == count)
    client.close()


def test_app_that_does_not_read_stops_the_reading(start: Start) -> None:
    server = start("--ws-max-queue", "4")
    client = accepted(server, "/hold")
    client.sock.settimeout(1.5)
    message = frame(2, b"y" * 65536)
    sent = 0
    with pytest.raises(TimeoutError):  # the server stopped reading: the socket buffers fill up
        for _ in range(2000):  # 128 MiB would be buffered if the server kept reading
            client.send(message)
            sent += 1
    assert sent < 2000
    client.sock.settimeout(20)
    httpx.get(f"{server.url}/release")
    client.send(frame(1, b"done"))
    opcode, _, payload = client.read_frame()
    assert opcode == 1 and int(payload) >= sent + 1
    client.close()


# -- shutdown -------------------------------------------------------------------------------------------


def test_graceful_shutdown_closes_websockets_with_1001(start: Start, tmp_path: Path) -> None:
    marker = tmp_path / "lifespan"
    server = start("--timeout-graceful-shutdown", "0.5", env={"TRICORN_TEST_LIFESPAN_FILE": str(marker)})
    client = accepted(server)
    client.send(frame(1, b"before"))
    assert client.read_frame() == (1, True, b"before")
    server.send_signal(signal.SIGTERM)
    assert client.read_close() == (1001, b"server shutting down")
    assert client.at_eof()
    assert server.wait() == 0
    assert marker.read_text() == "shutdown\n"  # lifespan shutdown still ran
    client.close()


def test_websockets_library_version() -> None:
    assert websockets.version.version >= "14"


# -- the ecosystem's frameworks -----------------------------------------------------------------------


def test_starlette_websocket(start: Start) -> None:
    server = start(app="tests.apps.ws_frameworks:starlette_app")

    async def main() -> tuple[str | None, str, Any]:
        async with connect(ws_url(server, "/ws"), subprotocols=["graphql-ws"]) as ws:  # type: ignore[list-item]
            await ws.send("hello")
            reply = await ws.recv()
            await ws.send("close")
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            return ws.subprotocol, reply, info.value.rcvd  # type: ignore[return-value]

    subprotocol, reply, closed = run(main())
    assert (subprotocol, reply) == ("graphql-ws", "HELLO")
    assert (closed.code, closed.reason) == (4321, "asked to")


def test_fastapi_websocket(start: Start) -> None:
    server = start(app="tests.apps.ws_frameworks:fastapi_app")

    async def main() -> Any:
        async with connect(ws_url(server, "/items/7")) as ws:
            await ws.send(json.dumps({"n": 1}))
            return json.loads(await ws.recv())

    assert run(main()) == {"item": 7, "got": {"n": 1}}
    with pytest.raises(InvalidStatus) as info:
        run(connect(ws_url(server, "/items/0")).__aenter__())
    assert info.value.response.status_code == 403
