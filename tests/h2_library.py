"""The h2 library's server core (python-hyper) behind the interface of
:class:`tricorn.proto.h2conn.H2Connection`, its events translated into the core's: the peer
tests/unit/test_h2_differential.py holds tricorn's core against (it served tricorn's HTTP/2 before it).
"""

from __future__ import annotations

import contextlib
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from hyperframe.frame import GoAwayFrame

from tricorn.errors import LocalProtocolError
from tricorn.proto import h2conn
from tricorn.proto.h2conn import ErrorCode, H2ConnectionError

_CONTROL: dict[type, h2conn.Event] = {
    h2.events.PingReceived: h2conn.PingReceived(),
    h2.events.RemoteSettingsChanged: h2conn.RemoteSettingsChanged(),
    h2.events.SettingsAcknowledged: h2conn.SettingsAcknowledged(),
    h2.events.PriorityUpdated: h2conn.PriorityUpdated(),
}


class H2LibraryConnection:
    def __init__(
        self,
        *,
        max_concurrent_streams: int,
        initial_window_size: int,
        max_frame_size: int,
        max_header_list_size: int,
        connect_protocol: bool,
    ) -> None:
        # Outbound fields are checked by proto/h2.response_headers already; inbound ones by the core.
        config = h2.config.H2Configuration(
            client_side=False,
            header_encoding=None,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
        )
        conn = self.conn = h2.connection.H2Connection(config=config)
        settings = {
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: max_concurrent_streams,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: max_header_list_size,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: initial_window_size,
            h2.settings.SettingCodes.MAX_FRAME_SIZE: max_frame_size,
        }
        if connect_protocol:
            settings[h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL] = 1
        conn.local_settings = h2.settings.Settings(client=False, initial_values=settings)
        conn.max_inbound_frame_size = conn.incoming_buffer.max_frame_size = max_frame_size
        conn.decoder.max_header_list_size = max_header_list_size
        self.graceful = False

    @property
    def max_outbound_frame_size(self) -> int:
        return self.conn.max_outbound_frame_size

    def initiate_connection(self) -> None:
        self.conn.initiate_connection()

    def initiate_upgrade_connection(self, settings_header: bytes) -> None:
        try:
            self.conn.initiate_upgrade_connection(settings_header)
        except (h2.exceptions.ProtocolError, ValueError) as exc:
            raise H2ConnectionError(str(exc), ErrorCode.PROTOCOL_ERROR) from None

    def receive_data(self, data: bytes) -> list[Any]:
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            code = getattr(exc, "error_code", ErrorCode.PROTOCOL_ERROR)
            raise H2ConnectionError(f"{exc} ({ErrorCode(code).name})", code) from None
        out: list[Any] = []
        event: Any
        for event in events:
            kind = type(event)
            if kind is h2.events.RequestReceived:
                out.append(
                    h2conn.RequestReceived(
                        event.stream_id, event.headers or [], event.stream_ended is not None
                    )
                )
            elif kind is h2.events.DataReceived:
                if event.stream_id in self.conn.streams and not self.conn.streams[event.stream_id].closed:
                    out.append(
                        h2conn.DataReceived(
                            event.stream_id,
                            event.data,
                            event.flow_controlled_length,
                            event.stream_ended is not None,
                        )
                    )
                elif event.flow_controlled_length:
                    self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif kind is h2.events.TrailersReceived:
                out.append(h2conn.TrailersReceived(event.stream_id, list(event.headers)))
            # (StreamEnded: the event it follows carries end_stream already)
            elif kind is h2.events.WindowUpdated:
                out.append(h2conn.WindowUpdated(event.stream_id))
            elif kind is h2.events.StreamReset:
                out.append(h2conn.StreamReset(event.stream_id, event.error_code, event.remote_reset, "reset"))
            elif kind is h2.events.ConnectionTerminated:
                out.append(
                    h2conn.ConnectionTerminated(
                        event.error_code, event.last_stream_id or 0, event.additional_data or b""
                    )
                )
            elif kind is h2.events.PingAckReceived:
                out.append(h2conn.PingAckReceived(event.ping_data))
            elif kind in _CONTROL:
                out.append(_CONTROL[kind])
                if kind is h2.events.RemoteSettingsChanged:
                    out.append(h2conn.WindowUpdated(0))
        return out

    def send_headers(
        self, stream_id: int, headers: list[tuple[bytes, bytes]], end_stream: bool = False
    ) -> None:
        with contextlib.suppress(h2.exceptions.StreamClosedError):
            self.conn.send_headers(stream_id, headers, end_stream=end_stream)

    def send_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        try:
            self.conn.send_data(stream_id, data, end_stream=end_stream)
        except h2.exceptions.StreamClosedError:
            pass
        except (h2.exceptions.ProtocolError, h2.exceptions.FlowControlError) as exc:
            raise LocalProtocolError(str(exc)) from None

    def end_stream(self, stream_id: int) -> None:
        self.send_data(stream_id, b"", end_stream=True)

    def reset_stream(self, stream_id: int, error_code: int = ErrorCode.CANCEL) -> None:
        with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            self.conn.reset_stream(stream_id, error_code)

    def acknowledge_received_data(self, size: int, stream_id: int) -> None:
        with contextlib.suppress(h2.exceptions.StreamClosedError):
            self.conn.acknowledge_received_data(size, stream_id)

    def increment_flow_control_window(self, increment: int) -> None:
        self.conn.increment_flow_control_window(increment)

    def local_flow_control_window(self, stream_id: int) -> int:
        try:
            return self.conn.local_flow_control_window(stream_id)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            return 0

    def ping(self, data: bytes) -> None:
        self.conn.ping(data)

    def close_connection(self, error_code: int = 0, last_stream_id: int | None = None) -> None:
        if error_code:
            self.conn.close_connection(error_code, last_stream_id=last_stream_id)
            return
        # Graceful: written through the core's buffer without moving it to its closed state (after its
        # own close_connection it would refuse to send the responses still in flight).
        frame = GoAwayFrame(0)
        frame.last_stream_id = last_stream_id or 0
        frame.error_code = 0
        self.conn._data_to_send += frame.serialize()

    def data_to_send(self) -> bytes:
        return self.conn.data_to_send()
