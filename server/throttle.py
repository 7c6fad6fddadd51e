"""Rate limits per connection and per client address, so one client cannot crowd out others."""

from __future__ import annotations

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from server.settings import Settings


class Throttle:
    """Counts what each connection and each address does; `allow` says whether one more is ok.

    Limits are per instance (kept in memory, no round trip per event): behind N instances a
    client may get up to N times the limit, which still stops floods.
    """

    def __init__(self, settings: Settings) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._rules: dict[str, list[RateLimitItem]] = {
            "event": parse_many(settings.limit_events),
            "connect": parse_many(settings.limit_connects),
            "create": parse_many(settings.limit_creates),
        }

    def allow(self, kind: str, key: str) -> bool:
        # Every rule of the kind is counted, so "20/second;300/minute" bounds bursts and totals.
        return all([self._limiter.hit(rule, kind, key) for rule in self._rules[kind]])

    def forget(self, kind: str, key: str) -> None:
        for rule in self._rules[kind]:
            self._limiter.clear(rule, kind, key)


SLOW_DOWN = "You are sending too much too fast; wait a moment and try again."
