"""Process management: the pre-fork master (arbiter), its pure policy, the workers' heartbeat, sockets.

``command_line`` holds the arguments the ``tricorn`` command was started with (set by
:func:`tricorn.cli.main`): the master re-reads its settings from them on SIGHUP and re-executes itself
with them on SIGUSR2. It is None when :func:`tricorn.run` is called from Python.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tricorn.config import DEFAULT_TIMEOUT_WORKER

if TYPE_CHECKING:
    from tricorn.config import Config

command_line: list[str] | None = None
# What the reading of the settings has to say (tricorn.config.Loaded.notes), logged once logging is set
# up by the process that serves or supervises (set by tricorn.cli.main, emptied by log_startup_notes).
startup_notes: list[tuple[int, str]] = []


def log_startup_notes() -> None:
    """Log, once, the notes of the settings' reading: options ignored, worker class mapped, files read."""
    import logging

    error_log = logging.getLogger("tricorn.error")
    while startup_notes:
        level, message = startup_notes.pop(0)
        error_log.log(level, "%s", message)


def needs_master(config: Config) -> bool:
    """Whether ``config`` is served by a master and workers (else by one process, :mod:`tricorn.serving`).

    More than one worker needs a master, and so do the settings that only a master can honour, even for
    one worker: ``reload``, ``max_requests``, and a ``timeout_worker`` set to something other than its
    default (a process cannot watch its own blocked event loop). Given explicitly means different from the
    default: ``--timeout-worker 30`` is the default and starts no master, and 0 turns the check off.
    A gunicorn config file with server hooks needs one too (tricorn.supervisor.hooks): gunicorn always
    has a master, and its hooks their moments in it.
    """
    return bool(master_settings(config))


def master_settings(config: Config) -> list[str]:
    """The settings of ``config`` that need a master (see :func:`needs_master`), by name."""
    from tricorn.supervisor.hooks import hooks_of

    wanted = {
        "workers": config.workers > 1,
        "reload": config.reload,
        "max_requests": config.max_requests is not None,
        "timeout_worker": config.timeout_worker not in (0.0, DEFAULT_TIMEOUT_WORKER),
        "config": bool(hooks_of(config)),  # a gunicorn config file with server hooks
    }
    return [name for name, given in wanted.items() if given]
