"""What an application's response header list comes to, remembered: for HTTP/1.1 its serialised lines
(proto/h1/response.py), for HTTP/2 and HTTP/3 its checked fields (proto/h2.py). Apps send the same list,
or an equal one, response after response (bench "hello8", h2), so a list is checked once."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from tricorn.errors import LocalProtocolError

T = TypeVar("T")


class HeadCache(Generic[T]):
    """``make(pairs)`` (check and convert a tuple of header pairs; LocalProtocolError for what cannot be
    sent) remembered per distinct list, keyed by the list as a tuple, when every pair is a tuple of two
    bytes objects (anything else, a pair given as a list or a bytearray value, is checked every time); at
    most ``size`` lists, emptied when full (content-length values vary).

    The last list found among the remembered ones is also kept, as a copy, and compared with the next
    one first, pairs by identity and then by value: no tuple to make and hash. A list changed in place
    since, a pair given as a list, a value of another type all fail that comparison and are looked up or
    checked anew."""

    __slots__ = ("entries", "last", "last_entry", "make", "size")

    def __init__(self, make: Callable[[tuple[Any, ...]], T], size: int) -> None:
        self.make = make
        self.size = size
        self.entries: dict[tuple[Any, ...], T] = {}
        self.last: list[Any] | None = None
        self.last_entry: T = None  # type: ignore[assignment]  # (read only when `last` matched)

    def find(self, headers: Iterable[tuple[bytes, bytes]]) -> T:
        if headers == self.last:
            return self.last_entry
        return self.lookup(headers)

    def lookup(self, headers: Iterable[tuple[bytes, bytes]]) -> T:
        """:meth:`find` for a list that is not the last one (the caller compared them)."""
        try:
            key = tuple(headers)
        except TypeError:
            raise LocalProtocolError(
                f"response headers must be pairs of bytes, got {headers!r:.80}"
            ) from None
        try:
            entry = self.entries.get(key)
        except TypeError:  # a pair that is a list, a bytearray value: checked every time
            entry = None
        if entry is None:
            entry = self.make(key)
            if all(
                type(pair) is tuple and len(pair) == 2 and type(pair[0]) is bytes and type(pair[1]) is bytes
                for pair in key
            ):
                entries = self.entries
                if len(entries) >= self.size:
                    entries.clear()
                entries[key] = entry
        elif type(headers) is list:
            self.last = list(key)
            self.last_entry = entry
        return entry

    def clear(self) -> None:
        """Forget every list (what ``make`` gives has changed: the server's own headers)."""
        self.entries.clear()
        self.last = None
