"""The ASGI ceiling: uvloop and a protocol that answers every request with the same bytes.

    python bench/canned.py PORT

Not a server to deploy, not even an HTTP server: it reads no request line and no header, calls no
app, and for every request head it sees (each ``\\r\\n\\r\\n``) writes one fixed response, the same bytes
tricorn sends for ``bench.apps:hello`` (with a date header fixed at start). A request that asks for
``Connection: close`` is answered with ``connection: close`` and the connection is closed. What is left
is the kernel's TCP work and uvloop calling into Python once per read, so it is the ceiling for any
Python server on uvloop; tricorn's ASGI hello is read against it as well as against its peers
(``bench/run.py --section asgi``: the ``canned`` server runs in the ``hello`` and ``close`` cases, as a
reference, not a peer).
"""

from __future__ import annotations

import asyncio
import email.utils
import sys

import uvloop

BODY = b"Hello, world!"
RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nserver: tricorn\r\ndate: "
    + email.utils.formatdate(usegmt=True).encode()
    + b"\r\ncontent-length: %d\r\n\r\n%s" % (len(BODY), BODY)
)
# tricorn's answer to a request that asked to close (wrk reconnects only on a response that says so).
RESPONSE_CLOSE = RESPONSE.replace(b"\r\n\r\n", b"\r\nconnection: close\r\n\r\n", 1)
END = b"\r\n\r\n"


class Canned(asyncio.Protocol):
    __slots__ = ("tail", "transport")

    def __init__(self) -> None:
        self.tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.tail:
            data = self.tail + data
        heads = data.count(END)
        # A head split across reads: keep what follows the last complete one.
        last = data.rfind(END)
        self.tail = data[last + 4 :] if last >= 0 else data[-4096:]
        if heads:
            if b"lose" in data and b"connection: close" in data.lower():
                self.transport.write(RESPONSE_CLOSE)
                self.transport.close()
            else:
                self.transport.write(RESPONSE * heads)


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    await loop.create_server(Canned, "127.0.0.1", port, backlog=1024)
    await asyncio.Event().wait()


def main() -> None:
    uvloop.run(serve(int(sys.argv[1])))


if __name__ == "__main__":
    main()
