"""Serving one application in this process: load, lifespan startup, serve until told to stop, shut down."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from typing import TYPE_CHECKING, Any

from tricorn.errors import AppLoadError, ConfigError, LifespanFailure
from tricorn.importer import load_app
from tricorn.interfaces.lifespan import Lifespan
from tricorn.io import tls
from tricorn.io.loop import http_backend, new_event_loop
from tricorn.io.server import ServerState
from tricorn.logs import configure_logging
from tricorn.supervisor import needs_master
from tricorn.supervisor.process import ProcessError
from tricorn.supervisor.sockets import BindError
from tricorn.supervisor.worker import Standalone

if TYPE_CHECKING:
    from tricorn.config import Config
    from tricorn.supervisor.worker import Worker

error_log = logging.getLogger("tricorn.error")

EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_APP = 3  # the app could not be loaded or failed to start: a respawn would fail the same way


def run(config: Config, worker: Worker | None = None) -> int:
    """Serve ``config.app`` until SIGINT or SIGTERM; return the process exit code.

    With more than one worker, ``--reload`` or ``--max-requests``, this process becomes the master
    (:mod:`tricorn.supervisor.arbiter`): it binds, forks the workers and supervises them; each worker
    comes back here with its ``worker`` host and serves the master's sockets.
    """
    if worker is None:
        # The TLS context is made before any fork (and before privileges are dropped); a bad certificate,
        # key or password stops the start with one line naming the setting.
        try:
            tls.prepare(config)
        except ConfigError as exc:
            configure_logging(config)
            error_log.error("%s", exc)
            return EXIT_CONFIG
    if worker is None and needs_master(config):
        from tricorn.supervisor.arbiter import Arbiter

        return Arbiter(config).run()
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
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(serve(config, app, loop, backend, interface, worker))
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


async def serve(
    config: Config,
    app: Any,
    loop: asyncio.AbstractEventLoop,
    backend: str,
    interface: str = "asgi",
    worker: Worker | None = None,
) -> int:
    # Lifespan is an ASGI protocol: a WSGI app has no startup or shutdown events.
    lifespan = Lifespan(app, config.lifespan if interface == "asgi" else "off", config.timeout_lifespan)
    try:
        await lifespan.startup()
    except LifespanFailure as exc:
        error_log.error("application startup failed: %s", exc)
        return EXIT_APP
    state = ServerState(config, app, loop, backend, interface)
    state.lifespan_state = lifespan.shared_state
    # What the app built at import and startup lives as long as the process: keep it out of the
    # cyclic collector's generations so collections only scan per-request garbage.
    gc.collect()
    gc.freeze()
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

    # The process around the server (tricorn.supervisor.worker): alone, it binds, writes the pid file and
    # drops privileges; as a pre-fork worker, it serves its master's sockets and reports to it.
    host = worker if worker is not None else Standalone(config)
    # Before the sockets listen: a client (or a supervisor's probe) may connect, and a signal follow,
    # from the moment listen() returns; the default SIGTERM action would kill us without a shutdown.
    host.add_signal_handlers(loop, on_signal, state, stop)
    try:
        sockets = host.listen()
    except (BindError, ProcessError) as exc:
        error_log.error("%s", exc)
        host.close()
        await lifespan.shutdown()
        return 1
    await state.start(sockets)
    host.serving(state, stop, backend, _loop_name(loop))
    try:
        await stop.wait()
        await state.shutdown(config.timeout_graceful_shutdown)
        await lifespan.shutdown()
    finally:
        host.close()
    error_log.info("stopped")
    return EXIT_OK


def _loop_name(loop: asyncio.AbstractEventLoop) -> str:
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
