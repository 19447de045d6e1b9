"""The PROXY protocol core (tricorn.proto.proxy_protocol): v1 and v2, whole, byte by byte and in random
chunks, every malformed case an error as soon as it is sure, and never anything but ProxyProtocolError."""

from __future__ import annotations

import random
import socket
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tricorn.proto.proxy_protocol import (
    V2_SIGNATURE,
    ProxyHeader,
    ProxyProtocolError,
    crc32c,
    parse,
)

REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def feed(data: bytes, sizes: list[int] | None = None) -> ProxyHeader:
    """Parse ``data`` as a shell does: growing prefixes until a header comes out (all prefixes before it
    must say "incomplete")."""
    cuts = sizes or list(range(1, len(data) + 1))
    for cut in cuts:
        header = parse(data[:cut])
        if header is not None:
            return header
    raise AssertionError("no header")


def each_split(data: bytes) -> list[ProxyHeader]:
    rng = random.Random(len(data))
    whole = parse(data)
    assert whole is not None
    per_byte = feed(data)
    chunks = sorted({rng.randrange(1, len(data) + 1) for _ in range(5)} | {len(data)})
    random_chunks = feed(data, chunks)
    return [whole, per_byte, random_chunks]


def v2(
    command: int = 1,
    family: int = 0x11,
    addresses: bytes = b"",
    tlvs: bytes = b"",
    length: int | None = None,
    version: int = 2,
) -> bytes:
    body = addresses + tlvs
    return (
        V2_SIGNATURE
        + bytes([(version << 4) | command, family])
        + struct.pack("!H", len(body) if length is None else length)
        + body
    )


def inet4(src: str = "203.0.113.7", dst: str = "192.0.2.1", sport: int = 4711, dport: int = 443) -> bytes:
    return (
        socket.inet_pton(socket.AF_INET, src)
        + socket.inet_pton(socket.AF_INET, dst)
        + struct.pack("!HH", sport, dport)
    )


def inet6(src: str = "2001:db8::7", dst: str = "2001:db8::1", sport: int = 4711, dport: int = 443) -> bytes:
    return (
        socket.inet_pton(socket.AF_INET6, src)
        + socket.inet_pton(socket.AF_INET6, dst)
        + struct.pack("!HH", sport, dport)
    )


def tlv(kind: int, value: bytes) -> bytes:
    return bytes([kind]) + struct.pack("!H", len(value)) + value


# -- version 1 ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "client", "server"),
    [
        (b"PROXY TCP4 203.0.113.7 192.0.2.1 4711 443\r\n", ("203.0.113.7", 4711), ("192.0.2.1", 443)),
        (
            b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n",
            ("255.255.255.255", 65535),
            ("255.255.255.255", 65535),
        ),
        (b"PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n", ("0.0.0.0", 0), ("0.0.0.0", 0)),
        (b"PROXY TCP6 2001:db8::7 2001:db8::1 4711 443\r\n", ("2001:db8::7", 4711), ("2001:db8::1", 443)),
        (b"PROXY TCP6 2001:DB8:0:0:0:0:0:7 ::1 1 2\r\n", ("2001:db8::7", 1), ("::1", 2)),
        (
            b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535),
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535),
        ),
        (b"PROXY UNKNOWN\r\n", None, None),
        (b"PROXY UNKNOWN 2001:db8::7 2001:db8::1 4711 443\r\n", None, None),
        (b"PROXY UNKNOWN whatever follows is ignored\r\n", None, None),
    ],
)
def test_v1(line: bytes, client: tuple[str, int] | None, server: tuple[str, int] | None) -> None:
    for header in each_split(line + REQUEST):
        assert (header.version, header.length, header.client, header.server) == (1, len(line), client, server)
        assert header.ssl is None and header.authority is None


def test_v1_longest_line_is_107_bytes() -> None:
    line = b"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"
    assert len(line) == 107
    header = parse(line)
    assert header is not None and header.length == 107
    with pytest.raises(ProxyProtocolError, match="longer than 107"):
        parse(line[:-2] + b"0\r\n")  # 108 bytes
    with pytest.raises(ProxyProtocolError, match="longer than 107"):
        parse(b"PROXY " + b"X" * 200)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"GET / HTTP/1.1\r\n", "no PROXY protocol header"),
        (b"\x16\x03\x01\x02\x00\x01", "no PROXY protocol header"),  # a TLS ClientHello
        (b"PUT / HTTP/1.1\r\n", "signature"),
        (b"POST /", "signature"),
        (b"PRI * HTTP/2.0", "signature"),
        (b"proxy TCP4", "no PROXY"),
        (b"PROXY\r\n", "signature"),
        (b"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "unknown protocol"),
        (b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", "unknown protocol"),
        (b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", "unknown protocol"),
        (b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", "unknown protocol"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "4 fields"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", "4 fields"),
        (b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", "4 fields"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", "4 fields"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "CRLF"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", "CRLF"),
        (b"PROXY TCP4 1.2.3.4\n5.6.7.8 1 2\r\n", "CRLF"),
        (b"PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n", "IPv4 address"),  # leading zeros (octal confusion)
        (b"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", "IPv4 address"),
        (b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", "IPv4 address"),
        (b"PROXY TCP4 2001:db8::1 5.6.7.8 1 2\r\n", "IPv4 address"),  # the family dictates the format
        (b"PROXY TCP6 1.2.3.4 2001:db8::1 1 2\r\n", "IPv6 address"),
        (b"PROXY TCP6 2001:db8::1%eth0 2001:db8::1 1 2\r\n", "IPv6 address"),
        (b"PROXY TCP6 2001:db8:::1 2001:db8::1 1 2\r\n", "IPv6 address"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", "port"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", "port"),  # leading zeros
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", "port"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n", "port"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 x\r\n", "port"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 \xd9\xa3\r\n", "port"),
        (b"PROXY TCP4 \xff.2.3.4 5.6.7.8 1 2\r\n", "IPv4 address"),
        (b"PROXY \r\n", "unknown protocol"),
        (b"PROXY TCP4\r\n", "4 fields"),
    ],
)
def test_v1_malformed(data: bytes, match: str) -> None:
    with pytest.raises(ProxyProtocolError, match=match):
        parse(data)


@pytest.mark.parametrize(
    "prefix",
    [b"P", b"PROXY", b"PROXY ", b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2", b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r"],
)
def test_v1_incomplete(prefix: bytes) -> None:
    assert parse(prefix) is None


# -- version 2 ----------------------------------------------------------------------------------------------


def test_v2_tcp4_and_tcp6() -> None:
    data = v2(addresses=inet4()) + REQUEST
    for header in each_split(data):
        assert (header.version, header.length) == (2, 16 + 12)
        assert (header.client, header.server) == (("203.0.113.7", 4711), ("192.0.2.1", 443))
    data = v2(family=0x21, addresses=inet6()) + REQUEST
    for header in each_split(data):
        assert (header.client, header.server, header.length) == (
            ("2001:db8::7", 4711),
            ("2001:db8::1", 443),
            52,
        )


@pytest.mark.parametrize(
    ("command", "family", "addresses"),
    [
        (0, 0x00, b""),  # LOCAL (a health check)
        (0, 0x11, inet4()),  # LOCAL with addresses: they are ignored
        (0, 0x21, b"\0" * 3),  # LOCAL: the family and its block are discarded whatever they are
        (1, 0x00, b""),  # PROXY with AF_UNSPEC
        (1, 0x12, inet4()),  # UDP over IPv4: not a connection this server has, the real endpoints hold
        (1, 0x31, b"/tmp/a".ljust(108, b"\0") + b"/tmp/b".ljust(108, b"\0")),  # AF_UNIX
        (1, 0x10, inet4()),  # INET with an unspecified protocol
    ],
)
def test_v2_without_usable_addresses_uses_the_connections(
    command: int, family: int, addresses: bytes
) -> None:
    data = v2(command=command, family=family, addresses=addresses)
    for header in each_split(data + REQUEST):
        assert header.client is None and header.server is None and header.length == len(data)


def test_v2_tlvs_are_walked_and_the_known_ones_read() -> None:
    ssl_value = bytes([0x01 | 0x02]) + struct.pack("!I", 0)
    ssl_value += tlv(0x21, b"TLSv1.3") + tlv(0x23, b"TLS_AES_256_GCM_SHA384") + tlv(0x22, b"client.example")
    ssl_value += tlv(0x24, b"RSA-SHA256") + tlv(0x25, b"RSA2048")
    tlvs = (
        tlv(0x04, b"\0" * 5)  # NOOP
        + tlv(0x02, "bücher.example".encode())  # AUTHORITY
        + tlv(0x01, b"h2")  # ALPN
        + tlv(0x05, b"u" * 128)  # UNIQUE_ID
        + tlv(0x20, ssl_value)  # SSL
        + tlv(0x30, b"netns0")  # NETNS
        + tlv(0xEA, b"\x01vpce-0123")  # a vendor's own (AWS)
        + tlv(0xE0, b"")
    )
    data = v2(addresses=inet4(), tlvs=tlvs)
    for header in each_split(data + REQUEST):
        assert header.length == len(data)
        assert header.authority == "bücher.example" and header.alpn == b"h2"
        assert header.ssl is not None
        assert (header.ssl.version, header.ssl.cipher, header.ssl.cert_cn) == (
            "TLSv1.3",
            "TLS_AES_256_GCM_SHA384",
            "client.example",
        )
        assert header.ssl.cert_presented and header.ssl.cert_verified


def test_v2_ssl_tlv_flags() -> None:
    def ssl_of(client: int, verify: int) -> object:
        header = parse(v2(addresses=inet4(), tlvs=tlv(0x20, bytes([client]) + struct.pack("!I", verify))))
        assert header is not None
        return header.ssl

    assert ssl_of(0x00, 0) is None  # the client's connection was not TLS
    plain = ssl_of(0x01, 0)
    assert plain is not None and not plain.cert_presented and not plain.cert_verified  # type: ignore[attr-defined]
    refused = ssl_of(0x01 | 0x04, 21)
    assert refused.cert_presented and not refused.cert_verified  # type: ignore[attr-defined]


def test_v2_crc32c_is_verified() -> None:
    assert crc32c(b"123456789") == 0xE3069283  # RFC 3720 B.4's check value
    blank = v2(addresses=inet4(), tlvs=tlv(0x03, b"\0\0\0\0") + tlv(0x02, b"example.com"))
    good = blank.replace(b"\x03\x00\x04\x00\x00\x00\x00", b"\x03\x00\x04" + struct.pack("!I", crc32c(blank)))
    header = parse(good)
    assert header is not None and header.authority == "example.com"
    bad = good[:-1] + b"n"  # the authority changed in transit
    with pytest.raises(ProxyProtocolError, match="CRC32C checksum mismatch"):
        parse(bad)
    with pytest.raises(ProxyProtocolError, match="not 4 bytes"):
        parse(v2(addresses=inet4(), tlvs=tlv(0x03, b"\0\0\0")))


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (V2_SIGNATURE[:5] + b"X", "signature"),
        (b"\r\n\r\n\x00\r\nQUIX\n", "signature"),
        (b"\r\nGET", "signature"),
        (v2(version=1, addresses=inet4()), "version 1"),
        (v2(version=3), "version 3"),
        (V2_SIGNATURE + b"\x11", "version 1"),  # told as soon as the 13th byte arrives
        (v2(command=2), "command 2"),
        (v2(command=0xF), "command 15"),
        (v2(family=0x41), "address family"),
        (v2(family=0x13), "address family"),
        (V2_SIGNATURE + b"\x21\x41", "address family"),
        (v2(addresses=inet4()[:11]), "shorter than its address block"),  # a lying length
        (v2(family=0x21, addresses=inet4()), "shorter than its address block"),
        (v2(family=0x21, length=35), "shorter than its address block"),
        (v2(addresses=inet4(), tlvs=b"\x02\x00"), "truncated TLV"),
        (v2(addresses=inet4(), tlvs=b"\x02\x00\x10abc"), "overruns"),
        (v2(addresses=inet4(), tlvs=tlv(0x02, b"ok") + b"\x04\xff\xff"), "overruns"),
        (v2(addresses=inet4(), tlvs=tlv(0x02, b"\xff\xfe")), "authority is not UTF-8"),
        (v2(addresses=inet4(), tlvs=tlv(0x20, b"\x01\0\0")), "SSL TLV shorter than 5"),
        (
            v2(addresses=inet4(), tlvs=tlv(0x20, b"\x01\0\0\0\0" + b"\x21\x00\x09TLS")),
            "SSL sub-TLV type 0x21 overruns",
        ),
        (v2(addresses=inet4(), tlvs=tlv(0x20, b"\x01\0\0\0\0" + b"\x21")), "truncated SSL sub-TLV"),
    ],
)
def test_v2_malformed(data: bytes, match: str) -> None:
    with pytest.raises(ProxyProtocolError, match=match):
        parse(data)


def test_v2_truncated_is_incomplete_until_the_length_is_there() -> None:
    data = v2(addresses=inet4(), tlvs=tlv(0x02, b"example.com"))
    for cut in range(1, len(data)):
        assert parse(data[:cut]) is None
    assert parse(data) is not None


def test_v2_largest_length_is_bounded_by_the_format() -> None:
    data = v2(addresses=inet4(), tlvs=tlv(0x04, b"\0" * (65535 - 12 - 3)))
    header = parse(data)
    assert header is not None and header.length == 16 + 65535


# -- any input ---------------------------------------------------------------------------------------------


@given(st.binary(max_size=300))
def test_any_bytes_give_a_header_none_or_proxy_protocol_error(data: bytes) -> None:
    try:
        header = parse(data)
    except ProxyProtocolError:
        return
    if header is not None:
        assert 0 < header.length <= len(data)


@given(
    st.sampled_from(
        [
            b"PROXY TCP4 203.0.113.7 192.0.2.1 4711 443\r\n",
            b"PROXY TCP6 2001:db8::7 2001:db8::1 4711 443\r\n",
            v2(
                addresses=inet4(),
                tlvs=tlv(0x02, b"example.com") + tlv(0x20, b"\x01\0\0\0\0" + tlv(0x21, b"TLSv1.2")),
            ),
            v2(family=0x21, addresses=inet6()),
        ]
    ),
    st.integers(0, 120),
    st.binary(min_size=1, max_size=3),
)
def test_corrupted_headers_never_raise_anything_else(valid: bytes, position: int, junk: bytes) -> None:
    # one to three bytes changed, inserted or cut anywhere: an error, "incomplete", or a header no longer
    # than the input; never a crash
    position %= len(valid)
    for data in (
        valid[:position] + junk + valid[position + len(junk) :],
        valid[:position] + junk + valid[position:],
        valid[:position] + valid[position + len(junk) :],
    ):
        try:
            header = parse(data + REQUEST)
        except ProxyProtocolError:
            continue
        if header is not None:
            assert header.length <= len(data) + len(REQUEST)
