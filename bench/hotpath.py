"""Instructions per request on the HTTP/1.1 hot path, in process: for measuring a change where wall-clock
runs are too noisy (a shared machine). One keep-alive connection, an H1Protocol over a stand-in transport,
N bench "hello" requests; run it under callgrind twice, with N and with 0 requests, and divide:

    valgrind --tool=callgrind --callgrind-out-file=/dev/null .venv/bin/python bench/hotpath.py 2000
    valgrind --tool=callgrind --callgrind-out-file=/dev/null .venv/bin/python bench/hotpath.py 0
    # (Ir of the first - Ir of the second) / 2000: instructions per request

Options after N are tricorn settings (``--no-proxy-headers``, ``--interface wsgi``, ``--mount
/api=bench.apps:hello``, ``--metrics-bind 127.0.0.1:9100``); ``--header NAME:VALUE`` adds a request
header (``--header "X-Forwarded-For: 203.0.113.7"``), ``--path PATH`` requests PATH instead of ``/`` (a
mount's, say).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from tricorn.config import Config
from tricorn.io.h1 import H1Protocol
from tricorn.io.server import ServerState


class Transport:
    """What H1Protocol uses of a transport; the response bytes are counted and dropped."""

    def __init__(self) -> None:
        self.written = 0
        self.answered: asyncio.Future[None] | None = None  # set when a response is written

    def write(self, data: bytes) -> None:
        self.written += len(data)
        if self.answered is not None and not self.answered.done():
            self.answered.set_result(None)

    def writelines(self, parts: Any) -> None:
        self.write(b"".join(parts))

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def close(self) -> None: ...
    def is_closing(self) -> bool:
        return False


def main(argv: list[str]) -> None:
    count = int(argv[0])
    extra = b""
    path = b"/"
    settings: list[str] = []
    rest = iter(argv[1:])
    for arg in rest:
        if arg == "--header":
            extra += next(rest).encode("latin-1") + b"\r\n"
        elif arg == "--path":
            path = next(rest).encode("latin-1")
        else:
            settings.append(arg)
    interface = "wsgi" if "wsgi" in settings else "asgi"
    config = Config.load(
        ["bench.apps:wsgi_hello" if interface == "wsgi" else "bench.apps:hello", *settings], env={}
    )
    from bench import apps

    app = apps.wsgi_hello if interface == "wsgi" else apps.hello
    loop = asyncio.new_event_loop()
    options: dict[str, Any] = {}  # (no keyword when there are none: the script also runs older trees)
    if getattr(config, "app_mounts", ()):
        from tricorn.importer import load_apps

        options["mounts"] = [each for each in load_apps(config) if each.prefix != "/"]
    state = ServerState(config, app, loop, "httptools", interface, **options)  # type: ignore[arg-type]
    if getattr(config, "metrics_bind", None) is not None:  # counted as a worker counts (nothing is bound)
        from tricorn.io.metrics import new_slot

        state.attach_metrics(new_slot(config))
    protocol = H1Protocol(state)
    transport = Transport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    request = b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: wrk\r\n" + extra + b"\r\n"

    async def drive() -> None:
        for _ in range(count):
            answered = transport.answered = loop.create_future()
            protocol.data_received(request)
            if not answered.done():  # a WSGI app's thread, or an app that awaits: the loop waits, idle
                await answered
            await asyncio.sleep(0)  # the response's end-of-turn work

    loop.run_until_complete(drive())
    protocol.connection_lost(None)
    loop.run_until_complete(asyncio.sleep(0))
    print(f"{count} requests, {transport.written} bytes answered", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
