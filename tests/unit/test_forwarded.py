"""The proxy-header core (tricorn.proto.forwarded) and its application to ASGI scopes and WSGI environs."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tricorn.interfaces.forwarded import apply_environ, apply_scope, forwarded, proxied_scope
from tricorn.proto.forwarded import AllowList, Forwarded, ForwardedError, resolve

TRUST = AllowList(["127.0.0.1", "::1", "10.0.0.0/8", "fd00::/8"])
PEER = ("127.0.0.1", 50000)


def headers(*pairs: tuple[str, str]) -> list[tuple[bytes, bytes]]:
    return [(n.lower().encode(), v.encode("utf-8")) for n, v in pairs]


def res(
    *pairs: tuple[str, str], peer: tuple[str, int] | None = PEER, trust: AllowList = TRUST
) -> Forwarded | None:
    return resolve(headers(*pairs), peer, trust)


# -- the allow list ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entries", "peer", "trusted"),
    [
        (["127.0.0.1"], "127.0.0.1", True),
        (["127.0.0.1"], "127.0.0.2", False),
        (["127.0.0.1"], "::ffff:127.0.0.1", True),  # an IPv4-mapped peer on a dual-stack socket
        (["::1"], "::1", True),
        (["::1"], "0:0:0:0:0:0:0:1", True),
        (["10.0.0.0/8"], "10.200.3.4", True),
        (["10.0.0.0/8"], "11.0.0.1", False),
        (["10.0.0.1/8"], "10.9.9.9", True),  # host bits are ignored, as gunicorn does
        (["2001:db8::/32"], "2001:db8:1::5", True),
        (["2001:db8::/32"], "10.0.0.1", False),
        (["127.0.0.1"], None, False),  # a unix-socket peer is not trusted unless listed
        (["unix"], None, True),
        (["unix"], "127.0.0.1", False),
        (["*"], None, True),
        (["*"], "203.0.113.9", True),
        (["[::1]"], "::1", True),
        (["127.0.0.1"], "not-an-ip", False),
    ],
)
def test_allow_list(entries: list[str], peer: str | None, trusted: bool) -> None:
    assert AllowList(entries).trusts_peer(peer) is trusted


@pytest.mark.parametrize("entry", ["localhost", "10.0.0.0/33", "1.2.3", "", "unix:/x", "::1/200"])
def test_allow_list_refuses_what_is_not_an_address(entry: str) -> None:
    with pytest.raises(ValueError, match="not an IP"):
        AllowList([entry])


# -- X-Forwarded-* ------------------------------------------------------------------------------------------


def test_no_proxy_header_resolves_to_nothing() -> None:
    assert res(("host", "a"), ("user-agent", "x")) is None
    assert res() is None


@pytest.mark.parametrize(
    ("value", "client"),
    [
        ("203.0.113.7", ("203.0.113.7", 0)),
        ("203.0.113.7:4711", ("203.0.113.7", 4711)),
        ("2001:db8::7", ("2001:db8::7", 0)),
        ("[2001:db8::7]", ("2001:db8::7", 0)),
        ("[2001:db8::7]:4711", ("2001:db8::7", 4711)),
        ("2001:DB8:0:0:0:0:0:7", ("2001:db8::7", 0)),  # normalised
        ("  203.0.113.7  ", ("203.0.113.7", 0)),
        # walk from the right past trusted hops; the first untrusted address is the client
        ("198.51.100.1, 203.0.113.7", ("203.0.113.7", 0)),
        ("198.51.100.1, 203.0.113.7, 10.1.1.1", ("203.0.113.7", 0)),
        ("198.51.100.1, 203.0.113.7, 10.1.1.1, fd00::5", ("203.0.113.7", 0)),
        # a client's own spoofed entries sit left of the real one and are never looked at
        ("evil, 1.1.1.1, 203.0.113.7", ("203.0.113.7", 0)),
        # every hop trusted: the leftmost
        ("10.0.0.9, 10.0.0.8", ("10.0.0.9", 0)),
        ("10.0.0.9,10.0.0.8", ("10.0.0.9", 0)),
        # empty list elements are not counted (RFC 9110 §5.6.1)
        ("203.0.113.7, , ", ("203.0.113.7", 0)),
        ("", PEER),
    ],
)
def test_x_forwarded_for(value: str, client: tuple[str, int]) -> None:
    result = res(("x-forwarded-for", value))
    assert result is not None
    assert result.client == client
    assert (result.scheme, result.host) == (None, None)


def test_split_x_forwarded_for_lines_are_joined_in_order() -> None:
    result = res(("x-forwarded-for", "198.51.100.1, 203.0.113.7"), ("x-forwarded-for", "10.0.0.1"))
    assert result is not None and result.client == ("203.0.113.7", 0)
    result = res(("x-forwarded-for", "203.0.113.7"), ("x-forwarded-for", "198.51.100.1"))
    assert result is not None and result.client == ("198.51.100.1", 0)


@pytest.mark.parametrize(
    "value",
    [
        "not-an-ip",
        "203.0.113.7:99999",
        "203.0.113.7:port",
        "203.0.113.07",
        "[2001:db8::7",
        "[2001:db8::7]x",
        "[203.0.113.7]",
        "fe80::1%eth0",
        "unknown",
        "203.0.113.7, 10.0.0.1, garbage",  # malformed on the walk's path
        "1.2.3.4 5.6.7.8",
        "\uff12\uff10\uff13.0.113.7",
        "203.0.113.7:\u0663",
    ],
)
def test_malformed_x_forwarded_for_is_an_error(value: str) -> None:
    with pytest.raises(ForwardedError, match="x-forwarded-for"):
        res(("x-forwarded-for", value))


@pytest.mark.parametrize(
    ("value", "scheme"),
    [
        ("https", "https"),
        ("http", "http"),
        ("HTTPS", "https"),
        ("wss", "wss"),
        ("ws", "ws"),
        (" https ", "https"),
    ],
)
def test_x_forwarded_proto(value: str, scheme: str) -> None:
    result = res(("x-forwarded-proto", value))
    assert result is not None and result.scheme == scheme and result.client == PEER


def test_empty_x_forwarded_headers_say_nothing() -> None:
    assert res(("x-forwarded-proto", ""), ("x-forwarded-host", " , ")) == Forwarded(PEER, None, None)


@pytest.mark.parametrize("value", ["ftp", "javascript", "https://x", "http s", "gopher"])
def test_x_forwarded_proto_other_than_http_https_ws_wss_is_an_error(value: str) -> None:
    with pytest.raises(ForwardedError, match="x-forwarded-proto"):
        res(("x-forwarded-proto", value))


def test_list_headers_are_read_at_the_clients_hop() -> None:
    # proxy1 (10.0.0.1, trusted) saw the client over https and appended; proxy2 (the peer) over http.
    result = res(
        ("x-forwarded-for", "203.0.113.7, 10.0.0.1"),
        ("x-forwarded-proto", "https, http"),
        ("x-forwarded-host", "example.com, internal.lan"),
    )
    assert result == Forwarded(("203.0.113.7", 0), "https", b"example.com")
    # a client's own value appended to by the trusted peer: the peer's entry is read
    result = res(("x-forwarded-for", "203.0.113.7"), ("x-forwarded-proto", "https, http"))
    assert result == Forwarded(("203.0.113.7", 0), "http", None)
    # a proxy that overwrote the header (one entry for two hops): its entry
    result = res(("x-forwarded-for", "203.0.113.7, 10.0.0.1"), ("x-forwarded-proto", "https"))
    assert result == Forwarded(("203.0.113.7", 0), "https", None)


@pytest.mark.parametrize(
    ("pairs", "host"),
    [
        ((("host", "internal:8000"), ("x-forwarded-host", "example.com")), b"example.com"),
        ((("host", "internal:8000"), ("x-forwarded-host", "example.com:8443")), b"example.com:8443"),
        ((("host", "internal:8000"), ("x-forwarded-host", "[2001:db8::1]:8443")), b"[2001:db8::1]:8443"),
        ((("host", "internal:8000"), ("x-forwarded-port", "9000")), b"internal:9000"),
        ((("host", "[::1]:8000"), ("x-forwarded-port", "9000")), b"[::1]:9000"),
        ((("x-forwarded-host", "example.com"), ("x-forwarded-port", "8080")), b"example.com:8080"),
        # the scheme's default port is left out of the Host the app rebuilds URLs from
        (
            (
                ("x-forwarded-host", "example.com"),
                ("x-forwarded-port", "443"),
                ("x-forwarded-proto", "https"),
            ),
            b"example.com",
        ),
        (
            (("x-forwarded-host", "example.com"), ("x-forwarded-port", "80"), ("x-forwarded-proto", "http")),
            b"example.com",
        ),
        (
            (("x-forwarded-host", "example.com"), ("x-forwarded-port", "80"), ("x-forwarded-proto", "https")),
            b"example.com:80",
        ),
        ((("x-forwarded-port", "9000"),), None),  # no Host at all (HTTP/1.0): nothing to put the port on
    ],
)
def test_x_forwarded_host_and_port(pairs: tuple[tuple[str, str], ...], host: bytes | None) -> None:
    result = res(*pairs)
    assert result is not None and result.host == host


@pytest.mark.parametrize(
    ("pairs", "what"),
    [
        ((("x-forwarded-host", "exa mple.com"),), "host"),
        ((("x-forwarded-host", "example.com:port"),), "host"),
        ((("x-forwarded-host", "example.com/evil"),), "host"),
        ((("x-forwarded-host", "a@b"),), "host"),
        ((("x-forwarded-host", "example.com:123456"),), "host"),
        ((("x-forwarded-port", "99999"),), "port"),
        ((("x-forwarded-port", "-1"),), "port"),
        ((("x-forwarded-port", "80a"),), "port"),
    ],
)
def test_malformed_x_forwarded_host_or_port_is_an_error(
    pairs: tuple[tuple[str, str], ...], what: str
) -> None:
    with pytest.raises(ForwardedError, match=what):
        res(("host", "h"), *pairs)


# -- Forwarded (RFC 7239) ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("for=203.0.113.7", Forwarded(("203.0.113.7", 0), None, None)),
        ("For=203.0.113.7", Forwarded(("203.0.113.7", 0), None, None)),
        ('for="203.0.113.7:4711"', Forwarded(("203.0.113.7", 4711), None, None)),
        ('for="[2001:db8:cafe::17]:4711"', Forwarded(("2001:db8:cafe::17", 4711), None, None)),
        ('for="[2001:db8:cafe::17]"', Forwarded(("2001:db8:cafe::17", 0), None, None)),
        (
            "for=203.0.113.7;proto=https;host=example.com",
            Forwarded(("203.0.113.7", 0), "https", b"example.com"),
        ),
        (
            'for=203.0.113.7; proto=HTTPS; host="example.com:8443"',
            Forwarded(("203.0.113.7", 0), "https", b"example.com:8443"),
        ),
        ("proto=https;for=203.0.113.7", Forwarded(("203.0.113.7", 0), "https", None)),
        # lists: walked from the right past trusted nodes; proto and host from the element that names the client
        (
            "for=203.0.113.7;proto=https;host=example.com, for=10.0.0.1;proto=http;host=internal",
            Forwarded(("203.0.113.7", 0), "https", b"example.com"),
        ),
        ("for=198.51.100.1, for=203.0.113.7", Forwarded(("203.0.113.7", 0), None, None)),
        ("for=10.0.0.2, for=10.0.0.1", Forwarded(("10.0.0.2", 0), None, None)),
        # obfuscated and unknown nodes: the proxy does not say who the client is
        ("for=_hidden", Forwarded(None, None, None)),
        ("for=_SEVKISEK;proto=https", Forwarded(None, "https", None)),
        ("for=unknown", Forwarded(None, None, None)),
        ('for="unknown:4711"', Forwarded(None, None, None)),
        ('for="203.0.113.7:_port"', Forwarded(("203.0.113.7", 0), None, None)),
        ("for=_hidden, for=10.0.0.1", Forwarded(None, None, None)),
        # an element without for=: the last hop known is the client
        ("proto=https;host=example.com", Forwarded(PEER, "https", b"example.com")),
        ("proto=https, for=10.0.0.1", Forwarded(("10.0.0.1", 0), "https", None)),
        # quoted-pair and by= (ignored)
        ('for="\\203.0.113.7";by=10.0.0.9', Forwarded(("203.0.113.7", 0), None, None)),
        ("for=203.0.113.7,,", Forwarded(("203.0.113.7", 0), None, None)),
        ("", Forwarded(PEER, None, None)),
    ],
)
def test_rfc7239_forwarded(value: str, expected: Forwarded) -> None:
    assert res(("forwarded", value)) == expected


def test_split_forwarded_lines_are_one_list() -> None:
    result = res(("forwarded", "for=203.0.113.7;proto=https"), ("forwarded", "for=10.0.0.1;proto=http"))
    assert result == Forwarded(("203.0.113.7", 0), "https", None)


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("for=2001:db8::1", "malformed"),  # IPv6 must be bracketed (and so quoted)
        ('for="2001:db8::1"', "for="),
        ("for=not-an-ip", "for="),
        ('for="[2001:db8::1]:99999"', "for="),
        ('for="[2001:db8::1"', "for="),
        ("for=203.0.113.7;for=203.0.113.8", "twice"),
        ("for=203.0.113.7;proto=ftp", "proto"),
        ("for=203.0.113.7;host=a b", "malformed"),
        ('for=203.0.113.7;host="a b"', "host"),
        ('for="203.0.113.7', "malformed"),
        ("for 203.0.113.7", "malformed"),
        ("for=203.0.113.7 x", "malformed"),
    ],
)
def test_malformed_forwarded_is_an_error(value: str, match: str) -> None:
    with pytest.raises(ForwardedError, match=match):
        res(("forwarded", value))


def test_x_forwarded_family_wins_over_forwarded() -> None:
    # nginx writes X-Forwarded-For and passes a client's own Forwarded through: the client cannot spoof.
    result = res(("forwarded", "for=1.1.1.1;proto=https"), ("x-forwarded-for", "203.0.113.7"))
    assert result == Forwarded(("203.0.113.7", 0), None, None)
    result = res(("forwarded", "for=1.1.1.1"), ("x-forwarded-proto", "https"))
    assert result == Forwarded(PEER, "https", None)
    # a malformed Forwarded is not even read then
    assert res(("forwarded", "garbage;;=="), ("x-forwarded-for", "203.0.113.7")) is not None


def test_a_long_chain_is_walked_only_so_far() -> None:
    # Every hop is trusted: an unbounded walk would reach the client on the far left.
    chain = ", ".join(["203.0.113.7"] + ["10.0.0.1"] * 10000)
    result = res(("x-forwarded-for", chain))
    assert result is not None and result.client == ("10.0.0.1", 0)
    chain = ", ".join(["for=203.0.113.7"] + ["for=10.0.0.1"] * 10000)
    result = res(("forwarded", chain))
    assert result is not None and result.client == ("10.0.0.1", 0)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "x-forwarded-for",
                    "x-forwarded-proto",
                    "x-forwarded-host",
                    "x-forwarded-port",
                    "forwarded",
                    "host",
                ]
            ),
            st.text(max_size=40),
        )
    )
)
def test_resolve_raises_only_forwarded_error(pairs: list[tuple[str, str]]) -> None:
    encoded = [(n.encode(), v.encode("utf-8")) for n, v in pairs]
    try:
        result = resolve(encoded, PEER, TRUST)
    except ForwardedError:
        return
    if result is not None:
        assert result.scheme in (None, "http", "https", "ws", "wss")
        if result.client is not None:
            import ipaddress

            ipaddress.ip_address(result.client[0])
            assert 0 <= result.client[1] <= 65535


# -- application to a scope and an environ ------------------------------------------------------------------


def scope(
    kind: str = "http", scheme: str = "http", pairs: tuple[tuple[str, str], ...] = ()
) -> dict[str, Any]:
    return {
        "type": kind,
        "scheme": scheme,
        "client": PEER,
        "headers": headers(("host", "internal:8000"), *pairs),
    }


def test_proxied_scope_sets_client_scheme_and_host() -> None:
    s = scope(
        pairs=(
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "example.com"),
        )
    )
    original = s["headers"]
    proxied_scope(s, TRUST)
    assert s["client"] == ("203.0.113.7", 0)
    assert s["scheme"] == "https"
    assert (b"host", b"example.com") in s["headers"] and (b"host", b"internal:8000") not in s["headers"]
    assert (b"host", b"internal:8000") in original  # the request's own list is left alone


def test_websocket_scope_gets_ws_schemes() -> None:
    s = scope("websocket", "ws", (("x-forwarded-proto", "https"),))
    proxied_scope(s, TRUST)
    assert s["scheme"] == "wss"
    s = scope("http", "http", (("x-forwarded-proto", "wss"),))
    proxied_scope(s, TRUST)
    assert s["scheme"] == "https"


def test_host_added_when_the_request_had_none() -> None:
    s = {
        "type": "http",
        "scheme": "http",
        "client": PEER,
        "headers": headers(("x-forwarded-host", "example.com")),
    }
    proxied_scope(s, TRUST)
    assert s["headers"][-1] == (b"host", b"example.com")


def test_malformed_value_falls_back_to_the_socket_peer_with_one_debug_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    s = scope(pairs=(("x-forwarded-for", "203.0.113.7, bogus"), ("x-forwarded-proto", "https")))
    with caplog.at_level(logging.DEBUG, "tricorn.error"):
        proxied_scope(s, TRUST)
    assert s["client"] == PEER and s["scheme"] == "http"
    records = [r for r in caplog.records if r.name == "tricorn.error"]
    assert len(records) == 1
    assert "proxy headers ignored" in records[0].getMessage() and "bogus" in records[0].getMessage()


def test_forwarded_logs_control_bytes_escaped(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, "tricorn.error"):
        assert forwarded(headers(("x-forwarded-proto", "a\x1b[31m")), PEER, TRUST) is None
    assert "\x1b" not in caplog.text


def environ(scheme: str = "http") -> dict[str, Any]:
    return {
        "wsgi.url_scheme": scheme,
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "50000",
        "HTTP_HOST": "internal:8000",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        **({"HTTPS": "on"} if scheme == "https" else {}),
    }


def test_apply_environ() -> None:
    e = environ()
    apply_environ(e, Forwarded(("203.0.113.7", 4711), "https", b"example.com"))
    assert (e["REMOTE_ADDR"], e["REMOTE_PORT"], e["wsgi.url_scheme"], e["HTTPS"]) == (
        "203.0.113.7",
        "4711",
        "https",
        "on",
    )
    assert (e["HTTP_HOST"], e["SERVER_NAME"], e["SERVER_PORT"]) == ("example.com", "example.com", "443")
    e = environ("https")
    apply_environ(e, Forwarded(None, "ws", b"[2001:db8::1]:8080"))
    assert (e["REMOTE_ADDR"], e["REMOTE_PORT"], e["wsgi.url_scheme"]) == ("", "", "http")
    assert "HTTPS" not in e
    assert (e["HTTP_HOST"], e["SERVER_NAME"], e["SERVER_PORT"]) == (
        "[2001:db8::1]:8080",
        "2001:db8::1",
        "8080",
    )
    e = environ()
    apply_environ(e, Forwarded(("203.0.113.7", 0), None, None))
    assert (e["wsgi.url_scheme"], e["HTTP_HOST"], e["SERVER_PORT"]) == ("http", "internal:8000", "8000")


def test_apply_scope_client_none() -> None:
    s = scope()
    apply_scope(s, Forwarded(None, None, None))
    assert s["client"] is None and s["scheme"] == "http"


def test_peer_verdicts_are_remembered_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import tricorn.proto.forwarded as forwarded_module

    monkeypatch.setattr(forwarded_module, "MAX_CACHED_PEERS", 3)
    allow = AllowList(["10.0.0.0/8"])
    assert [allow.trusts_peer(h) for h in ("10.0.0.1", "11.0.0.1", "10.0.0.1", "bogus")] == [
        True,
        False,
        True,
        False,
    ]
    assert allow.peers == {"10.0.0.1": True, "11.0.0.1": False, "bogus": False}
    assert allow.trusts_peer("10.9.9.9") and len(allow.peers) == 1  # full: emptied, then this one


def test_resolutions_are_remembered_but_not_errors() -> None:
    allow = AllowList(["127.0.0.1"])
    pairs = headers(("host", "h"), ("x-forwarded-for", "203.0.113.7"), ("x-forwarded-proto", "https"))
    first = resolve(pairs, PEER, allow)
    assert first == Forwarded(("203.0.113.7", 0), "https", None)
    assert resolve(list(pairs), PEER, allow) is first  # the same headers from the same peer: looked up
    assert resolve(pairs, ("127.0.0.1", 1), allow) is not first  # another connection: worked out
    assert resolve(headers(("x-forwarded-for", "203.0.113.8")), PEER, allow) == Forwarded(
        ("203.0.113.8", 0), None, None
    )
    bad = headers(("x-forwarded-for", "nope"))
    for _ in range(2):  # raised every time
        with pytest.raises(ForwardedError):
            resolve(bad, PEER, allow)


def test_only_short_headers_are_remembered() -> None:
    allow = AllowList(["127.0.0.1"])
    long_chain = ", ".join(f"198.51.100.{i % 250}" for i in range(200)) + ", 203.0.113.7"
    result = resolve(headers(("x-forwarded-for", long_chain)), PEER, allow)
    assert result is not None and result.client == ("203.0.113.7", 0)
    assert allow.results == {}  # a client's long list is not kept
    with pytest.raises(ForwardedError):
        resolve(headers(("x-forwarded-for", "x" * 1000)), PEER, allow)
    assert all(len(entry) <= 64 for entry in allow.nodes)
