"""The pure parts of static files and of the dispatch table: path checks, ranges, negotiation,
preconditions, prefix matching."""

from __future__ import annotations

from typing import Any

import pytest

from tricorn.interfaces.static import (
    UNSATISFIABLE,
    Refusal,
    Representation,
    _choose,
    _if_range,
    _preconditions,
    content_type,
    parse_ranges,
    split_path,
)
from tricorn.io.dispatch import Dispatch


@pytest.mark.parametrize(
    ("rest", "segments", "trailing"),
    [
        (b"", [], False),
        (b"/", [], True),
        (b"/a.css", ["a.css"], False),
        (b"/dir/", ["dir"], True),
        (b"/a/b/c.js", ["a", "b", "c.js"], False),
        (b"/caf%C3%A9", ["café"], False),
        (b"/100%25.txt", ["100%.txt"], False),
        (b"/.well-known/x", [".well-known", "x"], False),
        (b"/a..b", ["a..b"], False),
    ],
)
def test_split_path_accepts(rest: bytes, segments: list[str], trailing: bool) -> None:
    assert split_path(rest) == (segments, trailing)


@pytest.mark.parametrize(
    ("rest", "status"),
    [
        (b"/..", 400),
        (b"/../x", 400),
        (b"/%2e%2e/x", 400),
        (b"/%2E%2e", 400),
        (b"/.", 400),
        (b"/a/./b", 400),
        (b"/%2fetc", 400),
        (b"/a%5Cb", 400),
        (b"/a\\b", 400),
        (b"//a", 400),
        (b"/a//b", 400),
        (b"/%00", 400),
        (b"/a%0d%0ab", 400),
        (b"/%7f", 400),
        (b"/%c0%ae%c0%ae", 400),  # overlong "."
        (b"/%c0%af", 400),  # overlong "/"
        (b"/%ed%a0%80", 400),  # a surrogate
        (b"/%ff", 400),
        (b"/%", 400),
        (b"/%4", 400),
        (b"/%g0", 400),
        (b"/%252e%252e", 400),
        (b"/%25%32%65", 400),  # "%2e" after one decoding
        (b"/.env", 404),
        (b"/.git/config", 404),
        (b"/a/.htaccess", 404),
        (b"x", 400),
    ],
)
def test_split_path_refuses(rest: bytes, status: int) -> None:
    with pytest.raises(Refusal) as info:
        split_path(rest)
    assert info.value.status == status


def test_content_types() -> None:
    assert content_type("a.css") == b"text/css; charset=utf-8"
    assert content_type("a.js") == b"text/javascript; charset=utf-8"
    assert content_type("a.json") == b"application/json; charset=utf-8"
    assert content_type("a.svg") == b"image/svg+xml; charset=utf-8"
    assert content_type("a.png") == b"image/png"
    assert content_type("a.woff2") == b"font/woff2"
    assert content_type("README") == b"application/octet-stream"


@pytest.mark.parametrize(
    ("value", "size", "expected"),
    [
        (b"bytes=0-0", 10, [(0, 0)]),
        (b"bytes=0-9", 10, [(0, 9)]),
        (b"bytes=0-100", 10, [(0, 9)]),
        (b"bytes=5-", 10, [(5, 9)]),
        (b"bytes=-3", 10, [(7, 9)]),
        (b"bytes=-30", 10, [(0, 9)]),
        (b"BYTES = 1-2 , 4-5", 10, [(1, 2), (4, 5)]),
        (b"bytes=1-2,,4-5", 10, [(1, 2), (4, 5)]),
        (b"bytes=20-30, 1-2", 10, [(1, 2)]),
        (b"bytes=10-", 10, UNSATISFIABLE),
        (b"bytes=-0", 10, UNSATISFIABLE),
        (b"bytes=0-", 0, UNSATISFIABLE),
        (b"bytes=5-1", 10, None),
        (b"bytes=a-b", 10, None),
        (b"bytes=-", 10, None),
        (b"bytes=", 10, None),
        (b"items=0-1", 10, None),
        (b"0-1", 10, None),
        (b"bytes=" + b",".join(b"%d-%d" % (i, i) for i in range(101)), 1000, None),
    ],
)
def test_parse_ranges(value: bytes, size: int, expected: Any) -> None:
    assert parse_ranges(value, size) == expected


VARIANTS: dict[bytes, Any] = {b"": None, b"br": None, b"gzip": None}


@pytest.mark.parametrize(
    ("header", "chosen"),
    [
        (None, b""),
        (b"", b""),
        (b"gzip", b"gzip"),
        (b"gzip, br", b"br"),
        (b"gzip;q=1, br;q=0.9", b"gzip"),
        (b"br;q=0.5, gzip;q=0.8", b"gzip"),
        (b"br;q=0, gzip;q=0", b""),
        (b"identity", b""),
        (b"identity;q=1, gzip;q=0.5", b""),
        (b"identity;q=0.5, gzip;q=0.5", b"gzip"),
        (b"*", b"br"),
        (b"*;q=0.1, br;q=0", b"gzip"),
        (b"deflate", b""),
        (b"GZIP", b"gzip"),
        (b"gzip;q=bad", b""),
    ],
)
def test_accept_encoding(header: bytes | None, chosen: bytes) -> None:
    assert _choose(header, VARIANTS) == chosen


def rep(mtime: int = 1_000_000_000) -> Representation:
    return Representation(None, b"x", 1, mtime, b'"abc"', None, [])


MTIME_TEXT = b"Sun, 09 Sep 2001 01:46:40 GMT"  # 1_000_000_000


@pytest.mark.parametrize(
    ("fields", "method", "status"),
    [
        ({}, "GET", 0),
        ({b"if-none-match": b'"abc"'}, "GET", 304),
        ({b"if-none-match": b'W/"abc"'}, "HEAD", 304),
        ({b"if-none-match": b'"x", "abc"'}, "GET", 304),
        ({b"if-none-match": b"*"}, "GET", 304),
        ({b"if-none-match": b'"x"'}, "GET", 0),
        ({b"if-modified-since": MTIME_TEXT}, "GET", 304),
        ({b"if-modified-since": b"Sat, 01 Jan 2000 00:00:00 GMT"}, "GET", 0),
        ({b"if-modified-since": b"nonsense"}, "GET", 0),
        ({b"if-none-match": b'"x"', b"if-modified-since": MTIME_TEXT}, "GET", 0),
        ({b"if-match": b'"abc"'}, "GET", 0),
        ({b"if-match": b'W/"abc"'}, "GET", 412),
        ({b"if-match": b'"x"'}, "GET", 412),
        ({b"if-match": b"*"}, "GET", 0),
        ({b"if-unmodified-since": b"Sat, 01 Jan 2000 00:00:00 GMT"}, "GET", 412),
        ({b"if-unmodified-since": MTIME_TEXT}, "GET", 0),
        ({b"if-match": b'"abc"', b"if-unmodified-since": b"Sat, 01 Jan 2000 00:00:00 GMT"}, "GET", 0),
        ({b"if-match": b'"x"', b"if-none-match": b'"abc"'}, "GET", 412),
    ],
)
def test_preconditions(fields: dict[bytes, bytes], method: str, status: int) -> None:
    assert _preconditions(fields, rep(), method) == status


def test_if_range() -> None:
    assert _if_range(None, rep())
    assert _if_range(b'"abc"', rep())
    assert not _if_range(b'W/"abc"', rep())
    assert not _if_range(b'"old"', rep())
    assert _if_range(MTIME_TEXT, rep())
    assert not _if_range(b"Sat, 01 Jan 2000 00:00:00 GMT", rep())


class FakeTarget:
    def __init__(self, name: str) -> None:
        self.kind = name
        self.root_path = ""
        self.websocket = None

    def new_cycle(self, stream: Any, request: Any) -> Any:
        return type("Cycle", (), {"target_name": self.kind})()

    def start(self, cycle: Any, runner: Any) -> None:
        pass


def test_dispatch_matches_the_longest_prefix_on_segment_boundaries() -> None:
    app, static, nested, cgi = (FakeTarget(n) for n in ("app", "static", "nested", "cgi"))
    table = Dispatch([("/", app), ("/static", static), ("/static/deep/", nested), ("/cgi-bin", cgi)])
    cases = {
        b"/": "app",
        b"/static": "static",
        b"/static/": "static",
        b"/static/a.css": "static",
        b"/staticx": "app",
        b"/static.css": "app",
        b"/static/deep": "nested",
        b"/static/deep/x": "nested",
        b"/static/deeper": "static",
        b"/cgi-bin/x.cgi": "cgi",
        b"/%73tatic/a.css": "app",
        b"*": "app",
    }
    for path, name in cases.items():
        assert table.match(path).kind == name, path


def test_dispatch_binds_the_app_alone_and_refuses_bad_tables() -> None:
    app = FakeTarget("app")
    table = Dispatch([("/", app)])
    assert table.new_cycle == app.new_cycle and table.start_cycle == app.start  # no lookup per request
    with pytest.raises(ValueError, match="no target serves"):
        Dispatch([("/static", app)])
    with pytest.raises(ValueError, match="twice"):
        Dispatch([("/", app), ("/a", app), ("/a/", app)])
