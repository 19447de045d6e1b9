"""CGI/1.1 (RFC 3875), sans-io: a script's meta-variables, and the parser of its output.

Theory of operation. A request for a script becomes an environment built from scratch by
:func:`meta_variables` (RFC 3875 §4.1: nothing of the server's own environment, no ``Proxy`` field, no field
that carries framing or credentials). The script answers on its standard output with a header block and a
body; :class:`OutputParser` is fed those bytes as they come and, once the block is whole, says what the
script asked for (:class:`ScriptResponse`): a *document* (§6.2.1), a *local redirect* the server serves
itself (§6.2.2), or a *client redirect* (§6.2.3, §6.2.4). Every byte after the block is body, passed on
untouched. A block that breaks the rules is a :class:`ScriptOutputError` (502: the gateway got an invalid
answer from upstream, RFC 9110 §15.6.3).

A script named ``nph-*`` (non-parsed header, §5) writes an HTTP response itself. tricorn frames every
response for the protocol in use (an HTTP/2 response has no status line), so it reads that response's
status line and fields (the same checks) and forwards them and the body as the script wrote them, with no
CGI meaning given to any field.

Nothing here reads a clock, a file or a socket.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from tricorn.errors import ProtocolError

__all__ = [
    "MAX_HEADER_BLOCK",
    "MAX_HEADER_FIELDS",
    "OutputParser",
    "ResponseKind",
    "ScriptOutputError",
    "ScriptResponse",
    "meta_variables",
]

# The whole header block a script may write before its body. Apache reads each line into 8 KiB
# (HUGE_STRING_LEN) with no bound on the count; nginx's fastcgi_buffer_size (4-8 KiB) must hold the whole
# block. 64 KiB and 100 fields (the request side's gunicorn limit) leave room for a large Set-Cookie set.
MAX_HEADER_BLOCK = 65536
MAX_HEADER_FIELDS = 100

# RFC 9110 §5.6.2 token, and a field value without CTLs other than HTAB (§5.5).
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_STATUS = re.compile(rb"([1-5][0-9][0-9])(?:[ \t].*)?")
_NPH_STATUS_LINE = re.compile(rb"HTTP/[0-9]\.[0-9] ([1-5][0-9][0-9])(?: .*)?")
_ABSOLUTE_URI = re.compile(rb"[A-Za-z][A-Za-z0-9+.\-]*:.+")
# RFC 3875 §6.3.4: a script "MUST NOT return any header fields that relate to client-side communication
# issues and could affect the server's ability to send the response to the client"; the server frames the
# response and owns the connection, so these are dropped (as Apache and lighttpd do).
_DROPPED = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"te", b"trailer", b"upgrade")
)


class ScriptOutputError(ProtocolError):
    """The script's output is not a valid CGI (or NPH) response: answered 502."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 502)


class ResponseKind(Enum):
    DOCUMENT = 0  # §6.2.1 (and a client redirect with a document, §6.2.4): sent as given
    LOCAL_REDIRECT = 1  # §6.2.2: the server serves `location` itself
    CLIENT_REDIRECT = 2  # §6.2.3: a 302 to an absolute URI (or the script's own 3xx)


@dataclass(slots=True)
class ScriptResponse:
    kind: ResponseKind
    status: int
    headers: list[tuple[bytes, bytes]]  # lower-cased names, in the script's order; no CGI fields
    location: bytes = b""  # the local redirect's target (path and query)


class OutputParser:
    """Feed a script's standard output with :meth:`feed` until it returns a :class:`ScriptResponse`; the
    bytes after the header block are then in :attr:`body`. :meth:`feed` raises
    :class:`ScriptOutputError` for a broken block; call :meth:`eof` if the output ends before the block
    does. Lines end in LF or CRLF (§6.3: servers accept both, as Apache and lighttpd do)."""

    __slots__ = ("_buffer", "_nph", "body", "response")

    def __init__(self, nph: bool = False) -> None:
        self._buffer = b""
        self._nph = nph
        self.body = b""
        self.response: ScriptResponse | None = None

    def feed(self, data: bytes) -> ScriptResponse | None:
        buffer = self._buffer + data if self._buffer else data
        end, skip = _block_end(buffer)
        if end < 0:
            if len(buffer) > MAX_HEADER_BLOCK:
                raise ScriptOutputError(f"header block longer than {MAX_HEADER_BLOCK} bytes")
            self._buffer = buffer
            return None
        if end > MAX_HEADER_BLOCK:
            raise ScriptOutputError(f"header block longer than {MAX_HEADER_BLOCK} bytes")
        self._buffer = b""
        self.body = buffer[end + skip :]
        lines = buffer[:end].split(b"\n")
        response = _parse_nph(lines) if self._nph else _parse_cgi(lines)
        self.response = response
        return response

    def eof(self) -> None:
        """The output ended; raise unless the header block was complete."""
        if self.response is None:
            if not self._buffer:
                raise ScriptOutputError("no output")
            raise ScriptOutputError("output ended inside the header block")


def _block_end(buffer: bytes) -> tuple[int, int]:
    """Where the header block ends (before its empty line) and the length of that line break, or -1."""
    if buffer[:1] == b"\n":
        return 0, 1
    if buffer[:2] == b"\r\n":
        return 0, 2
    lf = buffer.find(b"\n\n")
    crlf = buffer.find(b"\n\r\n")
    if lf < 0 and crlf < 0:
        return -1, 0
    if crlf < 0 or (0 <= lf < crlf):
        return lf, 2
    return crlf, 3


def _fields(lines: Iterable[bytes]) -> list[tuple[bytes, bytes]]:
    """The block's fields, names lower-cased: a Content-Length checked, the framing fields
    (:data:`_DROPPED`) left out, as the server frames the response itself."""
    fields = []
    count = 0
    for raw in lines:
        line = raw[:-1] if raw[-1:] == b"\r" else raw
        if line[:1] in (b" ", b"\t"):
            raise ScriptOutputError("folded header line (obs-fold)")
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(name):
            raise ScriptOutputError(f"malformed header line {line[:80]!r}")
        value = value.strip(b" \t")
        if _BAD_VALUE.search(value):
            raise ScriptOutputError(f"control character in header {name.decode('ascii')!r}")
        name = name.lower()
        count += 1
        if name == b"content-length":
            _check_length(value)
        elif name in _DROPPED:
            continue
        fields.append((name, value))
    if count > MAX_HEADER_FIELDS:
        raise ScriptOutputError(f"more than {MAX_HEADER_FIELDS} header fields")
    return fields


def _check_length(value: bytes) -> None:
    if not value.isdigit() or len(value) > 18:
        raise ScriptOutputError(f"invalid content-length {value[:40]!r}")


def _parse_cgi(lines: list[bytes]) -> ScriptResponse:
    status: int | None = None
    location: bytes | None = None
    has_type = False
    headers: list[tuple[bytes, bytes]] = []
    for name, value in _fields(lines if lines != [b""] else []):
        if name == b"status":
            # §6.3.3: Status = "Status:" status-code SP reason-phrase NL (a missing reason is tolerated,
            # as by Apache). The reason phrase is not forwarded: HTTP/2 has none, HTTP/1.1 gets the
            # standard one.
            if status is not None:
                raise ScriptOutputError("more than one status field")
            match = _STATUS.fullmatch(value)
            if match is None:
                raise ScriptOutputError(f"invalid status {value[:40]!r}")
            status = int(match.group(1))
            if status < 200:
                raise ScriptOutputError(f"status {status} is not a final response")
            continue
        if name == b"location":
            if location is not None:
                raise ScriptOutputError("more than one location field")
            location = value
            continue
        if name == b"content-type":
            if has_type:
                raise ScriptOutputError("more than one content-type field")
            has_type = True
        headers.append((name, value))
    if location is not None:
        if location[:1] == b"/" and location[:2] != b"//":
            if status is None or status == 200:
                # §6.2.2 local-redir-response = local-Location NL: the script hands the request to
                # another path of this server. Other fields are not part of that grammar (Apache, too,
                # serves the target whatever else the block held).
                return ScriptResponse(ResponseKind.LOCAL_REDIRECT, 200, [], location)
            # A 3xx (or other) status with a local path: a redirect of the client to a relative
            # reference (RFC 9110 §10.2.2 allows one), as Apache does.
            headers.append((b"location", location))
            return ScriptResponse(ResponseKind.CLIENT_REDIRECT, status, headers)
        if not _ABSOLUTE_URI.fullmatch(location):
            raise ScriptOutputError(
                f"location is neither a local path nor an absolute URI: {location[:80]!r}"
            )
        # §6.2.3 client-redir-response: the server answers 302 Found; §6.2.4: with a document, the
        # script's own status (which should be a 3xx) and content-type stand.
        headers.append((b"location", location))
        return ScriptResponse(ResponseKind.CLIENT_REDIRECT, status or 302, headers)
    if not has_type and status not in (204, 304):
        # §6.2.1 document-response = Content-Type [Status] *other-field NL response-body; a 204 or 304
        # has no body to type.
        raise ScriptOutputError("no content-type (and no location) in the header block")
    return ScriptResponse(ResponseKind.DOCUMENT, status or 200, headers)


def _parse_nph(lines: list[bytes]) -> ScriptResponse:
    first = lines[0][:-1] if lines[0][-1:] == b"\r" else lines[0]
    match = _NPH_STATUS_LINE.fullmatch(first)
    if match is None:
        raise ScriptOutputError(f"nph script: invalid status line {first[:80]!r}")
    status = int(match.group(1))
    if status < 200:
        raise ScriptOutputError(f"nph script: status {status} is not a final response")
    return ScriptResponse(ResponseKind.DOCUMENT, status, _fields(lines[1:]))


# -- Meta-variables (RFC 3875 §4.1) -----------------------------------------------------------------------

# §4.1.18: request fields become HTTP_* variables, except those "carrying authentication information,
# such as Authorization" (SHOULD remove), those "available to the script in other meta-variables"
# (Content-Length, Content-Type), and those the server consumed to frame the message. `Proxy` is never
# passed: HTTP_PROXY is read by many HTTP client libraries as their proxy setting (httpoxy,
# CVE-2016-5385).
_NOT_PASSED = frozenset(
    (
        b"authorization",
        b"proxy-authorization",
        b"content-length",
        b"content-type",
        b"proxy",
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"te",
        b"trailer",
        b"upgrade",
        b"http2-settings",
    )
)
# Only names made of letters, digits and hyphens become variables: `X_Forwarded_For` would otherwise
# arrive as the same HTTP_X_FORWARDED_FOR as `X-Forwarded-For` and could shadow what a proxy set (nginx
# ignores such fields by default; Apache 2.4 drops them for CGI).
_PASSABLE_NAME = re.compile(rb"[A-Za-z0-9-]+")
# The PATH a script runs with: the server's own never reaches it.
SCRIPT_PATH = b"/usr/local/bin:/usr/bin:/bin"


def _variable_name(name: bytes) -> bytes | None:
    if name in _NOT_PASSED or not _PASSABLE_NAME.fullmatch(name):
        return None
    return b"HTTP_" + name.upper().replace(b"-", b"_")


def meta_variables(
    *,
    method: str,
    http_version: str,
    scheme: str,
    headers: Iterable[tuple[bytes, bytes]],
    query: bytes,
    script_name: bytes,
    path_info: bytes,
    path_translated: bytes | None,
    server: tuple[str, int | None] | None,
    client: tuple[str, int] | None,
    content_length: int | None,
    server_software: bytes,
) -> dict[bytes, bytes]:
    """The environment of a script, from nothing but the request (RFC 3875 §4.1).

    ``script_name`` and ``path_info`` are already percent-decoded (§4.1.5, §4.1.13); ``query`` is the raw
    query string (§4.1.7). ``content_length`` is the body's length when it has one (§4.1.2: unset
    otherwise).
    """
    env: dict[bytes, bytes] = {
        b"GATEWAY_INTERFACE": b"CGI/1.1",
        b"PATH": SCRIPT_PATH,
        b"REQUEST_METHOD": method.encode("ascii"),
        b"SCRIPT_NAME": script_name,
        b"QUERY_STRING": query,
        b"SERVER_SOFTWARE": server_software,
        # §4.1.16: HTTP-Version = "HTTP" "/" 1*digit "." 1*digit (so HTTP/2 is "HTTP/2.0", as in Apache).
        b"SERVER_PROTOCOL": b"HTTP/"
        + (http_version if "." in http_version else http_version + ".0").encode(),
    }
    # §4.1.5, §4.1.6: PATH_INFO, and PATH_TRANSLATED only when there is a path to translate.
    if path_info:
        env[b"PATH_INFO"] = path_info
        if path_translated is not None:
            env[b"PATH_TRANSLATED"] = path_translated
    else:
        env[b"PATH_INFO"] = b""
    if content_length is not None:
        env[b"CONTENT_LENGTH"] = b"%d" % content_length
    host = b""
    for name, value in headers:
        if name == b"host":
            host = value
        elif name == b"content-type":
            env[b"CONTENT_TYPE"] = value
            continue
        variable = _variable_name(name)
        if variable is None:
            continue
        previous = env.get(variable)
        if previous is None:
            env[variable] = value
        else:  # RFC 9110 §5.3: repeated fields combine with commas (Cookie with "; ", RFC 6265 §5.4)
            env[variable] = previous + (b"; " if name == b"cookie" else b", ") + value
    # §4.1.14: SERVER_NAME is the host the client addressed (its Host field, without the port), else the
    # server's own address.
    if host:
        env[b"SERVER_NAME"] = host[: host.rindex(b":")] if host.rfind(b":") > host.rfind(b"]") else host
    elif server is not None:
        env[b"SERVER_NAME"] = server[0].encode("ascii", "replace")
    else:
        env[b"SERVER_NAME"] = b"localhost"
    env[b"SERVER_PORT"] = b"%d" % (server[1] if server is not None and server[1] is not None else 0)
    if client is not None:
        address = client[0].encode("ascii", "replace")
        env[b"REMOTE_ADDR"] = address
        # §4.1.9: REMOTE_HOST may be the address when the name is not known (no DNS lookup per request).
        env[b"REMOTE_HOST"] = address
        env[b"REMOTE_PORT"] = b"%d" % client[1]
    if scheme == "https":
        env[b"HTTPS"] = b"on"
    env[b"REQUEST_SCHEME"] = scheme.encode("ascii")
    return env
