"""The contract between a connection protocol and the adapters that serve a request on it.

Every protocol tricorn speaks (HTTP/1.1 in :mod:`tricorn.io.h1`, HTTP/2 in :mod:`tricorn.io.h2`) turns its
frames into per-request events and hands them to a *cycle* (an ASGI :class:`~tricorn.interfaces.asgi.HTTPCycle`
or a WSGI :class:`~tricorn.interfaces.wsgi.WSGICycle`); the cycle answers through the request's *stream*.
Neither side knows the other's concrete class, so each adapter exists once and serves every protocol:

- stream -> cycle: ``feed_body(data)``, ``end_body()``, ``disconnect()``, ``peer_closed()``; the stream reads
  the cycle's ``state``, ``status``, ``response_headers``, ``response_bytes``, ``body_complete`` and
  ``counted`` for its own accounting and the access log.
- cycle -> stream: the calls of :class:`Stream` below. Framing (status lines, chunked coding, HEADERS and
  DATA frames), header validation and write coalescing are the stream's; the order of calls and the app's
  protocol (ASGI messages, PEP 3333) are the cycle's.
- Deadlines: a cycle brackets each wait of its app on the client with ``wait_started(kind)`` and
  ``wait_ended(kind)``, :data:`WAIT_READ` while the app waits for body bytes not yet received,
  :data:`WAIT_SEND` while it waits for the client to take more of the response. Only waits are bracketed,
  so a request whose app never waits costs no deadline. The stream keeps the deadline
  (``--timeout-read``, ``--timeout-send``) on the server's tick; on expiry it answers 408 or closes the
  connection (HTTP/1.1) or the stream (HTTP/2), and calls the cycle's ``disconnect(reason)`` with a
  :class:`~tricorn.errors.ClientTimeout`.

On HTTP/1.1 the connection is itself the stream of the request it is answering (no object per request
beyond the cycle: bench "hello"); on HTTP/2 each stream id has its own stream object.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from tricorn.proto.forwarded import AllowList

# A slow app lets body bytes pile up to this much before the stream stops reading (uvicorn: 64 KiB).
HIGH_WATER = 65536

Headers = Iterable[tuple[bytes, bytes]]


class CycleState(Enum):
    RESPONSE_START = 0  # waiting for the response head
    RESPONSE_BODY = 1  # head given to the stream (held until the first body part), body in progress
    RESPONSE_DONE = 2  # the whole response was handed to the stream
    ABORTED = 3  # the app failed after the response started, or the connection was lost
    RESPONSE_TRAILERS = 4  # the body is out; trailers are due (the ASGI http.response.trailers extension)


# What a cycle waits for (Stream.wait_started): body bytes from the client, or room to send more.
WAIT_READ = 1
WAIT_SEND = 2

# Members as module constants: on Python 3.11 `Enum.MEMBER` goes through EnumType.__getattr__, which
# costs about as much as parsing a request head (bench "hello", counted with callgrind).
RESPONSE_START, RESPONSE_BODY, RESPONSE_DONE, ABORTED, RESPONSE_TRAILERS = CycleState


class Stream(Protocol):
    """What a cycle needs from the protocol that carries its request.

    ``response_start`` and ``response_body`` raise :class:`~tricorn.errors.LocalProtocolError` for a
    response the protocol cannot carry (a bad status or header, a body longer than its Content-Length);
    nothing is sent then.
    """

    wsgi_environ: Any  # the WSGI adapter's per-connection environ (interfaces/wsgi/environ.py), or None
    scope_base: Any  # what the connection's ASGI scopes share (interfaces/asgi.py build_scope), or None

    @property
    def proxy_trust(self) -> AllowList | None:
        """The allow list when the connection's peer is a trusted proxy, else None
        (interfaces/forwarded.py)."""

    @property
    def scheme(self) -> str:
        """``http`` or ``https``."""

    @property
    def client(self) -> tuple[str, int] | None: ...
    @property
    def tls(self) -> Any:
        """The ASGI ``tls`` extension's dict on a TLS connection, else None."""

    @property
    def server(self) -> tuple[str, int] | None: ...

    @property
    def write_paused(self) -> bool:
        """The peer is not taking more of the response now: await ``drain()``."""

    def response_start(self, status: int, headers: Headers) -> None:
        """Validate the response head; it goes out with the first body part (or alone with a 1xx)."""

    def response_body(self, data: bytes, more: bool) -> None:
        """Send ``data``; with ``more`` False the response is complete after it."""

    def response_whole(self, status: int, headers: Headers, body: bytes) -> None:
        """``response_start`` then ``response_body(body, False)``, in one call: a response whose whole
        body is known before its head goes out. The caller has checked that ``body`` is no longer than
        a Content-Length in ``headers``: only the head can be refused."""

    def response_continue(self) -> None:
        """Send ``100 Continue`` (RFC 9110 §10.1.1), if the protocol still can."""

    def response_informational(self, status: int, headers: Headers) -> None:
        """Send a 1xx response before the final one (``103 Early Hints``, RFC 8297), where the client
        can take it (not to an HTTP/1.0 client)."""

    def response_trailers(self, headers: Headers) -> None:
        """End a response whose body went out with ``more`` True with these trailer fields (dropped when
        the framing cannot carry them: a Content-Length body over HTTP/1.1)."""

    async def drain(self) -> None:
        """Wait until the peer takes more of the response (or the stream is gone)."""

    def wait_started(self, kind: int) -> None:
        """The app now waits on the client (:data:`WAIT_READ` or :data:`WAIT_SEND`): its deadline runs."""

    def wait_ended(self, kind: int) -> None:
        """The wait of ``kind`` is over (what it waited for came, or the cycle stopped waiting)."""

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...

    async def sendfile(self, fd: int, offset: int, count: int) -> int | None:
        """Send ``count`` bytes of ``fd`` from ``offset`` as body bytes with zero copy (after the held
        head), waiting for the client as needed; the bytes sent (fewer if the client left or the file
        shrank), or None when this stream cannot (TLS, HTTP/2, a chunked body): then the cycle sends the
        file in pieces through ``response_body``. The response stays open (the cycle ends it)."""

    def sendfile_start(self, status: int, headers: Headers) -> tuple[socket.socket, bytes] | None:
        """Validate the head of a response whose body a worker thread will send from a file: a private
        descriptor of the socket and the head's bytes when the transport allows zero-copy sendfile, else
        None (the head is held as by ``response_start`` and the body goes through ``response_body``)."""

    def sendfile_done(self, sent: int) -> None:
        """A sendfile of ``sent`` body bytes ended: the response is complete."""

    def cycle_complete(self, cycle: Any) -> None:
        """The cycle's response is complete (``RESPONSE_DONE``) or was cut (``ABORTED``)."""

    def app_error(self, cycle: Any, message: str, exc: BaseException | None) -> None:
        """The app failed: a 500 if nothing was sent, else the response is cut. Logs ``message``."""
