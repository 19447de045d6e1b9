"""The HTTP/1.1 core against gunicorn's raw-request corpus (tests/corpus/http1), on every backend.

Valid cases must parse to exactly the listed requests, invalid ones must be refused (4xx/5xx) before any
of the offending request completes. Where tricorn follows the RFC (or its strict defaults) rather than
gunicorn's view, the case is named in EXCEPTIONS with the reason; every name there must exist and must
behave as stated, so the list cannot rot.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tricorn.errors import RemoteProtocolError
from tricorn.proto.h1 import Data, EndOfMessage, H1Connection, H1Limits, Request, available_backends

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "http1"
CASES: dict[str, dict[str, Any]] = {c["name"]: c for c in json.loads((CORPUS / "cases.json").read_text())}
BACKENDS = available_backends()

# -- How a case may deviate from gunicorn's expectation, and why ------------------------------------------

NO_HOST = "RFC 9112 §3.2: an HTTP/1.1 request without Host MUST be answered 400"
PROXY = "PROXY protocol line: valid only with the PROXY protocol on, which the HTTP core does not speak"
LITERAL = (
    "the corpus holds the escape as literal text (backslash, 'x', two hex digits), which is a valid byte "
    "sequence; the byte it stands for is refused (checked on the decoded bytes)"
)


@dataclass(frozen=True)
class Refused:
    """A valid case tricorn refuses with ``status``; requests completed before the refusal must match."""

    status: int
    reason: str


@dataclass(frozen=True)
class Accepted:
    """An invalid case tricorn accepts; ``decoded`` when its escapes, decoded, must still be refused."""

    reason: str
    decoded: bool = False


@dataclass(frozen=True)
class Incomplete:
    """The bytes end inside a message: the requests before it match, it never completes, nothing is refused."""

    reason: str


@dataclass(frozen=True)
class Decoded:
    """A valid case whose bytes hold escapes as literal text while its expectation has the real bytes."""

    reason: str


@dataclass(frozen=True)
class UnderscoreFields:
    """Accepted as listed, except that tricorn keeps the fields with ``_`` in their names."""

    reason: str


LITERAL_VALID = (
    "the corpus holds the bytes as literal escapes while the expectation holds the bytes themselves: "
    "the decoded bytes must parse to the expectation (the literal ones parse too, to backslashes)"
)
UNDERSCORE = (
    "gunicorn drops fields with '_' in their names; they are valid tokens (RFC 9110 §5.1) and tricorn "
    "passes them on without framing by them (mapping them onto CGI names is the interfaces' business)"
)

EXCEPTIONS: dict[str, Refused | Accepted | Incomplete | Decoded | UnderscoreFields] = {
    # Valid for gunicorn, refused here.
    **{
        name: Refused(400, NO_HOST)
        for name in (
            "valid/004",
            "valid/005",
            "valid/006",
            "valid/007",
            "valid/010",
            "valid/011",
            "valid/012",
            "valid/013",
            "valid/014",
            "valid/018",
            "valid/021",
            "valid/023",
            "valid/100",
        )
    },
    "valid/022": Refused(400, NO_HOST + " (the second request; the first, HTTP/1.0 keep-alive, is served)"),
    "valid/025": Refused(400, NO_HOST + " (and gzip before chunked would be 501, RFC 9112 §6.1)"),
    "valid/025_line": Refused(400, NO_HOST + " (and gzip before chunked would be 501, RFC 9112 §6.1)"),
    "valid/029": Refused(400, NO_HOST + " (and identity before chunked would be 501, RFC 9112 §6.1)"),
    "valid/030": Refused(400, NO_HOST + " (and identity before chunked would be 501, RFC 9112 §6.1)"),
    "valid/028": Refused(
        400,
        "strip_header_spaces: RFC 9112 §5.1 says a server MUST reject whitespace between a field name and "
        "the colon with 400",
    ),
    "valid/031": Refused(501, "RFC 9110 §9.1: a token method the server does not implement is 501"),
    "valid/031compat": Refused(
        501, "permit_unconventional_http_method/casefold_http_method: no such switch; 501"
    ),
    "valid/031compat2": Refused(
        501, "permit_unconventional_http_method: no such switch; 501 (RFC 9110 §9.1)"
    ),
    "valid/compat_obs_fold": Refused(
        400, "permit_obsolete_folding: RFC 9112 §5.2 lets a server reject obs-fold with 400; tricorn does"
    ),
    "valid/compat_obs_fold_huge": Refused(
        400, "permit_obsolete_folding: RFC 9112 §5.2 lets a server reject obs-fold with 400; tricorn does"
    ),
    "valid/pp_01": Refused(501, PROXY + " (PROXY reads as an unknown method)"),
    "valid/pp_02": Refused(501, PROXY + " (PROXY reads as an unknown method)"),
    "valid/pp_04": Refused(400, PROXY + " (v2 signature, here as literal escapes)"),
    "valid/pp_05": Refused(400, PROXY + " (v2 signature, here as literal escapes)"),
    "valid/rfc9112_smuggle_gzip_chunked_01": Refused(
        501, "RFC 9112 §6.1: a transfer coding the server does not implement (gzip) SHOULD be 501"
    ),
    "valid/rfc9112_smuggle_te_identity_chunked_01": Refused(
        501, "RFC 9112 §6.1: 'identity' is no registered transfer coding (RFC 7230 removed it); 501"
    ),
    "valid/rfc9112_target_absolute_userinfo_01": Refused(
        400, "RFC 9110 §4.2.4: a recipient SHOULD treat userinfo in an http(s) URI as an error"
    ),
    "valid/rfc9112_target_authority_connect_01": Refused(501, "CONNECT is not implemented by an app server"),
    "valid/rfc9112_target_authority_ipv6_01": Refused(501, "CONNECT is not implemented by an app server"),
    "valid/099": Incomplete("the corpus body is cut short of its Content-Length (8599 of 17914 bytes)"),
    "valid/040": UnderscoreFields(UNDERSCORE),
    "valid/rfc9110_field_value_obs_text_01": Decoded(LITERAL_VALID),
    # Invalid for gunicorn, accepted here.
    "invalid/001": Incomplete("the head never ends: the core waits; the shell answers at EOF or timeout"),
    "invalid/040": Accepted("header_map=refuse is a gunicorn switch; " + UNDERSCORE),
    "invalid/041": Accepted(
        "a repeated Content-Type is the app's to judge; the core refuses repeats of framing and routing "
        "fields only (Content-Length, Host)"
    ),
    "invalid/rfc9110_field_value_ctl_bel_01": Accepted(LITERAL, decoded=True),
    "invalid/rfc9110_field_value_ctl_del_01": Accepted(LITERAL, decoded=True),
    "invalid/rfc9112_target_non_ascii_01": Accepted(LITERAL, decoded=True),
    "invalid/rfc9112_target_nul_01": Accepted(LITERAL, decoded=True),
    "invalid/rfc9112_chunked_missing_final_crlf_01": Incomplete(
        "the last chunk's line ends the bytes: the core waits for the final CRLF; the shell answers at EOF"
    ),
    "invalid/rfc9112_leading_crlf_02": Accepted(
        "RFC 9112 §2.2: a server SHOULD ignore at least one empty line before a request; llhttp and "
        "tricorn ignore any number"
    ),
}

# gunicorn's limits count a whole line: the request line, and a field line with its CRLF; tricorn's
# count the request-target and name + value. Each setting (or gunicorn's default) maps onto the nearest
# equivalent: a field line "Name: value\r\n" is name + value + 4, a request line is target + method + 10.
GUNICORN_DEFAULTS = {
    "limit_request_line": 4094,
    "limit_request_fields": 100,
    "limit_request_field_size": 8190,
}


def limits_for(case: dict[str, Any]) -> H1Limits:
    settings = {**GUNICORN_DEFAULTS, **(case.get("gunicorn_settings") or {})}
    line = settings["limit_request_line"] or 10**9  # 0 is unlimited
    size = settings["limit_request_field_size"] or GUNICORN_DEFAULTS["limit_request_field_size"]
    return H1Limits(request_line=line - 10, fields=settings["limit_request_fields"], field_size=size - 4)


def decode_escapes(raw: bytes) -> bytes:
    return re.sub(rb"\\x([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), raw)


# -- Feeding ---------------------------------------------------------------------------------------------


@dataclass
class Seen:
    requests: list[dict[str, Any]]  # complete and incomplete, in order
    complete: int
    status: int | None


def feed(raw: bytes, backend: str, per_byte: bool, limits: H1Limits) -> Seen:
    conn = H1Connection(limits=limits, backend=backend)  # type: ignore[arg-type]
    requests: list[dict[str, Any]] = []
    complete = 0
    status = None
    chunks = [raw[i : i + 1] for i in range(len(raw))] if per_byte else [raw]
    try:
        for chunk in chunks:
            for event in conn.receive_data(chunk):
                if isinstance(event, Request):
                    requests.append(
                        {
                            "method": event.method.decode("latin-1"),
                            "target": event.target.decode("latin-1"),
                            "version": [int(x) for x in event.http_version.split(".")],
                            "headers": [[n.decode("latin-1").upper(), v] for n, v in event.headers],
                            "body": b"",
                            "trailers": None,
                        }
                    )
                elif isinstance(event, Data):
                    requests[-1]["body"] += bytes(event.data)
                else:
                    assert isinstance(event, EndOfMessage)
                    requests[-1]["trailers"] = [[n.decode("latin-1").upper(), v] for n, v in event.trailers]
                    complete += 1
            if conn.their_error is not None:  # whole requests before it came back; now the error
                raise conn.their_error
    except RemoteProtocolError as exc:
        status = exc.status
    return Seen(requests, complete, status)


def expected_requests(case: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "method": r["method"],
            "target": r["target"],
            "version": list(r["version"]),
            "headers": [[n.upper(), v.encode("latin-1")] for n, v in r["headers"]],
            "body": base64.b64decode(r["body_b64"]),
            "trailers": [[n.upper(), v.encode("latin-1")] for n, v in r.get("trailers") or []],
        }
        for r in case["requests"]
    ]


def assert_same(got: dict[str, Any], want: dict[str, Any], *, drop_underscored: bool = False) -> None:
    got = dict(got)
    if drop_underscored:
        got["headers"] = [h for h in got["headers"] if "_" not in h[0]]
    assert got == want


# -- The cases -------------------------------------------------------------------------------------------


def test_every_exception_names_a_case() -> None:
    assert set(EXCEPTIONS) <= set(CASES)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("per_byte", [False, True], ids=["whole", "per-byte"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_corpus_case(name: str, per_byte: bool, backend: str) -> None:
    case = CASES[name]
    raw = base64.b64decode(case["raw_b64"])
    limits = limits_for(case)
    seen = feed(raw, backend, per_byte, limits)
    deviation = EXCEPTIONS.get(name)
    valid = name.startswith("valid/")

    if isinstance(deviation, Decoded):
        assert seen.status is None and seen.complete == 1, deviation.reason
        seen = feed(decode_escapes(raw), backend, per_byte, limits)
        assert seen.status is None
        [got] = seen.requests
        assert_same(got, expected_requests(case)[0])
    elif isinstance(deviation, Refused):
        assert seen.status == deviation.status, deviation.reason
        want = expected_requests(case)
        for got, expected in zip(seen.requests[: seen.complete], want, strict=False):
            assert_same(got, expected)
        assert seen.complete < len(want)
    elif isinstance(deviation, Incomplete):
        assert seen.status is None, deviation.reason
        want = expected_requests(case) if valid else []
        assert seen.complete == max(0, len(want) - 1)
        for got, expected in zip(seen.requests, want, strict=False):
            if got["trailers"] is None:  # the unfinished one: its head matches, its body so far a prefix
                assert expected["body"].startswith(got["body"])
                got = {**got, "body": expected["body"], "trailers": expected["trailers"]}
            assert_same(got, expected)
    elif isinstance(deviation, Accepted):
        assert seen.status is None and seen.complete == len(seen.requests) >= 1, deviation.reason
        if deviation.decoded:
            decoded = decode_escapes(raw)
            assert decoded != raw
            refusal = feed(decoded, backend, per_byte, limits)
            assert refusal.status is not None and 400 <= refusal.status < 600
            assert refusal.complete == 0
    elif valid:
        assert seen.status is None
        want = expected_requests(case)
        assert seen.complete == len(seen.requests) == len(want)
        for got, expected in zip(seen.requests, want, strict=True):
            assert_same(got, expected, drop_underscored=isinstance(deviation, UnderscoreFields))
    else:
        assert deviation is None
        assert seen.status is not None and 400 <= seen.status < 600, case["gunicorn_error"]
        assert seen.complete == 0  # nothing of the offending request reaches the application
        if not per_byte:
            assert seen.requests == []


@pytest.mark.parametrize("name", sorted(n for n in CASES if n.startswith("invalid/")))
def test_backends_refuse_invalid_cases_alike(name: str) -> None:
    raw = base64.b64decode(CASES[name]["raw_b64"])
    limits = limits_for(CASES[name])
    statuses = {(b, p): feed(raw, b, p, limits).status for b in BACKENDS for p in (False, True)}
    assert len(set(statuses.values())) == 1, statuses
