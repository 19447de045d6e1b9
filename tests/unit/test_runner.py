"""tricorn.io.runner.AppRunner on a real event loop (asyncio and uvloop), without a server.

The runner is driven the way the HTTP shell drives it: ``run`` or ``step`` from a loop callback, never from
inside a task. The coroutines here are bare (no request wrapper), so what the runner itself guarantees is
what is seen: eager completion, the hand-over to the host task, its identity, contexts, cancellation.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import inspect
import weakref
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from tricorn.io.loop import new_event_loop
from tricorn.io.runner import AppRunner, Hosts

T = TypeVar("T")

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")


@pytest.fixture(params=["asyncio", "uvloop"])
def loop(request: pytest.FixtureRequest) -> Iterator[asyncio.AbstractEventLoop]:
    loop = new_event_loop(request.param)
    yield loop
    # What a test left waiting ends here, not at garbage collection (the runners are closed by then, so a
    # host whose request is cancelled ends with it).
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.wait(pending))
    loop.close()


@pytest.fixture
def new_runner(loop: asyncio.AbstractEventLoop) -> Iterator[Callable[[], AppRunner]]:
    """``new_runner()``: an AppRunner on ``loop``, as one connection has; all are closed after the test."""
    made: list[AppRunner] = []

    def make() -> AppRunner:
        runner = AppRunner(loop)
        made.append(runner)
        return runner

    yield make
    for runner in made:
        runner.close()


def in_callback(loop: asyncio.AbstractEventLoop, fn: Callable[[], T]) -> T:
    """Run ``fn`` from a loop callback (outside any task, as a transport callback runs) and return its
    result; the loop runs until then."""
    out: asyncio.Future[T] = loop.create_future()

    def callback() -> None:
        try:
            out.set_result(fn())
        except BaseException as exc:
            out.set_exception(exc)

    loop.call_soon(callback)
    return loop.run_until_complete(out)


def run_until(loop: asyncio.AbstractEventLoop, condition: Callable[[], object], what: str) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.001)  # polling a condition, not waiting for time to pass

    try:
        loop.run_until_complete(asyncio.wait_for(poll(), 10))
    except TimeoutError:
        raise AssertionError(f"{what}: not reached") from None


def waiting(task: asyncio.Task[Any]) -> bool:
    """``task`` has run and waits for something (a request's future, or its next request)."""
    return inspect.getcoroutinestate(task.get_coro()) == inspect.CORO_SUSPENDED  # type: ignore[arg-type]


# -- eager completion, hand-over, identity, context


def test_a_coroutine_that_never_suspends_ends_inside_step_without_a_task_of_its_own(
    loop: asyncio.AbstractEventLoop, new_runner: Callable[[], AppRunner]
) -> None:
    runner = new_runner()
    seen: list[asyncio.Task[Any] | None] = []

    async def app() -> None:
        seen.append(asyncio.current_task())

    def step() -> tuple[asyncio.Task[None] | None, int]:
        own = runner.step(app())
        return own, len(seen)  # counted before the loop turns again

    own, count_at_return = in_callback(loop, step)
    assert own is None
    assert count_at_return == 1
    assert seen == [runner.host]  # it ran as the host task, the only task there is
    assert asyncio.all_tasks(loop) == {runner.host}
    assert not runner.busy


def test_a_coroutine_that_suspends_is_finished_by_the_host(
    loop: asyncio.AbstractEventLoop, new_runner: Callable[[], AppRunner]
) -> None:
    runner = new_runner()
    gate: asyncio.Future[str] = loop.create_future()
    log: list[str] = []

    async def app() -> None:
        log.append("first step")
        log.append(await gate)

    assert in_callback(loop, lambda: runner.step(app())) is None
    assert log == ["first step"]
    assert runner.busy
    gate.set_result("resumed")
    run_until(loop, lambda: not runner.busy, "the request finished")
    assert log == ["first step", "resumed"]
    assert runner.host is not None and not runner.host.done()  # waiting for the next request


def test_current_task_is_the_same_before_and_after_the_suspension(
    loop: asyncio.AbstractEventLoop, new_runner: Callable[[], AppRunner]
) -> None:
    runner = new_runner()
    seen: list[asyncio.Task[Any] | None] = []

    async def app() -> None:
        seen.append(asyncio.current_task())
        async with asyncio.timeout(30):  # needs a current task; entered before, left after the suspension
            await asyncio.sleep(0)
        seen.append(asyncio.current_task())

    in_callback(loop, lambda: runner.step(app()))
    run_until(loop, lambda: len(seen) == 2, "the request finished")
    assert seen[0] is not None
    assert seen[0] is seen[1] is runner.host


def test_context_variables_stay_with_their_request(
    loop: asyncio.AbstractEventLoop, new_runner: Callable[[], AppRunner]
) -> None:
    runner = new_runner()
    seen: dict[str, str] = {}
    gate: asyncio.Future[None] = loop.create_future()

    async def app(name: str) -> None:
        seen[f"{name} before"] = REQUEST_ID.get()
        REQUEST_ID.set(name)
        await gate
        seen[f"{name} after"] = REQUEST_ID.get()

    async def quick(name: str) -> None:
        seen[name] = REQUEST_ID.get()
        REQUEST_ID.set(name)

    in_callback(loop, lambda: runner.step(app("first")))
    second = in_callback(loop, lambda: runner.step(app("second")))  # the host is busy: a task of its own
    assert second is not None
    gate.set_result(None)
    run_until(loop, lambda: not runner.busy and second.done(), "both requests finished")
    in_callback(loop, lambda: runner.step(quick("third")))
    assert seen == {
        "first before": "none",
        "second before": "none",
        "first after": "first",
        "second after": "second",
        "third": "none",
    }
    assert REQUEST_ID.get() == "none"  # nothing leaked into the caller's context


# -- cancellation


def test_cancelling_the_host_is_delivered_to_the_request(
    loop: asyncio.AbstractEventLoop, new_runner: Callable[[], AppRunner]
) -> None:
    runner = new_runner()
    log: list[str] = []

    async def app() -> None:
        try:
            await loop.create_future()
        except asyncio.CancelledError:
            log.append("cancelled")
            raise

    in_callback(loop, lambda: runner.step(app()))
    host = runner.host
    assert host is not None
    run_until(loop, lambda: waiting(host), "the host waits for the request")
    host.cancel()
    run_until(loop, lambda: not runner.busy, "the request ended")
    assert log == ["cancelled"]
    # The cancellation was the request's: the host goes on, with nothing pending, for the next one.
    assert not host.done() and host.cancelling() == 0

    async def next_request() -> None:
        log.append("next")
        await asyncio.sleep(0)
        assert asyncio.current_task() is host

    in_callback(loop, lambda: runner.step(next_request()))
    run_until(loop, lambda: not runner.busy, "the next request ended")
    assert log == ["cancelled", "next"]


def start_host(loop: asyncio.AbstractEventLoop, runner: AppRunner, host: str) -> None:
    """``fresh``: leave the runner without a host, so the next step makes one that has not run yet;
    ``running``: serve one request first, so the host has run and waits for work."""
    if host == "running":

        async def quick() -> None:
            pass

        in_callback(loop, lambda: runner.step(quick()))
        first = runner.host
        assert first is not None
        run_until(loop, lambda: waiting(first), "the host waits for work")


@pytest.mark.parametrize("host", ["fresh", "running"])
@pytest.mark.parametrize("handled", [True, False], ids=["handled", "unhandled"])
@pytest.mark.parametrize("by", ["request", "outside"])
def test_a_cancellation_before_the_host_resumes_the_request_is_delivered_to_it(
    loop: asyncio.AbstractEventLoop, new_runner: Callable[[], AppRunner], host: str, handled: bool, by: str
) -> None:
    # by the request, before it first suspends. Review §5.1: host.cancel() cancels the host's wait for work
    # (running host), or stays pending on a host that has not run yet (3.11, 3.12, even after uncancel());
    # either way the request was dropped.
    # from outside, once the request was handed to its host and before the host ran again (a server
    # shutting down, an expired asyncio.timeout's callback): the cancellation reached the host's wait for
    # work and was taken for one the request had made itself, which it had not, and was lost.
    runner = new_runner()
    start_host(loop, runner, host)
    log: list[str] = []

    async def app() -> None:
        task = asyncio.current_task()
        assert task is not None
        if by == "request":
            task.cancel()
        try:
            await loop.create_future()  # never set: only a cancellation ends this wait
        except asyncio.CancelledError:
            log.append("cancelled")
            if not handled:
                raise
        assert asyncio.current_task() is task
        log.append("answered")

    coro = app()

    def start() -> None:
        runner.step(coro)
        if by == "outside":
            task = runner.host
            assert task is not None and runner.busy
            task.cancel()

    in_callback(loop, start)
    run_until(loop, lambda: not runner.busy, "the request ended")
    assert log == (["cancelled", "answered"] if handled else ["cancelled"])
    assert coro.cr_frame is None  # finished, not merely abandoned
    assert_serves_on(loop, runner)


@pytest.mark.parametrize("host", ["fresh", "running"])
def test_a_request_that_cancels_its_task_and_ends_in_its_first_step_leaves_the_runner_usable(
    loop: asyncio.AbstractEventLoop, new_runner: Callable[[], AppRunner], host: str
) -> None:
    # A host that had not run was ended by that cancellation before its first line, and stayed the host:
    # the connection's next request that suspended was never resumed (every Python version).
    runner = new_runner()
    start_host(loop, runner, host)

    async def app() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()

    in_callback(loop, lambda: runner.step(app()))
    assert_serves_on(loop, runner)


def assert_serves_on(loop: asyncio.AbstractEventLoop, runner: AppRunner) -> None:
    """The runner's next request, which suspends, is resumed in one task and not cancelled."""
    log: list[str] = []

    async def next_request() -> None:
        task = asyncio.current_task()
        await asyncio.sleep(0)
        assert asyncio.current_task() is task
        log.append("served")

    in_callback(loop, lambda: runner.step(next_request()))
    run_until(loop, lambda: log, "the next request ended")
    assert not runner.busy


# -- a busy host, closing, failures


def test_a_busy_host_gives_the_next_coroutine_a_task_of_its_own(
    loop: asyncio.AbstractEventLoop, new_runner: Callable[[], AppRunner]
) -> None:
    runner = new_runner()
    gate: asyncio.Future[None] = loop.create_future()
    log: list[str] = []

    async def first() -> None:
        await gate
        log.append("first")

    async def second() -> None:
        await asyncio.sleep(0)
        log.append("second")

    in_callback(loop, lambda: runner.step(first()))
    own = in_callback(loop, lambda: runner.step(second()))
    assert own is not None and own is not runner.host
    assert runner.tasks == {own}
    run_until(loop, own.done, "the second request ended")
    assert runner.tasks == set()  # held while it runs, not after
    gate.set_result(None)
    run_until(loop, lambda: not runner.busy, "the first request ended")
    assert log == ["second", "first"]


def test_a_task_of_its_own_is_held_while_it_waits(
    loop: asyncio.AbstractEventLoop, new_runner: Callable[[], AppRunner]
) -> None:
    # Review §5.7: the loop holds tasks weakly; one waiting on a future only it can reach was collected.
    runner = new_runner()
    log: list[str] = []

    async def busy() -> None:
        await loop.create_future()

    async def waits_on_its_own_future() -> None:
        try:
            await loop.create_future()
        finally:
            log.append("ended")

    in_callback(loop, lambda: runner.step(busy()))
    own = in_callback(loop, lambda: runner.step(waits_on_its_own_future()))
    assert own is not None
    ref = weakref.ref(own)
    del own

    def task_waits() -> bool:
        task = ref()
        return task is not None and waiting(task)

    run_until(loop, task_waits, "the task waits")
    gc.collect()
    task = ref()
    assert task is not None and not task.done()
    assert log == []


def test_close_ends_an_idle_host(
    loop: asyncio.AbstractEventLoop, new_runner: Callable[[], AppRunner]
) -> None:
    runner = new_runner()

    async def quick() -> None:
        pass

    in_callback(loop, lambda: runner.step(quick()))
    host = runner.host
    assert host is not None
    runner.close()
    run_until(loop, host.done, "the host ended")
    assert runner.host is None


def test_close_lets_a_suspended_request_finish_then_ends_the_host(
    loop: asyncio.AbstractEventLoop, new_runner: Callable[[], AppRunner]
) -> None:
    # The connection closes in the same loop turn as the request's first step (a response with
    # Connection: close, then work after it): the host still resumes the request.
    runner = new_runner()
    log: list[str] = []

    async def quick() -> None:
        pass

    async def app() -> None:
        loop.call_soon(runner.close)
        await asyncio.sleep(0)
        log.append("work after the response")

    in_callback(loop, lambda: runner.step(quick()))
    host = runner.host
    assert host is not None
    run_until(loop, lambda: waiting(host), "the host waits for work")
    in_callback(loop, lambda: runner.step(app()))
    run_until(loop, host.done, "the host ended")
    assert log == ["work after the response"]
    assert not runner.busy


def test_an_exception_in_the_first_step_goes_to_the_caller(
    loop: asyncio.AbstractEventLoop, new_runner: Callable[[], AppRunner]
) -> None:
    # The request wrapper (HTTPCycle.run) catches everything; the runner adds nothing of its own.
    runner = new_runner()

    async def app() -> None:
        raise ValueError("before any await")

    with pytest.raises(ValueError, match="before any await"):
        in_callback(loop, lambda: runner.step(app()))
    assert not runner.busy
    assert asyncio.current_task(loop) is None  # the host is no longer entered


def test_an_exception_after_the_suspension_ends_only_that_request(
    loop: asyncio.AbstractEventLoop, new_runner: Callable[[], AppRunner]
) -> None:
    runner = new_runner()
    seen: list[asyncio.Task[Any] | None] = []

    async def failing() -> None:
        await asyncio.sleep(0)
        raise RuntimeError("after an await")

    async def next_request() -> None:
        await asyncio.sleep(0)
        seen.append(asyncio.current_task())

    in_callback(loop, lambda: runner.step(failing()))
    host = runner.host
    run_until(loop, lambda: not runner.busy, "the failing request ended")
    in_callback(loop, lambda: runner.step(next_request()))
    run_until(loop, lambda: seen, "the next request ended")
    assert seen == [host]


# -- batching


def test_run_steps_the_coroutines_of_one_turn_together_after_the_current_callbacks(
    loop: asyncio.AbstractEventLoop, new_runner: Callable[[], AppRunner]
) -> None:
    runners = [new_runner() for _ in range(3)]
    log: list[str] = []

    async def app(name: str) -> None:
        log.append(name)

    def start() -> None:
        loop.call_soon(log.append, "callback scheduled first")
        for i, runner in enumerate(runners):
            runner.run(app(f"request {i}"))
        log.append("run returned")

    in_callback(loop, start)
    run_until(loop, lambda: len(log) == 5, "every request ran")
    assert log == ["run returned", "callback scheduled first", "request 0", "request 1", "request 2"]


def test_a_closed_loop_is_not_kept_alive_by_its_batch() -> None:
    def serve_once() -> weakref.ref[asyncio.AbstractEventLoop]:
        loop = asyncio.new_event_loop()
        runner = AppRunner(loop)
        ran: list[bool] = []

        async def app() -> None:
            ran.append(True)

        in_callback(loop, lambda: runner.run(app()))
        run_until(loop, lambda: ran, "the request ran")
        runner.close()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()
        return weakref.ref(loop)

    ref = serve_once()
    gc.collect()
    assert ref() is None


# -- host tasks shared by the connections of a server


def test_connections_whose_requests_never_wait_share_one_host_task(loop: asyncio.AbstractEventLoop) -> None:
    hosts = Hosts(loop)
    runners = [AppRunner(loop, hosts) for _ in range(3)]
    seen: list[asyncio.Task[Any] | None] = []

    async def quick() -> None:
        seen.append(asyncio.current_task())

    for runner in runners:
        in_callback(loop, lambda runner=runner: runner.step(quick()))  # type: ignore[misc]
        runner.close()  # a new connection per request: closing one leaves the spare to the others
    assert hosts.spare is not None
    assert seen == [hosts.spare.task] * 3
    assert asyncio.all_tasks(loop) == {hosts.spare.task}  # one task for all three connections
    spare = hosts.spare.task
    hosts.close()
    run_until(loop, spare.done, "the spare ended")
    assert asyncio.all_tasks(loop) == set()


def test_a_request_that_waits_keeps_its_host_and_another_serves_the_rest(
    loop: asyncio.AbstractEventLoop,
) -> None:
    hosts = Hosts(loop)
    a, b = AppRunner(loop, hosts), AppRunner(loop, hosts)
    gate: asyncio.Future[None] = loop.create_future()
    tasks: dict[str, asyncio.Task[Any] | None] = {}

    async def slow() -> None:
        tasks["slow, before"] = asyncio.current_task()
        await gate
        tasks["slow, after"] = asyncio.current_task()

    async def quick() -> None:
        tasks["quick"] = asyncio.current_task()

    in_callback(loop, lambda: a.step(slow()))
    assert a.busy and a.host is tasks["slow, before"] and hosts.spare is None
    in_callback(loop, lambda: b.step(quick()))
    assert tasks["quick"] is not tasks["slow, before"]  # a new spare: the first host is a's alone now
    gate.set_result(None)
    run_until(loop, lambda: not a.busy, "the slow request ended")
    assert tasks["slow, after"] is tasks["slow, before"]
    # There was a spare already: the first host ended, so one host task is left, not one per connection.
    first = tasks["slow, before"]
    assert first is not None
    run_until(loop, first.done, "the first host ended")
    assert hosts.spare is not None and hosts.spare.task is tasks["quick"]
    hosts.close()


def test_a_request_that_cancels_the_shared_host_cancels_no_other_connection(
    loop: asyncio.AbstractEventLoop,
) -> None:
    hosts = Hosts(loop)
    a, b = AppRunner(loop, hosts), AppRunner(loop, hosts)

    async def cancels() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()

    def both() -> None:  # in one loop turn, before the cancelled host has run again
        a.step(cancels())
        assert_steps_uncancelled(b)

    log: list[str] = []

    def assert_steps_uncancelled(runner: AppRunner) -> None:
        async def waits() -> None:
            task = asyncio.current_task()
            await asyncio.sleep(0)
            assert asyncio.current_task() is task
            log.append("served")

        runner.step(waits())

    in_callback(loop, both)
    run_until(loop, lambda: log, "b's request ended")
    assert not b.busy
    hosts.close()


def test_one_turn_of_requests_that_wait_cancel_or_finish_each_runs_in_the_right_task(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """The batch keeps the spare entered from one request to the next: each request still sees its own
    host as the current task, a new spare after one that waits or cancels its task, a task of its own on a
    busy connection, and no task is left current once the turn's requests have run."""
    hosts = Hosts(loop)
    a, b, c, d, e, f = (AppRunner(loop, hosts) for _ in range(6))
    gate: asyncio.Future[None] = loop.create_future()
    seen: dict[str, asyncio.Task[Any] | None] = {}
    after: list[asyncio.Task[Any] | None] = []

    def quick(name: str) -> Any:
        async def app() -> None:
            seen[name] = asyncio.current_task()

        return app()

    async def waits() -> None:
        seen["waits"] = asyncio.current_task()
        await gate
        seen["waits, after"] = asyncio.current_task()

    async def cancels() -> None:
        seen["cancels"] = task = asyncio.current_task()
        assert task is not None
        task.cancel()

    def turn() -> None:
        a.run(quick("a1"))
        a.run(quick("a2"))
        b.run(waits())
        b.run(quick("b, busy"))  # its connection's host drives "waits": a task of its own
        c.run(quick("c"))
        d.run(cancels())
        e.run(quick("e"))
        f.run(quick("f"))
        loop.call_soon(lambda: after.append(asyncio.current_task()))

    in_callback(loop, turn)
    run_until(loop, lambda: after and "f" in seen and "b, busy" in seen, "the turn ran")
    assert after == [None]
    first = seen["a1"]
    assert first is not None and seen["a2"] is first and seen["waits"] is first
    second = seen["c"]
    assert second is not None and second is not first and seen["cancels"] is second
    third = seen["e"]
    assert third is not None and third not in (first, second) and seen["f"] is third
    assert seen["b, busy"] not in (None, first, second, third)
    assert hosts.spare is not None and hosts.spare.task is third
    gate.set_result(None)
    run_until(loop, lambda: "waits, after" in seen, "the waiting request ended")
    assert seen["waits, after"] is first
    hosts.close()
