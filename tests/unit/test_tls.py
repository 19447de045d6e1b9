"""tricorn.io.tls: the server's SSL context and its one-line errors, the ASGI tls scope extension from real
handshakes, and the diagnoses of wrong protocols and failed handshakes.

Certificates are made at test time by trustme: a CA, a server certificate, client certificates (one issued
by an intermediate CA, so the client sends a chain), an encrypted key and a key that matches nothing.
Handshakes run between two ssl.SSLObject over memory BIOs (what asyncio and uvloop use), byte for byte,
without sockets or threads; one test runs them through real event loops.
"""

from __future__ import annotations

import _ssl
import asyncio
import contextlib
import dataclasses
import socket
import ssl
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from tricorn.config import Config
from tricorn.errors import ConfigError
from tricorn.io.tls import (
    TLSContext,
    TLSInfo,
    _rfc4514,
    alpn_protocol,
    create_ssl_context,
    describe_handshake_error,
    looks_like_tls_client_hello,
    tls_scope_info,
)

PASSWORD = "correct horse"
CLIENT_CN = 'Alice "A", +1; <x> \\ #'


@dataclasses.dataclass(frozen=True)
class Pki:
    ca: trustme.CA
    server: trustme.LeafCert
    client: trustme.LeafCert  # issued by an intermediate CA: its chain has two certificates
    stranger: trustme.LeafCert  # issued by a CA the server does not trust
    dir: Path

    def path(self, name: str) -> str:
        return str(self.dir / name)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1")
    client = ca.create_child_ca().issue_cert(
        "alice@example.com", common_name=CLIENT_CN, organization_name=" Example, Inc. "
    )
    stranger = trustme.CA().issue_cert("mallory@example.com")
    server.cert_chain_pems[0].write_to_path(str(directory / "cert.pem"))
    server.private_key_pem.write_to_path(str(directory / "key.pem"))
    server.private_key_and_cert_chain_pem.write_to_path(str(directory / "combined.pem"))
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    ca.issue_cert("other").private_key_pem.write_to_path(str(directory / "other-key.pem"))
    key = serialization.load_pem_private_key(server.private_key_pem.bytes(), None)
    for name, form in [
        ("encrypted-key.pem", serialization.PrivateFormat.PKCS8),
        ("encrypted-traditional-key.pem", serialization.PrivateFormat.TraditionalOpenSSL),
    ]:
        encryption = serialization.BestAvailableEncryption(PASSWORD.encode())
        (directory / name).write_bytes(key.private_bytes(serialization.Encoding.PEM, form, encryption))
    (directory / "empty.pem").write_bytes(b"")
    (directory / "text.pem").write_text("not a certificate\n")
    # A certificate whose base64 survives but whose DER does not parse.
    lines = server.cert_chain_pems[0].bytes().splitlines()
    lines[1] = b"A" * len(lines[1])
    (directory / "damaged-cert.pem").write_bytes(b"\n".join(lines) + b"\n")
    lines = server.private_key_pem.bytes().splitlines()
    lines[1] = b"A" * len(lines[1])
    (directory / "damaged-key.pem").write_bytes(b"\n".join(lines) + b"\n")
    return Pki(ca, server, client, stranger, directory)


def server_context(pki: Pki, **settings: Any) -> TLSContext:
    settings.setdefault("ssl_certfile", pki.path("cert.pem"))
    settings.setdefault("ssl_keyfile", pki.path("key.pem"))
    if settings.get("ssl_cert_reqs", "none") != "none":
        settings.setdefault("ssl_ca_certs", pki.path("ca.pem"))
    context = create_ssl_context(Config(**settings))
    assert context is not None
    return context


def client_context(
    pki: Pki,
    cert: trustme.LeafCert | None = None,
    alpn: list[str] | None = None,
    max_version: ssl.TLSVersion | None = None,
    ciphers: str | None = None,
) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    pki.ca.configure_trust(context)
    if cert is not None:
        cert.configure_cert(context)
    if alpn is not None:
        context.set_alpn_protocols(alpn)
    if max_version is not None:
        context.maximum_version = max_version
    if ciphers is not None:
        context.set_ciphers(ciphers)
    return context


@dataclasses.dataclass
class Handshake:
    server: ssl.SSLObject
    client: ssl.SSLObject
    server_error: BaseException | None
    client_error: BaseException | None


def handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> Handshake:
    """Run a handshake between two SSLObjects, passing the bytes each writes to the other until both are
    done or one fails. A TLS 1.3 server learns that the client rejected it only after its own handshake
    is done, so the server then reads once, to see the alert."""
    server_in, server_out, client_in, client_out = (ssl.MemoryBIO() for _ in range(4))
    server = server_ctx.wrap_bio(server_in, server_out, server_side=True)
    client = client_ctx.wrap_bio(client_in, client_out, server_hostname="localhost")
    result = Handshake(server, client, None, None)
    server_done = client_done = False
    for _ in range(10):
        if not client_done and result.client_error is None:
            client_done, result.client_error = step(client.do_handshake)
        server_in.write(client_out.read())
        if not server_done and result.server_error is None:
            server_done, result.server_error = step(server.do_handshake)
        client_in.write(server_out.read())
    if server_done and client_done:
        _, result.server_error = step(lambda: server.read(1))
    return result


def step(call: Callable[[], object]) -> tuple[bool, BaseException | None]:
    try:
        call()
    except ssl.SSLWantReadError:
        return False, None
    except (ssl.SSLError, OSError) as exc:
        return False, exc
    return True, None


def completed(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> ssl.SSLObject:
    result = handshake(server_ctx, client_ctx)
    assert (result.server_error, result.client_error) == (None, None)
    return result.server


def server_error(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> BaseException:
    error = handshake(server_ctx, client_ctx).server_error
    assert error is not None
    return error


def server_error_for_bytes(server_ctx: ssl.SSLContext, data: bytes, eof: bool = False) -> BaseException:
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    server = server_ctx.wrap_bio(incoming, outgoing, server_side=True)
    incoming.write(data)
    if eof:
        incoming.write_eof()
    with pytest.raises(ssl.SSLError) as info:
        server.do_handshake()
    return info.value


def config_error(**settings: Any) -> str:
    with pytest.raises(ConfigError) as info:
        create_ssl_context(Config(**settings))
    message = str(info.value)
    assert "\n" not in message
    return message


# -- The context --------------------------------------------------------------------------------------------


def test_no_certificate_no_context() -> None:
    assert create_ssl_context(Config()) is None


def test_context_settings(pki: Pki) -> None:
    context = server_context(pki)
    assert isinstance(context, TLSContext)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.options & ssl.OP_NO_COMPRESSION
    assert context.options & ssl.OP_NO_RENEGOTIATION
    assert context.verify_mode == ssl.CERT_NONE
    assert context.server_cert == pki.server.cert_chain_pems[0].bytes().decode()


def test_default_tls12_ciphers_are_ecdhe_and_aead_only(pki: Pki) -> None:
    # RFC 9113 §9.2.2 and its Appendix A: HTTP/2 over TLS 1.2 must not use non-ephemeral or non-AEAD
    # suites, and must support TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256.
    tls12 = [c for c in server_context(pki).get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert tls12
    assert all(c["kea"] == "kx-ecdhe" and c["aead"] for c in tls12)
    assert "ECDHE-RSA-AES128-GCM-SHA256" in {c["name"] for c in tls12}


def test_ciphers_setting(pki: Pki) -> None:
    context = server_context(pki, ssl_ciphers="ECDHE-ECDSA-CHACHA20-POLY1305")
    tls12 = [c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert tls12 == ["ECDHE-ECDSA-CHACHA20-POLY1305"]


@pytest.mark.parametrize(
    ("reqs", "mode"),
    [("none", ssl.CERT_NONE), ("optional", ssl.CERT_OPTIONAL), ("required", ssl.CERT_REQUIRED)],
)
def test_verify_modes(pki: Pki, reqs: str, mode: ssl.VerifyMode) -> None:
    assert server_context(pki, ssl_cert_reqs=reqs).verify_mode == mode


@pytest.mark.parametrize("key_first", [True, False])
def test_combined_certificate_and_key_file(pki: Pki, key_first: bool) -> None:
    cert, key = (pki.dir / "cert.pem").read_bytes(), (pki.dir / "key.pem").read_bytes()
    combined = pki.dir / f"combined-{key_first}.pem"
    combined.write_bytes(key + cert if key_first else cert + key)
    context = server_context(pki, ssl_certfile=str(combined), ssl_keyfile=None)
    assert context.server_cert == pki.server.cert_chain_pems[0].bytes().decode()
    completed(context, client_context(pki))


@pytest.mark.parametrize("key", ["encrypted-key.pem", "encrypted-traditional-key.pem"])
def test_encrypted_key_with_its_password(pki: Pki, key: str) -> None:
    context = server_context(pki, ssl_keyfile=pki.path(key), ssl_keyfile_password=PASSWORD)
    completed(context, client_context(pki))


# -- Its errors: one line, naming the setting -------------------------------------------------------------


def test_unreadable_files(pki: Pki) -> None:
    missing = pki.path("missing.pem")
    assert config_error(ssl_certfile=missing) == (
        f"ssl_certfile: {missing!r} cannot be read (No such file or directory)"
    )
    assert config_error(ssl_certfile=pki.path("cert.pem"), ssl_keyfile=missing) == (
        f"ssl_keyfile: {missing!r} cannot be read (No such file or directory)"
    )
    assert config_error(
        ssl_certfile=pki.path("cert.pem"),
        ssl_keyfile=pki.path("key.pem"),
        ssl_ca_certs=str(pki.dir),
        ssl_cert_reqs="required",
    ) == (f"ssl_ca_certs: {str(pki.dir)!r} cannot be read (Is a directory)")


def test_files_without_what_they_should_hold(pki: Pki) -> None:
    cert, key, text, empty = (pki.path(n) for n in ("cert.pem", "key.pem", "text.pem", "empty.pem"))
    assert (
        config_error(ssl_certfile=empty, ssl_keyfile=key)
        == f"ssl_certfile: {empty!r} holds no PEM certificate"
    )
    assert (
        config_error(ssl_certfile=key, ssl_keyfile=key) == f"ssl_certfile: {key!r} holds no PEM certificate"
    )
    assert (
        config_error(ssl_certfile=cert, ssl_keyfile=text) == f"ssl_keyfile: {text!r} holds no PEM private key"
    )
    assert config_error(ssl_certfile=cert) == (
        f"ssl_certfile: {cert!r} holds no private key (add it to the file, or give ssl_keyfile)"
    )
    for ca in (empty, text, key):
        assert config_error(
            ssl_certfile=cert, ssl_keyfile=key, ssl_ca_certs=ca, ssl_cert_reqs="optional"
        ) == (f"ssl_ca_certs: {ca!r} holds no PEM certificates")


def test_damaged_files(pki: Pki) -> None:
    cert, key = pki.path("cert.pem"), pki.path("key.pem")
    damaged_cert, damaged_key = pki.path("damaged-cert.pem"), pki.path("damaged-key.pem")
    assert config_error(ssl_certfile=damaged_cert, ssl_keyfile=key) == (
        f"ssl_certfile: {damaged_cert!r} holds a certificate that cannot be parsed"
    )
    assert config_error(ssl_certfile=cert, ssl_keyfile=damaged_key) == (
        f"ssl_keyfile: {damaged_key!r} holds a private key that cannot be parsed"
    )
    message = config_error(
        ssl_certfile=cert, ssl_keyfile=key, ssl_ca_certs=damaged_cert, ssl_cert_reqs="optional"
    )
    assert message.startswith(f"ssl_ca_certs: {damaged_cert!r} cannot be used (")


def test_key_that_does_not_match(pki: Pki) -> None:
    cert, other = pki.path("cert.pem"), pki.path("other-key.pem")
    assert config_error(ssl_certfile=cert, ssl_keyfile=other) == (
        f"ssl_keyfile: {other!r} does not match the certificate in {cert!r}"
    )
    combined = pki.dir / "mismatched-combined.pem"
    combined.write_bytes(Path(other).read_bytes() + Path(cert).read_bytes())
    assert config_error(ssl_certfile=str(combined)) == (
        f"ssl_certfile: the private key in {str(combined)!r} does not match its certificate"
    )


@pytest.mark.parametrize("key", ["encrypted-key.pem", "encrypted-traditional-key.pem"])
def test_encrypted_key_password_errors(pki: Pki, key: str) -> None:
    cert, path = pki.path("cert.pem"), pki.path(key)
    # Never a prompt on the terminal (which would hang a server with no one at it).
    assert config_error(ssl_certfile=cert, ssl_keyfile=path) == (
        f"ssl_keyfile: {path!r} holds an encrypted private key and ssl_keyfile_password is not given"
    )
    message = config_error(ssl_certfile=cert, ssl_keyfile=path, ssl_keyfile_password="hunter2")
    assert message == f"ssl_keyfile_password: wrong password for {path!r}"  # and not the password


def test_a_password_for_a_plain_key_is_harmless(pki: Pki) -> None:
    server_context(pki, ssl_keyfile_password="unused")


def test_cipher_list_that_selects_nothing(pki: Pki) -> None:
    message = config_error(ssl_certfile=pki.path("combined.pem"), ssl_ciphers="NOTHING-LIKE-THIS")
    assert message == "ssl_ciphers: 'NOTHING-LIKE-THIS' selects no cipher suite this OpenSSL supports"


# -- ALPN ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("http2", "offered", "chosen"),
    [
        (True, ["h2", "http/1.1"], "h2"),
        (True, ["http/1.1", "h2"], "h2"),  # the server's preference wins
        (True, ["http/1.1"], "http/1.1"),
        (True, None, "http/1.1"),  # no ALPN at all: HTTP/1.1
        (True, ["spdy/3"], "http/1.1"),  # nothing in common: no protocol selected, not a failure
        (False, ["h2", "http/1.1"], "http/1.1"),
        (False, ["h2"], "http/1.1"),
    ],
)
def test_alpn(pki: Pki, http2: bool, offered: list[str] | None, chosen: str) -> None:
    server = completed(server_context(pki, http2=http2), client_context(pki, alpn=offered))
    assert alpn_protocol(server) == chosen
    if chosen == "h2":
        assert server.selected_alpn_protocol() == "h2"


# -- The ASGI tls extension ---------------------------------------------------------------------------------------

# IANA TLS cipher suite numbers (RFC 8446 §B.4, RFC 5289, RFC 7905).
IANA_SUITES = {
    "TLS_AES_128_GCM_SHA256": 0x1301,
    "TLS_AES_256_GCM_SHA384": 0x1302,
    "TLS_CHACHA20_POLY1305_SHA256": 0x1303,
    "ECDHE-ECDSA-AES128-GCM-SHA256": 0xC02B,
    "ECDHE-ECDSA-AES256-GCM-SHA384": 0xC02C,
    "ECDHE-ECDSA-CHACHA20-POLY1305": 0xCCA9,
}


def pem(item: trustme.Blob) -> str:
    return item.bytes().decode()


def test_scope_info_without_client_certificate(pki: Pki) -> None:
    server = completed(server_context(pki), client_context(pki, cert=pki.client))
    info = tls_scope_info(server)
    assert info == {
        "server_cert": pem(pki.server.cert_chain_pems[0]),
        "client_cert_chain": [],  # the server did not ask: ssl_cert_reqs none
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": 0x0304,
        "cipher_suite": IANA_SUITES[server.cipher()[0]],  # type: ignore[index]
    }


@pytest.mark.parametrize("reqs", ["optional", "required"])
def test_scope_info_with_client_certificate_chain(pki: Pki, reqs: str) -> None:
    server = completed(server_context(pki, ssl_cert_reqs=reqs), client_context(pki, cert=pki.client))
    info = tls_scope_info(server)
    assert info["client_cert_chain"] == [pem(blob) for blob in pki.client.cert_chain_pems]
    assert len(info["client_cert_chain"]) == 2
    subject = x509.load_pem_x509_certificate(pki.client.cert_chain_pems[0].bytes()).subject
    assert info["client_cert_name"] == subject.rfc4514_string()
    assert info["client_cert_name"].startswith('CN=Alice \\"A\\"\\, \\+1\\; \\<x\\> \\\\ #,OU=')  # type: ignore[union-attr]
    assert info["client_cert_error"] is None
    assert info["server_cert"] == pem(pki.server.cert_chain_pems[0])


def test_scope_info_optional_certificate_not_sent(pki: Pki) -> None:
    info = tls_scope_info(completed(server_context(pki, ssl_cert_reqs="optional"), client_context(pki)))
    assert (info["client_cert_chain"], info["client_cert_name"]) == ([], None)


@pytest.mark.parametrize("cipher", ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"])
def test_scope_info_tls12(pki: Pki, cipher: str) -> None:
    client = client_context(pki, max_version=ssl.TLSVersion.TLSv1_2, ciphers=cipher)
    info = tls_scope_info(completed(server_context(pki), client))
    assert (info["tls_version"], info["cipher_suite"]) == (0x0303, IANA_SUITES[cipher])


def test_scope_info_of_a_context_made_elsewhere(pki: Pki) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    pki.server.configure_cert(context)
    info = tls_scope_info(completed(context, client_context(pki)))
    assert info["server_cert"] is None
    assert info["tls_version"] == 0x0304


def test_scope_info_on_an_ssl_socket(pki: Pki) -> None:
    left, right = socket.socketpair()
    server_ctx = server_context(pki, ssl_cert_reqs="required")
    client_ctx = client_context(pki, cert=pki.client)
    with left, right:
        accepted: list[ssl.SSLSocket] = []
        thread = threading.Thread(
            target=lambda: accepted.append(server_ctx.wrap_socket(left, server_side=True))
        )
        thread.start()
        with client_ctx.wrap_socket(right, server_hostname="localhost"):
            thread.join(10)
            info = tls_scope_info(accepted[0])
        accepted[0].close()
    assert len(info["client_cert_chain"]) == 2
    assert info["client_cert_name"] is not None


class Python313Chain:
    """An SSLObject as Python 3.13 has it: get_unverified_chain() public, returning DER certificates."""

    def __init__(self, inner: ssl.SSLObject) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def get_unverified_chain(self) -> list[bytes]:
        chain = self._inner._sslobj.get_unverified_chain()  # type: ignore[attr-defined]
        return [certificate.public_bytes(_ssl.ENCODING_DER) for certificate in chain]


class NoChain:
    """An SSL object with no way to get the chain: only the client's own certificate is reported."""

    def __init__(self, inner: ssl.SSLObject) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        if name == "_sslobj":
            raise AttributeError(name)
        return getattr(self._inner, name)


def test_scope_info_chain_on_other_pythons(pki: Pki) -> None:
    server_ctx = server_context(pki, ssl_cert_reqs="required")
    server = completed(server_ctx, client_context(pki, cert=pki.client))
    chain = [pem(blob) for blob in pki.client.cert_chain_pems]
    assert tls_scope_info(cast(ssl.SSLObject, Python313Chain(server)))["client_cert_chain"] == chain
    info = tls_scope_info(cast(ssl.SSLObject, NoChain(server)))
    assert info["client_cert_chain"] == chain[:1]
    assert info["client_cert_name"] == tls_scope_info(server)["client_cert_name"]


@pytest.mark.parametrize(
    "value",
    [
        "plain",
        "a,b",
        "a+b",
        'say "hi"',
        "back\\slash",
        "<a>;",
        " lead",
        "#hash",
        "mid #",
        "trail ",
        "ünï",
        "nul\0",
    ],
)
def test_rfc4514_escaping_agrees_with_cryptography(value: str) -> None:
    expected = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, value)]).rfc4514_string()
    assert _rfc4514(((("commonName", value),),)) == expected


def test_rfc4514_order_and_names() -> None:
    subject = (
        (("countryName", "FR"),),
        (("organizationName", "Ex"),),
        (("commonName", "a"), ("userId", "u1")),
        (("emailAddress", "a@example.com"),),
    )
    assert _rfc4514(subject) == "emailAddress=a@example.com,CN=a+UID=u1,O=Ex,C=FR"
    assert _rfc4514(((("commonName", " "),),)) == "CN=\\ "
    assert _rfc4514(((("commonName", "  "),),)) == "CN=\\ \\ "
    assert _rfc4514(()) == ""


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_scope_info_through_an_event_loop(pki: Pki, loop: str) -> None:
    # The shell's path: the loop does the handshake, the protocol gets the ssl_object.
    if loop == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    else:
        factory = asyncio.new_event_loop
    server_ctx = server_context(pki, ssl_cert_reqs="required")
    seen: list[tuple[str, TLSInfo]] = []

    class Recorder(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            ssl_object = transport.get_extra_info("ssl_object")
            seen.append((alpn_protocol(ssl_object), tls_scope_info(ssl_object)))
            cast(asyncio.WriteTransport, transport).write(b"done")
            transport.close()

    async def main() -> bytes:
        server = await asyncio.get_running_loop().create_server(
            Recorder, "127.0.0.1", 0, ssl=server_ctx, ssl_handshake_timeout=Config().timeout_ssl_handshake
        )
        async with server:
            port = server.sockets[0].getsockname()[1]
            client = client_context(pki, cert=pki.client, alpn=["h2", "http/1.1"])
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=client, server_hostname="localhost"
            )
            data = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            with contextlib.suppress(ssl.SSLError, ConnectionError):
                await writer.wait_closed()
            return data

    with asyncio.Runner(loop_factory=factory) as runner:
        assert runner.run(main()) == b"done"
    [(alpn, info)] = seen
    assert alpn == "h2"
    assert info["client_cert_chain"] == [pem(blob) for blob in pki.client.cert_chain_pems]
    assert info["server_cert"] == pem(pki.server.cert_chain_pems[0])
    assert info["tls_version"] == 0x0304


# -- Wrong protocols and failed handshakes -------------------------------------------------------------------


@pytest.fixture(scope="module")
def client_hello(pki: Pki) -> bytes:
    client = client_context(pki).wrap_bio(ssl.MemoryBIO(), outgoing := ssl.MemoryBIO(), server_hostname="x")
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    return outgoing.read()


def test_a_client_hello_is_recognised_from_its_first_byte(client_hello: bytes) -> None:
    assert client_hello[5] == 1  # a handshake record holding a ClientHello
    for end in range(1, 12):
        assert looks_like_tls_client_hello(client_hello[:end])
    assert looks_like_tls_client_hello(client_hello)
    assert looks_like_tls_client_hello(b"\x16\x03\x00")  # an SSL 3.0-era record version


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"GET / HTTP/1.1\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"\x16\x02",
        b"\x16\x03\x05",
        b"\x17\x03\x03",
    ],
)
def test_other_bytes_are_not_a_client_hello(data: bytes) -> None:
    assert not looks_like_tls_client_hello(data)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "plain HTTP request on a TLS port"),
        (b"POST /x HTTP/1.1\r\n\r\n", "plain HTTP request on a TLS port"),
        (b"CONNECT x:443 HTTP/1.1\r\n\r\n", "plain HTTP (proxy CONNECT) request on a TLS port"),
        (
            b"OPTIONS * HTTP/1.1\r\n\r\n",
            "not a TLS handshake (plain HTTP or another protocol on a TLS port?)",
        ),
        (b"SSH-2.0-OpenSSH_9.6\r\n", "not a TLS handshake (plain HTTP or another protocol on a TLS port?)"),
    ],
)
def test_wrong_protocol_on_a_tls_port(pki: Pki, data: bytes, message: str) -> None:
    assert describe_handshake_error(server_error_for_bytes(server_context(pki), data)) == message


def test_client_gone_during_handshake(pki: Pki, client_hello: bytes) -> None:
    error = server_error_for_bytes(server_context(pki), client_hello[:20], eof=True)
    assert describe_handshake_error(error) == "the client closed the connection during the TLS handshake"


def test_old_tls_versions_are_refused(pki: Pki) -> None:
    client = client_context(pki)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # setting TLSVersion.TLSv1_1 warns
        client.minimum_version = ssl.TLSVersion.TLSv1
        client.maximum_version = ssl.TLSVersion.TLSv1_1
    client.set_ciphers("ALL:@SECLEVEL=0")
    error = server_error(server_context(pki), client)
    assert describe_handshake_error(error) == "the client offers only TLS versions older than 1.2"


def test_no_shared_cipher(pki: Pki) -> None:
    client = client_context(pki, max_version=ssl.TLSVersion.TLSv1_2, ciphers="AES128-SHA")
    error = server_error(server_context(pki), client)
    assert describe_handshake_error(error) == "no cipher suite in common with the client (see ssl_ciphers)"


@pytest.mark.parametrize("max_version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_client_certificate_errors(pki: Pki, max_version: ssl.TLSVersion) -> None:
    required = server_context(pki, ssl_cert_reqs="required")
    error = server_error(required, client_context(pki, max_version=max_version))
    assert describe_handshake_error(error) == "the client sent no certificate (ssl_cert_reqs is required)"
    for server_ctx in (required, server_context(pki, ssl_cert_reqs="optional")):
        error = server_error(server_ctx, client_context(pki, cert=pki.stranger, max_version=max_version))
        assert describe_handshake_error(error) == (
            "the client's certificate is rejected: unable to get local issuer certificate"
        )


@pytest.mark.parametrize("max_version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_client_that_does_not_trust_the_server(pki: Pki, max_version: ssl.TLSVersion) -> None:
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.maximum_version = max_version
    error = server_error(server_context(pki), client)
    assert describe_handshake_error(error) == (
        "the client does not trust the server's certificate (alert: unknown ca)"
    )


def alert(reason: str) -> ssl.SSLError:
    error = ssl.SSLError(1, f"[SSL: {reason}] ...")
    error.reason = reason
    return error


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (
            ConnectionAbortedError(
                "SSL handshake is taking longer than 10.0 seconds: aborting the connection"
            ),
            "TLS handshake timed out (see timeout_ssl_handshake)",
        ),
        (TimeoutError(), "TLS handshake timed out (see timeout_ssl_handshake)"),
        (
            ConnectionResetError(104, "Connection reset by peer"),
            "the client closed the connection during the TLS handshake",
        ),
        (
            ssl.SSLEOFError(8, "EOF occurred in violation of protocol"),
            "the client closed the connection during the TLS handshake",
        ),
        (
            alert("TLSV1_ALERT_PROTOCOL_VERSION"),
            "the client aborted the TLS handshake (alert: protocol version)",
        ),
        (
            alert("SSLV3_ALERT_HANDSHAKE_FAILURE"),
            "the client aborted the TLS handshake (alert: handshake failure)",
        ),
        (alert("SOMETHING_NEW"), "TLS handshake failed (something new)"),
        (RuntimeError("odd"), "TLS handshake failed (RuntimeError: odd)"),
    ],
)
def test_other_handshake_errors(error: BaseException, message: str) -> None:
    assert describe_handshake_error(error) == message
