"""Token-bucket rate limits: bursts up to the limit, refills over time, every rate counts."""

from __future__ import annotations

import pytest

from server.settings import Rate, Settings, parse_rates
from server.throttle import Throttle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def throttle(clock: Clock, events: str = "5/second;8/minute") -> Throttle:
    return Throttle(Settings(limit_events=events), clock=clock)


def test_a_burst_up_to_the_limit_passes_and_the_next_waits() -> None:
    clock = Clock()
    limits = throttle(clock, "5/second")
    assert [limits.allow("event", "a") for _ in range(6)] == [True] * 5 + [False]
    clock.now += 0.2  # one token back
    assert limits.allow("event", "a") is True
    assert limits.allow("event", "a") is False


def test_keys_and_kinds_are_counted_apart() -> None:
    clock = Clock()
    limits = throttle(clock, "1/second")
    assert limits.allow("event", "a") and limits.allow("event", "b")
    assert limits.allow("connect", "a")  # connects have their own (default) rate
    assert not limits.allow("event", "a")


def test_every_rate_of_a_kind_must_allow() -> None:
    clock = Clock()
    limits = throttle(clock)  # 5/second and 8/minute
    allowed = 0
    for _ in range(20):
        allowed += limits.allow("event", "a")
        clock.now += 0.5
    assert allowed == 8 + 1  # the minute budget, plus what refilled in 10 s


def test_forgetting_a_key_gives_it_a_full_bucket() -> None:
    clock = Clock()
    limits = throttle(clock, "1/minute")
    assert limits.allow("event", "a") and not limits.allow("event", "a")
    limits.forget("event", "a")
    assert limits.allow("event", "a")


def test_full_buckets_are_dropped_when_there_are_too_many(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    limits = throttle(clock, "10/second")
    monkeypatch.setattr(Throttle, "MAX_KEYS", 3)
    for key in "abc":
        limits.allow("event", key)
    clock.now += 5  # all refilled
    limits.allow("event", "d")
    assert len(limits._buckets) == 1


@pytest.mark.parametrize(
    ("text", "rates"),
    [
        ("20/second", [Rate(20, 1.0)]),
        ("10/minute; 100/day", [Rate(10, 60.0), Rate(100, 86400.0)]),
        (" 3 / hour ", [Rate(3, 3600.0)]),
    ],
)
def test_rates_are_read_from_text(text: str, rates: list[Rate]) -> None:
    assert parse_rates(text) == rates


@pytest.mark.parametrize("text", ["", "lots", "0/second", "5/fortnight", "5/second;"])
def test_unreadable_rates_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="cannot read rate"):
        parse_rates(text)
