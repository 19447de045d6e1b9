"""HTTP/2 request and response heads (RFC 9113 §8), on top of the connection core's framing.

:mod:`tricorn.proto.h2conn` is the sans-io HTTP/2 core: frames, HPACK, stream states, flow-control
windows, and the field checks of RFC 9113 §8.2 and §8.3 (lowercase names, no connection-specific fields,
no CR, LF or NUL and no surrounding whitespace in values, pseudo-header rules), which it applies to every
request head before we see it. What it leaves to the server lives here, as plain functions:

- :func:`request_from_headers` turns a decoded request head into the same :class:`~tricorn.proto.h1.Request`
  the HTTP/1.1 core produces, with the HTTP semantics both protocols share: a known method (501), a target
  of visible ASCII within ``--limit-request-line`` (414), at most ``--limit-request-fields`` fields of
  ``--limit-request-field-size`` (431), a valid authority, a valid Content-Length within the body limit
  (413), and the extended CONNECT of RFC 8441 for WebSocket.
- :func:`response_headers` validates an application's response head for HTTP/2: the connection-specific
  fields of RFC 9113 §8.2.2 are dropped rather than sent, ``server`` and ``date`` are added.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from tricorn.errors import LocalProtocolError, RemoteProtocolError
from tricorn.proto.forwarded import NAMES as PROXY_NAMES
from tricorn.proto.h1 import KNOWN_METHODS, H1Limits, Request, date_header
from tricorn.proto.h1.events import ProxyFreeRequest
from tricorn.proto.h1.head import _BAD_TARGET, _CONTENT_LENGTH, _HOST
from tricorn.proto.h1.response import EXTRA_PAIRS, SERVER_PAIR
from tricorn.proto.headcache import HeadCache

# RFC 9113 §8.2.2: connection-specific fields MUST NOT be sent in HTTP/2; an app written for HTTP/1.1 sends
# them anyway (Connection: close, Transfer-Encoding: chunked), so they are dropped, as nginx and hypercorn do.
_CONNECTION_SPECIFIC: Final = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade")
)
_BAD_NAME = re.compile(rb"[^!#$%&'*+.^_`|~0-9a-z-]").search
_BAD_VALUE = re.compile(rb"[\x00\r\n]").search
_STATUS_BYTES: Final = {code: b"%d" % code for code in range(100, 600)}


def request_from_headers(
    headers: Iterable[tuple[bytes, bytes]],
    limits: H1Limits,
    connect_protocols: frozenset[bytes],
    http_version: str = "2",
) -> Request:
    """The request a decoded HTTP/2 head stands for (the h2 core holds the body to its Content-Length).
    HTTP/3 heads (RFC 9114 §4.3) follow the same rules and come here too, with ``http_version`` "3".

    ``connect_protocols`` are the ``:protocol`` values of an extended CONNECT (RFC 8441) this server takes
    (``websocket`` for an ASGI app); their request gets ``upgrade`` set to the protocol. Raises
    RemoteProtocolError with the status to answer.
    """
    method = scheme = path = authority = protocol = None
    fields: list[tuple[bytes, bytes]] = []
    cookies: list[bytes] = []
    host: bytes | None = None
    content_length: bytes | None = None
    expect = False
    proxied = False  # a proxy's field (X-Forwarded-For, Forwarded...): else the scope need not look for one
    count = 0
    field_size = limits.field_size
    for name, value in headers:
        if name[:1] == b":":
            if name == b":method":
                method = value
            elif name == b":path":
                path = value
            elif name == b":authority":
                authority = value
            elif name == b":scheme":
                scheme = value
            elif name == b":protocol":
                protocol = value
            continue
        count += 1
        if len(name) + len(value) > field_size:
            raise RemoteProtocolError(f"header field {name[:64]!r} too large", status=431)
        if name == b"cookie":
            # RFC 9113 §8.2.3: cookie crumbs are joined with "; " before reaching an HTTP/1.1-minded app.
            cookies.append(value)
            continue
        if name == b"host":
            host = value
        elif name == b"expect":
            expect = value.lower() == b"100-continue"
        elif name == b"content-length":
            if content_length is not None and value != content_length:
                raise RemoteProtocolError("conflicting content-length")
            content_length = value
            if not _CONTENT_LENGTH.match(value):
                raise RemoteProtocolError(f"invalid content-length {value[:32]!r}")
        elif name in PROXY_NAMES:
            proxied = True
        fields.append((name, value))
    if count > limits.fields:
        raise RemoteProtocolError(f"more than {limits.fields} header fields", status=431)
    if cookies:
        fields.append((b"cookie", b"; ".join(cookies)))
    if method is None:
        raise RemoteProtocolError("missing :method")
    if method not in KNOWN_METHODS and method != b"CONNECT":
        raise RemoteProtocolError(f"method {method[:32].decode('latin-1')!r} not implemented", status=501)
    upgrade = None
    if method == b"CONNECT":
        # RFC 8441 §4: an extended CONNECT carries :protocol, :scheme and :path; a plain CONNECT (a proxy
        # tunnel) is not something an application server offers.
        if protocol is None or protocol.lower() not in connect_protocols:
            raise RemoteProtocolError("method 'CONNECT' not implemented", status=501)
        upgrade = protocol.lower()
    elif protocol is not None:
        raise RemoteProtocolError(":protocol without connect")  # RFC 8441 §4
    if scheme is None or path is None:
        # RFC 9113 §8.3.1: all HTTP/2 requests MUST include exactly one valid value for :method, :scheme
        # and :path, unless they are CONNECT requests (RFC 8441 extends CONNECT with both).
        raise RemoteProtocolError("missing :scheme or :path")
    if len(path) > limits.request_line:
        raise RemoteProtocolError("request target too long", status=414)
    if not path or _BAD_TARGET(path) or (path[0] != 0x2F and not (path == b"*" and method == b"OPTIONS")):
        raise RemoteProtocolError(f"invalid request target {path[:64]!r}")
    if authority is not None:
        if not _HOST.match(authority):
            raise RemoteProtocolError(f"invalid authority {authority[:64]!r}")
        if host is None:
            # ASGI and WSGI apps read the Host header; an HTTP/2 client sends :authority instead.
            fields.append((b"host", authority))
    elif host is not None and not _HOST.match(host):
        raise RemoteProtocolError(f"invalid host header {host[:64]!r}")
    if content_length is not None and limits.body is not None and int(content_length) > limits.body:
        raise RemoteProtocolError("request body too large", status=413)
    target, _, _ = path.partition(b"#")
    raw_path, _, query = target.partition(b"?")
    kind = Request if proxied else ProxyFreeRequest
    return kind(method, path, http_version, fields, raw_path, query, authority, True, expect, upgrade)


def trailer_fields(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """An application's trailer fields for HTTP/2 (RFC 9113 §8.1: no pseudo-header fields; the fields
    that say how a message is framed or routed have no place after it)."""
    fields = response_headers(200, headers)
    return [(n, v) for n, v in fields if n[:1] != b":" and n not in _NOT_TRAILERS]


_NOT_TRAILERS: Final = frozenset((b"content-length", b"server", b"date", b"host", b"content-type", b"te"))


def response_headers(status: int, headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """An application's response head as HTTP/2 fields: ``:status`` first, names checked lowercase,
    connection-specific fields dropped, ``server`` and ``date`` added when missing. Raises
    LocalProtocolError for what cannot be sent."""
    return response_head(status, headers)[0]


# What an application's header list comes to as HTTP/2 fields, checked once per distinct list (bench h2:
# apps send the same list, or an equal one, response after response): its fields, whether it has its own
# server and date fields, and the Content-Length it declares (None: none, or not a number). Keyed by the
# list as a tuple, when every pair is a tuple of two bytes objects; emptied when full (content-length
# values vary). The server's own fields (server, date, --header) are added per response, not kept here.
HeadFields = tuple[list[tuple[bytes, bytes]], bool, bool, int | None]
_MAX_CACHED_HEADS: Final = 512
# The date field, made from the HTTP/1.1 date line once a second: (that line, its field).
_date_field: list[tuple[bytes, tuple[bytes, bytes]]] = [(b"", (b"date", b""))]


def response_head(
    status: int, headers: Iterable[tuple[bytes, bytes]]
) -> tuple[list[tuple[bytes, bytes]], int | None]:
    """:func:`response_headers`, and the Content-Length the head declares (None: none, or not a number)."""
    code = _STATUS_BYTES.get(status) if type(status) is int else None
    if code is None:
        raise LocalProtocolError(f"invalid status code {status!r}")
    if status == 101:
        raise LocalProtocolError("101 is not a response an application may send")
    fields, has_server, has_date, length = _HEADS.find(headers)
    out = [(b":status", code), *fields]
    if not has_server:
        server = SERVER_PAIR[0]
        if server is not None:
            out.append(server)
    if not has_date:
        date = date_header()  # (empty when --date-header is off)
        if date:
            line, field = _date_field[0]
            if line is not date:
                field = (b"date", date[6:-2])
                _date_field[0] = (date, field)
            out.append(field)
    extra = EXTRA_PAIRS[0]
    if extra:
        out.extend(extra)
    return out, length


def _head_fields(headers: tuple[object, ...]) -> HeadFields:
    """Check an application's header pairs for HTTP/2 (see ``HeadFields``). LocalProtocolError for what
    cannot be sent."""
    out: list[tuple[bytes, bytes]] = []
    has_server = has_date = False
    length: int | None = None
    seen_length = False
    name: bytes
    value: bytes
    try:
        for pair in headers:
            name, value = pair  # type: ignore[misc]  # (a pair of anything: checked here)
            if type(pair) is not tuple or type(name) is not bytes or type(value) is not bytes:
                name, value = bytes(name), bytes(value)
            name = name.lower()  # RFC 9113 §8.2.1: HTTP/2 field names are lowercase
            if not name or _BAD_NAME(name):
                raise LocalProtocolError(f"invalid response header name {name[:64]!r}")
            if _BAD_VALUE(value):
                raise LocalProtocolError(f"invalid byte (cr, lf or nul) in response header {name!r}")
            if name in _CONNECTION_SPECIFIC:
                continue
            value = value.strip(b" \t")
            if name == b"server":
                has_server = True
            elif name == b"date":
                has_date = True
            elif name == b"content-length" and not seen_length:
                seen_length = True  # (the first one counts)
                length = int(value) if value.isdigit() else None
            out.append((name, value))
    except (TypeError, ValueError):
        raise LocalProtocolError(f"response headers must be pairs of bytes, got {headers!r:.80}") from None
    return (out, has_server, has_date, length)


_HEADS: HeadCache[HeadFields] = HeadCache(_head_fields, _MAX_CACHED_HEADS)
