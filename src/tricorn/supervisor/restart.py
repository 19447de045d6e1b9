"""SIGHUP in a single process: a graceful restart in place, with the application imported again.

Without a master there is no new process to import the code on disk; the restart does what it can in this
one. The TLS certificate files, if any, are read again (a renewal is applied this way). The app's own
modules (those whose files are under ``--app-dir`` or the working directory, and not in the Python
installation, its site-packages or tricorn) are dropped from ``sys.modules`` and the app is imported
again; then its lifespan startup runs, while the previous app goes on serving. If any of it fails, the
modules are put back, the error is logged and the previous app serves on. Otherwise the listening sockets
are handed to a new server for the new app (they stay open: a client that connects meanwhile waits in
their queue), and the previous app's server finishes its requests, as a retiring worker does, before its
lifespan shutdown runs.

What it cannot do: installed packages stay imported (a new version of a dependency needs a new process),
module-level state kept elsewhere (a framework's registry of models, say) keeps what the previous import
put there, and the settings are not read again. A master (``--workers 2``, or any setting that needs one)
restarts with new processes instead.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import logging
import os
import site
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

import tricorn
from tricorn.errors import AppLoadError, ConfigError, LifespanFailure
from tricorn.importer import Mounted, load_apps
from tricorn.interfaces.lifespan import Lifespan, Lifespans
from tricorn.io import tls
from tricorn.io.quic import QuicEndpoint
from tricorn.io.server import ServerState

if TYPE_CHECKING:
    from tricorn.config import Config

error_log = logging.getLogger("tricorn.error")


@dataclass(slots=True)
class Serving:
    """The imported apps (the APP and its mounts) and what serves them."""

    apps: list[Mounted]
    lifespan: Lifespans
    state: ServerState


def freeze_startup_objects() -> None:
    """Keep what the app built at import and startup out of the cyclic collector's generations, so
    collections scan only per-request garbage (undone, for the previous app's objects, after a restart)."""
    gc.collect()
    gc.freeze()


def _roots(config: Config) -> tuple[list[str], list[str]]:
    """(directories whose modules are the app's, directories whose modules are not)."""
    roots = {os.path.abspath(config.app_dir), os.getcwd()}
    excluded = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(tricorn.__file__)}
    excluded.update(site.getsitepackages())
    excluded.add(site.getusersitepackages())
    return [os.path.join(p, "") for p in roots], [os.path.join(os.path.abspath(p), "") for p in excluded]


def _is_app_module(module: ModuleType | None, roots: list[str], excluded: list[str]) -> bool:
    path = getattr(module, "__file__", None)
    if not isinstance(path, str) or not path.endswith(".py"):
        return False  # built in, a namespace package, or an extension module (which cannot be imported twice)
    path = os.path.abspath(path)
    return any(path.startswith(r) for r in roots) and not any(path.startswith(e) for e in excluded)


def forget_app_modules(config: Config) -> dict[str, ModuleType]:
    """Drop the app's own modules from ``sys.modules`` (so the next import reads the files again); return
    them, for :func:`restore_app_modules`."""
    roots, excluded = _roots(config)
    dropped = {
        name: module
        for name, module in sys.modules.items()
        if name != "__main__" and _is_app_module(module, roots, excluded)
    }
    for name in dropped:
        del sys.modules[name]
    importlib.invalidate_caches()
    return dropped


def restore_app_modules(config: Config, dropped: dict[str, ModuleType]) -> None:
    """Undo :func:`forget_app_modules` after a failed import: what the attempt imported goes."""
    roots, excluded = _roots(config)
    for name, module in list(sys.modules.items()):
        if name != "__main__" and _is_app_module(module, roots, excluded):
            del sys.modules[name]
    sys.modules.update(dropped)


async def load(config: Config, loop: asyncio.AbstractEventLoop, backend: str, apps: list[Mounted]) -> Serving:
    """Run the lifespan startup of each ASGI app in ``apps`` and make their server (not started). Raises
    LifespanFailure, naming the mount whose startup failed."""
    # Lifespan is an ASGI protocol: a WSGI app has no startup or shutdown events.
    lifespans: dict[str, Lifespan] = {}
    for mounted in apps:
        if mounted.interface == "asgi":
            name = "application" if mounted.prefix == "/" else f"mount {mounted.prefix} ({mounted.spec})"
            lifespans[mounted.prefix] = Lifespan(mounted.app, config.lifespan, config.timeout_lifespan, name)
    group = Lifespans(list(lifespans.values()))
    await group.startup()
    for mounted in apps:
        if mounted.prefix in lifespans:
            mounted.lifespan_state = lifespans[mounted.prefix].shared_state
    root = next((m for m in apps if m.prefix == "/"), None)
    state = ServerState(
        config,
        root.app if root is not None else None,
        loop,
        backend,
        root.interface if root is not None else "asgi",
        mounts=[m for m in apps if m is not root],
        lifespan_state=root.lifespan_state if root is not None else None,
    )
    return Serving(apps, group, state)


async def reimport(config: Config, loop: asyncio.AbstractEventLoop, backend: str) -> Serving | None:
    """Read the TLS certificate files again, import the app again and start its lifespan; None (the error
    logged, the modules put back) if any of it fails."""
    try:
        tls.prepare(config)  # the certificate files as they are now: SIGHUP is how a renewal is applied
    except ConfigError as exc:
        error_log.error("%s", exc)
        error_log.error("restart abandoned: the running application goes on serving")
        return None
    dropped = forget_app_modules(config)
    try:
        return await load(config, loop, backend, load_apps(config))
    except AppLoadError as exc:
        error_log.error("%s", exc, exc_info=exc.__cause__ is not None)
    except LifespanFailure as exc:
        error_log.error("application startup failed: %s", exc)
    restore_app_modules(config, dropped)
    error_log.error("restart abandoned: the running application goes on serving")
    return None


async def hand_over(old: Serving, new: Serving) -> None:
    """Move the listening sockets from ``old``'s server to ``new``'s, which accepts from now on."""
    sockets = []
    endpoints = []
    for server in list(old.state.servers):
        if isinstance(server, QuicEndpoint):
            # The UDP socket cannot be read by two endpoints: the endpoint itself goes over. Its new
            # connections are the new app's; those it has keep the old one until they finish.
            old.state.servers.remove(server)
            endpoints.append(server)
            continue
        sock = server.detach()
        if sock is not None:
            sockets.append(sock)
    await new.state.start(sockets)
    for endpoint in endpoints:
        endpoint.adopt(new.state)
        new.state.servers.append(endpoint)


async def retire(old: Serving, timeout: float) -> None:
    """Let ``old`` finish its requests (its idle keep-alive connections get one more, answered with
    ``Connection: close``), then run its lifespan shutdown."""
    old.state.lame_duck = True
    await old.state.shutdown(timeout)
    await old.lifespan.shutdown()
    error_log.info("the previous application has stopped")


def refreeze() -> None:
    """Once nothing refers to a retired app any more: its objects were frozen at its startup, so let the
    collector have them, then freeze what serves now."""
    gc.unfreeze()
    freeze_startup_objects()
