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
import ipaddress
import math
import os
import re
import sys
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, NoReturn, get_args

from tricorn.errors import ConfigError

__all__ = [
    "SETTINGS",
    "BindAddress",
    "Config",
    "Setting",
    "add_arguments",
]

Interface = Literal["auto", "asgi", "wsgi"]
Lifespan = Literal["auto", "on", "off"]
HttpImplementation = Literal["auto", "httptools", "h11"]
LoopImplementation = Literal["auto", "uvloop", "asyncio"]
WsImplementation = Literal["auto", "none", "websockets"]
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
_APP_SPEC = re.compile(rf"{_IDENTIFIERS}:{_IDENTIFIERS}(?:\(\))?")


def to_app_spec(name: str, value: object) -> str:
    text = to_str(name, value).strip()
    if not _APP_SPEC.fullmatch(text):
        raise ConfigError(
            name,
            f"{value!r} is not in the form module:attribute "
            "(e.g. myproject.main:app, or myproject.main:create_app() for a factory)",
        )
    return text


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
    """

    group: str
    help: str
    env: str
    convert: Converter
    flags: tuple[str, ...] = ()
    metavar: str | None = None
    choices: tuple[str, ...] = ()
    env_fallbacks: tuple[str, ...] = ()


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
) -> dict[str, Setting]:
    """The metadata of a Config field: ``field(default=..., metadata=_setting(...))``."""
    if convert is None:
        if not choices:
            raise TypeError("a setting needs a converter or choices")
        convert = one_of(choices)
        metavar = metavar or "{" + ",".join(choices) + "}"
    return {"tricorn": Setting(group, help, env, convert, flags, metavar, choices, env_fallbacks)}


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
_BINDING = "Binding"
_TLS = "TLS"
_PROXIES = "Proxies"
_PROTOCOL = "Protocol"
_HTTP2 = "HTTP/2"
_WEBSOCKET = "WebSocket"
_TIMEOUTS = "Timeouts"
_LIMITS = "Limits"
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
            "module:factory() calls a factory that returns the application",
            env="TRICORN_APP",
            metavar="APP",
            convert=to_app_spec,
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
            help="the application's interface; auto inspects the application",
            env="TRICORN_INTERFACE",
            flags=("--interface",),
            choices=INTERFACES,
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
            metavar="N",
            convert=optional(to_int(1)),
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
    log_config: str | None = field(
        default=None,
        metadata=_setting(
            group=_LOGGING,
            help="a logging configuration file (.json or .toml for dictConfig, .ini for fileConfig) used "
            "instead of tricorn's own logging setup",
            env="TRICORN_LOG_CONFIG",
            flags=("--log-config",),
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
            metavar="GROUP",
            convert=optional(to_identity),
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
            metavar="GLOB",
            convert=to_str_tuple,
        ),
    )

    # Configuration
    config: str | None = field(
        default=None,
        metadata=_setting(
            group=_CONFIGURATION,
            help="a TOML file of settings (keys are setting names, optionally under [tool.tricorn]); "
            "without it, [tool.tricorn] in ./pyproject.toml is used if present",
            env="TRICORN_CONFIG",
            flags=("--config", "-c"),
            metavar="FILE",
            convert=optional(to_path),
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

    @property
    def app_mounts(self) -> tuple[tuple[str, str, str], ...]:
        """The ``mount`` entries as (prefix as keyed: "/" or "/a/b"; module:app spec; interface)."""
        return tuple(split_mount(entry) for entry in self.mount)

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
        ``--config`` and ``pyproject.toml`` are looked up) to the working directory. Raises ConfigError
        for a bad value in any layer, even one a higher layer overrides, naming where it came from.
        """
        from_argv = _read_argv(sys.argv[1:] if argv is None else argv)
        from_env = _read_env(os.environ if env is None else env)
        config_file = from_argv.get("config") or from_env.get("config")
        from_file = _read_config_file(config_file, os.getcwd() if cwd is None else cwd)
        values: dict[str, Any] = {}
        for layer in (from_file, from_env, from_argv):
            for name, (raw, source) in layer.items():
                values[name] = _convert(name, raw, source)
        return cls(**values)


# The settings in field order, by field name. Field order is --help order, and groups appear in the
# order of their first field.
SETTINGS: Mapping[str, Setting] = MappingProxyType(
    {f.name: f.metadata["tricorn"] for f in dataclasses.fields(Config)}
)

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
        raise ConfigError("command line", message)


def _read_argv(argv: Sequence[str]) -> _Layer:
    parser = _ArgvParser(prog="tricorn", add_help=False, allow_abbrev=False)
    add_arguments(parser)
    given = vars(parser.parse_args(list(argv)))
    return {name: (raw, _argv_source(name)) for name, raw in given.items()}


def _read_env(env: Mapping[str, str]) -> _Layer:
    layer: _Layer = {}
    for name, setting in SETTINGS.items():
        for variable in (setting.env, *setting.env_fallbacks):
            if variable in env:
                layer[name] = (env[variable], f"from {variable}")
                break
    return layer


def _read_config_file(given: tuple[object, str] | None, cwd: str) -> _Layer:
    """The settings of the config file named by ``given`` (raw value, source), else of pyproject.toml.

    ``--config none`` names no file, which also skips pyproject.toml.
    """
    if given is not None:
        shown = _convert("config", *given)
        if shown is None:
            return {}
        document = _load_toml(os.path.join(cwd, shown), shown)
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


def _argv_source(name: str) -> str:
    flags = SETTINGS[name].flags
    return f"from {flags[0]}" if flags else "from the command line"


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
    """Add one argument per setting to ``parser``, in argument groups, generated from :data:`SETTINGS`.

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
        # argparse %-formats help strings, so a literal % must be doubled.
        text = f"{setting.help} (default: {_default_text(f.default)}; env: {setting.env})"
        text = text.replace("%", "%%")
        if not setting.flags:
            group.add_argument(
                f.name, nargs="?", default=argparse.SUPPRESS, metavar=setting.metavar, help=text
            )
        elif isinstance(f.default, bool):
            group.add_argument(
                *setting.flags,
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=text,
            )
        elif isinstance(f.default, tuple):
            group.add_argument(
                *setting.flags,
                dest=f.name,
                action="append",
                default=argparse.SUPPRESS,
                metavar=setting.metavar,
                help=text,
            )
        else:
            group.add_argument(
                *setting.flags, dest=f.name, default=argparse.SUPPRESS, metavar=setting.metavar, help=text
            )
