"""Creating the listening sockets named by the bind settings."""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from collections.abc import Iterable
from typing import TYPE_CHECKING

from tricorn.errors import TricornError

if TYPE_CHECKING:
    from tricorn.config import BindAddress


class BindError(TricornError):
    """A listening socket could not be created; the message names the address."""


def bind_socket(address: BindAddress, backlog: int) -> socket.socket:
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
        else:
            assert address.host is not None and address.port is not None
            infos = socket.getaddrinfo(
                address.host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
            family, _, _, _, sockaddr = infos[0]
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(sockaddr)
        sock.listen(backlog)
        sock.setblocking(False)
        return sock
    except OSError as exc:
        raise BindError(f"could not bind to {address}: {exc.strerror or exc}") from None


def bind_sockets(addresses: Iterable[BindAddress], backlog: int) -> list[socket.socket]:
    sockets: list[socket.socket] = []
    try:
        for address in addresses:
            sockets.append(bind_socket(address, backlog))
    except BindError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def describe(sock: socket.socket) -> str:
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return f"unix:{name}"
    if sock.family == socket.AF_INET6:
        return f"http://[{name[0]}]:{name[1]}"
    return f"http://{name[0]}:{name[1]}"
