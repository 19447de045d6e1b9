"""A plain WSGI (PEP 3333) application for the end-to-end tests: no framework, one route per behaviour.

What the app observes that a client cannot see (an iterable's close(), a read that failed, the progress of
a big response, os.sendfile calls) is kept in module-level structures and served by ``/events``.
``validated`` is the same app wrapped in ``wsgiref.validate.validator``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs
from wsgiref.validate import validator

Environ = dict[str, Any]
StartResponse = Callable[..., Callable[[bytes], None]]

EVENTS: list[str] = []
BIG: dict[str, Any] = {"sent": 0, "done": False}
BARRIERS: dict[str, threading.Barrier] = {}
_BARRIERS_LOCK = threading.Lock()
SENDFILE_CALLS = [0]

# Count os.sendfile calls made in this process (the server's), to show that file_wrapper uses it.
_real_sendfile = os.sendfile


def _counting_sendfile(*args: Any) -> int:
    SENDFILE_CALLS[0] += 1
    return _real_sendfile(*args)


os.sendfile = _counting_sendfile


def query(environ: Environ) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(environ["QUERY_STRING"]).items()}


def respond(
    start_response: StartResponse,
    body: bytes,
    status: str = "200 OK",
    content_type: str = "text/plain; charset=utf-8",
    headers: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    start_response(
        status, [("Content-Type", content_type), ("Content-Length", str(len(body))), *(headers or [])]
    )
    return [body]


def as_json(start_response: StartResponse, data: object) -> list[bytes]:
    return respond(start_response, json.dumps(data).encode(), content_type="application/json")


class Tracked:
    """An iterable whose close() is recorded in EVENTS."""

    def __init__(self, name: str, chunks: Iterable[bytes]) -> None:
        self.name = name
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.chunks)

    def close(self) -> None:
        EVENTS.append(f"closed {self.name}")


def forever(name: str) -> Iterator[bytes]:
    """Yield a line every 10 ms until the server stops iterating (the client went away)."""
    stop = threading.Event()
    i = 0
    try:
        while True:
            yield b"tick %d\n" % i
            i += 1
            stop.wait(0.01)  # pacing the stream, not synchronisation
    finally:
        EVENTS.append(f"generator ended {name}")


def big(size: int) -> Iterator[bytes]:
    chunk = b"x" * 65536
    BIG.update(sent=0, done=False)
    while BIG["sent"] < size:
        yield chunk
        BIG["sent"] += len(chunk)
    BIG["done"] = True


def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    q = query(environ)
    if path.startswith("/echo"):
        body = environ["wsgi.input"].read()
        info = {
            key: value
            for key, value in environ.items()
            if isinstance(value, (str, bool, int, tuple)) and key != "wsgi.input"
        }
        info["body"] = body.decode("latin-1")
        info["keys"] = sorted(environ)
        info["types"] = {
            "wsgi.input": hasattr(environ["wsgi.input"], "read"),
            "wsgi.errors": hasattr(environ["wsgi.errors"], "write"),
            "wsgi.file_wrapper": callable(environ["wsgi.file_wrapper"]),
        }
        return as_json(start_response, info)
    if path == "/read":
        stream = environ["wsgi.input"]
        mode = q.get("mode", "read")
        size = int(q.get("n", "7"))
        pieces: list[bytes] = []
        if mode == "read":
            pieces = [stream.read()]
        elif mode == "read_n":
            while piece := stream.read(size):
                pieces.append(piece)
        elif mode == "readline":
            while line := stream.readline():
                pieces.append(line)
        elif mode == "readline_n":
            while line := stream.readline(size):
                pieces.append(line)
        elif mode == "readlines":
            pieces = stream.readlines()
        elif mode == "iter":
            pieces = list(stream)
        data = b"".join(pieces)
        return as_json(
            start_response,
            {
                "mode": mode,
                "lengths": [len(p) for p in pieces],
                "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "content_length": environ.get("CONTENT_LENGTH"),
                "eof": stream.read(10).decode("latin-1"),
            },
        )
    if path == "/read-disconnect":
        EVENTS.append("reading")
        try:
            environ["wsgi.input"].read()
        except OSError as exc:
            EVENTS.append(f"read failed: {type(exc).__name__}")
            raise
        EVENTS.append("read completed")
        return respond(start_response, b"read it all")
    if path == "/write-big":
        # Writes with write() (a legacy app): a client that does not read makes write() block, then fail.
        write = start_response("200 OK", [("Content-Type", "application/octet-stream")])
        chunk = b"x" * 65536
        try:
            for _ in range(int(q["size"]) // len(chunk)):
                write(chunk)
        except OSError as exc:
            EVENTS.append(f"write failed: {type(exc).__name__}")
            raise
        return []
    if path == "/events":
        return as_json(start_response, {"events": EVENTS, "big": BIG, "sendfile_calls": SENDFILE_CALLS[0]})
    if path == "/barrier":
        # Every request of a group waits for the others: it completes only if `n` requests run at once.
        with _BARRIERS_LOCK:
            barrier = BARRIERS.setdefault(q["group"], threading.Barrier(int(q["n"])))
        barrier.wait(timeout=10)
        return respond(start_response, b"all together")
    if path == "/sleep":
        EVENTS.append("sleep started")
        threading.Event().wait(float(q.get("seconds", "0.2")))  # a blocking app, by design
        return respond(start_response, b"slept")
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Tracked("/stream", (b"chunk %d\n" % i for i in range(int(q.get("n", "3")))))
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        write(b"")
        return [b"and returned"]
    if path == "/empty-generator":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return iter(())
    if path == "/late-start":
        # start_response may be called during the first iteration (PEP 3333).
        def late() -> Iterator[bytes]:
            start_response("201 Created", [("Content-Type", "text/plain")])
            yield b""
            yield b"late"

        return late()
    if path == "/error":
        raise RuntimeError("boom before start_response")
    if path == "/error-client-text":
        # Errors often carry what the client sent: a header value, and the decoded ?text= (CR, LF, ESC...).
        try:
            raise KeyError(environ.get("HTTP_X_CLIENT_TEXT", ""))
        except KeyError as exc:
            raise ValueError(f"cannot handle {q.get('text', '')}") from exc
    if path == "/error-after-start":

        def broken() -> Iterator[bytes]:
            yield b"first part\n"
            raise RuntimeError("boom after the response started")

        start_response("200 OK", [("Content-Type", "text/plain")])
        return Tracked("/error-after-start", broken())
    if path == "/exc-info-replace":
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("handled")
        except ValueError:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"replaced"]
    if path == "/exc-info-reraise":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"already sent\n")
        try:
            raise ValueError("too late to replace")
        except ValueError:
            start_response("500 Internal Server Error", [], sys.exc_info())
        return [b"never"]
    if path == "/twice":
        start_response("200 OK", [])
        start_response("200 OK", [])
        return [b"never"]
    if path == "/no-start":
        return [b"no start_response"]
    if path == "/bad-header":
        return respond(start_response, b"x", headers=[("X-Bad", "a\r\nInjected: yes")])
    if path == "/bad-status":
        start_response("OK", [])
        return [b"x"]
    if path == "/str-body":
        start_response("200 OK", [])
        return ["not bytes"]
    if path == "/status":
        code = q.get("code", "204")
        start_response(f"{code} Whatever", [("Content-Type", "text/plain")])
        return [b"a body the server must drop"]
    if path == "/head-test":
        return respond(start_response, b"body for HEAD", headers=[("X-Method", environ["REQUEST_METHOD"])])
    if path == "/declared-length":  # a list body and a Content-Length that need not match it
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", q["n"])])
        return [b"hello, world"]
    if path == "/close-tracked":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
        return Tracked("/close-tracked", [b"hello"])
    if path == "/forever":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Tracked("/forever", forever("/forever"))
    if path == "/big":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return big(int(q["size"]))
    if path == "/file":
        file_path = q["path"]
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        handle = open(file_path, "rb")  # noqa: SIM115 - closed by the server through the file wrapper
        if "offset" in q:
            handle.seek(int(q["offset"]))
        return environ["wsgi.file_wrapper"](handle, 8192)
    if path == "/file-like":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](io.BytesIO(b"from a BytesIO " * 1000), 4096)
    if path == "/errors":
        errors = environ["wsgi.errors"]
        errors.write("app says: something went wrong\n")
        errors.write("partial ")
        errors.write("line\n")
        errors.flush()
        return respond(start_response, b"logged")
    return respond(start_response, b"hello, world")


validated = validator(app)
