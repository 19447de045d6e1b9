"""tricorn.proto.ws: the fast lane for whole text and binary frames against the websockets library's parser.

``WSConnection`` reads an unfragmented, masked text or binary frame that is whole in one read itself
(``_fast_frames``) and leaves every other frame to the library. Each stream of the corpus (valid frames,
and frames the server must refuse with 1002, 1007 or 1009) is fed split at every byte boundary, and byte
by byte, to a connection with the fast lane and one with it off (the library reads every frame): after
each read, both give the same events, the same bytes to send and the same end of the connection. The
reference reads through the library's own ``StreamReader``, so the module's reader (``_Reads``, which the
fast lane hands a frame cut by the end of a read to) is checked against it as well.
"""

from __future__ import annotations

import functools
import random
import struct
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.streams import StreamReader

from tests.conftest import ws_frame
from tricorn.proto.ws import BytesMessage, CloseReceived, ConnectionFailed, TextMessage, WSConnection

MAX_SIZE = 70_000
masked = functools.partial(ws_frame, key=b"\x0f\xa0\x33\xc4")


def head(first: int, length_bytes: bytes, key: bytes = b"\x01\x02\x03\x04") -> bytes:
    """A frame header written by hand: the first byte, the length field as given (MASK set), the key."""
    return bytes([first, 0x80 | length_bytes[0]]) + length_bytes[1:] + key


def unmasked_with(payload: bytes, key: bytes = b"\x01\x02\x03\x04") -> bytes:
    return bytes(b ^ key[i % 4] for i, b in enumerate(payload))


FRAMES: dict[str, bytes] = {
    # Whole messages, at every boundary of the length encoding and of the reader's view threshold.
    **{
        f"binary-{n}": masked(2, bytes(range(256)) * (n // 256) + b"z" * (n % 256))
        for n in (0, 1, 125, 126, 127, 8191, 8192, 65535, 65536, MAX_SIZE)
    },
    "text-ascii": masked(1, b"hello"),
    "text-empty": masked(1, b""),
    "text-utf8": masked(1, "κόσμε ✓ 𝄞".encode()),
    "text-long": masked(1, "é".encode() * 5000),
    # The length in a longer field than it needs (RFC 6455 §5.2 asks for the shortest; neither reader
    # refuses it), and a 64-bit length with its top bit set (too big).
    "length-16-for-5": head(0x82, b"\x7e\x00\x05") + unmasked_with(b"12345"),
    "length-64-for-5": head(0x81, b"\x7f" + struct.pack("!Q", 5)) + unmasked_with(b"abcde"),
    "length-64-top-bit": head(0x82, b"\x7f" + struct.pack("!Q", 1 << 63)) + b"x" * 10,
    "too-big": masked(2, b"y" * (MAX_SIZE + 1)),
    # Fragments, control frames and what the library refuses.
    "fragments": masked(1, b"fra", fin=False) + masked(9, b"mid") + masked(0, b"gment"),
    "binary-fragments": masked(2, b"\x00" * 200, fin=False) + masked(0, b"\x01" * 300),
    "ping": masked(9, b"are you there"),
    "pong": masked(10, b"unsolicited"),
    "ping-too-long": masked(9, b"p" * 126),
    "ping-fragmented": masked(9, b"p", fin=False),
    "unmasked-text": masked(1, b"x", mask=False),
    "unmasked-binary-long": masked(2, b"x" * 300, mask=False),
    "rsv1": masked(1, b"x", rsv=4),
    "rsv2-binary": masked(2, b"x", rsv=2),
    "rsv3": masked(2, b"x", rsv=1),
    "opcode-3": masked(3, b"x"),
    "opcode-11": masked(11, b"x"),
    "continuation-alone": masked(0, b"x"),
    "text-after-unfinished-text": masked(1, b"a", fin=False) + masked(1, b"b"),
    "close": masked(8, struct.pack("!H", 1000) + b"bye"),
    "close-empty": masked(8, b""),
    "close-bad-code": masked(8, struct.pack("!H", 1005)),
    "close-one-byte": masked(8, b"\x03"),
    "close-bad-utf8-reason": masked(8, struct.pack("!H", 1000) + b"\xff"),
}
# Refused by this module's own check, not the library's: nothing may follow it in a stream (the library
# path has parsed the rest of the read by then and answered its pings; the fast lane stops at once).
LAST: dict[str, bytes] = {
    "text-bad-utf8": masked(1, b"ok \xed\xa0\x80"),
    "text-truncated-utf8": masked(1, "é".encode()[:1]),
}

STREAMS: dict[str, bytes] = {
    **FRAMES,
    **LAST,
    "messages": masked(1, b"one") + masked(2, b"two" * 50) + masked(1, b"three") + masked(2, b"x" * 9000),
    "messages-then-ping": masked(2, b"a" * 10) + masked(9, b"p") + masked(2, b"b" * 10),
    "message-then-fragments-then-message": masked(2, b"a") + FRAMES["fragments"] + masked(1, b"after"),
    "messages-then-bad": masked(1, b"good") + masked(2, b"x", rsv=4) + masked(1, b"never"),
    "messages-then-unmasked": masked(2, b"good") + masked(2, b"bad", mask=False),
    "messages-then-too-big": masked(2, b"fine") + FRAMES["too-big"],
    "messages-then-close": masked(2, b"last") + FRAMES["close"] + masked(2, b"ignored"),
    "messages-then-bad-utf8": masked(1, b"good") + masked(2, b"\xff") + LAST["text-bad-utf8"],
    "max-size-exactly": FRAMES[f"binary-{MAX_SIZE}"] + masked(2, b""),
}


def outcome(core: WSConnection, read: bytes) -> tuple[object, ...]:
    events: list[tuple[object, ...]] = []
    for event in core.receive_data(read):
        if isinstance(event, (TextMessage, BytesMessage)):
            assert type(event.data) in (str, bytes)
            events.append((type(event).__name__, event.data))
        else:
            assert isinstance(event, (CloseReceived, ConnectionFailed))
            events.append((type(event).__name__, event.code, event.reason))
    return events, core.data_to_send(), core.close_transport, core.close_sent, core.state


def pair() -> tuple[WSConnection, WSConnection]:
    fast = WSConnection(0.0, max_size=MAX_SIZE, ping_interval=None)
    library = WSConnection(0.0, max_size=MAX_SIZE, ping_interval=None)
    library._fast_max = 0  # the fast lane off: the library reads every frame
    # ... from the library's own reader, not this module's (_Reads), so that the reads are checked too.
    proto = library._proto
    proto.parser.close()
    proto.reader = StreamReader()
    proto.parser = proto.parse()
    next(proto.parser)
    return fast, library


def compare(reads: list[bytes]) -> None:
    fast, library = pair()
    for i, read in enumerate(reads):
        assert outcome(fast, read) == outcome(library, read), f"read {i} of {len(reads)}"


def two_reads(data: bytes) -> Iterator[list[bytes]]:
    for cut in range(len(data) + 1):
        yield [data[:cut], data[cut:]]


@pytest.mark.parametrize("name", list(STREAMS))
def test_split_at_every_byte_the_fast_lane_is_the_library(name: str) -> None:
    data = STREAMS[name]
    cuts: list[int] | range = range(len(data) + 1)
    if len(data) > 3000:  # every cut in the headers and around the ends, a sample in the middle
        cuts = sorted({*range(40), *range(len(data) - 40, len(data) + 1), *range(0, len(data), 997)})
    for cut in cuts:
        compare([data[:cut], data[cut:]])
    if len(data) <= 3000:
        compare([data[i : i + 1] for i in range(len(data))])
    compare([data])


def test_the_fast_lane_reads_the_common_frames() -> None:
    """The lane is taken (the library's parser never sees these frames) and leaves its state right."""
    reads = masked(1, b"one") + masked(2, b"x" * 70_000)
    fast, _ = pair()
    events = fast.receive_data(reads)
    assert [type(e) for e in events] == [TextMessage, BytesMessage]
    assert fast._reads.buf == b""  # the library's reader was never fed
    events = fast.receive_data(masked(9, b"ping") + masked(2, b"after"))
    assert [type(e) for e in events] == [BytesMessage]
    assert fast.data_to_send() == b"\x8a\x04ping"


@settings(max_examples=300, deadline=None)
@given(
    names=st.lists(st.sampled_from(sorted(FRAMES)), min_size=1, max_size=6),
    last=st.sampled_from([None, *sorted(LAST)]),
    cuts=st.lists(st.integers(0, 1 << 20), max_size=8),
)
def test_any_frames_in_any_reads_the_fast_lane_is_the_library(
    names: list[str], last: str | None, cuts: list[int]
) -> None:
    data = b"".join(FRAMES[name] for name in names) + (LAST[last] if last else b"")
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    compare([data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)])


def test_random_masks_and_payloads() -> None:
    rng = random.Random(6455)
    for _ in range(200):
        frames = []
        for _ in range(rng.randint(1, 5)):
            size = rng.choice((0, 1, 125, 126, 500, 8192, 20_000))
            opcode = rng.choice((1, 2, 2, 9))
            payload = rng.randbytes(size) if opcode == 2 else bytes(rng.choice(b"abc") for _ in range(size))
            frames.append(ws_frame(opcode, payload[:125] if opcode == 9 else payload, key=rng.randbytes(4)))
        data = b"".join(frames)
        cut = rng.randint(0, len(data))
        compare([data[:cut], data[cut:]])
