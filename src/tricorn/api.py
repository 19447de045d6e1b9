"""Serving from Python: :func:`run` (what the ``tricorn`` command does), :func:`serve` and :class:`Server`
(a server on an event loop that a program of its own runs: tests, notebooks, embedding).

Each takes the application as an object (an ASGI or WSGI callable), as ``"module:attribute"``, or not at
all (``app=...`` among the settings, else the demo), and the settings as keywords named after the fields
of :class:`tricorn.Config` (the command-line flags with ``_`` for ``-``): ``run(app, port=9000,
workers=2)``. The environment and ``pyproject.toml`` are not read: a program says what it wants (``config=
"tricorn.toml"`` reads that file first, and the keywords override it). An unknown keyword or a bad value
raises :class:`~tricorn.errors.ConfigError` naming it before anything starts.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
import socket
import threading
from typing import Any

from tricorn import serving
from tricorn.config import SETTINGS, BindAddress, Config
from tricorn.errors import ConfigError
from tricorn.importer import load_apps
from tricorn.io import tls
from tricorn.io.loop import http_backend, new_event_loop
from tricorn.logs import configure_logging
from tricorn.supervisor import master_settings
from tricorn.supervisor.worker import Embedded

__all__ = ["Server", "configure", "run", "serve"]

# Keywords that uvicorn.run() takes under another name here, for the suggestion in the error.
_THEIR_NAMES = {
    "limit_max_requests": "max_requests",
    "reload_dirs": "reload_dir",
    "reload_includes": "reload_include",
    "reload_excludes": "reload_exclude",
    "uds": "bind (as 'unix:PATH')",
    "fd": "bind (as 'fd://N')",
    "graceful_timeout": "timeout_graceful_shutdown",
    "keepalive": "timeout_keep_alive",
    "timeout": "timeout_worker",
}


def configure(app: Any, settings: dict[str, Any]) -> tuple[Config, Any]:
    """The :class:`Config` of ``app`` and ``settings``, and the application object if one was given.

    ``app`` is an object, a ``"module:attribute"`` string, a Config (the settings then override it) or
    None. Raises ConfigError for an unknown keyword (suggesting the setting meant), a bad value, or an
    application object with ``reload`` (a reload imports the code again, which an object cannot be).
    """
    for name in settings:
        if name not in SETTINGS:
            raise ConfigError(name, f"not a tricorn setting{_suggestion(name)}")
    values = dict(settings)
    obj = None
    if isinstance(app, str):
        values = {"app": app, **values}
    elif app is not None and not isinstance(app, Config):
        obj = app
    if "app" in settings and app is not None and not isinstance(app, Config):
        raise ConfigError("app", "is given twice, as the first argument and as a keyword")
    if isinstance(app, Config):
        base = app
    elif values.get("config") is not None:
        # The file's settings, then the keywords; neither the environment nor pyproject.toml.
        base = Config.load(["--config", str(values["config"])], env={})
    else:
        base = Config()
    config = base.replace(**values) if values else base
    if obj is not None and config.reload:
        raise ConfigError(
            "reload",
            "needs the application as 'module:attribute': a reload imports the code again, "
            f"which an application object cannot be (got {type(obj).__name__})",
        )
    return config, obj


def _suggestion(name: str) -> str:
    if name in _THEIR_NAMES:
        return f" (did you mean {_THEIR_NAMES[name]}?)"
    close = difflib.get_close_matches(name, SETTINGS, n=1)
    return f" (did you mean {close[0]!r}?)" if close else " (see tricorn.Config for the settings)"


def run(app: Any = None, /, **settings: Any) -> None:
    """Serve ``app`` in this process as the ``tricorn`` command would, until SIGINT or SIGTERM.

    This process answers the signals the command answers (docs/deployment.md). With ``workers`` above 1
    (or another setting that needs a master) it becomes the master and forks the workers; an application
    object is inherited by them through the fork, as with ``preload``, and a SIGHUP's new workers serve
    the same object (give ``"module:attribute"`` for a reload that imports new code). Returns after a
    stop. Raises ConfigError for a bad setting, before anything starts; SystemExit with the command's exit
    status (1: a socket, pid file or user; 2: a setting; 3: the application) when the server cannot
    start, its reason logged. Inside a running event loop, use :func:`serve`; in a thread other than the
    main one, :meth:`Server.run`.
    """
    config, obj = configure(app, settings)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError(
            "tricorn.run() runs an event loop of its own and cannot inside a running one (a notebook, "
            "an async test): use 'await tricorn.serve(app, ...)' there"
        )
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError(
            "tricorn.run() answers the process's signals, which only the main thread can: in another "
            "thread, use tricorn.Server(app, ...).run()"
        )
    code = serving.run(config, app=obj)
    if code:
        raise SystemExit(code)


async def serve(app: Any = None, /, **settings: Any) -> None:
    """Serve ``app`` on the running event loop until cancelled or stopped by SIGINT or SIGTERM (only
    when nothing else handles them). ``await Server(app, **settings).serve()``; see :class:`Server`."""
    await Server(app, **settings).serve()


class Server:
    """One server on the event loop of the program that runs it.

    ``Server(app, **settings)`` takes what :func:`run` takes, in one process: settings that need a
    master (``workers`` above 1, ``reload``, ``max_requests``, a ``timeout_worker`` of its own) raise
    ConfigError. :meth:`serve` runs it on the running loop; :meth:`run` on a new loop in this thread (a
    fixture's background thread). Once it accepts connections, :attr:`started` is true and
    :attr:`addresses` holds the bound addresses, port 0 resolved to the port the system chose.
    :meth:`shutdown`, from any thread, stops it gracefully (the requests in progress finish within
    ``timeout_graceful_shutdown``, then the lifespan shutdown runs), and :meth:`serve` returns. Cancelling
    the task that runs :meth:`serve` does the same, then lets the cancellation through. Logging: when the
    program has set up logging (handlers on the root logger: pytest, a notebook, its own setup), tricorn's
    loggers get their levels and no handlers, so their records go there; otherwise, or with
    ``log_config``, as from the command.
    A Server serves once.
    """

    def __init__(self, app: Any = None, /, **settings: Any) -> None:
        self.config, self._app = configure(app, settings)
        needed = master_settings(self.config)
        if needed:
            raise ConfigError(
                needed[0],
                "needs a master process with workers, which a Server on an event loop is not: "
                "use tricorn.run() or the tricorn command",
            )
        self.started = False
        self.addresses: tuple[BindAddress, ...] = ()
        self._begun = False
        self._stop_asked = False
        self._host: Embedded | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Set once it starts, and once serve() ends (an Event binds to a loop only when first awaited).
        self._changed = asyncio.Event()
        self._failure: BaseException | None = None

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` (``https`` with TLS) of the first TCP address; ValueError before
        :attr:`started` or without a TCP address."""
        for address in self.addresses:
            if address.kind == "tcp":
                url = str(address)  # http://HOST:PORT, an IPv6 host in brackets
                return "https" + url.removeprefix("http") if self.config.tls else url
        raise ValueError("no TCP address is being served" if self.started else "the server has not started")

    async def serve(self) -> None:
        """Serve until :meth:`shutdown`, a stop signal or cancellation. Raises what prevents the start:
        ConfigError, AppLoadError, LifespanFailure, BindError, ProcessError."""
        if self._begun:
            raise RuntimeError("this Server has served already: make a new one")
        self._begun = True
        self._loop = asyncio.get_running_loop()
        config = self.config
        try:
            # A program that has set up logging (pytest, a notebook, an app's own setup) gets tricorn's
            # records there; one that has not gets tricorn's own lines, as from the command.
            configure_logging(config, handlers=not logging.getLogger().handlers)
            tls.prepare(config)
            backend = http_backend(config.http)
            apps = load_apps(config, self._app)
            self._host = Embedded(config, self._on_serving)
            await serving.serve(config, apps, backend, self._host, reimport=False, freeze=False)
        except BaseException as exc:
            if not self.started:
                self._failure = exc
            raise
        finally:
            self._changed.set()

    def run(self) -> None:
        """:meth:`serve` on a new event loop (``loop`` setting) in this thread, until it stops."""
        loop = new_event_loop(self.config.loop)
        try:
            loop.run_until_complete(self.serve())
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    async def wait_started(self) -> None:
        """Return once :attr:`started`; raise what stopped :meth:`serve` from starting, if it did."""
        await self._changed.wait()
        if self.started:
            return
        if self._failure is not None:
            raise self._failure
        raise RuntimeError("the server stopped before it started")

    def shutdown(self) -> None:
        """Ask for a graceful stop; safe from any thread, before or while serving, and more than once."""
        self._stop_asked = True
        loop, host = self._loop, self._host
        if loop is None or host is None or host.stop is None:
            return  # serve() stops as soon as it accepts
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            host.stop.set()
        elif not loop.is_closed():
            loop.call_soon_threadsafe(host.stop.set)

    def _on_serving(self) -> None:
        host = self._host
        assert host is not None and host.stop is not None
        self.addresses = tuple(_bound_address(sock.family, sock.getsockname()) for sock in host.sockets)
        self.started = True
        self._changed.set()
        if self._stop_asked:
            host.stop.set()


def _bound_address(family: int, name: Any) -> BindAddress:
    if family == socket.AF_UNIX:
        return BindAddress("unix", path=name if isinstance(name, str) else name.decode())
    return BindAddress("tcp", host=name[0], port=name[1])
