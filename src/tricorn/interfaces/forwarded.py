"""Trusted proxy headers, applied: the one place a request's view of its client, scheme and Host changes.

A connection whose peer is in ``--forwarded-allow-ips`` carries the allow list as its ``proxy_trust``
(decided once, when the connection is made; None otherwise, and then nothing here runs). For each of its
requests the shell calls :func:`proxied_scope` on the ASGI scope it built (HTTP or WebSocket, over any
protocol), and the WSGI adapter calls :func:`forwarded` once and :func:`apply_environ`. The parsing is
:func:`tricorn.proto.forwarded.resolve`'s; a malformed value leaves the request as the socket gave it,
with one debug line.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

from tricorn.logs import escape_for_log, peer_for_log
from tricorn.proto.forwarded import AllowList, Forwarded, ForwardedError, host_name, resolve

if TYPE_CHECKING:
    from tricorn.proto.forwarded import Headers

__all__ = ["apply_environ", "apply_scope", "forwarded", "proxied_scope"]

error_log = logging.getLogger("tricorn.error")

_HTTP_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
_WS_SCHEMES = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}


def forwarded(headers: Headers, peer: tuple[str, int] | None, trust: AllowList) -> Forwarded | None:
    """What a trusted peer's proxy headers say about the request, or None to leave it as it is (no proxy
    header, or a malformed one: then one debug line says why)."""
    try:
        return resolve(headers, peer, trust)
    except ForwardedError as exc:
        error_log.debug("%s proxy headers ignored: %s", peer_for_log(peer), escape_for_log(str(exc)))
        return None


def apply_scope(scope: MutableMapping[str, Any], result: Forwarded) -> None:
    """Give an ASGI ``http`` or ``websocket`` scope the client, scheme and Host of ``result``."""
    scope["client"] = result.client
    if result.scheme is not None:
        schemes = _WS_SCHEMES if scope["type"] == "websocket" else _HTTP_SCHEMES
        scope["scheme"] = schemes[result.scheme]
    host = result.host
    if host is not None:
        headers = [(n, host) if n == b"host" else (n, v) for n, v in scope["headers"]]
        if not any(n == b"host" for n, _ in headers):
            headers.append((b"host", host))
        scope["headers"] = headers


def proxied_scope(scope: Any, trust: AllowList) -> None:
    """The hookup for an ASGI scope: resolve its proxy headers and apply them (see the module docstring).
    :func:`~tricorn.interfaces.asgi.build_scope` calls it only for a request that carries one."""
    result = forwarded(scope["headers"], scope["client"], trust)
    if result is not None:
        apply_scope(scope, result)


def apply_environ(environ: dict[str, Any], result: Forwarded) -> None:
    """Give a WSGI environ the client, scheme and Host of ``result``: ``REMOTE_ADDR``/``REMOTE_PORT``,
    ``wsgi.url_scheme`` (and ``HTTPS``), ``HTTP_HOST``, ``SERVER_NAME`` and ``SERVER_PORT``."""
    client = result.client
    environ["REMOTE_ADDR"] = client[0] if client is not None else ""
    environ["REMOTE_PORT"] = str(client[1]) if client is not None else ""
    scheme = environ["wsgi.url_scheme"]
    if result.scheme is not None:
        scheme = environ["wsgi.url_scheme"] = _HTTP_SCHEMES[result.scheme]
        if scheme == "https":
            environ["HTTPS"] = "on"
        else:
            environ.pop("HTTPS", None)
    if result.host is not None:
        host = result.host.decode("latin-1")
        environ["HTTP_HOST"] = host
        name = host_name(host)
        port = host[len(name) + 1 :]
        environ["SERVER_NAME"] = name.strip("[]") if name.startswith("[") else name
        environ["SERVER_PORT"] = port or ("443" if scheme == "https" else "80")
