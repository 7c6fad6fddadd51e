"""Rate limits per connection and per client address, so one client cannot crowd out others."""

from __future__ import annotations

import time
from collections.abc import Callable

from server.settings import Settings, parse_rates

SLOW_DOWN = "You are sending too much too fast; wait a moment and try again."


class Throttle:
    """Token buckets per (kind, key): `allow` says whether one more action is within every rate
    of its kind. Counted per instance and in memory: no round trip per event, and behind N
    instances a client gets at most N times the limit, which still stops floods.

    (A library's in-memory store ran a cleanup thread every 10 ms, several percent of an
    instance's CPU at 1,000 connections; buckets that refill lazily need no cleanup thread.)
    """

    MAX_KEYS = 100_000

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self._rates = {
            "event": parse_rates(settings.limit_events),
            "connect": parse_rates(settings.limit_connects),
            "create": parse_rates(settings.limit_creates),
        }
        self._clock = clock
        # (kind, key) -> (tokens left per rate, time of last refill)
        self._buckets: dict[tuple[str, str], tuple[list[float], float]] = {}

    def allow(self, kind: str, key: str) -> bool:
        rates = self._rates[kind]
        now = self._clock()
        tokens, last = self._buckets.get((kind, key), ([float(r.count) for r in rates], now))
        elapsed = now - last
        tokens = [
            min(float(r.count), t + elapsed * r.count / r.seconds)
            for r, t in zip(rates, tokens, strict=True)
        ]
        allowed = all(t >= 1.0 for t in tokens)
        if allowed:
            tokens = [t - 1.0 for t in tokens]
        if len(self._buckets) >= self.MAX_KEYS:
            self._forget_full_buckets(now)
        self._buckets[(kind, key)] = (tokens, now)
        return allowed

    def forget(self, kind: str, key: str) -> None:
        self._buckets.pop((kind, key), None)

    def _forget_full_buckets(self, now: float) -> None:
        # A bucket that has refilled completely holds no information: drop it.
        for bucket_key, (tokens, last) in list(self._buckets.items()):
            rates = self._rates[bucket_key[0]]
            if all(
                t + (now - last) * r.count / r.seconds >= r.count
                for r, t in zip(rates, tokens, strict=True)
            ):
                del self._buckets[bucket_key]
