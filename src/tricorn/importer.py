"""Finding the application named on the command line, and telling which interface it speaks."""

from __future__ import annotations

import importlib
import inspect
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from tricorn.errors import AppLoadError

if TYPE_CHECKING:
    from tricorn.config import Config

Interface = Literal["asgi", "wsgi"]


def import_from_string(spec: str, factory: bool = False) -> Any:
    """Import ``module:attribute`` (attribute may be dotted; ``module:factory()`` calls a factory)."""
    module_name, sep, attrs = spec.partition(":")
    if not sep or not module_name or not attrs:
        raise AppLoadError(f"app {spec!r} must be in the form 'module:attribute'")
    if attrs.endswith("()"):
        attrs = attrs[:-2]
        factory = True
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name or (exc.name and module_name.startswith(exc.name + ".")):
            raise AppLoadError(f"could not import module {module_name!r}: {exc}") from None
        raise AppLoadError(f"error while importing {module_name!r}: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:
        raise AppLoadError(f"error while importing {module_name!r}: {type(exc).__name__}: {exc}") from exc
    obj: Any = module
    for part in attrs.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AppLoadError(f"attribute {attrs!r} not found in module {module_name!r}") from None
    if factory:
        if not callable(obj):
            raise AppLoadError(f"app factory {spec!r} is not callable")
        try:
            obj = obj()
        except Exception as exc:
            raise AppLoadError(f"app factory {spec!r} raised {type(exc).__name__}: {exc}") from exc
    if not callable(obj):
        raise AppLoadError(f"app {spec!r} is not callable (got {type(obj).__name__})")
    return obj


def detect_interface(app: Any) -> Interface:
    """ASGI 3 for a coroutine function (or an object whose ``__call__`` is one); WSGI for a plain callable
    taking two positional arguments (environ, start_response), or ``*args``."""
    if inspect.iscoroutinefunction(app):
        return "asgi"
    call = getattr(app, "__call__", None)  # noqa: B004 - we want the method itself
    if call is not None and inspect.iscoroutinefunction(call):
        return "asgi"
    try:
        parameters = inspect.signature(app).parameters.values()
    except (TypeError, ValueError):
        return "asgi"
    params = [
        p
        for p in parameters
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    if len(params) == 2:
        return "wsgi"
    # A plain callable taking (*args) (wsgiref.validate.validator, most WSGI middleware wrappers) is
    # WSGI as well: an ASGI 3 app is a coroutine function, which was checked above.
    if len(params) < 2 and any(p.kind is p.VAR_POSITIONAL for p in parameters):
        return "wsgi"
    return "asgi"


def load_app(spec: str, factory: bool, app_dir: str, interface: str) -> tuple[Any, Interface]:
    if app_dir and app_dir not in sys.path:
        sys.path.insert(0, app_dir)
    app = import_from_string(spec, factory)
    kind: Interface = detect_interface(app) if interface == "auto" else interface  # type: ignore[assignment]
    return app, kind


@dataclass(slots=True)
class Mounted:
    """One application of the dispatch table: its prefix ("/" for the APP), its spec and the loaded app."""

    prefix: str
    spec: str
    app: Any
    interface: Interface
    lifespan_state: dict[str, Any] | None = None  # what its lifespan startup left (ASGI), for its scopes


def load_apps(config: Config) -> list[Mounted]:
    """The APP and every ``--mount``, each imported and its interface told on its own, the APP first.

    The APP is the ``/`` mount. With mounts and no APP given, no app serves ``/``: a path outside every
    mount is answered 404 by the server (the built-in demo is never mounted beside real apps). Raises
    AppLoadError, naming the mount that failed.
    """
    from tricorn.config import DEFAULT_APP

    mounts = config.app_mounts
    loaded: list[Mounted] = []
    if not any(prefix == "/" for prefix, _, _ in mounts) and (config.app != DEFAULT_APP or not mounts):
        app, interface = load_app(config.app, config.factory, config.app_dir, config.interface)
        loaded.append(Mounted("/", config.app, app, interface))
    for prefix, spec, wanted in mounts:
        try:
            app, interface = load_app(spec, False, config.app_dir, wanted)
        except AppLoadError as exc:
            raise AppLoadError(f"mount {prefix} ({spec}): {exc}") from exc.__cause__
        loaded.append(Mounted(prefix, spec, app, interface))
    return loaded
