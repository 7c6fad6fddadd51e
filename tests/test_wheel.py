"""server.sio.wheel: many connections' timers on one event-loop timer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from server.sio.wheel import Wheel


async def test_callbacks_run_in_order_never_before_their_time_and_at_most_a_slot_late() -> None:
    wheel = Wheel(resolution=0.02)
    loop = asyncio.get_running_loop()
    started = loop.time()
    ran: list[tuple[str, float]] = []

    def note(name: str, delay: float) -> Callable[[], None]:
        return lambda: ran.append((name, loop.time() - started - delay))

    for name, delay in (("c", 0.15), ("a", 0.05), ("b", 0.1), ("a2", 0.05), ("now", 0.0)):
        wheel.call_later(delay, note(name, delay))
    assert len(wheel) == 5
    await asyncio.sleep(0.3)
    assert [name for name, _ in ran] == ["now", "a", "a2", "b", "c"]
    # Late by at most a slot (and the loop's own delay), early by at most a clock tick.
    assert all(-0.003 <= late <= 0.02 + 0.05 for _, late in ran), ran
    assert len(wheel) == 0


async def test_an_earlier_callback_rearms_the_timer_and_one_added_while_firing_runs() -> None:
    wheel = Wheel(resolution=0.01)
    ran: list[str] = []
    wheel.call_later(10, lambda: ran.append("late"))

    def first() -> None:
        ran.append("first")
        wheel.call_later(0, lambda: ran.append("then"))

    wheel.call_later(0.02, first)
    await asyncio.sleep(0.1)
    assert ran == ["first", "then"]
    assert len(wheel) == 1


async def test_a_failing_callback_is_logged_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    wheel = Wheel(resolution=0.01)
    ran: list[int] = []

    def fails() -> None:
        raise RuntimeError("boom")

    wheel.call_later(0.01, fails)
    wheel.call_later(0.01, lambda: ran.append(1))
    with caplog.at_level(logging.ERROR, logger="server.sio.wheel"):
        await asyncio.sleep(0.05)
    assert ran == [1]
    assert "timer failed" in caplog.text


def test_a_new_event_loop_starts_afresh() -> None:
    wheel = Wheel(resolution=0.01)
    ran: list[str] = []

    async def schedule(name: str, delay: float, wait: float) -> None:
        wheel.call_later(delay, lambda: ran.append(name))
        await asyncio.sleep(wait)

    asyncio.run(schedule("left behind", 5, 0))  # its loop ends before it is due
    asyncio.run(schedule("runs", 0.01, 0.05))
    assert ran == ["runs"]
