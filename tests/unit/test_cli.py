"""tricorn.cli: the parser generated from the settings, --help, --version, errors and exit statuses."""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

import pytest

import tricorn
import tricorn.cli
from tricorn.cli import build_parser, main
from tricorn.config import SETTINGS, Config
from tricorn.errors import ConfigError

GROUPS = [
    "General",
    "Application",
    "Binding",
    "TLS",
    "Protocol",
    "HTTP/2",
    "WebSocket",
    "Timeouts",
    "Limits",
    "Logging",
    "Configuration",
]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # main() reads os.environ and ./pyproject.toml: start every test from neither.
    for name in list(os.environ):
        if name.startswith("TRICORN_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def ran(monkeypatch: pytest.MonkeyPatch) -> list[Config]:
    """Replace the server (the seam tricorn.cli._run) with one that records its config and returns 0."""
    configs: list[Config] = []

    def fake_run(config: Config) -> int:
        configs.append(config)
        return 0

    monkeypatch.setattr(tricorn.cli, "_run", fake_run)
    return configs


def test_help_lists_the_groups_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    positions = [out.index(f"\n{group}:\n") for group in GROUPS]
    assert positions == sorted(positions)
    assert "usage: tricorn" in out
    assert "TRICORN_PORT" in out
    assert "--access-log, --no-access-log" in out
    assert '%(h)s %(l)s %(u)s %(t)s "%(r)s"' in out  # the % in help text survives argparse's formatting


def test_parser_has_an_argument_for_every_setting() -> None:
    parser = build_parser()
    options = {option for action in parser._actions for option in action.option_strings}
    dests = {action.dest for action in parser._actions}
    for name, setting in SETTINGS.items():
        assert name in dests
        assert set(setting.flags) <= options
        if isinstance(getattr(Config(), name), bool):
            assert "--no-" + setting.flags[0][2:] in options


def test_parser_holds_only_what_was_given() -> None:
    parser = build_parser()
    assert vars(parser.parse_args([])) == {}
    assert vars(parser.parse_args(["--port", "1", "--no-access-log", "-b", "a:1", "-b", "b:2", "m:app"])) == {
        "port": "1",
        "access_log": False,
        "bind": ["a:1", "b:2"],
        "app": "m:app",
    }
    assert isinstance(parser, argparse.ArgumentParser)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    out = capsys.readouterr().out
    assert out == (
        f"tricorn {tricorn.__version__} (Python {platform.python_version()}, "
        f"{platform.python_implementation()})\n"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--bogus"], "tricorn: error: unknown option --bogus (see 'tricorn --help')"),
        (["--port"], "tricorn: error: option --port needs a value (--port PORT) (see 'tricorn --help')"),
        # The flag is named, never what follows it (gunicorn's -t 30 must not make 30 the APP).
        (
            ["--timout", "30", "m:app"],
            "tricorn: error: unknown option --timout (did you mean --timeout?) (see 'tricorn --help')",
        ),
        (["m:app", "-w"], "tricorn: error: option -w needs a value (-w N) (see 'tricorn --help')"),
        (
            ["-b", "--reload", "m:app"],
            "tricorn: error: option -b needs a value (-b ADDRESS) (see 'tricorn --help')",
        ),
        (["a:b", "c:d"], "tricorn: error: unrecognized arguments: c:d (see 'tricorn --help')"),
    ],
)
def test_usage_error_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], ran: list[Config], argv: list[str], message: str
) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err == message + "\n"
    assert captured.out == ""
    assert ran == []


def test_bad_setting_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, ran: list[Config]
) -> None:
    assert main(["--port", "abc"]) == 2
    assert capsys.readouterr().err == "tricorn: error: port: 'abc' is not an integer (from --port)\n"
    monkeypatch.setenv("TRICORN_HTTP", "foo")
    assert main([]) == 2
    assert capsys.readouterr().err == (
        "tricorn: error: http: 'foo' is not one of auto, httptools, h11 (from TRICORN_HTTP)\n"
    )
    assert ran == []


def test_good_config_runs_the_server_and_returns_its_status(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ran: list[Config]
) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.tricorn]\nhost = '0.0.0.0'\nport = 1\n", encoding="utf-8")
    monkeypatch.setenv("TRICORN_PORT", "2")
    assert main(["m:app", "--no-access-log"]) == 0
    assert ran == [Config(app="m:app", host="0.0.0.0", port=2, access_log=False)]

    monkeypatch.setattr(tricorn.cli, "_run", lambda config: 3)
    assert main([]) == 3


def test_config_error_from_the_server_is_reported_like_any_other(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_run(config: Config) -> int:
        raise ConfigError("log_config", "'x.ini' does not exist or is not a file")

    monkeypatch.setattr(tricorn.cli, "_run", failing_run)
    assert main([]) == 2
    assert capsys.readouterr().err == "tricorn: error: log_config: 'x.ini' does not exist or is not a file\n"
