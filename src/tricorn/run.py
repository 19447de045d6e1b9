"""Serving one application in this process: load, lifespan startup, serve until told to stop, shut down."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import TYPE_CHECKING, Any

from tricorn.errors import AppLoadError, ConfigError, LifespanFailure
from tricorn.importer import load_app
from tricorn.interfaces.lifespan import Lifespan
from tricorn.io.loop import http_backend, new_event_loop
from tricorn.io.server import ServerState
from tricorn.logs import configure_logging
from tricorn.supervisor.sockets import BindError, bind_sockets, describe

if TYPE_CHECKING:
    from tricorn.config import Config

error_log = logging.getLogger("tricorn.error")

EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_APP = 3  # the app could not be loaded or failed to start: a respawn would fail the same way


def run(config: Config) -> int:
    """Serve ``config.app`` until SIGINT or SIGTERM; return the process exit code."""
    try:
        configure_logging(config)
        backend = http_backend(config.http)
        loop = new_event_loop(config.loop)
    except ConfigError as exc:
        error_log.error("%s", exc)
        return EXIT_CONFIG
    try:
        app, interface = load_app(config.app, config.factory, config.app_dir, config.interface)
    except AppLoadError as exc:
        error_log.error("%s", exc, exc_info=exc.__cause__ is not None)
        return EXIT_APP
    if interface != "asgi":
        error_log.error(
            "%s is a WSGI application (a callable taking environ, start_response); "
            "WSGI is not available in this version: serve it with an ASGI adapter or --interface asgi",
            config.app,
        )
        return EXIT_APP
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(serve(config, app, loop, backend))
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


async def serve(config: Config, app: Any, loop: asyncio.AbstractEventLoop, backend: str) -> int:
    lifespan = Lifespan(app, config.lifespan)
    try:
        await lifespan.startup()
    except LifespanFailure as exc:
        error_log.error("application startup failed: %s", exc)
        return EXIT_APP
    state = ServerState(config, app, loop, backend)
    state.lifespan_state = lifespan.shared_state
    stop = asyncio.Event()
    signals_seen: list[int] = []

    def on_signal(signum: int) -> None:
        signals_seen.append(signum)
        if len(signals_seen) == 1:
            error_log.info("received %s, shutting down gracefully", signal.Signals(signum).name)
            stop.set()
        else:
            error_log.warning("received %s again, stopping now", signal.Signals(signum).name)
            for conn in list(state.connections):
                conn.abort()

    # Before the sockets listen: a client (or a supervisor's probe) may connect, and a signal follow,
    # from the moment listen() returns; the default SIGTERM action would kill us without a shutdown.
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        sockets = bind_sockets(config.binds, config.backlog)
    except BindError as exc:
        error_log.error("%s", exc)
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await lifespan.shutdown()
        return 1
    await state.start(sockets)
    for sock in sockets:
        error_log.info("listening on %s (pid %d, %s, %s)", describe(sock), os.getpid(), backend, _loop_name(loop))
    try:
        await stop.wait()
        await state.shutdown(config.timeout_graceful_shutdown)
        await lifespan.shutdown()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    error_log.info("stopped")
    return EXIT_OK


def _loop_name(loop: asyncio.AbstractEventLoop) -> str:
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
