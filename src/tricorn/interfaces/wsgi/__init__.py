"""WSGI (PEP 3333) adapter: one :class:`WSGICycle` per request, the application run on worker threads.

The package: :mod:`.environ` (the environ and start_response's checks), :mod:`.streams` (wsgi.input,
wsgi.errors, the file wrapper), :mod:`.threads` (the worker threads and the mailbox to the loop) and
:mod:`.cycle` (one request, with the theory of operation); :class:`WSGIServer`, here, ties them together.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from tricorn.interfaces.forwarded import forwarded
from tricorn.interfaces.stream import RESPONSE_START
from tricorn.interfaces.wsgi.cycle import WSGICycle
from tricorn.interfaces.wsgi.environ import (
    ConnectionEnviron,
    WSGIApp,
    base_environ,
    build_environ,
    connection_environ,
    request_environ,
)
from tricorn.interfaces.wsgi.streams import ErrorStream, FileWrapper, WSGIInput
from tricorn.interfaces.wsgi.threads import Mailbox, WorkerPool
from tricorn.proto.forwarded import carries_proxy_headers
from tricorn.proto.h1 import Request

if TYPE_CHECKING:
    from tricorn.interfaces.stream import Stream

__all__ = [
    "ConnectionEnviron",
    "ErrorStream",
    "FileWrapper",
    "Mailbox",
    "WSGICycle",
    "WSGIInput",
    "WSGIServer",
    "WorkerPool",
    "base_environ",
    "build_environ",
    "connection_environ",
    "request_environ",
]

error_log = logging.getLogger("tricorn.error")


class WSGIServer:
    """What every WSGI request of a worker process shares: the app, its threads, the environ's constants."""

    def __init__(
        self,
        app: WSGIApp,
        loop: asyncio.AbstractEventLoop,
        threads: int,
        root_path: str = "",
        multiprocess: bool = False,
        timeout_send: float = 60.0,
        mount: str = "",
        share: WSGIServer | None = None,
    ) -> None:
        self.app = app
        self.loop = loop
        self.timeout_send = timeout_send  # for a worker's sendfile, the one wait the loop does not see
        # A mounted app (--mount PREFIX=...) shares the thread pool and the mailbox of the worker's first
        # WSGI app, and sees PREFIX in SCRIPT_NAME, not in PATH_INFO (PEP 3333).
        self.pool: WorkerPool = share.pool if share is not None else WorkerPool(threads)
        self.mailbox: Mailbox = share.mailbox if share is not None else Mailbox(loop)
        self.post = self.mailbox.post
        self.base = base_environ(threads > 1, multiprocess, root_path)
        self.mount = mount
        self.path_root = root_path  # --root-path: what a proxy stripped, put back before every path
        self.root_path = root_path + mount  # SCRIPT_NAME
        self.request_environ = self._mounted_environ if mount else request_environ
        self._starting: list[WSGICycle] = []

    def _mounted_environ(self, request: Request, conn: ConnectionEnviron, wsgi_input: Any) -> dict[str, Any]:
        environ = request_environ(request, conn, wsgi_input)
        environ["SCRIPT_NAME"] = self.root_path
        # The prefix was matched on the raw path and holds no percent escape: decoding left it as it was.
        environ["PATH_INFO"] = environ["PATH_INFO"][len(self.mount) :]
        return environ

    def start(self, cycle: WSGICycle, runner: object = None) -> None:
        """Run ``cycle``'s app on a thread. Loop thread. (``runner``, the connection's ASGI runner, is not
        used: this is the dispatch table's ``start_cycle``, bound directly.)

        The requests started during one turn of the loop go to the pool together, at the end of the turn:
        one thread wakeup for the batch, not one per request (bench wsgi "hello").
        """
        starting = self._starting
        if not starting:
            self.loop.call_soon(self._submit)
        starting.append(cycle)

    def _submit(self) -> None:
        starting, self._starting = self._starting, []
        if self.pool.closed:  # shutting down: the last threads are gone or going
            for cycle in starting:
                cycle.abandoned = True
                cycle._loop_final_error("", None, True)
            return
        self.pool.submit(starting)

    def new_cycle(self, stream: Stream, request: Request) -> WSGICycle:
        """The cycle of ``request``, which ``stream`` received. Loop thread.

        The cycle is made here by a call of its class, which has no ``__init__`` (a class's call with one
        runs it in a C-level call of its own on Python 3.11), rather than with ``object.__new__``, whose
        call goes through a wrapper that checks and slices its arguments (bench wsgi "hello"). What every
        request reads before anything may set it is set on the instance, not left to a class-level
        default: Python 3.11 specializes an attribute read only when the instance holds the name, and
        looks a class-level default up the generic way, some ten times the cost (bench wsgi "hello").
        """
        cycle = WSGICycle()
        cycle.server = self
        cycle.stream = stream
        cycle.request = request
        cycle.state = RESPONSE_START
        cycle.abandoned = False
        cycle.disconnected = False
        cycle.forwarded = None
        cycle.started = None
        cycle.headers_sent = False
        cycle.chunks = None
        trust = stream.proxy_trust
        if trust is not None and not request.proxy_free and carries_proxy_headers(request.headers):
            # a trusted proxy's headers, read once for the environ and the access log
            cycle.forwarded = forwarded(request.headers, stream.client, trust)
        return cycle

    async def close(self, timeout: float) -> None:
        """Graceful stop: wait up to ``timeout`` for requests still running in threads (the loop keeps
        running their operations meanwhile), then let the threads go."""
        pool = self.pool
        pool.close()
        deadline = self.loop.time() + timeout
        while pool.busy and self.loop.time() < deadline:
            await asyncio.sleep(0.01)
        if pool.busy:
            error_log.warning("%d wsgi request(s) still running in threads at shutdown", pool.busy)
        self.mailbox.drain()
