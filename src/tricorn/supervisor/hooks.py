"""gunicorn's server hooks: the functions of a gunicorn config file, run at gunicorn's moments.

A gunicorn config file (``-c gunicorn.conf.py``, ``-c python:module``, or ``./gunicorn.conf.py`` found in
the working directory) is read by :mod:`tricorn.config`, which keeps its namespace; :func:`hooks_of` gives
its hooks. A config with hooks is served by a master and workers, as gunicorn always is, so that every hook
has its moment:

=====================  ===========================================================================
on_starting(server)    the master starts, before it binds
when_ready(server)     the sockets listen, before the first workers are forked
pre_fork(server, w)    in the master, before a worker is forked (``w.pid`` is None)
post_fork(server, w)   in the new worker, first thing
post_worker_init(w)    in the worker, once the application is imported
pre_request(w, req)    WSGI: before the application is called (raising answers 500)
post_request(w, req,   WSGI: after the response is sent (also with fewer arguments, as gunicorn
  environ, resp)         accepts)
worker_int(w)          the worker got SIGQUIT (stops now)
worker_abort(w)        the worker got SIGABRT from the master (it stopped answering)
worker_exit(server, w) in the worker, as it exits
child_exit(server, w)  in the master, after it reaped a worker
nworkers_changed(      in the master, when the number of workers to run changes (``old`` is None
  server, new, old)      at the start)
on_reload(server)      the master got SIGHUP, before it reads the settings again
pre_exec(server)       before the master re-executes itself (SIGUSR2)
on_exit(server)        the master is about to exit
=====================  ===========================================================================

The objects offer what hooks use: ``server.log`` and ``worker.log`` (the error log), ``server.cfg`` and
``worker.cfg`` (the settings, by gunicorn's names or tricorn's), ``server.pid``, ``server.num_workers``,
``server.WORKERS``, ``worker.pid``, ``worker.ppid``, ``worker.age``, ``worker.alive``; ``req.method``,
``req.path``, ``req.query``, ``req.uri``, ``req.version``, ``req.headers``; ``resp.status``,
``resp.status_code``, ``resp.headers``. A hook that raises is logged with its name and the server goes on.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from tricorn.config import HOOKS, PYTHON_CONFIGS, SETTINGS

if TYPE_CHECKING:
    from tricorn.config import Config

error_log = logging.getLogger("tricorn.error")

__all__ = ["HookServer", "HookWorker", "Hooks", "hooks_of"]


class Hooks:
    """The hooks of one gunicorn config file, by name; calling an absent one does nothing."""

    def __init__(self, functions: dict[str, Callable[..., Any]]) -> None:
        self.functions = functions

    def __bool__(self) -> bool:
        return bool(self.functions)

    def __contains__(self, name: str) -> bool:
        return name in self.functions

    def run(self, name: str, *args: Any) -> None:
        """Run hook ``name`` if the config has it; an exception is logged with the hook's name."""
        function = self.functions.get(name)
        if function is None:
            return
        try:
            function(*args)
        except Exception:
            error_log.exception("hook %s raised an exception: carrying on", name)


def hooks_of(config: Config) -> Hooks:
    """The hooks of ``config``'s gunicorn config file (none for a TOML file or no file)."""
    namespace = PYTHON_CONFIGS.get(config.config or "", {})
    return Hooks({name: namespace[name] for name in HOOKS if callable(namespace.get(name))})


# gunicorn's names of tricorn's settings, for cfg.NAME: every setting's file keys (timeout, keepalive...).
_GUNICORN_NAMES = {key: name for name, setting in SETTINGS.items() for key in setting.file_keys}


class HookConfig:
    """``server.cfg`` / ``worker.cfg``: the settings, read by gunicorn's name or tricorn's."""

    def __init__(self, config: Config) -> None:
        self._config = config

    def __getattr__(self, name: str) -> Any:
        if name == "bind":  # gunicorn's is a list of addresses
            config = self._config
            return list(config.bind) or [f"{config.host}:{config.port}"]
        if name == "worker_class_str":
            return self._config.worker_class or "tricorn"
        setting = _GUNICORN_NAMES.get(name, name)
        if setting in SETTINGS:
            return getattr(self._config, setting)
        raise AttributeError(f"{name!r} is not a setting tricorn has")


class HookWorker:
    """What gunicorn's worker object offers hooks."""

    def __init__(self, config: Config, age: int, pid: int | None = None) -> None:
        self.age = age  # gunicorn: the worker's number, counting every worker the master has forked
        self.pid = pid
        self.ppid = os.getpid() if pid is None else os.getppid()
        self.log = error_log
        self.cfg = HookConfig(config)
        self.alive = True

    def __repr__(self) -> str:
        return f"<tricorn worker {self.age} pid {self.pid}>"


class HookServer:
    """What gunicorn's arbiter object offers hooks; ``workers`` gives the current ones."""

    def __init__(
        self,
        config: Config,
        num_workers: Callable[[], int],
        workers: Callable[[], Iterable[HookWorker]],
    ) -> None:
        self.cfg = HookConfig(config)
        self.log = error_log
        self.pid = os.getpid()
        self.proc_name = config.proc_name or config.app
        self._num_workers = num_workers
        self._workers = workers

    @property
    def num_workers(self) -> int:
        return self._num_workers()

    @property
    def WORKERS(self) -> dict[int | None, HookWorker]:
        return {worker.pid: worker for worker in self._workers()}


# -- pre_request and post_request, around a WSGI application


class HookRequest:
    """``req`` of pre_request and post_request: the request, read from the WSGI environ."""

    def __init__(self, environ: dict[str, Any]) -> None:
        self.method: str = environ.get("REQUEST_METHOD", "")
        self.path: str = environ.get("PATH_INFO", "")
        self.query: str = environ.get("QUERY_STRING", "")
        self.uri = f"{self.path}?{self.query}" if self.query else self.path
        protocol = environ.get("SERVER_PROTOCOL", "HTTP/1.1")
        major, _, minor = protocol.removeprefix("HTTP/").partition(".")
        self.version = (int(major or 1), int(minor or 0))
        self.headers = [
            (key[5:].replace("_", "-"), value) for key, value in environ.items() if key.startswith("HTTP_")
        ]
        self.remote_addr = environ.get("REMOTE_ADDR")


class HookResponse:
    """``resp`` of post_request: the status and headers the application started its response with."""

    def __init__(self) -> None:
        self.status: str | None = None
        self.status_code: int | None = None
        self.headers: list[tuple[str, str]] = []


def _arity(function: Callable[..., Any]) -> int:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return 4
    if any(p.kind is p.VAR_POSITIONAL for p in parameters):
        return 4
    return len([p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)])


def with_request_hooks(app: Any, hooks: Hooks, worker: HookWorker) -> Any:
    """``app`` (WSGI) with the config's pre_request and post_request around each call; ``app`` itself
    when it has neither. A raising pre_request is logged by name and answered as an app error (500)."""
    pre = hooks.functions.get("pre_request")
    post = hooks.functions.get("post_request")
    if pre is None and post is None:
        return app
    post_args = _arity(post) if post is not None else 0

    def hooked(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = HookRequest(environ)
        if pre is not None:
            try:
                pre(worker, request)
            except Exception:
                error_log.error("hook pre_request raised an exception: answering 500")
                raise
        response = HookResponse()

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            response.status = status
            response.status_code = int(status.split(" ", 1)[0]) if status[:3].isdigit() else None
            response.headers = headers
            return start_response(status, headers, exc_info)

        def done() -> None:
            if post is not None:
                hooks.run("post_request", *(worker, request, environ, response)[:post_args])

        try:
            result = app(environ, start)
        except BaseException:
            done()
            raise
        return _Closing(result, done)

    return hooked


class _Closing:
    """A WSGI response that calls ``done`` after the application's own ``close()``."""

    def __init__(self, result: Iterable[bytes], done: Callable[[], None]) -> None:
        self.result = result
        self.done = done

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.result)

    def close(self) -> None:
        try:
            close = getattr(self.result, "close", None)
            if close is not None:
                close()
        finally:
            self.done()
