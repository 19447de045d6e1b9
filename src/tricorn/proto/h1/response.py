"""HTTP/1.1 response pieces: status lines, the caches of checked header names and pairs,
:func:`error_response`, the date header cache and :data:`CONTINUE_RESPONSE`."""

from __future__ import annotations

import re
from typing import Final

from tricorn.errors import LocalProtocolError
from tricorn.proto.h1.head import _CONTENT_LENGTH, says_close
from tricorn.proto.headcache import HeadCache

# ------------------------------------------------------------------------------------------ responses

_REASONS: Final = {
    100: b"Continue", 101: b"Switching Protocols", 102: b"Processing", 103: b"Early Hints",
    200: b"OK", 201: b"Created", 202: b"Accepted", 203: b"Non-Authoritative Information",
    204: b"No Content", 205: b"Reset Content", 206: b"Partial Content", 207: b"Multi-Status",
    208: b"Already Reported", 226: b"IM Used", 300: b"Multiple Choices", 301: b"Moved Permanently",
    302: b"Found", 303: b"See Other", 304: b"Not Modified", 305: b"Use Proxy", 307: b"Temporary Redirect",
    308: b"Permanent Redirect", 400: b"Bad Request", 401: b"Unauthorized", 402: b"Payment Required",
    403: b"Forbidden", 404: b"Not Found", 405: b"Method Not Allowed", 406: b"Not Acceptable",
    407: b"Proxy Authentication Required", 408: b"Request Timeout", 409: b"Conflict", 410: b"Gone",
    411: b"Length Required", 412: b"Precondition Failed", 413: b"Content Too Large",
    414: b"URI Too Long", 415: b"Unsupported Media Type", 416: b"Range Not Satisfiable",
    417: b"Expectation Failed", 418: b"I'm a teapot", 421: b"Misdirected Request",
    422: b"Unprocessable Content", 423: b"Locked", 424: b"Failed Dependency", 425: b"Too Early",
    426: b"Upgrade Required", 428: b"Precondition Required", 429: b"Too Many Requests",
    431: b"Request Header Fields Too Large", 451: b"Unavailable For Legal Reasons",
    500: b"Internal Server Error", 501: b"Not Implemented", 502: b"Bad Gateway",
    503: b"Service Unavailable", 504: b"Gateway Timeout", 505: b"HTTP Version Not Supported",
    506: b"Variant Also Negotiates", 507: b"Insufficient Storage", 508: b"Loop Detected",
    510: b"Not Extended", 511: b"Network Authentication Required",
}  # fmt: skip

# Status lines are built once (hot path: bench "hello").
_STATUS_LINES: Final = {code: b"HTTP/1.1 %d %s\r\n" % (code, reason) for code, reason in _REASONS.items()}
_BAD_NAME = re.compile(rb"[^!#$%&'*+.^_`|~0-9A-Za-z-]").search
_SPECIAL: Final = {b"content-length": 1, b"transfer-encoding": 2, b"connection": 3, b"server": 4, b"date": 5}
# Response header names already validated, with their kind (0: ordinary, else a _SPECIAL value). Apps
# repeat a handful of names, so one dict lookup replaces a regex and a lower() per header (bench "hello").
_NAME_KINDS: dict[bytes, int] = {}


def _name_kind(name: bytes) -> int:
    if not name or _BAD_NAME(name):
        raise LocalProtocolError(f"invalid response header name {name[:64]!r}")
    kind = _SPECIAL.get(name.lower(), 0)
    if type(name) is bytes and len(_NAME_KINDS) < 1024:
        _NAME_KINDS[name] = kind
    return kind


_BAD_RESPONSE_VALUE = re.compile(rb"[\x00\r\n]").search

# Response header pairs already checked and serialised: (name, value) -> (kind, line). Apps send the same
# few pairs response after response (bench "hello": one lookup instead of a check and a join per pair).
# Emptied when full, as values vary (Set-Cookie, Content-Length).
_PAIR_LINES: dict[tuple[bytes, bytes], tuple[int, bytes]] = {}
_MAX_CACHED_PAIRS: Final = 4096


def _pair_line(pair: tuple[bytes, bytes]) -> tuple[int, bytes]:
    """Check one response header pair; return its kind and its line. TypeError/ValueError for what is
    not a pair of bytes, LocalProtocolError for a bad name or a CR, LF or NUL in the value (no response
    splitting)."""
    name, value = pair
    kind = _NAME_KINDS.get(name)
    if kind is None:
        kind = _name_kind(name)
    if _BAD_RESPONSE_VALUE(value):
        raise LocalProtocolError(f"invalid byte (cr, lf or nul) in response header {name!r}")
    if kind == 1:  # content-length: a valid value, written in a line of our own
        value = value.strip()
        if not _CONTENT_LENGTH.match(value):
            raise LocalProtocolError(f"invalid content-length {value[:32]!r}")
        entry = (1, b"content-length: %s\r\n" % value)
    else:
        entry = (kind, b"".join((name, b": ", value, b"\r\n")))
    if type(pair) is tuple and type(name) is bytes and type(value) is bytes:
        if len(_PAIR_LINES) >= _MAX_CACHED_PAIRS:
            _PAIR_LINES.clear()
        _PAIR_LINES[pair] = entry
    return entry


# What a response's header list says, checked and serialised once per distinct list (proto/headcache.py):
# the app's lines (content-length and transfer-encoding taken out, as the framing is ours) with the server
# line unless the app sent its own, whether the app sent a date, the content-length (None: none) and its
# line, and whether the app asked for the connection to close. Forgotten when the server's own headers
# change (set_default_headers).
HeadFields = tuple[bytes, bool, int | None, bytes, bool]
_MAX_CACHED_HEADS: Final = 512


def head_fields(headers: tuple[object, ...]) -> HeadFields:
    """Check and serialise a response's header pairs (see ``HeadFields``). LocalProtocolError for
    anything that is not a pair of bytes, a bad name, a CR, LF or NUL in a value (no response splitting)
    or a second content-length."""
    out: list[bytes] = []
    length: int | None = None
    length_line = b""
    close = has_server = has_date = False
    try:
        for pair in headers:
            try:
                entry = _PAIR_LINES.get(pair)  # type: ignore[call-overload]
            except TypeError:  # a list, not a tuple (ASGI allows any two-item iterable)
                entry = None
            if entry is None:
                entry = _pair_line(pair)  # type: ignore[arg-type]
            kind, line = entry
            if kind:
                if kind == 1:  # content-length (its value checked, its line ours)
                    if length is not None:
                        raise LocalProtocolError("duplicate content-length in response")
                    length = int(pair[1])  # type: ignore[index]
                    length_line = line
                    continue
                if kind == 2:  # transfer-encoding: framing is ours to choose
                    continue
                if kind == 3:  # connection
                    if says_close(pair[1].lower()):  # type: ignore[index]
                        close = True
                    continue
                if kind == 4:
                    has_server = True
                else:
                    has_date = True
            out.append(line)
    except (TypeError, ValueError, AttributeError):
        raise LocalProtocolError(f"response headers must be pairs of bytes, got {headers!r:.80}") from None
    if not has_server:
        out.append(_server_line[0])
    return (b"".join(out), has_date, length, length_line, close)


HEADS: HeadCache[HeadFields] = HeadCache(head_fields, _MAX_CACHED_HEADS)


CONTINUE_RESPONSE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"


def status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        if type(status) is not int or not 100 <= status <= 999:
            raise LocalProtocolError(f"invalid status code {status!r}")
        line = b"HTTP/1.1 %d \r\n" % status
    return line


def error_response(status: int, message: str = "") -> bytes:
    """A complete close-delimited error response with a plain-text body (the message, never a traceback)."""
    reason = _REASONS.get(status, b"Error")
    body = (message or reason.decode()).encode("utf-8", "replace") + b"\n"
    return b"".join(
        (
            status_line(status),
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: %d\r\n" % len(body),
            _server_line[0],
            date_header(),
            b"connection: close\r\n\r\n",
            body,
        )
    )


# The date header is refreshed by the shell once a second (hot path: formatting a date per request costs).
_date_header = [b"date: Thu, 01 Jan 1970 00:00:00 GMT\r\n"]
# The server's own headers, set once per process by set_default_headers (--server-header, --date-header,
# --header): the line sent when the app sends no server header, whether to send a date, and the lines
# sent with every response (uvicorn's --header: the app's own headers do not replace them), as lines
# for HTTP/1.1 and as pairs for HTTP/2.
_server_line = [b"server: tricorn\r\n"]
_send_date = [True]
_extra_lines = [b""]
SERVER_PAIR: list[tuple[bytes, bytes] | None] = [(b"server", b"tricorn")]
EXTRA_PAIRS: list[tuple[tuple[bytes, bytes], ...]] = [()]


# With HTTP/3 served (--quic-bind), Alt-Svc (bound once, at start) rides with the extra lines: nothing
# more per response.
_user_extra: list[tuple[tuple[bytes, bytes], ...]] = [()]
_alt_svc: list[tuple[bytes, bytes] | None] = [None]


def _apply_extra() -> None:
    alt_svc = _alt_svc[0]
    pairs = _user_extra[0] + ((alt_svc,) if alt_svc is not None else ())
    EXTRA_PAIRS[0] = pairs
    _extra_lines[0] = b"".join(b"%s: %s\r\n" % pair for pair in pairs)


def set_alt_svc(value: bytes) -> None:
    """Advertise ``value`` (``h3=":443"; ma=86400``) in every response over TCP; b"" advertises nothing."""
    _alt_svc[0] = (b"alt-svc", value) if value else None
    _apply_extra()


def set_default_headers(server: bool, date: bool, extra: list[tuple[bytes, bytes]]) -> None:
    """Set the headers the server adds to responses: ``server: tricorn`` (unless ``server`` is false or
    ``extra`` has a server header, which takes its place), ``date`` (unless ``date`` is false), and the
    ``extra`` pairs (lowercase names), with every response."""
    own = [(name, value) for name, value in extra if name == b"server"]
    others = tuple((name, value) for name, value in extra if name != b"server")
    server_pair = own[0] if own else ((b"server", b"tricorn") if server else None)
    _server_line[0] = b"%s: %s\r\n" % server_pair if server_pair else b""
    HEADS.clear()  # (their lines hold the server line)
    SERVER_PAIR[0] = server_pair
    _user_extra[0] = others
    _apply_extra()
    _send_date[0] = date
    if not date:
        _date_header[0] = b""


def set_date(value: bytes) -> None:
    if _send_date[0]:
        _date_header[0] = b"date: %s\r\n" % value


def date_header() -> bytes:
    return _date_header[0]
