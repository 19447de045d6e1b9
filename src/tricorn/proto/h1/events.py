"""HTTP/1.1 events (:class:`Request`, :class:`Data`, :class:`EndOfMessage`) and the request limits
(:class:`H1Limits` and its defaults)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Literal

Headers = list[tuple[bytes, bytes]]
# A request's fields: a list from the general path, a tuple that the fast lane shares between requests
# (proto/h1/parsers.py _Scout). Never changed: whoever gives them to an app gives it a list of its own.
Fields = Sequence[tuple[bytes, bytes]]
Backend = Literal["httptools", "h11"]

# Precedents for the defaults: gunicorn limit_request_line 4094, limit_request_fields 100,
# limit_request_field_size 8190; nginx large_client_header_buffers 4 8k (a request line of 8 KiB).
DEFAULT_LIMIT_REQUEST_LINE: Final = 8190
DEFAULT_LIMIT_REQUEST_FIELDS: Final = 100
DEFAULT_LIMIT_REQUEST_FIELD_SIZE: Final = 8190


class H1Limits:
    """Request limits; ``body`` is None for no limit. Each bound is enforced without buffering past it."""

    __slots__ = ("body", "field_size", "fields", "head", "request_line")

    def __init__(
        self,
        request_line: int = DEFAULT_LIMIT_REQUEST_LINE,
        fields: int = DEFAULT_LIMIT_REQUEST_FIELDS,
        field_size: int = DEFAULT_LIMIT_REQUEST_FIELD_SIZE,
        body: int | None = None,
    ) -> None:
        self.request_line = request_line
        self.fields = fields
        self.field_size = field_size
        self.body = body
        # The largest head the per-line limits allow: the bound on what is ever buffered for one head.
        self.head = request_line + 2 + fields * (field_size + 2) + 2


# ---------------------------------------------------------------------------------------------- events


class Request:
    """A request head that passed validation.

    ``path`` is the raw path bytes of the target (before ``?``), ``query`` the raw query; for an
    absolute-form target ``authority`` is its host[:port], which replaces Host (RFC 9112 §3.2.2).
    Not changed once made (but for an upgrade request, which the fast lane never gives, by the connection
    that took it: its ``upgrade``, and ``http_version`` for h2c): the fast lane gives one Request for
    every request of the same bytes (proto/h1/parsers.py ``_Scout``), and its ``headers`` then are a tuple
    (see ``Fields``).
    """

    __slots__ = (
        "authority",
        "expect_continue",
        "headers",
        "http_version",
        "keep_alive",
        "method",
        "path",
        "query",
        "target",
        "upgrade",
    )

    def __init__(
        self,
        method: bytes,
        target: bytes,
        http_version: str,
        headers: Fields,
        path: bytes,
        query: bytes,
        authority: bytes | None,
        keep_alive: bool,
        expect_continue: bool,
        upgrade: bytes | None,
    ) -> None:
        self.method = method
        self.target = target
        self.http_version = http_version
        self.headers = headers
        self.path = path
        self.query = query
        self.authority = authority
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.upgrade = upgrade

    # True when the request is known to carry none of the proxy fields (proto/forwarded.py ``NAMES``),
    # so that the scope and the environ need not look (a ProxyFreeRequest, from the fast lane).
    proxy_free = False

    def __repr__(self) -> str:
        return f"Request({self.method!r}, {self.target!r}, {self.http_version!r}, {self.headers!r})"


class ProxyFreeRequest(Request):
    """A :class:`Request` whose fields are known to hold no proxy field: the fast lane knows it of the
    field blocks it remembers (proto/h1/parsers.py ``_Scout``)."""

    __slots__ = ()
    proxy_free = True


class Data:
    """A piece of the request body, in arrival order."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"Data({self.data!r})"


class EndOfMessage:
    """The request body is complete; ``trailers`` holds the chunked trailer fields, if any."""

    __slots__ = ("trailers",)

    def __init__(self, trailers: Headers | None = None) -> None:
        self.trailers = trailers or []

    def __repr__(self) -> str:
        return f"EndOfMessage({self.trailers!r})"


Event = Request | Data | EndOfMessage
