"""The sans-io CGI core (tricorn.proto.cgi): a script's header block in, what it asked for out; and the
meta-variables of a request. Each output case is fed whole, per line, per byte and in random pieces."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tricorn.proto.cgi import (
    MAX_HEADER_BLOCK,
    OutputParser,
    ResponseKind,
    ScriptOutputError,
    ScriptResponse,
    meta_variables,
)


def pieces(data: bytes, how: str) -> list[bytes]:
    if how == "whole":
        return [data]
    if how == "lines":
        return data.splitlines(keepends=True)
    if how == "bytes":
        return [data[i : i + 1] for i in range(len(data))]
    rng = random.Random(len(data))
    out, i = [], 0
    while i < len(data):
        n = rng.randint(1, 7)
        out.append(data[i : i + n])
        i += n
    return out


SPLITS = ("whole", "lines", "bytes", "random")


def parse(data: bytes, how: str = "whole", nph: bool = False) -> tuple[ScriptResponse, bytes]:
    parser = OutputParser(nph)
    response = None
    rest: list[bytes] = []
    for piece in pieces(data, how):
        if response is None:
            response = parser.feed(piece)
            if response is not None:
                rest.append(parser.body)
        else:
            rest.append(piece)
    if response is None:
        parser.eof()
    assert response is not None
    return response, b"".join(rest)


@pytest.mark.parametrize("how", SPLITS)
def test_document(how: str) -> None:
    response, body = parse(b"Content-Type: text/html\r\nX-A:  b \r\n\r\n<p>hi</p>\r\n\r\nmore", how)
    assert response.kind is ResponseKind.DOCUMENT
    assert response.status == 200
    assert response.headers == [(b"content-type", b"text/html"), (b"x-a", b"b")]
    assert body == b"<p>hi</p>\r\n\r\nmore"


@pytest.mark.parametrize("how", SPLITS)
def test_bare_lf_lines_and_status(how: str) -> None:
    response, body = parse(b"Status: 404 Not Here\nContent-type: text/plain\n\nnope", how)
    assert (response.status, body) == (404, b"nope")
    assert response.headers == [(b"content-type", b"text/plain")]  # Status is not forwarded as a field


@pytest.mark.parametrize("value", [b"201", b"201 Created", b"599 x"])
def test_status_forms(value: bytes) -> None:
    assert parse(b"Status: " + value + b"\nContent-Type: a/b\n\n")[0].status == int(value[:3])


@pytest.mark.parametrize("value", [b"", b"abc", b"2000", b"20", b"100 Continue", b"600 x", b"099"])
def test_bad_status(value: bytes) -> None:
    with pytest.raises(ScriptOutputError):
        parse(b"Status: " + value + b"\nContent-Type: a/b\n\n")


def test_204_and_304_need_no_content_type() -> None:
    assert parse(b"Status: 204\n\n")[0].status == 204
    assert parse(b"Status: 304 Not Modified\n\n")[0].status == 304


@pytest.mark.parametrize("how", SPLITS)
def test_local_redirect(how: str) -> None:
    response, _ = parse(b"Location: /other/path?q=1\r\n\r\n", how)
    assert response.kind is ResponseKind.LOCAL_REDIRECT
    assert response.location == b"/other/path?q=1"


def test_client_redirect_is_302() -> None:
    response, _ = parse(b"Location: https://example.com/x\n\n")
    assert response.kind is ResponseKind.CLIENT_REDIRECT
    assert (response.status, response.headers) == (302, [(b"location", b"https://example.com/x")])


def test_client_redirect_with_document_keeps_its_status() -> None:
    response, body = parse(b"Status: 301\nLocation: http://a.test/\nContent-Type: text/html\n\nmoved")
    assert response.kind is ResponseKind.CLIENT_REDIRECT
    assert response.status == 301 and body == b"moved"
    assert (b"content-type", b"text/html") in response.headers


def test_local_path_with_a_3xx_redirects_the_client() -> None:
    response, _ = parse(b"Status: 303\nLocation: /see\n\n")
    assert response.kind is ResponseKind.CLIENT_REDIRECT
    assert response.headers == [(b"location", b"/see")]


@pytest.mark.parametrize(
    "block",
    [
        b"X-A: b\n\n",  # a document without Content-Type
        b"Location: //evil.test/x\n\n",  # a network-path reference is neither local nor absolute
        b"Location: relative/path\n\n",
        b"Content-Type: a/b\nContent-Type: c/d\n\n",
        b"Location: /a\nLocation: /b\n\n",
        b"Status: 200\nStatus: 201\nContent-Type: a/b\n\n",
        b"no colon here\n\n",
        b"Bad Name: x\nContent-Type: a/b\n\n",
        b": empty name\nContent-Type: a/b\n\n",
        b"Content-Type: a/b\n folded\n\n",
        b"Content-Type: a/b\nX: a\x00b\n\n",
        b"Content-Type: a/b\nX: a\x1bb\n\n",
        b"Content-Type: a/b\nContent-Length: 12x\n\n",
        b"Content-Type: a/b\nContent-Length: -1\n\n",
        b"Content-Type: a/b\n" + b"X: y\n" * 100 + b"\n",
    ],
)
def test_malformed_blocks(block: bytes) -> None:
    for how in SPLITS:
        with pytest.raises(ScriptOutputError) as info:
            parse(block, how)
        assert info.value.status == 502


def test_framing_fields_are_dropped_length_kept() -> None:
    response, _ = parse(
        b"Content-Type: a/b\nConnection: close\nTransfer-Encoding: chunked\nKeep-Alive: 5\n"
        b"Content-Length: 4\n\nbody"
    )
    assert response.headers == [(b"content-type", b"a/b"), (b"content-length", b"4")]


def test_eof_before_the_block_ends() -> None:
    parser = OutputParser()
    with pytest.raises(ScriptOutputError, match="no output"):
        parser.eof()
    parser.feed(b"Content-Type: a/b\n")
    with pytest.raises(ScriptOutputError, match="inside the header block"):
        parser.eof()


def test_header_block_is_bounded() -> None:
    parser = OutputParser()
    with pytest.raises(ScriptOutputError, match="longer than"):
        for _ in range(MAX_HEADER_BLOCK // 1000 + 2):
            parser.feed(b"X-Long: " + b"a" * 990 + b"\n")


def test_empty_block_is_a_document_without_type() -> None:
    with pytest.raises(ScriptOutputError, match="no content-type"):
        parse(b"\nbody")


@pytest.mark.parametrize("how", SPLITS)
def test_nph(how: str) -> None:
    response, body = parse(
        b"HTTP/1.1 299 Odd\r\nStatus: x\r\nLocation: /y\r\nConnection: close\r\n\r\nraw", how, nph=True
    )
    assert response.kind is ResponseKind.DOCUMENT
    assert response.status == 299
    assert response.headers == [(b"status", b"x"), (b"location", b"/y")]
    assert body == b"raw"


@pytest.mark.parametrize("first", [b"HTTP/1.1 99 x", b"Content-Type: a/b", b"HTTP/1.1 100 Continue", b""])
def test_nph_bad_status_line(first: bytes) -> None:
    with pytest.raises(ScriptOutputError):
        parse(first + b"\r\n\r\n", nph=True)


@given(st.binary(max_size=300))
def test_any_output_is_an_answer_or_a_502(data: bytes) -> None:
    for nph in (False, True):
        parser = OutputParser(nph)
        try:
            if parser.feed(data) is None:
                parser.eof()
        except ScriptOutputError as exc:
            assert exc.status == 502


# -- meta-variables


def variables(**overrides: object) -> dict[bytes, bytes]:
    args: dict[str, object] = {
        "method": "GET",
        "http_version": "1.1",
        "scheme": "http",
        "headers": [(b"host", b"example.test:8080")],
        "query": b"a=%20",
        "script_name": b"/cgi-bin/x",
        "path_info": b"",
        "path_translated": None,
        "server": ("127.0.0.1", 8080),
        "client": ("10.0.0.1", 5555),
        "content_length": None,
        "server_software": b"tricorn",
    }
    args.update(overrides)
    return meta_variables(**args)  # type: ignore[arg-type]


def test_required_variables() -> None:
    env = variables()
    assert env == {
        b"GATEWAY_INTERFACE": b"CGI/1.1",
        b"PATH": b"/usr/local/bin:/usr/bin:/bin",
        b"REQUEST_METHOD": b"GET",
        b"SCRIPT_NAME": b"/cgi-bin/x",
        b"PATH_INFO": b"",
        b"QUERY_STRING": b"a=%20",
        b"SERVER_SOFTWARE": b"tricorn",
        b"SERVER_PROTOCOL": b"HTTP/1.1",
        b"HTTP_HOST": b"example.test:8080",
        b"SERVER_NAME": b"example.test",
        b"SERVER_PORT": b"8080",
        b"REMOTE_ADDR": b"10.0.0.1",
        b"REMOTE_HOST": b"10.0.0.1",
        b"REMOTE_PORT": b"5555",
        b"REQUEST_SCHEME": b"http",
    }


def test_https_h2_and_path_info() -> None:
    env = variables(
        scheme="https", http_version="2", path_info=b"/a b", path_translated=b"/srv/a b", content_length=0
    )
    assert env[b"HTTPS"] == b"on"
    assert env[b"SERVER_PROTOCOL"] == b"HTTP/2.0"
    assert env[b"PATH_INFO"] == b"/a b" and env[b"PATH_TRANSLATED"] == b"/srv/a b"
    assert env[b"CONTENT_LENGTH"] == b"0"


@pytest.mark.parametrize(
    ("host", "name"), [(b"[::1]:8000", b"[::1]"), (b"[::1]", b"[::1]"), (b"a.test", b"a.test")]
)
def test_server_name_from_host(host: bytes, name: bytes) -> None:
    assert variables(headers=[(b"host", host)])[b"SERVER_NAME"] == name


def test_server_name_without_host() -> None:
    assert variables(headers=[])[b"SERVER_NAME"] == b"127.0.0.1"


def test_fields_passed_and_not() -> None:
    env = variables(
        headers=[
            (b"host", b"h"),
            (b"proxy", b"http://evil"),
            (b"authorization", b"Basic x"),
            (b"proxy-authorization", b"Basic y"),
            (b"content-type", b"text/plain"),
            (b"content-length", b"5"),
            (b"transfer-encoding", b"chunked"),
            (b"connection", b"keep-alive"),
            (b"te", b"trailers"),
            (b"upgrade", b"h2c"),
            (b"x_under", b"1"),
            (b"x-dash", b"1"),
            (b"x-dash", b"2"),
            (b"cookie", b"a=1"),
            (b"cookie", b"b=2"),
        ]
    )
    http = {k: v for k, v in env.items() if k.startswith(b"HTTP_")}
    assert http == {b"HTTP_HOST": b"h", b"HTTP_X_DASH": b"1, 2", b"HTTP_COOKIE": b"a=1; b=2"}
    assert env[b"CONTENT_TYPE"] == b"text/plain"
    assert b"CONTENT_LENGTH" not in env  # (given by the caller, from the body it will stream)
