"""Creating the listening sockets named by the bind settings, or taking them from systemd or a parent."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import stat
from collections.abc import Iterable
from typing import TYPE_CHECKING

from tricorn.errors import TricornError

if TYPE_CHECKING:
    from tricorn.config import BindAddress, Config

error_log = logging.getLogger("tricorn.error")

# sd_listen_fds(3): the first socket systemd passes is file descriptor 3.
SD_LISTEN_FDS_START = 3


class BindError(TricornError):
    """A listening socket could not be created; the message names the address."""


def bind_socket(
    address: BindAddress,
    backlog: int,
    *,
    reuse_port: bool = False,
    unix_mode: int | None = None,
    unix_owner: tuple[int, int] | None = None,
) -> socket.socket:
    """A listening, non-blocking socket for ``address``.

    ``reuse_port`` sets SO_REUSEPORT on TCP sockets. For a unix socket, ``unix_mode`` (permission bits)
    and ``unix_owner`` (uid, gid; -1 keeps one) are applied after bind and before listen, so no client
    can connect while the socket has the umask's permissions.
    """
    sock: socket.socket | None = None
    try:
        if address.kind == "fd":
            assert address.fd is not None
            sock = socket.socket(fileno=address.fd)
            if sock.type != socket.SOCK_STREAM:
                raise BindError(f"fd://{address.fd} is not a stream socket")
        elif address.kind == "unix":
            assert address.path is not None
            path = address.path
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISSOCK(os.stat(path).st_mode):
                    os.unlink(path)  # a stale socket left by an earlier run
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(path)
            if unix_owner is not None:
                os.chown(path, *unix_owner)
            if unix_mode is not None:
                os.chmod(path, unix_mode)
        else:
            assert address.host is not None and address.port is not None
            infos = socket.getaddrinfo(
                address.host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
            family, _, _, _, sockaddr = infos[0]
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(sockaddr)
        sock.listen(backlog)
        sock.setblocking(False)
        return sock
    except OSError as exc:
        # A server inside a program of its own (tricorn.serve) must not leave the socket to the collector.
        if sock is not None and address.kind != "fd":
            sock.close()
        raise BindError(f"could not bind to {address}: {exc.strerror or exc}") from None


def bind_sockets(
    addresses: Iterable[BindAddress],
    backlog: int,
    *,
    reuse_port: bool = False,
    unix_mode: int | None = None,
    unix_owner: tuple[int, int] | None = None,
) -> list[socket.socket]:
    sockets: list[socket.socket] = []
    try:
        for address in addresses:
            sockets.append(
                bind_socket(
                    address, backlog, reuse_port=reuse_port, unix_mode=unix_mode, unix_owner=unix_owner
                )
            )
    except BindError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def systemd_sockets() -> list[socket.socket]:
    """The sockets systemd passed (socket activation: ``LISTEN_FDS`` for this ``LISTEN_PID``), or [].

    The variables are removed from the environment, as sd_listen_fds(3) does with ``unset_environment``,
    so that processes started later do not take the sockets for theirs.
    """
    count, pid = os.environ.get("LISTEN_FDS", ""), os.environ.get("LISTEN_PID", "")
    if not count.isdigit() or not pid.isdigit() or int(pid) != os.getpid():
        return []
    for name in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    sockets = []
    for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + int(count)):
        try:
            sock = socket.socket(fileno=fd)
        except OSError as exc:
            raise BindError(
                f"LISTEN_FDS: file descriptor {fd} is not a socket: {exc.strerror or exc}"
            ) from None
        if sock.type != socket.SOCK_STREAM:
            raise BindError(f"LISTEN_FDS: file descriptor {fd} is not a stream socket")
        sock.setblocking(False)
        sockets.append(sock)
    return sockets


def open_listeners(config: Config, unix_owner: tuple[int, int] | None = None) -> list[socket.socket]:
    """The listening sockets for ``config``: systemd's if it passed some, else the bind addresses.

    Raises BindError naming the address that failed.
    """
    activated = systemd_sockets()
    if activated:
        error_log.info(
            "using %d socket(s) passed by systemd (LISTEN_FDS); bind, host and port are ignored",
            len(activated),
        )
        sockets = activated
    else:
        sockets = bind_sockets(
            config.binds,
            config.backlog,
            reuse_port=config.reuse_port,
            unix_mode=config.unix_socket_permissions,
            unix_owner=unix_owner,
        )
    try:
        sockets.extend(bind_quic_sockets(config))
    except BindError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def bind_quic_sockets(config: Config) -> list[socket.socket]:
    """The UDP sockets of ``--quic-bind`` (HTTP/3), one per address, shared by every worker."""
    from tricorn.io.quic import bind_udp

    sockets: list[socket.socket] = []
    for address in config.quic_binds:
        assert address.host is not None and address.port is not None
        try:
            sockets.append(bind_udp(address.host, address.port))
        except OSError as exc:
            for sock in sockets:
                sock.close()
            host = f"[{address.host}]" if ":" in address.host else address.host
            raise BindError(f"could not bind to udp {host}:{address.port}: {exc.strerror or exc}") from None
    return sockets


def unix_paths(sockets: Iterable[socket.socket]) -> list[str]:
    """The file system paths of the unix sockets among ``sockets``."""
    paths = []
    for sock in sockets:
        if sock.family == socket.AF_UNIX:
            name = sock.getsockname()
            if isinstance(name, str) and name and not name.startswith("\0"):
                paths.append(name)
    return paths


def bind_metrics(config: Config) -> socket.socket | None:
    """The ``--metrics-bind`` listening socket, or None. Raises BindError naming the setting."""
    address = config.metrics_address
    if address is None:
        return None
    try:
        return bind_socket(address, 128)
    except BindError as exc:
        raise BindError(f"metrics_bind: {exc}") from None


def describe(sock: socket.socket, scheme: str = "http") -> str:
    name = sock.getsockname()
    if sock.type == socket.SOCK_DGRAM:
        host = f"[{name[0]}]" if sock.family == socket.AF_INET6 else name[0]
        return f"https://{host}:{name[1]} (HTTP/3 over QUIC, UDP)"
    if sock.family == socket.AF_UNIX:
        return f"unix:{name}" if scheme == "http" else f"{scheme}+unix:{name}"
    if sock.family == socket.AF_INET6:
        return f"{scheme}://[{name[0]}]:{name[1]}"
    return f"{scheme}://{name[0]}:{name[1]}"
