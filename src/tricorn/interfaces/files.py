"""Sending files: the one sender behind static files, the ASGI ``http.response.pathsend`` and
``http.response.zerocopysend`` extensions and WSGI's ``wsgi.file_wrapper``.

Two ways a file's bytes reach a client:

- Zero copy (:class:`FileSend`): the response head, then ``os.sendfile`` from the file to the socket, on
  cleartext HTTP/1.1 only (the kernel cannot encrypt, nor frame HTTP/2 DATA). ``FileSend.step`` sends what
  the socket takes without blocking; its driver waits for room in between: the event loop (an ASGI
  response, :meth:`tricorn.io.h1.H1Protocol.sendfile`, with ``--timeout-send`` kept by the stream) or a
  WSGI worker thread (:mod:`tricorn.interfaces.wsgi.cycle`, with ``poll``).
- Bounded chunks (:func:`read_chunk` and the cycle's loop over it): over TLS and HTTP/2, the file is read
  :data:`FILE_CHUNK` bytes at a time and each piece goes out as a body part; the next is read only once the
  stream takes more (``write_paused``/``drain``), so a slow reader of a huge file holds one chunk.

File opens, stats and reads never run on the event loop (a disk or network filesystem may block for
long): they run on a small pool of threads of their own (:func:`file_executor`), not the default
executor, whose threads the worker's heartbeat uses.
"""

from __future__ import annotations

import asyncio
import os
import socket
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from tricorn.errors import LocalProtocolError

T = TypeVar("T")

# The largest os.sendfile() call (Linux caps one call at 2 GiB - 4 KiB anyway; a non-blocking socket
# takes at most its buffer's room per call).
SENDFILE_CHUNK = 1 << 30
# The piece of a file read and sent at a time where sendfile cannot be used (TLS, HTTP/2): what a slow
# reader holds in memory. nginx's output_buffers default is 2 x 32 KiB; 64 KiB is one HTTP/2 window.
FILE_CHUNK = 65536
# Threads for file opens, stats and reads (per worker process). nginx's default thread_pool has 32
# threads, for disk reads only (aio threads); ours do opens and stats of files not in the static cache,
# and reads for TLS and HTTP/2, each short.
FILE_THREADS = 4
# Linux's cork; 0 where there is none (BSD's TCP_NOPUSH works differently: it is not used).
TCP_CORK: int = getattr(socket, "TCP_CORK", 0)

_executor: ThreadPoolExecutor | None = None


def file_executor() -> ThreadPoolExecutor:
    """The worker's pool of file threads (started at first use, after any fork)."""
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(FILE_THREADS, thread_name_prefix="tricorn-files")
    return _executor


async def on_file_thread(
    func: Callable[..., T], *args: Any, discard: Callable[[T], object] | None = None
) -> T:
    """``func(*args)`` run on a file thread: its result, or its exception raised here. ``discard`` is
    given a result that nobody waits for any more (the waiter was cancelled, the loop is gone): what
    it holds, an open descriptor say, is released there.

    The thread settles a future of the loop's own, where ``loop.run_in_executor`` chains a
    concurrent.futures future to a new asyncio one (locks, callbacks, a copy of its state on each side):
    bench/instructions.py cgi counts 52k instructions a call fewer on the loop this way."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def run() -> None:
        settle: tuple[asyncio.Future[T], Any, BaseException | None, Callable[[T], object] | None]
        try:
            result = func(*args)
        except BaseException as exc:
            settle = (done, None, exc, None)
        else:
            settle = (done, result, None, discard)
        try:
            loop.call_soon_threadsafe(_settle, *settle)
        except RuntimeError:  # the loop is closed
            _settle(*settle)

    file_executor().submit(run)
    return await done


def _settle(
    done: asyncio.Future[Any],
    result: Any,
    exc: BaseException | None,
    discard: Callable[[Any], object] | None = None,
) -> None:
    if done.done() or done.get_loop().is_closed():  # (its waiter was cancelled meanwhile)
        if discard is not None:
            discard(result)
        return
    if exc is None:
        done.set_result(result)
    else:
        done.set_exception(exc)


async def read_chunk(fd: int, size: int, offset: int) -> bytes:
    """``size`` bytes of ``fd`` at ``offset`` (fewer at the end of the file), read on a file thread."""
    return await on_file_thread(os.pread, fd, size, offset)


def _open_regular(path: str) -> tuple[int, int]:
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # (a FIFO's open must not block)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise LocalProtocolError(f"{path!r:.200} is not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd, info.st_size


def _close_opened(opened: tuple[int, int]) -> None:
    os.close(opened[0])


async def open_regular(path: str) -> tuple[int, int]:
    """Open the regular file ``path`` on a file thread: (descriptor, size). LocalProtocolError when it
    cannot be opened or is not a regular file (the app asked for something the server cannot send)."""
    try:
        return await on_file_thread(_open_regular, path, discard=_close_opened)
    except OSError as exc:
        raise LocalProtocolError(f"cannot open {path!r:.200}: {exc.strerror}") from None


class FileSend:
    """``head`` then ``count`` bytes of ``fd`` from ``offset``, onto the non-blocking socket ``sock``,
    with os.sendfile. ``sent`` counts the file's bytes sent (fewer than ``count`` when the client went
    away or the file shrank).

    A TCP socket is corked (``TCP_CORK``, nginx's ``tcp_nopush``) from the head to the end of the file:
    the head shares the file's first segment instead of going out alone, and every segment is full
    (bench static "file1m": 0.54x nginx without, 0.93x with, in the same run)."""

    __slots__ = ("cork", "corked", "count", "fd", "gone", "head", "offset", "sent", "sock", "sock_fd")

    def __init__(self, sock: socket.socket, head: bytes, fd: int, offset: int, count: int) -> None:
        self.sock = sock
        self.sock_fd = sock.fileno()
        self.head = memoryview(head)
        self.fd = fd
        self.offset = offset
        self.count = count
        self.sent = 0
        self.gone = False  # the socket failed: the client went away
        self.cork = bool(head) and TCP_CORK != 0 and sock.family != socket.AF_UNIX  # cork at the start
        self.corked = False  # corked: uncork at the end

    def step(self) -> bool:
        """Send what the socket takes now: True when done (all sent, the client gone, the file shorter
        than it was), False when the socket is full (wait until it is writable, and step again)."""
        sock_fd = self.sock_fd
        try:
            if self.cork:
                self.cork = False
                self.sock.setsockopt(socket.IPPROTO_TCP, TCP_CORK, 1)
                self.corked = True
            head = self.head
            while head:
                n = os.write(sock_fd, head)
                head = self.head = head[n:]
            count = self.count
            sent = self.sent
            while sent < count:
                n = os.sendfile(sock_fd, self.fd, self.offset + sent, min(count - sent, SENDFILE_CHUNK))
                if n == 0:  # the file is shorter than it was
                    break
                sent = self.sent = sent + n
            if self.corked:
                self.sock.setsockopt(socket.IPPROTO_TCP, TCP_CORK, 0)  # out goes the last, partial segment
        except BlockingIOError:
            return False
        except OSError:  # the client went away (EPIPE, ECONNRESET) or the socket was shut down
            self.gone = True
        return True
