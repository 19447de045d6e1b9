"""Process management: the pre-fork master (arbiter), its pure policy, the workers' heartbeat, sockets.

``command_line`` holds the arguments the ``tricorn`` command was started with (set by
:func:`tricorn.cli.main`): the master re-reads its settings from them on SIGHUP and re-executes itself
with them on SIGUSR2. It is None when :func:`tricorn.run` is called from Python.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tricorn.config import Config

command_line: list[str] | None = None


def needs_master(config: Config) -> bool:
    """Whether ``config`` is served by a master and workers (else by one process, :mod:`tricorn.run`)."""
    return config.workers > 1 or config.reload or config.max_requests is not None
