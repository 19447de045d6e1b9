"""Process chores shared by the master and a single serving process: pid file, privileges, titles, logs."""

from __future__ import annotations

import contextlib
import grp
import importlib
import logging
import os
import pwd
import re
import sys
from typing import TYPE_CHECKING

from tricorn.errors import ConfigError, TricornError

if TYPE_CHECKING:
    from tricorn.config import Config

error_log = logging.getLogger("tricorn.error")


class ProcessError(TricornError):
    """A process setting cannot be applied (pid file, user, group); the message says which and why."""


# -- pid file


class PidFile:
    """``path`` holding this process's id, written atomically; :meth:`remove` deletes it if it is still
    ours. Refuses (ProcessError) to replace a pid file naming another live process."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.pid = os.getpid()
        other = read_pid(path)
        if other == self.pid:
            return  # ours already: a master re-executed by SIGUSR2 (possibly without the rights to rewrite it)
        if other is not None and _alive(other):
            raise ProcessError(f"pid file {path} names process {other}, which is running")
        directory = os.path.dirname(os.path.abspath(path))
        temporary = os.path.join(directory, f".{os.path.basename(path)}.{self.pid}.tmp")
        try:
            with open(temporary, "w") as file:
                file.write(f"{self.pid}\n")
            os.replace(temporary, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise ProcessError(f"cannot write pid file {path}: {exc.strerror or exc}") from None

    def remove(self) -> None:
        if read_pid(self.path) == self.pid:
            try:
                os.unlink(self.path)
            except OSError as exc:  # e.g. privileges were dropped and the directory is root's
                error_log.warning("could not remove pid file %s: %s", self.path, exc.strerror or exc)


def read_pid(path: str) -> int | None:
    try:
        with open(path) as file:
            text = file.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- user and group


def resolve_identity(user: str | None, group: str | None) -> tuple[int, int] | None:
    """The (uid, gid) named by ``user`` and ``group`` (names or numeric ids), or None when neither is set.

    Without ``group``, the user's primary group; without ``user``, the current uid. Raises ProcessError
    for an unknown name.
    """
    if user is None and group is None:
        return None
    uid, gid = os.getuid(), os.getgid()
    if user is not None:
        try:
            entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
        except KeyError:
            if not user.isdigit():
                raise ProcessError(f"user: no user named {user!r}") from None
            uid = int(user)
        else:
            uid, gid = entry.pw_uid, entry.pw_gid
    if group is not None:
        try:
            gid = grp.getgrgid(int(group)).gr_gid if group.isdigit() else grp.getgrnam(group).gr_gid
        except KeyError:
            if not group.isdigit():
                raise ProcessError(f"group: no group named {group!r}") from None
            gid = int(group)
    return uid, gid


def drop_privileges(identity: tuple[int, int] | None) -> None:
    """Switch to ``identity`` (uid, gid) for good: supplementary groups, then the group, then the user."""
    if identity is None:
        return
    uid, gid = identity
    if (os.getuid(), os.getgid()) == (uid, gid):
        return
    try:
        if os.getuid() == 0:
            try:
                name = pwd.getpwuid(uid).pw_name
            except KeyError:
                os.setgroups([gid])
            else:
                os.initgroups(name, gid)
        os.setgid(gid)
        os.setuid(uid)
    except OSError as exc:
        raise ProcessError(f"cannot switch to uid {uid}, gid {gid}: {exc.strerror or exc}") from None
    error_log.info("switched to uid %d, gid %d", uid, gid)


# -- process titles


def set_title(title: str) -> None:
    """Set the process title shown by ps and top, when setproctitle is installed."""
    try:
        # An optional dependency (the proctitle extra): imported by name, so type checking does not need it.
        module = importlib.import_module("setproctitle")
    except ImportError:
        return
    module.setproctitle(title)


# -- log files


def reopen_log_files() -> int:
    """Reopen every file a logging handler writes to (after logrotate moved it): SIGUSR1.

    Returns the number of files reopened. Streams tricorn did not open (stderr, stdout) are left alone.
    """
    reopened = 0
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    handlers = {id(h): h for lg in loggers if isinstance(lg, logging.Logger) for h in lg.handlers}
    for handler in handlers.values():
        if isinstance(handler, logging.FileHandler):
            handler.acquire()
            try:
                if handler.stream is not None:
                    handler.stream.close()
                handler.stream = handler._open()
                reopened += 1
            except OSError as exc:
                error_log.error("could not reopen log file %s: %s", handler.baseFilename, exc.strerror or exc)
            finally:
                handler.release()
    return reopened


# -- the application's environment


def prepare_process(config: Config) -> None:
    """Apply the settings that shape the process the application is imported in, once, before anything
    else (so a master's workers inherit them): ``env_file`` (variables already set win, as with uvicorn's
    python-dotenv), then ``env`` (these win, as in gunicorn), ``chdir`` (also put first on sys.path, as
    gunicorn does) and ``pythonpath``. Raises ConfigError naming the setting."""
    if config.env_file is not None:
        for name, value in read_env_file(config.env_file).items():
            os.environ.setdefault(name, value)
    for assignment in config.env:
        name, _, value = assignment.partition("=")
        os.environ[name] = value
    if config.chdir is not None:
        try:
            os.chdir(config.chdir)
        except OSError as exc:
            raise ConfigError("chdir", f"cannot change to {config.chdir!r}: {exc.strerror}") from None
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
    for directory in reversed(config.pythonpath):
        path = os.path.abspath(directory)
        if path not in sys.path:
            sys.path.insert(0, path)


_ENV_LINE = re.compile(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*")


def read_env_file(path: str) -> dict[str, str]:
    """The variables of a .env file: ``NAME=VALUE`` lines (``export`` allowed), ``#`` comments, values
    optionally in single or double quotes (double-quoted ones with ``\\n`` escapes), no interpolation.
    Raises ConfigError("env_file", ...) naming the line that is none of these."""
    try:
        with open(path, encoding="utf-8") as file:
            lines = file.read().splitlines()
    except OSError as exc:
        raise ConfigError("env_file", f"cannot read {path!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError("env_file", f"{path!r} is not UTF-8 text") from None
    variables: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _ENV_LINE.fullmatch(line)
        if match is None:
            raise ConfigError("env_file", f"{path!r} line {number} is not NAME=VALUE")
        name, value = match.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            quote, value = value[0], value[1:-1]
            if quote == '"':
                value = value.replace("\\n", "\n").replace('\\"', '"')
        else:
            value = value.split(" #", 1)[0].rstrip()
        variables[name] = value
    return variables
