"""tricorn.proto.h2: request and response heads over HTTP/2 (and HTTP/3): a response header list checked once
per distinct list, a request that says whether a proxy's field is in it."""

from __future__ import annotations

import pytest

from tricorn.errors import LocalProtocolError
from tricorn.proto import h1
from tricorn.proto.h1 import H1Limits
from tricorn.proto.h2 import request_from_headers, response_head, response_headers


def test_a_header_list_seen_before_gives_the_same_fields_and_the_servers_own_again() -> None:
    h1.set_date(b"Sat, 21 Nov 2026 06:00:00 GMT")
    headers = [(b"Content-Type", b"text/plain "), (b"connection", b"close"), (b"content-length", b"5")]
    fields, length = response_head(200, headers)
    assert fields == [
        (b":status", b"200"),
        (b"content-type", b"text/plain"),  # lowercase, the value's surrounding space gone
        (b"content-length", b"5"),  # (connection-specific fields dropped, RFC 9113 §8.2.2)
        (b"server", b"tricorn"),
        (b"date", b"Sat, 21 Nov 2026 06:00:00 GMT"),
    ]
    assert length == 5
    fields.append((b"x-changed", b"by the caller"))  # a list of the caller's own
    assert response_head(200, list(headers)) == (fields[:-1], 5)
    assert response_head(200, (pair for pair in headers)) == (fields[:-1], 5)  # any iterable
    assert response_head(200, [list(pair) for pair in headers]) == (fields[:-1], 5)  # pairs as lists
    assert response_head(404, headers)[0][0] == (b":status", b"404")
    h1.set_date(b"Sat, 21 Nov 2026 06:00:01 GMT")
    assert response_head(200, headers)[0][-1] == (b"date", b"Sat, 21 Nov 2026 06:00:01 GMT")
    h1.set_default_headers(False, True, [(b"x-served-by", b"a")])
    try:
        fields = response_headers(200, headers)
        assert (b"server", b"tricorn") not in fields and fields[-1] == (b"x-served-by", b"a")
    finally:
        h1.set_default_headers(True, True, [])
    own = response_headers(200, [(b"server", b"mine"), (b"date", b"then")])
    assert own == [(b":status", b"200"), (b"server", b"mine"), (b"date", b"then")]


@pytest.mark.parametrize(
    ("headers", "length"),
    [
        ([], None),
        ([(b"content-length", b"abc")], None),  # not a number: the body is not bounded by it
        ([(b"content-length", b"3"), (b"content-length", b"7")], 3),  # the first one
    ],
)
def test_the_content_length_a_head_declares(headers: list[tuple[bytes, bytes]], length: int | None) -> None:
    for _ in range(2):  # checked, then remembered
        assert response_head(200, headers)[1] == length


@pytest.mark.parametrize(
    "headers",
    [
        [(b"x", b"a\r\nInjected: yes")],
        [(b"x y", b"v")],
        [(b"", b"v")],
        [("str", b"v")],
        [(b"x", "str")],
        [(b"x",)],
        [b"xy"],
        42,
    ],
)
def test_what_cannot_be_sent_is_refused_every_time(headers: object) -> None:
    for _ in range(2):
        with pytest.raises(LocalProtocolError):
            response_head(200, headers)  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [101, 99, 600, "200", None])
def test_a_status_an_application_may_not_send(status: object) -> None:
    with pytest.raises(LocalProtocolError):
        response_head(status, [])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "free"),
    [(b"accept", True), (b"x-forwarded-for", False), (b"forwarded", False), (b"x-forwarded-proto", False)],
)
def test_a_request_without_a_proxys_field_says_so(name: bytes, free: bool) -> None:
    # (the scope and the environ then skip their look for one: interfaces/asgi.py build_scope)
    head = [
        (b":method", b"GET"),
        (b":scheme", b"http"),
        (b":path", b"/"),
        (b":authority", b"a"),
        (name, b"1"),
    ]
    request = request_from_headers(head, H1Limits(), frozenset())
    assert request.proxy_free is free and (name, b"1") in request.headers
