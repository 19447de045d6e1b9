"""ServerState's clock tick: every connection whose deadline has passed is told so, and decides for itself
what that means in its phase (review §5.6: the tick compared the numbering of two connection enums)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from enum import Enum
from typing import Any

import pytest

from tricorn.config import Config
from tricorn.io.server import ServerState


class OtherPhase(Enum):
    WAITING = 7  # numbered as this kind of connection likes


class Connection:
    """A connection of some kind the tick knows nothing about."""

    phase = OtherPhase.WAITING

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.told: list[float] = []

    def timeout(self, now: float) -> None:
        self.told.append(now)


async def app(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("no request is served here")


@pytest.fixture
def state() -> Iterator[ServerState]:
    loop = asyncio.new_event_loop()
    state = ServerState(Config(), app, loop, "h11")
    yield state
    if state._tick_handle is not None:
        state._tick_handle.cancel()
    loop.close()


def test_the_tick_tells_each_connection_past_its_deadline_whatever_its_phase(state: ServerState) -> None:
    due, later = Connection(deadline=0.0), Connection(deadline=math.inf)
    state.connections.update((due, later))
    state._on_tick()
    assert len(due.told) == 1
    assert later.told == []
