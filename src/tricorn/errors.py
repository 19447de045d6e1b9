"""The whole exception hierarchy of tricorn.

Every error tricorn raises on purpose derives from :class:`TricornError`. Protocol errors carry the
HTTP status (or WebSocket close code) they imply, so the shell can answer without guessing.
"""

from __future__ import annotations


class TricornError(Exception):
    """Base class of every error raised by tricorn on purpose."""


class ConfigError(TricornError):
    """A setting has a bad value. ``str(err)`` is one line that names the setting and what is allowed."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"{setting}: {message}")
        self.setting = setting


class UsageError(ConfigError):
    """The command line itself is wrong (an unknown option, a missing value): ``str(err)`` is the message."""

    def __init__(self, message: str) -> None:
        Exception.__init__(self, message)
        self.setting = "command line"


class AppLoadError(TricornError):
    """The application named on the command line could not be imported or is not usable."""


class LifespanFailure(TricornError):
    """The application's lifespan startup (or shutdown) reported a failure."""


class ProtocolError(TricornError):
    """A peer or the local application broke the protocol.

    ``status`` is the HTTP status the error implies when it is answered with a response.
    """

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class RemoteProtocolError(ProtocolError):
    """The client sent something the protocol forbids; answer ``status`` and close the connection."""


class LocalProtocolError(ProtocolError):
    """The application asked for something the protocol forbids (answered 500 when still possible)."""

    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message, status)


class ClientDisconnected(OSError, TricornError):
    """Raised by an interface's ``send`` once the client has gone away (ASGI spec: an OSError subclass)."""


class ClientTimeout(ClientDisconnected):
    """The client stalled past ``--timeout-read`` (a request body the app waits for) or ``--timeout-send``
    (a response it does not take): the server gave up on it, and the app is told as if it had left. Raised
    where ClientDisconnected is (WSGI ``wsgi.input.read()`` and ``write()``, ASGI ``send``); ``str(err)``
    says which timeout, and is the server's log line too."""

    @classmethod
    def reading(cls, seconds: float) -> ClientTimeout:
        return cls(f"request body not received in time (--timeout-read {seconds:g}s)")

    @classmethod
    def sending(cls, seconds: float) -> ClientTimeout:
        return cls(f"response not taken by the client in time (--timeout-send {seconds:g}s)")
