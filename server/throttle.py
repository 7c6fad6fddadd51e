"""Rate limits per connection and per client address, so one client cannot crowd out others.

Every limit is a token bucket per key: "20/second" holds 20 tokens and gets 20 back a second,
so a burst of 20 passes at once and then one every 50 ms; several rates joined with ";" must
all allow. Socket events are counted per connection, in this process (a connection lives on one
instance). Connections, session creations, join code lookups and template checks are counted
per client address, with IPv6 addresses grouped by /64 (one home or office line), and, when
Redis is configured, in Redis, so that N instances do not allow N times the limit.

A check costs the same with ten known keys or a million: buckets sit in insertion order of
their last use, so the least recently used one is always first, and every check drops a few of
those once they have filled up again (a full bucket knows nothing worth keeping). A hard cap
drops the least recently used bucket even before it is full: only someone holding more
addresses than the cap can gain by that, and per-address limits cannot stop them anyway.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Literal, Protocol

from prometheus_client import Counter

from server.metrics import Metrics
from server.settings import Rate, Settings, parse_rates
from server.text import N_

log = logging.getLogger(__name__)

SLOW_DOWN = N_("You are sending too much too fast; wait a moment and try again.")

AddressKind = Literal["connect", "create", "join", "validate", "sync"]

# Refusals a connection may run into (a minute's worth) before it is closed: a client that
# keeps sending past its limits is not slowed down, it is let go.
STRIKES = "300/minute"

# Full buckets dropped per check: more than one, so the table shrinks faster than it grows.
_SWEEP = 2


# Tokens left per rate, and the time of the last refill.
_Bucket = tuple[list[float], float]


class Buckets:
    """Token buckets for one kind of action, keyed by who acts."""

    def __init__(
        self,
        rates: list[Rate],
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rates = rates
        self.max_keys = max_keys
        self.clock = clock
        self._refills = refills(rates)
        self._full = tuple(count for count, _ in self._refills)
        # A bucket left alone this long is full again, however empty it was.
        self._full_after = max((r.seconds for r in rates), default=0.0)
        # Least recently used first.
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def allow(self, key: str) -> bool:
        now = self.clock()
        buckets = self._buckets
        found = buckets.pop(key, None)
        if found is None:
            tokens, elapsed = list(self._full), 0.0
        else:
            tokens, last = found
            elapsed = now - last
        allowed = _take(self._refills, tokens, elapsed)  # (as a connection's frame budget)
        # Drop a few of the least recently used buckets that have filled up again (a full
        # bucket knows nothing worth keeping), then any past the cap.
        for _ in range(_SWEEP):
            oldest = next(iter(buckets), None)
            if oldest is None or now - buckets[oldest][1] < self._full_after:
                break
            del buckets[oldest]
        while len(buckets) >= self.max_keys:
            buckets.popitem(last=False)
        buckets[key] = (tokens, now)
        return allowed

    def forget(self, key: str) -> None:
        self._buckets.pop(key, None)

    def __len__(self) -> int:
        return len(self._buckets)


# A token bucket's rates, ready for the hot path: (count, refill per second) each.
Refills = tuple[tuple[float, float], ...]


def refills(rates: list[Rate]) -> Refills:
    return tuple((float(r.count), r.count / r.seconds) for r in rates)


class FrameBudget:
    """One connection's frame budget (token buckets at `frames`) and the refusals it may run
    into (`strikes`) before it is closed: one small object per connection, no key to look up on
    the hot path (the rates are shared by every connection)."""

    __slots__ = ("_frames", "_last", "_strike_last", "_strike_tokens", "_strikes", "_tokens")

    def __init__(self, frames: Refills, strikes: Refills) -> None:
        self._frames = frames
        self._strikes = strikes
        self._tokens = [count for count, _ in frames]
        self._strike_tokens = [count for count, _ in strikes]
        self._last = self._strike_last = time.monotonic()

    def take(self) -> bool:
        """A frame arrived: False if it is over the budget."""
        now = time.monotonic()
        allowed = _take(self._frames, self._tokens, now - self._last)
        self._last = now
        return allowed

    def strike(self) -> bool:
        """A refusal: False once the connection has run into its limits too often."""
        now = time.monotonic()
        allowed = _take(self._strikes, self._strike_tokens, now - self._strike_last)
        self._strike_last = now
        return allowed


def _take(rates: Refills, tokens: list[float], elapsed: float) -> bool:
    allowed = True
    for i, (count, per_second) in enumerate(rates):
        left = min(count, tokens[i] + elapsed * per_second)
        tokens[i] = left
        allowed = allowed and left >= 1.0
    if allowed:
        for i in range(len(tokens)):
            tokens[i] -= 1.0
    return allowed


class SharedLimiter(Protocol):
    """Per-address buckets kept where every instance sees them (Redis)."""

    async def allow(self, kind: str, key: str, rates: list[Rate]) -> bool:
        """Take a token; raises if the shared store cannot be reached."""
        ...


class Throttle:
    def __init__(
        self,
        settings: Settings,
        *,
        shared: SharedLimiter | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
        metrics: Metrics | None = None,
    ) -> None:
        self.events = Buckets(parse_rates(settings.limit_events), max_keys=max_keys, clock=clock)
        self.syncs = Buckets(parse_rates(settings.limit_syncs), max_keys=max_keys, clock=clock)
        self.strikes = Buckets(parse_rates(STRIKES), max_keys=max_keys, clock=clock)
        # Called with a connection that keeps running into its limits (the app closes it).
        self.on_strikeout: Callable[[str], None] = lambda sid: None
        self.addresses: dict[AddressKind, Buckets] = {
            "connect": Buckets(
                parse_rates(settings.limit_connects), max_keys=max_keys, clock=clock
            ),
            "create": Buckets(parse_rates(settings.limit_creates), max_keys=max_keys, clock=clock),
            "join": Buckets(parse_rates(settings.limit_join_codes), max_keys=max_keys, clock=clock),
            "validate": Buckets(
                parse_rates(settings.limit_validations), max_keys=max_keys, clock=clock
            ),
            "sync": Buckets(
                parse_rates(settings.limit_syncs_per_address), max_keys=max_keys, clock=clock
            ),
        }
        self.shared = shared
        limited = (metrics or Metrics()).rate_limited
        self._limited_event = limited.labels("event")
        self._limited: dict[AddressKind, Counter] = {
            "connect": limited.labels("connect"),
            "create": limited.labels("create"),
            "join": limited.labels("join"),
            "validate": limited.labels("validate"),
            "sync": limited.labels("sync"),
        }

    def allow_event(self, sid: str) -> bool:
        if self.events.allow(sid):
            return True
        self._limited_event.inc()
        self.strike(sid)
        return False

    def allow_sync(self, sid: str) -> bool:
        """A snapshot asked for by connection `sid` (besides the event limit)."""
        if self.syncs.allow(sid):
            return True
        self._limited["sync"].inc()
        self.strike(sid)
        return False

    def strike(self, sid: str) -> None:
        """Connection `sid` ran into a limit; once it has done so too often, it is closed."""
        if not self.strikes.allow(sid):
            log.warning("closing connection %s: it keeps sending past its limits", sid)
            self.strikes.forget(sid)
            self.on_strikeout(sid)

    def forget_event(self, sid: str) -> None:
        self.events.forget(sid)
        self.syncs.forget(sid)
        self.strikes.forget(sid)

    async def allow_address(self, kind: AddressKind, address: str) -> bool:
        if await self._allow_address(kind, address):
            return True
        self._limited[kind].inc()
        return False

    async def _allow_address(self, kind: AddressKind, address: str) -> bool:
        key = address_key(address)
        buckets = self.addresses[kind]
        if self.shared is not None:
            try:
                return await self.shared.allow(kind, key, buckets.rates)
            except Exception as exc:  # a limiter outage must not stop people from joining
                log.warning("shared rate limits unavailable, counting locally: %s", exc)
        return buckets.allow(key)


def address_key(address: str) -> str:
    """Who a limit counts: an IPv4 address, or the /64 network of an IPv6 address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)
