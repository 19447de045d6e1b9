"""The ``/metrics`` page: the slots of every process added up, in the Prometheus text format (0.0.4).

Names follow OpenTelemetry's HTTP server semantic conventions where there is one
(``http.server.request.duration`` -> ``http_server_request_duration_seconds``, ``http.server.active_requests``
-> ``http_server_active_requests``, attribute ``http.request.method`` -> label ``http_request_method``),
tricorn's own under ``tricorn_``, and the process metrics as Prometheus' client libraries name them.

A master adds up its live workers' slots and ``retired``, the counters of the workers that have exited
(:meth:`tricorn.io.metrics.MetricsSlot.add`), so a counter never goes backwards when a worker dies; its
gauges are the live workers' only. The process metrics cover the whole server: the master and its live
workers, plus the CPU time of the workers reaped (from their rusage).
"""

from __future__ import annotations

import math
import os
import resource
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from tricorn.io.metrics import (
    ACTIVE_REQUESTS,
    CONNECTIONS,
    COUNTERS,
    DURATION_BUCKETS,
    N_METHODS,
    N_STATUS,
    N_WORDS,
    PROTOCOLS,
    REQUEST_BYTES,
    RESPONSE_BYTES,
    WS_OPEN,
    WS_SESSIONS,
    MetricsSlot,
    series_labels,
)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# The causes of a worker restart, each shown (at 0 until it happens) so an alert can name them.
RESTART_CAUSES = ("crash", "heartbeat_timeout", "boot_timeout", "max_requests", "wsgi_stuck", "reload")
_LE = [repr(bound) for bound in DURATION_BUCKETS] + ["+Inf"]
_METHOD_LABELS = [series_labels(m * N_STATUS)[0] for m in range(N_METHODS)]


@dataclass(slots=True)
class Supervision:
    """What only a master knows: worker restarts by cause, heartbeats missed, workers alive."""

    restarts: Mapping[str, int]
    heartbeat_misses: int
    workers: int


@dataclass(slots=True)
class ProcessTotals:
    """The processes the page speaks for: ``pids`` (the first is the one serving the page, whose start
    time and file limit are shown) and the CPU seconds of processes already gone."""

    pids: Sequence[int]
    reaped_cpu: float = 0.0
    start_time: float = field(default_factory=time.time)


def render(
    slots: Iterable[MetricsSlot],
    retired: MetricsSlot | None,
    processes: ProcessTotals,
    supervision: Supervision | None = None,
) -> bytes:
    """The metrics page. ``slots`` are the live processes' (their gauges count), ``retired`` the dead
    workers' kept counters."""
    counts: dict[int, int] = {}
    sums: dict[int, float] = {}
    buckets: dict[int, list[int]] = {}
    words = [0] * N_WORDS
    mount_counts: dict[str, int] = {}
    mount_sums: dict[str, float] = {}
    sources = [(slot, True) for slot in slots] + ([(retired, False)] if retired is not None else [])
    for slot, live in sources:
        for i, prefix in enumerate(slot.mounts):
            mount_counts[prefix] = mount_counts.get(prefix, 0) + slot.mount_counts[i]
            mount_sums[prefix] = mount_sums.get(prefix, 0.0) + slot.mount_sums[i]
        for index, (count, seconds, bucket_counts) in slot.series().items():
            counts[index] = counts.get(index, 0) + count
            sums[index] = sums.get(index, 0.0) + seconds
            kept = buckets.get(index)
            buckets[index] = (
                bucket_counts if kept is None else [a + b for a, b in zip(kept, bucket_counts, strict=True)]
            )
        for i, n in enumerate(slot.words.tolist()):
            if live or i < COUNTERS:  # a dead worker's gauges are no longer true
                words[i] += n

    out: list[str] = []
    metric = _Writer(out)
    metric.head("http_server_request_duration_seconds", "histogram", "Duration of HTTP server requests.")
    for index in sorted(counts):
        labels = _request_labels(index)
        cumulative = 0
        for le, n in zip(_LE, buckets[index], strict=True):
            cumulative += n
            out.append(f'http_server_request_duration_seconds_bucket{{{labels},le="{le}"}} {cumulative}')
        out.append(f"http_server_request_duration_seconds_sum{{{labels}}} {_float(sums[index])}")
        out.append(f"http_server_request_duration_seconds_count{{{labels}}} {counts[index]}")
    metric.head(
        "http_server_requests_total", "counter", "HTTP requests answered (or ended without an answer)."
    )
    for index in sorted(counts):
        out.append(f"http_server_requests_total{{{_request_labels(index)}}} {counts[index]}")
    metric.head("http_server_active_requests", "gauge", "HTTP requests in flight.")
    out.append(f"http_server_active_requests {words[ACTIVE_REQUESTS]}")
    for name, offset, what in (
        ("tricorn_http_server_request_body_bytes", REQUEST_BYTES, "Bytes of request bodies received."),
        ("tricorn_http_server_response_body_bytes", RESPONSE_BYTES, "Bytes of response bodies sent."),
    ):
        metric.head(f"{name}_total", "counter", what)
        for m in range(N_METHODS):
            out.append(f'{name}_total{{http_request_method="{_METHOD_LABELS[m]}"}} {words[offset + m]}')
    metric.head("tricorn_open_connections", "gauge", "Client connections open, by protocol.")
    for i, protocol in enumerate(PROTOCOLS):
        out.append(f'tricorn_open_connections{{protocol="{protocol}"}} {words[CONNECTIONS + i]}')
    metric.head("tricorn_websocket_sessions_total", "counter", "WebSocket sessions started.")
    out.append(f"tricorn_websocket_sessions_total {words[WS_SESSIONS]}")
    metric.head("tricorn_websocket_sessions_open", "gauge", "WebSocket sessions in progress.")
    out.append(f"tricorn_websocket_sessions_open {words[WS_OPEN]}")
    if mount_counts:
        metric.head(
            "tricorn_mount_requests_total",
            "counter",
            "HTTP requests, by the mount (prefix) that served them.",
        )
        for prefix, count in mount_counts.items():
            out.append(f'tricorn_mount_requests_total{{mount="{_label(prefix)}"}} {count}')
        metric.head(
            "tricorn_mount_request_duration_seconds_total",
            "counter",
            "Seconds spent on HTTP requests, by the mount (prefix) that served them.",
        )
        for prefix, seconds in mount_sums.items():
            out.append(
                f'tricorn_mount_request_duration_seconds_total{{mount="{_label(prefix)}"}} {_float(seconds)}'
            )
    if supervision is not None:
        metric.head("tricorn_workers", "gauge", "Worker processes alive.")
        out.append(f"tricorn_workers {supervision.workers}")
        metric.head("tricorn_worker_restarts_total", "counter", "Workers replaced, by cause.")
        for cause in (*RESTART_CAUSES, *sorted(set(supervision.restarts) - set(RESTART_CAUSES))):
            out.append(
                f'tricorn_worker_restarts_total{{cause="{cause}"}} {supervision.restarts.get(cause, 0)}'
            )
        metric.head(
            "tricorn_worker_heartbeat_misses_total",
            "counter",
            "Times a worker's heartbeat was late (its event loop or thread pool blocked).",
        )
        out.append(f"tricorn_worker_heartbeat_misses_total {supervision.heartbeat_misses}")
    _process_metrics(metric, processes)
    out.append("")
    return "\n".join(out).encode("utf-8")


class _Writer:
    __slots__ = ("out",)

    def __init__(self, out: list[str]) -> None:
        self.out = out

    def head(self, name: str, kind: str, help_text: str) -> None:
        self.out.append(f"# HELP {name} {help_text}")
        self.out.append(f"# TYPE {name} {kind}")


def _request_labels(index: int) -> str:
    method, status = series_labels(index)
    return f'http_request_method="{method}",http_response_status_code="{status}"'


def _label(value: str) -> str:
    """A label value in the text format: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _float(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


# -- process metrics (Linux /proc; elsewhere only what getrusage tells of this process) -----------------

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = resource.getpagesize()


def _proc_stat(pid: int) -> tuple[float, int, int] | None:
    """(CPU seconds, virtual bytes, resident bytes) of ``pid``, or None if it is gone or there is no /proc."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            data = file.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2 :].split()
    # After the command name: state is field 3 of proc(5); utime 14, stime 15, vsize 23, rss 24.
    cpu = (int(fields[11]) + int(fields[12])) / _TICKS
    return cpu, int(fields[20]), int(fields[21]) * _PAGE


def _open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def _process_metrics(metric: _Writer, processes: ProcessTotals) -> None:
    out = metric.out
    cpu = processes.reaped_cpu
    virtual = resident = fds = 0
    seen = False
    for pid in processes.pids:
        stat = _proc_stat(pid)
        if stat is None:
            continue
        seen = True
        cpu += stat[0]
        virtual += stat[1]
        resident += stat[2]
        fds += _open_fds(pid)
    if not seen:  # no /proc: this process's own CPU time is all we know
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu += usage.ru_utime + usage.ru_stime
    metric.head("process_cpu_seconds_total", "counter", "User and system CPU time of the server's processes.")
    out.append(f"process_cpu_seconds_total {_float(cpu)}")
    if seen:
        metric.head("process_resident_memory_bytes", "gauge", "Resident memory of the server's processes.")
        out.append(f"process_resident_memory_bytes {resident}")
        metric.head("process_virtual_memory_bytes", "gauge", "Virtual memory of the server's processes.")
        out.append(f"process_virtual_memory_bytes {virtual}")
        metric.head("process_open_fds", "gauge", "File descriptors open in the server's processes.")
        out.append(f"process_open_fds {fds}")
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY:
        metric.head("process_max_fds", "gauge", "The file descriptor limit of each process.")
        out.append(f"process_max_fds {soft}")
    metric.head("process_start_time_seconds", "gauge", "When the server started, in seconds since the epoch.")
    out.append(f"process_start_time_seconds {_float(processes.start_time)}")
