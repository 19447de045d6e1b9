"""HTTP/1.1 request heads: the regexes and :data:`KNOWN_METHODS`, :func:`check_head` (the shared
validation of field and framing), and the shared head front both parser backends collect heads through."""

from __future__ import annotations

import re
from typing import Final

from tricorn.errors import RemoteProtocolError
from tricorn.proto.h1.events import H1Limits, Headers, Request

# ------------------------------------------------------------------------------------- head validation

# RFC 9110 §5.6.2: token = 1*tchar
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
# RFC 9112 §3.2: request-target is visible ASCII; anything else (controls, space, DEL, non-ASCII) is refused.
_BAD_TARGET = re.compile(rb"[^\x21-\x7e]").search
# RFC 9110 §5.5: field-value = *field-content; CTLs other than HTAB are invalid, CR/LF/NUL MUST be refused.
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]").search
# RFC 9112 §2.2 / §5.2: bare CR, bare LF and obs-fold in a head are refused; RFC 9110 §5.5: so are CTLs
# other than HTAB in field values. The shared head front checks every head with this one expression.
_BAD_HEAD_BYTES = re.compile(rb"\r(?!\n)|(?<!\r)\n|\r\n[ \t]|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]").search
# RFC 9110 §7.2 / RFC 3986 §3.2.2: Host = uri-host [ ":" port ]
_HOST = re.compile(rb"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]*)(:[0-9]*)?\Z")
_ABSOLUTE = re.compile(rb"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)(.*)\Z", re.S)
_CONTENT_LENGTH = re.compile(rb"[0-9]{1,18}\Z")
# RFC 9112 §3: request-line = method SP request-target SP HTTP-version; §2.3: HTTP-version =
# "HTTP/" DIGIT "." DIGIT, case-sensitive (llhttp would also take RTSP/1.0 and ICE/1.0 for 1.0).
_REQUEST_LINE = re.compile(rb"[^ \x00-\x1f\x7f]+ [^ \x00-\x1f\x7f]+ HTTP/([0-9])\.([0-9])\Z").match
_TOKEN_PREFIX = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]*").match
_COMMON_LINE = re.compile(rb"([A-Z-]+) ([^ \r\n]+) HTTP/1\.[01]\r\n").match
_HEAD_CTL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]").search
# RFC 9112 §5.1: field-line = field-name ":" OWS field-value OWS, and no whitespace before the colon.
_FIELD_LINE = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*\Z", re.S).match
# RFC 9112 §7.1.1: chunk-size [ chunk-ext ] CRLF, read exactly as strict llhttp reads it (checked against
# it on every extension of up to 5 bytes over: a ; = DQUOTE backslash SP HTAB 0x80): no whitespace, a name
# of tchars that may be empty unless the line ends there, a value of tchars then maybe a quoted-string.
_CHUNK_LINE = re.compile(
    rb"([0-9A-Fa-f]+)(?:;(?=[^ \r])[!#$%&'*+.^_`|~0-9A-Za-z-]*(?:=[!#$%&'*+.^_`|~0-9A-Za-z-]*"
    rb"(?:\"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*\")?)?)*\Z"
).match
# The chunked framing as _HttptoolsParser._chunk_stop follows it: a size line, its data, the CRLF after
# the data, and after the last chunk the trailer lines up to an empty one (RFC 9112 §7.1).
_CK_SIZE, _CK_DATA, _CK_DATA_END, _CK_TRAILERS = range(4)
_CHUNK_HEX = re.compile(rb"[0-9A-Fa-f]+").match
# RFC 9110 §6.5.1: fields that frame or route a message cannot be trailers; llhttp refuses some of them.
_FORBIDDEN_TRAILERS: Final = frozenset((b"content-length", b"transfer-encoding", b"host"))

# The methods tricorn serves. Any other token method is answered 501 (RFC 9110 §9.1) by both backends
# alike: llhttp also knows CONNECT, SOURCE, PRI and RTSP methods, which the shared head front refuses first.
KNOWN_METHODS: Final = frozenset(
    b"DELETE GET HEAD POST PUT OPTIONS TRACE COPY LOCK MKCOL MOVE PROPFIND PROPPATCH SEARCH UNLOCK BIND "
    b"REBIND UNBIND ACL REPORT MKACTIVITY CHECKOUT MERGE M-SEARCH NOTIFY SUBSCRIBE UNSUBSCRIBE PATCH PURGE "
    b"MKCALENDAR LINK UNLINK QUERY".split()
)


_FRAMING_NAMES: Final = frozenset(
    (b"host", b"content-length", b"transfer-encoding", b"connection", b"upgrade", b"expect")
)


def check_head(
    method: bytes,
    target: bytes,
    version: str,
    headers: Headers,
    limits: H1Limits,
    upgrades: frozenset[bytes],
) -> tuple[Request, int | None, bool]:
    """Validate a parsed request head; return the event, its Content-Length (or None) and chunkedness.

    ``headers`` have lowercased names. Raises RemoteProtocolError with the status to answer.
    """
    if version != "1.1" and version != "1.0":
        if len(version) != 3 or not version.startswith("1.") or not version[2].isdigit():
            # RFC 9110 §15.6.6: 505 for a major version the server does not support.
            raise RemoteProtocolError(f"unsupported http version {version!r}", status=505)
        # RFC 9110 §6.2: a higher minor version than the recipient's SHOULD be processed as the highest
        # minor version it conforms to: HTTP/1.2 to 1.9 are served as HTTP/1.1.
        version = "1.1"
    if method not in KNOWN_METHODS:
        if not _TOKEN.match(method):
            raise RemoteProtocolError(f"invalid method {method[:32]!r}")
        raise RemoteProtocolError(f"method {method.decode('latin-1')!r} not implemented", status=501)
    if len(target) > limits.request_line:
        raise RemoteProtocolError("request target too long", status=414)
    if not target or _BAD_TARGET(target):
        raise RemoteProtocolError(f"invalid request target {target[:64]!r}")
    if len(headers) > limits.fields:
        raise RemoteProtocolError(f"more than {limits.fields} header fields", status=431)

    host: bytes | None = None
    host_count = 0
    content_length: bytes | None = None
    transfer_encoding: list[bytes] | None = None
    connection: bytes = b""
    upgrade: bytes | None = None
    expect = False
    field_size = limits.field_size
    for name, value in headers:
        if len(name) + len(value) > field_size:
            raise RemoteProtocolError(f"header field {name[:64]!r} too large", status=431)
        if name not in _FRAMING_NAMES:
            continue
        if name == b"host":
            host = value
            host_count += 1
        elif name == b"content-length":
            if content_length is not None:
                # RFC 9112 §6.3: duplicate Content-Length values are refused rather than merged.
                raise RemoteProtocolError("duplicate content-length")
            content_length = value
        elif name == b"transfer-encoding":
            if not value:  # a framing field with no coding at all is refused (llhttp does so too)
                raise RemoteProtocolError("empty transfer-encoding")
            if transfer_encoding is None:
                transfer_encoding = []
            transfer_encoding.extend(v.strip().lower() for v in value.split(b","))
        elif name == b"connection":
            connection = value.lower() if not connection else connection + b"," + value.lower()
        elif name == b"upgrade":
            upgrade = value.strip().lower()
        elif name == b"expect":
            expect = value.strip().lower() == b"100-continue"

    # RFC 9112 §3.2: a server MUST respond 400 to an HTTP/1.1 request lacking Host, or with more than one.
    if host_count > 1 or (host_count == 0 and version == "1.1"):
        raise RemoteProtocolError("missing host header" if host_count == 0 else "duplicate host header")
    if host is not None and not _HOST.match(host):
        raise RemoteProtocolError(f"invalid host header {host[:64]!r}")

    # Request-target forms, RFC 9112 §3.2.1-3.2.4.
    authority = None
    first = target[0]
    if first == 0x2F:  # "/": origin-form, the common case
        path, _, query = target.partition(b"?")
        path = path.partition(b"#")[0]
    elif method == b"OPTIONS" and target == b"*":
        path, query = b"*", b""
    else:
        m = _ABSOLUTE.match(target)
        if m is None or m.group(1).lower() not in (b"http", b"https") or not _HOST.match(m.group(2)):
            raise RemoteProtocolError(f"invalid request target {target[:64]!r}")
        authority = m.group(2)
        # RFC 9112 §3.2.2: the origin server MUST ignore the received Host and use the target's authority.
        headers = [(n, v) for n, v in headers if n != b"host"]
        headers.append((b"host", authority))
        rest = m.group(3).partition(b"#")[0] or b"/"
        if rest[0] == 0x3F:  # "?": empty path with a query
            rest = b"/" + rest
        path, _, query = rest.partition(b"?")

    chunked = False
    length: int | None = None
    if transfer_encoding is not None:
        # RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means faulty framing; with Content-Length it is
        # the classic smuggling vector: refuse both.
        if version == "1.0":
            raise RemoteProtocolError("transfer-encoding in an http/1.0 request")
        if content_length is not None:
            raise RemoteProtocolError("both content-length and transfer-encoding")
        if transfer_encoding != [b"chunked"]:
            if transfer_encoding[-1] != b"chunked" or transfer_encoding.count(b"chunked") != 1:
                # RFC 9112 §6.3: chunked not final (or applied twice): 400 and close.
                raise RemoteProtocolError(f"invalid transfer-encoding {b', '.join(transfer_encoding)!r}")
            # RFC 9112 §6.1: a transfer coding the server does not understand: 501.
            raise RemoteProtocolError(
                f"transfer-encoding {b', '.join(transfer_encoding)!r} not implemented", status=501
            )
        chunked = True
    elif content_length is not None:
        # RFC 9112 §6.3 item 5: an invalid Content-Length is an unrecoverable framing error.
        if not _CONTENT_LENGTH.match(content_length):
            raise RemoteProtocolError(f"invalid content-length {content_length[:32]!r}")
        length = int(content_length)
        if limits.body is not None and length > limits.body:
            raise RemoteProtocolError("request body too large", status=413)

    if version == "1.1":
        keep_alive = not says_close(connection)
    else:
        # RFC 9112 §9.3: "close" wins over "keep-alive".
        keep_alive = (
            connection.find(b"keep-alive") >= 0
            and _has_token(connection, b"keep-alive")
            and not says_close(connection)
        )
    # RFC 9110 §7.8: a server MUST ignore Upgrade in an HTTP/1.0 request, and MAY ignore it otherwise: it
    # does for a request with a body (the switch would have to wait for the body's end).
    if upgrade is not None and (
        upgrade not in upgrades
        or version != "1.1"
        or chunked
        or length
        or not _has_token(connection, b"upgrade")
    ):
        if version == "1.1" and b"websocket" in upgrades and _has_token(upgrade, b"websocket"):
            # RFC 6455 §4.2.1: a WebSocket handshake that does not qualify (no "Connection: upgrade",
            # Upgrade not exactly "websocket", a body) is refused with 400, not served as plain HTTP.
            # Only requests that carry an Upgrade header get here.
            raise RemoteProtocolError(
                f"invalid websocket handshake (upgrade {upgrade[:32]!r}, connection {connection[:32]!r})"
            )
        upgrade = None
    if method == b"CONNECT":
        raise RemoteProtocolError("method 'CONNECT' not implemented", status=501)
    request = Request(
        method,
        target,
        version,
        headers,
        path,
        query,
        authority,
        keep_alive,
        expect and version == "1.1",
        upgrade,
    )
    return request, length, chunked


def _has_token(value: bytes, token: bytes) -> bool:
    return any(part.strip() == token for part in value.split(b","))


def says_close(connection: bytes) -> bool:
    """Whether a Connection field's value (lowercased) holds the ``close`` option (RFC 9112 §9.6)."""
    # bytes.find first, not `in`: on 3.11 `bytes in bytes` first tries the needle as an int and formats a
    # TypeError before searching (callgrind, bench "hello").
    return connection.find(b"close") >= 0 and _has_token(connection, b"close")


# ---------------------------------------------------------------------------------- the shared head front
#
# Both backends collect a request head whole before parsing it, and judge it with the functions below
# while it grows and once it is complete. So each limit and each request-line verdict (400, 414, 501, 505)
# is reached the same way by both backends, whatever the split of the input. A head is refused as soon as
# it is sure to be: a field line once it is surely over ``limits.field_size`` (so at most about that much
# of it is held), a head once it holds more than ``limits.fields`` field lines, and none is buffered past
# ``limits.head``. The verdict is the one its first offending byte brings, as if the head had arrived byte
# by byte: ``_HeadBuffer.add`` judges each piece's bytes in order, and a complete head is judged in the
# same order (``_check_head_in_order``) wherever a size limit might refuse it.


def _check_head_start(head: bytes | bytearray, limits: H1Limits) -> None:
    """Judge the request line at the start of ``head`` as far as it has arrived.

    llhttp refuses a method it does not know at its first odd byte, before the space that tells a token
    (501, RFC 9110 §9.1) from garbage (400); the verdict here waits for that space, so it is the same on
    every split of the input.
    """
    method_end = _TOKEN_PREFIX(head).end()  # type: ignore[union-attr]  # '*' always matches
    if method_end > limits.request_line:
        raise RemoteProtocolError("request line too long", status=414)
    if method_end == len(head):
        return
    if head[method_end] != 0x20 or not method_end:
        raise RemoteProtocolError(f"invalid method {bytes(head[: method_end + 1])[:32]!r}")
    method = bytes(head[:method_end])
    if method not in KNOWN_METHODS:
        raise RemoteProtocolError(f"method {method[:32].decode('latin-1')!r} not implemented", status=501)
    line_end = head.find(b"\r\n", method_end)
    if line_end < 0:
        # The target ends at a space; a CR or LF ends it too (bare ones are refused by the caller).
        target_end = len(head)
        for stop in (b" ", b"\r", b"\n"):
            found = head.find(stop, method_end + 1)
            if 0 <= found < target_end:
                target_end = found
        if target_end - method_end - 1 > limits.request_line:
            raise RemoteProtocolError("request target too long", status=414)
        if len(head) - target_end > 10:  # more than " HTTP/1.1\r" before the line ends
            raise RemoteProtocolError(f"invalid request line {bytes(head[:64])!r}")
        return
    target_end = head.find(b" ", method_end + 1, line_end)
    if (line_end if target_end < 0 else target_end) - method_end - 1 > limits.request_line:
        raise RemoteProtocolError("request target too long", status=414)
    m = _REQUEST_LINE(head, 0, line_end)
    if m is None:
        raise RemoteProtocolError(f"invalid request line {bytes(head[: min(line_end, 64)])!r}")
    if m.group(1) != b"1":
        # RFC 9110 §15.6.6: 505 for a major version the server does not support. (A higher minor
        # version of HTTP/1 is served as 1.1: see check_head.)
        version = bytes(head[line_end - 3 : line_end])
        raise RemoteProtocolError(f"unsupported http version {version!r}", status=505)


def _check_full_head(head: bytes, limits: H1Limits, scan_bytes: bool) -> None:
    """Refuse a complete head (ending in CRLFCRLF) for what both backends must refuse alike.

    ``scan_bytes`` False skips the search for bare CR/LF, obs-fold and CTLs, for a parser that refuses
    them itself with the same status (llhttp, strict).
    """
    # Fast path for the common request line; anything else gets the full verdict (bench: 1.6 us -> 0.4 us).
    m = _COMMON_LINE(head)
    if (
        m is None
        or m.group(1) not in KNOWN_METHODS
        or m.end(2) - m.start(2) > limits.request_line
        or m.end(1) > limits.request_line
    ):
        _check_head_start(head, limits)
    size = len(head)
    # A field line can be over field_size only in a head longer than that, and more than `fields` field
    # lines (of 3 bytes at least) only in one longer than 3 * fields: a short head skips the count.
    if (
        size > limits.field_size + 5
        or size > limits.head
        or (size > 3 * limits.fields and head.count(b"\n") > limits.fields + 2)
    ):
        _check_head_in_order(head, limits)
        return
    if not scan_bytes:
        return
    # The same bytes as _BAD_HEAD_BYTES, counted with C scans instead of a regex with lookarounds,
    # which costs 5 us on a 130-byte head (bench "hello").
    crlf = head.count(b"\r\n")
    if (
        head.count(b"\r") != crlf
        or head.count(b"\n") != crlf
        or head.find(b"\r\n ") >= 0
        or head.find(b"\r\n\t") >= 0
        or _HEAD_CTL(head) is not None
    ):
        raise RemoteProtocolError("bare cr, bare lf, obs-fold or control character in request head")


def _bad_byte_at(head: bytes | bytearray, pos: int) -> int:
    """Where the first byte _BAD_HEAD_BYTES refuses in ``head[pos:]`` is known to be bad (an obs-fold at
    its SP or HTAB, a bare CR at the byte after it); ``len(head)`` if none is yet."""
    m = _BAD_HEAD_BYTES(head, pos)
    if m is None:
        return len(head)
    return m.end() - 1 + (m.group() == b"\r")  # a CR at the very end may still get its LF


def _check_field_lines(
    head: bytes | bytearray,
    pos: int,
    stop: int,
    line_start: int,
    line_size: int,
    lines: int,
    limits: H1Limits,
) -> tuple[int, int, int]:
    """Refuse (431) the field lines of ``head[pos:stop]`` at the first byte that makes one of the size
    limits sure to refuse the head; ``head[:stop]`` holds no bad byte, so every LF there ends a line.

    The state resumes and is returned as ``(line_start, line_size, lines)``: where the open line starts,
    its bytes counted so far and the field lines complete before it. Only the bytes of ``head[pos:stop]``
    are read, so a head judged piece by piece costs linear time.
    """
    field_size = limits.field_size
    while True:
        line_end = head.find(b"\n", pos, stop)
        end = stop if line_end < 0 else line_end
        # RFC 9112 §5.1: field-line = field-name ":" OWS field-value OWS; the OWS is in neither name nor
        # value. A line's bytes other than SP, HTAB and CR, less its colon, are a lower bound of the name
        # + value check_head weighs, so no line it would accept is refused here, however padded.
        line_size += (
            end - pos - head.count(b" ", pos, end) - head.count(b"\t", pos, end) - head.count(b"\r", pos, end)
        )
        # A line padded with OWS is bounded too, at twice the field size: its name and value may fill one
        # field size, its padding as much again (gunicorn bounds the whole line by the field size; nginx
        # by its header buffer, 8 KiB). Without it, spaces held a line up to the whole head's bound.
        if line_size > field_size + 1 or end - line_start > 2 * field_size + 2:
            # RFC 6585 §5: 431. The name is read from bytes every split has by now (the line holds at
            # least field_size + 2), so the reason is the same on every split.
            name = bytes(head[line_start : line_start + min(65, field_size + 2)]).partition(b":")[0]
            raise RemoteProtocolError(f"header field {name[:64].lower()!r} too large", status=431)
        if line_end < 0:
            return line_start, line_size, lines
        lines += 1
        if lines > limits.fields:
            # RFC 6585 §5: 431, at the end of the first field line over the limit.
            raise RemoteProtocolError(f"more than {limits.fields} header fields", status=431)
        pos = line_start = line_end + 1
        line_size = 0


def _check_head_in_order(head: bytes, limits: H1Limits) -> None:
    """Judge a complete head whose request line passed for bad bytes and every size limit, with the
    refusal its first offending byte brings: the verdict ``_HeadBuffer.add`` reaches on any split."""
    start = head.find(b"\r\n") + 2  # the request line passed: it holds no CR or LF
    bad = _bad_byte_at(head, 0)  # _COMMON_LINE lets a CTL through in a target
    stop = min(bad, limits.head, len(head) - 2)  # the last CRLF ends the head, not a field line
    if stop > start:
        _check_field_lines(head, start, stop, start, 0, 0, limits)
    if bad < len(head) and bad < limits.head:
        raise RemoteProtocolError("bare cr, bare lf, obs-fold or control character in request head")
    if len(head) > limits.head:
        raise RemoteProtocolError("request head too large", status=431)


class _HeadBuffer:
    """Collects one request head; refuses it as soon as it is sure to be refused.

    Bytes are appended and only new ones scanned, so a head trickled in byte by byte costs linear time.
    """

    __slots__ = (
        "data",
        "field_lines",
        "limits",
        "line_done",
        "line_size",
        "line_start",
        "scan_bytes",
        "scanned",
    )

    def __init__(self, limits: H1Limits, scan_bytes: bool) -> None:
        self.limits = limits
        self.scan_bytes = scan_bytes
        self.data = bytearray()
        self.line_done = False
        # _check_field_lines' state: the field lines are counted up to `scanned`.
        self.scanned = self.line_start = self.line_size = self.field_lines = 0

    def __len__(self) -> int:
        return len(self.data)

    def add(self, chunk: bytes, pos: int) -> tuple[bytes, int] | None:
        """Take ``chunk[pos:]``; once the head is complete return it and where the rest of ``chunk`` starts."""
        data = self.data
        if not data:
            while chunk.startswith(b"\r\n", pos):  # RFC 9112 §2.2: empty lines before a request-line
                pos += 2
            end = chunk.find(b"\r\n\r\n", pos)
            if end >= 0:  # the common case: a whole head in one piece, nothing buffered
                head = chunk[pos : end + 4]
                _check_full_head(head, self.limits, self.scan_bytes)
                return head, end + 4
            held = 0
        else:
            held = len(data)
        data += memoryview(chunk)[pos:]
        if held == 1 and data.startswith(b"\r\n"):  # a CRLF split before a request-line
            del data[:2]
            held = 0
            while data.startswith(b"\r\n"):
                del data[:2]
        end = data.find(b"\r\n\r\n", max(0, held - 3))
        if end >= 0:
            head = bytes(data[: end + 4])
            rest = len(chunk) - (len(data) - end - 4)
            data.clear()
            self.line_done = False
            self.line_size = self.field_lines = 0
            _check_full_head(head, self.limits, self.scan_bytes)
            return head, rest
        if data == b"\r":
            return None
        limits = self.limits
        if not self.line_done:
            _check_head_start(data, limits)
            line_end = data.find(b"\r\n")
            if line_end >= 0:
                self.line_done = True
                self.scanned = self.line_start = line_end + 2
        # The new bytes in order, as if they had come one by one, so that every split gets one verdict (the
        # one _check_head_in_order gives the whole head): the field lines up to the first bad byte and up
        # to limits.head, then that byte, then limits.head.
        bad = _bad_byte_at(data, max(0, held - 2))
        stop = min(bad, limits.head)
        if self.line_done and stop > self.scanned:
            self.line_start, self.line_size, self.field_lines = _check_field_lines(
                data, self.scanned, stop, self.line_start, self.line_size, self.field_lines, limits
            )
            self.scanned = stop
        if bad < len(data) and bad < limits.head:
            raise RemoteProtocolError("bare cr, bare lf, obs-fold or control character in request head")
        if len(data) > limits.head:
            raise RemoteProtocolError("request head too large", status=431)
        return None


def _check_trailer(name: bytes, value: bytes, count: int, limits: H1Limits) -> None:
    if _BAD_VALUE(value):
        raise RemoteProtocolError(f"invalid character in trailer field {name[:64]!r}")
    if name in _FORBIDDEN_TRAILERS:
        raise RemoteProtocolError(f"{name.decode('latin-1')} is not allowed in trailers")
    if len(name) + len(value) > limits.field_size:
        raise RemoteProtocolError(f"trailer field {name[:64]!r} too large")
    if count >= limits.fields:
        raise RemoteProtocolError("too many trailer fields", status=431)
