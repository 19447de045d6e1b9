"""Serving one application in this process: load, lifespan startup, serve until told to stop, shut down."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import TYPE_CHECKING, Any

from tricorn.errors import AppLoadError, ConfigError, LifespanFailure
from tricorn.importer import load_apps
from tricorn.io import tls
from tricorn.io.loop import http_backend, new_event_loop
from tricorn.logs import configure_logging
from tricorn.supervisor import log_startup_notes, needs_master, restart
from tricorn.supervisor.hooks import with_request_hooks
from tricorn.supervisor.process import ProcessError, prepare_process
from tricorn.supervisor.sockets import BindError
from tricorn.supervisor.worker import Standalone

if TYPE_CHECKING:
    from tricorn.config import Config
    from tricorn.importer import Mounted
    from tricorn.io.server import ServerState
    from tricorn.supervisor.worker import Host, Worker

error_log = logging.getLogger("tricorn.error")

EXIT_OK = 0
EXIT_FAILURE = 1  # a socket, the pid file or the user could not be used
EXIT_CONFIG = 2
EXIT_APP = 3  # the app could not be loaded or failed to start: a respawn would fail the same way


def run(config: Config, worker: Worker | None = None, app: Any = None) -> int:
    """Serve the application until SIGINT or SIGTERM; return the process exit code.

    The application is ``app``, an object given from Python (:func:`tricorn.run`), else ``config.app``,
    imported. With more than one worker, or a setting only a master honours (``--reload``,
    ``--max-requests``, a ``--timeout-worker`` of its own: :func:`tricorn.supervisor.needs_master`), this
    process becomes the master (:mod:`tricorn.supervisor.arbiter`): it binds, forks the workers and
    supervises them; each worker comes back here with its ``worker`` host (and the same ``app`` object,
    inherited by the fork) and serves the master's sockets. Alone, this process answers SIGHUP with a
    restart in place (:mod:`tricorn.supervisor.restart`), when the application can be imported again.
    """
    if worker is None:
        # The environment, working directory and sys.path first (a master's workers inherit them); then
        # the TLS context, made before any fork (and before privileges are dropped): a bad certificate,
        # key or password stops the start with one line naming the setting.
        try:
            prepare_process(config)
            tls.prepare(config)
        except ConfigError as exc:
            configure_logging(config)
            error_log.error("%s", exc)
            return EXIT_CONFIG
    if worker is None and needs_master(config):
        from tricorn.supervisor.arbiter import Arbiter

        return Arbiter(config, app=app).run()
    try:
        configure_logging(config)
        log_startup_notes()
        backend = http_backend(config.http)
        loop = new_event_loop(config.loop)
    except ConfigError as exc:
        error_log.error("%s", exc)
        return EXIT_CONFIG
    try:
        apps = load_apps(config, app)
    except AppLoadError as exc:
        error_log.error("%s", exc, exc_info=exc.__cause__ is not None)
        return EXIT_APP
    for mounted in apps:
        where = "" if mounted.prefix == "/" else f" at {mounted.prefix}"
        error_log.info("serving %s (%s)%s", mounted.shown, mounted.interface.upper(), where)
    if worker is not None and worker.hooks:
        worker.hooks.run("post_worker_init", worker.hook_worker)
        for mounted in apps:
            if mounted.interface == "wsgi":
                mounted.app = with_request_hooks(mounted.app, worker.hooks, worker.hook_worker)
        if any(m.interface != "wsgi" for m in apps) and (
            "pre_request" in worker.hooks or "post_request" in worker.hooks
        ):
            error_log.warning("hooks pre_request and post_request run for WSGI applications only")
    host = worker if worker is not None else Standalone(config)
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(serve(config, apps, backend, host, reimport=app is None, freeze=True))
    except LifespanFailure as exc:
        error_log.error("application startup failed: %s", exc)
        return EXIT_APP
    except (BindError, ProcessError) as exc:
        error_log.error("%s", exc)
        return EXIT_FAILURE
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
    return EXIT_OK


async def serve(
    config: Config,
    apps: list[Mounted],
    backend: str,
    host: Host,
    *,
    reimport: bool,
    freeze: bool,
) -> None:
    """Serve ``apps`` (the APP and its mounts: :func:`tricorn.importer.load_apps`) on the running loop
    until ``host`` sets the stop event, or the task is cancelled.

    ``host`` (:mod:`tricorn.supervisor.worker`) owns the process: the sockets, the signals, the pid file.
    ``reimport``: SIGHUP may import the applications again (not when the APP was given as an object).
    ``freeze``: keep the objects made at startup away from the cyclic collector (a process of our own).
    A cancelled task stops like a graceful stop, then re-raises. Raises LifespanFailure when the
    application's startup fails, BindError or ProcessError when ``host`` cannot listen.
    """
    loop = asyncio.get_running_loop()
    serving = await restart.load(config, loop, backend, apps)
    if freeze:
        restart.freeze_startup_objects()
    stop = asyncio.Event()
    # SIGHUP in a single process (tricorn.supervisor.restart): the previous apps finish their requests.
    reload = asyncio.Event()
    retiring: dict[asyncio.Task[None], ServerState] = {}
    signals_seen: list[int] = []

    def abort_all() -> None:
        for state in (serving.state, *retiring.values()):
            for conn in list(state.connections):
                conn.abort()

    def on_signal(signum: int) -> None:
        name = signal.Signals(signum).name
        if signum == signal.SIGHUP:
            if stop.is_set():
                error_log.info("received SIGHUP while stopping: ignored")
            elif not reimport:
                error_log.warning(
                    "received SIGHUP: ignored, the application was given as an object and cannot be "
                    "imported again (give it as 'module:attribute' to restart in place)"
                )
            else:
                error_log.info("received SIGHUP, restarting in place: importing the application again")
                host.ready = False  # /readyz: a load balancer stops sending before the old app retires
                reload.set()
        elif signum == signal.SIGQUIT:
            error_log.warning("received SIGQUIT, stopping now")
            stop.set()
            abort_all()
        elif not signals_seen:
            signals_seen.append(signum)
            error_log.info("received %s, shutting down gracefully", name)
            stop.set()
        else:
            error_log.warning("received %s again, stopping now", name)
            abort_all()

    def retired(task: asyncio.Task[None]) -> None:
        del retiring[task]
        restart.refreeze()

    if host.metrics is not None:
        serving.state.attach_metrics(host.metrics)
    # Before the sockets listen: a client (or a supervisor's probe) may connect, and a signal follow,
    # from the moment listen() returns; the default SIGTERM action would kill us without a shutdown.
    host.add_signal_handlers(loop, on_signal, serving.state, stop)
    try:
        sockets = host.listen()
    except (BindError, ProcessError):
        host.close()
        await serving.lifespan.shutdown()
        raise
    try:
        await serving.state.start(sockets)
        host.serving(serving.state, stop, backend, _loop_name(loop))
        host.ready = True
        try:
            while not stop.is_set():
                await _first_of(stop, reload)
                if reload.is_set() and not stop.is_set():
                    reload.clear()
                    new = await restart.reimport(config, loop, backend)
                    if new is None:
                        host.ready = True  # the previous app serves on
                        continue
                    if host.metrics is not None:
                        new.state.attach_metrics(host.metrics)
                    await restart.hand_over(serving, new)
                    task = loop.create_task(restart.retire(serving, config.timeout_graceful_shutdown))
                    retiring[task] = serving.state
                    task.add_done_callback(retired)
                    serving = new
                    host.ready = True
                    error_log.info("restarted: serving the application imported again (pid %d)", os.getpid())
        except asyncio.CancelledError:
            # The task serving us was cancelled (an embedding program, asyncio.run's Ctrl-C): stop as
            # gracefully as a signal would, then let the cancellation go on.
            error_log.info("serving task cancelled, shutting down gracefully")
            await _shut_down(config, serving, retiring)
            raise
        await _shut_down(config, serving, retiring)
    finally:
        host.close()
    error_log.info("stopped")


async def _shut_down(
    config: Config, serving: restart.Serving, retiring: dict[asyncio.Task[None], ServerState]
) -> None:
    # Behind a proxy that keeps connections to us (nginx's upstream keepalive, a load balancer), an idle
    # one closed now races with the request the proxy may be writing on it, which the proxy cannot send
    # elsewhere if it is a POST. As a lame duck, the next request on each is answered, with Connection:
    # close, for LAME_DUCK_IDLE seconds (io/server.py); tests/e2e/test_hosts.py's rolling restart.
    serving.state.lame_duck = True
    await serving.state.shutdown(config.timeout_graceful_shutdown)
    await serving.lifespan.shutdown()
    if retiring:
        await asyncio.wait(list(retiring))


async def _first_of(*events: asyncio.Event) -> None:
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def _loop_name(loop: asyncio.AbstractEventLoop) -> str:
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
