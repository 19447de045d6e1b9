"""What one process counts for ``--metrics-bind``: a block of shared memory, written on the request path.

Theory of operation
-------------------
A :class:`MetricsSlot` is an anonymous shared mapping (``mmap``) holding fixed arrays of 64-bit numbers.
The pre-fork master makes one for each worker just before forking it, so the worker writes and the master
reads the same pages; a single process makes one for itself. The worker's event loop is the only writer:
no lock, no message, no formatting per request. An aligned 64-bit store is atomic on the CPUs tricorn
runs on, so a reader never sees a torn number, only one a moment old.

Almost every number is a counter that only grows: requests and their durations by method and status,
body bytes, WebSocket sessions. When a worker dies, the master adds its slot's counters into its own
totals (see :mod:`tricorn.supervisor.metrics`), so a sum never goes backwards. The few gauges (requests
in flight, open connections by protocol, WebSocket sessions open) are *sampled*: the worker writes them at
each heartbeat (a single process, when scraped), and the master reads only live workers' gauges.

The per-request cost (:meth:`MetricsSlot.request_done`, bench "hello" with ``--metrics-bind``): the
method's index from a 256-entry table and one bytes comparison (no dict, no label strings), the status
as an index, one ``bisect`` for the duration bucket, and five increments in the arrays.

With several entries in the dispatch table (``--mount``, ``--static``, ``--cgi``), each request is also counted, with its
duration, under the prefix of the target that served it (``mount="/api"``). The prefixes come from the
configuration (:func:`mount_labels`), so the master and its workers size and read the block alike before
any fork; the slot is then a :class:`MountsSlot`, whose ``request_done`` adds one dictionary lookup and
two increments. With the APP alone the slot is a plain :class:`MetricsSlot`: no cost, no such metric.
"""

from __future__ import annotations

import mmap
from bisect import bisect_left
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from tricorn.config import Config
    from tricorn.io.server import ServerState

# The methods OpenTelemetry names (http.request.method); any other is counted as "_OTHER".
METHODS: Final = (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"CONNECT", b"OPTIONS", b"TRACE", b"PATCH")
OTHER: Final = len(METHODS)
N_METHODS: Final = OTHER + 1
# Status codes index their own row; 0 collects requests that ended without a response (the client left,
# the app failed before starting one) and the odd status past 599.
N_STATUS: Final = 600
N_SERIES: Final = N_METHODS * N_STATUS
# OpenTelemetry's advisory buckets for http.server.request.duration, in seconds.
DURATION_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
N_BUCKETS: Final = len(DURATION_BUCKETS) + 1  # the last one is +Inf

# The layout, in 8-byte words.
_COUNTS: Final = 0
_BUCKETS: Final = _COUNTS + N_SERIES
_SUMS: Final = _BUCKETS + N_SERIES * N_BUCKETS  # doubles: seconds
_WORDS: Final = _SUMS + N_SERIES
# Offsets within the words array: counters first, then the sampled gauges.
REQUEST_BYTES: Final = 0  # by method
RESPONSE_BYTES: Final = REQUEST_BYTES + N_METHODS  # by method
WS_SESSIONS: Final = RESPONSE_BYTES + N_METHODS
COUNTERS: Final = WS_SESSIONS + 1  # words below this are counters, the rest gauges
ACTIVE_REQUESTS: Final = COUNTERS
WS_OPEN: Final = ACTIVE_REQUESTS + 1
CONNECTIONS: Final = WS_OPEN + 1  # by protocol, in PROTOCOLS order
PROTOCOLS: Final = ("http/1.1", "h2", "websocket")
N_WORDS: Final = CONNECTIONS + len(PROTOCOLS)
SIZE: Final = (_WORDS + N_WORDS) * 8


# A request's row: its place in METHODS, or OTHER. The key (first byte and length, see request_done) is a
# perfect hash of the nine names (checked here); other methods land anywhere and fail the comparison.
_METHOD_INDEX: list[int] = [OTHER] * 256
for _index, _name in enumerate(METHODS):
    _key = (_name[0] ^ len(_name) << 4) & 0xFF
    assert _METHOD_INDEX[_key] == OTHER, "the method table has a collision"
    _METHOD_INDEX[_key] = _index
_METHOD_NAMES: Final = (*METHODS, b"")


class MetricsSlot:
    """One process's counters in shared memory (see the module docstring). ``states`` are the servers
    whose connections :meth:`sample` counts (a single process has two during a restart in place)."""

    __slots__ = (
        "buckets",
        "counts",
        "memory",
        "mount_counts",
        "mount_sums",
        "mounts",
        "states",
        "sums",
        "words",
    )

    def __init__(self, mounts: tuple[str, ...] = ()) -> None:
        # After the fixed layout: a request count and a sum of seconds (a double) for each of ``mounts``.
        size = SIZE + 16 * len(mounts)
        self.memory = mmap.mmap(-1, size)  # anonymous and MAP_SHARED: a forked child writes these pages
        view = memoryview(self.memory)
        self.counts = view[_COUNTS * 8 : _BUCKETS * 8].cast("Q")
        self.buckets = view[_BUCKETS * 8 : _SUMS * 8].cast("Q")
        self.sums = view[_SUMS * 8 : _WORDS * 8].cast("d")
        self.words = view[_WORDS * 8 : SIZE].cast("Q")
        self.mount_counts = view[SIZE : SIZE + 8 * len(mounts)].cast("Q")
        self.mount_sums = view[SIZE + 8 * len(mounts) : size].cast("d")
        view.release()
        self.mounts = mounts
        self.states: list[ServerState] = []

    def close(self) -> None:
        for view in (self.counts, self.buckets, self.sums, self.words, self.mount_counts, self.mount_sums):
            view.release()
        self.memory.close()
        self.states = []

    # -- the worker's side
    def request_done(self, cycle: Any, now: float) -> None:
        """Count a finished request: ``cycle`` has ``request``, ``status``, ``start_time``, ``received``
        and ``response_bytes`` (an HTTPCycle or a WSGICycle); ``now`` is the loop's time."""
        method = cycle.request.method  # (never empty: the cores refuse a request without one)
        m = _METHOD_INDEX[(method[0] ^ len(method) << 4) & 0xFF]
        if _METHOD_NAMES[m] != method:
            m = OTHER
        status = cycle.status
        series = m * N_STATUS + (status if status < N_STATUS else 0)
        duration = now - cycle.start_time
        self.counts[series] += 1
        self.buckets[series * N_BUCKETS + bisect_left(DURATION_BUCKETS, duration)] += 1
        self.sums[series] += duration
        words = self.words
        words[REQUEST_BYTES + m] += cycle.received
        words[RESPONSE_BYTES + m] += cycle.response_bytes

    def websocket_started(self) -> None:
        self.words[WS_SESSIONS] += 1

    def sample(self) -> None:
        """Write the gauges: requests in flight, WebSocket sessions open, connections by protocol."""
        active = ws_open = 0
        open_by = dict.fromkeys(PROTOCOLS, 0)
        for state in self.states:
            active += state.active
            for conn in state.connections:
                if getattr(type(conn), "websocket", False):
                    ws_open += conn.counted  # type: ignore[attr-defined]  # a WSProtocol
                label = getattr(conn, "protocol_label", None)  # None: WebSocket over an HTTP/2 stream
                if label is not None:
                    open_by[label] += 1
        words = self.words
        words[ACTIVE_REQUESTS] = max(0, active - ws_open)  # a session counts among the server's active
        words[WS_OPEN] = ws_open
        for i, label in enumerate(PROTOCOLS):
            words[CONNECTIONS + i] = open_by[label]

    # -- the reader's side
    def series(self) -> dict[int, tuple[int, float, list[int]]]:
        """The request series with a count: series index -> (count, sum of seconds, bucket counts)."""
        counts = self.counts.tolist()
        found = {}
        for series, count in enumerate(counts):
            if count:
                start = series * N_BUCKETS
                found[series] = (count, self.sums[series], self.buckets[start : start + N_BUCKETS].tolist())
        return found

    def add(self, other: MetricsSlot) -> None:
        """Add ``other``'s counters (not its gauges) to this slot's: a dead worker's totals, kept."""
        for series, (count, seconds, buckets) in other.series().items():
            self.counts[series] += count
            self.sums[series] += seconds
            start = series * N_BUCKETS
            for i, n in enumerate(buckets):
                self.buckets[start + i] += n
        words = self.words
        for i, n in enumerate(other.words[:COUNTERS].tolist()):
            words[i] += n
        index = {prefix: i for i, prefix in enumerate(self.mounts)}
        for j, prefix in enumerate(other.mounts):  # by prefix: a reload may have changed the table
            k = index.get(prefix)
            if k is not None:
                self.mount_counts[k] += other.mount_counts[j]
                self.mount_sums[k] += other.mount_sums[j]

    def widened(self, mounts: tuple[str, ...]) -> MetricsSlot:
        """A slot holding this one's counters with room for ``mounts`` too (a reload added mounts), or
        this slot when it has them all already; this one is closed if replaced."""
        added = tuple(prefix for prefix in mounts if prefix not in self.mounts)
        if not added:
            return self
        wider = MetricsSlot((*self.mounts, *added))
        wider.add(self)
        self.close()
        return wider


class MountsSlot(MetricsSlot):
    """A slot that also counts requests by the dispatch target that served them (see the module
    docstring); ``mounts`` are the table's prefixes as :class:`~tricorn.io.dispatch.Dispatch` names them."""

    __slots__ = ("mount_index",)

    def __init__(self, mounts: tuple[str, ...]) -> None:
        super().__init__(mounts)
        self.mount_index = {prefix: i for i, prefix in enumerate(mounts)}

    def request_done(self, cycle: Any, now: float) -> None:
        MetricsSlot.request_done(self, cycle, now)
        target = getattr(cycle, "dispatch_target", None)  # None: a cycle made outside the table
        if target is not None:
            i = self.mount_index.get(target.prefix)
            if i is not None:
                self.mount_counts[i] += 1
                self.mount_sums[i] += now - cycle.start_time


def mount_labels(config: Config) -> tuple[str, ...]:
    """The dispatch table's prefixes as the configuration gives them (``--mount``, ``--static``,
    ``--cgi``), ``/`` first and the rest sorted (the same in the master and every worker); () when the
    APP alone serves (nothing is routed)."""
    from tricorn.config import parse_mount

    prefixes = {prefix.rstrip("/") or "/" for prefix, _, _ in config.app_mounts}
    prefixes.update(prefix for prefix, _ in config.static_mounts)  # (already "/" or without a slash)
    prefixes.update(parse_mount(entry)[0] for entry in config.cgi)
    if not prefixes:
        return ()
    return ("/", *sorted(prefixes - {"/"}))


def new_slot(config: Config) -> MetricsSlot:
    """This configuration's slot: one that counts by mount when there are mounts."""
    mounts = mount_labels(config)
    return MountsSlot(mounts) if mounts else MetricsSlot()


def series_labels(series: int) -> tuple[str, str]:
    """(method, status) of a series index, as label values ("" for no status: OpenTelemetry's absent)."""
    m, status = divmod(series, N_STATUS)
    return (METHODS[m].decode("ascii") if m < OTHER else "_OTHER", str(status) if status else "")
