"""The ``tricorn`` command. Its options are generated from the settings in :mod:`tricorn.config`."""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Sequence
from typing import NoReturn

from tricorn import __version__, supervisor
from tricorn.config import SETTINGS, Config, Loaded, add_arguments, check_options, load, spell_booleans
from tricorn.errors import AppLoadError, ConfigError, UsageError

__all__ = ["build_parser", "main"]

_DESCRIPTION = "Serve a Python web application (ASGI or WSGI)."
_EPILOG = (
    "Each setting is taken from, lowest priority first: its default, the config file (--config FILE, "
    "else ./gunicorn.conf.py, else [tool.tricorn] in ./pyproject.toml), its TRICORN_* environment "
    "variable, the command line. gunicorn's and uvicorn's spellings of the options are accepted too "
    "(docs/gunicorn.md, docs/uvicorn.md). See docs/configuration.md."
)


class _Parser(argparse.ArgumentParser):
    def parse_known_args(  # type: ignore[override]  # the same call, checked first
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        given = spell_booleans(self, sys.argv[1:] if args is None else list(args))
        if not {"-h", "--help", "--version"} & set(given):
            try:
                check_options(self, given)
            except UsageError as exc:
                self.error(str(exc))
        return super().parse_known_args(given, namespace)

    def error(self, message: str) -> NoReturn:
        # One line, not argparse's usage dump: the usage of 25 options drowns the actual complaint.
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _version() -> str:
    return f"tricorn {__version__} (Python {platform.python_version()}, {platform.python_implementation()})"


def build_parser() -> argparse.ArgumentParser:
    """The ``tricorn`` argument parser: ``--help``, ``--version`` and one option per setting, grouped.

    Setting options default to ``argparse.SUPPRESS``: a parsed namespace holds only what was given.
    """
    parser = _Parser(
        prog="tricorn",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        add_help=False,
        allow_abbrev=False,
    )
    general = parser.add_argument_group("General")
    general.add_argument("-h", "--help", action="help", help="show this help and exit")
    general.add_argument("--version", action="version", version=_version(), help="show the version and exit")
    add_arguments(parser)
    return parser


def _run(config: Config) -> int:
    # The seam tests replace; imported late so --help and --version do not pay for the server's imports.
    from tricorn.serving import run

    return run(config)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``tricorn`` command with ``argv`` (default ``sys.argv[1:]``) and return its exit status.

    ``--help`` and ``--version`` return 0; a usage error or a bad setting prints one line,
    ``tricorn: error: ...``, to stderr and returns 2; otherwise the server's own exit status.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        build_parser().parse_args(args)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    try:
        loaded = load(args)
        config = loaded.config
        if config.log_config is not None:
            # A log config that does not load is a settings error like any other, said before serving.
            from tricorn.logs import check_log_config

            check_log_config(config.log_config)
        if config.check_config:
            return _check(loaded)
        # For a master: SIGHUP re-reads the settings from these, SIGUSR2 re-executes with them.
        supervisor.command_line = args
        supervisor.startup_notes = list(loaded.notes)
        return _run(config)
    except ConfigError as exc:
        print(f"tricorn: error: {exc}", file=sys.stderr)
        return 2


def _check(loaded: Loaded) -> int:
    """--check-config: import the application too, then print every setting, its value and its source."""
    from tricorn.importer import load_app
    from tricorn.supervisor.process import prepare_process

    config = loaded.config
    for level, message in loaded.notes:
        print(f"{'warning' if level > 20 else 'note'}: {message}")
    try:
        prepare_process(config)
        _, interface, found = load_app(config.app, config.factory, config.app_dir, config.interface)
    except AppLoadError as exc:
        print(f"tricorn: error: {exc}", file=sys.stderr)
        return 3
    width = max(len(name) for name in SETTINGS)
    for name in SETTINGS:
        value = (
            "********"
            if name == "ssl_keyfile_password" and config.ssl_keyfile_password
            else getattr(config, name)
        )
        print(f"{name:<{width}} = {value!r:<40} {loaded.sources[name]}")
    print(f"ok: {found} ({interface})")
    return 0
