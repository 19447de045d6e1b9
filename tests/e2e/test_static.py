"""Static files end to end (--static PREFIX=DIR): real files in a temp dir, a real server, curl, httpx
(HTTP/1.1, HTTP/2, TLS) and raw sockets for ranges, conditionals and every traversal attempt."""

from __future__ import annotations

import email.parser
import gzip
import os
import re
import socket
import ssl
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme

from tests.conftest import TricornProcess, raw_request, rss_kib, wait_for

pytestmark = pytest.mark.e2e

BIG = bytes(range(256)) * 4096 * 2  # 2 MiB: sent with sendfile, not held in memory
SMALL = b"body { color: red }\n"


@pytest.fixture(scope="module")
def docroot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("docroot")
    (root / "app.css").write_bytes(SMALL)
    (root / "big.bin").write_bytes(BIG)
    (root / "empty.txt").write_bytes(b"")
    (root / "app.0123456789ab.js").write_bytes(b"console.log(1)\n")
    (root / "page.html").write_bytes(b"<p>plain</p>\n")
    (root / "page.html.gz").write_bytes(gzip.compress(b"<p>plain</p>\n"))
    (root / "page.html.br").write_bytes(b"BROTLI-BYTES")
    (root / "dir").mkdir()
    (root / "dir" / "index.html").write_bytes(b"<h1>index</h1>\n")
    (root / "noindex").mkdir()
    (root / "noindex" / "a <b>.txt").write_bytes(b"a\n")
    (root / "noindex" / ".hidden").write_bytes(b"h\n")
    (root / "noindex" / "sub").mkdir()
    (root / ".env").write_bytes(b"SECRET=1\n")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_bytes(b"[core]\n")
    (root / ".well-known").mkdir()
    (root / ".well-known" / "security.txt").write_bytes(b"Contact: x\n")
    (root / "café.txt").write_bytes(b"unicode\n")
    (root / "100%.txt").write_bytes(b"percent\n")
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.txt").write_bytes(b"outside\n")
    (root / "escape").symlink_to(outside / "secret.txt")
    (root / "escape-dir").symlink_to(outside)
    (root / "inside-link.css").symlink_to(root / "app.css")
    (root / "loop").symlink_to(root)  # the directory itself under another name
    (root / "devnull").symlink_to("/dev/null")
    os.mkfifo(root / "fifo")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "sock"))
    sock.close()
    return root


@pytest.fixture(scope="module")
def server(docroot: Path) -> Iterator[TricornProcess]:
    proc = TricornProcess(["tests.apps.ws_apps:app", "--static", f"/static={docroot}"]).wait_ready()
    yield proc
    proc.close()


def get(
    port: int, target: str, headers: str = "", method: str = "GET"
) -> tuple[bytes, dict[str, str], bytes]:
    """One request on a raw socket, the path exactly as given: (status line, lowercased fields, body)."""
    data = raw_request(
        port, f"{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n".encode()
    )
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    fields = {}
    for line in lines[1:]:
        name, _, value = line.decode("latin-1").partition(":")
        fields[name.strip().lower()] = value.strip()
    return lines[0], fields, body


def test_a_small_file_with_its_validators(server: TricornProcess, docroot: Path) -> None:
    status, fields, body = get(server.port, "/static/app.css")
    assert status == b"HTTP/1.1 200 OK"
    assert body == SMALL
    assert fields["content-type"] == "text/css; charset=utf-8"
    assert fields["content-length"] == str(len(SMALL))
    assert re.fullmatch(r'"[0-9a-f]+-[0-9a-f]+"', fields["etag"])
    assert fields["last-modified"].endswith(" GMT")
    assert fields["accept-ranges"] == "bytes"
    assert fields["cache-control"] == "public, max-age=60"
    assert "vary" not in fields


def test_a_large_file_is_sent_whole(server: TricornProcess) -> None:
    response = httpx.get(f"{server.url}/static/big.bin")
    assert response.status_code == 200 and response.content == BIG
    assert response.headers["content-type"] == "application/octet-stream"
    # keep-alive holds after a sendfile response: the next request on the same connection is answered
    with httpx.Client() as client:
        for _ in range(3):
            assert client.get(f"{server.url}/static/big.bin").content == BIG
            assert client.get(f"{server.url}/static/app.css").content == SMALL


def test_curl_downloads_match(server: TricornProcess, tmp_path: Path) -> None:
    out = tmp_path / "out"
    subprocess.run(["curl", "-sSf", "-o", str(out), f"{server.url}/static/big.bin"], check=True)
    assert out.read_bytes() == BIG
    result = subprocess.run(
        ["curl", "-sSf", "-r", "100-199", f"{server.url}/static/big.bin"], check=True, capture_output=True
    )
    assert result.stdout == BIG[100:200]


def test_hashed_names_are_immutable_and_empty_files_served(server: TricornProcess) -> None:
    _, fields, body = get(server.port, "/static/app.0123456789ab.js")
    assert fields["cache-control"] == "public, max-age=31536000, immutable"
    assert fields["content-type"] == "text/javascript; charset=utf-8"
    status, fields, body = get(server.port, "/static/empty.txt")
    assert status.endswith(b"200 OK") and fields["content-length"] == "0" and body == b""


def test_head_has_the_fields_and_no_body(server: TricornProcess) -> None:
    for name, size in (("app.css", len(SMALL)), ("big.bin", len(BIG))):
        status, fields, body = get(server.port, f"/static/{name}", method="HEAD")
        assert status.endswith(b"200 OK") and fields["content-length"] == str(size) and body == b""


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
def test_other_methods_are_405_with_allow(server: TricornProcess, method: str) -> None:
    status, fields, _ = get(server.port, "/static/app.css", "Content-Length: 0\r\n", method=method)
    assert status.endswith(b"405 Method Not Allowed")
    assert fields["allow"] == "GET, HEAD"


def test_conditionals(server: TricornProcess) -> None:
    port = server.port
    _, fields, _ = get(port, "/static/app.css")
    etag, modified = fields["etag"], fields["last-modified"]
    status, fields304, body = get(port, "/static/app.css", f"If-None-Match: {etag}\r\n")
    assert status.endswith(b"304 Not Modified") and body == b"" and fields304["etag"] == etag
    assert get(port, "/static/app.css", f'If-None-Match: "x", W/{etag}\r\n')[0].endswith(b"304 Not Modified")
    assert get(port, "/static/app.css", "If-None-Match: *\r\n")[0].endswith(b"304 Not Modified")
    assert get(port, "/static/app.css", 'If-None-Match: "other"\r\n')[0].endswith(b"200 OK")
    assert get(port, "/static/app.css", f"If-Modified-Since: {modified}\r\n")[0].endswith(b"304 Not Modified")
    old = "Sat, 01 Jan 2000 00:00:00 GMT"
    assert get(port, "/static/app.css", f"If-Modified-Since: {old}\r\n")[0].endswith(b"200 OK")
    # If-None-Match wins over If-Modified-Since (RFC 9110 §13.2.2)
    assert get(port, "/static/app.css", f'If-None-Match: "x"\r\nIf-Modified-Since: {modified}\r\n')[
        0
    ].endswith(b"200 OK")
    assert get(port, "/static/app.css", 'If-Match: "other"\r\n')[0].endswith(b"412 Precondition Failed")
    assert get(port, "/static/app.css", f"If-Match: W/{etag}\r\n")[0].endswith(b"412 Precondition Failed")
    assert get(port, "/static/app.css", f"If-Match: {etag}\r\n")[0].endswith(b"200 OK")
    assert get(port, "/static/app.css", f"If-Unmodified-Since: {old}\r\n")[0].endswith(
        b"412 Precondition Failed"
    )
    assert get(port, "/static/app.css", f"If-Unmodified-Since: {modified}\r\n")[0].endswith(b"200 OK")
    assert get(port, "/static/app.css", "If-Modified-Since: garbage\r\n")[0].endswith(b"200 OK")


@pytest.mark.parametrize("name", ["app.css", "big.bin"])
def test_ranges(server: TricornProcess, name: str) -> None:
    port = server.port
    data = SMALL if name == "app.css" else BIG
    size = len(data)
    cases = {
        "bytes=0-4": (0, 4),
        "bytes=5-": (5, size - 1),
        "bytes=-6": (size - 6, size - 1),
        "bytes=3-999999999": (3, size - 1),
    }
    for spec, (first, last) in cases.items():
        status, fields, body = get(port, f"/static/{name}", f"Range: {spec}\r\n")
        assert status.endswith(b"206 Partial Content"), spec
        assert fields["content-range"] == f"bytes {first}-{last}/{size}"
        assert body == data[first : last + 1]
    status, fields, body = get(port, f"/static/{name}", f"Range: bytes={size}-\r\n")
    assert status.endswith(b"416 Range Not Satisfiable") and fields["content-range"] == f"bytes */{size}"
    assert get(port, f"/static/{name}", "Range: bytes=-0\r\n")[0].endswith(b"416 Range Not Satisfiable")
    # ignored: another unit, bad syntax, a reversed range -> the whole file
    for spec in ("items=0-1", "bytes=a-b", "bytes=5-1", "bytes="):
        status, _, body = get(port, f"/static/{name}", f"Range: {spec}\r\n")
        assert status.endswith(b"200 OK") and body == data, spec
    # HEAD ignores Range (RFC 9110 §14.2: GET only)
    assert get(port, f"/static/{name}", "Range: bytes=0-1\r\n", method="HEAD")[0].endswith(b"200 OK")


@pytest.mark.parametrize("name", ["app.css", "big.bin"])
def test_multiple_ranges_are_multipart_byteranges(server: TricornProcess, name: str) -> None:
    data = SMALL if name == "app.css" else BIG
    size = len(data)
    status, fields, body = get(server.port, f"/static/{name}", "Range: bytes=0-2, 10-12, -3\r\n")
    assert status.endswith(b"206 Partial Content")
    assert fields["content-type"].startswith("multipart/byteranges; boundary=")
    assert int(fields["content-length"]) == len(body)
    message = email.parser.BytesParser().parsebytes(
        b"Content-Type: " + fields["content-type"].encode() + b"\r\n\r\n" + body
    )
    parts = message.get_payload()
    assert isinstance(parts, list) and len(parts) == 3
    expected = [(0, 2), (10, 12), (size - 3, size - 1)]
    for part, (first, last) in zip(parts, expected, strict=True):
        assert part["Content-Range"] == f"bytes {first}-{last}/{size}"
        assert part.get_payload(decode=True) == data[first : last + 1]


def test_if_range(server: TricornProcess) -> None:
    port = server.port
    _, fields, _ = get(port, "/static/app.css")
    etag, modified = fields["etag"], fields["last-modified"]
    assert get(port, "/static/app.css", f"Range: bytes=0-1\r\nIf-Range: {etag}\r\n")[0].endswith(
        b"206 Partial Content"
    )
    assert get(port, "/static/app.css", f"Range: bytes=0-1\r\nIf-Range: {modified}\r\n")[0].endswith(
        b"206 Partial Content"
    )
    status, _, body = get(port, "/static/app.css", 'Range: bytes=0-1\r\nIf-Range: "old"\r\n')
    assert status.endswith(b"200 OK") and body == SMALL
    assert get(port, "/static/app.css", f"Range: bytes=0-1\r\nIf-Range: W/{etag}\r\n")[0].endswith(b"200 OK")


def test_precompressed_siblings_by_accept_encoding(server: TricornProcess, docroot: Path) -> None:
    port = server.port
    cases = {
        "gzip, br": ("br", b"BROTLI-BYTES"),
        "gzip": ("gzip", (docroot / "page.html.gz").read_bytes()),
        "br;q=0.5, gzip;q=0.8": ("gzip", (docroot / "page.html.gz").read_bytes()),
        "br;q=0, gzip;q=0": (None, b"<p>plain</p>\n"),
        "identity": (None, b"<p>plain</p>\n"),
        "*": ("br", b"BROTLI-BYTES"),
        "deflate": (None, b"<p>plain</p>\n"),
    }
    for accept, (encoding, body) in cases.items():
        _, fields, got = get(port, "/static/page.html", f"Accept-Encoding: {accept}\r\n")
        assert fields.get("content-encoding") == encoding, accept
        assert got == body, accept
        assert fields["vary"] == "accept-encoding"
        assert fields["content-type"] == "text/html; charset=utf-8"
    _, fields, got = get(port, "/static/page.html")
    assert "content-encoding" not in fields and got == b"<p>plain</p>\n"
    # each representation has its own validator
    etags = {
        get(port, "/static/page.html", f"Accept-Encoding: {a}\r\n")[1]["etag"] for a in ("br", "gzip", "x")
    }
    assert len(etags) == 3
    # a file without siblings has no Vary
    assert "vary" not in get(port, "/static/app.css", "Accept-Encoding: br\r\n")[1]


def test_directories(server: TricornProcess) -> None:
    port = server.port
    status, fields, _ = get(port, "/static/dir?x=1")
    assert status.endswith(b"301 Moved Permanently") and fields["location"] == "/static/dir/?x=1"
    status, _, body = get(port, "/static/dir/")
    assert status.endswith(b"200 OK") and body == b"<h1>index</h1>\n"
    assert get(port, "/static/noindex/")[0].endswith(b"404 Not Found")  # no listing by default
    assert get(port, "/static/dir/index.html/")[0].endswith(b"404 Not Found")  # a file is no directory
    status, _, body = get(port, "/static")
    assert status.endswith(b"301 Moved Permanently")


def test_names_that_need_decoding(server: TricornProcess) -> None:
    assert get(server.port, "/static/caf%C3%A9.txt")[2] == b"unicode\n"
    assert get(server.port, "/static/100%25.txt")[2] == b"percent\n"
    assert get(server.port, "/static/.well-known/security.txt")[2] == b"Contact: x\n"
    assert get(server.port, "/static/inside-link.css")[2] == SMALL  # a symlink that stays inside
    assert get(server.port, "/static/nothing-here.css")[0].endswith(b"404 Not Found")


# target -> status: every attempt to leave the directory or reach what must not be served
REFUSED = {
    "/static/../secret": 400,
    "/static/%2e%2e/secret": 400,
    "/static/%2E%2E/%2e%2e/etc/passwd": 400,
    "/static/.%2e/x": 400,
    "/static/./app.css": 400,
    "/static/dir/../app.css": 400,
    "/static/..%2fsecret": 400,
    "/static/%2fetc/passwd": 400,
    "/static/dir%2F..%2Fapp.css": 400,
    "/static/%5c..%5capp.css": 400,
    "/static/%252e%252e/secret": 400,
    "/static/%252fetc": 400,
    "/static/..\\app.css": 400,
    "/static/a%00.css": 400,
    "/static/app.css%00.txt": 400,
    "/static/%c0%ae%c0%ae/secret": 400,
    "/static/%e0%80%ae": 400,
    "/static/%ff": 400,
    "/static/%zz": 400,
    "/static/%2": 400,
    "/static//etc/passwd": 400,
    "/static/dir//index.html": 400,
    "/static/%0a": 400,
    "/static/.env": 404,
    "/static/.git/config": 404,
    "/static/dir/.env": 404,
    "/static/escape": 403,
    "/static/escape-dir/secret.txt": 403,
    "/static/loop/": 403,
    "/static/fifo": 403,
    "/static/sock": 403,
}


@pytest.mark.parametrize("target", list(REFUSED))
def test_traversal_and_special_files_are_refused_with_one_log_line(
    server: TricornProcess, target: str
) -> None:
    before = server.output().count(" static: ")
    status, _, body = get(server.port, target)
    assert status.split(b" ")[1] == str(REFUSED[target]).encode(), (target, status)
    assert b"outside" not in body and b"SECRET" not in body and b"root:" not in body
    wait_for(lambda: server.output().count(" static: ") == before + 1, what=f"one log line for {target}")


def test_the_app_is_served_beside_the_static_files(server: TricornProcess) -> None:
    assert httpx.get(f"{server.url}/staticx").text == "plain http: /staticx"  # the app's, not a 404 of ours
    assert httpx.get(f"{server.url}/other").text == "plain http: /other"


def test_a_websocket_to_a_static_prefix_is_a_404(server: TricornProcess) -> None:
    request = (
        b"GET /static/app.css HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    data = raw_request(server.port, request)
    assert data.startswith(b"HTTP/1.1 404 ")
    ok = request.replace(b"/static/app.css", b"/echo")
    assert raw_request(server.port, ok, read_all=False).startswith(b"HTTP/1.1 101 ")


def test_listing_and_follow_symlinks(docroot: Path, tricorn: type[TricornProcess]) -> None:
    server = tricorn(
        [
            "--static",
            f"/files={docroot}",
            "--static-list",
            "--static-follow-symlinks",
            "--static-max-age",
            "0",
        ]
    ).wait_ready()
    status, fields, body = get(server.port, "/files/noindex/")
    assert status.endswith(b"200 OK") and fields["content-type"] == "text/html; charset=utf-8"
    assert b'<a href="a%20%3Cb%3E.txt">a &lt;b&gt;.txt</a>' in body
    assert b'href="sub/"' in body and b".hidden" not in body
    assert get(server.port, "/files/escape")[2] == b"outside\n"
    assert get(server.port, "/files/escape-dir/secret.txt")[2] == b"outside\n"
    assert get(server.port, "/files/devnull")[0].endswith(b"403 Forbidden")  # a device, even followed
    assert get(server.port, "/files/app.css")[1]["cache-control"] == "no-cache"
    assert get(server.port, "/files/.env")[0].endswith(b"404 Not Found")


def test_a_directory_alone_without_an_app(docroot: Path, tricorn: type[TricornProcess]) -> None:
    server = tricorn(["--static", f"/={docroot / 'dir'}"]).wait_ready()
    status, _, body = get(server.port, "/")
    assert status.endswith(b"200 OK") and body == b"<h1>index</h1>\n"
    assert get(server.port, "/index.html")[2] == b"<h1>index</h1>\n"
    status, _, body = get(server.port, "/echo")  # the demo's echo page is not behind it
    assert status.endswith(b"404 Not Found") and body == b"404 not found\n"


def test_bad_static_settings_stop_the_start_with_one_line(
    docroot: Path, tricorn: type[TricornProcess]
) -> None:
    for args, words in (
        (["tests.apps.basic:app", "--static", f"/={docroot}"], "leaves no path"),
        (["--static", f"static={docroot}"], "plain path"),
        (["--static", "/s=/no/such/dir"], "not a directory"),
        (["--static", "/s"], "PREFIX=DIR"),
        (["--static", f"/s={docroot}", "--static", f"/s/={docroot}"], "given twice"),
    ):
        proc = tricorn(args)
        assert proc.wait() == 2, args
        assert words in proc.output() and "Traceback" not in proc.output()


# -- other protocols and processes


class Certs:
    """A server certificate for 127.0.0.1; ``context()`` a fresh client context trusting it (httpx sets
    ALPN on the context it is given, so each client gets its own)."""

    def __init__(self, root: Path) -> None:
        self.ca = trustme.CA()
        cert = self.ca.issue_cert("127.0.0.1")
        cert.private_key_pem.write_to_path(str(root / "key.pem"))
        cert.cert_chain_pems[0].write_to_path(str(root / "cert.pem"))
        self.args = ["--ssl-certfile", str(root / "cert.pem"), "--ssl-keyfile", str(root / "key.pem")]

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return Certs(tmp_path_factory.mktemp("certs"))


def _check_client(client: httpx.Client, base: str) -> None:
    assert client.get(f"{base}/static/big.bin").content == BIG
    assert client.get(f"{base}/static/app.css").content == SMALL
    response = client.get(f"{base}/static/big.bin", headers={"Range": "bytes=1000-1999"})
    assert response.status_code == 206 and response.content == BIG[1000:2000]
    response = client.get(f"{base}/static/big.bin", headers={"Range": "bytes=0-0,-1"})
    assert response.status_code == 206 and response.headers["content-type"].startswith("multipart/byteranges")
    assert client.head(f"{base}/static/big.bin").headers["content-length"] == str(len(BIG))
    assert client.get(f"{base}/static/../x").status_code in (400, 404)  # httpx normalises the path


def test_over_http2_tls_and_workers(docroot: Path, tricorn: type[TricornProcess], certs: Certs) -> None:
    args = certs.args
    plain = tricorn(["tests.apps.basic:app", "--static", f"/static={docroot}", "--workers", "2"]).wait_ready()
    with httpx.Client(http1=False, http2=True) as client:  # h2c by prior knowledge
        _check_client(client, plain.url)
        assert client.get(f"{plain.url}/static/app.css").http_version == "HTTP/2"
    with httpx.Client() as client:
        _check_client(client, plain.url)
    tls = tricorn(["tests.apps.basic:app", "--static", f"/static={docroot}", *args]).wait_ready()
    base = f"https://127.0.0.1:{tls.port}"
    for http2 in (False, True):
        with httpx.Client(verify=certs.context(), http1=not http2, http2=http2) as client:
            _check_client(client, base)
            assert client.get(f"{base}/static/app.css").http_version == ("HTTP/2" if http2 else "HTTP/1.1")


@pytest.mark.parametrize("mode", ["cleartext", "tls", "h2"])
def test_a_slow_reader_of_a_huge_file_holds_bounded_memory(
    tmp_path: Path,
    tricorn: type[TricornProcess],
    certs: Certs,
    mode: str,
) -> None:
    with open(tmp_path / "huge.bin", "wb") as file:
        file.truncate(1 << 30)  # a sparse 1 GiB file
    server = tricorn(["--static", f"/={tmp_path}", *(certs.args if mode == "tls" else [])]).wait_ready()
    start = rss_kib(server.proc.pid)
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock: socket.socket = (
        certs.context().wrap_socket(raw, server_hostname="127.0.0.1") if mode == "tls" else raw
    )
    with sock:
        if mode == "h2":
            import h2.connection

            conn = h2.connection.H2Connection()
            conn.initiate_connection()
            conn.send_headers(
                1,
                [(":method", "GET"), (":path", "/huge.bin"), (":scheme", "http"), (":authority", "x")],
                end_stream=True,
            )
            sock.sendall(conn.data_to_send())
            # The client never opens its window beyond the initial 64 KiB: the server must wait.
        else:
            sock.sendall(b"GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        received = 0
        peak = start
        while received < (2 << 20 if mode != "h2" else 60000):
            chunk = sock.recv(16384)
            assert chunk, server.output()
            received += len(chunk)
            peak = max(peak, rss_kib(server.proc.pid))
        for _ in range(50):  # the server has had every chance to read ahead
            peak = max(peak, rss_kib(server.proc.pid))
        assert peak - start < 64 * 1024, (start, peak)
    assert server.proc.poll() is None


def test_pathsend_zerocopysend_and_starlette(
    docroot: Path, tricorn: type[TricornProcess], certs: Certs
) -> None:
    env = {"FILE_DIR": str(docroot)}
    plain = tricorn(["tests.apps.file_apps:raw", "--lifespan", "off"], env=env).wait_ready()
    tls = tricorn(["tests.apps.file_apps:raw", "--lifespan", "off", *certs.args], env=env).wait_ready()
    star = tricorn(["tests.apps.file_apps:starlette_app"], env=env).wait_ready()
    for base, verify, http2 in (
        (plain.url, True, False),
        (plain.url, True, True),
        (f"https://127.0.0.1:{tls.port}", certs.context(), False),
        (f"https://127.0.0.1:{tls.port}", certs.context(), True),
    ):
        with httpx.Client(verify=verify, http1=not http2, http2=http2) as client:
            names = client.get(f"{base}/extensions").text.split()
            assert "http.response.pathsend" in names and "http.response.zerocopysend" in names
            for kind in ("pathsend", "zerocopy"):
                for name, data in (("big.bin", BIG), ("app.css", SMALL)):
                    assert client.get(f"{base}/{kind}/{name}").content == data, (base, http2, kind)
            response = client.get(f"{base}/zerocopy-part/big.bin?1000,5000")
            assert response.content == BIG[1000:6000] + b"|end"
            assert client.head(f"{base}/pathsend/big.bin").content == b""
            with pytest.raises(httpx.HTTPError):  # the response had begun: it is cut
                client.get(f"{base}/pathsend-missing/app.css")
    for http2 in (False, True):
        with httpx.Client(http1=not http2, http2=http2) as client:
            response = client.get(f"{star.url}/big.bin")
            assert response.status_code == 200 and response.content == BIG
            assert client.get(f"{star.url}/big.bin", headers={"Range": "bytes=5-9"}).content == BIG[5:10]


@pytest.mark.parametrize("tls", [False, True])
def test_a_client_that_stops_reading_is_cut_after_timeout_send(
    tmp_path: Path, tricorn: type[TricornProcess], certs: Certs, tls: bool
) -> None:
    with open(tmp_path / "big.bin", "wb") as file:
        file.truncate(256 << 20)
    server = tricorn(
        ["--static", f"/={tmp_path}", "--timeout-send", "1", *(certs.args if tls else [])]
    ).wait_ready()
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    sock = certs.context().wrap_socket(raw, server_hostname="127.0.0.1") if tls else raw
    with sock:
        sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_for(
            lambda: "response not taken by the client in time" in server.output(), what="the send timeout"
        )
    base = f"https://127.0.0.1:{server.port}" if tls else server.url
    response = httpx.get(f"{base}/big.bin", headers={"Range": "bytes=0-9"}, verify=certs.context())
    assert response.content == bytes(10)
    assert server.output().count("response not taken by the client in time") == 1


def test_over_a_unix_socket(docroot: Path, tricorn: type[TricornProcess]) -> None:
    # sendfile onto a Unix socket, which has no cork: the same bytes, keep-alive after each.
    with tempfile.TemporaryDirectory(prefix="tricorn-", dir="/tmp") as short:  # (a short socket path)
        path = os.path.join(short, "s.sock")
        server = tricorn(["--static", f"/={docroot}", "--bind", f"unix:{path}"])
        wait_for(lambda: os.path.exists(path), what="the unix socket")
        with httpx.Client(transport=httpx.HTTPTransport(uds=path), base_url="http://tricorn") as client:
            for _ in range(3):
                assert client.get("/big.bin").content == BIG
                assert client.get("/big.bin", headers={"Range": "bytes=7-"}).content == BIG[7:]
                assert client.get("/app.css").content == SMALL
        assert "Traceback" not in server.output()
