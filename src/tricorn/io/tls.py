"""TLS for the asyncio shell: the server's SSL context, the ASGI ``tls`` scope extension, and one-line
diagnoses of connections that speak the wrong protocol or fail their handshake.

Theory of operation. :func:`create_ssl_context` is meant to run once, at startup: in the master, before
it forks and before it drops privileges (key files are often readable by root only). Forked workers then
share one context, and so its session-ticket keys: a client resumes its session on any worker. Every
mistake in the TLS settings surfaces there, as one :class:`~tricorn.errors.ConfigError` line naming the
setting, instead of as a handshake failure on the first connection. The loop does the handshakes
(``create_server(ssl=..., ssl_handshake_timeout=...)``); once one completes, the shell asks
:func:`alpn_protocol` which protocol to speak and builds the ``tls`` scope extension with
:func:`tls_scope_info`, once per connection, for every request on it. A handshake that fails never reaches
a protocol object: :func:`describe_handshake_error` turns its exception into the line to log. On a
plain-HTTP port, :func:`looks_like_tls_client_hello` recognises a client that tried HTTPS, so the log
says so instead of "invalid method".
"""

from __future__ import annotations

import re
import ssl
from typing import TYPE_CHECKING, Literal, TypedDict, cast

from tricorn.errors import ConfigError

if TYPE_CHECKING:
    from tricorn.config import Config
    from tricorn.proto.proxy_protocol import ProxySSL

__all__ = [
    "SSLConnection",
    "TLSContext",
    "TLSInfo",
    "alpn_protocol",
    "create_ssl_context",
    "describe_handshake_error",
    "looks_like_tls_client_hello",
    "proxied_tls_info",
    "tls_scope_info",
]


class TLSContext(ssl.SSLContext):
    """An :class:`ssl.SSLContext` that also holds the PEM of the certificate it serves.

    OpenSSL does not hand a connection's own certificate back to Python, and the ASGI ``tls`` extension
    wants it in every scope: it is read from the certificate file once, here.
    """

    server_cert: str | None = None


class TLSInfo(TypedDict):
    """The ASGI ``tls`` connection-scope extension (asgiref's specs/tls.rst, version 0.2)."""

    server_cert: str | None
    client_cert_chain: list[str]
    client_cert_name: str | None
    client_cert_error: str | None
    tls_version: int | None
    cipher_suite: int | None


# -- The server's context ------------------------------------------------------------------------------------

_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----\r?\n.*?-----END CERTIFICATE-----", re.DOTALL)
# PKCS#8 ("PRIVATE KEY", "ENCRYPTED PRIVATE KEY") and the traditional forms ("RSA PRIVATE KEY", ...).
_PRIVATE_KEY = re.compile(rb"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
# PKCS#8 encryption, or the traditional form's header.
_ENCRYPTED_KEY = re.compile(rb"-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type:\s*4,ENCRYPTED")

_VERIFY_MODES = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}


class _NoPassword(Exception):
    """Raised by the password callback when no password is configured (so OpenSSL never prompts)."""


def create_ssl_context(config: Config) -> TLSContext | None:
    """The server-side SSL context for ``config``, or None when ``ssl_certfile`` is not set.

    TLS 1.2 at least, without compression or renegotiation, ALPN ``h2`` (when ``config.http2``) and
    ``http/1.1``, the certificate chain and key loaded (with ``ssl_keyfile_password``), client
    certificates asked for and verified against ``ssl_ca_certs`` as ``ssl_cert_reqs`` says, and the TLS
    1.2 cipher suites of ``ssl_ciphers``.

    Raises ConfigError, one line naming the setting, for a file that cannot be read, a file without
    the certificate, key or CA certificates it should hold, an encrypted key without a password, a wrong
    password, a key that does not match its certificate, and a cipher list that selects nothing. Never
    prompts for a password on the terminal.
    """
    if config.ssl_certfile is None:
        return None
    context = TLSContext(ssl.PROTOCOL_TLS_SERVER)
    # RFC 9113 §9.2: HTTP/2 over TLS MUST use TLS 1.2 or higher. Older versions are deprecated for
    # everything else too (RFC 8996).
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # RFC 9113 §9.2.1: a deployment of HTTP/2 over TLS 1.2 MUST disable compression (it leaks secrets:
    # CRIME) and MUST disable renegotiation. The server's order of cipher suites wins. (Python's defaults
    # already have compression off and server preference on: said again here, where it is required.)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION | ssl.OP_CIPHER_SERVER_PREFERENCE
    # Curves: OpenSSL's defaults (X25519, P-256, ...) include P-256, which RFC 9113 §9.2.2 requires with
    # TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256; set_ecdh_curve() would narrow them to one, so it is not called.
    context.server_cert = _load_certificate(context, config)
    if config.ssl_ca_certs is not None:
        _load_ca_certs(context, config.ssl_ca_certs)
    context.verify_mode = _VERIFY_MODES[config.ssl_cert_reqs]
    try:
        context.set_ciphers(config.ssl_ciphers)
    except ssl.SSLError:
        raise ConfigError(
            "ssl_ciphers", f"{config.ssl_ciphers!r} selects no cipher suite this OpenSSL supports"
        ) from None
    # The server picks the first of its protocols that the client offers: h2 when both can.
    context.set_alpn_protocols(["h2", "http/1.1"] if config.http2 else ["http/1.1"])
    return context


# The context a process serves with: made by the master before workers fork (a worker may have dropped the
# privileges its key file needs) and again by the master on each reload (supervisor/arbiter.py), so renewed
# certificate files reach new workers; a process that was not prepared (tests, embedding) makes its own.
_prepared: dict[int, TLSContext | None] = {}


def prepare(config: Config) -> TLSContext | None:
    """Make (or make again, from the files as they are now) the context ``serving_context`` returns, and
    the QUIC credentials when HTTP/3 is served (io/quic.py: the same files, for aioquic's TLS)."""
    context = create_ssl_context(config)
    if config.quic_bind:
        from tricorn.io import quic

        quic.prepare(config)
    _prepared.clear()
    _prepared[id(config)] = context
    return context


def serving_context(config: Config) -> TLSContext | None:
    """The context prepared for ``config`` in this process (or by the master before the fork), else a new one."""
    if id(config) in _prepared:
        return _prepared[id(config)]
    return prepare(config)


def _read(setting: str, path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise ConfigError(setting, f"{path!r} cannot be read ({exc.strerror})") from None


def _load_certificate(context: ssl.SSLContext, config: Config) -> str:
    """Load the certificate chain and key into ``context``; return the server certificate's PEM.

    OpenSSL's own errors here are one vague "PEM lib" for most mistakes, so the files are looked at
    first, and the password callback records whether the key was reached.
    """
    assert config.ssl_certfile is not None
    certfile, keyfile = config.ssl_certfile, config.ssl_keyfile
    cert_pem = _read("ssl_certfile", certfile)
    first = _CERTIFICATE.search(cert_pem)
    if first is None:
        raise ConfigError("ssl_certfile", f"{certfile!r} holds no PEM certificate")
    key_setting, key_path = ("ssl_keyfile", keyfile) if keyfile is not None else ("ssl_certfile", certfile)
    key_pem = _read(key_setting, key_path) if keyfile is not None else cert_pem
    if not _PRIVATE_KEY.search(key_pem):
        if keyfile is not None:
            raise ConfigError("ssl_keyfile", f"{keyfile!r} holds no PEM private key")
        raise ConfigError(
            "ssl_certfile", f"{certfile!r} holds no private key (add it to the file, or give ssl_keyfile)"
        )
    password = config.ssl_keyfile_password
    if password is None and _ENCRYPTED_KEY.search(key_pem):
        raise ConfigError(
            key_setting, f"{key_path!r} holds an encrypted private key and ssl_keyfile_password is not given"
        )
    asked = False

    def give_password() -> str:
        nonlocal asked
        asked = True
        if password is None:
            raise _NoPassword
        return password

    try:
        context.load_cert_chain(certfile, keyfile, give_password)
    except _NoPassword:
        raise ConfigError(
            key_setting, f"{key_path!r} holds an encrypted private key and ssl_keyfile_password is not given"
        ) from None
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            if keyfile is not None:
                raise ConfigError(
                    "ssl_keyfile", f"{keyfile!r} does not match the certificate in {certfile!r}"
                ) from None
            raise ConfigError(
                "ssl_certfile", f"the private key in {certfile!r} does not match its certificate"
            ) from None
        if asked:
            raise ConfigError("ssl_keyfile_password", f"wrong password for {key_path!r}") from None
        if exc.reason is not None:
            # A certificate OpenSSL refuses to use, e.g. EE_KEY_TOO_SMALL or CA_MD_TOO_WEAK.
            raise ConfigError("ssl_certfile", f"{certfile!r} cannot be used ({_reason(exc)})") from None
        if not _parses_as_certificates(cert_pem):
            raise ConfigError(
                "ssl_certfile", f"{certfile!r} holds a certificate that cannot be parsed"
            ) from None
        raise ConfigError(key_setting, f"{key_path!r} holds a private key that cannot be parsed") from None
    except ValueError as exc:  # a password longer than OpenSSL's buffer
        raise ConfigError("ssl_keyfile_password", str(exc)) from None
    except OSError as exc:  # the file went away between reading and loading it
        raise ConfigError("ssl_certfile", f"{certfile!r} cannot be read ({exc.strerror})") from None
    return ssl.DER_cert_to_PEM_cert(ssl.PEM_cert_to_DER_cert(first.group().decode("ascii")))


def _parses_as_certificates(pem: bytes) -> bool:
    scratch = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        scratch.load_verify_locations(cadata=pem.decode("ascii", "replace"))
    except (ssl.SSLError, ValueError):
        return False
    return True


def _load_ca_certs(context: ssl.SSLContext, path: str) -> None:
    if not _CERTIFICATE.search(_read("ssl_ca_certs", path)):
        raise ConfigError("ssl_ca_certs", f"{path!r} holds no PEM certificates")
    try:
        context.load_verify_locations(cafile=path)
    except ssl.SSLError as exc:
        raise ConfigError("ssl_ca_certs", f"{path!r} cannot be used ({_reason(exc)})") from None
    except OSError as exc:
        raise ConfigError("ssl_ca_certs", f"{path!r} cannot be read ({exc.strerror})") from None


def _reason(exc: ssl.SSLError) -> str:
    """OpenSSL's reason code in words (``KEY_VALUES_MISMATCH`` -> ``key values mismatch``)."""
    # Only errors raised by OpenSSL have a reason (and verify_message): not one made in Python.
    reason = getattr(exc, "reason", None)
    if reason:
        return str(reason).lower().replace("_", " ")
    return str(exc.strerror or exc)


# -- After the handshake -------------------------------------------------------------------------------------

SSLConnection = ssl.SSLObject | ssl.SSLSocket


def alpn_protocol(ssl_object: SSLConnection) -> Literal["h2", "http/1.1"]:
    """The protocol to speak on a TLS connection: ``h2`` only when ALPN chose it.

    RFC 9113 §3.2: HTTP/2 over TLS is negotiated with ALPN, and only with ALPN; a client that offered
    no protocol speaks HTTP/1.1. One that offered only protocols the server does not speak is served
    HTTP/1.1 too: RFC 7301 §3.2 has the server abort such a handshake with a no_application_protocol
    alert (nginx does since 1.21.4), but Python's ssl module has OpenSSL carry on without a protocol,
    and does not tell the server what the client offered.
    """
    return "h2" if ssl_object.selected_alpn_protocol() == "h2" else "http/1.1"


# Protocol versions as the TLS specifications number them (RFC 8446 §4.2.1, RFC 5246 §6.2.1).
_TLS_VERSIONS = {"TLSv1.3": 0x0304, "TLSv1.2": 0x0303, "TLSv1.1": 0x0302, "TLSv1": 0x0301}

# OpenSSL cipher name -> IANA cipher suite number, filled from the contexts seen. The name-to-number
# pairing is fixed by OpenSSL, so one table serves every context.
_CIPHER_SUITES: dict[str, int] = {}

# RFC 4514 §3: the attribute type names an LDAP string uses; OpenSSL reports the long names. Any other
# attribute keeps OpenSSL's name (emailAddress, as OpenSSL's own RFC 2253 output has it).
_RFC4514_TYPES = {
    "commonName": "CN",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "streetAddress": "STREET",
    "domainComponent": "DC",
    "userId": "UID",
}
# A distinguished name as getpeercert() gives it: RDNs, each a tuple of (type, value) pairs.
_Subject = tuple[tuple[tuple[str, str], ...], ...]
# RFC 4514 §2.4: characters escaped anywhere in a value.
_RFC4514_SPECIAL = re.compile(r'(["+,;<>\\])')


def tls_scope_info(ssl_object: SSLConnection) -> TLSInfo:
    """The ASGI ``tls`` extension for a connection whose handshake has completed.

    Computed once per connection and shared by its requests' scopes. ``client_cert_chain`` is the chain
    the client sent, its own certificate first, as PEM strings (empty when the server does not ask for
    one, ``ssl_cert_reqs`` none, or the client sent none); ``client_cert_name`` is that certificate's
    subject as an RFC 4514 string. ``client_cert_error`` is always None: a certificate that fails
    verification fails the handshake, so no request ever sees one. ``server_cert`` is None when the
    context was not made by :func:`create_ssl_context`.
    """
    context = ssl_object.context
    chain: list[str] = []
    name: str | None = None
    # With CERT_NONE the server never asks for a client certificate: skip the look-ups.
    if context.verify_mode != ssl.CERT_NONE:
        chain = _peer_chain(ssl_object)
        if chain:
            peer = ssl_object.getpeercert()
            if peer:
                # typeshed types every value of the dict as the union of all of them.
                name = _rfc4514(cast(_Subject, peer.get("subject", ())))
    version = ssl_object.version()
    cipher = ssl_object.cipher()
    return {
        "server_cert": context.server_cert if isinstance(context, TLSContext) else None,
        "client_cert_chain": chain,
        "client_cert_name": name,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(version) if version else None,
        "cipher_suite": _cipher_suite(cipher[0], context) if cipher else None,
    }


def proxied_tls_info(info: ProxySSL) -> TLSInfo:
    """The ASGI ``tls`` extension for a client whose TLS a proxy in front ended and described in its PROXY
    protocol v2 header (haproxy's ``send-proxy-v2-ssl``, ``send-proxy-v2-ssl-cn``). The proxy sends no
    certificate: ``client_cert_name`` is ``CN=<the client certificate's common name>`` (all of the subject
    it sends), ``client_cert_error`` says when a certificate was presented and not verified."""
    name = None
    if info.cert_presented and info.cert_cn is not None:
        name = "CN=" + _rfc4514_value(info.cert_cn)
    error = None
    if info.cert_presented and not info.cert_verified:
        error = "the proxy in front did not verify the client certificate"
    cipher = None
    if info.cipher is not None:
        cipher = _CIPHER_SUITES.get(info.cipher)
        if cipher is None:
            every = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            every.set_ciphers("ALL:@SECLEVEL=0")
            cipher = _cipher_suite(info.cipher, every)
    return {
        "server_cert": None,
        "client_cert_chain": [],
        "client_cert_name": name,
        "client_cert_error": error,
        "tls_version": _TLS_VERSIONS.get(info.version) if info.version else None,
        "cipher_suite": cipher,
    }


def _peer_chain(ssl_object: SSLConnection) -> list[str]:
    """The certificates the client sent, its own first, as PEM."""
    # Python 3.13 made get_unverified_chain() public (a list of DER certificates); 3.10 to 3.12 have it on
    # the private _sslobj, returning _ssl.Certificate objects. On the server side both include the
    # client's own certificate, which OpenSSL's SSL_get_peer_cert_chain() leaves out.
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return []
    public = getattr(ssl_object, "get_unverified_chain", None)
    if public is not None:
        return [ssl.DER_cert_to_PEM_cert(item) for item in public() or ()]
    private = getattr(getattr(ssl_object, "_sslobj", None), "get_unverified_chain", None)
    if private is not None:
        return [str(certificate.public_bytes()) for certificate in private() or ()]
    return [ssl.DER_cert_to_PEM_cert(der)]


def _rfc4514(subject: _Subject) -> str:
    """A subject as ``getpeercert()`` gives it (RDNs in certificate order, each a tuple of (type, value)
    pairs), as an RFC 4514 string: RDNs last to first (§2.1), multi-valued ones joined by ``+`` (§2.2)."""
    return ",".join(
        "+".join(f"{_RFC4514_TYPES.get(kind, kind)}={_rfc4514_value(value)}" for kind, value in rdn)
        for rdn in reversed(subject)
    )


def _rfc4514_value(value: str) -> str:
    # RFC 4514 §2.4: escape the special characters, a leading space or '#', a trailing space, and NUL.
    text = _RFC4514_SPECIAL.sub(r"\\\1", value).replace("\0", "\\00")
    if value[:1] in (" ", "#"):
        text = "\\" + text
    if len(value) > 1 and value.endswith(" "):
        text = text[:-1] + "\\ "
    return text


def _cipher_suite(name: str, context: ssl.SSLContext) -> int | None:
    suite = _CIPHER_SUITES.get(name)
    if suite is None:
        # OpenSSL's cipher id is 0x0300XXXX, XXXX being the IANA number; a negotiated cipher is one that
        # its context enables, so the context's list has it.
        _CIPHER_SUITES.update({cipher["name"]: cipher["id"] & 0xFFFF for cipher in context.get_ciphers()})
        suite = _CIPHER_SUITES.get(name)
    return suite


# -- Wrong protocols and failed handshakes ------------------------------------------------------------------


def looks_like_tls_client_hello(data: bytes) -> bool:
    """Whether the first bytes of a connection are (the start of) a TLS handshake record.

    A TLS record starts with its content type, 22 for a handshake, and the protocol version, 3.x
    (RFC 8446 §5.1: a ClientHello's record may say 3.1 for compatibility; older clients 3.0 to 3.3). No
    HTTP method starts with byte 22, so a prefix as short as one byte is enough to tell; the bytes
    available are all checked. For a cleartext port: log "TLS handshake on a plain-HTTP port" rather
    than a 400 for an invalid method.
    """
    return (
        len(data) >= 1
        and data[0] == 0x16
        and (len(data) < 2 or data[1] == 0x03)
        and (len(data) < 3 or data[2] <= 0x04)
    )


# OpenSSL reasons, for a server, with what they mean in a log line.
_HANDSHAKE_REASONS = {
    # OpenSSL recognises "GET ", "POST", "HEAD", "PUT " and "CONNECT" where a TLS record should begin.
    "HTTP_REQUEST": "plain HTTP request on a TLS port",
    "HTTPS_PROXY_REQUEST": "plain HTTP (proxy CONNECT) request on a TLS port",
    "WRONG_VERSION_NUMBER": "not a TLS handshake (plain HTTP or another protocol on a TLS port?)",
    "UNKNOWN_PROTOCOL": "not a TLS handshake (plain HTTP or another protocol on a TLS port?)",
    "UNSUPPORTED_PROTOCOL": "the client offers only TLS versions older than 1.2",
    "NO_SHARED_CIPHER": "no cipher suite in common with the client (see ssl_ciphers)",
    "PEER_DID_NOT_RETURN_A_CERTIFICATE": "the client sent no certificate (ssl_cert_reqs is required)",
    "UNEXPECTED_EOF_WHILE_READING": "the client closed the connection during the TLS handshake",
    "TLSV1_ALERT_UNKNOWN_CA": "the client does not trust the server's certificate (alert: unknown ca)",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the client rejected the server's certificate (alert: bad certificate)",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": (
        "the client rejected the server's certificate (alert: certificate unknown)"
    ),
}


def describe_handshake_error(exc: BaseException) -> str:
    """One short, lower-case line saying why a TLS handshake failed, for the error log.

    ``exc`` is what the loop reports for a handshake: an :class:`ssl.SSLError` (its OpenSSL reason
    decides), a certificate verification error (the client's certificate is rejected), an EOF or a
    reset (the client left), or the ConnectionAbortedError or TimeoutError of
    ``ssl_handshake_timeout``. Plain HTTP sent to a TLS port is one of these: the connection is closed
    with this line logged, nothing is answered. Never raises.
    """
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"the client's certificate is rejected: {getattr(exc, 'verify_message', None) or _reason(exc)}"
    if isinstance(exc, ssl.SSLError):
        reason = str(getattr(exc, "reason", None) or "")
        if reason in _HANDSHAKE_REASONS:
            return _HANDSHAKE_REASONS[reason]
        if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError):
            return _HANDSHAKE_REASONS["UNEXPECTED_EOF_WHILE_READING"]
        alert = re.fullmatch(r"(?:SSLV3|TLSV1|TLSV13)_ALERT_(\w+)", reason)
        if alert:
            return f"the client aborted the TLS handshake (alert: {alert[1].lower().replace('_', ' ')})"
        return f"TLS handshake failed ({_reason(exc)})"
    if isinstance(exc, TimeoutError) or (
        isinstance(exc, ConnectionAbortedError) and "taking longer" in str(exc)
    ):
        # asyncio's and uvloop's ssl_handshake_timeout: "SSL handshake is taking longer than ...".
        return "TLS handshake timed out (see timeout_ssl_handshake)"
    if isinstance(exc, ConnectionError | EOFError):
        return _HANDSHAKE_REASONS["UNEXPECTED_EOF_WHILE_READING"]
    return f"TLS handshake failed ({type(exc).__name__}: {exc})"
