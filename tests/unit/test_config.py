"""tricorn.config: settings metadata, validation, bind addresses and the precedence of the layers."""

from __future__ import annotations

import dataclasses
import pickle
import re
import typing
from pathlib import Path
from typing import Any

import pytest

from tricorn.config import (
    DEFAULT_ACCESS_LOG_FORMAT,
    SETTINGS,
    BindAddress,
    Config,
    Setting,
    parse_mount,
)
from tricorn.errors import ConfigError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def load(tmp_path: Path, argv: list[str] | None = None, env: dict[str, str] | None = None) -> Config:
    return Config.load(argv or [], env or {}, str(tmp_path))


def make(**settings: Any) -> Config:
    return Config(**settings)


def error_of(call: typing.Callable[[], object]) -> str:
    with pytest.raises(ConfigError) as info:
        call()
    return str(info.value)


# -- Metadata ---------------------------------------------------------------------------------------------


def test_every_field_is_a_setting_following_the_naming_conventions() -> None:
    fields = dataclasses.fields(Config)
    assert list(SETTINGS) == [f.name for f in fields]
    for f in fields:
        setting = f.metadata["tricorn"]
        assert isinstance(setting, Setting)
        assert setting.env == f"TRICORN_{f.name.upper()}"
        assert setting.help and setting.help == setting.help.strip()
        assert setting.group
        if f.name == "app":
            assert setting.flags == ()  # the positional APP
        else:
            assert setting.flags[0] == "--" + f.name.replace("_", "-")


def test_choices_are_the_literal_types_values() -> None:
    hints = typing.get_type_hints(Config)
    for name, setting in SETTINGS.items():
        if setting.choices:
            assert setting.choices == typing.get_args(hints[name])


def test_defaults() -> None:
    config = Config()
    assert config.app == "tricorn.demo:app"
    assert (config.host, config.port, config.bind, config.backlog) == ("127.0.0.1", 8000, (), 2048)
    assert (config.interface, config.lifespan, config.http, config.loop) == ("auto",) * 4
    assert (config.timeout_keep_alive, config.timeout_request_header) == (5.0, 10.0)
    assert config.timeout_graceful_shutdown == 30.0
    assert (config.timeout_read, config.timeout_send) == (60.0, 60.0)
    assert (config.limit_request_line, config.limit_request_fields) == (8190, 100)
    assert config.limit_request_field_size == 8190
    assert (config.limit_request_body, config.limit_concurrency) == (None, None)
    assert (config.log_level, config.access_log, config.log_config, config.config) == (
        "info",
        True,
        None,
        None,
    )
    assert config.access_log_format == '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
    assert config.access_log_format == DEFAULT_ACCESS_LOG_FORMAT


def test_docs_list_every_setting_with_its_flag_env_var_and_default() -> None:
    docs = DOCS.read_text(encoding="utf-8")
    for f in dataclasses.fields(Config):
        setting = f.metadata["tricorn"]
        section = docs.split(f"### `{f.name}`", 1)
        assert len(section) == 2, f"docs/configuration.md has no section for {f.name}"
        body = section[1].split("\n### ", 1)[0]
        assert setting.env in body
        for flag in (*setting.flags, *setting.alias_flags):
            assert f"`{flag}" in body, (f.name, flag)
        for key in setting.file_keys:
            assert f"`{key}`" in body, (f.name, key)
        assert f"Default: `{shown_default(f.default)}`" in body, f.name


def shown_default(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if value is None or value == ():
        return "none"
    return str(value) if value != "" else "empty"


# -- Programmatic use ----------------------------------------------------------------------------------------


def test_direct_construction_validates_and_converts() -> None:
    assert Config(port="9000", access_log="off", log_level="DEBUG").port == 9000  # type: ignore[arg-type]
    assert Config(bind="a:1, b:2").bind == ("a:1", "b:2")  # type: ignore[arg-type]
    assert Config(bind=["a:1"]).bind == ("a:1",)  # type: ignore[arg-type]
    assert error_of(lambda: Config(port=True)) == "port: True is not an integer"
    assert error_of(lambda: Config(http="foo")) == "http: 'foo' is not one of auto, httptools, h11"  # type: ignore[arg-type]


def test_config_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Config().port = 1  # type: ignore[misc]


def test_replace_returns_a_validated_copy() -> None:
    config = Config()
    assert config.replace(port=9000) == Config(port=9000)
    assert config.port == 8000
    assert (
        error_of(lambda: config.replace(port=-1)) == "port: -1 is out of range (must be between 0 and 65535)"
    )


# -- Validation, one converter per type ------------------------------------------------------------------------

BAD_VALUES = [
    ("port", "abc", "port: 'abc' is not an integer"),
    ("port", "8000.0", "port: '8000.0' is not an integer"),
    ("port", "70000", "port: 70000 is out of range (must be between 0 and 65535)"),
    ("backlog", "0", "backlog: 0 is out of range (must be between 1 and 65535)"),
    ("access_log", "maybe", "access_log: 'maybe' is not a boolean (use true or false)"),
    ("timeout_keep_alive", "soon", "timeout_keep_alive: 'soon' is not a number"),
    ("timeout_keep_alive", "-1", "timeout_keep_alive: -1 is out of range (must be at least 0)"),
    ("timeout_graceful_shutdown", "nan", "timeout_graceful_shutdown: 'nan' is not a finite number"),
    ("http", "foo", "http: 'foo' is not one of auto, httptools, h11"),
    ("loop", "trio", "loop: 'trio' is not one of auto, uvloop, asyncio"),
    ("interface", "cgi", "interface: 'cgi' is not one of auto, asgi, wsgi, asgi3, asgi2"),
    ("lifespan", "yes", "lifespan: 'yes' is not one of auto, on, off"),
    (
        "log_level",
        "verbose",
        "log_level: 'verbose' is not one of critical, error, warning, info, debug, trace",
    ),
    ("limit_request_line", "0", "limit_request_line: 0 is out of range (must be between 1 and 65536)"),
    (
        "limit_request_line",
        "65537",
        "limit_request_line: 65537 is out of range (must be between 1 and 65536)",
    ),
    ("limit_request_fields", "0", "limit_request_fields: 0 is out of range (must be between 1 and 32768)"),
    (
        "limit_request_fields",
        "40000",
        "limit_request_fields: 40000 is out of range (must be between 1 and 32768)",
    ),
    (
        "limit_request_field_size",
        "0",
        "limit_request_field_size: 0 is out of range (must be between 1 and 65536)",
    ),
    ("limit_request_body", "-5", "limit_request_body: -5 is out of range (must be at least 0)"),
    ("limit_concurrency", "0", "limit_concurrency: 0 is out of range (must be at least 1)"),
    ("limit_concurrency", "many", "limit_concurrency: 'many' is not an integer"),
    ("root_path", "api", "root_path: 'api' must be empty or start with '/'"),
    ("app_dir", "", "app_dir: '' is not a path"),
    ("host", "not a host", "host: 'not a host' is not a valid host name or IP address"),
    ("host", "[zz]", "host: '[zz]' has an invalid IPv6 address 'zz'"),
    (
        "access_log_format",
        "%(h)s %",
        "access_log_format: '%(h)s %' is not a valid %-format: incomplete format",
    ),
    ("ssl_cert_reqs", "maybe", "ssl_cert_reqs: 'maybe' is not one of none, optional, required (or 0, 1, 2)"),
    ("ssl_cert_reqs", "3", "ssl_cert_reqs: '3' is not one of none, optional, required (or 0, 1, 2)"),
    ("ssl_ciphers", " ", "ssl_ciphers: '' is not a cipher list (e.g. ECDHE+AESGCM:ECDHE+CHACHA20)"),
    ("timeout_ssl_handshake", "0", "timeout_ssl_handshake: 0 is out of range (must be more than 0)"),
    ("timeout_ssl_handshake", "-1", "timeout_ssl_handshake: -1 is out of range (must be at least 0)"),
    ("timeout_read", "0", "timeout_read: 0 is out of range (must be more than 0)"),
    ("timeout_send", "-1", "timeout_send: -1 is out of range (must be at least 0)"),
    ("timeout_send", "soon", "timeout_send: 'soon' is not a number"),
    ("http2", "sometimes", "http2: 'sometimes' is not a boolean (use true or false)"),
    (
        "h2_max_concurrent_streams",
        "0",
        "h2_max_concurrent_streams: 0 is out of range (must be between 1 and 2147483647)",
    ),
    (
        "h2_max_header_list_size",
        "16777217",
        "h2_max_header_list_size: 16777217 is out of range (must be between 1 and 16777216)",
    ),
    (
        "h2_initial_window_size",
        "2147483648",
        "h2_initial_window_size: 2147483648 is out of range (must be between 1 and 2147483647)",
    ),
    (
        "h2_max_frame_size",
        "16383",
        "h2_max_frame_size: 16383 is out of range (must be between 16384 and 16777215)",
    ),
    (
        "h2_max_frame_size",
        "16777216",
        "h2_max_frame_size: 16777216 is out of range (must be between 16384 and 16777215)",
    ),
]


@pytest.mark.parametrize(("name", "raw", "message"), BAD_VALUES)
def test_bad_value_from_python(name: str, raw: str, message: str) -> None:
    assert error_of(lambda: make(**{name: raw})) == message


@pytest.mark.parametrize(("name", "raw", "message"), BAD_VALUES)
def test_bad_value_from_env_names_the_variable(tmp_path: Path, name: str, raw: str, message: str) -> None:
    env = {SETTINGS[name].env: raw}
    assert error_of(lambda: load(tmp_path, env=env)) == f"{message} (from {SETTINGS[name].env})"


def test_bad_app_spec() -> None:
    message = error_of(lambda: Config(app="my-project"))
    assert message.startswith("app: 'my-project' is not in the form module:attribute")
    # A module alone is gunicorn's form: its application, else its app (tricorn.importer.resolve_spec).
    for good in ("a:b", "a.b:c.d", "pkg.mod:create_app()", "mod:app", "myproject", "myproject.wsgi"):
        assert Config(app=good).app == good
    for bad in ("a:", ":b", "a:b()x", "a b:c", "1a:b", "a:b(1)"):
        error_of(lambda bad=bad: Config(app=bad))  # type: ignore[misc]


def test_wrong_native_types() -> None:
    assert error_of(lambda: Config(root_path=3)) == "root_path: 3 is not a string"  # type: ignore[arg-type]
    assert error_of(lambda: Config(access_log=1)) == "access_log: 1 is not a boolean (use true or false)"  # type: ignore[arg-type]
    assert error_of(lambda: Config(timeout_keep_alive=True)) == "timeout_keep_alive: True is not a number"
    assert error_of(lambda: Config(bind=3)) == "bind: 3 is not a list of strings"  # type: ignore[arg-type]
    assert error_of(lambda: Config(bind=["a:1", 2])) == "bind: 2 is not a string"  # type: ignore[arg-type]


def test_read_and_send_timeouts_from_flags_and_env(tmp_path: Path) -> None:
    config = load(tmp_path, ["--timeout-read", "1.5", "--timeout-send", "2"])
    assert (config.timeout_read, config.timeout_send) == (1.5, 2.0)
    env = {"TRICORN_TIMEOUT_READ": "30", "TRICORN_TIMEOUT_SEND": "0.25"}
    config = load(tmp_path, ["--timeout-read", "3"], env)
    assert (config.timeout_read, config.timeout_send) == (3.0, 0.25)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("true", True), ("1", True), ("yes", True), ("ON", True), ("false", False), ("0", False), ("no", False)],
)
def test_boolean_spellings(raw: str, expected: bool) -> None:
    assert Config(factory=raw).factory is expected  # type: ignore[arg-type]


@pytest.mark.parametrize("raw", [None, "", "none", "None"])
def test_optional_settings_accept_none(raw: str | None) -> None:
    assert Config(limit_request_body=raw).limit_request_body is None  # type: ignore[arg-type]


def test_limits_accept_their_bounds() -> None:
    config = Config(limit_request_line=1, limit_request_fields=32768, limit_request_field_size=65536)
    assert (config.limit_request_line, config.limit_request_fields) == (1, 32768)
    assert Config(limit_request_body=0).limit_request_body == 0
    assert Config(port=0).port == 0


# -- Bind addresses ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "shown"),
    [
        ("127.0.0.1:8000", BindAddress("tcp", host="127.0.0.1", port=8000), "http://127.0.0.1:8000"),
        ("0.0.0.0:0", BindAddress("tcp", host="0.0.0.0", port=0), "http://0.0.0.0:0"),
        ("localhost:80", BindAddress("tcp", host="localhost", port=80), "http://localhost:80"),
        ("tcp://example.com:443", BindAddress("tcp", host="example.com", port=443), "http://example.com:443"),
        ("[::1]:8000", BindAddress("tcp", host="::1", port=8000), "http://[::1]:8000"),
        ("[::]:9000", BindAddress("tcp", host="::", port=9000), "http://[::]:9000"),
        ("unix:/tmp/x.sock", BindAddress("unix", path="/tmp/x.sock"), "unix:/tmp/x.sock"),
        ("unix:///tmp/x.sock", BindAddress("unix", path="/tmp/x.sock"), "unix:/tmp/x.sock"),
        ("unix:relative.sock", BindAddress("unix", path="relative.sock"), "unix:relative.sock"),
        ("fd://3", BindAddress("fd", fd=3), "fd://3"),
        (" fd://0 ", BindAddress("fd", fd=0), "fd://0"),
    ],
)
def test_bind_parsing(text: str, expected: BindAddress, shown: str) -> None:
    assert BindAddress.parse(text) == expected
    assert str(expected) == shown
    assert Config(bind=(text,)).binds == (expected,)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("127.0.0.1", "bind: '127.0.0.1' has no port (use HOST:PORT, [IPV6]:PORT, unix:PATH or fd://N)"),
        (":8000", "bind: ':8000' has no host (use 0.0.0.0:PORT for all interfaces)"),
        ("::1:8000", "bind: '::1:8000' is ambiguous: put an IPv6 address in brackets, e.g. [::1]:8000"),
        ("[zz]:80", "bind: '[zz]:80' has an invalid IPv6 address 'zz'"),
        ("[::1:80", "bind: '[::1:80' is not a valid host name or IP address"),
        ("host:http", "bind: 'host:http' has an invalid port 'http' (must be 0 to 65535)"),
        ("host:70000", "bind: 'host:70000' has an invalid port '70000' (must be 0 to 65535)"),
        ("host:-1", "bind: 'host:-1' has an invalid port '-1' (must be 0 to 65535)"),
        ("bad host:80", "bind: 'bad host:80' is not a valid host name or IP address"),
        ("fd://x", "bind: 'fd://x' is not a valid file descriptor (use fd://N)"),
        ("fd://-1", "bind: 'fd://-1' is not a valid file descriptor (use fd://N)"),
        ("unix:", "bind: 'unix:' has no socket path (use unix:PATH)"),
        (
            "http://a:1",
            "bind: 'http://a:1' has an unknown scheme (use HOST:PORT, [IPV6]:PORT, unix:PATH or fd://N)",
        ),
    ],
)
def test_bad_bind(text: str, message: str) -> None:
    assert error_of(lambda: BindAddress.parse(text)) == message
    assert error_of(lambda: Config(bind=(text,))) == message


def test_bind_rejects_the_same_address_twice() -> None:
    message = error_of(lambda: Config(bind=("tcp://a:1", "a:1")))
    assert message == "bind: 'a:1' is given twice (as 'tcp://a:1' and 'a:1')"


def test_binds_default_to_host_and_port() -> None:
    assert Config().binds == (BindAddress("tcp", host="127.0.0.1", port=8000),)
    assert [str(b) for b in Config(host="::1", port=1).binds] == ["http://[::1]:1"]
    assert Config(host="[::1]").host == "::1"
    binds = Config(host="0.0.0.0", bind=("a:1", "unix:/s", "fd://4")).binds
    assert [str(b) for b in binds] == ["http://a:1", "unix:/s", "fd://4"]


def test_bind_address_fields_must_match_its_kind() -> None:
    error_of(lambda: BindAddress("tcp", host="a"))
    error_of(lambda: BindAddress("unix", path="/s", port=1))
    error_of(lambda: BindAddress("fd"))
    error_of(lambda: BindAddress("udp", host="a", port=1))  # type: ignore[arg-type]


# -- Layers and precedence -------------------------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_no_layers_gives_defaults(tmp_path: Path) -> None:
    assert load(tmp_path) == Config()


@pytest.mark.parametrize(
    ("in_file", "in_env", "in_argv", "expected"),
    [
        (False, False, False, 8000),
        (True, False, False, 1001),
        (True, True, False, 1002),
        (True, True, True, 1003),
        (False, True, False, 1002),
        (False, False, True, 1003),
        (True, False, True, 1003),
    ],
)
def test_precedence_defaults_file_env_argv(
    tmp_path: Path, in_file: bool, in_env: bool, in_argv: bool, expected: int
) -> None:
    write(tmp_path / "tricorn.toml", "port = 1001\nhost = '10.0.0.1'\n")
    argv = ["--config", "tricorn.toml"] if in_file else []
    env = {"TRICORN_PORT": "1002"} if in_env else {}
    if in_argv:
        argv += ["--port", "1003"]
    config = load(tmp_path, argv, env)
    assert config.port == expected
    assert config.host == ("10.0.0.1" if in_file else "127.0.0.1")  # untouched by the higher layers


def test_every_layer_overrides_each_kind_of_setting(tmp_path: Path) -> None:
    write(
        tmp_path / "pyproject.toml",
        "[project]\nname = 'x'\n[tool.tricorn]\naccess-log = false\nbind = ['a:1']\n"
        "limit_request_body = 100\nlog_level = 'debug'\n",
    )
    from_file = load(tmp_path)
    assert (from_file.access_log, from_file.bind, from_file.limit_request_body) == (False, ("a:1",), 100)
    env = {"TRICORN_ACCESS_LOG": "true", "TRICORN_BIND": "b:2 c:3", "TRICORN_LIMIT_REQUEST_BODY": "none"}
    from_env = load(tmp_path, env=env)
    assert (from_env.access_log, from_env.bind, from_env.limit_request_body) == (True, ("b:2", "c:3"), None)
    argv = ["--no-access-log", "-b", "d:4", "--bind", "e:5", "--limit-request-body", "7"]
    from_argv = load(tmp_path, argv, env)
    assert (from_argv.access_log, from_argv.bind, from_argv.limit_request_body) == (False, ("d:4", "e:5"), 7)
    assert from_argv.log_level == "debug"


def test_argv_positional_app_and_flags(tmp_path: Path) -> None:
    config = load(
        tmp_path, ["pkg.main:make_app()", "--factory", "--http", "h11", "--timeout-keep-alive", "0.5"]
    )
    assert (config.app, config.factory, config.http, config.timeout_keep_alive) == (
        "pkg.main:make_app()",
        True,
        "h11",
        0.5,
    )


def test_argv_errors_are_config_errors(tmp_path: Path) -> None:
    assert error_of(lambda: load(tmp_path, ["--port", "x"])) == "port: 'x' is not an integer (from --port)"
    assert error_of(lambda: load(tmp_path, ["no-pe"])).startswith("app: 'no-pe' is not in the form")
    assert error_of(lambda: load(tmp_path, ["no-pe"])).endswith("(from the command line)")
    assert error_of(lambda: load(tmp_path, ["--prot", "1"])) == "unknown option --prot (did you mean --port?)"
    # No prefix matching: a new flag must never change what an old abbreviation meant.
    assert error_of(lambda: load(tmp_path, ["--po", "1"])).startswith("unknown option --po")


def test_env_parsing(tmp_path: Path) -> None:
    env = {
        "TRICORN_PORT": " 9000 ",
        "TRICORN_ACCESS_LOG": "false",
        "TRICORN_BIND": "a:1,b:2",
        "TRICORN_LOG_LEVEL": "WARNING",
        "TRICORN_TIMEOUT_GRACEFUL_SHUTDOWN": "2.5",
        "TRICORN_FACTORY": "1",
        "TRICORN_UNRELATED": "ignored",
        "PORT": "1",
    }
    config = load(tmp_path, env=env)
    assert (config.port, config.access_log, config.bind) == (9000, False, ("a:1", "b:2"))
    assert (config.log_level, config.timeout_graceful_shutdown, config.factory) == ("warning", 2.5, True)
    assert load(tmp_path, env={"TRICORN_BIND": " a:1\n\tb:2 ,c:3 "}).bind == ("a:1", "b:2", "c:3")
    assert load(tmp_path, env={"TRICORN_BIND": ""}).bind == ()


def test_config_file_with_top_level_keys(tmp_path: Path) -> None:
    write(tmp_path / "x.toml", "app = 'mod:app'\nport = 9000\ntimeout-keep-alive = 1\nbind = 'a:1, b:2'\n")
    config = load(tmp_path, ["--config", "x.toml"])
    assert (config.app, config.port, config.timeout_keep_alive) == ("mod:app", 9000, 1.0)
    assert config.bind == ("a:1", "b:2")
    assert config.config == "x.toml"


def test_config_file_with_tool_tricorn_table(tmp_path: Path) -> None:
    write(tmp_path / "x.toml", "[tool.black]\nline-length = 1\n[tool.tricorn]\nport = 9001\n")
    assert load(tmp_path, ["-c", "x.toml"]).port == 9001
    write(tmp_path / "y.toml", "[tool.black]\nline-length = 1\n")
    assert error_of(lambda: load(tmp_path, ["-c", "y.toml"])) == (
        "config: config file y.toml has a [tool] table but no [tool.tricorn]"
    )


def test_config_file_from_env_and_absolute_path(tmp_path: Path) -> None:
    path = write(tmp_path / "x.toml", "port = 9002\n")
    assert load(tmp_path, env={"TRICORN_CONFIG": str(path)}).port == 9002
    assert Config.load([], {"TRICORN_CONFIG": "x.toml"}, str(tmp_path)).port == 9002
    write(tmp_path / "z.toml", "port = 9003\n")
    assert load(tmp_path, ["--config", "z.toml"], {"TRICORN_CONFIG": "x.toml"}).port == 9003


def test_pyproject_is_used_only_without_a_config_file(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", "[tool.tricorn]\nport = 9004\n")
    write(tmp_path / "x.toml", "host = '10.1.1.1'\n")
    assert load(tmp_path).port == 9004
    config = load(tmp_path, ["--config", "x.toml"])
    assert (config.port, config.host) == (8000, "10.1.1.1")
    assert load(tmp_path, ["--config", "none"]).port == 8000


def test_pyproject_without_tricorn_table_is_ignored(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", "[project]\nname = 'x'\n")
    assert load(tmp_path) == Config()
    write(tmp_path / "pyproject.toml", "[tool.tricorn]\nprot = 1\n")
    assert error_of(lambda: load(tmp_path)) == (
        "config file pyproject.toml: unknown setting 'prot' (did you mean 'port'?)"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("prot = 1\n", "config file x.toml: unknown setting 'prot' (did you mean 'port'?)"),
        ("zzz = 1\n", "config file x.toml: unknown setting 'zzz'"),
        ("config = 'y.toml'\n", "config file x.toml: 'config' cannot be set in a config file"),
        (
            "log-level = 'info'\nlog_level = 'info'\n",
            "config file x.toml: setting 'log_level' is given twice",
        ),
        ("port = 'abc'\n", "port: 'abc' is not an integer (in config file x.toml)"),
        ("port = 80.5\n", "port: 80.5 is not an integer (in config file x.toml)"),
        (
            "access_log = 'perhaps'\n",
            "access_log: 'perhaps' is not a boolean (use true or false) (in config file x.toml)",
        ),
        ("bind = [1]\n", "bind: 1 is not a string (in config file x.toml)"),
    ],
)
def test_config_file_errors(tmp_path: Path, text: str, message: str) -> None:
    write(tmp_path / "x.toml", text)
    assert error_of(lambda: load(tmp_path, ["--config", "x.toml"])) == message


def test_config_file_that_is_not_toml(tmp_path: Path) -> None:
    write(tmp_path / "x.toml", "port = \n")
    message = error_of(lambda: load(tmp_path, ["--config", "x.toml"]))
    assert message.startswith("config: config file x.toml is not valid TOML: ")


def test_missing_config_file(tmp_path: Path) -> None:
    message = error_of(lambda: load(tmp_path, ["--config", "missing.toml"]))
    assert message == "config: cannot read config file missing.toml: No such file or directory"


def test_a_bad_value_is_an_error_even_when_a_higher_layer_overrides_it(tmp_path: Path) -> None:
    message = error_of(lambda: load(tmp_path, ["--port", "1"], {"TRICORN_PORT": "x"}))
    assert message == "port: 'x' is not an integer (from TRICORN_PORT)"


def test_error_messages_are_one_lower_case_line() -> None:
    for name, raw, _ in BAD_VALUES:
        message = error_of(lambda name=name, raw=raw: make(**{name: raw}))  # type: ignore[misc]
        assert "\n" not in message
        assert re.match(r"[a-z][a-z0-9_]*: ", message), message  # h2_*, http2


def test_tool_tricorn_must_be_a_table(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", "[tool]\ntricorn = 1\n")
    assert (
        error_of(lambda: load(tmp_path))
        == "config: config file pyproject.toml: [tool.tricorn] is not a table"
    )


# -- TLS and HTTP/2 --------------------------------------------------------------------------------------------


def test_tls_and_http2_defaults() -> None:
    config = Config()
    assert (config.ssl_certfile, config.ssl_keyfile, config.ssl_keyfile_password) == (None, None, None)
    assert (config.ssl_ca_certs, config.ssl_cert_reqs) == (None, "none")
    assert config.ssl_ciphers == "ECDHE+AESGCM:ECDHE+CHACHA20"
    assert config.timeout_ssl_handshake == 10.0
    assert config.http2 is True
    assert (config.h2_max_concurrent_streams, config.h2_max_header_list_size) == (100, 65536)
    assert (config.h2_initial_window_size, config.h2_max_frame_size) == (65535, 16384)
    assert not config.tls
    assert Config(ssl_certfile="cert.pem").tls


TLS_ARGV = [
    "--ssl-certfile",
    "cert.pem",
    "--ssl-keyfile",
    "key.pem",
    "--ssl-keyfile-password",
    "secret",
    "--ssl-ca-certs",
    "ca.pem",
    "--ssl-cert-reqs",
    "required",
    "--ssl-ciphers",
    "ECDHE+AESGCM",
]
TLS_EXPECTED = {
    "ssl_certfile": "cert.pem",
    "ssl_keyfile": "key.pem",
    "ssl_keyfile_password": "secret",
    "ssl_ca_certs": "ca.pem",
    "ssl_cert_reqs": "required",
    "ssl_ciphers": "ECDHE+AESGCM",
}


def tls_settings(config: Config) -> dict[str, object]:
    return {name: getattr(config, name) for name in TLS_EXPECTED}


def test_tls_flags(tmp_path: Path) -> None:
    assert tls_settings(load(tmp_path, TLS_ARGV)) == TLS_EXPECTED


def test_tls_flags_take_gunicorns_names_too(tmp_path: Path) -> None:
    argv = ["--certfile", "cert.pem", "--keyfile", "key.pem", "--ca-certs", "ca.pem", "--cert-reqs", "2"]
    argv += ["--ciphers", "ECDHE+AESGCM", "--ssl-keyfile-password", "secret"]
    assert tls_settings(load(tmp_path, argv)) == TLS_EXPECTED
    for setting in ("ssl_certfile", "ssl_keyfile", "ssl_ca_certs", "ssl_cert_reqs", "ssl_ciphers"):
        gunicorn = "--" + setting.removeprefix("ssl_").replace("_", "-")
        assert SETTINGS[setting].flags == ("--" + setting.replace("_", "-"), gunicorn)


def test_tls_settings_from_env(tmp_path: Path) -> None:
    env = {f"TRICORN_{name.upper()}": str(value) for name, value in TLS_EXPECTED.items()}
    assert tls_settings(load(tmp_path, env=env)) == TLS_EXPECTED


def test_tls_and_http2_settings_from_a_config_file(tmp_path: Path) -> None:
    write(
        tmp_path / "x.toml",
        "ssl-certfile = 'cert.pem'\nssl_keyfile = 'key.pem'\nssl-keyfile-password = 'secret'\n"
        "ssl-ca-certs = 'ca.pem'\nssl-cert-reqs = 2\nssl-ciphers = 'ECDHE+AESGCM'\n"
        "timeout-ssl-handshake = 2.5\nhttp2 = false\nh2-max-concurrent-streams = 50\n"
        "h2_max_header_list_size = 16384\nh2-initial-window-size = 1_048_576\nh2-max-frame-size = 65536\n",
    )
    config = load(tmp_path, ["--config", "x.toml"])
    assert tls_settings(config) == TLS_EXPECTED
    assert (config.timeout_ssl_handshake, config.http2) == (2.5, False)
    assert (config.h2_max_concurrent_streams, config.h2_max_header_list_size) == (50, 16384)
    assert (config.h2_initial_window_size, config.h2_max_frame_size) == (1048576, 65536)


def test_http2_flags_and_env(tmp_path: Path) -> None:
    assert load(tmp_path, ["--no-http2"]).http2 is False
    assert load(tmp_path, ["--http2"], {"TRICORN_HTTP2": "off"}).http2 is True
    assert load(tmp_path, env={"TRICORN_HTTP2": "0"}).http2 is False
    argv = ["--h2-max-concurrent-streams", "128", "--h2-max-header-list-size", "32768"]
    argv += ["--h2-initial-window-size", "65536", "--h2-max-frame-size", "16777215"]
    argv += ["--timeout-ssl-handshake", "60"]
    config = load(tmp_path, argv)
    assert (config.h2_max_concurrent_streams, config.h2_max_header_list_size) == (128, 32768)
    assert (config.h2_initial_window_size, config.h2_max_frame_size) == (65536, 16777215)
    assert config.timeout_ssl_handshake == 60.0
    env = {"TRICORN_H2_MAX_FRAME_SIZE": "20000", "TRICORN_TIMEOUT_SSL_HANDSHAKE": "0.5"}
    assert (load(tmp_path, env=env).h2_max_frame_size, load(tmp_path, env=env).timeout_ssl_handshake) == (
        20000,
        0.5,
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("none", "none"), ("OPTIONAL", "optional"), ("required", "required"), ("0", "none"), (1, "optional")],
)
def test_cert_reqs_takes_names_and_gunicorns_numbers(raw: object, expected: str) -> None:
    # gunicorn's and uvicorn's cert_reqs are ssl.CERT_NONE (0), CERT_OPTIONAL (1), CERT_REQUIRED (2).
    config = Config(ssl_certfile="c.pem", ssl_ca_certs="ca.pem", ssl_cert_reqs=raw)  # type: ignore[arg-type]
    assert config.ssl_cert_reqs == expected


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"ssl_keyfile": "key.pem"},
            "ssl_keyfile: 'key.pem' is given without ssl_certfile (TLS needs a certificate)",
        ),
        (
            {"ssl_keyfile_password": "secret"},
            "ssl_keyfile_password: a password is given without ssl_certfile (TLS needs a certificate)",
        ),
        (
            {"ssl_ca_certs": "ca.pem"},
            "ssl_ca_certs: 'ca.pem' is given without ssl_certfile (TLS needs a certificate)",
        ),
        (
            {"ssl_cert_reqs": "optional"},
            "ssl_cert_reqs: 'optional' is given without ssl_certfile (TLS needs a certificate)",
        ),
        (
            {"ssl_certfile": "cert.pem", "ssl_cert_reqs": "required"},
            "ssl_cert_reqs: 'required' needs ssl_ca_certs, the CA certificates that client certificates are "
            "verified against",
        ),
    ],
)
def test_tls_settings_that_need_others(settings: dict[str, str], message: str) -> None:
    assert error_of(lambda: Config(**settings)) == message  # type: ignore[arg-type]


def test_certificate_file_alone_is_enough() -> None:
    # A PEM file holding the certificate and its key.
    assert Config(ssl_certfile="combined.pem").ssl_keyfile is None


def test_tls_settings_needing_others_in_layers(tmp_path: Path) -> None:
    assert error_of(lambda: load(tmp_path, ["--keyfile", "key.pem"])).startswith("ssl_keyfile: ")
    config = load(tmp_path, ["--keyfile", "key.pem"], {"TRICORN_SSL_CERTFILE": "cert.pem"})
    assert (config.ssl_certfile, config.ssl_keyfile) == ("cert.pem", "key.pem")


def test_keyfile_password_is_never_shown() -> None:
    config = Config(ssl_certfile="c.pem", ssl_keyfile_password="hunter2")
    assert "hunter2" not in repr(config)
    message = error_of(lambda: Config(ssl_certfile="c.pem", ssl_keyfile_password=1234))  # type: ignore[arg-type]
    assert message == "ssl_keyfile_password: must be a string, not int"


def test_config_and_bind_addresses_pickle() -> None:
    # Pre-fork workers receive their Config from the arbiter.
    config = Config(port=1, bind=("[::1]:2", "unix:/s"))
    assert pickle.loads(pickle.dumps(config)) == config
    assert pickle.loads(pickle.dumps(config.binds)) == config.binds


# -- Mounts -------------------------------------------------------------------------------------------------


def test_mounts_from_the_command_line_are_normalised() -> None:
    config = make(mount=("/ws/=chat:app@asgi", "/api=svc.main:create()", "/=site.wsgi:application"))
    assert config.mount == (
        "/ws=chat:app@asgi",
        "/api=svc.main:create()@auto",
        "/=site.wsgi:application@auto",
    )
    assert config.app_mounts == (
        ("/ws", "chat:app", "asgi"),
        ("/api", "svc.main:create()", "auto"),
        ("/", "site.wsgi:application", "auto"),
    )


def test_mounts_from_a_toml_table(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        "[tool.tricorn.mount]\n"
        '"/" = "mysite.wsgi:application"\n'
        '"/rt" = { app = "chat.asgi:make", interface = "asgi", factory = true }\n'
    )
    assert load(tmp_path).app_mounts == (
        ("/", "mysite.wsgi:application", "auto"),
        ("/rt", "chat.asgi:make()", "asgi"),
    )


@pytest.mark.parametrize(
    ("mount", "expected"),
    [
        (("/a=x:y", "/a/=z:w"), "the prefix '/a' is given twice"),
        (("/a%2Fb=x:y",), "must be a plain path"),
        (({"/a": {"app": "x:y", "threads": 2}},), "a mount table takes app, interface and factory"),
    ],
)
def test_bad_mounts(mount: object, expected: str) -> None:
    value = mount[0] if isinstance(mount, tuple) and isinstance(mount[0], dict) else mount
    assert expected in error_of(lambda: make(mount=value))


def test_an_app_and_a_root_mount_are_refused() -> None:
    assert "'/' is mounted" in error_of(lambda: make(app="a:b", mount=("/=c:d",)))


def test_cgi_settings(tmp_path: Path) -> None:
    config = Config(cgi=f"/cgi-bin={tmp_path}, /=.", cgi_timeout="5", cgi_max_concurrent="3")  # type: ignore[arg-type]
    assert config.cgi == (f"/cgi-bin={tmp_path}", "/=.")
    assert (config.cgi_timeout, config.cgi_max_concurrent) == (5.0, 3)
    assert (Config().cgi, Config().cgi_timeout, Config().cgi_max_concurrent) == ((), 60.0, None)
    assert parse_mount(f"/cgi-bin/={tmp_path}") == ("/cgi-bin", str(tmp_path))
    assert parse_mount("/=.") == ("/", ".")
    message = "cgi: '/api=.': an app is mounted at '/api' too"
    assert error_of(lambda: Config(cgi="/api=.", mount="/api=a:b")) == message  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("/cgi-bin", "cgi: '/cgi-bin' is not PREFIX=DIR (e.g. /cgi-bin=./cgi-bin)"),
        ("/cgi-bin=", "cgi: '/cgi-bin=' is not PREFIX=DIR (e.g. /cgi-bin=./cgi-bin)"),
        ("cgi-bin=.", "cgi: 'cgi-bin=.': the prefix 'cgi-bin' must be a plain path starting with '/'"),
        ("/a/../b=.", "cgi: '/a/../b=.': the prefix '/a/../b' must be a plain path starting with '/'"),
        ("/a%2f=.", "cgi: '/a%2f=.': the prefix '/a%2f' must be a plain path starting with '/'"),
        ("/x=/no/such/dir", "cgi: '/x=/no/such/dir': '/no/such/dir' is not a directory"),
        ("/x=. /x/=.", "cgi: '/x/=.': the prefix '/x' is given twice"),
    ],
)
def test_cgi_mount_errors(value: str, message: str) -> None:
    assert error_of(lambda: Config(cgi=value)) == message  # type: ignore[arg-type]


def test_cgi_limits_errors() -> None:
    assert error_of(lambda: Config(cgi_timeout=0)) == "cgi_timeout: 0 is out of range (must be more than 0)"
    assert error_of(lambda: Config(cgi_max_concurrent=0)).startswith("cgi_max_concurrent: 0 is out of range")
