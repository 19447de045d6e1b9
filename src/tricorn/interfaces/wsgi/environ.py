"""WSGI environ: the constant, per-connection and per-request parts of a request's environ, and
start_response's checks (:func:`_parse_start`), each with the caches of its hot path."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

from tricorn.interfaces.asgi import METHODS
from tricorn.interfaces.wsgi.streams import ErrorStream, FileWrapper
from tricorn.proto.h1 import Fields, Request

if TYPE_CHECKING:
    from types import TracebackType

Environ = dict[str, Any]
Pairs = tuple[tuple[bytes, bytes], ...]  # response header fields, encoded
ExcInfo = tuple[type[BaseException], BaseException, "TracebackType | None"]
StartResponse = Callable[..., Callable[[bytes], None]]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

_PROTOCOLS = {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0", "2": "HTTP/2"}

# -- environ --------------------------------------------------------------------------------------------

# Request header name -> environ key (None: dropped), computed once per distinct name (hot path: bench
# wsgi "hello"). Bounded, as a client chooses the names.
_ENVIRON_KEYS: dict[bytes, str | None] = {
    b"content-type": "CONTENT_TYPE",
    b"content-length": "CONTENT_LENGTH",
}
_MAX_CACHED_NAMES = 1024


def _environ_key(name: bytes) -> str | None:
    key = _ENVIRON_KEYS.get(name)
    if key is None and name not in _ENVIRON_KEYS:
        # A name with "_" would map to the same key as its "-" twin (X_Forwarded_For vs X-Forwarded-For)
        # and could smuggle a header past a proxy that filters the other spelling: dropped, as nginx
        # does by default and gunicorn's header_map="drop" (its default since 22.0).
        key = None if b"_" in name else "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
        if len(_ENVIRON_KEYS) < _MAX_CACHED_NAMES:
            _ENVIRON_KEYS[name] = key
    return key


def base_environ(multithread: bool, multiprocess: bool, root_path: str, scheme: str = "http") -> Environ:
    """The keys every request's environ shares; :func:`build_environ` copies and completes it."""
    return {
        "SCRIPT_NAME": root_path,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scheme,
        "wsgi.errors": ErrorStream(),
        "wsgi.multithread": multithread,
        "wsgi.multiprocess": multiprocess,
        "wsgi.run_once": False,
        # The input signals end-of-body itself (chunked bodies too): an app may read() until b"".
        "wsgi.input_terminated": True,
        "wsgi.file_wrapper": FileWrapper,
    }


def build_environ(
    request: Request,
    server: tuple[str, int | None] | None,
    client: tuple[str, int] | None,
    base: Environ,
    wsgi_input: Any,
) -> Environ:
    """The PEP 3333 environ of ``request``. No key comes from the process environment.

    ``PATH_INFO`` is the percent-decoded path, bytes decoded as latin-1 (PEP 3333's "bytes in a str"),
    relative to ``SCRIPT_NAME`` (``--root-path``, which a proxy is taken to have stripped, as for ASGI's
    ``root_path``); ``QUERY_STRING`` is not decoded. ``CONTENT_TYPE`` and ``CONTENT_LENGTH`` appear only
    when the request has them, never as ``HTTP_`` keys. Repeated headers are joined with ", " (``Cookie``
    with "; ", RFC 6265 §5.4); header names containing "_" are dropped (see ``_environ_key``).
    """
    return request_environ(request, ConnectionEnviron(connection_environ(base, server, client)), wsgi_input)


def connection_environ(
    base: Environ,
    server: tuple[str, int | None] | None,
    client: tuple[str, int] | None,
    scheme: str = "http",
) -> Environ:
    """``base`` with the keys every request of one connection shares: the server's and the client's
    addresses, and the scheme (``HTTPS=on`` over TLS, as CGI servers set it). Without a server port (a
    Unix socket) ``SERVER_NAME``/``SERVER_PORT`` are left to each request's Host (see
    :func:`request_environ`)."""
    environ = base.copy()
    if scheme == "https":
        environ["wsgi.url_scheme"] = "https"
        environ["HTTPS"] = "on"
    if server is not None and server[1] is not None:
        environ["SERVER_NAME"] = server[0]
        environ["SERVER_PORT"] = str(server[1])
    if client is not None:
        environ["REMOTE_ADDR"] = client[0]
        environ["REMOTE_PORT"] = str(client[1])
    else:
        environ["REMOTE_ADDR"] = ""
        environ["REMOTE_PORT"] = ""
    return environ


class ConnectionEnviron:
    """What the environs of one connection's requests start from: its :func:`connection_environ`, and
    the last request's environ (without ``wsgi.input``) with what it was made from.

    A keep-alive client sends the same header fields request after request (a browser's User-Agent,
    Accept..., a proxy's X-Forwarded-For), and often the same request line (polling, health checks, a
    load generator): when the fields equal the last request's, the environ starts from a copy that holds
    their keys already, and when the request line does too, from a copy of the whole last environ; nothing
    is decoded again (bench wsgi "hello"). ``last`` is replaced whole, never changed, so the threads of
    HTTP/2 streams may share it.
    """

    __slots__ = ("last", "shared")

    def __init__(self, shared: Environ) -> None:
        self.shared = shared
        # (headers, their environ, method, target, http_version, the whole environ)
        self.last: tuple[Fields, Environ, bytes, bytes, str, Environ] | None = None


def request_environ(request: Request, conn: ConnectionEnviron, wsgi_input: Any) -> Environ:
    """The environ of ``request`` from its connection's :class:`ConnectionEnviron` (bench wsgi "hello":
    the addresses are formatted once per connection, the header fields and the request line once per
    change)."""
    headers = request.headers
    method = request.method
    target = request.target
    version = request.http_version
    last = conn.last
    if last is not None and last[0] == headers:
        if last[3] == target and last[2] == method and last[4] == version:
            environ = last[5].copy()
            environ["wsgi.input"] = wsgi_input
            return environ
        fields = last[1]
    else:
        fields = _headers_environ(conn.shared, request)
    environ = fields.copy()
    environ["REQUEST_METHOD"] = METHODS.get(method) or method.decode("ascii")
    path = request.path
    if path.find(b"%") >= 0:
        path = unquote_to_bytes(path)
    environ["PATH_INFO"] = path.decode("latin-1")
    environ["QUERY_STRING"] = request.query.decode("latin-1")
    environ["SERVER_PROTOCOL"] = _PROTOCOLS.get(version) or "HTTP/" + version
    conn.last = (headers, fields, method, target, version, environ.copy())
    environ["wsgi.input"] = wsgi_input
    return environ


def _headers_environ(shared: Environ, request: Request) -> Environ:
    """``shared`` with the keys ``request``'s header fields make."""
    environ = shared.copy()
    if "SERVER_PORT" not in environ:
        # A Unix socket (or an unknown address): the Host the client asked for, else the scheme's defaults.
        _server_from_host(environ, request)
    for name, value in request.headers:
        key = _ENVIRON_KEYS.get(name) or _environ_key(name)
        if key is None:
            continue
        text = value.decode("latin-1")
        if key in environ:
            text = environ[key] + ("; " if key == "HTTP_COOKIE" else ", ") + text
        environ[key] = text
    return environ


def _server_from_host(environ: Environ, request: Request) -> None:
    default_port = "443" if environ.get("wsgi.url_scheme") == "https" else "80"
    for name, value in request.headers:
        if name == b"host":
            host = value.decode("latin-1")
            if host.startswith("["):  # [IPv6]:port
                address, _, rest = host[1:].partition("]")
                port = rest[1:] if rest.startswith(":") else ""
            else:
                address, _, port = host.partition(":")
            environ["SERVER_NAME"] = address or "localhost"
            environ["SERVER_PORT"] = port or default_port
            return
    environ["SERVER_NAME"] = "localhost"
    environ["SERVER_PORT"] = default_port


# start_response's header pairs, checked and encoded once: (name, value) -> (encoded pair, Content-Length
# or None). Apps answer with the same few pairs again and again (bench wsgi "hello"); the encoded pair is
# the same object each time, which the core's own cache of checked pairs then finds at once. Emptied when
# full, as values vary (Set-Cookie, Content-Length).
_START_PAIRS: dict[tuple[str, str], tuple[tuple[bytes, bytes], int | None]] = {}
_MAX_CACHED_PAIRS = 4096
_STATUS_CODES: dict[str, int] = {}
# Whole calls, checked and encoded once: (status, *header pairs) -> what _parse_start returns. Most
# responses of an app repeat one of a few heads exactly (bench wsgi "hello": one lookup instead of one per
# pair). Emptied when full.
_STARTS: dict[tuple[Any, ...], tuple[int, Pairs, int | None]] = {}
_MAX_CACHED_STARTS = 512
# The last call kept, as (status, a list of its header pairs, what _parse_start returned): an app that
# answers with one head request after request (bench wsgi "hello") is found by WSGICycle.start_response
# with two comparisons, a string's and a list's of the same pair objects (each compared by identity
# first), before any key is built and hashed for _STARTS. Only a list of header pairs is kept, copied:
# the app's own list may change after the call. Replaced whole, so any thread reads one consistent entry.
_NEVER: Any = object()  # equal to no status
LAST_START: list[tuple[Any, list[tuple[str, str]], tuple[int, Pairs, int | None]]] = [
    (_NEVER, [], (0, (), None))
]


def _parse_start(status: str, headers: Iterable[tuple[str, str]]) -> tuple[int, Pairs, int | None]:
    """Check and encode start_response's arguments: (status code, headers as bytes, Content-Length).
    The headers are a tuple: the HTTP/1.1 core finds the same tuple in its cache of checked heads at
    once, with no copy of a list to compare (bench wsgi "hello").

    Raises TypeError or ValueError (into the app) for what PEP 3333 forbids: a status that is not
    ``"NNN reason"``, header names or values that are not latin-1 ``str``. Bytes the HTTP core refuses
    (CR, LF, NUL) are refused there, with a 500.
    """
    key: tuple[Any, ...] = (status, *headers)  # (TypeError if not iterable; a generator is spent here)
    try:
        started = _STARTS.get(key)
    except TypeError:  # an unhashable part (a list for a pair): checked below, not kept
        started = None
        cache = False
    else:
        if started is not None:
            if type(headers) is list:
                LAST_START[0] = (status, list(key[1:]), started)
            return started
        cache = True
    try:
        code = _STATUS_CODES.get(status)
    except TypeError:  # unhashable: not a str either
        code = None
    if code is None:
        if type(status) is not str:
            raise TypeError(f"wsgi status must be a str, got {type(status).__name__}")
        if len(status) < 3 or not status[:3].isdigit() or (len(status) > 3 and status[3] != " "):
            raise ValueError(f"invalid wsgi status {status[:40]!r} (expected e.g. '200 OK')")
        code = int(status[:3])
        if len(_STATUS_CODES) < _MAX_CACHED_NAMES:
            _STATUS_CODES[status] = code
    out: list[tuple[bytes, bytes]] = []
    length: int | None = None
    for pair in key[1:]:
        try:
            entry = _START_PAIRS.get(pair)
        except TypeError:  # a list, not a tuple
            entry = None
        if entry is None:
            entry = _encode_pair(pair)
        out.append(entry[0])
        if entry[1] is not None:
            length = entry[1]
    started = (code, tuple(out), length)
    if cache:
        if len(_STARTS) >= _MAX_CACHED_STARTS:
            _STARTS.clear()
        _STARTS[key] = started
        if type(headers) is list:
            LAST_START[0] = (status, list(key[1:]), started)
    return started


def _encode_pair(pair: tuple[str, str]) -> tuple[tuple[bytes, bytes], int | None]:
    name, value = pair
    if type(name) is not str:
        raise TypeError(f"wsgi header name must be a str, got {name!r:.40}")
    if type(value) is not str:
        raise TypeError(f"wsgi header {name!r} value must be a str, got {value!r:.40}")
    encoded = value.encode("latin-1")
    length = None
    if name.lower() == "content-length":
        stripped = encoded.strip()
        if stripped.isdigit():
            length = int(stripped)
    entry = ((name.encode("latin-1"), encoded), length)
    if type(pair) is tuple:
        if len(_START_PAIRS) >= _MAX_CACHED_PAIRS:
            _START_PAIRS.clear()
        _START_PAIRS[pair] = entry
    return entry
