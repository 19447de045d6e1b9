"""The ``tricorn`` command. Its options are generated from the settings in :mod:`tricorn.config`."""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Sequence
from typing import NoReturn

from tricorn import __version__, supervisor
from tricorn.config import Config, add_arguments
from tricorn.errors import ConfigError

__all__ = ["build_parser", "main"]

_DESCRIPTION = "Serve a Python web application (ASGI or WSGI)."
_EPILOG = (
    "Each setting is taken from, lowest priority first: its default, the config file (--config FILE, "
    "or [tool.tricorn] in ./pyproject.toml), its TRICORN_* environment variable, the command line. "
    "See docs/configuration.md."
)


class _Parser(argparse.ArgumentParser):
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
        config = Config.load(args)
        # For a master: SIGHUP re-reads the settings from these, SIGUSR2 re-executes with them.
        supervisor.command_line = args
        return _run(config)
    except ConfigError as exc:
        print(f"tricorn: error: {exc}", file=sys.stderr)
        return 2
