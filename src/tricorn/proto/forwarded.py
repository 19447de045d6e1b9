"""Trusted proxy headers: who the client is, and which scheme and Host it used, behind a proxy.

Theory of operation
-------------------
The decision to believe a connection's proxy headers is made once, when the connection is made: its
peer is in ``--forwarded-allow-ips`` (an :class:`AllowList`) or it is not. Only then does
:func:`resolve` read a request's headers. It is a pure function: headers and the socket peer in, a
:class:`Forwarded` out (or None when the request carries no proxy header), and :class:`ForwardedError`
for a value that cannot be trusted to mean anything, which the caller turns into "use the socket peer".

Two families of headers say the same things:

- ``X-Forwarded-For`` (a list of addresses, each proxy appending its own peer), ``X-Forwarded-Proto``,
  ``X-Forwarded-Host`` and ``X-Forwarded-Port``: what nginx, haproxy and most load balancers write.
- ``Forwarded`` (RFC 7239): a list of elements, each ``for=...;proto=...;host=...`` from one proxy.

When both are present the X-Forwarded-* family is used and ``Forwarded`` ignored: nginx writes the
former and passes a client's own ``Forwarded`` through untouched, so preferring ``Forwarded`` would let
any client behind nginx choose its address.

The client is found by walking the address list from the right (the entry the nearest proxy wrote) past
every address that is itself trusted: the first untrusted one is the client. A list made only of trusted
addresses gives its leftmost one. The scheme and host are read from the same hop: for ``Forwarded``,
the element that named the client; for X-Forwarded-Proto/-Host/-Port, the entry at the same position
from the right as the client's (most proxies overwrite these headers rather than append, so the list
usually has one entry, and a position past its left end takes the leftmost entry).

Nothing here reads a clock, logs or knows ASGI or WSGI: tricorn.interfaces.forwarded applies the result.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence

__all__ = ["AllowList", "Forwarded", "ForwardedError", "parse_ip", "resolve"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Headers = Sequence[tuple[bytes, bytes]]

# The schemes a proxy may claim (X-Forwarded-Proto, Forwarded proto=); anything else is an error.
SCHEMES = frozenset(("http", "https", "ws", "wss"))
# The header names that carry forwarding information, lowercase as the cores deliver them.
X_FOR, X_PROTO, X_HOST, X_PORT, FORWARDED = (
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
    b"x-forwarded-port",
    b"forwarded",
)
NAMES = frozenset((X_FOR, X_PROTO, X_HOST, X_PORT, FORWARDED))
# A proxy chain longer than this is not a chain but an attack on the walk's CPU time (nginx's
# set_real_ip_from walk has no bound; Cloudflare and AWS chains are a handful of hops).
MAX_HOPS = 64
MAX_CACHED_PEERS = 4096
# Only short keys are kept, so the caches stay small whatever a client appends to its headers: an
# X-Forwarded-For entry that is an address is at most 47 characters ("[ipv6]:port"); a proxy's headers for
# one request are a few dozen bytes.
MAX_CACHED_ENTRY = 64
MAX_CACHED_HEADERS = 512


class ForwardedError(ValueError):
    """A proxy header the resolution needs is malformed; ``str(err)`` says which and why."""


class AllowList:
    """The peers whose proxy headers (or PROXY protocol headers) are believed.

    Entries are IP addresses, CIDR networks, ``*`` (every peer, Unix-socket peers included) and ``unix``
    (peers on a Unix socket, which are never trusted otherwise). Raises ValueError naming a bad entry.
    """

    __slots__ = ("addresses", "any", "entries", "networks", "nodes", "peers", "results", "unix")

    def __init__(self, entries: Iterable[str]) -> None:
        self.entries = tuple(entries)
        self.any = False
        self.unix = False
        self.addresses: set[IPAddress] = set()
        self.networks: list[Network] = []
        # The verdict for each peer address seen (one per connection: a keep-alive client, or a proxy's
        # few connections, are looked up, not parsed again). Bounded, as clients choose their addresses.
        self.peers: dict[str, bool] = {}
        # X-Forwarded-For entries as parsed and judged: (address, port, trusted), or None when malformed.
        # Requests through a proxy repeat the same few (parsing one costs more than the rest of a hello
        # request's proxy handling). Bounded the same way.
        self.nodes: dict[str, tuple[str, int, bool] | None] = {}
        # Whole resolutions (see resolve), bounded the same way.
        self.results: dict[tuple[object, ...], Forwarded] = {}
        for entry in self.entries:
            text = entry.strip()
            if text == "*":
                self.any = True
            elif text.lower() == "unix":
                self.unix = True
            elif "/" in text:
                try:
                    self.networks.append(ipaddress.ip_network(text, strict=False))
                except ValueError:
                    raise ValueError(f"{entry!r} is not an IP network (e.g. 10.0.0.0/8)") from None
            else:
                try:
                    self.addresses.add(ipaddress.ip_address(text.removeprefix("[").removesuffix("]")))
                except ValueError:
                    raise ValueError(f"{entry!r} is not an IP address, a network, '*' or 'unix'") from None

    def trusts_peer(self, host: str | None) -> bool:
        """Whether a socket peer is trusted: ``host`` as the socket gives it, None for a Unix socket."""
        if self.any:
            return True
        if not host:
            return self.unix
        verdict = self.peers.get(host)
        if verdict is None:
            try:
                verdict = self.trusts(ipaddress.ip_address(host))
            except ValueError:
                verdict = False
            if len(self.peers) >= MAX_CACHED_PEERS:
                self.peers.clear()
            self.peers[host] = verdict
        return verdict

    def node(self, entry: str) -> tuple[str, int, bool] | None:
        """An X-Forwarded-For entry's normalised address, port and whether it is trusted; None when it
        is not an address (see :func:`_x_node` for the forms)."""
        try:
            return self.nodes[entry]
        except KeyError:
            pass
        try:
            ip, port = _x_node(entry)
            verdict: tuple[str, int, bool] | None = (str(ip), port, self.trusts(ip))
        except ValueError:
            verdict = None
        if len(entry) <= MAX_CACHED_ENTRY:
            if len(self.nodes) >= MAX_CACHED_PEERS:
                self.nodes.clear()
            self.nodes[entry] = verdict
        return verdict

    def trusts(self, ip: IPAddress) -> bool:
        if self.any:
            return True
        mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
        for candidate in (ip, mapped) if mapped is not None else (ip,):
            if candidate in self.addresses:
                return True
            for network in self.networks:
                if candidate.version == network.version and candidate in network:
                    return True
        return False

    def __repr__(self) -> str:
        return f"AllowList({', '.join(self.entries)})"


class Forwarded:
    """What the proxy headers of a request say: ``client`` (None when the proxy says it is unknown or
    hidden), ``scheme`` (None: the connection's), ``host`` (the Host the client asked for, None: the
    request's own)."""

    __slots__ = ("client", "host", "scheme")

    def __init__(self, client: tuple[str, int] | None, scheme: str | None, host: bytes | None) -> None:
        self.client = client
        self.scheme = scheme
        self.host = host

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Forwarded) and (self.client, self.scheme, self.host) == (
            other.client,
            other.scheme,
            other.host,
        )

    def __repr__(self) -> str:
        return f"Forwarded(client={self.client!r}, scheme={self.scheme!r}, host={self.host!r})"


def parse_ip(text: str) -> IPAddress:
    """An address as a proxy writes it, without brackets or zone; ValueError otherwise."""
    if "%" in text:  # a zone index names an interface of the proxy's host, not a client
        raise ValueError(text)
    return ipaddress.ip_address(text)


# -- X-Forwarded-For entries: 1.2.3.4, 1.2.3.4:5678, 2001:db8::1, [2001:db8::1], [2001:db8::1]:5678


def _x_node(text: str) -> tuple[IPAddress, int]:
    port = 0
    if text.startswith("["):  # brackets hold an IPv6 address (RFC 3986 §3.2.2), perhaps with a port after
        address, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")) or "%" in address:
            raise ValueError(text)
        if rest:
            port = _port(rest[1:])
        return ipaddress.IPv6Address(address), port
    elif text.count(":") == 1:  # IPv4:port (a bare IPv6 address has at least two colons)
        address, _, port_text = text.partition(":")
        port = _port(port_text)
    else:
        address = text
    return parse_ip(address), port


def _port(text: str) -> int:
    if not text.isdigit() or not text.isascii() or len(text) > 5 or int(text) > 65535:
        raise ValueError(text)
    return int(text)


def _split(values: list[bytes]) -> list[str]:
    """A list header's entries, its field lines joined (RFC 9110 §5.3), each stripped."""
    text = (values[0] if len(values) == 1 else b",".join(values)).decode("latin-1")
    # RFC 9110 §5.6.1: empty list elements are not counted.
    return [item.strip(" \t") for item in text.split(",") if item.strip(" \t")]


# -- RFC 7239 §4: Forwarded = 1#forwarded-element; forwarded-element = [ pair ] *( ";" [ pair ] ),
# pair = token "=" ( token / quoted-string ).

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_PAIR = re.compile(rf"\s*({_TOKEN})=({_TOKEN}|\"(?:[^\"\\\x00-\x08\x0a-\x1f\x7f]|\\[\t -~\x80-\xff])*\")\s*")
_QUOTED_PAIR = re.compile(r"\\(.)")
# RFC 7239 §6: node = nodename [ ":" node-port ]; nodename = IPv4address / "[" IPv6address "]" /
# "unknown" / obfnode; obfnode and obfport = "_" 1*( ALPHA / DIGIT / "." / "_" / "-" ).
_OBFUSCATED = re.compile(r"_[A-Za-z0-9._-]+\Z")


def _forwarded_elements(values: list[bytes]) -> list[dict[str, str]]:
    text = b",".join(values).decode("latin-1")
    elements: list[dict[str, str]] = []
    element: dict[str, str] = {}
    pos, end = 0, len(text)
    while True:
        match = _PAIR.match(text, pos)
        if match is not None:
            name, value = match.group(1).lower(), match.group(2)
            if value.startswith('"'):
                value = _QUOTED_PAIR.sub(r"\1", value[1:-1])
            if name in element:  # §4: each parameter MUST NOT occur more than once per element
                raise ForwardedError(f"forwarded parameter {name!r} given twice in one element")
            element[name] = value
            pos = match.end()
        else:
            while pos < end and text[pos] in " \t":
                pos += 1
        if pos >= end:
            if element:
                elements.append(element)
            return elements
        separator = text[pos]
        if separator == ",":
            if element:  # RFC 9110 §5.6.1: empty list elements are not counted
                elements.append(element)
            element = {}
        elif separator != ";":
            raise ForwardedError(f"malformed forwarded header near {text[pos : pos + 20]!r}")
        pos += 1


def _forwarded_node(value: str) -> tuple[IPAddress, int] | None:
    """The address and port of a node; None for ``unknown`` and obfuscated identifiers."""
    name = value.partition(":")[0] if not value.startswith("[") else value
    if name.lower() == "unknown" or _OBFUSCATED.match(name):
        return None
    port = 0
    if value.startswith("["):  # §6: an IPv6 address is in brackets, with an optional port after
        address, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(value)
        ip = ipaddress.IPv6Address(address) if "%" not in address else parse_ip(address)
    else:
        address, colon, port_text = value.partition(":")
        rest = colon + port_text
        ip = ipaddress.IPv4Address(address)
    if rest:
        port_text = rest[1:]
        port = 0 if _OBFUSCATED.match(port_text) else _port(port_text)
    return ip, port


# -- Host and port ----------------------------------------------------------------------------------------

# RFC 9110 §7.2 Host = uri-host [ ":" port ], with a reg-name, an IPv4 address or an IP literal.
_HOST = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+;=-]+)(?::[0-9]{1,5})?\Z")
_DEFAULT_PORTS = {"http": "80", "ws": "80", "https": "443", "wss": "443"}


def _host(value: str) -> str:
    if not _HOST.match(value):
        raise ForwardedError(f"malformed forwarded host {value[:64]!r}")
    return value


def _scheme(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    scheme = value.lower()
    if scheme not in SCHEMES:
        raise ForwardedError(f"{what} {scheme[:20]!r} is not http, https, ws or wss")
    return scheme


def host_name(host: str) -> str:
    """``host`` without its port: ``example.com``, ``[2001:db8::1]``."""
    if host.startswith("["):
        return host[: host.index("]") + 1]
    return host.partition(":")[0]


# -- Resolution -------------------------------------------------------------------------------------------


def carries_proxy_headers(headers: Headers) -> bool:
    """Whether any of ``headers`` is a proxy header (the cheap test before :func:`resolve`)."""
    for name, _ in headers:  # noqa: SIM110 - any() over a generator costs more, on every request
        if name in NAMES:
            return True
    return False


def resolve(headers: Headers, peer: tuple[str, int] | None, trust: AllowList) -> Forwarded | None:
    """What the proxy headers of a request from the trusted ``peer`` say, or None if it has none.

    ``headers`` are the request's (lowercase names); ``trust`` the allow list, which also decides how far
    the walk goes. Raises ForwardedError for a malformed value on the walk's path (an address that is
    not one, a scheme other than http, https, ws or wss, a Host or port that is not one), so that nothing
    malformed ever reaches an application as an address or a scheme.
    """
    pairs: list[tuple[bytes, bytes]] | None = None
    host = None
    size = 0
    for pair in headers:
        name = pair[0]
        if name in NAMES:
            if pairs is None:
                pairs = []
            pairs.append(pair)
            size += len(pair[1])
        elif name == b"host":
            host = pair[1]
    if pairs is None:
        return None
    # A proxy repeats the same headers request after request (one client's, on one of its connections):
    # the result is looked up, not worked out again (bench/hotpath.py: a third of the cost of a hello
    # request with X-Forwarded-For and -Proto, without it). Malformed headers are not remembered.
    key = (peer, host, *pairs)
    results = trust.results
    result = results.get(key)
    if result is None:
        found: dict[bytes, list[bytes]] = {}
        for name, value in pairs:
            found.setdefault(name, []).append(value)
        if X_FOR in found or X_PROTO in found or X_HOST in found or X_PORT in found:
            result = _resolve_x(found, peer, trust, host.decode("latin-1") if host is not None else None)
        else:
            result = _resolve_rfc7239(found[FORWARDED], peer, trust)
        if size <= MAX_CACHED_HEADERS:
            if len(results) >= MAX_CACHED_PEERS:
                results.clear()
            results[key] = result
    return result


def _resolve_x(
    found: dict[bytes, list[bytes]], peer: tuple[str, int] | None, trust: AllowList, host: str | None
) -> Forwarded:
    client = peer
    hop = 0  # the client's position from the right of the list (0: the entry the peer wrote)
    if X_FOR in found:
        entries = _split(found[X_FOR])[-MAX_HOPS:]
        for hop, entry in enumerate(reversed(entries)):  # noqa: B007 - hop is read after the loop
            node = trust.node(entry)
            if node is None:
                raise ForwardedError(f"malformed x-forwarded-for entry {entry[:64]!r}")
            client = (node[0], node[1])
            if not node[2]:
                break
    scheme = _scheme(_pick(found, X_PROTO, hop), "x-forwarded-proto")
    new_host = _pick(found, X_HOST, hop)
    if new_host is not None:
        host = _host(new_host)
    port_text = _pick(found, X_PORT, hop)
    if port_text is not None:
        try:
            _port(port_text)
        except ValueError:
            raise ForwardedError(f"malformed x-forwarded-port {port_text[:20]!r}") from None
        if host is not None:
            name = host_name(host)
            new_host = name if _DEFAULT_PORTS.get(scheme or "") == port_text else f"{name}:{port_text}"
    return Forwarded(client, scheme, new_host.encode("latin-1") if new_host is not None else None)


def _pick(found: dict[bytes, list[bytes]], name: bytes, hop: int) -> str | None:
    """The entry of header ``name`` at the client's ``hop`` (see the module docstring), if any."""
    values = found.get(name)
    if values is None:
        return None
    entries = _split(values)
    return entries[max(len(entries) - 1 - hop, 0)] if entries else None


def _resolve_rfc7239(values: list[bytes], peer: tuple[str, int] | None, trust: AllowList) -> Forwarded:
    elements = _forwarded_elements(values)[-MAX_HOPS:]
    client: tuple[str, int] | None = peer
    chosen: dict[str, str] = {}
    for element in reversed(elements):
        chosen = element
        node = element.get("for")
        if node is None:
            break  # the proxy did not say whom it received from: the last hop known is the client
        try:
            parsed = _forwarded_node(node)
        except ValueError:
            raise ForwardedError(f"malformed forwarded for= {node[:64]!r}") from None
        if parsed is None:  # unknown or hidden: the proxy does not say who the client is
            client = None
            break
        ip, port = parsed
        client = (str(ip), port)
        if not trust.trusts(ip):
            break
    scheme = _scheme(chosen.get("proto"), "forwarded proto")
    host = chosen.get("host")
    return Forwarded(client, scheme, _host(host).encode("latin-1") if host is not None else None)
