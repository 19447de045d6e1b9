"""Static files (``--static PREFIX=DIR``): an internal ASGI app, one per directory.

It is run by the same :class:`~tricorn.interfaces.asgi.HTTPCycle` as any app (``io/dispatch.py`` maps the
prefix to it), so its responses are streams like any other over HTTP/1.1, TLS and HTTP/2, and its file
bodies go through the one file sender (:mod:`tricorn.interfaces.files`: sendfile over cleartext HTTP/1.1,
bounded pieces with backpressure elsewhere).

Theory of operation
-------------------
1. The method: GET and HEAD, else 405 with ``Allow``.
2. The path after the prefix, as sent, is checked and decoded once (:func:`split_path`, by the rule CGI
   shares, :mod:`tricorn.interfaces.paths`): no backslash, no
   empty segment (``//``), no encoded ``/`` or ``\\``, percent escapes well formed, UTF-8 strict (so no
   overlong forms), no NUL or control character, no ``.`` or ``..`` segment, nothing still
   percent-encoded after the decoding (double encoding), no dotfile (``.env``, ``.git/``; ``.well-known``
   excepted). Each refusal is a 4xx and one log line.
3. The file: a :class:`Resource` from the cache of open files (like nginx's ``open_file_cache``), keyed by
   the path as sent and trusted for :data:`CACHE_VALID` seconds; else resolved on a file thread
   (:func:`resolve`): stat, ``realpath`` inside DIR (a symlink that leaves it is refused unless
   ``--static-follow-symlinks``), regular files only (FIFOs, devices and sockets are never opened), opened
   with ``O_NOFOLLOW | O_NONBLOCK`` and checked to be the file that was stat'ed; a directory redirects to
   its path with a slash, then serves its ``index.html`` (or a listing with ``--static-list``, else 404);
   precompressed siblings (``.br``, ``.gz``) are opened beside it. Small files are held in memory.
4. The response (RFC 9110): the representation chosen by Accept-Encoding q-values (``Vary:
   Accept-Encoding`` when there is a choice), then the preconditions in §13.2.2's order (If-Match,
   If-Unmodified-Since -> 412; If-None-Match, If-Modified-Since -> 304), then Range for GET (§14.2, with
   If-Range): one range is a 206 with Content-Range, several a ``multipart/byteranges`` 206, none
   satisfiable a 416 with ``Content-Range: bytes */SIZE``.
"""

from __future__ import annotations

import asyncio
import calendar
import html
import logging
import mimetypes
import os
import re
import secrets
import stat
import time
import zlib
from email.utils import formatdate, parsedate_tz
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from tricorn.interfaces.asgi import send_plain
from tricorn.interfaces.files import on_file_thread
from tricorn.interfaces.paths import UnsafePath, decode_segment, inside
from tricorn.logs import escape_for_log, peer_for_log

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, MutableMapping

    Message = MutableMapping[str, Any]
    Send = Callable[[Message], Awaitable[None]]

error_log = logging.getLogger("tricorn.error")

# How long a resolved file is trusted before it is looked at again (stat, open). nginx's
# open_file_cache_valid is 60 s; one second keeps a deploy or an edit visible at once, and costs one
# thread hop per second per hot file.
CACHE_VALID = 1.0
# Paths held in the cache (nginx: open_file_cache max=1000 in most guides); the oldest go first.
CACHE_ENTRIES = 1024
# Files up to this size are held in memory and sent with one write (bench static "1k"); larger ones are
# sent from their descriptor. All held bytes of a worker stay under CACHE_BYTES.
SMALL_FILE = 32768
CACHE_BYTES = 16 * 1024 * 1024
# Ranges in one request, beyond which the Range field is ignored and the whole file sent (RFC 9110
# §14.2 lets a server ignore it; Apache's MaxRanges default is 200, nginx's max_ranges is unlimited).
MAX_RANGES = 100
# Django's ManifestStaticFilesStorage names (name.0123456789ab.ext), WhiteNoise's test for immutable files.
HASHED_NAME = re.compile(r"^.+\.[0-9a-f]{12}\..+$")
# A year: what WhiteNoise and most CDNs give immutable files.
IMMUTABLE_MAX_AGE = 31536000
ALLOW = b"GET, HEAD"

_TYPES = mimetypes.MimeTypes(filenames=())  # the table built into Python, not /etc/mime.types: the same
for _ext, _type in (  # answers on every machine, with these modern types it lacks or gets wrong
    (".js", "text/javascript"),
    (".mjs", "text/javascript"),
    (".json", "application/json"),
    (".map", "application/json"),
    (".wasm", "application/wasm"),
    (".webp", "image/webp"),
    (".avif", "image/avif"),
    (".woff", "font/woff"),
    (".woff2", "font/woff2"),
    (".webmanifest", "application/manifest+json"),
    (".md", "text/markdown"),
):
    _TYPES.add_type(_type, _ext)
_UTF8_TYPES = frozenset(
    ("application/javascript", "application/json", "application/manifest+json", "image/svg+xml")
)


class Refusal(Exception):
    """A request static files will not serve: its status, and whether the attempt is worth a log line
    (a traversal or special file is; a plain miss is not)."""

    def __init__(self, status: int, reason: str, log: bool = True) -> None:
        super().__init__(reason)
        self.status = status
        self.log = log


def content_type(name: str) -> bytes:
    kind, _ = _TYPES.guess_type(name, strict=False)
    if kind is None:
        return b"application/octet-stream"
    if kind.startswith("text/") or kind in _UTF8_TYPES:
        return f"{kind}; charset=utf-8".encode("ascii")
    return kind.encode("ascii")


# -- the path -----------------------------------------------------------------------------------------


def split_path(rest: bytes) -> tuple[list[str], bool]:
    """The decoded segments of ``rest`` (the path after the prefix, as sent) and whether it ends with a
    slash (names a directory). Raises :class:`Refusal`: 400 for anything that is not a plain path below
    the directory (:func:`~tricorn.interfaces.paths.decode_segment`), 404 for a dotfile."""
    if not rest:
        return [], False
    if rest[0] != 0x2F:  # the dispatch matched on a segment boundary: this is a slash
        raise Refusal(400, "path does not start with '/'")
    raw_segments = rest[1:].split(b"/")
    trailing = raw_segments[-1] == b""
    if trailing:
        raw_segments.pop()
    segments = []
    for raw in raw_segments:
        try:
            name = decode_segment(raw)
        except UnsafePath as exc:
            raise Refusal(400, str(exc)) from None
        if name[0] == "." and name != ".well-known":
            raise Refusal(404, "dotfile")
        segments.append(name)
    return segments, trailing


# -- resolving and the cache ----------------------------------------------------------------------------


class OpenFile:
    """An open descriptor, closed when the last reference goes (the cache and responses in flight may
    both hold it: a cache eviction never closes a file being sent)."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __del__(self) -> None:
        os.close(self.fd)


class Representation:
    """One file as sent: identity, or a precompressed sibling (``encoding``)."""

    __slots__ = ("content", "encoding", "etag", "file", "headers", "last_modified", "mtime", "size")

    def __init__(
        self,
        file: OpenFile | None,
        content: bytes | None,
        size: int,
        mtime: int,
        etag: bytes,
        encoding: bytes | None,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        self.file = file
        self.content = content
        self.size = size
        self.mtime = mtime
        self.etag = etag
        self.encoding = encoding
        self.last_modified = formatdate(mtime, usegmt=True).encode("ascii")
        self.headers = headers  # the constant fields of a 200 (Content-Length is added per response)


class Resource:
    """What a path resolved to: representations, or a redirect (a directory without its slash)."""

    __slots__ = ("checked", "content_type", "held", "redirect", "variants")

    def __init__(self, checked: float) -> None:
        self.checked = checked
        self.variants: dict[bytes, Representation] = {}  # b"" identity, b"br", b"gzip"
        self.content_type = b""
        self.redirect = False
        self.held = 0  # bytes of content held in memory


def _open_checked(path: str, info: os.stat_result) -> int:
    """Open the regular file ``path`` that was stat'ed as ``info``: refused if it changed in between."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        now = os.fstat(fd)
        if not stat.S_ISREG(now.st_mode) or (now.st_dev, now.st_ino) != (info.st_dev, info.st_ino):
            raise Refusal(403, "file changed while it was opened")
    except BaseException:
        os.close(fd)
        raise
    return fd


class StaticFiles:
    """The ASGI app of one ``--static PREFIX=DIR``."""

    def __init__(
        self,
        prefix: str,
        directory: str,
        *,
        listing: bool = False,
        max_age: int = 60,
        follow_symlinks: bool = False,
    ) -> None:
        self.prefix = prefix.rstrip("/").encode("ascii")
        self.root = os.path.realpath(directory)
        self.listing = listing
        self.follow_symlinks = follow_symlinks
        self.cache_control = b"public, max-age=%d" % max_age if max_age else b"no-cache"
        self.immutable = b"public, max-age=%d, immutable" % IMMUTABLE_MAX_AGE
        self.cache: dict[bytes, Resource] = {}
        self.held = 0

    # -- the app
    async def __call__(self, scope: Message, receive: Any, send: Send) -> None:
        method = scope["method"]
        if method != "GET" and method != "HEAD":
            await send_plain(send, 405, b"method not allowed", [(b"allow", ALLOW)])
            return
        raw = scope["raw_path"]
        rest = raw[len(self.prefix) :]
        resource = self.cache.get(rest)
        loop = asyncio.get_running_loop()
        now = loop.time()
        if resource is None or now - resource.checked > CACHE_VALID:
            try:
                resource = await on_file_thread(self._resolve, rest, now)
            except Refusal as exc:
                if exc.log:
                    error_log.info(
                        "%s %d static: %s: %s",
                        peer_for_log(scope.get("client")),
                        exc.status,
                        exc,
                        escape_for_log(raw.decode("latin-1")),
                    )
                await send_plain(send, exc.status, _REASONS.get(exc.status, b"refused"), ())
                return
            self._store(rest, resource)
        if resource.redirect:
            location = raw + b"/"
            if scope["query_string"]:
                location += b"?" + scope["query_string"]
            await send_plain(send, 301, b"moved permanently", [(b"location", location)])
            return
        await self._respond(scope, resource, send)

    def _store(self, rest: bytes, resource: Resource) -> None:
        cache = self.cache
        old = cache.pop(rest, None)
        if old is not None:
            self.held -= old.held
        while len(cache) >= CACHE_ENTRIES:
            evicted = cache.pop(next(iter(cache)))
            self.held -= evicted.held
        cache[rest] = resource
        self.held += resource.held

    # -- resolving (a file thread)
    def _resolve(self, rest: bytes, now: float) -> Resource:
        segments, trailing = split_path(rest)
        root = self.root
        path = os.path.join(root, *segments) if segments else root
        try:
            info = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            raise Refusal(404, "no such file", log=False) from None
        except PermissionError:
            raise Refusal(403, "permission denied") from None
        except OSError as exc:
            raise Refusal(404, f"cannot stat: {exc.strerror}") from None
        real = inside(root, path)
        if real is None:
            if not self.follow_symlinks:
                raise Refusal(403, "symlink leads outside the directory")
            real = os.path.realpath(path)
        resource = Resource(now)
        if stat.S_ISDIR(info.st_mode):
            if not trailing:
                resource.redirect = True
                return resource
            index = os.path.join(real, "index.html")
            try:
                index_info = os.stat(index)
            except OSError:
                index_info = None
            if index_info is not None and stat.S_ISREG(index_info.st_mode):
                self._add_file(resource, index, index_info, "index.html")
                return resource
            if self.listing:
                self._add_listing(resource, real, segments)
                return resource
            raise Refusal(404, "directory without index.html", log=False)
        if not stat.S_ISREG(info.st_mode):
            raise Refusal(403, "not a regular file")
        if trailing:
            raise Refusal(404, "a file with a trailing slash", log=False)
        self._add_file(resource, real, info, segments[-1])
        return resource

    def _add_file(self, resource: Resource, path: str, info: os.stat_result, name: str) -> None:
        resource.content_type = content_type(name)
        cache_control = self.immutable if HASHED_NAME.match(name) else self.cache_control
        siblings: list[tuple[bytes, str, os.stat_result]] = [(b"", path, info)]
        for encoding, suffix in ((b"br", ".br"), (b"gzip", ".gz")):
            try:
                sibling = os.stat(path + suffix, follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISREG(sibling.st_mode):
                siblings.append((encoding, path + suffix, sibling))
        vary = len(siblings) > 1
        for encoding, file_path, file_info in siblings:
            fd = _open_checked(file_path, file_info)
            opened = OpenFile(fd)
            size = file_info.st_size
            content = None
            if size <= SMALL_FILE and self.held + resource.held + size <= CACHE_BYTES:
                content = os.pread(fd, size, 0)
                if len(content) != size:  # changed while read: served from the descriptor instead
                    content = None
                else:
                    resource.held += size
            etag = b'"%x-%x"' % (file_info.st_mtime_ns, size)
            headers = [
                (b"content-type", resource.content_type),
                (b"etag", etag),
                (b"accept-ranges", b"bytes"),
                (b"cache-control", cache_control),
            ]
            if vary:
                headers.append((b"vary", b"accept-encoding"))
            if encoding:
                headers.append((b"content-encoding", encoding))
            mtime = int(file_info.st_mtime)
            rep = Representation(
                None if content is not None else opened, content, size, mtime, etag, encoding or None, headers
            )
            rep.headers.append((b"last-modified", rep.last_modified))
            resource.variants[encoding] = rep

    def _add_listing(self, resource: Resource, directory: str, segments: list[str]) -> None:
        try:
            names = sorted(os.listdir(directory))
        except OSError as exc:
            raise Refusal(403, f"cannot list the directory: {exc.strerror}") from None
        title = html.escape("/" + "/".join(segments) + ("/" if segments else ""))
        rows = []
        for name in names:
            if name.startswith("."):
                continue
            slash = "/" if os.path.isdir(os.path.join(directory, name)) else ""
            rows.append(f'<li><a href="{quote(name)}{slash}">{html.escape(name)}{slash}</a></li>')
        body = (
            f'<!doctype html><html><head><meta charset="utf-8"><title>{title}</title></head>'
            f"<body><h1>{title}</h1><ul>{''.join(rows)}</ul></body></html>\n"
        ).encode()
        etag = b'"l-%x"' % zlib.crc32(body)  # the same in every worker (hash() is salted per process)
        resource.content_type = b"text/html; charset=utf-8"
        headers = [
            (b"content-type", resource.content_type),
            (b"etag", etag),
            (b"cache-control", b"no-cache"),
        ]
        resource.variants[b""] = Representation(None, body, len(body), int(time.time()), etag, None, headers)

    # -- the response (the loop)
    async def _respond(self, scope: Message, resource: Resource, send: Send) -> None:
        fields: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            if name in _CONDITIONAL:
                fields[name] = value
        variants = resource.variants
        rep = (
            variants[b""]
            if len(variants) == 1
            else variants[_choose(fields.get(b"accept-encoding"), variants)]
        )
        status = _preconditions(fields, rep, scope["method"])
        if status:
            if status == 304:
                kept = [pair for pair in rep.headers if pair[0] in _NOT_MODIFIED_FIELDS]
                await send({"type": "http.response.start", "status": 304, "headers": kept})
                await send({"type": "http.response.body", "body": b""})
            else:
                await send_plain(send, 412, b"precondition failed", ())
            return
        size = rep.size
        ranges = None
        if scope["method"] == "GET" and b"range" in fields and _if_range(fields.get(b"if-range"), rep):
            ranges = parse_ranges(fields[b"range"], size)
        if ranges is None:
            headers = [*rep.headers, (b"content-length", b"%d" % size)]
            await _send_part(send, headers, 200, rep, 0, size)
        elif ranges is UNSATISFIABLE:
            await send_plain(send, 416, b"range not satisfiable", [(b"content-range", b"bytes */%d" % size)])
        elif len(ranges) == 1:
            start, end = ranges[0]
            headers = [
                *rep.headers,
                (b"content-range", b"bytes %d-%d/%d" % (start, end, size)),
                (b"content-length", b"%d" % (end - start + 1)),
            ]
            await _send_part(send, headers, 206, rep, start, end - start + 1)
        else:
            await _send_multipart(send, rep, resource.content_type, ranges)


_REASONS = {400: b"bad request", 403: b"forbidden", 404: b"not found"}
_CONDITIONAL = frozenset(
    (
        b"if-match",
        b"if-none-match",
        b"if-modified-since",
        b"if-unmodified-since",
        b"if-range",
        b"range",
        b"accept-encoding",
    )
)
_NOT_MODIFIED_FIELDS = frozenset((b"etag", b"cache-control", b"vary", b"last-modified"))


async def _send_part(
    send: Send, headers: list[tuple[bytes, bytes]], status: int, rep: Representation, start: int, count: int
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    content = rep.content
    if content is not None:
        body = content if count == len(content) else content[start : start + count]
        await send({"type": "http.response.body", "body": body})
    else:
        assert rep.file is not None
        await send(
            {"type": "http.response.zerocopysend", "file": rep.file.fd, "offset": start, "count": count}
        )


async def _send_multipart(
    send: Send, rep: Representation, kind: bytes, ranges: list[tuple[int, int]]
) -> None:
    """RFC 9110 §14.6: each range as a part of a multipart/byteranges body."""
    boundary = secrets.token_hex(12).encode("ascii")
    size = rep.size
    heads = [
        b"\r\n--%s\r\ncontent-type: %s\r\ncontent-range: bytes %d-%d/%d\r\n\r\n"
        % (boundary, kind, start, end, size)
        for start, end in ranges
    ]
    tail = b"\r\n--%s--\r\n" % boundary
    length = sum(map(len, heads)) + sum(end - start + 1 for start, end in ranges) + len(tail)
    headers = [(name, value) for name, value in rep.headers if name != b"content-type"]
    headers.append((b"content-type", b"multipart/byteranges; boundary=" + boundary))
    headers.append((b"content-length", b"%d" % length))
    await send({"type": "http.response.start", "status": 206, "headers": headers})
    content = rep.content
    for head, (start, end) in zip(heads, ranges, strict=True):
        if content is not None:
            await send(
                {"type": "http.response.body", "body": head + content[start : end + 1], "more_body": True}
            )
        else:
            assert rep.file is not None
            await send({"type": "http.response.body", "body": head, "more_body": True})
            await send(
                {
                    "type": "http.response.zerocopysend",
                    "file": rep.file.fd,
                    "offset": start,
                    "count": end - start + 1,
                    "more_body": True,
                }
            )
    await send({"type": "http.response.body", "body": tail})


# -- content negotiation, preconditions, ranges (pure) -----------------------------------------------


def _choose(header: bytes | None, variants: dict[bytes, Representation]) -> bytes:
    """The variant Accept-Encoding prefers (RFC 9110 §12.5.3): highest q; br before gzip before identity
    on a tie; identity unless refused."""
    if not header:
        return b""
    weights: dict[bytes, float] = {}
    for item in header.split(b","):
        coding, _, params = item.partition(b";")
        coding = coding.strip().lower()
        q = 1.0
        params = params.strip().lower()
        if params.startswith(b"q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        if coding:
            weights[coding] = q
    star = weights.get(b"*")
    # Identity is acceptable unless refused (RFC 9110 §12.5.3), but an encoding the client accepts is
    # preferred to it unless the client weighs identity explicitly.
    identity = weights.get(b"identity")
    best = b""
    best_q = identity if identity is not None else 0.0
    for coding in (b"br", b"gzip"):
        if coding in variants:
            q = weights.get(coding, star if star is not None else 0.0)
            if q > 0 and (q > best_q or (q == best_q and best == b"")):
                best, best_q = coding, q
    return best


def _tags(value: bytes) -> list[bytes]:
    return [tag.strip() for tag in value.split(b",") if tag.strip()]


def _strong_match(value: bytes, etag: bytes) -> bool:
    return any(tag == b"*" or tag == etag for tag in _tags(value))


def _weak_match(value: bytes, etag: bytes) -> bool:
    return any(tag == b"*" or tag.removeprefix(b"W/") == etag for tag in _tags(value))


def _http_date(value: bytes | None) -> int | None:
    if not value:
        return None
    parsed = parsedate_tz(value.decode("latin-1"))
    if parsed is None:
        return None
    return calendar.timegm(parsed[:6]) - (parsed[9] or 0)


def _preconditions(fields: dict[bytes, bytes], rep: Representation, method: str) -> int:
    """RFC 9110 §13.2.2: 412, 304, or 0 to go on."""
    if len(fields) == 0:
        return 0
    etag = rep.etag
    if_match = fields.get(b"if-match")
    if if_match is not None:
        if not _strong_match(if_match, etag):
            return 412
    else:
        date = _http_date(fields.get(b"if-unmodified-since"))
        if date is not None and rep.mtime > date:
            return 412
    if_none_match = fields.get(b"if-none-match")
    if if_none_match is not None:
        if _weak_match(if_none_match, etag):
            return 304 if method in ("GET", "HEAD") else 412
    elif method in ("GET", "HEAD"):
        date = _http_date(fields.get(b"if-modified-since"))
        if date is not None and rep.mtime <= date:
            return 304
    return 0


def _if_range(value: bytes | None, rep: Representation) -> bool:
    """RFC 9110 §13.1.5: the Range applies if If-Range is absent or matches (strongly)."""
    if value is None:
        return True
    value = value.strip()
    if value.startswith(b'"') or value.startswith(b"W/"):
        return value == rep.etag
    date = _http_date(value)
    return date is not None and date == rep.mtime


class _Unsatisfiable:
    pass


UNSATISFIABLE: Any = _Unsatisfiable()
_RANGE_SPEC = re.compile(rb"\s*(\d*)\s*-\s*(\d*)\s*")


def parse_ranges(value: bytes, size: int) -> list[tuple[int, int]] | Any:
    """RFC 9110 §14.1.2: the satisfiable ranges of a ``bytes=`` Range as (first, last) pairs; None when
    the field is to be ignored (another unit, invalid syntax, more than MAX_RANGES); UNSATISFIABLE when
    none of its ranges is."""
    unit, eq, spec = value.partition(b"=")
    if not eq or unit.strip().lower() != b"bytes":
        return None
    items = spec.split(b",")
    if len(items) > MAX_RANGES:
        return None
    ranges = []
    for item in items:
        if not item.strip():
            continue  # RFC 9110 §5.6.1: empty list elements are ignored
        match = _RANGE_SPEC.fullmatch(item)
        if match is None:
            return None
        first, last = match.groups()
        if first:
            start = int(first)
            end = int(last) if last else size - 1
            if last and end < start:
                return None
            if start >= size:
                continue
            ranges.append((start, min(end, size - 1)))
        elif last:
            suffix = int(last)
            if suffix == 0 or size == 0:
                continue
            ranges.append((max(0, size - suffix), size - 1))
        else:
            return None
    if not ranges:
        return UNSATISFIABLE if any(item.strip() for item in items) else None
    return ranges
