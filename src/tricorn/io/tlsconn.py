"""TLS on a plain transport, through :class:`ssl.SSLObject` and two memory BIOs.

asyncio's and uvloop's TLS transports end the connection when the client's side ends: a client that sends
its request and then half-closes (a TCP FIN, or a TLS close_notify, which TLS 1.3 allows as a half-close,
RFC 8446 §6.1) loses the response, whatever the protocol's ``eof_received`` returns, as their shutdown
state drops every later write. On a cleartext connection the same client gets its answer (RFC 9112 §9.6
asks servers to finish the response). So tricorn runs TLS itself, over the loop's plain transport:

- :class:`TLSConnection` is the plain transport's protocol. It runs the handshake (with its deadline),
  then makes a :class:`TLSTransport` and hands it to the HTTP protocol (``connection_made``), and from
  there on decrypts what arrives and passes it up.
- :class:`TLSTransport` is what the HTTP protocol writes to: it encrypts into the plain transport at once,
  so the plain transport's buffer is the only one (its size and its flow control are the TLS transport's).
- An end of the client's side (close_notify, or a FIN after whole records) is the protocol's
  ``eof_received``: returning True keeps the connection open for the response, exactly as on cleartext.
  ``close()`` sends close_notify and then closes; ``abort()`` drops the connection.

Reading is paused and resumed as the protocol asks: while paused, ciphertext waits in the plain
transport (which is paused too) and in the incoming BIO, undecrypted, so a client that writes without
reading holds one read's worth of memory. Renegotiation is off in the server's context (io/tls.py), so a
write never waits for the peer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable, Iterable
from typing import Any

from tricorn.io.tls import describe_handshake_error
from tricorn.logs import peer_for_log

error_log = logging.getLogger("tricorn.error")

# Plaintext taken from the TLS layer per read (a TLS record carries at most 16 KiB).
READ_SIZE = 262144

_HANDSHAKING, _OPEN, _CLOSED = range(3)


class TLSTransport(asyncio.Transport):
    """The transport the HTTP protocol of a TLS connection sees (see the module docstring)."""

    def __init__(self, conn: TLSConnection) -> None:
        super().__init__()
        self._conn = conn

    # -- writing
    def write(self, data: bytes | bytearray | memoryview) -> None:
        conn = self._conn
        if conn.phase is not _OPEN or conn.closing:
            return
        sslobj = conn.sslobj
        try:
            sslobj.write(data)
        except ssl.SSLError as exc:
            conn.fail(exc)
            return
        conn.flush()

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        self.write(b"".join(list_of_data))

    def can_write_eof(self) -> bool:
        return False

    def write_eof(self) -> None:
        raise NotImplementedError("a TLS connection ends its side with close()")

    def get_write_buffer_size(self) -> int:
        return self._conn.transport.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._conn.transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._conn.transport.set_write_buffer_limits(high, low)

    # -- reading
    def pause_reading(self) -> None:
        self._conn.pause_reading()

    def resume_reading(self) -> None:
        self._conn.resume_reading()

    def is_reading(self) -> bool:
        return not self._conn.paused

    # -- ending
    def close(self) -> None:
        self._conn.close()

    def abort(self) -> None:
        self._conn.transport.abort()

    def is_closing(self) -> bool:
        conn = self._conn
        return conn.closing or conn.transport.is_closing()

    # -- the rest of the transport interface
    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._conn.app = protocol  # type: ignore[assignment]

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._conn.app  # type: ignore[return-value]

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        conn = self._conn
        if name == "ssl_object":
            return conn.sslobj
        if name == "sslcontext":
            return conn.sslobj.context
        if name == "peercert":
            return conn.sslobj.getpeercert()
        if name == "cipher":
            return conn.sslobj.cipher()
        if name == "compression":
            return conn.sslobj.compression()
        if name == "socket":
            return None  # the socket carries ciphertext: nothing may be written to it past this layer
        return conn.transport.get_extra_info(name, default)


class TLSConnection(asyncio.Protocol):
    """The plain transport's protocol of one TLS connection (see the module docstring)."""

    def __init__(
        self,
        context: ssl.SSLContext,
        app_factory: Callable[[], asyncio.Protocol],
        handshake_timeout: float,
        on_handshake: Callable[[TLSConnection], None] | None = None,
    ) -> None:
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.sslobj = context.wrap_bio(self.incoming, self.outgoing, server_side=True)
        self.app_factory = app_factory
        self.app: asyncio.Protocol | None = None
        self.handshake_timeout = handshake_timeout
        self.on_handshake = on_handshake  # called once the handshake is over, whatever its outcome
        self.phase = _HANDSHAKING
        self.paused = False
        self.closing = False
        self.eof = False  # the client's side has ended (told to the protocol)
        self.plain_eof = False  # the plain transport's side has ended (a FIN)
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.tls_transport: TLSTransport | None = None
        self.peer: Any = None
        self._timer: asyncio.TimerHandle | None = None

    # -- the plain transport's callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not subclasses
        self.peer = transport.get_extra_info("peername")
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.handshake_timeout, self._handshake_timed_out)

    def data_received(self, data: bytes) -> None:
        self.incoming.write(data)
        if self.phase is _HANDSHAKING:
            self._handshake()
        elif self.phase is _OPEN and not self.paused:
            self._read()

    def eof_received(self) -> bool:
        if self.phase is _HANDSHAKING:
            self._handshake_failed(ConnectionResetError("the client closed the connection"))
            return False
        # Not told to the TLS layer: OpenSSL takes a FIN without close_notify for a truncation attack and
        # refuses to write from then on. What came before it is read, then the protocol hears of the end.
        self.plain_eof = True
        if self.phase is _OPEN and not self.paused:
            self._read()
        # Kept open (for the response) if the protocol asked to; the plain transport's write side stays.
        return not self.closing and self.phase is _OPEN

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        phase = self.phase
        self.phase = _CLOSED
        if phase is _HANDSHAKING:
            self._handshake_done()
        elif self.app is not None:
            self.app.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.app is not None:
            self.app.pause_writing()

    def resume_writing(self) -> None:
        if self.app is not None:
            self.app.resume_writing()

    # -- the handshake
    def _handshake(self) -> None:
        try:
            self.sslobj.do_handshake()
        except ssl.SSLWantReadError:
            self.flush()
            return
        except (ssl.SSLError, ssl.CertificateError) as exc:
            self.flush()  # the alert that tells the client why
            self._handshake_failed(exc)
            return
        self.flush()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.phase = _OPEN
        self._handshake_done()
        self.tls_transport = TLSTransport(self)
        self.app = self.app_factory()
        self.app.connection_made(self.tls_transport)
        if self.incoming.pending and not self.paused:  # the request came with the handshake's end
            self._read()

    def _handshake_timed_out(self) -> None:
        self._timer = None
        if self.phase is _HANDSHAKING:
            self._handshake_failed(TimeoutError("TLS handshake timed out"))

    def _handshake_failed(self, exc: BaseException) -> None:
        error_log.info("%s %s", peer_for_log(self.peer), describe_handshake_error(exc))
        self.phase = _CLOSED
        self._handshake_done()
        self.transport.close()

    def _handshake_done(self) -> None:
        callback, self.on_handshake = self.on_handshake, None
        if callback is not None:
            callback(self)

    # -- data
    def _read(self) -> None:
        sslobj, incoming = self.sslobj, self.incoming
        while not self.paused and not self.closing and self.phase is _OPEN:
            try:
                data = sslobj.read(READ_SIZE)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:  # close_notify: the client's side is over
                self._ended()
                return
            except ssl.SSLError as exc:
                self.fail(exc)
                return
            if not data:
                self._ended()
                return
            self.app.data_received(data)  # type: ignore[union-attr]  # (the protocol may switch: HTTP/2)
            if not incoming.pending and not sslobj.pending():
                break
        if self.plain_eof and not self.paused and self.phase is _OPEN and not sslobj.pending():
            self._ended()  # whatever ciphertext is left is a record that can no longer be completed
        if not self.closing:
            self.flush()  # a read may answer the peer (TLS 1.3 key updates)

    def _ended(self) -> None:
        if self.eof:
            return
        self.eof = True
        app = self.app
        assert app is not None
        if not app.eof_received():
            self.close()

    def flush(self) -> None:
        data = self.outgoing.read()
        if data:
            self.transport.write(data)

    def fail(self, exc: BaseException) -> None:
        """A TLS error on an open connection (a corrupt record, say): the connection ends, one log line."""
        reason = getattr(exc, "reason", None) or type(exc).__name__
        error_log.info(
            "%s TLS error, connection closed (%s)",
            peer_for_log(self.peer),
            str(reason).lower().replace("_", " "),
        )
        self.flush()
        self.closing = True
        self.transport.abort()

    # -- what the TLS transport asks
    def pause_reading(self) -> None:
        if not self.paused:
            self.paused = True
            if not self.plain_eof:
                self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.paused:
            self.paused = False
            if not self.transport.is_closing():
                if not self.plain_eof:
                    self.transport.resume_reading()
                # What arrived before the pause is read now, not when more comes.
                asyncio.get_running_loop().call_soon(self._resume)

    def _resume(self) -> None:
        if self.phase is _OPEN and not self.paused and (self.incoming.pending or self.sslobj.pending()):
            self._read()
        elif self.phase is _OPEN and not self.paused and self.plain_eof and not self.eof:
            self._ended()

    def close(self) -> None:
        if self.closing:
            return
        self.closing = True
        if self.phase is _OPEN:
            with contextlib.suppress(ssl.SSLError):
                self.sslobj.unwrap()  # writes close_notify; the client's is not waited for
            self.flush()
        self.transport.close()
