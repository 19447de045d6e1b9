"""QUIC for the asyncio shell: the UDP endpoint that HTTP/3 connections (:mod:`tricorn.io.h3`) live on.

Theory of operation
-------------------
aioquic is the QUIC stack (packets, TLS 1.3, loss recovery, congestion control, streams); this module is
what a server needs around it and aioquic's own asyncio server does not give:

- **One endpoint per UDP socket** (:class:`QuicEndpoint`): each datagram's header is read once; a
  datagram for a known connection id goes to its connection, an Initial of 1200 bytes or more (RFC 9000
  §14.1) starts a connection (after a Retry, with ``--quic-retry``), a long header of a QUIC version we do
  not speak gets a Version Negotiation packet (RFC 9000 §6), and anything else (garbage, a stray short
  header) is dropped without an answer: the cheapest thing to do with a datagram that may be spoofed.
  Dropped datagrams are counted and summarised in one log line a second at most, so a flood is visible
  without flooding the log.
- **Several workers** share one UDP socket per address (the master binds it, each worker reads it), and
  a datagram can reach any of them. So the connection ids a worker issues carry its process id (the first
  3 bytes, masked with a key of the master's: :func:`cid_prefix`), and each worker binds a unix datagram
  socket named after the master and itself (:class:`Relay`): a datagram whose connection id names another
  live worker is passed to that worker, which takes it as if it had read it. An Initial for no known
  connection goes to the worker its client-chosen id picks among those taking new connections (the same
  pick on every worker, so a client's repeated Initials meet one worker), which starts the connection. A
  retiring worker stops reading the shared socket (new connections go to the workers that stay) and keeps
  sending through it, its connections' datagrams reaching it through the relay until they have finished.
  docs/deployment.md measures what the relay costs.
- **Stream credit follows the app** (:class:`ServerQuicConnection`): aioquic gives a peer more stream
  credit as soon as half of it is used, so a client can make the server buffer a request body as fast as
  it sends. Here a request stream's credit is what the app has taken plus one window, as on HTTP/2: a slow
  app holds at most a window and a high-water mark of body.
- **Credentials and the Retry key** are made once, in the master before it forks (and drops privileges),
  by :func:`prepare`, so every worker serves the same certificate and honours any worker's Retry token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from typing import TYPE_CHECKING, Any

from tricorn.errors import ConfigError
from tricorn.logs import escape_for_log

if TYPE_CHECKING:
    from tricorn.config import Config
    from tricorn.io.h3 import H3Protocol
    from tricorn.io.server import ServerState

error_log = logging.getLogger("tricorn.error")

# Connection ids tricorn issues (aioquic's default, and quiche's): long enough to be unguessable.
CID_LENGTH = 8
# RFC 9000 §14.1: a client's Initial datagram is at least 1200 bytes; smaller ones start nothing.
MIN_INITIAL_SIZE = 1200
# A request stream's window (RFC 9000 §4.1): how much body a client may send ahead of the app. HTTP/2's
# default window is 64 KiB; a round trip on a fast link carries more, so 256 KiB (nginx's
# http3_stream_buffer_size is 64 KiB, quiche's default 1 MiB). Bounded buffering per stream is this plus
# the cycle's high-water mark.
STREAM_WINDOW = 256 * 1024
# The connection's window starts at every stream's window together, so streams never starve each other.
# Bytes a control or QPACK stream may hold in a frame not yet complete (their frames are small: SETTINGS,
# GOAWAY, table inserts); past this their credit stops growing.
UNI_BUFFER_LIMIT = 65536
# A datagram forwarded between workers: this prefix, then the client's address, then the datagram.
_RELAY_MAGIC = b"TQR1"


def available() -> bool:
    try:
        import aioquic  # noqa: F401
    except ImportError:
        return False
    return True


class QuicCredentials:
    """What every worker's QUIC endpoints share: the certificate chain and key, the Retry token key."""

    def __init__(self, config: Config) -> None:
        if not available():
            raise ConfigError("quic_bind", "HTTP/3 needs aioquic: pip install tricorn[http3]")
        from aioquic.quic.configuration import QuicConfiguration
        from aioquic.quic.retry import QuicRetryTokenHandler

        assert config.ssl_certfile is not None  # (Config checks it)
        base = QuicConfiguration(is_client=False)
        try:
            base.load_cert_chain(config.ssl_certfile, config.ssl_keyfile, config.ssl_keyfile_password)
        except (OSError, ValueError, TypeError) as exc:
            # The TLS context was made from the same files first, so this is rare: a key type that
            # OpenSSL takes and the cryptography package (aioquic's TLS) does not.
            raise ConfigError("ssl_certfile", f"the certificate cannot be used for QUIC ({exc})") from None
        self.certificate = base.certificate
        self.certificate_chain = base.certificate_chain
        self.private_key = base.private_key
        # Made once per master and kept across reloads: every worker, old or new, reads the others'
        # connection ids (the key masks a worker's process id in its ids) and honours their Retry tokens.
        global _retry_handler, _cid_key
        if _retry_handler is None:
            _retry_handler, _cid_key = QuicRetryTokenHandler(), os.urandom(3)
        self.retry = _retry_handler
        self.cid_key = _cid_key


_prepared: dict[int, QuicCredentials | None] = {}
_retry_handler: Any = None
_cid_key = b""


def prepare(config: Config) -> QuicCredentials | None:
    """Load (or load again, on a reload) the credentials for ``config``; None without ``quic_bind``."""
    credentials = QuicCredentials(config) if config.quic_bind else None
    _prepared.clear()
    _prepared[id(config)] = credentials
    return credentials


def credentials_for(config: Config) -> QuicCredentials | None:
    if id(config) in _prepared:
        return _prepared[id(config)]
    return prepare(config)


def bind_udp(host: str, port: int) -> socket.socket:
    """A non-blocking UDP socket bound to ``host``:``port``. Raises OSError."""
    family, _, _, _, sockaddr = socket.getaddrinfo(
        host, port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        # Room for a burst of datagrams while the loop is busy with an app (the kernel default is about
        # 200 KiB; a dropped datagram costs the client a retransmission timeout).
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, option, 4 * 1024 * 1024)
        sock.bind(sockaddr)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def cid_prefix(key: bytes, pid: int) -> bytes:
    """The first bytes of the connection ids process ``pid`` issues (Linux pids fit in 22 bits)."""
    return bytes(a ^ b for a, b in zip((pid & 0xFFFFFF).to_bytes(3, "big"), key, strict=True))


def cid_owner(key: bytes, cid: bytes) -> int:
    """The process id a connection id of :data:`CID_LENGTH` bytes names (see :func:`cid_prefix`)."""
    return int.from_bytes(bytes(a ^ b for a, b in zip(cid[:3], key, strict=True)), "big")


def server_connection_class() -> type[Any]:
    """:class:`aioquic.quic.connection.QuicConnection` with tricorn's stream credit (see the module doc)."""
    global _ServerQuicConnection
    if _ServerQuicConnection is not None:
        return _ServerQuicConnection
    from aioquic.quic.connection import MAX_STREAM_DATA_FRAME_CAPACITY, QuicConnection, QuicConnectionId
    from aioquic.quic.packet import QuicFrameType

    class ServerQuicConnection(QuicConnection):
        """A server connection whose request streams get credit as their app takes the body.

        ``credit[stream_id]`` is the highest offset the peer may send on that stream (taken + window),
        kept by :mod:`tricorn.io.h3`; ``uni_buffered(stream_id)`` says how much a unidirectional stream's
        incomplete frame holds.
        """

        credit: dict[int, int]
        uni_buffered: Any
        cid_prefix = b""  # this process's (set by the endpoint)

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            cid = self._new_cid()
            self._host_cids[0].cid = self.host_cid = self._local_initial_source_connection_id = cid

        def _new_cid(self) -> bytes:
            return self.cid_prefix + os.urandom(CID_LENGTH - len(self.cid_prefix))

        def _replenish_connection_ids(self) -> None:
            # aioquic's, with ids that name this worker (see the module docstring).
            while len(self._host_cids) < min(8, self._remote_active_connection_id_limit):
                self._host_cids.append(
                    QuicConnectionId(
                        cid=self._new_cid(),
                        sequence_number=self._host_cid_seq,
                        stateless_reset_token=os.urandom(16),
                    )
                )
                self._host_cid_seq += 1

        def _write_stream_limits(self, builder: Any, space: Any, stream: Any) -> None:
            stream_id = stream.stream_id
            limit = self.credit.get(stream_id)
            if limit is None:
                if stream_id & 2 and self.uni_buffered(stream_id) > UNI_BUFFER_LIMIT:
                    return  # a control or QPACK stream holding a frame that never ends: no more credit
                super()._write_stream_limits(builder, space, stream)
                return
            if limit > stream.max_stream_data_local:
                stream.max_stream_data_local = limit
            if stream.max_stream_data_local_sent != stream.max_stream_data_local:
                buf = builder.start_frame(
                    QuicFrameType.MAX_STREAM_DATA,
                    capacity=MAX_STREAM_DATA_FRAME_CAPACITY,
                    handler=self._on_max_stream_data_delivery,
                    handler_args=(stream,),
                )
                buf.push_uint_var(stream_id)
                buf.push_uint_var(stream.max_stream_data_local)
                stream.max_stream_data_local_sent = stream.max_stream_data_local

    _ServerQuicConnection = ServerQuicConnection
    return ServerQuicConnection


_ServerQuicConnection: type[Any] | None = None


class Relay(asyncio.DatagramProtocol):
    """Datagrams between the workers of one master (see the module docstring): a unix datagram socket
    per worker, in the abstract namespace, named ``tricorn-quic-<master pid>-<worker pid>``."""

    def __init__(self, endpoints: list[QuicEndpoint], master: int) -> None:
        self.endpoints = endpoints
        self.prefix = f"tricorn-quic-{master}-"
        self.name = f"\0{self.prefix}{os.getpid()}"
        self.transport: asyncio.DatagramTransport | None = None
        self.sock: socket.socket = None  # type: ignore[assignment]  # set by start()
        self._peers: set[int] = set()
        self._accepting: list[int] = []  # the workers (this one too) that take new connections, in order
        self._peers_at = 0.0
        # A second name says "this worker takes new connections"; a retiring worker closes it.
        self.accepting_sock: socket.socket | None = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.accepting_sock.bind(f"\0{self.prefix}a{os.getpid()}")

    def retire(self) -> None:
        if self.accepting_sock is not None:
            self.accepting_sock.close()
            self.accepting_sock = None
            self._peers_at = 0.0

    def initial_owner(self, dcid: bytes) -> int | None:
        """The worker that takes a new connection whose client chose ``dcid``: the same on every worker, so
        a client's repeated Initials all reach the one that answered the first (None: no worker takes it)."""
        self.peers()
        accepting = self._accepting
        if not accepting:
            return None
        return accepting[int.from_bytes(dcid[:4].ljust(4, b"\0"), "big") % len(accepting)]

    async def start(self, loop: asyncio.AbstractEventLoop) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(self.name)
        sock.setblocking(False)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        # Sent with the socket's own sendto (uvloop's datagram transport takes no abstract unix address).
        self.sock = sock.dup()
        await loop.create_datagram_endpoint(lambda: self, sock=sock)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def peers(self) -> set[int]:
        """The other workers' process ids, from their relay sockets in /proc/net/unix (read again at most
        once a second)."""
        now = time.monotonic()
        if now - self._peers_at > 1.0:
            self._peers_at = now
            found = set()
            accepting = set()
            mine = "@" + self.name[1:]
            start = len(self.prefix) + 1
            with contextlib.suppress(OSError), open("/proc/net/unix") as table:
                for line in table:
                    name = line.rsplit(None, 1)[-1]
                    if name.startswith("@" + self.prefix) and name != mine:
                        with contextlib.suppress(ValueError):
                            if name[start] == "a":
                                accepting.add(int(name[start + 1 :]))
                            else:
                                found.add(int(name[start:]))
            self._accepting = sorted(accepting)
            self._peers = found
        return self._peers

    def forward(self, pid: int, index: int, data: bytes, addr: Any) -> bool:
        """Pass a datagram to worker ``pid``, if it is one of ours; False if it is not."""
        if self.transport is None or pid not in self.peers():
            return False
        head = b"%s%d %s %d\n" % (_RELAY_MAGIC, index, str(addr[0]).encode(), addr[1])
        with contextlib.suppress(OSError):  # (gone meanwhile, or its buffer full: QUIC sends it again)
            self.sock.sendto(head + data, f"\0{self.prefix}{pid}")
        return True

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if not data.startswith(_RELAY_MAGIC):
            return
        head, _, datagram = data.partition(b"\n")
        try:
            index_text, host, port = head[len(_RELAY_MAGIC) :].split(b" ")
            endpoint = self.endpoints[int(index_text)]
            client = (host.decode(), int(port))
        except (ValueError, IndexError):
            return
        endpoint.relayed(datagram, client)

    def error_received(self, exc: Exception) -> None:  # (a peer that went away meanwhile)
        pass

    def close(self) -> None:
        self.retire()
        if self.transport is not None:
            self.transport.close()
            self.transport = None
            self.sock.close()


class QuicEndpoint(asyncio.DatagramProtocol):
    """One UDP socket serving HTTP/3 (see the module docstring)."""

    def __init__(self, state: ServerState, sock: socket.socket, index: int, relay: Relay | None) -> None:
        self.state = state
        self.sock = sock
        self.index = index  # (the same on every worker: the order of --quic-bind)
        self.relay = relay
        self.configuration: Any = None
        self.retry: Any = None
        self.credentials: QuicCredentials = None  # type: ignore[assignment]  # set by adopt()
        self.pid = 0
        self.adopt(state)
        self.connection_class = server_connection_class()
        self.connections: dict[
            bytes, H3Protocol
        ] = {}  # by every connection id in use, ours and the client's first
        self.transport: asyncio.DatagramTransport | None = None
        self.accepting = True
        self.reading = True
        self.port = sock.getsockname()[1]
        self.dropped = 0
        self.read = self.relayed_out = 0  # datagrams read from the socket, and passed to another worker
        self._dropped_logged_at = 0.0
        self._send_sock: socket.socket | None = None  # a retiring worker's: sends, never reads
        self._closed = asyncio.get_running_loop().create_future()

    def adopt(self, state: ServerState) -> None:
        """Serve new connections for ``state`` (a restart in place hands the endpoint to the new app; the
        certificate is the one prepared for its config)."""
        from aioquic.quic.configuration import QuicConfiguration

        self.state = state
        config = state.config
        credentials = credentials_for(config)
        assert credentials is not None
        self.configuration = QuicConfiguration(
            is_client=False,
            alpn_protocols=["h3"],
            connection_id_length=CID_LENGTH,
            idle_timeout=config.quic_idle_timeout,
            max_stream_data=STREAM_WINDOW,
            max_data=STREAM_WINDOW * config.h3_max_concurrent_streams,
            certificate=credentials.certificate,
            certificate_chain=credentials.certificate_chain,
            private_key=credentials.private_key,
        )
        self.retry = credentials.retry if config.quic_retry else None
        self.credentials = credentials
        self.pid = os.getpid()
        server_connection_class().cid_prefix = cid_prefix(credentials.cid_key, self.pid)

    async def start(self) -> None:
        await self.state.loop.create_datagram_endpoint(lambda: self, sock=self.sock)

    # -- asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._closed.done():
            self._closed.set_result(None)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors for a client that went away (ECONNREFUSED on Linux): its connection times out.
        pass

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if not self.reading:
            return  # a retiring worker: its datagrams come through the relay
        self.read += 1
        try:
            self._datagram(data, addr, True)
        except Exception as exc:  # a fault of the QUIC stack on some input: that datagram, not the worker
            self._failed(exc, addr)

    def relayed(self, data: bytes, addr: Any) -> None:
        try:
            self._datagram(data, addr, False)
        except Exception as exc:
            self._failed(exc, addr)

    def _failed(self, exc: Exception, addr: Any) -> None:
        error_log.error(
            "%s:%s quic: datagram dropped: %s: %s",
            addr[0],
            addr[1],
            type(exc).__name__,
            escape_for_log(str(exc)),
            exc_info=error_log.isEnabledFor(logging.DEBUG),
        )

    def _datagram(self, data: bytes, addr: Any, direct: bool) -> None:
        from aioquic._buffer import Buffer
        from aioquic.quic.packet import (
            QuicPacketType,
            encode_quic_version_negotiation,
            pull_quic_header,
        )

        # The connection id of a short header is where it always is: look it up before parsing anything.
        if data and not data[0] & 0x80:
            conn = self.connections.get(data[1 : 1 + CID_LENGTH])
            if conn is not None:
                conn.datagram_received(data, addr)
                return
        try:
            header = pull_quic_header(Buffer(data=data), host_cid_length=CID_LENGTH)
        except ValueError:
            self._drop()
            return
        dcid = header.destination_cid
        conn = self.connections.get(dcid)
        if conn is not None:
            conn.datagram_received(data, addr)
            return
        packet_type = header.packet_type
        version = header.version
        if (
            version is not None
            and packet_type != QuicPacketType.VERSION_NEGOTIATION
            and version not in self.configuration.supported_versions
        ):
            # RFC 9000 §6.1: an unknown version gets the list of ours (a Version Negotiation packet is
            # never answered: two servers cannot be made to ping-pong).
            if len(data) >= MIN_INITIAL_SIZE:
                self.sendto(
                    encode_quic_version_negotiation(
                        source_cid=dcid,
                        destination_cid=header.source_cid,
                        supported_versions=self.configuration.supported_versions,
                    ),
                    addr,
                )
            return
        relay = self.relay
        initial = packet_type == QuicPacketType.INITIAL and len(data) >= MIN_INITIAL_SIZE
        if direct and relay is not None:
            owner = cid_owner(self.credentials.cid_key, dcid) if len(dcid) == CID_LENGTH else None
            if owner != self.pid and owner is not None and relay.forward(owner, self.index, data, addr):
                self.relayed_out += 1
                return  # another worker's connection
            if initial:
                # A client's first Initials (its own connection id, repeated until the answer arrives)
                # all go to one worker, chosen from the id; it may be this one.
                owner = relay.initial_owner(dcid)
                if owner is not None and owner != self.pid and relay.forward(owner, self.index, data, addr):
                    self.relayed_out += 1
                    return
        if initial and self.accepting:
            self._new_connection(data, addr, header)
            return
        self._drop()

    def _drop(self) -> None:
        self.dropped += 1
        now = time.monotonic()
        if now - self._dropped_logged_at >= 1.0:
            self._dropped_logged_at = now
            error_log.info(
                "quic: %d datagram(s) dropped on port %d: not QUIC, or for no connection here",
                self.dropped,
                self.port,
            )
            self.dropped = 0

    def _new_connection(self, data: bytes, addr: Any, header: Any) -> None:
        from aioquic.asyncio.server import _encode_invalid_token_close
        from aioquic.quic.packet import encode_quic_retry

        from tricorn.io.h3 import H3Protocol

        transport = self.transport
        if transport is None:
            return
        original_dcid = header.destination_cid
        retry_scid = None
        retry = self.retry
        if retry is not None:
            if not header.token:
                source_cid = cid_prefix(self.credentials.cid_key, self.pid) + os.urandom(CID_LENGTH - 3)
                token = retry.create_token(
                    address=addr,
                    original_destination_connection_id=header.destination_cid,
                    retry_source_connection_id=source_cid,
                    now=time.time(),
                )
                transport.sendto(
                    encode_quic_retry(
                        version=header.version,
                        source_cid=source_cid,
                        destination_cid=header.source_cid,
                        original_destination_cid=header.destination_cid,
                        retry_token=token,
                    ),
                    addr,
                )
                return
            try:
                original_dcid = retry.validate_token(
                    address=addr, destination_cid=header.destination_cid, token=header.token, now=time.time()
                )
            except ValueError:
                # RFC 9000 §8.1.3: a token that does not validate closes with INVALID_TOKEN.
                transport.sendto(
                    _encode_invalid_token_close(
                        version=header.version,
                        source_cid=header.destination_cid,
                        destination_cid=header.source_cid,
                    ),
                    addr,
                )
                return
            retry_scid = header.destination_cid
        quic = self.connection_class(
            configuration=self.configuration,
            original_destination_connection_id=original_dcid,
            retry_source_connection_id=retry_scid,
        )
        conn = H3Protocol(self, quic, addr)
        self.connections[header.destination_cid] = conn
        self.connections[quic.host_cid] = conn
        conn.datagram_received(data, addr)

    # -- used by the connections
    def sendto(self, data: bytes, addr: Any) -> None:
        if self._send_sock is not None:
            with contextlib.suppress(OSError):  # (a full buffer: QUIC sends it again)
                self._send_sock.sendto(data, addr)
        elif self.transport is not None:
            self.transport.sendto(data, addr)

    def cid_issued(self, cid: bytes, conn: H3Protocol) -> None:
        self.connections[cid] = conn

    def cid_retired(self, cid: bytes) -> None:
        self.connections.pop(cid, None)

    def forget(self, conn: H3Protocol) -> None:
        for cid in [cid for cid, c in self.connections.items() if c is conn]:
            del self.connections[cid]

    # -- the server's listener interface (io/server.py)
    def close(self) -> None:
        """Stop taking new connections; the socket stays open for the ones in flight (wait_closed)."""
        self.accepting = False
        if self.relay is not None and self.transport is not None and self._send_sock is None:
            # The other workers read the shared socket from now on (and relay this worker's datagrams):
            # this one stops reading it, and sends through a copy of it that no reader watches.
            self._send_sock = self.sock.dup()
            self._send_sock.setblocking(False)
            self.reading = False
            self.transport.close()
            self.relay.retire()

    async def wait_closed(self) -> None:
        if self.relay is not None and self.read:
            error_log.info(
                "quic: port %d: %d datagram(s) read, %d of them (%.0f%%) relayed to the worker of their "
                "connection",
                self.port,
                self.read,
                self.relayed_out,
                100.0 * self.relayed_out / self.read,
            )
        if self.transport is not None:
            self.transport.close()
            await self._closed
        if self._send_sock is not None:
            self._send_sock.close()
