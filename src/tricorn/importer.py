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


# The attributes a module named without one is searched for, in order: gunicorn's default (and Django's
# wsgi.py and asgi.py), then the name FastAPI's, Starlette's and Flask's docs give.
DEFAULT_ATTRIBUTES = ("application", "app")


def resolve_spec(spec: str) -> str:
    """``spec`` with its attribute: a module alone gets the first of :data:`DEFAULT_ATTRIBUTES` it has
    (importing it); ``module:attribute`` is returned as it is. Raises AppLoadError."""
    if ":" in spec:
        return spec
    module = _import_module(spec)
    for attribute in DEFAULT_ATTRIBUTES:
        if hasattr(module, attribute):
            return f"{spec}:{attribute}"
    raise AppLoadError(
        f"module {spec!r} has neither 'application' nor 'app': name the application as {spec}:ATTRIBUTE"
    )


def _import_module(module_name: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name or (exc.name and module_name.startswith(exc.name + ".")):
            raise AppLoadError(f"could not import module {module_name!r}: {exc}") from None
        raise AppLoadError(f"error while importing {module_name!r}: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:
        raise AppLoadError(f"error while importing {module_name!r}: {type(exc).__name__}: {exc}") from exc


def import_from_string(spec: str, factory: bool = False) -> Any:
    """Import ``module:attribute`` (attribute may be dotted; ``module:factory()`` calls a factory)."""
    module_name, sep, attrs = spec.partition(":")
    if not sep or not module_name or not attrs:
        raise AppLoadError(f"app {spec!r} must be in the form 'module:attribute'")
    if attrs.endswith("()"):
        attrs = attrs[:-2]
        factory = True
    obj: Any = _import_module(module_name)
    for part in attrs.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AppLoadError(f"attribute {attrs!r} not found in module {module_name!r}") from None
    return _made(obj, factory, spec)


def _made(obj: Any, factory: bool, shown: str) -> Any:
    """``obj``, or what it returns when it is a ``factory``, checked callable; ``shown`` names it."""
    if factory:
        if not callable(obj):
            raise AppLoadError(f"app factory {shown!r} is not callable")
        try:
            obj = obj()
        except Exception as exc:
            raise AppLoadError(f"app factory {shown!r} raised {type(exc).__name__}: {exc}") from exc
    if not callable(obj):
        raise AppLoadError(f"app {shown!r} is not callable (got {type(obj).__name__})")
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


def load_app(spec: str, factory: bool, app_dir: str, interface: str) -> tuple[Any, Interface, str]:
    """The application, its interface and what it is, for the startup log (``myproject.wsgi:application``,
    or the built-in demo). ``interface`` is the setting: auto detects; asgi3 is asgi; asgi2 wraps an ASGI
    2 application (called with the scope, returning an instance called with receive and send)."""
    if app_dir and app_dir not in sys.path:
        sys.path.insert(0, app_dir)
    resolved = resolve_spec(spec)
    app, kind = _with_interface(import_from_string(resolved, factory), interface)
    from tricorn.config import DEFAULT_APP

    shown = "the built-in demo app (no APP given)" if spec == DEFAULT_APP else resolved
    return app, kind, shown


def app_from_object(app: Any, factory: bool, interface: str) -> tuple[Any, Interface]:
    """An application given as an object (``tricorn.run(app)``), as :func:`load_app` would return it:
    called first when ``factory``, checked callable, its interface detected unless given."""
    return _with_interface(_made(app, factory, object_name(app)), interface)


def object_name(app: Any) -> str:
    """``module:name`` of an application object, for logs and process titles (an instance is named
    after its class)."""
    named = app if hasattr(app, "__qualname__") else type(app)
    return f"{getattr(named, '__module__', '?')}:{named.__qualname__}"


def _with_interface(app: Any, interface: str) -> tuple[Any, Interface]:
    """``app`` and its interface, by the setting: auto detects; asgi3 is asgi; asgi2 wraps an ASGI 2
    application (called with the scope, returning an instance called with receive and send)."""
    if interface == "asgi2":
        app = _asgi2_to_asgi3(app)
    if interface == "auto":
        return app, detect_interface(app)
    return app, "wsgi" if interface == "wsgi" else "asgi"


def _asgi2_to_asgi3(app: Any) -> Any:
    async def asgi3(scope: Any, receive: Any, send: Any) -> None:
        instance = app(scope)
        await instance(receive, send)

    return asgi3


@dataclass(slots=True)
class Mounted:
    """One application of the dispatch table: its prefix ("/" for the APP), its spec and the loaded app."""

    prefix: str
    spec: str
    app: Any
    interface: Interface
    lifespan_state: dict[str, Any] | None = None  # what its lifespan startup left (ASGI), for its scopes
    shown: str = ""  # what the startup log calls it (the spec with its attribute found, or the demo)


def load_apps(config: Config, app: Any = None) -> list[Mounted]:
    """The APP and every ``--mount``, each imported and its interface told on its own, the APP first.

    The APP is ``app`` when given as an object from Python (:func:`tricorn.run`), else ``config.app``;
    it is the ``/`` mount. With mounts and no APP given, no app serves ``/``: a path outside every mount
    is answered 404 by the server (the built-in demo is never mounted beside real apps). Raises
    AppLoadError, naming the mount that failed.
    """
    from tricorn.config import DEFAULT_APP

    mounts = config.app_mounts
    loaded: list[Mounted] = []
    if app is not None:
        served, interface = app_from_object(app, config.factory, config.interface)
        loaded.append(Mounted("/", object_name(app), served, interface, shown=object_name(app)))
    elif not any(prefix == "/" for prefix, _, _ in mounts) and (config.app != DEFAULT_APP or not mounts):
        served, interface, shown = load_app(config.app, config.factory, config.app_dir, config.interface)
        loaded.append(Mounted("/", config.app, served, interface, shown=shown))
    for prefix, spec, wanted in mounts:
        try:
            app, interface, shown = load_app(spec, False, config.app_dir, wanted)
        except AppLoadError as exc:
            raise AppLoadError(f"mount {prefix} ({spec}): {exc}") from exc.__cause__
        loaded.append(Mounted(prefix, spec, app, interface, shown=shown))
    return loaded
