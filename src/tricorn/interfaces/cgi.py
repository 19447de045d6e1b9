"""CGI/1.1 scripts (RFC 3875) served as an ASGI application: one subprocess per request.

A :class:`CGIMount` answers the requests under one URL prefix from the executable files of one directory.
It is an ASGI app run by the ordinary :class:`~tricorn.interfaces.asgi.HTTPCycle`, so it is served over
every protocol (HTTP/1.1, TLS, HTTP/2) with the stream layer's backpressure and deadlines. The protocol
decisions (meta-variables, the script's header block) are in :mod:`tricorn.proto.cgi`; this module runs the
process.

Theory of operation, for one request:

1. The path is walked under the directory, one decoded segment at a time, to the first regular file: the
   script; the rest is PATH_INFO (§4.1.5). Empty, dot and dotfile segments, NUL and backslashes are 404;
   a symlink that leaves the directory is 404; a file that is not executable is 403.
2. The body: with a Content-Length it is streamed to the script's stdin as it comes. Without one (a
   chunked HTTP/1.1 body, an HTTP/2 body) it is read first, up to ``BUFFERED_BODY_LIMIT``, so that
   CONTENT_LENGTH can be set (§4.1.2 requires it whenever there is a body); a longer one is 411.
3. The script is started with an environment made only of meta-variables (a minimal PATH, nothing of the
   server's), in its own session (``setsid``: no controlling terminal, its own process group), in its
   directory (§7.2), with every other descriptor closed. Past ``max_concurrent`` scripts, 503.
4. Its stdout is read as it comes: the header block by :class:`~tricorn.proto.cgi.OutputParser`, then
   the body sent on as written. Each read waits for the client to take the previous part (the stream's
   ``drain``), so a slow client stops the script on a full pipe; the body goes to stdin only as fast as
   the script reads it, and the stream stops reading the client meanwhile. Backpressure both ways.
5. Its stderr goes to the error log, one escaped line per line written.
6. The script's process group is killed (SIGKILL) when the client leaves, when ``timeout`` passes (504 if
   nothing was sent yet, else the response is cut), and when the server stops; every script is reaped,
   through a pidfd where the kernel has them (no SIGCHLD handler, no thread per child).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote_to_bytes

from tricorn.errors import ClientDisconnected, LocalProtocolError
from tricorn.interfaces.asgi import send_plain
from tricorn.logs import escape_for_log, peer_for_log
from tricorn.proto.cgi import (
    OutputParser,
    ResponseKind,
    ScriptOutputError,
    ScriptResponse,
    meta_variables,
)

__all__ = ["BUFFERED_BODY_LIMIT", "CGIMount", "CGIScripts", "redirect_client"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

error_log = logging.getLogger("tricorn.error")

# A body without a Content-Length is read whole before the script starts, so CONTENT_LENGTH can be set;
# past this it is refused with 411. nginx keeps 16 KiB of a body in memory (client_body_buffer_size) and
# spools the rest to disk; lighttpd spools to disk too. 1 MiB covers forms and small uploads without a
# temporary file; an upload larger than that comes with a Content-Length from every real client.
BUFFERED_BODY_LIMIT = 1024 * 1024
# How many local redirects (§6.2.2) one request may follow: Apache's LimitInternalRecursion is 10.
MAX_LOCAL_REDIRECTS = 10
# The Retry-After of the 503 past --cgi-max-concurrent: scripts usually finish within a second.
RETRY_AFTER = b"1"
# A stderr line longer than this is logged in pieces (the log stays one bounded line per entry).
MAX_STDERR_LINE = 4096
READ_SIZE = 65536
# A script still running after this long has its stderr read as it comes and its client watched for a
# disconnect; a shorter one is spared the cost (its stderr waits in the pipe, read when it ends).
WATCH_DELAY = 0.05

_REDIRECTS_KEY = "tricorn.cgi.redirects"


class CGIScripts:
    """What the CGI mounts of one worker share: the limit on running scripts and the scripts themselves.

    ``close()`` kills every script still running with its process group and reaps it; a server calls it
    when it stops.
    """

    def __init__(self, timeout: float, max_concurrent: int, server_software: bytes = b"tricorn") -> None:
        self.timeout = timeout
        self.max_concurrent = max_concurrent
        self.server_software = server_software
        self.running: dict[int, _Script] = {}
        self._devnull = -1

    def devnull(self) -> int:
        """A descriptor of /dev/null, the stdin of a script of a request without a body (opened once)."""
        if self._devnull < 0:
            self._devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        return self._devnull

    def close(self) -> None:
        for script in list(self.running.values()):
            script.close()
        if self._devnull >= 0:
            os.close(self._devnull)
            self._devnull = -1


class CGIMount:
    """The ASGI app of one ``--cgi PREFIX=DIR``: the scripts of ``directory`` under the URL ``prefix``.

    ``dispatch`` finds the app for a local redirect's new path (§6.2.2): the server's own request table;
    without it, a local redirect is served by this mount alone.
    """

    def __init__(
        self,
        prefix: str,
        directory: str,
        scripts: CGIScripts,
        dispatch: Callable[[Scope], ASGIApp] | None = None,
    ) -> None:
        self.prefix = prefix.rstrip("/").encode("latin-1")
        self.directory = os.path.realpath(directory)
        self.scripts = scripts
        self.dispatch = dispatch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        found = self._resolve(scope["raw_path"], scope.get("root_path", ""))
        if len(found) == 2:
            status, reason = found
            shown = escape_for_log(scope["raw_path"].decode("latin-1"))
            error_log.info("%s %d cgi: %s %s", peer_for_log(scope.get("client")), status, shown, reason)
            await send_plain(send, status, "not found" if status == 404 else "forbidden")
            return
        path, script_name, path_info = found
        scripts = self.scripts
        if len(scripts.running) >= scripts.max_concurrent:
            error_log.warning(
                "cgi: %d scripts running (--cgi-max-concurrent): %s answered 503",
                len(scripts.running),
                escape_for_log(script_name.decode("latin-1")),
            )
            await send_plain(send, 503, "too many cgi scripts running", ((b"retry-after", RETRY_AFTER),))
            return
        length, body = await self._body_plan(scope, receive)
        if length is None:
            error_log.info(
                "%s 411 cgi: a body without content-length longer than %d bytes",
                peer_for_log(scope.get("client")),
                BUFFERED_BODY_LIMIT,
            )
            await send_plain(send, 411, "a body this long needs a content-length")
            return
        env = meta_variables(
            method=scope["method"],
            http_version=scope["http_version"],
            scheme=scope["scheme"],
            headers=scope["headers"],
            query=scope["query_string"],
            script_name=script_name,
            path_info=path_info,
            path_translated=os.fsencode(self.directory) + path_info if path_info else None,
            server=scope.get("server"),
            client=scope.get("client"),
            content_length=length if length > 0 or (length == 0 and body is None) else None,
            server_software=scripts.server_software,
        )
        script = _Script(path, script_name.decode("latin-1"), scripts)
        try:
            script.start(env, streamed=body is None and length > 0, body=body)
        except OSError as exc:
            error_log.error(
                "cgi script %s cannot be started: %s", escape_for_log(script.name), exc.strerror or exc
            )
            await send_plain(send, 502, "the cgi script could not be started")
            return
        try:
            response = await script.respond(scope, receive, send, length if body is None else 0)
        except BaseException:
            script.kill()  # the client left while a part was on its way (or the response was cut)
            raise
        finally:
            script.finish()
        if response is not None:  # a local redirect: the server serves the new path itself
            await script.exited()  # (its slot is free before the next script starts)
            await self._redirect(scope, response.location, receive, send)

    # -- the script and its path
    def _resolve(self, raw_path: bytes, root_path: str) -> tuple[str, bytes, bytes] | tuple[int, str]:
        """``(file, SCRIPT_NAME, PATH_INFO)``, or ``(status, reason)`` when there is no script to run.
        SCRIPT_NAME begins with ``root_path`` (``--root-path``: where a proxy mounts this server)."""
        prefix = self.prefix
        if not raw_path.startswith(prefix) or raw_path[len(prefix) : len(prefix) + 1] not in (b"/", b""):
            return 404, "is not under this cgi prefix"
        segments = raw_path[len(prefix) :].split(b"/")[1:]
        current = self.directory
        names: list[bytes] = []
        for index, raw in enumerate(segments):
            name = unquote_to_bytes(raw) if b"%" in raw else raw
            if not raw and index == len(segments) - 1:
                break  # a trailing slash: the directory itself
            if not name or name[:1] == b"." or b"/" in name or b"\\" in name or b"\0" in name:
                return 404, "no such script"
            names.append(name)
            current = current + os.sep + os.fsdecode(name)
            try:
                info = os.lstat(current)
                if stat.S_ISLNK(info.st_mode):
                    # A symlink is followed only while it stays inside the directory.
                    real = os.path.realpath(current)
                    if not real.startswith(self.directory + os.sep):
                        return 404, "leads outside the cgi directory"
                    info = os.stat(real)
            except FileNotFoundError:
                return 404, "no such script"
            except NotADirectoryError:
                return 404, "no such script"
            except OSError:
                return 403, "cannot be read"
            if stat.S_ISDIR(info.st_mode):
                continue
            if not stat.S_ISREG(info.st_mode):
                return 403, "is not a regular file"
            if not os.access(current, os.X_OK):
                return 403, "is not executable"
            rest = b"/".join(segments[index + 1 :])
            path_info = b""
            if index + 1 < len(segments):
                path_info = b"/" + (unquote_to_bytes(rest) if b"%" in rest else rest)
            script_name = b"/".join((prefix, *names))
            if root_path:
                script_name = root_path.encode("utf-8", "surrogateescape") + script_name
            return current, script_name, path_info
        return 403, "is a directory"

    async def _body_plan(self, scope: Scope, receive: Receive) -> tuple[int | None, bytes | None]:
        """``(length, None)`` for a body streamed as it comes, ``(-1, None)`` for none at all, ``(length,
        body)`` for one read here (no Content-Length), ``(None, None)`` when that body is over the limit."""
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                return int(value), None  # (checked by the protocol layer)
            if name == b"transfer-encoding":
                chunked = True
        if not chunked and scope["http_version"] in ("1.0", "1.1"):
            return -1, None  # RFC 9112 §6.3: no Content-Length and no Transfer-Encoding: no body
        parts = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise ClientDisconnected("client disconnected")
            part = message.get("body", b"")
            size += len(part)
            if size > BUFFERED_BODY_LIMIT:
                return None, None
            parts.append(part)
            if not message.get("more_body", False):
                return size, b"".join(parts)

    async def _redirect(self, scope: Scope, location: bytes, receive: Receive, send: Send) -> None:
        """§6.2.2: serve ``location`` as if the client had asked for it, a GET without a body."""
        count = scope.get(_REDIRECTS_KEY, 0) + 1
        if count > MAX_LOCAL_REDIRECTS:
            error_log.error(
                "cgi: more than %d local redirects, the last to %s: 502",
                MAX_LOCAL_REDIRECTS,
                escape_for_log(location.decode("latin-1")),
            )
            await send_plain(send, 502, "too many local redirects")
            return
        path, _, query = location.partition(b"?")
        new = dict(scope)
        new["root_path"] = ""
        new[_REDIRECTS_KEY] = count
        new["method"] = "GET"
        new["raw_path"] = path
        new["path"] = unquote_to_bytes(path).decode("utf-8", "replace")
        new["query_string"] = query
        new["headers"] = [
            (name, value)
            for name, value in scope["headers"]
            if name not in (b"content-length", b"content-type", b"transfer-encoding")
        ]
        app = self.dispatch(new) if self.dispatch is not None else self
        await app(new, _bodyless(receive), send)


class _Script:
    """One running script: its descriptors, its process and how it ends.

    What a short script costs is kept small (bench "cgi"): its stderr is read, and the client watched
    for a disconnect, only once it has run for ``WATCH_DELAY`` (before that, stderr waits in its pipe and
    is read when the script's output ends); its exit is waited for with a pidfd only if it has not
    exited already when its output ends; a response whose end is already in the pipe goes out in one
    send, with its length known.
    """

    __slots__ = (
        "body",
        "err",
        "err_line",
        "err_watched",
        "exit_waiter",
        "killed",
        "loop",
        "name",
        "out",
        "path",
        "pid",
        "pidfd",
        "receive",
        "scripts",
        "stdin",
        "timed_out",
        "timer",
        "waiter",
        "watcher",
    )

    def __init__(self, path: str, name: str, scripts: CGIScripts) -> None:
        self.path = path
        self.name = name
        self.scripts = scripts
        self.loop = asyncio.get_running_loop()
        self.pid = 0
        self.pidfd = -1
        self.out = self.err = self.stdin = -1
        self.err_line = b""
        self.err_watched = False
        self.killed = False
        self.timed_out = False
        self.timer: asyncio.TimerHandle | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.watcher: asyncio.Task[None] | None = None
        self.receive: Receive | None = None
        self.body: bytes | None = None
        self.exit_waiter: asyncio.Future[None] | None = None

    def start(self, env: dict[bytes, bytes], streamed: bool, body: bytes | None) -> None:
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        child: list[int] = [out_w, err_w]
        if streamed or body:
            in_r, in_w = os.pipe2(os.O_CLOEXEC)
            child.append(in_r)
            self.stdin = in_w
            os.set_blocking(in_w, False)
            stdin = in_r
        else:
            stdin = self.scripts.devnull()
        self.body = body
        self.out, self.err = out_r, err_r
        try:
            self.pid = spawn(self.path, env, stdin, out_w, err_w)
        except BaseException:
            self.pid = 0
            self._close_fds()
            raise
        finally:
            for fd in child:
                os.close(fd)
        self.scripts.running[self.pid] = self
        os.set_blocking(out_r, False)
        os.set_blocking(err_r, False)
        # One timer: WATCH_DELAY, then the rest of the timeout.
        timeout = self.scripts.timeout
        if timeout > WATCH_DELAY:
            self.timer = self.loop.call_later(WATCH_DELAY, self._watch)
        else:
            self.timer = self.loop.call_later(timeout, self._on_timeout)

    def _watch(self) -> None:
        """The script runs on: read its stderr as it comes, notice the client leaving (while the exchange
        lasts), and kill it when its timeout has passed."""
        self.timer = self.loop.call_later(self.scripts.timeout - WATCH_DELAY, self._on_timeout)
        self._watch_stderr()
        if self.watcher is None and self.receive is not None:
            self.watcher = asyncio.ensure_future(self._feed(self.receive, 0))

    # -- the exchange
    async def respond(self, scope: Scope, receive: Receive, send: Send, length: int) -> ScriptResponse | None:
        """Run the exchange; return the script's answer when it is a local redirect, else None."""
        if length > 0 or self.body:
            self.watcher = asyncio.ensure_future(self._feed(receive, length))
        else:
            self.receive = receive  # (watched from WATCH_DELAY on)
        path = self.path
        parser = OutputParser(path.startswith("nph-", path.rfind("/") + 1))
        started = False
        out = self.out
        while True:
            data = self._read(out)
            if data is None:
                await self._readable(out)
                if self.killed:
                    break
                continue
            eof = not data
            if data:
                # A script that wrote its whole answer has often exited already: its end is in the pipe.
                more = self._read(out)
                if more is not None:
                    eof = not more
                    data += more
            if not started:
                try:
                    response = parser.feed(data) if data else None
                except ScriptOutputError as exc:
                    self.kill()
                    self._log_error(f"malformed output: {exc}")
                    await send_plain(send, 502, "the cgi script's answer was malformed")
                    return None
                if response is None:
                    if eof:
                        break
                    continue
                if response.kind is ResponseKind.LOCAL_REDIRECT:
                    return response
                await send(
                    {"type": "http.response.start", "status": response.status, "headers": response.headers}
                )
                started = True
                data = parser.body
                if not data and not eof:
                    continue
            try:
                await send({"type": "http.response.body", "body": data, "more_body": not eof})
            except LocalProtocolError as exc:  # more than its own content-length
                self._log_error(str(exc))
                raise ClientDisconnected("cgi response cut") from None  # (HTTPCycle: ABORTED)
            if eof:
                return None
        if self.killed:
            if self.timed_out:
                self._log_error(f"killed after --cgi-timeout {self.scripts.timeout:g}s")
                if not started:
                    await send_plain(send, 504, "the cgi script did not answer in time")
                    return None
                raise ClientDisconnected("cgi script timed out")  # cuts the response (HTTPCycle: ABORTED)
            return None  # the client left
        try:
            parser.eof()  # (raises: the output ended before its header block did)
        except ScriptOutputError as exc:
            self._log_error(f"{exc}{self._exit_note()}")
            await send_plain(send, 502, "the cgi script did not answer")
        return None

    async def _feed(self, receive: Receive, length: int) -> None:
        """The request body to stdin (backpressure: one part at a time, each written before the next is
        asked for), then watch for the client leaving: the script is killed if it does."""
        stdin = self.stdin
        try:
            if self.body:
                await self._write(stdin, self.body)
            while length > 0:
                message = await receive()
                if message["type"] != "http.request":
                    self.kill()
                    return
                part = message.get("body", b"")
                length -= len(part)
                if part and self.stdin >= 0:
                    await self._write(self.stdin, part)
                if not message.get("more_body", False):
                    break
            self._close_stdin()
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    self.kill()
                    return
        except asyncio.CancelledError:
            pass

    async def _write(self, fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view and self.stdin >= 0:
            try:
                written = os.write(fd, view)
            except BlockingIOError:
                await self._writable(fd)
                continue
            except OSError:  # the script closed its stdin (or ended): the rest of the body is dropped
                self._close_stdin()
                return
            view = view[written:]

    def _close_stdin(self) -> None:
        if self.stdin >= 0:
            self.loop.remove_writer(self.stdin)
            os.close(self.stdin)
            self.stdin = -1

    def _read(self, fd: int) -> bytes | None:
        try:
            return os.read(fd, READ_SIZE)
        except BlockingIOError:
            return None

    async def _readable(self, fd: int) -> None:
        waiter = self.waiter = self.loop.create_future()
        self.loop.add_reader(fd, _wake, waiter)
        try:
            await waiter
        finally:
            self.waiter = None
            self.loop.remove_reader(fd)

    async def _writable(self, fd: int) -> None:
        waiter = self.loop.create_future()
        self.loop.add_writer(fd, _wake, waiter)
        try:
            await waiter
        finally:
            if self.stdin >= 0:
                self.loop.remove_writer(fd)

    # -- the end of the script
    def _on_timeout(self) -> None:
        self.timer = None
        self.timed_out = True
        self.kill()

    def kill(self) -> None:
        """Kill the script's process group (it leads its own session), and stop waiting for its output."""
        if not self.killed and self.pid:
            self.killed = True
            with contextlib.suppress(OSError):  # (already gone, group and all)
                os.killpg(self.pid, signal.SIGKILL)
            waiter = self.waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def finish(self) -> None:
        """The exchange is over (answered, redirected, cut or failed): stop everything but the reaping,
        and reap the script now if it has exited, else when it does."""
        self.receive = None  # (a script still running is watched for its timeout and stderr only)
        watcher = self.watcher
        if watcher is not None and not watcher.done():
            watcher.cancel()
        if self.timer is not None and self.killed:
            self.timer.cancel()
            self.timer = None
        self._close_fds()
        if not self.pid:
            return
        self._drain_stderr()
        self.reap()
        if self.pid in self.scripts.running:
            self._watch_stderr()
            try:
                self.pidfd = os.pidfd_open(self.pid)
            except (AttributeError, OSError):  # before Linux 5.3: polled (see _poll_reap)
                self.loop.call_later(0.05, self._poll_reap)
            else:
                self.loop.add_reader(self.pidfd, self.reap)

    async def exited(self) -> None:
        """Wait until the script has been reaped (its timeout still runs)."""
        if self.pid in self.scripts.running:
            self.exit_waiter = self.loop.create_future()
            await self.exit_waiter

    def _poll_reap(self) -> None:
        self.reap()
        if self.pid in self.scripts.running:
            self.loop.call_later(0.2, self._poll_reap)

    def reap(self, block: bool = False) -> None:
        try:
            pid, status = os.waitpid(self.pid, 0 if block else os.WNOHANG)
        except ChildProcessError:  # (reaped elsewhere: SIGCHLD ignored by an embedding process)
            pid, status = self.pid, 0
        if pid == 0:
            return
        self.scripts.running.pop(self.pid, None)
        if self.exit_waiter is not None:
            _wake(self.exit_waiter)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.pidfd >= 0:
            self.loop.remove_reader(self.pidfd)
            os.close(self.pidfd)
            self.pidfd = -1
        self._drain_stderr()  # what it wrote last, before the exit
        code = os.waitstatus_to_exitcode(status)
        if code != 0 and not self.killed:
            self._log_error(f"exited with status {code}" if code > 0 else f"killed by signal {-code}")

    def _exit_note(self) -> str:
        self.reap()
        return "" if self.pid in self.scripts.running else " (the script has exited)"

    def close(self) -> None:
        """The server stops: kill the script, reap it, drop its descriptors."""
        self.kill()
        self.reap(block=True)
        if self.err >= 0:
            if self.err_watched:
                self.loop.remove_reader(self.err)
            os.close(self.err)
            self.err = -1

    def _close_fds(self) -> None:
        self._close_stdin()
        if self.out >= 0:
            os.close(self.out)
            self.out = -1
        if self.err >= 0 and not self.pid:
            os.close(self.err)
            self.err = -1

    # -- stderr: to the error log, one line each
    def _watch_stderr(self) -> None:
        if self.err >= 0 and not self.err_watched:
            self.err_watched = True
            self.loop.add_reader(self.err, self._on_stderr)

    def _drain_stderr(self) -> None:
        for _ in range(16):  # (at most 1 MiB here: a script still writing is read as it comes)
            if not self._on_stderr():
                return

    def _on_stderr(self) -> bool:
        """Read what the script wrote on stderr; False once nothing more is there for now."""
        err = self.err
        if err < 0:
            return False
        try:
            data = os.read(err, READ_SIZE)
        except BlockingIOError:
            return False
        except OSError:
            data = b""
        if not data:
            if self.err_watched:
                self.loop.remove_reader(err)
            os.close(err)
            self.err = -1
            if self.err_line:
                self._log_stderr(self.err_line)
                self.err_line = b""
            return False
        lines = (self.err_line + data).split(b"\n")
        self.err_line = lines.pop()
        for line in lines:
            self._log_stderr(line)
        while len(self.err_line) > MAX_STDERR_LINE:
            self._log_stderr(self.err_line[:MAX_STDERR_LINE])
            self.err_line = self.err_line[MAX_STDERR_LINE:]
        return True

    def _log_stderr(self, line: bytes) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        for start in range(0, max(len(line), 1), MAX_STDERR_LINE):
            text = line[start : start + MAX_STDERR_LINE].decode("utf-8", "backslashreplace")
            error_log.warning("cgi script %s: stderr: %s", escape_for_log(self.name), escape_for_log(text))

    def _log_error(self, message: str) -> None:
        error_log.error("cgi script %s: %s", escape_for_log(self.name), escape_for_log(message))


# -- Starting a script: subprocess's vfork path (a working directory, §7.2; every other descriptor closed
# with close_range; the signals Python ignores restored; a new session). os.posix_spawn costs less but
# cannot change directory. On the CPython versions whose signature is known here, _posixsubprocess is
# called directly: Popen's own Python code around it was a third of a script's cost in the server
# (bench "cgi", measured with cProfile).


def spawn(path: str, env: dict[bytes, bytes], stdin: int, stdout: int, stderr: int) -> int:
    """Start ``path`` with exactly ``env``, in its directory and a session of its own; return its pid.
    Raises OSError when it cannot be started (not executable, no interpreter...)."""
    if _fork_exec is not None:
        errpipe_read, errpipe_write = os.pipe2(os.O_CLOEXEC)
        if errpipe_write > 2:  # (0-2 are the child's: a server started with one of them closed)
            return _fast_spawn(path, env, stdin, stdout, stderr, errpipe_read, errpipe_write)
        os.close(errpipe_read)
        os.close(errpipe_write)
    process = subprocess.Popen(
        [path],
        executable=path,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        env=env,
        cwd=os.path.dirname(path),
        start_new_session=True,
    )
    process.returncode = 0  # reaped by the caller, not by subprocess (whose __del__ would warn, or reap it)
    return process.pid


def _fast_spawn(
    path: str,
    env: dict[bytes, bytes],
    stdin: int,
    stdout: int,
    stderr: int,
    errpipe_read: int,
    errpipe_write: int,
) -> int:
    executable = os.fsencode(path)
    try:
        assert _fork_exec is not None
        pid: int = _fork_exec(
            [executable],
            (executable,),
            True,  # close_fds
            (errpipe_write,),  # fds kept open until exec (CLOEXEC then closes it: success)
            os.path.dirname(path),
            [name + b"=" + value for name, value in env.items()],
            stdin,
            -1,
            -1,
            stdout,
            -1,
            stderr,
            errpipe_read,
            errpipe_write,
            True,  # restore_signals
            True,  # start_new_session
            -1,  # process_group
            None,  # gid
            None,  # extra groups
            None,  # uid
            -1,  # umask
            None,  # preexec_fn
            True,  # allow_vfork
        )
    except BaseException:
        os.close(errpipe_read)
        raise
    finally:
        os.close(errpipe_write)
    try:
        failure = os.read(errpipe_read, 50000)  # empty once the exec succeeded
    finally:
        os.close(errpipe_read)
    if failure:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        # The child writes "OSError:<hex errno>:<noexec when the chdir failed>" (Modules/_posixsubprocess.c).
        try:
            number = int(failure.split(b":", 2)[1], 16)
        except (IndexError, ValueError):
            number = 0
        raise OSError(number, os.strerror(number) if number else failure.decode("ascii", "replace"))
    return pid


_fork_exec: Callable[..., int] | None = None
if sys.version_info[:2] == (3, 11):  # the signature of 3.11's _posixsubprocess.fork_exec, as above
    try:
        from _posixsubprocess import fork_exec as _fork_exec
    except ImportError:  # pragma: no cover
        _fork_exec = None


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


async def redirect_client(scope: Scope, receive: Receive, send: Send) -> None:
    """A local redirect the server cannot follow itself, as a 302 to the same path and query."""
    location = scope["raw_path"] + (b"?" + scope["query_string"] if scope["query_string"] else b"")
    await send_plain(send, 302, "found", ((b"location", location),))


def _bodyless(receive: Receive) -> Receive:
    """The receive of a redirected request: an empty body, then the client's own disconnect."""
    given = False

    async def bodyless() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": b"", "more_body": False}
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return message

    return bodyless
