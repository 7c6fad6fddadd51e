"""The cap on repeated log lines (server.logs)."""

from __future__ import annotations

import logging

from server.logs import RepeatLimit


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record(msg: str, level: int = logging.WARNING, name: str = "server.gate") -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, (), None)


def test_a_repeated_warning_is_shown_a_few_times_then_held_back() -> None:
    limit = RepeatLimit(burst=3, per=60, clock=Clock())
    shown = [limit.filter(record("closing connection %s")) for _ in range(1000)]
    assert shown.count(True) == 3


def test_the_next_line_shown_says_how_many_were_held_back() -> None:
    clock = Clock()
    limit = RepeatLimit(burst=2, per=60, clock=clock)
    for _ in range(10):
        limit.filter(record("bad packet from %s"))
    clock.now = 30.0  # one token back
    again = record("bad packet from %s")
    assert limit.filter(again)
    assert again.getMessage() == "bad packet from %s [8 similar lines held back]"


def test_templates_are_counted_apart_and_info_lines_always_pass() -> None:
    limit = RepeatLimit(burst=1, per=60, clock=Clock())
    assert limit.filter(record("one"))
    assert not limit.filter(record("one"))
    assert limit.filter(record("two"))
    assert limit.filter(record("one", name="other.logger"))
    assert all(limit.filter(record("one", level=logging.INFO)) for _ in range(100))


def test_memory_is_bounded_by_the_number_of_templates() -> None:
    limit = RepeatLimit(burst=1, per=60, max_templates=50, clock=Clock())
    for n in range(10_000):
        limit.filter(record(f"line {n}"))
    assert len(limit._seen) == 50
