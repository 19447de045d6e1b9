"""Logging: the error log, the access log and its formatter, and escaping of untrusted text.

Loggers:

* ``tricorn`` (and so ``tricorn.error`` and every ``tricorn.*`` module logger): stderr, gunicorn's line
  format ``[2026-11-21 05:00:00 +0000] [1234] [INFO] message``, level from ``log_level``.
* ``tricorn.access``: stdout, the message only (an :class:`AccessLogFormatter` line), level INFO,
  disabled when ``access_log`` is off. The access log is independent of ``log_level``, as in gunicorn.

With ``log_format = json`` both write one JSON object a line instead (:class:`JSONFormatter` for the
error log, an access log format of ``json``), for log pipelines; ``access_log_format = json`` does it for
the access log alone. A traceback is a field of its record's object, never lines of its own.

Anything a client controls (path, query, header values, even the client address behind a proxy) goes
through :func:`escape_for_log` before it reaches a log line, so a request cannot forge log lines or send
escape sequences to the terminal of whoever reads the log. Tracebacks are made safe the same way, keeping
their own line breaks: see :func:`format_exception_for_log` and :class:`EscapingFormatter`.
"""

from __future__ import annotations

import base64
import binascii
import configparser
import importlib
import json
import logging
import logging.config
import os
import re
import sys
import time
import tomllib
import traceback
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, TypeAlias

from tricorn.config import Config
from tricorn.errors import ConfigError

__all__ = [
    "TRACE",
    "AccessLogFormatter",
    "EscapingFormatter",
    "JSONFormatter",
    "configure_logging",
    "escape_controls",
    "escape_for_log",
    "format_exception_for_log",
    "peer_for_log",
]

TRACE = 5
logging.addLevelName(TRACE, "TRACE")

LOG_LEVELS: dict[str, int] = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": TRACE,
}

ERROR_LOG_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"
ERROR_LOG_DATEFMT = "%Y-%m-%d %H:%M:%S %z"


# -- Escaping ---------------------------------------------------------------------------------------------

# In ASCII, the C0 controls, DEL, and the two characters that would make the escaping (\) or the quoted
# fields of the access log (") ambiguous. nginx escapes the same set in its access log.
_ASCII_UNSAFE = re.compile(r'[\x00-\x1f\x7f"\\]')


def _escape_char(char: str) -> str:
    code = ord(char)
    if char == "\\":
        return "\\\\"
    if code < 0x100:
        return f"\\x{code:02x}"
    if 0xDC80 <= code <= 0xDCFF:
        # A byte that was not valid UTF-8, decoded with errors="surrogateescape": show the byte.
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def peer_for_log(address: object) -> str:
    """A connection's peer or a request's client as an error log line names it: ``host:port``, or ``-``
    when there is none (no client in the scope, a Unix socket's peer). The host is escaped, as the access
    log's ``h`` is: behind a proxy it is what a header said."""
    if isinstance(address, tuple | list) and len(address) >= 2:
        return f"{escape_for_log(str(address[0]))}:{address[1]}"
    return "-"


def escape_for_log(text: str) -> str:
    """``text`` safe to put in one log line, unchanged if it already is.

    Escaped: control characters (C0, DEL, C1), every other character Python does not consider printable
    (line and paragraph separators, bidi overrides, lone surrogates...), the backslash and the double
    quote. They become ``\\xNN``, ``\\uNNNN`` or ``\\UNNNNNNNN`` (``\\\\`` for a backslash); a lone
    surrogate from ``surrogateescape`` decoding shows as the original byte, ``\\xNN``. Printable
    non-ASCII text (``café``) is kept as is.
    """
    if text.isascii():
        # Fast path: almost every path and header value is plain printable ASCII.
        if _ASCII_UNSAFE.search(text) is None:
            return text
        return _ASCII_UNSAFE.sub(lambda match: _escape_char(match.group()), text)
    return "".join(char if char.isprintable() and char not in '"\\' else _escape_char(char) for char in text)


def _decode_header(value: bytes) -> str:
    return escape_for_log(value.decode("utf-8", "surrogateescape"))


# -- Tracebacks -------------------------------------------------------------------------------------------

ExcInfo: TypeAlias = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]

_ASCII_CONTROLS = re.compile(r"[\x00-\x1f\x7f]")
_ASCII_CONTROLS_BUT_LF = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")


def _escape_unprintable(text: str, keep_line_feeds: bool) -> str:
    # escape_for_log's escapes, without its quoting of " and \: a traceback has no quoted fields, and
    # exception messages quote and backslash a lot (repr()s, paths, SQL, JSON errors).
    if text.isascii():
        controls = _ASCII_CONTROLS_BUT_LF if keep_line_feeds else _ASCII_CONTROLS
        if controls.search(text) is None:
            return text
        return controls.sub(lambda match: _escape_char(match.group()), text)
    return "".join(
        char if char.isprintable() or (keep_line_feeds and char == "\n") else _escape_char(char)
        for char in text
    )


def escape_controls(text: str, keep_line_feeds: bool = False) -> str:
    """``text`` with control and other unprintable characters escaped as :func:`escape_for_log` does, and
    nothing else: quotes and backslashes stay as they are (an app's message, a traceback). With
    ``keep_line_feeds``, line feeds stay too (a multi-line message the app wrote on purpose)."""
    return _escape_unprintable(text, keep_line_feeds)


def _safe_str(value: object, func: Callable[[object], str] = str) -> str:
    try:
        return func(value)
    except Exception:
        return f"<{func.__name__}() failed>"


def _escape_exception_texts(root: traceback.TracebackException) -> bool:
    """Escape, in place, every text of ``root`` and the exceptions chained or grouped under it that
    comes from an exception's value (message, notes, a SyntaxError's text, message and file name);
    False if this Python keeps the message where this function does not look."""
    seen: set[int] = set()
    pending = [root]
    while pending:
        te = pending.pop()
        if id(te) in seen:
            continue
        seen.add(id(te))
        attributes = vars(te)
        # TracebackException keeps str(exc) in _str (checked on 3.11, 3.12 and 3.13); nothing public
        # sets it. Should a Python move it, format_exception_for_log falls back to one escaped line.
        message = attributes.get("_str")
        if not isinstance(message, str):
            return False
        attributes["_str"] = _escape_unprintable(message, keep_line_feeds=False)
        notes = attributes.get("__notes__")
        if notes is not None:
            if isinstance(notes, Sequence) and not isinstance(notes, (str, bytes)):
                texts = [_safe_str(note) for note in notes]
            else:
                texts = [_safe_str(notes, repr)]
            attributes["__notes__"] = [_escape_unprintable(text, keep_line_feeds=False) for text in texts]
        for name in ("text", "msg", "filename"):  # set for SyntaxErrors only
            value = attributes.get(name)
            if isinstance(value, str):
                # A SyntaxError's text ends with the line's own line feed, which the traceback drops.
                text = value.rstrip("\n") if name == "text" else value
                attributes[name] = _escape_unprintable(text, keep_line_feeds=False)
        pending.extend(chained for chained in (te.__cause__, te.__context__) if chained is not None)
        pending.extend(te.exceptions or ())
    return True


def format_exception_for_log(exc_info: ExcInfo) -> str:
    """The traceback logging.Formatter.formatException would give for ``exc_info``, safe to log.

    Its own line breaks are kept, one per frame and source line, as Python prints them. Everything
    that comes from an exception's value (its message, chained and grouped exceptions' messages, notes,
    a SyntaxError's text) is one line: line breaks and every other unprintable character in it are
    escaped as by :func:`escape_for_log` (``\\x0d\\x0a``, ``\\x1b``), and so are unprintable characters in
    source lines. Quotes and backslashes are kept, so an escape typed literally by a client looks like an
    escaped character but cannot break a line. Names from code (modules, classes, functions, files) are
    trusted to hold no line feed. On a Python whose TracebackException keeps the message elsewhere, the
    whole traceback becomes one escaped line: still safe, less readable.
    """
    _, value, tb = exc_info
    if value is None:
        return "NoneType: None"  # exc_info=True outside an except block, as logging writes it
    te = traceback.TracebackException(type(value), value, tb, compact=True)
    escaped = _escape_exception_texts(te)
    text = "".join(te.format()).removesuffix("\n")
    return _escape_unprintable(text, keep_line_feeds=escaped)


class EscapingFormatter(logging.Formatter):
    """A logging.Formatter whose tracebacks and stacks cannot forge log lines or send terminal escapes
    (:func:`format_exception_for_log`). tricorn's error log uses it; a ``log_config`` can name it for
    any handler: ``"()": "tricorn.logs.EscapingFormatter"`` (dictConfig) or
    ``class = tricorn.logs.EscapingFormatter`` (fileConfig).
    """

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info:
            # Another handler's formatter may have cached a raw traceback on the record: format it again.
            record.exc_text = None
        return super().format(record)

    def formatException(self, ei: ExcInfo) -> str:
        return format_exception_for_log(ei)

    def formatStack(self, stack_info: str) -> str:
        return _escape_unprintable(stack_info, keep_line_feeds=True)


def _iso_time(now: float) -> str:
    """``now`` (epoch seconds) as local ISO 8601 with the UTC offset, to the millisecond."""
    t = time.localtime(now)
    offset = t.tm_gmtoff // 60
    sign = "-" if offset < 0 else "+"
    hours, minutes = divmod(abs(offset), 60)
    millis = int((now % 1) * 1000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', t)}.{millis:03d}{sign}{hours:02d}:{minutes:02d}"


def _json_line(entry: dict[str, object]) -> str:
    # ensure_ascii: every control character, line separator and non-ASCII character is a \u escape, so
    # no value can end the line or reach a terminal raw.
    return json.dumps(entry, ensure_ascii=True, separators=(",", ":"), default=str)


class JSONFormatter(logging.Formatter):
    """One JSON object a line: ``time``, ``level``, ``pid``, ``logger``, ``message`` and, when the record
    carries them, ``exception`` (the whole traceback, one string) and ``stack``. A ``log_config`` can name
    it: ``"()": "tricorn.logs.JSONFormatter"``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": _iso_time(record.created),
            "level": record.levelname,
            "pid": record.process,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = format_exception_for_log(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return _json_line(entry)


class _EscapeTracebacks(logging.Filter):
    """Puts the escaped traceback on each record that carries one, before any handler sees it.

    logging.Formatter writes a record's ``exc_text`` when it is set instead of formatting ``exc_info``
    again, so the formatters of whatever handlers a ``log_config`` installs write the escaped text.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info:
            record.exc_text = format_exception_for_log(record.exc_info)
        if record.stack_info:
            record.stack_info = _escape_unprintable(record.stack_info, keep_line_feeds=True)
        return True


# The loggers tricorn's records with exceptions come from: logger filters see only the records made on
# their own logger, not those propagated from below.
_EXCEPTION_LOGGERS = ("tricorn.error", "tricorn.websocket")
_ESCAPE_TRACEBACKS = _EscapeTracebacks()


# -- Access log -------------------------------------------------------------------------------------------


class _Request:
    """One request's facts, as given to AccessLogFormatter.format; atoms read what they need."""

    __slots__ = (
        "client",
        "duration",
        "http_version",
        "method",
        "mount",
        "now",
        "path",
        "query",
        "request_headers",
        "response_bytes",
        "response_headers",
        "status",
    )

    def __init__(
        self,
        client: tuple[str, int] | None,
        method: str,
        path: str,
        query: str,
        http_version: str,
        status: int,
        response_bytes: int,
        request_headers: list[tuple[bytes, bytes]],
        response_headers: list[tuple[bytes, bytes]],
        duration: float,
        now: float,
        mount: str = "/",
    ) -> None:
        self.mount = mount
        self.client = client
        self.method = method
        self.path = path
        self.query = query
        self.http_version = http_version
        self.status = status
        self.response_bytes = response_bytes
        self.request_headers = request_headers
        self.response_headers = response_headers
        self.duration = duration
        self.now = now


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str:
    values = [value for key, value in headers if key == name]
    if not values:
        return "-"
    return _decode_header(b",".join(values))


def _version(version: str) -> str:
    """``HTTP/1.1`` from ASGI's ``1.1``; ``-`` stays (a refused request whose version was not understood)."""
    return version if version == "-" or version.startswith("HTTP/") else f"HTTP/{version}"


def _protocol(r: _Request) -> str:
    return escape_for_log(_version(r.http_version))


def _request_line(r: _Request) -> str:
    target = f"{r.path}?{r.query}" if r.query else r.path
    return f"{escape_for_log(r.method)} {escape_for_log(target)} {_protocol(r)}"


def _user(r: _Request) -> str:
    authorization = _header(r.request_headers, b"authorization")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "basic":
        return "-"
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8", "surrogateescape")
    except (binascii.Error, ValueError):
        return "-"
    user, colon, _ = decoded.partition(":")
    return escape_for_log(user) if colon and user else "-"


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _format_time(now: float) -> str:
    # Month names from a table, not strftime's %b, which follows LC_TIME.
    t = time.localtime(now)
    offset = t.tm_gmtoff // 60
    sign = "-" if offset < 0 else "+"
    hours, minutes = divmod(abs(offset), 60)
    return (
        f"[{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year:04d}:"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} {sign}{hours:02d}{minutes:02d}]"
    )


_Atom = Callable[[_Request], object]

_ATOMS: dict[str, _Atom] = {
    "h": lambda r: escape_for_log(r.client[0]) if r.client else "-",
    "l": lambda r: "-",
    "u": _user,
    # "t" is handled by AccessLogFormatter itself: it caches the formatted time for a second.
    "r": _request_line,
    "m": lambda r: escape_for_log(r.method),
    "U": lambda r: escape_for_log(r.path),
    "q": lambda r: escape_for_log(r.query),
    "H": _protocol,
    "s": lambda r: r.status,
    "B": lambda r: r.response_bytes,
    "b": lambda r: r.response_bytes or "-",
    "f": lambda r: _header(r.request_headers, b"referer"),
    "a": lambda r: _header(r.request_headers, b"user-agent"),
    "T": lambda r: int(r.duration),
    "M": lambda r: int(r.duration * 1_000),
    "D": lambda r: int(r.duration * 1_000_000),
    "L": lambda r: f"{r.duration:.6f}",
    "p": lambda r: f"<{os.getpid()}>",
    "mount": lambda r: r.mount,  # the prefix of the app, static or CGI directory that served it (--mount)
}

# %(name)X conversions and %% in a format string; anything else after a % is an error.
_SPEC = re.compile(r"%(?:%|\((?P<key>[^)]*)\)[#0 +-]*(?:\d+)?(?:\.\d+)?[diouxXeEfFgGcrsa])")
_HEADER_ATOM = re.compile(r"\{(?P<name>[^}]+)\}(?P<kind>[ioe])")


def _atom(key: str) -> _Atom:
    if key in _ATOMS:
        return _ATOMS[key]
    match = _HEADER_ATOM.fullmatch(key)
    if match is None:
        known = ", ".join(["t", *_ATOMS, "{header}i", "{header}o"])
        raise ConfigError("access_log_format", f"unknown atom {key!r} (known: {known})")
    name = match["name"].strip().lower().encode("latin-1", "replace")
    if match["kind"] == "i":
        return lambda r: _header(r.request_headers, name)
    if match["kind"] == "o":
        return lambda r: _header(r.response_headers, name)
    # gunicorn's {name}e reads the WSGI environ; tricorn has none to offer, so it logs "-" like a
    # missing header (formats written for gunicorn keep working).
    return lambda r: "-"


# The access_log_format that writes each record as a JSON object (see _json_access).
JSON_ACCESS_LOG = "json"


def _json_header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    values = [value for key, value in headers if key == name]
    return b",".join(values).decode("utf-8", "backslashreplace") if values else None


def _json_access(r: _Request) -> str:
    client = r.client
    return _json_line(
        {
            "time": _iso_time(r.now),
            "client": client[0] if client else None,
            "client_port": client[1] if client else None,
            "method": r.method,
            "path": r.path,
            "query": r.query,
            "protocol": _version(r.http_version),
            "status": r.status,
            "bytes": r.response_bytes,
            "duration": round(r.duration, 6),
            "referer": _json_header(r.request_headers, b"referer"),
            "user_agent": _json_header(r.request_headers, b"user-agent"),
            "pid": os.getpid(),
        }
    )


def access_log_formatter(config: Config) -> AccessLogFormatter:
    """The access-log formatter ``config`` asks for (JSON objects under ``log_format = json``)."""
    return AccessLogFormatter(JSON_ACCESS_LOG if config.log_format == "json" else config.access_log_format)


class AccessLogFormatter:
    """Formats one access-log line per request from a gunicorn-style ``access_log_format``.

    The format is parsed once, here: ``format`` computes only the atoms the format uses. Raises
    ConfigError("access_log_format", ...) for a malformed format or an unknown atom.

    Atoms: h client address, l ``-``, u basic-auth user, t ``[21/Nov/2026:05:00:00 +0000]``,
    r request line, m method, U path, q query, H protocol, s status, B response bytes, b bytes or ``-``,
    f referer, a user agent, T seconds, M milliseconds, D microseconds, L seconds as a decimal,
    p ``<pid>``, ``{name}i`` a request header, ``{name}o`` a response header (``-`` when missing).
    Client-controlled text is passed through :func:`escape_for_log`.
    """

    __slots__ = ("_atoms", "_format", "_json", "_time", "_time_second", "_uses_time")

    def __init__(self, access_log_format: str) -> None:
        self._json = access_log_format == JSON_ACCESS_LOG
        atoms: dict[str, _Atom] = {}
        uses_time = False
        position = 0
        for match in _SPEC.finditer(access_log_format):
            self._check_literal(access_log_format, position, match.start())
            position = match.end()
            key = match["key"]
            if key == "t":
                uses_time = True
            elif key is not None and key not in atoms:
                atoms[key] = _atom(key)
        self._check_literal(access_log_format, position, len(access_log_format))
        self._format = access_log_format
        self._atoms = tuple(atoms.items())
        self._uses_time = uses_time
        self._time_second = -1
        self._time = ""
        try:
            self.format(
                client=("127.0.0.1", 1),
                method="GET",
                path="/",
                query="",
                http_version="1.1",
                status=200,
                response_bytes=0,
                request_headers=[],
                response_headers=[],
                duration=0.0,
                now=0.0,
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError("access_log_format", f"{access_log_format!r}: {exc}") from None

    @staticmethod
    def _check_literal(fmt: str, start: int, end: int) -> None:
        stray = fmt.find("%", start, end)
        if stray != -1:
            raise ConfigError(
                "access_log_format",
                f"{fmt!r} has a bad %-sequence at position {stray}; use %(atom)s, or %% for a literal %",
            )

    def format(
        self,
        *,
        client: tuple[str, int] | None,
        method: str,
        path: str,
        query: str,
        http_version: str,
        status: int,
        response_bytes: int,
        request_headers: list[tuple[bytes, bytes]],
        response_headers: list[tuple[bytes, bytes]],
        duration: float,
        now: float | None = None,
        mount: str = "/",
    ) -> str:
        """One access-log line. ``http_version`` as in ASGI (``"1.1"``); header names lowercase bytes;
        ``duration`` in seconds; ``now`` (the time to log, default the current time) in epoch seconds.
        """
        if now is None:
            now = time.time()
        request = _Request(
            client,
            method,
            path,
            query,
            http_version,
            status,
            response_bytes,
            request_headers,
            response_headers,
            duration,
            now,
            mount,
        )
        if self._json:
            return _json_access(request)
        values = {key: atom(request) for key, atom in self._atoms}
        if self._uses_time:
            # Formatting the time is the priciest atom and changes once a second: cache it.
            second = int(now)
            if second != self._time_second:
                self._time = _format_time(second)
                self._time_second = second
            values["t"] = self._time
        return self._format % values


# -- Setup ------------------------------------------------------------------------------------------------


def configure_logging(config: Config, handlers: bool = True) -> None:
    """Set up logging for ``config``; safe to call again (it replaces what it set up before).

    ``handlers=False`` is for a server inside a program of its own (``tricorn.serve``): tricorn's loggers
    get their levels but no handlers, and their records go to the program's own logging setup (pytest's
    capture, a notebook's), as a library's should.

    Without ``log_config``, ``error_log_file`` and ``access_log_file`` name files to write to instead of
    stderr and stdout (``capture_output`` sends the process's own stdout and stderr to the error log file
    too). With ``log_config``, that file is the whole logging setup: ``.json``, ``.toml`` and ``.yaml``
    files are dictConfig dictionaries (``disable_existing_loggers`` defaults to false), anything else is a
    fileConfig ini file; a missing or bad file raises ConfigError("log_config", ...). Without it, tricorn
    logs as described in this module's docstring. Either way, ``access_log = false`` disables
    ``tricorn.access``, and the records tricorn logs with an exception carry its traceback escaped
    (:func:`format_exception_for_log`) for whatever handlers the setup has.
    """
    access = logging.getLogger("tricorn.access")
    if config.log_config is not None:
        _load_log_config(config.log_config)
    elif not handlers:
        logging.getLogger("tricorn").setLevel(LOG_LEVELS[config.log_level])
    else:
        error = logging.getLogger("tricorn")
        formatter: logging.Formatter = (
            JSONFormatter()
            if config.log_format == "json"
            else EscapingFormatter(ERROR_LOG_FORMAT, ERROR_LOG_DATEFMT)
        )
        error_handler = _handler(config.error_log_file, sys.stderr, "error_log_file")
        _replace_handler(error, error_handler, formatter)
        error.setLevel(LOG_LEVELS[config.log_level])
        logging.getLogger("tricorn.error").setLevel(logging.NOTSET)
        access_handler = _handler(config.access_log_file, sys.stdout, "access_log_file")
        _replace_handler(access, access_handler, logging.Formatter("%(message)s"))
        access.setLevel(logging.INFO)
        if (
            config.capture_output
            and isinstance(error_handler, logging.FileHandler)
            and error_handler.stream is not None
        ):
            # gunicorn's capture_output: what the application prints goes to the error log file too.
            error_handler.flush()
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
                os.dup2(error_handler.stream.fileno(), stream.fileno())
    access.disabled = not config.access_log
    for name in _EXCEPTION_LOGGERS:
        logging.getLogger(name).addFilter(_ESCAPE_TRACEBACKS)  # once: addFilter skips a filter it has


def _handler(path: str | None, stream: Any, setting: str) -> logging.Handler:
    """A handler writing to ``path`` (appended to; reopened on SIGUSR1), or to ``stream`` for None or
    ``-``."""
    if path is None or path == "-":
        return logging.StreamHandler(stream)
    try:
        return logging.FileHandler(path, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(setting, f"cannot open {path!r}: {exc.strerror}") from None


def _replace_handler(logger: logging.Logger, handler: logging.Handler, formatter: logging.Formatter) -> None:
    for old in logger.handlers[:]:
        logger.removeHandler(old)
        if isinstance(old, logging.FileHandler):
            old.close()
    handler.setFormatter(formatter)
    logger.addHandler(handler)
    logger.propagate = False


def check_log_config(path: str) -> None:
    """Load the ``log_config`` file once, so that a bad one is reported before anything starts (raises
    ConfigError("log_config", ...)); :func:`configure_logging` loads it again in the serving process."""
    _load_log_config(path)


def _load_log_config(path: str) -> None:
    if not os.path.isfile(path):
        raise ConfigError("log_config", f"{path!r} does not exist or is not a file")
    extension = os.path.splitext(path)[1].lower()
    try:
        if extension in (".json", ".toml", ".yaml", ".yml"):
            with open(path, "rb") as file:
                if extension == ".json":
                    loaded = json.load(file)
                elif extension == ".toml":
                    loaded = tomllib.load(file)
                else:
                    loaded = _load_yaml(path, file.read())
            if not isinstance(loaded, dict):
                raise ValueError("the file does not hold a dictConfig dictionary")
            loaded.setdefault("disable_existing_loggers", False)
            logging.config.dictConfig(loaded)
        else:
            logging.config.fileConfig(path, disable_existing_loggers=False, encoding="utf-8")
    except (
        OSError,
        ValueError,
        TypeError,
        KeyError,
        AttributeError,
        ImportError,
        RuntimeError,
        configparser.Error,
    ) as exc:
        # json and tomllib decode errors are ValueErrors; dictConfig wraps its errors in ValueError;
        # fileConfig lets KeyError (missing section), configparser errors and, for an empty file,
        # RuntimeError through.
        raise ConfigError("log_config", f"cannot load {path!r}: {exc!r}") from None


def _load_yaml(path: str, text: bytes) -> object:
    # uvicorn's --log-config takes YAML too; PyYAML is an optional extra, as there.
    try:
        yaml = importlib.import_module("yaml")
    except ImportError:
        raise ConfigError(
            "log_config", f"{path!r} is YAML, which needs PyYAML: pip install 'tricorn[yaml]'"
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        message = " ".join(str(exc).split())
        raise ConfigError("log_config", f"{path!r} is not valid YAML: {message}") from None
