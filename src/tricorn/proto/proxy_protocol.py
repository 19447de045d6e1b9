"""The PROXY protocol (haproxy's proxy-protocol.txt, versions 1 and 2): the header a proxy sends first on a
connection to name the client it relays.

Theory of operation
-------------------
:func:`parse` takes the bytes received so far and returns the :class:`ProxyHeader` once they hold a
whole header, None while they are a valid beginning of one, and raises :class:`ProxyProtocolError` as
soon as they cannot be: a byte off either signature, a field out of its grammar, a length that lies, a v1
line past 107 bytes. The two versions are told apart by their first byte ("P" for v1's ``PROXY``, CR for
v2's binary signature), so a wrong protocol (an HTTP request, a TLS ClientHello) fails at once.

The header's ``length`` says where it ends, so a shell can take exactly the header off the socket and
leave what follows (an HTTP request, a TLS handshake) to the protocol after it: see io/accept.py, which
reads the bytes available without taking them (MSG_PEEK), asks :func:`parse`, and then takes the header's
bytes, or all of them while the header is incomplete (none of them can belong to what follows then).

A v1 ``UNKNOWN`` line and a v2 ``LOCAL`` command (a proxy's health check) say "use the connection's own
addresses": their header has ``client`` None. v2 address families other than TCP over IPv4 and IPv6
(UDP, Unix) fall back to that too, as the specification asks of receivers that do not implement them.
v2 TLVs are walked with their lengths checked and skipped unless known: ``PP2_TYPE_AUTHORITY`` (the
host name the client asked for, its TLS SNI), ``PP2_TYPE_SSL`` (the client's TLS, which the proxy
ended), ``PP2_TYPE_ALPN``, and ``PP2_TYPE_CRC32C``, whose checksum is verified.

Nothing here reads a clock, a socket or a logger.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Final

__all__ = ["V1_MAX_LENGTH", "V2_SIGNATURE", "ProxyHeader", "ProxyProtocolError", "ProxySSL", "parse"]

V1_PREFIX: Final = b"PROXY "
# proxy-protocol.txt §2.1: "PROXY UNKNOWN ffff:...:ffff ffff:...:ffff 65535 65535\r\n" is the longest
# line, 107 bytes; a line without CRLF in its first 107 bytes is invalid.
V1_MAX_LENGTH: Final = 107
V2_SIGNATURE: Final = b"\r\n\r\n\x00\r\nQUIT\n"
V2_HEADER_LENGTH: Final = 16  # signature, version and command, family and protocol, length

# v2 commands (low nibble of byte 13) and families and protocols (byte 14).
_LOCAL, _PROXY = 0x0, 0x1
_UNSPEC, _INET, _INET6, _UNIX = 0x0, 0x1, 0x2, 0x3
_STREAM, _DGRAM = 0x1, 0x2
_ADDRESS_LENGTHS = {_UNSPEC: 0, _INET: 12, _INET6: 36, _UNIX: 216}
# TLV types (§2.2).
PP2_TYPE_ALPN, PP2_TYPE_AUTHORITY, PP2_TYPE_CRC32C, PP2_TYPE_NOOP, PP2_TYPE_UNIQUE_ID = (
    0x01,
    0x02,
    0x03,
    0x04,
    0x05,
)
PP2_TYPE_SSL = 0x20
PP2_SUBTYPE_SSL_VERSION, PP2_SUBTYPE_SSL_CN, PP2_SUBTYPE_SSL_CIPHER = 0x21, 0x22, 0x23
PP2_SUBTYPE_SSL_SIG_ALG, PP2_SUBTYPE_SSL_KEY_ALG = 0x24, 0x25
PP2_CLIENT_SSL, PP2_CLIENT_CERT_CONN, PP2_CLIENT_CERT_SESS = 0x01, 0x02, 0x04


class ProxyProtocolError(ValueError):
    """Bytes that are not a valid PROXY protocol header; ``str(err)`` says what is wrong."""


class ProxySSL:
    """The client's TLS connection to the proxy, from a v2 ``PP2_TYPE_SSL`` TLV with PP2_CLIENT_SSL set:
    ``version`` ("TLSv1.3"), ``cipher`` (OpenSSL's name), ``cert_cn`` (the client certificate's common
    name), ``cert_verified`` (whether a client certificate was presented and verified)."""

    __slots__ = ("cert_cn", "cert_presented", "cert_verified", "cipher", "version")

    def __init__(
        self,
        version: str | None,
        cipher: str | None,
        cert_cn: str | None,
        cert_presented: bool,
        cert_verified: bool,
    ) -> None:
        self.version = version
        self.cipher = cipher
        self.cert_cn = cert_cn
        self.cert_presented = cert_presented
        self.cert_verified = cert_verified


class ProxyHeader:
    """A parsed header: ``version`` (1 or 2), ``length`` (its bytes on the wire), ``client`` and ``server``
    (the original connection's source and destination; None for UNKNOWN, LOCAL and families the server
    does not use), ``authority``, ``alpn`` and ``ssl`` (v2 TLVs, None when absent)."""

    __slots__ = ("alpn", "authority", "client", "length", "server", "ssl", "version")

    def __init__(
        self,
        version: int,
        length: int,
        client: tuple[str, int] | None = None,
        server: tuple[str, int] | None = None,
        authority: str | None = None,
        alpn: bytes | None = None,
        ssl: ProxySSL | None = None,
    ) -> None:
        self.version = version
        self.length = length
        self.client = client
        self.server = server
        self.authority = authority
        self.alpn = alpn
        self.ssl = ssl

    def __repr__(self) -> str:
        return (
            f"ProxyHeader(v{self.version}, length={self.length}, client={self.client}, server={self.server}, "
            f"authority={self.authority!r})"
        )


def parse(data: bytes) -> ProxyHeader | None:
    """The header at the start of ``data``; None if ``data`` is a valid beginning of one; raises
    ProxyProtocolError once it cannot be (see the module docstring)."""
    if not data:
        return None
    if data[0] == 0x0D:
        return _parse_v2(data)
    if data[0] == 0x50:  # "P"
        return _parse_v1(data)
    raise ProxyProtocolError(f"no PROXY protocol header (the connection starts with {data[:8]!r})")


# -- Version 1: one line of text ---------------------------------------------------------------------------


def _parse_v1(data: bytes) -> ProxyHeader | None:
    head = data[: len(V1_PREFIX)]
    if not V1_PREFIX.startswith(head):
        raise ProxyProtocolError(f"bad PROXY protocol v1 signature {head!r}")
    end = data.find(b"\r\n", 0, V1_MAX_LENGTH)
    if end < 0:
        # §2.1: "The receiver must not tolerate a single CR or LF character to end the line".
        stray = data.find(b"\n", 0, V1_MAX_LENGTH)
        cr = data.find(b"\r", 0, V1_MAX_LENGTH - 1)
        if stray >= 0 or 0 <= cr < len(data) - 1:
            raise ProxyProtocolError("PROXY protocol v1 line not ended by CRLF")
        if len(data) >= V1_MAX_LENGTH:
            raise ProxyProtocolError(f"PROXY protocol v1 line longer than {V1_MAX_LENGTH} bytes")
        return None
    line = data[:end]
    length = end + 2
    if b"\r" in line or b"\n" in line:
        raise ProxyProtocolError("PROXY protocol v1 line not ended by CRLF")
    parts = line.split(b" ")
    if len(parts) < 2:
        raise ProxyProtocolError("PROXY protocol v1 line has no protocol")
    family = parts[1]
    if family == b"UNKNOWN":
        return ProxyHeader(1, length)  # §2.1: the rest of the line is ignored, the real addresses used
    if family not in (b"TCP4", b"TCP6"):
        raise ProxyProtocolError(f"PROXY protocol v1 unknown protocol {family[:16]!r}")
    if len(parts) != 6:
        raise ProxyProtocolError(
            f"PROXY protocol v1 {family.decode()} line needs 4 fields, got {len(parts) - 2}"
        )
    _, _, src, dst, sport, dport = parts
    version = 4 if family == b"TCP4" else 6
    client = (_v1_address(src, version), _v1_port(sport))
    server = (_v1_address(dst, version), _v1_port(dport))
    return ProxyHeader(1, length, client, server)


def _v1_address(text: bytes, version: int) -> str:
    try:
        decoded = text.decode("ascii")
        # IPv4Address refuses leading zeros (§2.1: "Heading zeroes are not permitted"); no zone index.
        ip = ipaddress.IPv4Address(decoded) if version == 4 else ipaddress.IPv6Address(decoded)
        if "%" in decoded:
            raise ValueError(decoded)
    except (UnicodeDecodeError, ValueError):
        raise ProxyProtocolError(f"PROXY protocol v1 bad IPv{version} address {text[:48]!r}") from None
    return str(ip)


def _v1_port(text: bytes) -> int:
    # §2.1: a decimal integer in [0..65535], without leading zeros.
    if not text.isdigit() or len(text) > 5 or (len(text) > 1 and text[0] == 0x30) or int(text) > 65535:
        raise ProxyProtocolError(f"PROXY protocol v1 bad port {text[:8]!r}")
    return int(text)


# -- Version 2: binary ------------------------------------------------------------------------------------


def _parse_v2(data: bytes) -> ProxyHeader | None:
    signature = data[: len(V2_SIGNATURE)]
    if not V2_SIGNATURE.startswith(signature):
        raise ProxyProtocolError("bad PROXY protocol v2 signature")
    if len(data) < V2_HEADER_LENGTH:
        if len(data) > 12:
            _check_v2_fields(data[12], data[13] if len(data) > 13 else None)
        return None
    version_command, family_protocol, length = struct.unpack_from("!BBH", data, 12)
    _check_v2_fields(version_command, family_protocol)
    command = version_command & 0x0F
    family, protocol = family_protocol >> 4, family_protocol & 0x0F
    needed = _ADDRESS_LENGTHS[family]
    if command == _PROXY and length < needed:
        raise ProxyProtocolError(
            f"PROXY protocol v2 length {length} is shorter than its address block ({needed} bytes)"
        )
    total = V2_HEADER_LENGTH + length
    if len(data) < total:
        return None
    if command == _LOCAL:
        # §2.2: LOCAL: "the receiver ... must use the real connection endpoints and discard the protocol
        # block including the family".
        return ProxyHeader(2, total)
    block = data[V2_HEADER_LENGTH:total]
    header = ProxyHeader(2, total)
    if protocol == _STREAM and family in (_INET, _INET6):
        if family == _INET:
            src, dst, sport, dport = struct.unpack_from("!4s4sHH", block)
            header.client = (str(ipaddress.IPv4Address(src)), sport)
            header.server = (str(ipaddress.IPv4Address(dst)), dport)
        else:
            src, dst, sport, dport = struct.unpack_from("!16s16sHH", block)
            header.client = (str(ipaddress.IPv6Address(src)), sport)
            header.server = (str(ipaddress.IPv6Address(dst)), dport)
    _read_tlvs(data, V2_HEADER_LENGTH + needed, total, header)
    return header


def _check_v2_fields(version_command: int, family_protocol: int | None) -> None:
    if version_command >> 4 != 2:
        raise ProxyProtocolError(f"PROXY protocol v2 unsupported version {version_command >> 4}")
    if version_command & 0x0F not in (_LOCAL, _PROXY):
        raise ProxyProtocolError(f"PROXY protocol v2 unknown command {version_command & 0x0F}")
    if family_protocol is not None and (
        family_protocol >> 4 not in _ADDRESS_LENGTHS or family_protocol & 0x0F not in (0, _STREAM, _DGRAM)
    ):
        raise ProxyProtocolError(
            f"PROXY protocol v2 unknown address family or protocol 0x{family_protocol:02x}"
        )


def _tlvs(data: bytes, start: int, end: int, what: str) -> list[tuple[int, int, int]]:
    """The (type, value start, value end) of the TLVs in ``data[start:end]``, their lengths checked."""
    out = []
    pos = start
    while pos < end:
        if end - pos < 3:
            raise ProxyProtocolError(f"PROXY protocol v2 truncated {what}")
        kind, size = data[pos], int.from_bytes(data[pos + 1 : pos + 3], "big")
        value = pos + 3
        if value + size > end:
            raise ProxyProtocolError(f"PROXY protocol v2 {what} type 0x{kind:02x} overruns the header")
        out.append((kind, value, value + size))
        pos = value + size
    return out


def _text(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ProxyProtocolError(f"PROXY protocol v2 {what} is not UTF-8") from None


def _read_tlvs(data: bytes, start: int, end: int, header: ProxyHeader) -> None:
    for kind, lo, hi in _tlvs(data, start, end, "TLV"):
        if kind == PP2_TYPE_AUTHORITY:
            header.authority = _text(data[lo:hi], "authority")
        elif kind == PP2_TYPE_ALPN:
            header.alpn = data[lo:hi]
        elif kind == PP2_TYPE_CRC32C:
            # §2.2.3: the checksum of the whole header with this field zeroed; a mismatch is invalid.
            if hi - lo != 4:
                raise ProxyProtocolError("PROXY protocol v2 CRC32C TLV is not 4 bytes")
            zeroed = data[:lo] + b"\0\0\0\0" + data[hi:end]
            if crc32c(zeroed) != int.from_bytes(data[lo:hi], "big"):
                raise ProxyProtocolError("PROXY protocol v2 CRC32C checksum mismatch")
        elif kind == PP2_TYPE_SSL:
            header.ssl = _read_ssl(data, lo, hi)
        # Other types (NOOP, UNIQUE_ID, NETNS, cloud vendors' own) are skipped.


def _read_ssl(data: bytes, lo: int, hi: int) -> ProxySSL | None:
    # §2.2.6: struct pp2_tlv_ssl { uint8_t client; uint32_t verify; struct pp2_tlv sub_tlv[0]; }
    if hi - lo < 5:
        raise ProxyProtocolError("PROXY protocol v2 SSL TLV shorter than 5 bytes")
    client, verify = data[lo], int.from_bytes(data[lo + 1 : lo + 5], "big")
    version = cipher = cn = None
    for kind, a, b in _tlvs(data, lo + 5, hi, "SSL sub-TLV"):
        if kind == PP2_SUBTYPE_SSL_VERSION:
            version = _text(data[a:b], "SSL version")
        elif kind == PP2_SUBTYPE_SSL_CIPHER:
            cipher = _text(data[a:b], "SSL cipher")
        elif kind == PP2_SUBTYPE_SSL_CN:
            cn = _text(data[a:b], "SSL common name")
    if not client & PP2_CLIENT_SSL:
        return None  # the client's connection was not TLS
    presented = bool(client & (PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS))
    return ProxySSL(version, cipher, cn, presented, presented and verify == 0)


# -- CRC32C (Castagnoli, RFC 4960 Appendix B), for PP2_TYPE_CRC32C ------------------------------------------


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC32C_TABLE: Final = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF
