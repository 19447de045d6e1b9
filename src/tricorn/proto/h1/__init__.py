"""HTTP/1.1 server-side protocol core (sans-io); its theory of operation is in :mod:`.connection`.

The package, in reading order: :mod:`.events` (the events and the request limits), :mod:`.head` (the
request head checks and the shared head front), :mod:`.parsers` (the two parser backends),
:mod:`.response` (status lines, header caches, error responses, the date header) and :mod:`.connection`
(:class:`H1Connection`, which drives them).
"""

from __future__ import annotations

from tricorn.proto.h1.connection import (
    FRAMING_CHUNKED,
    FRAMING_CLOSE,
    FRAMING_LENGTH,
    FRAMING_NONE,
    RS_BODY,
    RS_DONE,
    RS_HEAD,
    RS_IDLE,
    BodyFraming,
    H1Connection,
    ResponseState,
    new_fast_lane,
)
from tricorn.proto.h1.events import (
    DEFAULT_LIMIT_REQUEST_FIELD_SIZE,
    DEFAULT_LIMIT_REQUEST_FIELDS,
    DEFAULT_LIMIT_REQUEST_LINE,
    Backend,
    Data,
    EndOfMessage,
    Event,
    Fields,
    H1Limits,
    Headers,
    Request,
)
from tricorn.proto.h1.head import KNOWN_METHODS, check_head
from tricorn.proto.h1.parsers import available_backends
from tricorn.proto.h1.response import (
    CONTINUE_RESPONSE,
    date_header,
    error_response,
    set_alt_svc,
    set_date,
    set_default_headers,
    status_line,
)

__all__ = [
    "CONTINUE_RESPONSE",
    "DEFAULT_LIMIT_REQUEST_FIELDS",
    "DEFAULT_LIMIT_REQUEST_FIELD_SIZE",
    "DEFAULT_LIMIT_REQUEST_LINE",
    "FRAMING_CHUNKED",
    "FRAMING_CLOSE",
    "FRAMING_LENGTH",
    "FRAMING_NONE",
    "KNOWN_METHODS",
    "RS_BODY",
    "RS_DONE",
    "RS_HEAD",
    "RS_IDLE",
    "Backend",
    "BodyFraming",
    "Data",
    "EndOfMessage",
    "Event",
    "Fields",
    "H1Connection",
    "H1Limits",
    "Headers",
    "Request",
    "ResponseState",
    "available_backends",
    "check_head",
    "date_header",
    "error_response",
    "new_fast_lane",
    "set_alt_svc",
    "set_date",
    "set_default_headers",
    "status_line",
]
