"""Every setting of tricorn, declared once.

Each :class:`Config` field carries, in its metadata, a :class:`Setting`: the field's command-line flag(s),
its ``TRICORN_<NAME>`` environment variable, its help text and group, the choices it allows and the one
converter that validates it. The default is the field's own default. The command line
(:func:`add_arguments`, used by :mod:`tricorn.cli`), the environment and config-file readers
(:meth:`Config.load`) and the reference in ``docs/configuration.md`` all come from this metadata, so a new
setting is one new field.

Precedence, lowest to highest: defaults < config file < environment < command line. The config file is
``--config FILE`` (or ``TRICORN_CONFIG``), else the ``[tool.tricorn]`` table of ``pyproject.toml`` in the
working directory if there is one.

Every value, whatever its source (including ``Config(...)`` called directly), passes through its
setting's converter; a bad one raises :class:`~tricorn.errors.ConfigError` naming the setting, the value
and what is allowed.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import importlib
import ipaddress
import math
import os
import re
import sys
import tomllib
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, NoReturn, get_args

from tricorn.errors import ConfigError, UsageError

__all__ = [
    "SETTINGS",
    "BindAddress",
    "Config",
    "Setting",
    "add_arguments",
]

Interface = Literal["auto", "asgi", "wsgi", "asgi3", "asgi2"]
Lifespan = Literal["auto", "on", "off"]
HttpImplementation = Literal["auto", "httptools", "h11"]
LoopImplementation = Literal["auto", "uvloop", "asyncio"]
WsImplementation = Literal["auto", "none", "websockets", "wsproto", "websockets-sansio"]
LogLevel = Literal["critical", "error", "warning", "info", "debug", "trace"]
LogFormat = Literal["text", "json"]
CertReqs = Literal["none", "optional", "required"]
# The choices of each closed setting, read from its Literal type so they are written once.
INTERFACES: tuple[str, ...] = get_args(Interface)
LIFESPANS: tuple[str, ...] = get_args(Lifespan)
HTTP_IMPLEMENTATIONS: tuple[str, ...] = get_args(HttpImplementation)
LOOP_IMPLEMENTATIONS: tuple[str, ...] = get_args(LoopImplementation)
WS_IMPLEMENTATIONS: tuple[str, ...] = get_args(WsImplementation)
LOG_LEVELS: tuple[str, ...] = get_args(LogLevel)
LOG_FORMATS: tuple[str, ...] = get_args(LogFormat)
CERT_REQS: tuple[str, ...] = get_args(CertReqs)

# -- Named defaults, each with its precedent -------------------------------------------------------------

# The built-in demo, served when no APP is given (and not mounted when static files take '/').
DEFAULT_APP = "tricorn.demo:app"

# Static files' Cache-Control max-age: WhiteNoise's default (60 s); nginx sends none unless told. A year is
# the most a cache is asked to keep anything (RFC 9111 §5.2: "a value greater than a year" is discouraged).
DEFAULT_STATIC_MAX_AGE = 60
MAX_STATIC_MAX_AGE = 31536000
# gunicorn's default; uvicorn's too. The kernel caps it at net.core.somaxconn anyway.
DEFAULT_BACKLOG = 2048
# uvicorn's timeout_keep_alive is 5 s; gunicorn's keepalive 2 s; nginx keepalive_timeout 75 s.
DEFAULT_TIMEOUT_KEEP_ALIVE = 5.0
# Time allowed for a whole request head to arrive (slowloris guard). nginx client_header_timeout is 60 s,
# node's server.headersTimeout 60 s; 10 s is plenty for a real client on any network.
DEFAULT_TIMEOUT_REQUEST_HEADER = 10.0
# Time allowed between two pieces of a request body while the app waits for it: nginx client_body_timeout
# 60 s (also between two reads), hypercorn read_timeout (none by default), node's server.requestTimeout
# 300 s for the whole request. A client stalled longer has stalled for good; the app is told it left.
DEFAULT_TIMEOUT_READ = 60.0
# Time allowed for the client to take more of the response while the app waits to write: nginx
# send_timeout 60 s (between two writes), Apache's Timeout 60 s. Counted only while the transport (or an
# HTTP/2 stream's window) is full, so a slow but moving client is never cut.
DEFAULT_TIMEOUT_SEND = 60.0
# gunicorn's graceful_timeout is 30 s (and so is Kubernetes' terminationGracePeriodSeconds).
DEFAULT_TIMEOUT_GRACEFUL_SHUTDOWN = 30.0
# Time the application has to answer lifespan startup, and again shutdown. hypercorn's startup_timeout and
# shutdown_timeout are 60 s; uvicorn waits without bound.
DEFAULT_TIMEOUT_LIFESPAN = 60.0
# Request-head limits. gunicorn: limit_request_line 4094, limit_request_fields 100,
# limit_request_field_size 8190. nginx: large_client_header_buffers 4 8k, i.e. a request line or one
# header field may be up to 8 KiB. We take nginx's 8 KiB for the request line (long query strings are
# common behind nginx, and gunicorn's 4094 rejects them) and gunicorn's values for the fields. 0 does not
# mean "unlimited" here (as it does in gunicorn): an unbounded head is a memory-exhaustion hole.
DEFAULT_LIMIT_REQUEST_LINE = 8190
DEFAULT_LIMIT_REQUEST_FIELDS = 100
DEFAULT_LIMIT_REQUEST_FIELD_SIZE = 8190
# Upper bounds for those: gunicorn caps limit_request_line at 8190 and limit_request_fields at 32768;
# we allow up to 64 KiB per line or field for apps that really need long heads.
MAX_LIMIT_REQUEST_LINE = 65536
MAX_LIMIT_REQUEST_FIELDS = 32768
MAX_LIMIT_REQUEST_FIELD_SIZE = 65536
# WSGI threads per process. uvicorn's and a2wsgi's WSGI bridges run 10; waitress 4; gunicorn's gthread
# worker is usually given 2-4 per core. Threads start only when requests find the others busy, so an app
# that never blocks runs on one or two of them (see tricorn.interfaces.wsgi.WorkerPool).
DEFAULT_THREADS = 10
MAX_THREADS = 1024
# CGI. Apache's Timeout (how long a script may stay silent) is 60 s, lighttpd's cgi.read-timeout has no
# default bound; 60 s is also our read and send deadline. The cap on running scripts catches a typo before
# it lets a worker fork thousands of processes.
DEFAULT_CGI_TIMEOUT = 60.0
MAX_CGI_MAX_CONCURRENT = 4096
# WebSocket. uvicorn: ws_max_size 16 MiB, ws_max_queue 32, ws_ping_interval and ws_ping_timeout 20 s;
# the websockets library: max_size 1 MiB, max_queue 16, ping_interval/ping_timeout 20 s, close_timeout 10 s.
DEFAULT_WS_MAX_SIZE = 16 * 1024 * 1024
MAX_WS_MAX_SIZE = 2**31
DEFAULT_WS_MAX_QUEUE = 32
DEFAULT_WS_PING_INTERVAL = 20.0
DEFAULT_WS_PING_TIMEOUT = 20.0
DEFAULT_WS_CLOSE_TIMEOUT = 10.0
# Pre-fork workers. gunicorn's `timeout` (a worker silent this long is killed) is 30 s; so is ours.
# A cap on workers catches a typo (-w 400 for -w 4) before it forks hundreds of processes.
DEFAULT_TIMEOUT_WORKER = 30.0
MAX_WORKERS = 1024
# TLS. The cipher suites for TLS 1.2 (TLS 1.3's are all AEAD and chosen by OpenSSL): ECDHE key exchange
# with AES-GCM or ChaCha20-Poly1305, none of them on RFC 9113 Appendix A's list of suites HTTP/2 must not
# use (§9.2.2), and including TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, which §9.2.2 requires of HTTP/2 over
# TLS 1.2. Precedents: hypercorn's ciphers "ECDHE+AESGCM"; Mozilla's "intermediate" profile is these
# suites plus DHE ones (which need DH parameters we do not ship). Python's own default list adds CBC
# suites (on the HTTP/2 blocklist); uvicorn's "TLSv1" selects only the suites TLS 1.0 defined, CBC with
# SHA-1, no AEAD at all.
DEFAULT_SSL_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
# A handshake is one or two round trips and a few milliseconds of CPU: 10 s covers the slowest real
# link, and a client that has not finished by then is holding a socket and TLS state for nothing (the
# slowloris of TLS; our request-head timeout is 10 s for the same reason). asyncio's (so uvicorn's)
# default and hypercorn's ssl_handshake_timeout are 60 s; nginx's ssl_handshake_timeout 60 s.
DEFAULT_TIMEOUT_SSL_HANDSHAKE = 10.0
# HTTP/2 (RFC 9113 §6.5.2 for each SETTINGS value). Concurrent streams: the RFC recommends no fewer than
# 100; hypercorn h2_max_concurrent_streams 100; nginx http2_max_concurrent_streams 128; Go's net/http2 250.
DEFAULT_H2_MAX_CONCURRENT_STREAMS = 100
# Client stream identifiers are odd 31-bit numbers: no client can use more streams than this.
MAX_H2_MAX_CONCURRENT_STREAMS = 2**31 - 1
# Header list size (uncompressed, counting 32 bytes per field as RFC 9113 §6.5.2 does): hypercorn
# h2_max_header_list_size 65536; node's maxHeaderListSize 65535. The cap matches the HTTP/1.1 limits'
# spirit: a larger head is a memory-exhaustion hole, not a request.
DEFAULT_H2_MAX_HEADER_LIST_SIZE = 65536
MAX_H2_MAX_HEADER_LIST_SIZE = 16 * 1024 * 1024
# Stream flow-control window offered to clients: the RFC's initial value, 65535 (node's initialWindowSize,
# and what hypercorn's h2 library advertises); nginx advertises 64 KiB (http2_body_preread_size), Go's
# net/http2 1 MiB. RFC 9113 §6.5.2: values above 2^31-1 are a FLOW_CONTROL_ERROR.
DEFAULT_H2_INITIAL_WINDOW_SIZE = 65535
MAX_H2_INITIAL_WINDOW_SIZE = 2**31 - 1
# Largest frame payload accepted: the RFC's initial value 2^14, which is also its minimum; the maximum is
# 2^24-1 (RFC 9113 §6.5.2). hypercorn h2_max_inbound_frame_size and node maxFrameSize 16384.
DEFAULT_H2_MAX_FRAME_SIZE = 16384
MIN_H2_MAX_FRAME_SIZE = 2**14
MAX_H2_MAX_FRAME_SIZE = 2**24 - 1
# HTTP/3 (RFC 9114) over QUIC (RFC 9000). Idle timeout: Chrome's and quiche's default is 30 s, nginx uses
# keepalive_timeout (75 s), hypercorn none of its own (aioquic's 60 s). A connection silent this long is
# gone (a vanished client: its streams' apps are told http.disconnect); the smaller of the two sides'
# values applies (RFC 9000 §10.1).
DEFAULT_QUIC_IDLE_TIMEOUT = 30.0
# Concurrent request streams a client may open (initial_max_streams_bidi): nginx
# http3_max_concurrent_streams 128; aioquic's own default 128; the same 100 as HTTP/2 here.
DEFAULT_H3_MAX_CONCURRENT_STREAMS = 100
MAX_H3_MAX_CONCURRENT_STREAMS = 2**16
# gunicorn's default access_log_format.
DEFAULT_ACCESS_LOG_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'

# -- Converters: one per type. Each takes (setting name, raw value) and returns the value or raises. ----
#
# A raw value is a string when it comes from the environment or the command line, and a native value
# (int, bool, list...) when it comes from a TOML file or Python. Converters accept both and are idempotent,
# so Config.__post_init__ can run them again on already-converted values.

Converter = Callable[[str, object], Any]


def to_str(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise ConfigError(name, f"{value!r} is not a string")
    return value


def to_bool(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in ("true", "yes", "on", "1"):
            return True
        if word in ("false", "no", "off", "0"):
            return False
    raise ConfigError(name, f"{value!r} is not a boolean (use true or false)")


def to_int(lo: int, hi: int | None = None) -> Converter:
    """An integer converter accepting ``lo <= value`` (and ``value <= hi`` when given)."""

    def convert(name: str, value: object) -> int:
        number: int
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+\s*", value):
            number = int(value)
        else:
            raise ConfigError(name, f"{value!r} is not an integer")
        if number < lo or (hi is not None and number > hi):
            allowed = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
            raise ConfigError(name, f"{number} is out of range (must be {allowed})")
        return number

    return convert


def to_float(lo: float, *, positive: bool = False) -> Converter:
    """A finite number converter accepting ``lo <= value`` (and ``value > 0`` when ``positive``)."""

    def convert(name: str, value: object) -> float:
        number: float
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                raise ConfigError(name, f"{value!r} is not a number") from None
        else:
            raise ConfigError(name, f"{value!r} is not a number")
        if not math.isfinite(number):
            raise ConfigError(name, f"{value!r} is not a finite number")
        if number < lo:
            raise ConfigError(name, f"{number:g} is out of range (must be at least {lo:g})")
        if positive and number <= 0:
            raise ConfigError(name, f"{number:g} is out of range (must be more than 0)")
        return number

    return convert


def one_of(choices: tuple[str, ...]) -> Converter:
    """A converter accepting one of ``choices``, case-insensitively (``LOG_LEVEL=INFO`` is common)."""

    def convert(name: str, value: object) -> str:
        if isinstance(value, str) and value.strip().lower() in choices:
            return value.strip().lower()
        raise ConfigError(name, f"{value!r} is not one of {', '.join(choices)}")

    return convert


def optional(inner: Converter) -> Converter:
    """``inner``, or None for None, ``""`` or ``"none"`` (so the command line can unset a file's value)."""

    def convert(name: str, value: object) -> Any:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
            return None
        return inner(name, value)

    return convert


def to_str_tuple(name: str, value: object) -> tuple[str, ...]:
    """A list of strings: a list or tuple, or one string of items separated by commas or whitespace."""
    if isinstance(value, str):
        return tuple(item for item in re.split(r"[\s,]+", value) if item)
    if isinstance(value, list | tuple):
        for item in value:
            to_str(name, item)
        return tuple(value)
    raise ConfigError(name, f"{value!r} is not a list of strings")


_IDENTIFIERS = r"[^\W\d]\w*(?:\.[^\W\d]\w*)*"
# module:attribute, module:factory(), or a module alone (its application, else its app: gunicorn's rule).
_APP_SPEC = re.compile(rf"{_IDENTIFIERS}(?::{_IDENTIFIERS}(?:\(\))?)?")


def to_app_spec(name: str, value: object) -> str:
    text = to_str(name, value).strip()
    if not _APP_SPEC.fullmatch(text):
        raise ConfigError(
            name,
            f"{value!r} is not in the form module:attribute "
            "(e.g. myproject.main:app, or myproject.main:create_app() for a factory)",
        )
    return text


@dataclass(frozen=True, slots=True)
class WorkerClass:
    """What a gunicorn worker class means here: the settings it stands for (None: left as they are)."""

    interface: str
    threads: int | None = None
    http: str | None = None
    note: str = ""


# gunicorn's -k/--worker-class values, by every name they are given in gunicorn's and uvicorn's docs.
_SYNC = WorkerClass("wsgi", threads=1, note="one request at a time per worker, as gunicorn's sync worker")
_GTHREAD = WorkerClass("wsgi", note="an event loop and --threads threads per worker")
_GREEN = WorkerClass("wsgi", note="served on --threads threads per worker, without monkey-patching")
_UVICORN = WorkerClass("asgi", note="an event loop per worker, as uvicorn's worker")
_UVICORN_H11 = WorkerClass("asgi", http="h11", note="the pure-Python parser, as uvicorn's h11 worker")
WORKER_CLASSES: Mapping[str, WorkerClass] = MappingProxyType(
    {
        "sync": _SYNC,
        "gunicorn.workers.sync.SyncWorker": _SYNC,
        "egg:gunicorn#sync": _SYNC,
        "gthread": _GTHREAD,
        "gunicorn.workers.gthread.ThreadWorker": _GTHREAD,
        "egg:gunicorn#gthread": _GTHREAD,
        "gevent": _GREEN,
        "eventlet": _GREEN,
        "gunicorn.workers.ggevent.GeventWorker": _GREEN,
        "gunicorn.workers.geventlet.EventletWorker": _GREEN,
        "tornado": _GTHREAD,
        "asgi": _UVICORN,
        "uvicorn.workers.UvicornWorker": _UVICORN,
        "uvicorn_worker.UvicornWorker": _UVICORN,
        "uvicorn.workers.UvicornH11Worker": _UVICORN_H11,
        "uvicorn_worker.UvicornH11Worker": _UVICORN_H11,
    }
)


def to_worker_class(name: str, value: object) -> str:
    text = to_str(name, value).strip()
    if text not in WORKER_CLASSES:
        close = difflib.get_close_matches(text, WORKER_CLASSES, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(
            name,
            f"{value!r} is not a worker class tricorn knows ({hint}sync, gthread, gevent, eventlet, asgi, "
            "uvicorn.workers.UvicornWorker, uvicorn_worker.UvicornWorker, uvicorn.workers.UvicornH11Worker)",
        )
    return text


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def to_env_assignments(name: str, value: object) -> tuple[str, ...]:
    """NAME=VALUE items: each item whole from a list (the command line, a file), split on commas and
    whitespace from one string (the environment)."""
    items = to_str_tuple(name, value)
    for item in items:
        key, equals, _ = item.partition("=")
        if not equals or not _ENV_NAME.fullmatch(key):
            raise ConfigError(name, f"{item!r} is not in the form NAME=VALUE")
    return items


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def to_header_lines(name: str, value: object) -> tuple[str, ...]:
    """NAME:VALUE items (uvicorn's --header): a token name, a value without CR, LF or NUL."""
    items = (value,) if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ConfigError(name, f"{value!r} is not a list of NAME:VALUE headers")
    for item in items:
        text = to_str(name, item)
        header, colon, content = text.partition(":")
        if not colon or not _HEADER_NAME.fullmatch(header.strip()) or re.search(r"[\r\n\x00]", content):
            raise ConfigError(name, f"{item!r} is not a NAME:VALUE header")
    return tuple(items)


# A mount's URL prefix: a plain path (no percent escape, no dot segment), matched on segment boundaries.
_PREFIX = re.compile(r"/(?:[A-Za-z0-9._~!$&'()*+,;:@-]+/?)*")


def check_prefix(name: str, entry: str, prefix: str) -> str:
    """``prefix`` as the dispatch table keys it ("/" or "/a/b", no trailing slash), or a ConfigError."""
    if not _PREFIX.fullmatch(prefix) or any(part in (".", "..") for part in prefix.split("/")):
        raise ConfigError(name, f"{entry!r}: the prefix {prefix!r} must be a plain path starting with '/'")
    return prefix.rstrip("/") or "/"


def split_mount(entry: str) -> tuple[str, str, str]:
    """``PREFIX=module:app[@INTERFACE]`` -> (prefix as keyed, app spec, interface); checked by
    :func:`to_app_mounts`."""
    prefix, _, rest = entry.partition("=")
    spec, _, interface = rest.partition("@")
    return prefix.rstrip("/") or "/", spec.strip(), interface or "auto"


def to_app_mounts(name: str, value: object) -> tuple[str, ...]:
    """``PREFIX=module:app[@asgi|@wsgi]`` entries (``module:factory()`` for a factory), each PREFIX once;
    from a TOML table, ``PREFIX = "module:app"`` or ``PREFIX = {app = "...", interface = "...",
    factory = true}``. Returned as ``PREFIX=SPEC@INTERFACE`` strings."""
    if isinstance(value, Mapping):
        items = []
        for prefix, target in value.items():
            if isinstance(target, Mapping):
                unknown = set(target) - {"app", "interface", "factory"}
                if unknown or "app" not in target:
                    raise ConfigError(
                        name,
                        f"{prefix!r}: a mount table takes app, interface and factory (got {sorted(target)})",
                    )
                spec = to_str(name, target["app"])
                if to_bool(name, target.get("factory", False)) and not spec.endswith("()"):
                    spec += "()"
                items.append(f"{prefix}={spec}@{to_str(name, target.get('interface', 'auto'))}")
            else:
                items.append(f"{prefix}={to_str(name, target)}")
        value = items
    entries = to_str_tuple(name, value)
    seen: set[str] = set()
    normal = []
    for entry in entries:
        raw_prefix, eq, rest = entry.partition("=")
        if not eq or not rest:
            raise ConfigError(name, f"{entry!r} is not PREFIX=module:app (e.g. /ws=chat.asgi:application)")
        key = check_prefix(name, entry, raw_prefix)
        _, spec, interface = split_mount(entry)
        if not _APP_SPEC.fullmatch(spec):
            raise ConfigError(name, f"{entry!r}: {spec!r} is not in the form module:attribute")
        if interface not in INTERFACES:
            raise ConfigError(name, f"{entry!r}: the interface must be one of {', '.join(INTERFACES)}")
        if key in seen:
            raise ConfigError(name, f"{entry!r}: the prefix {key!r} is given twice")
        seen.add(key)
        normal.append(f"{key}={spec}@{interface}")
    return tuple(normal)


_HOSTNAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?")


def _check_host(name: str, host: str, shown: object) -> str:
    """``host`` without IPv6 brackets, if it is an IP address or a plausible host name."""
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ConfigError(name, f"{shown!r} has an invalid IPv6 address {host!r}") from None
        return host
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not _HOSTNAME.fullmatch(host):
            raise ConfigError(name, f"{shown!r} is not a valid host name or IP address") from None
    return host


def to_host(name: str, value: object) -> str:
    return _check_host(name, to_str(name, value).strip(), value)


def to_binds(name: str, value: object) -> tuple[str, ...]:
    """A list of bind addresses (see :meth:`BindAddress.parse`), each validated, none repeated."""
    entries = to_str_tuple(name, value)
    seen: dict[BindAddress, str] = {}
    for entry in entries:
        address = BindAddress.parse(entry)
        if address in seen:
            raise ConfigError(name, f"{entry!r} is given twice (as {seen[address]!r} and {entry!r})")
        seen[address] = entry
    return entries


def to_quic_binds(name: str, value: object) -> tuple[str, ...]:
    """UDP addresses for QUIC: HOST:PORT or [IPV6]:PORT only (no unix sockets or inherited descriptors)."""
    entries = to_str_tuple(name, value)
    seen: dict[BindAddress, str] = {}
    for entry in entries:
        try:
            address = BindAddress.parse(entry)
        except ConfigError as exc:
            raise ConfigError(name, str(exc).removeprefix("bind: ")) from None
        if address.kind != "tcp":
            raise ConfigError(name, f"{entry!r} is not a UDP address (use HOST:PORT or [IPV6]:PORT)")
        if address in seen:
            raise ConfigError(name, f"{entry!r} is given twice (as {seen[address]!r} and {entry!r})")
        seen[address] = entry
    return entries


def parse_mount(entry: str) -> tuple[str, str]:
    """``PREFIX=DIR`` as ``(prefix as keyed: "/" or "/a/b", directory)``; checked by :func:`to_mounts`."""
    prefix, _, directory = entry.partition("=")
    return prefix.rstrip("/") or "/", directory


_MOUNT_EXAMPLES = {"static": "/static=./staticfiles", "cgi": "/cgi-bin=./cgi-bin"}


def to_mounts(name: str, value: object) -> tuple[str, ...]:
    """A list of ``PREFIX=DIR`` (``--static``, ``--cgi``): a URL path prefix (plain characters, no dot
    segment, no percent escape: :func:`check_prefix`) and an existing directory; no prefix given twice."""
    entries = to_str_tuple(name, value)
    seen: set[str] = set()
    for entry in entries:
        prefix, equals, directory = entry.partition("=")
        if not equals or not directory:
            example = _MOUNT_EXAMPLES.get(name, "/prefix=./dir")
            raise ConfigError(name, f"{entry!r} is not PREFIX=DIR (e.g. {example})")
        key = check_prefix(name, entry, prefix)
        if not os.path.isdir(directory):
            raise ConfigError(name, f"{entry!r}: {directory!r} is not a directory")
        if key in seen:
            raise ConfigError(name, f"{entry!r}: the prefix {key!r} is given twice")
        seen.add(key)
    return entries


def to_metrics_bind(name: str, value: object) -> str:
    """One listening address for the metrics and probes (``HOST:PORT``, ``[IPV6]:PORT`` or ``unix:PATH``)."""
    text = to_str(name, value).strip()
    try:
        address = BindAddress.parse(text)
    except ConfigError as exc:
        raise ConfigError(name, str(exc).partition(": ")[2]) from None
    if address.kind == "fd":
        raise ConfigError(name, f"{text!r}: the metrics listener takes HOST:PORT or unix:PATH, not fd://")
    return text


def to_root_path(name: str, value: object) -> str:
    text = to_str(name, value)
    if text and not text.startswith("/"):
        raise ConfigError(name, f"{value!r} must be empty or start with '/'")
    return text


def to_path(name: str, value: object) -> str:
    text = to_str(name, value)
    if not text:
        raise ConfigError(name, "'' is not a path")
    return text


class _AnyAtom(dict[str, int]):
    # 0 satisfies both %s and %d, so "fmt % _AnyAtom()" checks only the syntax of a format.
    def __missing__(self, key: str) -> int:
        return 0


def to_percent_format(name: str, value: object) -> str:
    """A ``%(atom)s`` format string, syntax-checked (which atoms exist is tricorn.logs' business)."""
    text = to_str(name, value)
    try:
        text % _AnyAtom()
    except (ValueError, TypeError) as exc:
        raise ConfigError(name, f"{value!r} is not a valid %-format: {exc}") from None
    return text


def to_file_mode(name: str, value: object) -> int:
    """Permission bits: a string is octal (``660``, ``0660``, ``0o660``); an int is taken as is (TOML
    ``0o660``)."""
    if isinstance(value, int) and not isinstance(value, bool):
        mode = value
    elif isinstance(value, str) and re.fullmatch(r"\s*(?:0o?)?[0-7]{1,4}\s*", value):
        mode = int(value.strip().removeprefix("0o"), 8)
    else:
        raise ConfigError(name, f"{value!r} is not an octal file mode (e.g. 660)")
    if not 0 <= mode <= 0o7777:
        raise ConfigError(name, f"{value!r} is out of range (must be between 0 and 7777 octal)")
    return mode


def to_secret(name: str, value: object) -> str:
    """A string that error messages never show (a password)."""
    if not isinstance(value, str):
        raise ConfigError(name, f"must be a string, not {type(value).__name__}")
    return value


def to_cert_reqs(name: str, value: object) -> str:
    """none, optional or required; also gunicorn's and uvicorn's numbers (ssl.CERT_NONE=0, CERT_OPTIONAL=1,
    CERT_REQUIRED=2), so their command lines and config files carry over."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(CERT_REQS):
        return CERT_REQS[value]
    if isinstance(value, str) and value.strip() in ("0", "1", "2"):
        return CERT_REQS[int(value)]
    try:
        choice: str = one_of(CERT_REQS)(name, value)
    except ConfigError:
        raise ConfigError(name, f"{value!r} is not one of none, optional, required (or 0, 1, 2)") from None
    return choice


def to_ciphers(name: str, value: object) -> str:
    """An OpenSSL cipher list; whether it selects any cipher is checked when the TLS context is built."""
    text = to_str(name, value).strip()
    if not text:
        raise ConfigError(name, "'' is not a cipher list (e.g. ECDHE+AESGCM:ECDHE+CHACHA20)")
    return text


def to_allow_list(name: str, value: object) -> tuple[str, ...]:
    """Peers to trust: IP addresses, CIDR networks, ``*`` and ``unix``, separated by commas or spaces
    (in one string or several; a repeated flag adds to the list)."""
    from tricorn.proto.forwarded import AllowList

    entries = tuple(
        entry for item in to_str_tuple(name, value) for entry in re.split(r"[\s,]+", item) if entry
    )
    if not entries:
        raise ConfigError(name, "the list is empty (give 127.0.0.1, a network like 10.0.0.0/8, * or unix)")
    try:
        AllowList(entries)
    except ValueError as exc:
        raise ConfigError(name, str(exc)) from None
    return entries


def to_identity(name: str, value: object) -> str:
    """A user or group: a name, or a numeric id (whether it exists is checked when it is used)."""
    text = to_str(name, value).strip()
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.$-]*", text):
        raise ConfigError(name, f"{value!r} is not a user or group name or a numeric id")
    return text


# -- Field metadata --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Setting:
    """What a :class:`Config` field needs besides its name, type and default.

    ``flags`` are the command-line options (a positional argument when empty); ``env`` is the
    environment variable; ``group`` is the ``--help`` section (sections appear in the order of their first
    field); ``choices`` lists the allowed values, if the set is closed; ``convert`` validates and converts
    a raw value. A bool setting gets ``--x/--no-x``; a tuple setting is a repeatable option.
    ``env_fallbacks`` are conventional variables read when ``env`` is not set (``WEB_CONCURRENCY``).

    ``aliases`` are gunicorn's and uvicorn's spellings of the same setting, so their command lines and
    config files carry over: an entry starting with ``-`` is a command-line flag (``--timeout``), any other
    a key of a gunicorn Python config file (``keepalive``; the flags' own keys, ``timeout`` for
    ``--timeout``, need no entry). A flag may be followed by a template of the value it stands for
    (``"--uds unix:{}"``: ``--uds PATH`` is ``--bind unix:PATH``).
    """

    group: str
    help: str
    env: str
    convert: Converter
    flags: tuple[str, ...] = ()
    metavar: str | None = None
    choices: tuple[str, ...] = ()
    env_fallbacks: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()

    @property
    def alias_flags(self) -> dict[str, str]:
        """The alias flags, each with the template of its value (``"{}"``: the value as given)."""
        return {
            entry.split(" ")[0]: (entry.partition(" ")[2] or "{}")
            for entry in self.aliases
            if entry.startswith("-")
        }

    @property
    def file_keys(self) -> tuple[str, ...]:
        """The keys a gunicorn Python config file may set this setting by, besides its own name."""
        from_flags = [
            flag.lstrip("-").replace("-", "_") for flag in self.alias_flags if flag.startswith("--")
        ]
        keys = [*from_flags, *(entry for entry in self.aliases if not entry.startswith("-"))]
        return tuple(dict.fromkeys(keys))


def _setting(
    *,
    group: str,
    help: str,
    env: str,
    flags: tuple[str, ...] = (),
    convert: Converter | None = None,
    choices: tuple[str, ...] = (),
    metavar: str | None = None,
    env_fallbacks: tuple[str, ...] = (),
    aliases: tuple[str, ...] = (),
) -> dict[str, Setting]:
    """The metadata of a Config field: ``field(default=..., metadata=_setting(...))``."""
    if convert is None:
        if not choices:
            raise TypeError("a setting needs a converter or choices")
        convert = one_of(choices)
        metavar = metavar or "{" + ",".join(choices) + "}"
    return {"tricorn": Setting(group, help, env, convert, flags, metavar, choices, env_fallbacks, aliases)}


# -- Bind addresses --------------------------------------------------------------------------------------

_BIND_FORMS = "HOST:PORT, [IPV6]:PORT, unix:PATH or fd://N"


@dataclass(frozen=True, slots=True)
class BindAddress:
    """One address to listen on: TCP ``host``/``port``, a Unix socket ``path``, or an inherited ``fd``.

    ``str()`` gives the display form: ``http://127.0.0.1:8000``, ``http://[::1]:8000``,
    ``unix:/tmp/app.sock``, ``fd://3``.
    """

    kind: Literal["tcp", "unix", "fd"]
    host: str | None = None
    port: int | None = None
    path: str | None = None
    fd: int | None = None

    @classmethod
    def parse(cls, text: str) -> BindAddress:
        """Parse ``HOST:PORT``, ``[IPV6]:PORT``, ``unix:PATH`` or ``fd://N``.

        gunicorn's spellings ``tcp://HOST:PORT`` and ``unix://PATH`` are accepted too.
        Raises ConfigError("bind", ...) naming the bad entry.
        """
        spec = text.strip()
        if spec.startswith("fd://"):
            number = spec[len("fd://") :]
            if not number.isdigit():
                raise ConfigError("bind", f"{text!r} is not a valid file descriptor (use fd://N)")
            return cls("fd", fd=int(number))
        if spec.startswith("unix:"):
            path = spec.removeprefix("unix://") if spec.startswith("unix://") else spec[len("unix:") :]
            if not path:
                raise ConfigError("bind", f"{text!r} has no socket path (use unix:PATH)")
            return cls("unix", path=path)
        spec = spec.removeprefix("tcp://")
        if "://" in spec:
            raise ConfigError("bind", f"{text!r} has an unknown scheme (use {_BIND_FORMS})")
        host, colon, port_text = spec.rpartition(":")
        if not colon:
            raise ConfigError("bind", f"{text!r} has no port (use {_BIND_FORMS})")
        if not host:
            raise ConfigError("bind", f"{text!r} has no host (use 0.0.0.0:PORT for all interfaces)")
        if ":" in host and not host.startswith("["):
            raise ConfigError(
                "bind", f"{text!r} is ambiguous: put an IPv6 address in brackets, e.g. [::1]:8000"
            )
        if not port_text.isdigit() or int(port_text) > 65535:
            raise ConfigError("bind", f"{text!r} has an invalid port {port_text!r} (must be 0 to 65535)")
        return cls("tcp", host=_check_host("bind", host, text), port=int(port_text))

    def __post_init__(self) -> None:
        wanted = {"tcp": ("host", "port"), "unix": ("path",), "fd": ("fd",)}.get(self.kind)
        if wanted is None:
            raise ConfigError("bind", f"{self.kind!r} is not one of tcp, unix, fd")
        for name in ("host", "port", "path", "fd"):
            if (getattr(self, name) is not None) != (name in wanted):
                raise ConfigError("bind", f"a {self.kind} address takes {' and '.join(wanted)}, not {self!r}")

    def __str__(self) -> str:
        if self.kind == "unix":
            return f"unix:{self.path}"
        if self.kind == "fd":
            return f"fd://{self.fd}"
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def _same_listener(a: BindAddress, b: BindAddress) -> bool:
    """Whether ``a`` and ``b`` would listen on the same socket address (a wildcard host covers all)."""
    if a.kind == "unix" or b.kind == "unix":
        return (
            a.kind == b.kind
            and a.path is not None
            and b.path is not None
            and (os.path.abspath(a.path) == os.path.abspath(b.path))
        )
    if a.kind != "tcp" or b.kind != "tcp" or a.port != b.port or a.port == 0:
        return False
    wildcards = ("0.0.0.0", "::", "")
    return a.host == b.host or a.host in wildcards or b.host in wildcards


# -- The configuration -----------------------------------------------------------------------------------

_APPLICATION = "Application"
_STATIC = "Static files"
_BINDING = "Binding"
_TLS = "TLS"
_PROXIES = "Proxies"
_PROTOCOL = "Protocol"
_HTTP2 = "HTTP/2"
_HTTP3 = "HTTP/3"
_WEBSOCKET = "WebSocket"
_TIMEOUTS = "Timeouts"
_LIMITS = "Limits"
_CGI = "CGI"
_LOGGING = "Logging"
_PROCESSES = "Processes"
_METRICS = "Metrics and probes"
_RELOAD = "Reload"
_CONFIGURATION = "Configuration"


@dataclass(frozen=True, slots=True)
class Config:
    """All settings of one tricorn server. Immutable; every field is validated on construction.

    Build one with :meth:`Config.load` (defaults < config file < environment < command line) or directly,
    ``Config(app="myproject.main:app", port=9000)``. Raises ConfigError on a bad value.
    """

    # Application
    app: str = field(
        default=DEFAULT_APP,
        metadata=_setting(
            group=_APPLICATION,
            help="the application to serve, as module:attribute (the attribute may be dotted); "
            "module:factory() calls a factory that returns the application; a module alone serves its "
            "'application', else its 'app'",
            env="TRICORN_APP",
            metavar="APP",
            convert=to_app_spec,
            aliases=("wsgi_app",),
        ),
    )
    factory: bool = field(
        default=False,
        metadata=_setting(
            group=_APPLICATION,
            help="treat APP as a factory: call it with no arguments to get the application",
            env="TRICORN_FACTORY",
            flags=("--factory",),
            convert=to_bool,
        ),
    )
    interface: Interface = field(
        default="auto",
        metadata=_setting(
            group=_APPLICATION,
            help="the application's interface; auto inspects the application; asgi3 is asgi, asgi2 wraps an "
            "ASGI 2 application (a class taking scope, then called with receive and send) as uvicorn does",
            env="TRICORN_INTERFACE",
            flags=("--interface",),
            choices=INTERFACES,
        ),
    )
    worker_class: str | None = field(
        default=None,
        metadata=_setting(
            group=_APPLICATION,
            help="gunicorn's worker class, mapped to the interface, threads and parser it means (sync, "
            "gthread, gevent, eventlet, uvicorn.workers.UvicornWorker, uvicorn_worker.UvicornWorker, "
            "uvicorn.workers.UvicornH11Worker, asgi...); settings given explicitly win",
            env="TRICORN_WORKER_CLASS",
            flags=("--worker-class", "-k"),
            metavar="CLASS",
            convert=optional(to_worker_class),
        ),
    )
    lifespan: Lifespan = field(
        default="auto",
        metadata=_setting(
            group=_APPLICATION,
            help="ASGI lifespan events: on requires them, off never sends them, auto tolerates an app "
            "that does not support them",
            env="TRICORN_LIFESPAN",
            flags=("--lifespan",),
            choices=LIFESPANS,
        ),
    )
    threads: int = field(
        default=DEFAULT_THREADS,
        metadata=_setting(
            group=_APPLICATION,
            help="WSGI: the threads that run the application in each worker process; up to N requests "
            "that block (on a database, a file, another service) overlap",
            env="TRICORN_THREADS",
            flags=("--threads",),
            metavar="N",
            convert=to_int(1, MAX_THREADS),
        ),
    )
    root_path: str = field(
        default="",
        metadata=_setting(
            group=_APPLICATION,
            help="the path prefix the application is mounted under (ASGI root_path, WSGI SCRIPT_NAME)",
            env="TRICORN_ROOT_PATH",
            flags=("--root-path",),
            metavar="PATH",
            convert=to_root_path,
        ),
    )
    mount: tuple[str, ...] = field(
        default=(),
        metadata=_setting(
            group=_APPLICATION,
            help="serve another application under the URL path PREFIX (the longest matching prefix wins, "
            "on segment boundaries; the app sees PREFIX as its root_path or SCRIPT_NAME); @asgi or @wsgi "
            "forces its interface; repeat for several; the APP, if given, is the / mount",
            env="TRICORN_MOUNT",
            flags=("--mount",),
            metavar="PREFIX=APP[@INTERFACE]",
            convert=to_app_mounts,
        ),
    )
    app_dir: str = field(
        default=".",
        metadata=_setting(
            group=_APPLICATION,
            help="the directory put first on sys.path before importing APP",
            env="TRICORN_APP_DIR",
            flags=("--app-dir",),
            metavar="DIR",
            convert=to_path,
        ),
    )
    chdir: str | None = field(
        default=None,
        metadata=_setting(
            group=_APPLICATION,
            help="change to this directory before importing APP (and put it first on sys.path)",
            env="TRICORN_CHDIR",
            flags=("--chdir",),
            metavar="DIR",
            convert=optional(to_path),
        ),
    )
    pythonpath: tuple[str, ...] = field(
        default=(),
        metadata=_setting(
            group=_APPLICATION,
            help="directories put first on sys.path before importing APP; repeat, or separate with commas",
            env="TRICORN_PYTHONPATH",
            flags=("--pythonpath",),
            metavar="DIRS",
            convert=to_str_tuple,
        ),
    )
    env: tuple[str, ...] = field(
        default=(),
        metadata=_setting(
            group=_APPLICATION,
            help="set an environment variable, NAME=VALUE, before importing APP; repeat for several",
            env="TRICORN_ENV",
            flags=("--env",),
            metavar="NAME=VALUE",
            convert=to_env_assignments,
            aliases=("-e", "raw_env"),
        ),
    )
    env_file: str | None = field(
        default=None,
        metadata=_setting(
            group=_APPLICATION,
            help="a file of NAME=VALUE lines (a .env file) set in the environment before importing APP",
            env="TRICORN_ENV_FILE",
            flags=("--env-file",),
            metavar="FILE",
            convert=optional(to_path),
        ),
    )

    # Static files
    static: tuple[str, ...] = field(
        default=(),
        metadata=_setting(
            group=_STATIC,
            help="serve the files of DIR under the URL path PREFIX, before the application is called "
            "(a miss under PREFIX is a 404, never the app's); repeat for several; /=DIR with no APP "
            "serves the directory alone",
            env="TRICORN_STATIC",
            flags=("--static",),
            metavar="PREFIX=DIR",
            convert=to_mounts,
        ),
    )
    static_list: bool = field(
        default=False,
        metadata=_setting(
            group=_STATIC,
            help="list a directory that has no index.html (else 404)",
            env="TRICORN_STATIC_LIST",
            flags=("--static-list",),
            convert=to_bool,
        ),
    )
    static_max_age: int = field(
        default=DEFAULT_STATIC_MAX_AGE,
        metadata=_setting(
            group=_STATIC,
            help="seconds browsers may cache a static file (Cache-Control max-age; 0 sends no-cache); "
            "hashed names (name.0123456789ab.css, as Django's ManifestStaticFilesStorage makes) get a "
            "year and immutable",
            env="TRICORN_STATIC_MAX_AGE",
            flags=("--static-max-age",),
            metavar="SECONDS",
            convert=to_int(0, MAX_STATIC_MAX_AGE),
        ),
    )
    static_follow_symlinks: bool = field(
        default=False,
        metadata=_setting(
            group=_STATIC,
            help="serve files through symlinks that lead outside DIR (else 403)",
            env="TRICORN_STATIC_FOLLOW_SYMLINKS",
            flags=("--static-follow-symlinks",),
            convert=to_bool,
        ),
    )

    # Binding
    host: str = field(
        default="127.0.0.1",
        metadata=_setting(
            group=_BINDING,
            help="the address to listen on, when no --bind is given",
            env="TRICORN_HOST",
            flags=("--host",),
            metavar="HOST",
            convert=to_host,
        ),
    )
    port: int = field(
        default=8000,
        metadata=_setting(
            group=_BINDING,
            help="the TCP port to listen on, when no --bind is given (0 picks a free port)",
            env="TRICORN_PORT",
            flags=("--port",),
            metavar="PORT",
            convert=to_int(0, 65535),
        ),
    )
    bind: tuple[str, ...] = field(
        default=(),
        metadata=_setting(
            group=_BINDING,
            help="an address to listen on: HOST:PORT, [IPV6]:PORT, unix:PATH or fd://N; repeat for several "
            "(replaces --host/--port; in the environment or a file, separate with commas or spaces)",
            env="TRICORN_BIND",
            flags=("--bind", "-b"),
            aliases=("--uds unix:{}", "--fd fd://{}"),
            metavar="ADDRESS",
            convert=to_binds,
        ),
    )
    backlog: int = field(
        default=DEFAULT_BACKLOG,
        metadata=_setting(
            group=_BINDING,
            help="the maximum number of pending connections (listen backlog)",
            env="TRICORN_BACKLOG",
            flags=("--backlog",),
            metavar="N",
            convert=to_int(1, 65535),
        ),
    )
    reuse_port: bool = field(
        default=False,
        metadata=_setting(
            group=_BINDING,
            help="set SO_REUSEPORT on TCP sockets, so another server (a new deployment) can listen on the "
            "same port at the same time",
            env="TRICORN_REUSE_PORT",
            flags=("--reuse-port",),
            convert=to_bool,
        ),
    )
    unix_socket_permissions: int | None = field(
        default=None,
        metadata=_setting(
            group=_BINDING,
            help="the permissions of unix sockets, in octal (e.g. 660); none leaves them to the umask",
            env="TRICORN_UNIX_SOCKET_PERMISSIONS",
            flags=("--unix-socket-permissions",),
            metavar="MODE",
            convert=optional(to_file_mode),
        ),
    )

    # Proxies
    proxy_headers: bool = field(
        default=True,
        metadata=_setting(
            group=_PROXIES,
            help="believe X-Forwarded-For/-Proto/-Host/-Port and Forwarded (RFC 7239) from the peers in "
            "--forwarded-allow-ips: the client address, scheme and Host the application sees are the ones "
            "the proxy reports",
            env="TRICORN_PROXY_HEADERS",
            flags=("--proxy-headers",),
            convert=to_bool,
        ),
    )
    forwarded_allow_ips: tuple[str, ...] = field(
        default=("127.0.0.1", "::1"),
        metadata=_setting(
            group=_PROXIES,
            help="the proxies whose headers are believed: IP addresses, networks (10.0.0.0/8), unix for "
            "peers on a unix socket (never trusted otherwise), * for every peer; separate with commas",
            env="TRICORN_FORWARDED_ALLOW_IPS",
            env_fallbacks=("FORWARDED_ALLOW_IPS",),
            flags=("--forwarded-allow-ips",),
            metavar="LIST",
            convert=to_allow_list,
        ),
    )
    proxy_protocol: bool = field(
        default=False,
        metadata=_setting(
            group=_PROXIES,
            help="every connection starts with a PROXY protocol header (v1 or v2, as haproxy's send-proxy "
            "and cloud load balancers send it) naming the client; a connection without a valid one, or "
            "from a peer outside --proxy-allow-from, is closed",
            env="TRICORN_PROXY_PROTOCOL",
            flags=("--proxy-protocol",),
            convert=to_bool,
        ),
    )
    proxy_allow_from: tuple[str, ...] = field(
        default=("127.0.0.1", "::1"),
        metadata=_setting(
            group=_PROXIES,
            help="the peers allowed to send a PROXY protocol header: IP addresses, networks, unix, *; "
            "separate with commas",
            env="TRICORN_PROXY_ALLOW_FROM",
            flags=("--proxy-allow-from",),
            aliases=("proxy_allow_ips",),
            metavar="LIST",
            convert=to_allow_list,
        ),
    )

    # TLS
    ssl_certfile: str | None = field(
        default=None,
        metadata=_setting(
            group=_TLS,
            help="serve HTTPS with this certificate (PEM), followed by its intermediate certificates; the "
            "file may hold the private key too",
            env="TRICORN_SSL_CERTFILE",
            flags=("--ssl-certfile", "--certfile"),
            aliases=("certfile",),
            metavar="FILE",
            convert=optional(to_path),
        ),
    )
    ssl_keyfile: str | None = field(
        default=None,
        metadata=_setting(
            group=_TLS,
            help="the private key (PEM) of --ssl-certfile, when it is not in that file",
            env="TRICORN_SSL_KEYFILE",
            flags=("--ssl-keyfile", "--keyfile"),
            aliases=("keyfile",),
            metavar="FILE",
            convert=optional(to_path),
        ),
    )
    # Not in repr(): a Config may end up in a log line or a traceback.
    ssl_keyfile_password: str | None = field(
        default=None,
        repr=False,
        metadata=_setting(
            group=_TLS,
            help="the password of an encrypted private key",
            env="TRICORN_SSL_KEYFILE_PASSWORD",
            flags=("--ssl-keyfile-password",),
            metavar="PASSWORD",
            convert=optional(to_secret),
        ),
    )
    ssl_ca_certs: str | None = field(
        default=None,
        metadata=_setting(
            group=_TLS,
            help="the CA certificates (PEM) that client certificates are verified against, for "
            "--ssl-cert-reqs optional or required",
            env="TRICORN_SSL_CA_CERTS",
            flags=("--ssl-ca-certs", "--ca-certs"),
            aliases=("ca_certs",),
            metavar="FILE",
            convert=optional(to_path),
        ),
    )
    ssl_cert_reqs: CertReqs = field(
        default="none",
        metadata=_setting(
            group=_TLS,
            help="client certificates: none are asked for; optional ones are verified when sent; required "
            "ones must be sent (mutual TLS); 0, 1, 2 as in gunicorn and uvicorn",
            env="TRICORN_SSL_CERT_REQS",
            flags=("--ssl-cert-reqs", "--cert-reqs"),
            aliases=("cert_reqs",),
            metavar="{none,optional,required}",
            choices=CERT_REQS,
            convert=to_cert_reqs,
        ),
    )
    ssl_ciphers: str = field(
        default=DEFAULT_SSL_CIPHERS,
        metadata=_setting(
            group=_TLS,
            help="the TLS 1.2 cipher suites, in OpenSSL's cipher-list syntax (TLS 1.3 suites are "
            "OpenSSL's, all AEAD)",
            env="TRICORN_SSL_CIPHERS",
            flags=("--ssl-ciphers", "--ciphers"),
            aliases=("ciphers",),
            metavar="CIPHERS",
            convert=to_ciphers,
        ),
    )

    # Protocol
    http: HttpImplementation = field(
        default="auto",
        metadata=_setting(
            group=_PROTOCOL,
            help="the HTTP/1.1 parser: httptools (llhttp, C) or h11 (tricorn's strict pure-Python parser, named after uvicorn's flag); auto prefers httptools",
            env="TRICORN_HTTP",
            flags=("--http",),
            choices=HTTP_IMPLEMENTATIONS,
        ),
    )
    loop: LoopImplementation = field(
        default="auto",
        metadata=_setting(
            group=_PROTOCOL,
            help="the event loop; auto prefers uvloop when it is installed",
            env="TRICORN_LOOP",
            flags=("--loop",),
            choices=LOOP_IMPLEMENTATIONS,
        ),
    )
    header: tuple[str, ...] = field(
        default=(),
        metadata=_setting(
            group=_PROTOCOL,
            help="a default response header, NAME:VALUE, sent unless the application sends one of that "
            "name; repeat for several (a server header here replaces tricorn's)",
            env="TRICORN_HEADER",
            flags=("--header",),
            metavar="NAME:VALUE",
            convert=to_header_lines,
        ),
    )
    server_header: bool = field(
        default=True,
        metadata=_setting(
            group=_PROTOCOL,
            help="send 'server: tricorn' when the application sends no server header",
            env="TRICORN_SERVER_HEADER",
            flags=("--server-header",),
            convert=to_bool,
        ),
    )
    date_header: bool = field(
        default=True,
        metadata=_setting(
            group=_PROTOCOL,
            help="send a date header when the application sends none",
            env="TRICORN_DATE_HEADER",
            flags=("--date-header",),
            convert=to_bool,
        ),
    )

    # HTTP/2
    http2: bool = field(
        default=True,
        metadata=_setting(
            group=_HTTP2,
            help="serve HTTP/2 to clients that ask for it (over TLS, by ALPN); --no-http2 serves HTTP/1.1 only",
            env="TRICORN_HTTP2",
            flags=("--http2",),
            convert=to_bool,
        ),
    )
    h2_max_concurrent_streams: int = field(
        default=DEFAULT_H2_MAX_CONCURRENT_STREAMS,
        metadata=_setting(
            group=_HTTP2,
            help="the requests a client may have open at once on one HTTP/2 connection "
            "(SETTINGS_MAX_CONCURRENT_STREAMS)",
            env="TRICORN_H2_MAX_CONCURRENT_STREAMS",
            flags=("--h2-max-concurrent-streams",),
            metavar="N",
            convert=to_int(1, MAX_H2_MAX_CONCURRENT_STREAMS),
        ),
    )
    h2_max_header_list_size: int = field(
        default=DEFAULT_H2_MAX_HEADER_LIST_SIZE,
        metadata=_setting(
            group=_HTTP2,
            help="the largest HTTP/2 request head accepted, in bytes, uncompressed, plus 32 per field "
            "(SETTINGS_MAX_HEADER_LIST_SIZE)",
            env="TRICORN_H2_MAX_HEADER_LIST_SIZE",
            flags=("--h2-max-header-list-size",),
            metavar="BYTES",
            convert=to_int(1, MAX_H2_MAX_HEADER_LIST_SIZE),
        ),
    )
    h2_initial_window_size: int = field(
        default=DEFAULT_H2_INITIAL_WINDOW_SIZE,
        metadata=_setting(
            group=_HTTP2,
            help="the bytes of request body a client may send on an HTTP/2 stream before the server asks "
            "for more (SETTINGS_INITIAL_WINDOW_SIZE)",
            env="TRICORN_H2_INITIAL_WINDOW_SIZE",
            flags=("--h2-initial-window-size",),
            metavar="BYTES",
            convert=to_int(1, MAX_H2_INITIAL_WINDOW_SIZE),
        ),
    )
    h2_max_frame_size: int = field(
        default=DEFAULT_H2_MAX_FRAME_SIZE,
        metadata=_setting(
            group=_HTTP2,
            help="the largest HTTP/2 frame payload accepted from a client, in bytes (SETTINGS_MAX_FRAME_SIZE)",
            env="TRICORN_H2_MAX_FRAME_SIZE",
            flags=("--h2-max-frame-size",),
            metavar="BYTES",
            convert=to_int(MIN_H2_MAX_FRAME_SIZE, MAX_H2_MAX_FRAME_SIZE),
        ),
    )

    # HTTP/3
    quic_bind: tuple[str, ...] = field(
        default=(),
        metadata=_setting(
            group=_HTTP3,
            help="serve HTTP/3 over QUIC on this UDP address, HOST:PORT or [IPV6]:PORT, usually the TLS "
            "port (needs --ssl-certfile and the http3 extra: pip install tricorn[http3]); repeat for "
            "several; TCP responses then advertise it with Alt-Svc",
            env="TRICORN_QUIC_BIND",
            flags=("--quic-bind",),
            metavar="ADDRESS",
            convert=to_quic_binds,
        ),
    )
    quic_retry: bool = field(
        default=False,
        metadata=_setting(
            group=_HTTP3,
            help="validate a client's address with a QUIC Retry before any handshake work (one more round "
            "trip per new connection; a guard against floods from spoofed addresses)",
            env="TRICORN_QUIC_RETRY",
            flags=("--quic-retry",),
            convert=to_bool,
        ),
    )
    quic_idle_timeout: float = field(
        default=DEFAULT_QUIC_IDLE_TIMEOUT,
        metadata=_setting(
            group=_HTTP3,
            help="seconds a QUIC connection may stay silent before it is dropped (the client's own value "
            "applies if smaller); the apps of its open streams are told the client left",
            env="TRICORN_QUIC_IDLE_TIMEOUT",
            flags=("--quic-idle-timeout",),
            metavar="SECONDS",
            convert=to_float(0.0, positive=True),
        ),
    )
    h3_max_concurrent_streams: int = field(
        default=DEFAULT_H3_MAX_CONCURRENT_STREAMS,
        metadata=_setting(
            group=_HTTP3,
            help="the requests a client may have open at once on one HTTP/3 connection "
            "(initial_max_streams_bidi; a closed stream gives the client one more)",
            env="TRICORN_H3_MAX_CONCURRENT_STREAMS",
            flags=("--h3-max-concurrent-streams",),
            metavar="N",
            convert=to_int(1, MAX_H3_MAX_CONCURRENT_STREAMS),
        ),
    )

    # WebSocket
    ws: WsImplementation = field(
        default="auto",
        metadata=_setting(
            group=_WEBSOCKET,
            help="WebSocket for ASGI apps: websockets (the sans-io layer of the websockets library); none "
            "serves upgrade requests as plain HTTP; auto is websockets when it is installed",
            env="TRICORN_WS",
            flags=("--ws",),
            choices=WS_IMPLEMENTATIONS,
        ),
    )
    ws_max_size: int = field(
        default=DEFAULT_WS_MAX_SIZE,
        metadata=_setting(
            group=_WEBSOCKET,
            help="the largest WebSocket message accepted, in bytes (after decompression); a larger one "
            "closes the connection with 1009",
            env="TRICORN_WS_MAX_SIZE",
            flags=("--ws-max-size",),
            metavar="BYTES",
            convert=to_int(1, MAX_WS_MAX_SIZE),
        ),
    )
    ws_max_queue: int = field(
        default=DEFAULT_WS_MAX_QUEUE,
        metadata=_setting(
            group=_WEBSOCKET,
            help="received messages held for an app that has not read them before the connection stops "
            "being read",
            env="TRICORN_WS_MAX_QUEUE",
            flags=("--ws-max-queue",),
            metavar="N",
            convert=to_int(1, 1 << 20),
        ),
    )
    ws_ping_interval: float | None = field(
        default=DEFAULT_WS_PING_INTERVAL,
        metadata=_setting(
            group=_WEBSOCKET,
            help="seconds between keepalive pings on an open WebSocket; none (or 0) sends none",
            env="TRICORN_WS_PING_INTERVAL",
            flags=("--ws-ping-interval",),
            metavar="SECONDS",
            convert=optional(to_float(0.0)),
        ),
    )
    ws_ping_timeout: float | None = field(
        default=DEFAULT_WS_PING_TIMEOUT,
        metadata=_setting(
            group=_WEBSOCKET,
            help="seconds the client has to answer a keepalive ping before the connection is closed "
            "with 1011; none (or 0) waits forever",
            env="TRICORN_WS_PING_TIMEOUT",
            flags=("--ws-ping-timeout",),
            metavar="SECONDS",
            convert=optional(to_float(0.0)),
        ),
    )
    ws_close_timeout: float = field(
        default=DEFAULT_WS_CLOSE_TIMEOUT,
        metadata=_setting(
            group=_WEBSOCKET,
            help="seconds the client has to answer the server's close frame before the connection is dropped",
            env="TRICORN_WS_CLOSE_TIMEOUT",
            flags=("--ws-close-timeout",),
            metavar="SECONDS",
            convert=to_float(0.0),
        ),
    )
    ws_per_message_deflate: bool = field(
        default=True,
        metadata=_setting(
            group=_WEBSOCKET,
            help="offer permessage-deflate compression (RFC 7692) to WebSocket clients that ask for it",
            env="TRICORN_WS_PER_MESSAGE_DEFLATE",
            flags=("--ws-per-message-deflate",),
            convert=to_bool,
        ),
    )

    # Timeouts
    timeout_keep_alive: float = field(
        default=DEFAULT_TIMEOUT_KEEP_ALIVE,
        metadata=_setting(
            group=_TIMEOUTS,
            help="seconds to keep an idle keep-alive connection open",
            env="TRICORN_TIMEOUT_KEEP_ALIVE",
            flags=("--timeout-keep-alive",),
            aliases=("--keep-alive", "keepalive"),
            metavar="SECONDS",
            convert=to_float(0.0),
        ),
    )
    timeout_request_header: float = field(
        default=DEFAULT_TIMEOUT_REQUEST_HEADER,
        metadata=_setting(
            group=_TIMEOUTS,
            help="seconds a client has to send a complete request head (408 after that)",
            env="TRICORN_TIMEOUT_REQUEST_HEADER",
            flags=("--timeout-request-header",),
            metavar="SECONDS",
            convert=to_float(0.0),
        ),
    )
    timeout_read: float = field(
        default=DEFAULT_TIMEOUT_READ,
        metadata=_setting(
            group=_TIMEOUTS,
            help="seconds a client may pause while sending a request body the application waits for (408 "
            "if nothing of the response was sent, else the connection or HTTP/2 stream is closed)",
            env="TRICORN_TIMEOUT_READ",
            flags=("--timeout-read",),
            metavar="SECONDS",
            convert=to_float(0.0, positive=True),
        ),
    )
    timeout_send: float = field(
        default=DEFAULT_TIMEOUT_SEND,
        metadata=_setting(
            group=_TIMEOUTS,
            help="seconds a client may take nothing more of a response the application waits to write "
            "before the connection (HTTP/2: the stream) is closed",
            env="TRICORN_TIMEOUT_SEND",
            flags=("--timeout-send",),
            metavar="SECONDS",
            convert=to_float(0.0, positive=True),
        ),
    )
    timeout_ssl_handshake: float = field(
        default=DEFAULT_TIMEOUT_SSL_HANDSHAKE,
        metadata=_setting(
            group=_TIMEOUTS,
            help="seconds a client has to complete the TLS handshake before the connection is closed",
            env="TRICORN_TIMEOUT_SSL_HANDSHAKE",
            flags=("--timeout-ssl-handshake",),
            metavar="SECONDS",
            convert=to_float(0.0, positive=True),
        ),
    )
    timeout_graceful_shutdown: float = field(
        default=DEFAULT_TIMEOUT_GRACEFUL_SHUTDOWN,
        metadata=_setting(
            group=_TIMEOUTS,
            help="seconds to let in-flight requests finish on shutdown before closing them",
            env="TRICORN_TIMEOUT_GRACEFUL_SHUTDOWN",
            flags=("--timeout-graceful-shutdown",),
            aliases=("--graceful-timeout",),
            metavar="SECONDS",
            convert=to_float(0.0),
        ),
    )
    timeout_lifespan: float = field(
        default=DEFAULT_TIMEOUT_LIFESPAN,
        metadata=_setting(
            group=_TIMEOUTS,
            help="seconds the application has to answer lifespan startup (exit code 3 after that), and "
            "again shutdown (then the worker stops without waiting further)",
            env="TRICORN_TIMEOUT_LIFESPAN",
            flags=("--timeout-lifespan",),
            metavar="SECONDS",
            convert=to_float(0.0),
        ),
    )

    # Limits
    limit_request_line: int = field(
        default=DEFAULT_LIMIT_REQUEST_LINE,
        metadata=_setting(
            group=_LIMITS,
            help="the maximum size of the request line in bytes (414 when exceeded)",
            env="TRICORN_LIMIT_REQUEST_LINE",
            flags=("--limit-request-line",),
            metavar="BYTES",
            convert=to_int(1, MAX_LIMIT_REQUEST_LINE),
        ),
    )
    limit_request_fields: int = field(
        default=DEFAULT_LIMIT_REQUEST_FIELDS,
        metadata=_setting(
            group=_LIMITS,
            help="the maximum number of header fields in a request (431 when exceeded)",
            env="TRICORN_LIMIT_REQUEST_FIELDS",
            flags=("--limit-request-fields",),
            metavar="N",
            convert=to_int(1, MAX_LIMIT_REQUEST_FIELDS),
        ),
    )
    limit_request_field_size: int = field(
        default=DEFAULT_LIMIT_REQUEST_FIELD_SIZE,
        metadata=_setting(
            group=_LIMITS,
            help="the maximum size of one request header field in bytes (431 when exceeded)",
            env="TRICORN_LIMIT_REQUEST_FIELD_SIZE",
            flags=("--limit-request-field-size",),
            aliases=("--limit-request-field_size",),
            metavar="BYTES",
            convert=to_int(1, MAX_LIMIT_REQUEST_FIELD_SIZE),
        ),
    )
    limit_request_body: int | None = field(
        default=None,
        metadata=_setting(
            group=_LIMITS,
            help="the maximum size of a request body in bytes (413 when exceeded); none for no limit",
            env="TRICORN_LIMIT_REQUEST_BODY",
            flags=("--limit-request-body",),
            metavar="BYTES",
            convert=optional(to_int(0)),
        ),
    )
    limit_concurrency: int | None = field(
        default=None,
        metadata=_setting(
            group=_LIMITS,
            help="the maximum number of concurrent connections and tasks before answering 503; none for no limit",
            env="TRICORN_LIMIT_CONCURRENCY",
            flags=("--limit-concurrency",),
            aliases=("--worker-connections",),
            metavar="N",
            convert=optional(to_int(1)),
        ),
    )

    # CGI
    cgi: tuple[str, ...] = field(
        default=(),
        metadata=_setting(
            group=_CGI,
            help="run the executable files of DIR as CGI/1.1 scripts (RFC 3875) for requests under the URL "
            "path PREFIX: --cgi /cgi-bin=./cgi-bin; repeat for several",
            env="TRICORN_CGI",
            flags=("--cgi",),
            metavar="PREFIX=DIR",
            convert=to_mounts,
        ),
    )
    cgi_timeout: float = field(
        default=DEFAULT_CGI_TIMEOUT,
        metadata=_setting(
            group=_CGI,
            help="seconds a CGI script may run; then it is killed with its process group (504 if it sent "
            "nothing yet, else its response is cut)",
            env="TRICORN_CGI_TIMEOUT",
            flags=("--cgi-timeout",),
            metavar="SECONDS",
            convert=to_float(0, positive=True),
        ),
    )
    cgi_max_concurrent: int | None = field(
        default=None,
        metadata=_setting(
            group=_CGI,
            help="CGI scripts running at once in each worker process; past it, 503 with Retry-After "
            "(none: the --threads count)",
            env="TRICORN_CGI_MAX_CONCURRENT",
            flags=("--cgi-max-concurrent",),
            metavar="N",
            convert=optional(to_int(1, MAX_CGI_MAX_CONCURRENT)),
        ),
    )

    # Logging
    log_level: LogLevel = field(
        default="info",
        metadata=_setting(
            group=_LOGGING,
            help="the error log's level",
            env="TRICORN_LOG_LEVEL",
            flags=("--log-level",),
            aliases=("loglevel",),
            choices=LOG_LEVELS,
        ),
    )
    access_log: bool = field(
        default=True,
        metadata=_setting(
            group=_LOGGING,
            help="write an access log line per request to stdout",
            env="TRICORN_ACCESS_LOG",
            flags=("--access-log",),
            convert=to_bool,
        ),
    )
    access_log_format: str = field(
        default=DEFAULT_ACCESS_LOG_FORMAT,
        metadata=_setting(
            group=_LOGGING,
            help="the access log line, with gunicorn's %(atom)s atoms",
            env="TRICORN_ACCESS_LOG_FORMAT",
            flags=("--access-log-format",),
            aliases=("--access-logformat",),
            metavar="FORMAT",
            convert=to_percent_format,
        ),
    )
    log_format: LogFormat = field(
        default="text",
        metadata=_setting(
            group=_LOGGING,
            help="text: gunicorn's lines; json: every error-log and access-log record as one JSON object a line",
            env="TRICORN_LOG_FORMAT",
            flags=("--log-format",),
            choices=LOG_FORMATS,
        ),
    )
    access_log_file: str | None = field(
        default=None,
        metadata=_setting(
            group=_LOGGING,
            help="write the access log to this file instead of stdout ('-' for stdout)",
            env="TRICORN_ACCESS_LOG_FILE",
            flags=("--access-log-file",),
            metavar="FILE",
            convert=optional(to_path),
            aliases=("--access-logfile", "accesslog"),
        ),
    )
    error_log_file: str | None = field(
        default=None,
        metadata=_setting(
            group=_LOGGING,
            help="write the error log to this file instead of stderr ('-' for stderr)",
            env="TRICORN_ERROR_LOG_FILE",
            flags=("--error-log-file",),
            metavar="FILE",
            convert=optional(to_path),
            aliases=("--error-logfile", "--log-file", "errorlog"),
        ),
    )
    capture_output: bool = field(
        default=False,
        metadata=_setting(
            group=_LOGGING,
            help="send what the application prints (stdout and stderr) to the --error-log-file too",
            env="TRICORN_CAPTURE_OUTPUT",
            flags=("--capture-output",),
            convert=to_bool,
        ),
    )
    log_config: str | None = field(
        default=None,
        metadata=_setting(
            group=_LOGGING,
            help="a logging configuration file (.json, .toml or .yaml for dictConfig, .ini for fileConfig) "
            "used instead of tricorn's own logging setup",
            env="TRICORN_LOG_CONFIG",
            flags=("--log-config",),
            aliases=("--log-config-json", "logconfig"),
            metavar="FILE",
            convert=optional(to_path),
        ),
    )

    # Processes
    workers: int = field(
        default=1,
        metadata=_setting(
            group=_PROCESSES,
            help="the number of worker processes; more than 1 (or --reload, --max-requests, a --timeout-worker "
            "of its own) starts a master that binds the sockets and forks the workers",
            env="TRICORN_WORKERS",
            env_fallbacks=("WEB_CONCURRENCY",),
            flags=("--workers", "-w"),
            aliases=("workers",),
            metavar="N",
            convert=to_int(1, MAX_WORKERS),
        ),
    )
    timeout_worker: float = field(
        default=DEFAULT_TIMEOUT_WORKER,
        metadata=_setting(
            group=_PROCESSES,
            help="seconds a worker may go without a heartbeat (a blocked event loop), or with every WSGI "
            "thread on one request, before it is replaced (stacks logged); 0 disables the check; a value of "
            "its own starts a master even for one worker",
            env="TRICORN_TIMEOUT_WORKER",
            flags=("--timeout-worker",),
            aliases=("-t", "--timeout"),
            metavar="SECONDS",
            convert=to_float(0.0),
        ),
    )
    max_requests: int | None = field(
        default=None,
        metadata=_setting(
            group=_PROCESSES,
            help="replace a worker after it has served about this many requests (a bound on leaks); none "
            "for never",
            env="TRICORN_MAX_REQUESTS",
            flags=("--max-requests",),
            aliases=("--limit-max-requests",),
            metavar="N",
            convert=optional(to_int(1)),
        ),
    )
    max_requests_jitter: int = field(
        default=0,
        metadata=_setting(
            group=_PROCESSES,
            help="add a random 0 to N to each worker's max-requests, so workers are not all replaced at once",
            env="TRICORN_MAX_REQUESTS_JITTER",
            flags=("--max-requests-jitter",),
            aliases=("--limit-max-requests-jitter",),
            metavar="N",
            convert=to_int(0),
        ),
    )
    preload: bool = field(
        default=False,
        metadata=_setting(
            group=_PROCESSES,
            help="import the application in the master before forking (less memory, faster boots); "
            "SIGHUP then restarts workers with the code already loaded",
            env="TRICORN_PRELOAD",
            flags=("--preload",),
            aliases=("preload_app",),
            convert=to_bool,
        ),
    )
    pid: str | None = field(
        default=None,
        metadata=_setting(
            group=_PROCESSES,
            help="write the process id of the master (or of the single process) to this file",
            env="TRICORN_PID",
            flags=("--pid",),
            aliases=("-p", "pidfile"),
            metavar="FILE",
            convert=optional(to_path),
        ),
    )
    user: str | None = field(
        default=None,
        metadata=_setting(
            group=_PROCESSES,
            help="switch to this user (name or id) after binding the sockets",
            env="TRICORN_USER",
            flags=("--user",),
            aliases=("-u",),
            metavar="USER",
            convert=optional(to_identity),
        ),
    )
    group: str | None = field(
        default=None,
        metadata=_setting(
            group=_PROCESSES,
            help="switch to this group (name or id) after binding the sockets; default: the user's group",
            env="TRICORN_GROUP",
            flags=("--group",),
            aliases=("-g",),
            metavar="GROUP",
            convert=optional(to_identity),
        ),
    )
    proc_name: str | None = field(
        default=None,
        metadata=_setting(
            group=_PROCESSES,
            help="the name in the process titles (tricorn: master [NAME]); default: APP",
            env="TRICORN_PROC_NAME",
            flags=("--proc-name",),
            metavar="NAME",
            convert=optional(to_str),
            aliases=("--name", "-n"),
        ),
    )

    # Reload
    metrics_bind: str | None = field(
        default=None,
        metadata=_setting(
            group=_METRICS,
            help="an address of its own (HOST:PORT or unix:PATH, never an application --bind) that serves "
            "Prometheus metrics at /metrics and the probes /livez and /readyz; none for no such listener",
            env="TRICORN_METRICS_BIND",
            flags=("--metrics-bind",),
            metavar="ADDR",
            convert=optional(to_metrics_bind),
        ),
    )
    reload: bool = field(
        default=False,
        metadata=_setting(
            group=_RELOAD,
            help="for development: restart the workers when source files change",
            env="TRICORN_RELOAD",
            flags=("--reload",),
            convert=to_bool,
        ),
    )
    reload_dir: tuple[str, ...] = field(
        default=(),
        metadata=_setting(
            group=_RELOAD,
            help="a directory to watch with --reload; repeat for several (default: the working directory)",
            env="TRICORN_RELOAD_DIR",
            flags=("--reload-dir",),
            aliases=("reload_dirs",),
            metavar="DIR",
            convert=to_str_tuple,
        ),
    )
    reload_include: tuple[str, ...] = field(
        default=(),
        metadata=_setting(
            group=_RELOAD,
            help="a glob of files whose changes restart the workers, besides *.py; repeat for several",
            env="TRICORN_RELOAD_INCLUDE",
            flags=("--reload-include",),
            aliases=("reload_includes",),
            metavar="GLOB",
            convert=to_str_tuple,
        ),
    )
    reload_exclude: tuple[str, ...] = field(
        default=(),
        metadata=_setting(
            group=_RELOAD,
            help="a glob of files or directories to ignore, besides .*, __pycache__, *.py[cod], *~; "
            "repeat for several",
            env="TRICORN_RELOAD_EXCLUDE",
            flags=("--reload-exclude",),
            aliases=("reload_excludes",),
            metavar="GLOB",
            convert=to_str_tuple,
        ),
    )

    # Configuration
    config: str | None = field(
        default=None,
        metadata=_setting(
            group=_CONFIGURATION,
            help="a TOML file of settings (keys are setting names, optionally under [tool.tricorn]), or a "
            "gunicorn Python config file (FILE.py, or python:MODULE) with its server hooks; without it, "
            "./gunicorn.conf.py, else [tool.tricorn] in ./pyproject.toml, is used if present",
            env="TRICORN_CONFIG",
            flags=("--config", "-c"),
            metavar="FILE",
            convert=optional(to_path),
        ),
    )
    check_config: bool = field(
        default=False,
        metadata=_setting(
            group=_CONFIGURATION,
            help="check every setting and import the application, print the effective settings and where "
            "each came from, and exit (0 when all is well)",
            env="TRICORN_CHECK_CONFIG",
            flags=("--check-config",),
            convert=to_bool,
            aliases=("--print-config",),
        ),
    )

    def __post_init__(self) -> None:
        for name, setting in SETTINGS.items():
            value = getattr(self, name)
            converted = setting.convert(name, value)
            if converted is not value:
                object.__setattr__(self, name, converted)
        self._check_tls()
        self._check_metrics_bind()
        if self.app != DEFAULT_APP and any(prefix == "/" for prefix, _, _ in self.app_mounts):
            raise ConfigError(
                "mount", f"'/' is mounted, and {self.app!r} is given as APP (the / mount): give one of them"
            )
        static = {prefix for prefix, _ in self.static_mounts}
        mounted = {prefix for prefix, _, _ in self.app_mounts}
        both = static & mounted
        if both:
            raise ConfigError(
                "static", f"{min(both)!r} is given both as a static directory and as a mount: give one"
            )
        for entry in self.cgi:
            prefix = parse_mount(entry)[0]
            if prefix in mounted:
                raise ConfigError("cgi", f"{entry!r}: an app is mounted at {prefix!r} too")
            if prefix in static:
                raise ConfigError("cgi", f"{entry!r}: static files are served at {prefix!r} too")
        if self.app != DEFAULT_APP and "/" in static:
            raise ConfigError(
                "static",
                f"'/' is served by static files, which leaves no path for {self.app!r} "
                "(give the files a prefix, or no APP to serve the directory alone)",
            )

    @property
    def app_mounts(self) -> tuple[tuple[str, str, str], ...]:
        """The ``mount`` entries as (prefix as keyed: "/" or "/a/b"; module:app spec; interface)."""
        return tuple(split_mount(entry) for entry in self.mount)

    @property
    def static_mounts(self) -> tuple[tuple[str, str], ...]:
        """The ``static`` entries as (prefix without its trailing slash, or "/"; directory)."""
        mounts = []
        for entry in self.static:
            prefix, _, directory = entry.partition("=")
            mounts.append((prefix.rstrip("/") or "/", directory))
        return tuple(mounts)

    def _check_metrics_bind(self) -> None:
        # The probes must answer for the server, not be the server: on an application port, /readyz would
        # be an app's route and the metrics would be served to every client.
        if self.metrics_bind is None:
            return
        metrics = self.metrics_address
        assert metrics is not None
        for bind in self.binds:
            if _same_listener(metrics, bind):
                raise ConfigError(
                    "metrics_bind",
                    f"{self.metrics_bind!r} is also where the application listens ({bind}); "
                    "give the metrics and probes an address of their own",
                )

    def _check_tls(self) -> None:
        # A TLS setting without a certificate would silently serve plain HTTP to someone who meant HTTPS.
        if self.ssl_certfile is None:
            given = {
                "ssl_keyfile": repr(self.ssl_keyfile),
                "ssl_keyfile_password": "a password",
                "ssl_ca_certs": repr(self.ssl_ca_certs),
                "ssl_cert_reqs": repr(self.ssl_cert_reqs),
            }
            for name, shown in given.items():
                if getattr(self, name) not in (None, "none"):
                    raise ConfigError(
                        name, f"{shown} is given without ssl_certfile (TLS needs a certificate)"
                    )
            if self.quic_bind:
                # QUIC is TLS 1.3 inside: there is no HTTP/3 without a certificate (RFC 9001).
                raise ConfigError(
                    "quic_bind", "HTTP/3 needs a certificate: give --ssl-certfile and --ssl-keyfile too"
                )
        elif self.ssl_cert_reqs != "none" and self.ssl_ca_certs is None:
            raise ConfigError(
                "ssl_cert_reqs",
                f"{self.ssl_cert_reqs!r} needs ssl_ca_certs, the CA certificates that client certificates "
                "are verified against",
            )

    @property
    def tls(self) -> bool:
        """Whether the server speaks HTTPS (``ssl_certfile`` is set)."""
        return self.ssl_certfile is not None

    @property
    def quic_binds(self) -> tuple[BindAddress, ...]:
        """The UDP addresses to serve HTTP/3 on."""
        return tuple(BindAddress.parse(entry) for entry in self.quic_bind)

    @property
    def binds(self) -> tuple[BindAddress, ...]:
        """The addresses to listen on: the parsed ``bind`` entries, or ``host:port`` when there are none."""
        if self.bind:
            return tuple(BindAddress.parse(entry) for entry in self.bind)
        return (BindAddress("tcp", host=self.host, port=self.port),)

    @property
    def metrics_address(self) -> BindAddress | None:
        """The parsed ``metrics_bind``, or None."""
        return None if self.metrics_bind is None else BindAddress.parse(self.metrics_bind)

    def replace(self, **changes: Any) -> Config:
        """A copy with ``changes`` applied, validated like a new Config."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def load(
        cls,
        argv: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> Config:
        """Build a Config from defaults < config file < environment < command line.

        ``argv`` defaults to ``sys.argv[1:]``, ``env`` to ``os.environ``, ``cwd`` (where a relative
        ``--config``, ``gunicorn.conf.py`` and ``pyproject.toml`` are looked up) to the working directory.
        Raises ConfigError for a bad value in any layer, even one a higher layer overrides, naming where
        it came from. :func:`load` gives the same Config with where each value came from.
        """
        return load(argv, env, cwd).config


# The settings in field order, by field name. Field order is --help order, and groups appear in the
# order of their first field.
SETTINGS: Mapping[str, Setting] = MappingProxyType(
    {f.name: f.metadata["tricorn"] for f in dataclasses.fields(Config)}
)

# -- Loading ----------------------------------------------------------------------------------------------

# What the startup log says about how the settings were read: (logging level, message), logged once
# logging is set up (warnings for gunicorn's and uvicorn's options that mean nothing here, the worker
# class's mapping, the gunicorn config file read).
Note = tuple[int, str]
INFO = 20
WARNING = 30

GUNICORN_CONF = "gunicorn.conf.py"


@dataclass(frozen=True, slots=True)
class Loaded:
    """A Config with, for each setting, where its value came from (``"default"`` when nothing set it),
    and the notes for the startup log."""

    config: Config
    sources: Mapping[str, str]
    notes: tuple[Note, ...]


def load(
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> Loaded:
    """:meth:`Config.load`, with where each value came from and the notes for the startup log."""
    notes: list[Note] = []
    from_argv = _read_argv(sys.argv[1:] if argv is None else argv, notes)
    from_env = _read_env(os.environ if env is None else env)
    config_file = from_argv.get("config") or from_env.get("config")
    from_file = _read_config_file(config_file, os.getcwd() if cwd is None else cwd, notes)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for layer in (from_file, from_env, from_argv):
        for name, (raw, source) in layer.items():
            values[name] = _convert(name, raw, source)
            sources[name] = source
    _apply_worker_class(values, sources, notes)
    if values.get("ws") in ("wsproto", "websockets-sansio"):
        notes.append((INFO, f"ws {values['ws']}: WebSocket is served by tricorn's own implementation"))
    config = Config(**values)
    return Loaded(config, {name: sources.get(name, "default") for name in SETTINGS}, tuple(notes))


def _apply_worker_class(values: dict[str, Any], sources: dict[str, str], notes: list[Note]) -> None:
    """Set what the worker class stands for, where no layer set it explicitly."""
    name = values.get("worker_class")
    if name is None:
        return
    meaning = WORKER_CLASSES[name]
    mapped = []
    for setting, value in (
        ("interface", meaning.interface),
        ("threads", meaning.threads),
        ("http", meaning.http),
    ):
        if value is None:
            continue
        if setting in values:
            mapped.append(f"{setting} {values[setting]} (given)")
            continue
        values[setting] = value
        sources[setting] = f"from worker class {name}"
        mapped.append(f"{setting} {value}")
    notes.append((INFO, f"worker class {name}: {', '.join(mapped)}: {meaning.note}"))


# -- Reading the layers ------------------------------------------------------------------------------------

# Each reader returns {setting name: (raw value, where it came from)}.
_Layer = dict[str, tuple[object, str]]


def _convert(name: str, raw: object, source: str) -> Any:
    try:
        return SETTINGS[name].convert(name, raw)
    except ConfigError as exc:
        message = str(exc).removeprefix(f"{exc.setting}: ")
        raise ConfigError(exc.setting, f"{message} ({source})") from None


class _ArgvParser(argparse.ArgumentParser):
    # Config.load is a library call: a bad argv is a ConfigError, not a SystemExit.
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


_NUMBER = re.compile(r"-\d+(?:\.\d*)?")


def check_options(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    """Raise UsageError for the first unknown option in ``argv`` (with the closest known one) or an option
    missing its value, naming the option as typed: whatever follows it is never taken for the APP."""
    options = {flag: action for action in parser._actions for flag in action.option_strings}
    i = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        if token == "--":
            return
        if not token.startswith("-") or token == "-" or _NUMBER.fullmatch(token):
            continue
        flag, equals, _ = token.partition("=")
        action = options.get(flag)
        if action is None and not flag.startswith("--") and flag[:2] in options:
            continue  # -w4: a short option with its value attached
        if action is None:
            longs = [option for option in options if option.startswith("--")]
            close = difflib.get_close_matches(flag, longs, n=1, cutoff=0.75)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise UsageError(f"unknown option {flag}{hint}")
        if action.nargs == 0 or equals:
            continue
        following = argv[i] if i < len(argv) else None
        if following is None or (
            following.startswith("-") and following != "-" and not _NUMBER.fullmatch(following)
        ):
            raise UsageError(f"option {flag} needs a value ({flag} {action.metavar or 'VALUE'})")
        i += 1


_BOOLEAN_WORDS = {
    "true": "--",
    "yes": "--",
    "on": "--",
    "1": "--",
    "false": "--no-",
    "no": "--no-",
    "off": "--no-",
    "0": "--no-",
}


def spell_booleans(parser: argparse.ArgumentParser, argv: Sequence[str]) -> list[str]:
    """``argv`` with boolean options given a value, as uvicorn's ``--ws-per-message-deflate false``
    (or ``=false``), spelled as tricorn's ``--x`` / ``--no-x``."""
    flags = {
        flag
        for action in parser._actions
        if isinstance(action, argparse.BooleanOptionalAction)
        for flag in action.option_strings
        if flag.startswith("--") and not flag.startswith("--no-")
    }
    spelled: list[str] = []
    words = iter(argv)
    for word in words:
        flag, equals, value = word.partition("=")
        if flag in flags and equals and value.lower() in _BOOLEAN_WORDS:
            spelled.append(_BOOLEAN_WORDS[value.lower()] + flag[2:])
            continue
        spelled.append(word)
        if word in flags:
            following = next(words, None)
            if following is not None and following.lower() in _BOOLEAN_WORDS:
                spelled[-1] = _BOOLEAN_WORDS[following.lower()] + word[2:]
            elif following is not None:
                spelled.append(following)
    return spelled


def _read_argv(argv: Sequence[str], notes: list[Note]) -> _Layer:
    parser = _ArgvParser(prog="tricorn", add_help=False, allow_abbrev=False)
    add_arguments(parser)
    argv = spell_booleans(parser, argv)
    check_options(parser, argv)
    given = vars(parser.parse_args(list(argv)))
    for flag in given.pop(_IGNORED, []):
        notes.append((WARNING, f"{flag} has no meaning for tricorn: ignored ({IGNORED_OPTIONS[flag][1]})"))
    return {name: (raw, _argv_source(name)) for name, raw in given.items()}


def _read_env(env: Mapping[str, str]) -> _Layer:
    layer: _Layer = {}
    for name, setting in SETTINGS.items():
        for variable in (setting.env, *setting.env_fallbacks):
            if variable in env:
                layer[name] = (env[variable], f"from {variable}")
                break
    return layer


def _is_python_config(shown: str) -> bool:
    return shown.endswith(".py") or shown.startswith("python:")


def _read_config_file(given: tuple[object, str] | None, cwd: str, notes: list[Note]) -> _Layer:
    """The settings of the config file named by ``given`` (raw value, source), else of
    ./gunicorn.conf.py, else of pyproject.toml.

    ``--config none`` names no file, which also skips gunicorn.conf.py and pyproject.toml.
    """
    if given is not None:
        shown = _convert("config", *given)
        if shown is None:
            return {}
        if _is_python_config(shown):
            return _read_python_config(shown, cwd, notes)
        document = _load_toml(os.path.join(cwd, shown), shown)
    elif os.path.isfile(os.path.join(cwd, GUNICORN_CONF)):
        found = _read_python_config(GUNICORN_CONF, cwd, notes)
        found["config"] = (GUNICORN_CONF, "found in the working directory (as gunicorn reads it)")
        return found
    else:
        shown = "pyproject.toml"
        path = os.path.join(cwd, shown)
        if not os.path.isfile(path):
            return {}
        document = _load_toml(path, shown)
    tool = document.get("tool")
    table: object = document
    if isinstance(tool, dict):
        table = tool.get("tricorn")
        if table is None:
            if given is None:
                return {}  # a pyproject.toml that does not configure tricorn
            raise ConfigError("config", f"config file {shown} has a [tool] table but no [tool.tricorn]")
    elif given is None:
        return {}
    if not isinstance(table, dict):
        raise ConfigError("config", f"config file {shown}: [tool.tricorn] is not a table")
    source = f"in config file {shown}"
    layer: _Layer = {}
    for key, raw in table.items():
        name = key.replace("-", "_")
        if name not in SETTINGS:
            close = difflib.get_close_matches(name, SETTINGS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"config file {shown}", f"unknown setting {key!r}{hint}")
        if name == "config":
            raise ConfigError(f"config file {shown}", "'config' cannot be set in a config file")
        if name in layer:
            raise ConfigError(f"config file {shown}", f"setting {name!r} is given twice")
        layer[name] = (raw, source)
    return layer


def _load_toml(path: str, shown: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except OSError as exc:
        raise ConfigError("config", f"cannot read config file {shown}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config", f"config file {shown} is not valid TOML: {exc}") from None


# -- gunicorn Python config files ---------------------------------------------------------------------------

# gunicorn's server hooks: functions of a gunicorn config file, run by tricorn.supervisor.hooks.
HOOKS = (
    "on_starting",
    "on_reload",
    "when_ready",
    "pre_fork",
    "post_fork",
    "post_worker_init",
    "worker_int",
    "worker_abort",
    "pre_exec",
    "pre_request",
    "post_request",
    "child_exit",
    "worker_exit",
    "nworkers_changed",
    "on_exit",
)

# The namespaces of the gunicorn config files read by this process, by the name they were given as: the
# hooks come from here (tricorn.supervisor.hooks), so a file is executed once per reading of the settings.
PYTHON_CONFIGS: dict[str, dict[str, Any]] = {}


def _file_keys() -> dict[str, str]:
    keys = {name: name for name in SETTINGS}
    for name, setting in SETTINGS.items():
        for key in setting.file_keys:
            keys.setdefault(key, name)
    return keys


def _read_python_config(shown: str, cwd: str, notes: list[Note]) -> _Layer:
    """The settings of a gunicorn config file (``FILE.py`` or ``python:MODULE``), as gunicorn reads it:
    its module-level names that are gunicorn settings. Hooks are kept (in :data:`PYTHON_CONFIGS`) for
    tricorn.supervisor.hooks; settings that mean nothing here are named in a warning."""
    namespace = _execute_python_config(shown, cwd)
    PYTHON_CONFIGS[shown] = namespace
    keys = _file_keys()
    source = f"in config file {shown}"
    layer: _Layer = {}
    for key, value in namespace.items():
        if key.startswith("_") or key == "config" or isinstance(value, type | types.ModuleType):
            continue
        if key in HOOKS:
            if not callable(value):
                raise ConfigError(f"config file {shown}", f"hook {key!r} is not callable")
            continue
        name = keys.get(key)
        if name is not None:
            if name in layer:
                raise ConfigError(f"config file {shown}", f"setting {name!r} is given twice (as {key!r})")
            layer[name] = (list(value) if isinstance(value, tuple | list) else value, source)
        elif key in IGNORED_KEYS:
            if value not in (None, False, [], (), {}):
                notes.append(
                    (WARNING, f"{shown}: {key!r} has no meaning for tricorn: ignored ({IGNORED_KEYS[key]})")
                )
        elif not callable(value) and key.islower():  # (UPPER_CASE names are the file's own constants)
            close = difflib.get_close_matches(key, keys, n=1)
            hint = f", did you mean {close[0]!r}?" if close else ""
            notes.append(
                (WARNING, f"{shown}: {key!r} is not a setting gunicorn or tricorn has: ignored{hint}")
            )
    notes.append((INFO, f"read settings and hooks from {shown}"))
    return layer


def _execute_python_config(shown: str, cwd: str) -> dict[str, Any]:
    if shown.startswith("python:"):
        module_name = shown.removeprefix("python:")
        if cwd not in sys.path:  # gunicorn imports it from the working directory too
            sys.path.insert(0, cwd)
        try:
            return dict(vars(importlib.import_module(module_name)))
        except Exception as exc:
            raise ConfigError(
                "config", f"cannot import config module {module_name!r}: {type(exc).__name__}: {exc}"
            ) from None
    path = os.path.join(cwd, shown)
    try:
        with open(path, "rb") as file:
            source = file.read()
    except OSError as exc:
        raise ConfigError("config", f"cannot read config file {shown}: {exc.strerror}") from None
    namespace: dict[str, Any] = {"__file__": path, "__name__": "__config__"}
    try:
        exec(compile(source, path, "exec"), namespace)
    except Exception as exc:
        where = f" (line {exc.lineno})" if isinstance(exc, SyntaxError) else ""
        raise ConfigError(
            "config", f"config file {shown} raised {type(exc).__name__}: {exc}{where}"
        ) from None
    return namespace


def _argv_source(name: str) -> str:
    flags = SETTINGS[name].flags
    return f"from {flags[0]}" if flags else "from the command line"


# -- gunicorn's and uvicorn's options that mean nothing here -----------------------------------------------

_FOREGROUND = "tricorn runs in the foreground: let systemd, a container runtime or supervisord manage it"
_STRICT = "requests are parsed strictly, as RFC 9112 says"
_SYSLOG = "there is no syslog handler: use --log-config"
_STATSD = "tricorn sends no statsd metrics"
_TLS_HANDSHAKE = "TLS handshakes are done by asyncio's TLS layer"
# Accepted, each with one warning naming it: option -> (the values it takes, why it means nothing).
IGNORED_OPTIONS: Mapping[str, tuple[int, str]] = MappingProxyType(
    {
        "--daemon": (0, _FOREGROUND),
        "-D": (0, _FOREGROUND),
        "--umask": (1, "the umask is inherited; --unix-socket-permissions sets a unix socket's mode"),
        "-m": (1, "the umask is inherited; --unix-socket-permissions sets a unix socket's mode"),
        "--initgroups": (0, "--user switches to the user's groups"),
        "--worker-tmp-dir": (1, "workers report to the master through a pipe, not a temporary file"),
        "--tmp-upload-dir": (1, "request bodies are streamed to the application, never stored"),
        "--reload-engine": (1, "--reload uses watchfiles when it is installed, else polling"),
        "--reload-extra-file": (1, "use --reload-include GLOB"),
        "--reload-delay": (1, "changes are batched by the reloader"),
        "--spew": (0, "there is no line tracer"),
        "--no-sendfile": (0, "sendfile is used for regular files on plain TCP"),
        "--sendfile": (0, "sendfile is used for regular files on plain TCP"),
        "--enable-stdio-inheritance": (0, "workers inherit stdout and stderr anyway"),
        "-R": (0, "workers inherit stdout and stderr anyway"),
        "--log-syslog": (0, _SYSLOG),
        "--log-syslog-to": (1, _SYSLOG),
        "--log-syslog-prefix": (1, _SYSLOG),
        "--log-syslog-facility": (1, _SYSLOG),
        "--disable-redirect-access-to-syslog": (0, _SYSLOG),
        "--logger-class": (1, "use --log-config"),
        "--statsd-host": (1, _STATSD),
        "--statsd-prefix": (1, _STATSD),
        "--dogstatsd-tags": (1, _STATSD),
        "--ssl-version": (1, "TLS 1.2 and 1.3 are offered, as OpenSSL allows"),
        "--do-handshake-on-connect": (0, _TLS_HANDSHAKE),
        "--suppress-ragged-eofs": (0, _TLS_HANDSHAKE),
        "--header-map": (1, "header names with an underscore are always dropped (gunicorn's 'drop')"),
        "--strip-header-spaces": (0, _STRICT),
        "--permit-obsolete-folding": (0, _STRICT),
        "--permit-unconventional-http-method": (0, _STRICT),
        "--permit-unconventional-http-version": (0, _STRICT),
        "--casefold-http-method": (0, _STRICT),
        "--tolerate-dangerous-framing": (0, _STRICT),
        "--use-colors": (0, "log lines are never coloured"),
        "--no-use-colors": (0, "log lines are never coloured"),
        "--h11-max-incomplete-event-size": (
            1,
            "request heads are bounded by --limit-request-line, --limit-request-fields and "
            "--limit-request-field-size",
        ),
    }
)
# The same, as keys of a gunicorn config file, with a few that have no command-line option.
IGNORED_KEYS: Mapping[str, str] = MappingProxyType(
    {
        **{
            flag.lstrip("-").replace("-", "_"): reason
            for flag, (_, reason) in IGNORED_OPTIONS.items()
            if flag.startswith("--")
        },
        "syslog": _SYSLOG,
        "syslog_addr": _SYSLOG,
        "syslog_prefix": _SYSLOG,
        "syslog_facility": _SYSLOG,
        "logconfig_dict": "use logconfig with a .json, .toml or .yaml file",
        "reload_extra_files": "use reload_include",
        "ssl_context": "the TLS context comes from the ssl settings",
        "default_proc_name": "use proc_name",
        "secure_scheme_headers": "X-Forwarded-Proto and Forwarded are read from forwarded_allow_ips",
        "paste": "name the application as module:attribute",
        "raw_paste_global_conf": "name the application as module:attribute",
    }
)
_IGNORED = "_ignored_options"


class _Ignored(argparse.Action):
    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        seen = getattr(namespace, _IGNORED, [])
        setattr(namespace, _IGNORED, [*seen, option_string])


class _Templated(argparse.Action):
    """An alias flag whose value stands for another (``--uds PATH`` for ``--bind unix:PATH``)."""

    def __init__(self, *args: Any, template: str, repeat: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.template = template
        self.repeat = repeat

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        value = self.template.format(values)
        setattr(namespace, self.dest, [*getattr(namespace, self.dest, []), value] if self.repeat else value)


# -- The command line ----------------------------------------------------------------------------------------


def _default_text(value: object) -> str:
    if value is None or value == ():
        return "none"
    if value == "":
        return "empty"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one argument per setting to ``parser``, in argument groups, generated from :data:`SETTINGS`;
    then gunicorn's and uvicorn's spellings of them (named in the help of each), and their options that
    mean nothing here (:data:`IGNORED_OPTIONS`, collected for one warning each), both hidden from the help.

    Every argument defaults to ``argparse.SUPPRESS``, so the parsed namespace holds only what was given
    (as raw strings, bools or lists of strings, for the settings' converters), and lower layers show
    through for the rest.
    """
    groups: dict[str, argparse._ArgumentGroup] = {}
    for f in dataclasses.fields(Config):
        setting: Setting = f.metadata["tricorn"]
        if setting.group not in groups:
            groups[setting.group] = parser.add_argument_group(setting.group)
        group = groups[setting.group]
        aliases = setting.alias_flags
        also = f"; also {', '.join(aliases)}" if aliases else ""
        # argparse %-formats help strings, so a literal % must be doubled.
        text = f"{setting.help} (default: {_default_text(f.default)}; env: {setting.env}{also})"
        text = text.replace("%", "%%")
        if not setting.flags:
            group.add_argument(
                f.name, nargs="?", default=argparse.SUPPRESS, metavar=setting.metavar, help=text
            )
            continue
        for flags, shown, template in [(setting.flags, text, "{}")] + [
            ((flag,), argparse.SUPPRESS, template) for flag, template in aliases.items()
        ]:
            common: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": shown}
            if isinstance(f.default, bool):
                group.add_argument(*flags, action=argparse.BooleanOptionalAction, **common)
            elif template != "{}":
                group.add_argument(
                    *flags,
                    action=_Templated,
                    template=template,
                    repeat=isinstance(f.default, tuple),
                    metavar=setting.metavar,
                    **common,
                )
            elif isinstance(f.default, tuple):
                group.add_argument(*flags, action="append", metavar=setting.metavar, **common)
            else:
                group.add_argument(*flags, metavar=setting.metavar, **common)
    for flag, (count, _) in IGNORED_OPTIONS.items():
        parser.add_argument(
            flag, nargs=count, action=_Ignored, default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
