"""The metrics' parts without processes: the shared-memory slot (io/metrics.py), the page (checked by
prometheus_client's parser), the probe protocol (supervisor/probes.py) and the policy's late workers,
readiness and restart causes."""

from __future__ import annotations

import math
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tricorn.io.metrics import (
    ACTIVE_REQUESTS,
    CONNECTIONS,
    METHODS,
    OTHER,
    REQUEST_BYTES,
    WS_OPEN,
    MetricsSlot,
    MountsSlot,
    mount_labels,
    new_slot,
    series_labels,
)
from tricorn.proto.h1.head import KNOWN_METHODS
from tricorn.supervisor import metrics
from tricorn.supervisor.heartbeat import beat_interval, late_after
from tricorn.supervisor.policy import (
    Boot,
    Log,
    Policy,
    ReloadRequested,
    StopRequested,
    Tick,
    WorkerBeat,
    WorkerExited,
    WorkerForked,
    WorkerReady,
    WorkerRetiring,
)
from tricorn.supervisor.probes import answer, probe_page

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class Request:
    def __init__(self, method: bytes) -> None:
        self.method = method


class Cycle:
    def __init__(self, method: bytes, status: int, duration: float, received: int = 0, sent: int = 0) -> None:
        self.request = Request(method)
        self.status = status
        self.start_time = 1000.0 - duration
        self.received = received
        self.response_bytes = sent


def parse(page: bytes) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(page.decode("utf-8")):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def labels(method: str, status: str) -> tuple[tuple[str, str], ...]:
    return (("http_request_method", method), ("http_response_status_code", status))


def test_every_known_method_has_its_row_or_other() -> None:
    others = [*sorted(KNOWN_METHODS - set(METHODS)), b"G", b"GETX", b"get", b"X" * 40, bytes(range(200, 230))]
    slot = MetricsSlot()
    try:
        for method in (*METHODS, *others):
            slot.request_done(Cycle(method, 200, 0.001), 1000.0)
        found = {series_labels(i): v[0] for i, v in slot.series().items()}
    finally:
        slot.close()
    assert found == {
        **{(method.decode(), "200"): 1 for method in METHODS},
        ("_OTHER", "200"): len(others),
    }


def test_a_request_lands_in_its_series_and_bucket() -> None:
    slot = MetricsSlot()
    try:
        slot.request_done(Cycle(b"GET", 200, 0.003, sent=5), 1000.0)
        slot.request_done(Cycle(b"GET", 200, 0.3), 1000.0)
        slot.request_done(Cycle(b"PROPFIND", 207, 20.0, received=7), 1000.0)
        slot.request_done(Cycle(b"POST", 0, 0.01), 1000.0)  # no response
        slot.request_done(Cycle(b"POST", 999, 0.01), 1000.0)  # beyond 599: counted with no status
        found = {series_labels(i): v for i, v in slot.series().items()}
        assert found[("GET", "200")][0] == 2
        assert math.isclose(found[("GET", "200")][1], 0.303)
        assert found[("GET", "200")][2][0] == 1  # <= 0.005
        assert found[("GET", "200")][2][7] == 1  # <= 0.5
        assert found[("_OTHER", "207")][2][-1] == 1  # +Inf
        assert found[("POST", "")][0] == 2
        assert slot.words[REQUEST_BYTES + OTHER] == 7
    finally:
        slot.close()


def test_the_page_parses_and_a_dead_workers_counters_stay_but_not_its_gauges() -> None:
    live, dead, retired = MetricsSlot(), MetricsSlot(), MetricsSlot()
    try:
        live.request_done(Cycle(b"GET", 200, 0.02), 1000.0)
        dead.request_done(Cycle(b"GET", 200, 0.2), 1000.0)
        dead.request_done(Cycle(b"HEAD", 404, 0.001), 1000.0)
        dead.websocket_started()
        live.words[ACTIVE_REQUESTS] = 3
        dead.words[ACTIVE_REQUESTS] = 5
        dead.words[WS_OPEN] = 1
        live.words[CONNECTIONS + 1] = 2  # h2
        retired.add(dead)
        supervision = metrics.Supervision({"crash": 1}, 2, 2)
        page = metrics.render([live], retired, metrics.ProcessTotals([]), supervision)
        samples = parse(page)
        assert samples[("http_server_requests_total", labels("GET", "200"))] == 2
        assert samples[("http_server_request_duration_seconds_count", labels("GET", "200"))] == 2
        assert (
            samples[("http_server_request_duration_seconds_bucket", (*labels("GET", "200"), ("le", "0.025")))]
            == 1
        )
        assert (
            samples[("http_server_request_duration_seconds_bucket", (*labels("GET", "200"), ("le", "+Inf")))]
            == 2
        )
        assert samples[("http_server_requests_total", labels("HEAD", "404"))] == 1
        assert samples[("http_server_active_requests", ())] == 3  # the dead worker's gauge is gone
        assert samples[("tricorn_websocket_sessions_open", ())] == 0
        assert samples[("tricorn_websocket_sessions_total", ())] == 1
        assert samples[("tricorn_open_connections", (("protocol", "h2"),))] == 2
        assert samples[("tricorn_worker_restarts_total", (("cause", "crash"),))] == 1
        assert samples[("tricorn_worker_restarts_total", (("cause", "reload"),))] == 0
        assert samples[("tricorn_worker_heartbeat_misses_total", ())] == 2
        assert samples[("tricorn_workers", ())] == 2
        assert ("process_cpu_seconds_total", ()) in samples
    finally:
        for slot in (live, dead, retired):
            slot.close()


def test_a_page_with_nothing_counted_parses() -> None:
    samples = parse(metrics.render([], None, metrics.ProcessTotals([])))
    assert samples[("http_server_active_requests", ())] == 0
    assert not [k for k in samples if k[0].startswith("tricorn_worker")]


# -- the probe protocol


def routes() -> dict[str, Any]:
    return {"/livez": lambda: probe_page(True, "live"), "/readyz": lambda: probe_page(False, "not ready: x")}


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"GET /livez HTTP/1.1\r\nHost: x", b"200"),
        (b"GET /livez?verbose HTTP/1.0", b"200"),
        (b"GET /readyz HTTP/1.1", b"503"),
        (b"GET /metrics HTTP/1.1", b"404"),
        (b"PUT /livez HTTP/1.1", b"405"),
        (b"GET /livez HTTP/2.0", b"400"),
        (b"GET  /livez HTTP/1.1", b"400"),
        (b"\x16\x03\x01", b"400"),
        (b"", b"400"),
    ],
)
def test_probe_answers(head: bytes, status: bytes) -> None:
    response = answer(head, routes())
    assert response.startswith(b"HTTP/1.1 " + status + b" ")
    head_part, _, body = response.partition(b"\r\n\r\n")
    assert f"Content-Length: {len(body)}".encode() in head_part
    assert b"Connection: close" in head_part


def test_a_head_probe_has_no_body() -> None:
    response = answer(b"HEAD /livez HTTP/1.1", routes())
    assert response.endswith(b"\r\n\r\n")
    assert b"Content-Length: 5" in response


# -- the policy: late workers, readiness, restarts


class Master:
    def __init__(self, workers: int = 2, timeout: float = 10.0) -> None:
        self.policy = Policy(workers, timeout, 3.0, late_after=late_after(timeout))
        self.now = 100.0

    def send(self, event: Any, after: float = 0.0) -> list[Any]:
        self.now += after
        actions = self.policy.on_event(event, self.now)
        for action in actions:
            if type(action).__name__ == "Spawn":
                self.policy.on_event(WorkerForked(action.wid, 1000 + action.wid), self.now)
        return actions

    def boot(self) -> list[int]:
        wids = [a.wid for a in self.send(Boot()) if type(a).__name__ == "Spawn"]
        for wid in wids:
            self.send(WorkerReady(wid))
        return wids


def test_late_after_is_three_beats_and_before_the_timeout() -> None:
    assert late_after(30.0) == 3 * beat_interval(30.0) == 1.5
    assert late_after(0.0) == 1.5
    assert late_after(0.4) < 0.4


def test_a_silent_worker_is_late_once_then_beats_again() -> None:
    master = Master()
    wids = master.boot()
    assert master.policy.late(master.now) == []
    actions = []
    for _ in range(3):  # the first worker beats no more
        actions += master.send(WorkerBeat(wids[1]), after=1.0)
    actions += master.send(Tick())
    assert master.policy.heartbeat_misses == 1
    assert [a for a in actions if isinstance(a, Log) and "no heartbeat" in a.message]
    assert [name for name, _ in master.policy.late(master.now)] == ["worker 1001"]
    master.send(Tick(), after=1.0)
    assert master.policy.heartbeat_misses == 1  # one episode, one miss
    master.send(WorkerBeat(wids[0]))
    assert master.policy.late(master.now) == []
    assert master.policy.restarts["heartbeat_timeout"] == 0
    assert master.policy.next_deadline(master.now) is not None


def test_readiness_follows_boot_reload_and_stop() -> None:
    master = Master()
    assert master.policy.readiness()[0] is False  # nothing ready yet
    master.boot()
    assert master.policy.readiness() == (True, "2 worker(s) ready")
    new = [a.wid for a in master.send(ReloadRequested(2)) if type(a).__name__ == "Spawn"]
    assert master.policy.readiness()[0] is False
    for wid in new:
        master.send(WorkerReady(wid))
    assert master.policy.restarts["reload"] == 2
    assert master.policy.readiness()[0] is False  # the previous workers are still draining
    master.send(WorkerExited(1, code=0))
    master.send(WorkerExited(2, code=0))
    assert master.policy.readiness()[0] is True
    master.send(StopRequested())
    assert master.policy.readiness() == (False, "shutting down")


def test_restarts_are_counted_by_cause() -> None:
    master = Master()
    wids = master.boot()
    master.send(WorkerExited(wids[0], signal=9))
    master.send(WorkerRetiring(wids[1]))
    master.send(WorkerRetiring(wids[1], "stuck", "wsgi_stuck"))  # asked twice: counted once
    assert dict(master.policy.restarts) == {"crash": 1, "max_requests": 1}
    master.send(Tick(), after=11.0)  # silent past the timeout: aborted
    assert master.policy.restarts["heartbeat_timeout"] >= 1


class Target:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix


def routed(prefix: str, duration: float) -> Cycle:
    cycle = Cycle(b"GET", 200, duration)
    cycle.dispatch_target = Target(prefix)  # type: ignore[attr-defined]
    return cycle


def test_mount_labels_come_from_the_configuration_root_first() -> None:
    from tricorn.config import Config

    assert mount_labels(Config.load(["bench.apps:hello"], env={})) == ()
    assert type(new_slot(Config.load(["bench.apps:hello"], env={}))) is MetricsSlot
    config = Config.load(["--mount", "/z/=bench.apps:hello", "--mount", "/api=bench.apps:hello"], env={})
    assert mount_labels(config) == ("/", "/api", "/z")
    config = Config.load(["bench.apps:hello", "--static", "/files/=.", "--cgi", "/cgi-bin=."], env={})
    assert mount_labels(config) == ("/", "/cgi-bin", "/files")


def test_requests_are_counted_by_mount_and_kept_across_a_reload_that_adds_mounts() -> None:
    live, dead = MountsSlot(("/", "/api")), MountsSlot(("/", "/api"))
    retired = MetricsSlot(("/", "/api"))
    try:
        live.request_done(routed("/api", 0.5), 1000.0)
        live.request_done(routed("/gone", 0.5), 1000.0)  # not in the table it was sized for: not counted
        live.request_done(Cycle(b"GET", 200, 0.1), 1000.0)  # made outside the table
        dead.request_done(routed("/", 0.25), 1000.0)
        retired.add(dead)
        retired = retired.widened(("/", "/api", "/new"))
        assert retired.mounts == ("/", "/api", "/new")
        page = metrics.render([live], retired, metrics.ProcessTotals([]))
        samples = parse(page)
        assert samples[("http_server_requests_total", labels("GET", "200"))] == 4
        assert samples[("tricorn_mount_requests_total", (("mount", "/"),))] == 1
        assert samples[("tricorn_mount_requests_total", (("mount", "/api"),))] == 1
        assert samples[("tricorn_mount_requests_total", (("mount", "/new"),))] == 0
        assert samples[("tricorn_mount_request_duration_seconds_total", (("mount", "/api"),))] == 0.5
        assert samples[("tricorn_mount_request_duration_seconds_total", (("mount", "/"),))] == 0.25
    finally:
        for slot in (live, dead, retired):
            slot.close()
