"""The zero-copy file sender (interfaces/files.py FileSend) over real socket pairs: the head and the file
arrive whole, a TCP socket is corked while they go out and uncorked at the end, a Unix socket is never
corked, a file shorter than promised ends the job."""

from __future__ import annotations

import asyncio
import os
import select
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tricorn.interfaces import files
from tricorn.interfaces.files import FileSend

HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 3145728\r\n\r\n"
DATA = bytes(range(256)) * 4096 * 3  # 3 MiB: more than the socket buffers take at once


@pytest.fixture
def data_file(tmp_path: Path) -> Iterator[int]:
    path = tmp_path / "data.bin"
    path.write_bytes(DATA)
    with open(path, "rb") as file:
        yield file.fileno()


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # small buffers: the file fills them
        client.connect(listener.getsockname())
        server, _ = listener.accept()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    server.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    server.setblocking(False)
    return server, client


def corked(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_CORK)


def run(job: FileSend, server: socket.socket, client: socket.socket, expected: int) -> bytes:
    """Step ``job`` whenever ``server`` has room, reading ``client`` meanwhile, until ``expected`` bytes
    arrived; the bytes received."""
    received = bytearray()
    done = job.step()
    while len(received) < expected:
        ready, _, _ = select.select([client], [] if done else [server], [], 5)
        assert ready or not done, "nothing arrived"
        if client in ready:
            received += client.recv(1 << 20)
        if not done:
            done = job.step()
    assert done
    return bytes(received)


def test_tcp_is_corked_while_the_file_goes_out_and_uncorked_after(data_file: int) -> None:
    server, client = tcp_pair()
    with server, client:
        job = FileSend(server, HEAD, data_file, 0, len(DATA))
        assert not job.step()  # the client reads nothing yet: the socket fills
        assert corked(server) == 1
        assert run(job, server, client, len(HEAD) + len(DATA)) == HEAD + DATA
        assert job.sent == len(DATA) and not job.gone
        assert corked(server) == 0


def test_unix_sockets_are_never_corked(data_file: int) -> None:
    server, client = socket.socketpair()
    server.setblocking(False)
    with server, client:
        job = FileSend(server, HEAD, data_file, 100, 5000)
        assert run(job, server, client, len(HEAD) + 5000) == HEAD + DATA[100:5100]
        assert job.sent == 5000 and not job.gone


def test_a_file_shorter_than_promised_ends_the_job_uncorked(data_file: int) -> None:
    server, client = tcp_pair()
    with server, client:
        job = FileSend(server, HEAD, data_file, len(DATA) - 10, 100)
        assert run(job, server, client, len(HEAD) + 10) == HEAD + DATA[-10:]
        assert job.sent == 10 and not job.gone
        assert corked(server) == 0


def test_a_client_gone_ends_the_job(data_file: int) -> None:
    server, client = tcp_pair()
    with server:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        client.close()  # a reset
        select.select([server], [], [], 5)
        job = FileSend(server, HEAD, data_file, 0, len(DATA))
        assert job.step() and job.gone


def test_a_file_opened_for_a_wait_cancelled_meanwhile_is_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (A pathsend whose request is cancelled while the open runs on a file thread.)
    path = tmp_path / "f"
    path.write_bytes(b"x")
    gate = threading.Event()
    opened: list[int] = []
    real = files._open_regular

    def slow_open(name: str) -> tuple[int, int]:
        gate.wait(5)
        fd, size = real(name)
        opened.append(fd)
        return fd, size

    monkeypatch.setattr(files, "_open_regular", slow_open)

    async def main() -> None:
        task = asyncio.ensure_future(files.open_regular(str(path)))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gate.set()
        for _ in range(500):
            await asyncio.sleep(0.01)
            if opened:
                try:
                    os.fstat(opened[0])
                except OSError:
                    return  # closed
        raise AssertionError(f"the descriptor {opened} was left open")

    asyncio.run(main())
