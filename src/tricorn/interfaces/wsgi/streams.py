"""The WSGI streams an application reads and writes: ``wsgi.input`` (:class:`WSGIInput`, and
:data:`NO_BODY` for a request without a body), ``wsgi.errors`` (:class:`ErrorStream`) and
``wsgi.file_wrapper`` (:class:`FileWrapper`)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from tricorn.logs import escape_controls

if TYPE_CHECKING:
    from tricorn.interfaces.wsgi.cycle import WSGICycle

error_log = logging.getLogger("tricorn.error")


class ErrorStream:
    """``wsgi.errors``: a text stream whose lines go to the error log (``tricorn.error``).

    What one ``write()`` completes (up to its last newline) is one record, its line breaks kept: a
    traceback a framework writes (Flask's and Django's loggers write a record per call) reads as it was
    written, under one header, quotes and all; only other control characters are escaped (a terminal
    escape cannot reach whoever reads the log). Partial lines are held per thread (a thread serves one
    request at a time) until their newline or ``flush()``.
    """

    def __init__(self) -> None:
        self._pending = threading.local()

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"wsgi.errors takes str, not {type(text).__name__}")
        held = getattr(self._pending, "text", "") + text
        complete, newline, rest = held.rpartition("\n")
        self._pending.text = rest
        if newline:
            error_log.error("%s", escape_controls(complete, keep_line_feeds=True))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        rest = getattr(self._pending, "text", "")
        if rest:
            self._pending.text = ""
            error_log.error("%s", escape_controls(rest, keep_line_feeds=True))


class FileWrapper:
    """``wsgi.file_wrapper``: iterates a file in blocks; served with ``os.sendfile`` when it is a real
    file (a regular file with a ``fileno()``) and the connection allows it."""

    __slots__ = ("blksize", "filelike")

    def __init__(self, filelike: Any, blksize: int = 8192) -> None:
        self.filelike = filelike
        self.blksize = blksize

    def __iter__(self) -> Iterator[bytes]:
        read = self.filelike.read
        while True:
            block = read(self.blksize)
            if not block:
                return
            yield block

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()


# -- wsgi.input -----------------------------------------------------------------------------------------


class WSGIInput:
    """``wsgi.input``: the request body as it arrives, read from a worker thread.

    ``read(n)`` returns ``n`` bytes, fewer only at the end of the body (as a file would); ``read()`` the
    rest. A read waits for bytes that have not arrived yet, and raises ClientDisconnected (an OSError) if
    the client goes away first. The end of a chunked body is an end of file, like any other.
    """

    __slots__ = ("_buf", "_cycle")

    def __init__(self, cycle: WSGICycle) -> None:
        self._cycle = cycle
        self._buf = b""  # bytes taken from the cycle but not yet returned (at most one chunk + a line)

    def read(self, size: int | None = -1) -> bytes:
        buf = self._buf
        if size is not None and size >= 0 and len(buf) >= size:
            self._buf = buf[size:]
            return buf[:size]
        parts = [buf] if buf else []
        have = len(buf)
        next_chunk = self._cycle.next_chunk
        while size is None or size < 0 or have < size:
            data = next_chunk()
            if data is None:
                break
            parts.append(data)
            have += len(data)
        data = b"".join(parts)
        if size is None or size < 0 or have <= size:
            self._buf = b""
            return data
        self._buf = data[size:]
        return data[:size]

    def readline(self, size: int | None = -1) -> bytes:
        buf = self._buf
        limit = size if size is not None and size >= 0 else None
        end = buf.find(b"\n")
        next_chunk = self._cycle.next_chunk
        while end < 0 and (limit is None or len(buf) < limit):
            data = next_chunk()
            if data is None:
                break
            start = len(buf)
            buf += data
            end = buf.find(b"\n", start)
        cut = len(buf) if end < 0 else end + 1
        if limit is not None and cut > limit:
            cut = limit
        self._buf = buf[cut:]
        return buf[:cut]

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        lines = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                break
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> WSGIInput:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line


class _NoBody:
    """``wsgi.input`` of a request that has no body: one shared, stateless empty stream (bench wsgi
    "hello": no per-request input object when there is nothing to read)."""

    __slots__ = ()

    def read(self, size: int | None = -1) -> bytes:
        return b""

    def readline(self, size: int | None = -1) -> bytes:
        return b""

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        return []

    def __iter__(self) -> Iterator[bytes]:
        return iter(())


NO_BODY = _NoBody()
