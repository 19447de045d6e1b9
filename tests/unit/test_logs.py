"""tricorn.logs: escaping, the access-log formatter and the logging setup."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import re
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tricorn.config import DEFAULT_ACCESS_LOG_FORMAT, Config
from tricorn.errors import ConfigError
from tricorn.logs import (
    TRACE,
    AccessLogFormatter,
    EscapingFormatter,
    configure_logging,
    escape_for_log,
    format_exception_for_log,
    peer_for_log,
)

# -- escape_for_log ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/plain/path?a=1&b=2", "/plain/path?a=1&b=2"),
        ("", ""),
        ("café/日本", "café/日本"),
        ("a\x1b[31mred", "a\\x1b[31mred"),
        ("line\r\nforged", "line\\x0d\\x0aforged"),
        ("nul\x00del\x7f", "nul\\x00del\\x7f"),
        ('quote"back\\slash', "quote\\x22back\\\\slash"),
        ("c1\x85control", "c1\\x85control"),
        ("bidi\u202eoverride", "bidi\\u202eoverride"),
        ("separator\u2028line", "separator\\u2028line"),
        ("tab\there", "tab\\x09here"),
        ("é\x1b", "é\\x1b"),
        ("bad byte \udcff", "bad byte \\xff"),
        ("lone \ud800 surrogate", "lone \\ud800 surrogate"),
        ("\U000e0001 tag", "\\U000e0001 tag"),
    ],
)
def test_escape_for_log(text: str, expected: str) -> None:
    assert escape_for_log(text) == expected


def test_escaped_text_is_printable_and_one_line() -> None:
    every_char = "".join(chr(code) for code in range(0x3000)) + "\udc80\udcff"
    escaped = escape_for_log(every_char)
    assert escaped.isprintable()
    escaped.encode("utf-8")  # no lone surrogates left


def test_plain_text_is_returned_as_is() -> None:
    text = "/unchanged"
    assert escape_for_log(text) is text


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        (("203.0.113.7", 51234), "203.0.113.7:51234"),
        (["203.0.113.7", 51234], "203.0.113.7:51234"),  # an ASGI scope's client may be a list
        (("2001:db8::1", 443, 0, 0), "2001:db8::1:443"),  # an IPv6 peername
        (("evil\r\nhost", 1), "evil\\x0d\\x0ahost:1"),  # a client set by whatever came before the app
        (None, "-"),
        ("", "-"),  # a Unix socket's peername
        ((), "-"),
    ],
)
def test_peer_for_log(address: object, expected: str) -> None:
    assert peer_for_log(address) == expected


# -- AccessLogFormatter -----------------------------------------------------------------------------------

REQUEST: dict[str, Any] = {
    "client": ("203.0.113.7", 51234),
    "method": "GET",
    "path": "/items/42",
    "query": "q=1",
    "http_version": "1.1",
    "status": 200,
    "response_bytes": 1234,
    "request_headers": [
        (b"host", b"example.com"),
        (b"referer", b"https://example.com/"),
        (b"user-agent", b"curl/8.5.0"),
        (b"x-request-id", b"abc"),
    ],
    "response_headers": [(b"content-type", b"text/plain"), (b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")],
    "duration": 1.5,
    "now": 1_700_000_000.0,
}


def format_with(fmt: str, **changes: Any) -> str:
    return AccessLogFormatter(fmt).format(**{**REQUEST, **changes})


def expected_time(now: float) -> str:
    # The C locale's strftime (tests do not call setlocale) as the independent oracle.
    return time.strftime("[%d/%b/%Y:%H:%M:%S %z]", time.localtime(now))


def test_default_format() -> None:
    line = format_with(DEFAULT_ACCESS_LOG_FORMAT)
    assert line == (
        f"203.0.113.7 - - {expected_time(REQUEST['now'])} "
        '"GET /items/42?q=1 HTTP/1.1" 200 1234 "https://example.com/" "curl/8.5.0"'
    )


@pytest.mark.parametrize(
    ("atom", "expected"),
    [
        ("h", "203.0.113.7"),
        ("l", "-"),
        ("u", "-"),
        ("r", "GET /items/42?q=1 HTTP/1.1"),
        ("m", "GET"),
        ("U", "/items/42"),
        ("q", "q=1"),
        ("H", "HTTP/1.1"),
        ("s", "200"),
        ("B", "1234"),
        ("b", "1234"),
        ("f", "https://example.com/"),
        ("a", "curl/8.5.0"),
        ("T", "1"),
        ("M", "1500"),
        ("D", "1500000"),
        ("L", "1.500000"),
        ("p", "<PID>"),
        ("{x-request-id}i", "abc"),
        ("{X-Request-ID}i", "abc"),
        ("{missing}i", "-"),
        ("{content-type}o", "text/plain"),
        ("{set-cookie}o", "a=1,b=2"),
        ("{REMOTE_ADDR}e", "-"),
    ],
)
def test_atoms(atom: str, expected: str) -> None:
    # The pid is filled in at run time so that xdist workers collect identical test ids.
    assert format_with(f"%({atom})s") == expected.replace("<PID>", f"<{os.getpid()}>")


REFUSED: dict[str, Any] = {"method": "-", "path": "-", "query": "", "http_version": "-", "status": 400}


def test_a_refused_request_has_dashes_for_its_request_line_in_text_and_json() -> None:
    assert format_with("%(r)s %(H)s %(s)s", **REFUSED) == "- - - - 400"
    entry = json.loads(format_with("json", **REFUSED))
    assert (entry["method"], entry["path"], entry["protocol"], entry["status"]) == ("-", "-", "-", 400)
    assert json.loads(format_with("json"))["protocol"] == "HTTP/1.1"


def test_time_atom_follows_now_and_is_cached_per_second() -> None:
    formatter = AccessLogFormatter("%(t)s")
    now = REQUEST["now"]
    first = formatter.format(**{**REQUEST, "now": now})
    assert first == expected_time(now)
    assert re.fullmatch(r"\[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]", first)
    assert formatter.format(**{**REQUEST, "now": now + 0.9}) == first
    assert formatter.format(**{**REQUEST, "now": now + 61}) == expected_time(now + 61)
    assert AccessLogFormatter("%(t)s").format(**{**REQUEST, "now": None}).startswith("[")


def test_missing_values() -> None:
    fmt = '%(h)s %(b)s %(r)s "%(f)s" "%(a)s"'
    line = format_with(fmt, client=None, response_bytes=0, query="", request_headers=[])
    assert line == '- - GET /items/42 HTTP/1.1 "-" "-"'


def test_basic_auth_user() -> None:
    def auth(value: bytes) -> list[tuple[bytes, bytes]]:
        return [(b"authorization", value)]

    token = base64.b64encode(b"alice:secret")
    assert format_with("%(u)s", request_headers=auth(b"Basic " + token)) == "alice"
    assert format_with("%(u)s", request_headers=auth(b"basic " + token)) == "alice"
    assert format_with("%(u)s", request_headers=auth(b"Bearer " + token)) == "-"
    assert format_with("%(u)s", request_headers=auth(b"Basic not-base64!")) == "-"
    assert format_with("%(u)s", request_headers=auth(b"Basic " + base64.b64encode(b"nocolon"))) == "-"
    hostile = base64.b64encode(b"eve\x1b[2J\n:x")
    assert format_with("%(u)s", request_headers=auth(b"Basic " + hostile)) == "eve\\x1b[2J\\x0a"


def test_hostile_request_cannot_forge_lines_or_terminal_escapes() -> None:
    line = format_with(
        DEFAULT_ACCESS_LOG_FORMAT + " %({x-evil}i)s %(U)s %(q)s %(m)s",
        client=("\x1b]0;owned\x07", 1),
        method="GE\rT",
        path='/a"\n127.0.0.1 - - [fake] "GET / HTTP/1.1" 200 0',
        query="x=\x1b[2J",
        request_headers=[
            (b"user-agent", b"ua\r\nforged: 1"),
            (b"referer", b"\xff\xfe\x1b"),
            (b"x-evil", "é\u2028".encode()),
        ],
    )
    assert "\n" not in line and "\r" not in line and "\x1b" not in line and "\x07" not in line
    assert line.isprintable()
    assert "\\x1b]0;owned\\x07" in line
    assert (
        '"GE\\x0dT /a\\x22\\x0a127.0.0.1 - - [fake] \\x22GET / HTTP/1.1\\x22 200 0?x=\\x1b[2J HTTP/1.1"'
        in line
    )
    assert '"ua\\x0d\\x0aforged: 1"' in line
    assert '"\\xff\\xfe\\x1b"' in line
    assert "é\\u2028" in line


def test_http_version_may_be_given_with_its_prefix() -> None:
    assert format_with("%(H)s", http_version="HTTP/1.0") == "HTTP/1.0"
    assert format_with("%(H)s", http_version="2") == "HTTP/2"


def test_format_specs_and_literal_percent() -> None:
    assert format_with("%(s)d %(B)05d %(T)s%% %(h)-12s|") == "200 01234 1% 203.0.113.7 |"


@pytest.mark.parametrize(
    ("fmt", "message"),
    [
        (
            "%(zz)s",
            "access_log_format: unknown atom 'zz' (known: t, h, l, u, r, m, U, q, H, s, B, b, f, a, T, M, D, L, p, mount, {header}i, {header}o)",
        ),
        (
            "%(h)s 100%",
            "access_log_format: '%(h)s 100%' has a bad %-sequence at position 9; use %(atom)s, or %% for a literal %",
        ),
        (
            "%(h",
            "access_log_format: '%(h' has a bad %-sequence at position 0; use %(atom)s, or %% for a literal %",
        ),
        (
            "%s",
            "access_log_format: '%s' has a bad %-sequence at position 0; use %(atom)s, or %% for a literal %",
        ),
        ("%(h)d", "access_log_format: '%(h)d': %d format: a real number is required, not str"),
    ],
)
def test_bad_formats(fmt: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        AccessLogFormatter(fmt)
    assert str(info.value) == message


# -- configure_logging ------------------------------------------------------------------------------------

OUR_LOGGERS = ["", "tricorn", "tricorn.error", "tricorn.access", "tricorn.test", "tricorn.websocket", "app"]


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Put the loggers these tests touch back as they were, closing handlers the tests created."""
    loggers = [logging.getLogger(name) for name in OUR_LOGGERS]
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate, lg.disabled, lg.filters[:]) for lg in loggers]
    yield
    for logger, handlers, level, propagate, disabled, filters in saved:
        logger.filters[:] = filters
        for handler in logger.handlers[:]:
            if handler not in handlers:
                logger.removeHandler(handler)
                handler.close()
        for handler in handlers:
            if handler not in logger.handlers:
                logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
        logger.disabled = disabled


ERROR_LINE = re.compile(r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] \[(\d+)\] \[([A-Z]+)\] (.*)")


def test_default_setup(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Config())
    logging.getLogger("tricorn.error").info("started")
    logging.getLogger("tricorn.io.something").warning("from a module logger")
    logging.getLogger("tricorn.error").debug("hidden")
    logging.getLogger("tricorn.access").info('1.2.3.4 - - "GET / HTTP/1.1" 200')
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 2
    first, second = (ERROR_LINE.fullmatch(line) for line in lines)
    assert first is not None and second is not None
    assert first.groups() == (str(os.getpid()), "INFO", "started")
    assert second.groups() == (str(os.getpid()), "WARNING", "from a module logger")
    assert captured.out == '1.2.3.4 - - "GET / HTTP/1.1" 200\n'


def test_log_level_and_trace(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Config(log_level="trace"))
    logging.getLogger("tricorn.error").log(TRACE, "tiny detail")
    assert ERROR_LINE.fullmatch(capsys.readouterr().err.strip()).groups()[1:] == ("TRACE", "tiny detail")  # type: ignore[union-attr]
    configure_logging(Config(log_level="warning"))
    logging.getLogger("tricorn.error").info("hidden")
    logging.getLogger("tricorn.access").info("access lines do not follow log_level")
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out == "access lines do not follow log_level\n"


def test_access_log_off(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Config(access_log=False))
    logging.getLogger("tricorn.access").info("not written")
    assert capsys.readouterr().out == ""
    configure_logging(Config(access_log=True))
    logging.getLogger("tricorn.access").info("written")
    assert capsys.readouterr().out == "written\n"


def test_configuring_twice_does_not_duplicate_lines(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Config())
    configure_logging(Config())
    logging.getLogger("tricorn.error").warning("once")
    assert len(capsys.readouterr().err.splitlines()) == 1


def dict_config(log_file: Path) -> dict[str, Any]:
    return {
        "version": 1,
        "formatters": {"plain": {"format": "%(levelname)s %(name)s %(message)s"}},
        "handlers": {
            "file": {"class": "logging.FileHandler", "filename": str(log_file), "formatter": "plain"}
        },
        "loggers": {"tricorn.test": {"handlers": ["file"], "level": "DEBUG", "propagate": False}},
    }


def test_log_config_json(tmp_path: Path) -> None:
    log_file = tmp_path / "out.log"
    path = tmp_path / "logging.json"
    path.write_text(json.dumps(dict_config(log_file)), encoding="utf-8")
    configure_logging(Config(log_config=str(path)))
    logging.getLogger("tricorn.test").debug("via json")
    assert log_file.read_text(encoding="utf-8") == "DEBUG tricorn.test via json\n"


def test_log_config_toml(tmp_path: Path) -> None:
    log_file = tmp_path / "out.log"
    path = tmp_path / "logging.toml"
    path.write_text(
        f"""
version = 1
[formatters.plain]
format = "%(levelname)s %(name)s %(message)s"
[handlers.file]
class = "logging.FileHandler"
filename = {json.dumps(str(log_file))}
formatter = "plain"
[loggers."tricorn.test"]
handlers = ["file"]
level = "INFO"
propagate = false
""",
        encoding="utf-8",
    )
    configure_logging(Config(log_config=str(path)))
    logging.getLogger("tricorn.test").debug("below level")
    logging.getLogger("tricorn.test").info("via toml")
    assert log_file.read_text(encoding="utf-8") == "INFO tricorn.test via toml\n"


def test_log_config_ini(tmp_path: Path) -> None:
    log_file = tmp_path / "out.log"
    path = tmp_path / "logging.ini"
    path.write_text(
        f"""
[loggers]
keys = root, test

[handlers]
keys = file

[formatters]
keys = plain

[logger_root]
level = WARNING
handlers =

[logger_test]
level = DEBUG
handlers = file
qualname = tricorn.test
propagate = 0

[handler_file]
class = FileHandler
formatter = plain
args = ({str(log_file)!r},)

[formatter_plain]
format = %(levelname)s %(name)s %(message)s
""",
        encoding="utf-8",
    )
    configure_logging(Config(log_config=str(path)))
    logging.getLogger("tricorn.test").debug("via ini")
    assert log_file.read_text(encoding="utf-8") == "DEBUG tricorn.test via ini\n"


def test_log_config_keeps_access_log_switch(tmp_path: Path) -> None:
    path = tmp_path / "logging.json"
    path.write_text(json.dumps({"version": 1}), encoding="utf-8")
    configure_logging(Config(log_config=str(path), access_log=False))
    assert logging.getLogger("tricorn.access").disabled


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("missing.json", None, "does not exist or is not a file"),
        ("bad.json", "{not json", "cannot load"),
        ("list.json", "[1, 2]", "does not hold a dictConfig dictionary"),
        ("noversion.json", "{}", "cannot load"),
        ("bad.toml", "version = ", "cannot load"),
        ("badclass.toml", 'version = 1\n[handlers.h]\nclass = "no.such.Handler"\n', "cannot load"),
        ("empty.ini", "", "cannot load"),
        ("bad.conf", "[loggers]\nkeys = root\n", "cannot load"),
    ],
)
def test_bad_log_config(tmp_path: Path, name: str, text: str | None, message: str) -> None:
    path = tmp_path / name
    if text is not None:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        configure_logging(Config(log_config=str(path)))
    assert str(info.value).startswith("log_config: ")
    assert message in str(info.value)
    assert "\n" not in str(info.value)


# -- Tracebacks -------------------------------------------------------------------------------------------

FORGED = "[2026-01-01 00:00:00 +0000] [1] [ERROR] forged"
HOSTILE = f"/path\r\n{FORGED}\x1b[2J\x1b]0;owned\x07"
ESCAPED = "/path\\x0d\\x0a" + FORGED + "\\x1b[2J\\x1b]0;owned\\x07"


def hostile_exception(explicit: bool = True) -> ValueError:
    """A ValueError carrying client text, chained (``from``, or implicitly) to a RuntimeError carrying more."""
    try:
        try:
            raise RuntimeError(f"header {HOSTILE}")
        except RuntimeError as exc:
            if explicit:
                raise ValueError(f"path {HOSTILE}") from exc
            raise ValueError(f"path {HOSTILE}")  # noqa: B904 (the implicit context is the point)
    except ValueError as exc:
        return exc
    raise AssertionError("unreachable")


def exc_info_of(exc: BaseException) -> tuple[type[BaseException], BaseException, Any]:
    return type(exc), exc, exc.__traceback__


def assert_safe(text: str) -> None:
    for char in "\r\x1b\x07":
        assert char not in text
    assert not [line for line in text.splitlines() if line.startswith(FORGED)]


@pytest.mark.parametrize(
    ("explicit", "separator"),
    [
        (True, "The above exception was the direct cause of the following exception:"),
        (False, "During handling of the above exception, another exception occurred:"),
    ],
)
def test_traceback_is_python_s_with_the_messages_escaped(explicit: bool, separator: str) -> None:
    exc = hostile_exception(explicit)
    text = format_exception_for_log(exc_info_of(exc))
    assert_safe(text)
    # Python's own traceback, line for line, but for the client's text in the messages.
    assert text == "".join(traceback.format_exception(exc)).replace(HOSTILE, ESCAPED).removesuffix("\n")
    lines = text.splitlines()
    assert lines.count("Traceback (most recent call last):") == 2
    assert separator in lines
    assert f"RuntimeError: header {ESCAPED}" in lines
    assert lines[-1] == f"ValueError: path {ESCAPED}"
    assert [line for line in lines if line.startswith('  File "') and line.endswith(", in hostile_exception")]


def test_error_log_writes_one_record_with_an_escaped_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Config())
    exc = hostile_exception()
    logging.getLogger("tricorn.error").error("exception in asgi application", exc_info=exc)
    # A tricorn.* module logger has no filter of its own: the error log's formatter escapes its records.
    logging.getLogger("tricorn.io.something").error("from a module logger", exc_info=exc)
    err = capsys.readouterr().err
    assert_safe(err)
    records = [(i, ERROR_LINE.fullmatch(line)) for i, line in enumerate(err.splitlines())]
    starts = [(i, match.groups()[1:]) for i, match in records if match is not None]
    assert [groups for _, groups in starts] == [
        ("ERROR", "exception in asgi application"),
        ("ERROR", "from a module logger"),
    ]
    expected = format_exception_for_log(exc_info_of(exc)).splitlines()
    lines = err.splitlines()
    assert lines[1 : starts[1][0]] == expected
    assert lines[starts[1][0] + 1 :] == expected


def test_log_config_handlers_write_tricorn_tracebacks_escaped(tmp_path: Path) -> None:
    tricorn_file, app_file = tmp_path / "tricorn.log", tmp_path / "app.log"
    config = {
        "version": 1,
        "formatters": {
            "plain": {"format": "%(levelname)s %(message)s"},
            "escaping": {"()": "tricorn.logs.EscapingFormatter", "format": "%(levelname)s %(message)s"},
        },
        "handlers": {
            "tricorn": {"class": "logging.FileHandler", "filename": str(tricorn_file), "formatter": "plain"},
            "app": {"class": "logging.FileHandler", "filename": str(app_file), "formatter": "escaping"},
        },
        "loggers": {
            "tricorn.error": {"handlers": ["tricorn"], "level": "INFO", "propagate": False},
            "app": {"handlers": ["app"], "level": "INFO", "propagate": False},
        },
    }
    path = tmp_path / "logging.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    configure_logging(Config(log_config=str(path)))
    exc = hostile_exception()
    expected = "ERROR failed\n" + format_exception_for_log(exc_info_of(exc)) + "\n"
    # tricorn's own records, through the user's plain logging.Formatter...
    logging.getLogger("tricorn.error").error("failed", exc_info=exc)
    # ...and any logger's, through tricorn.logs.EscapingFormatter named in the config.
    logging.getLogger("app").error("failed", exc_info=exc)
    for file in (tricorn_file, app_file):
        text = file.read_text(encoding="utf-8")
        assert_safe(text)
        assert text == expected


def test_escaping_formatter_ignores_a_raw_traceback_cached_by_another_formatter() -> None:
    streams = [io.StringIO(), io.StringIO()]
    logger = logging.getLogger("app")
    logger.propagate = False
    for stream, formatter in zip(streams, [logging.Formatter(), EscapingFormatter()], strict=True):
        handler = logging.StreamHandler(stream)
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    logger.error("failed", exc_info=hostile_exception())
    raw, escaped = (stream.getvalue() for stream in streams)
    assert HOSTILE in raw  # the plain formatter, first, cached its raw traceback on the record
    assert_safe(escaped)
    assert f"ValueError: path {ESCAPED}" in escaped.splitlines()


def test_stack_info_is_escaped_and_keeps_its_lines(capsys: pytest.CaptureFixture[str]) -> None:
    stack = 'Stack (most recent call last):\n  File "app.py", line 1, in <module>\n    x = "\x1b[2J\r"'
    escaped = 'Stack (most recent call last):\n  File "app.py", line 1, in <module>\n    x = "\\x1b[2J\\x0d"'
    assert EscapingFormatter().formatStack(stack) == escaped
    configure_logging(Config())
    logger = logging.getLogger("tricorn.error")
    logger.handle(logger.makeRecord(logger.name, logging.ERROR, "app.py", 1, "stack", (), None, sinfo=stack))
    err = capsys.readouterr().err
    assert_safe(err)
    assert err.splitlines()[1:] == escaped.splitlines()


def test_notes_groups_and_syntax_errors_are_escaped() -> None:
    # As compile() would report client text given to it as source (its text ends with its line feed).
    syntax_error = SyntaxError(f"bad {HOSTILE}", (f"<{HOSTILE}>", 2, 5, f"x = {HOSTILE}\n", 2, 6))
    noted = ValueError(f"noted {HOSTILE}")
    noted.add_note(f"note {HOSTILE}")
    group = ExceptionGroup(f"group {HOSTILE}", [noted, syntax_error, KeyError(HOSTILE)])
    text = format_exception_for_log(exc_info_of(group))
    assert_safe(text)
    lines = text.splitlines()
    assert f"  | ExceptionGroup: group {ESCAPED} (3 sub-exceptions)" in lines
    assert f"    | ValueError: noted {ESCAPED}" in lines
    assert f"    | note {ESCAPED}" in lines
    assert f'    |   File "<{ESCAPED}>", line 2' in lines
    assert f"    |     x = {ESCAPED}" in lines
    assert f"    | SyntaxError: bad {ESCAPED}" in lines
    assert "    +---------------- 3 ----------------" in lines


def test_a_python_keeping_the_message_elsewhere_gets_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    class MessageElsewhere(traceback.TracebackException):
        """As a future Python might: the message under another name than the one tricorn escapes."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.message = vars(self).pop("_str")

        def format_exception_only(self, **kwargs: Any) -> Iterator[str]:
            yield f"{self.exc_type.__qualname__}: {self.message}\n"

    monkeypatch.setattr(traceback, "TracebackException", MessageElsewhere)
    text = format_exception_for_log(exc_info_of(hostile_exception()))
    assert "\n" not in text
    assert text.startswith("Traceback (most recent call last):\\x0a")
    assert text.endswith(f"ValueError: path {ESCAPED}")


def test_exc_info_without_an_exception() -> None:
    assert format_exception_for_log((None, None, None)) == "NoneType: None"
    record = logging.makeLogRecord({"msg": "m", "exc_info": (None, None, None)})
    assert EscapingFormatter().format(record) == "m\nNoneType: None"
