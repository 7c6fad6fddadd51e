"""What an operator can watch (GET /metrics, Prometheus text format): every metric stackvote
exposes, declared here in one place, each in the app's own registry.

Values the code already keeps (how many sockets, rooms, copies, the event loop's lag, the
fan-out's message counts) are read when Prometheus scrapes, never counted a second time; the
rest are counters and histograms whose labelled children are bound once, so a hot path pays
one `inc()` or `observe()`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

# From a millisecond to seconds: fan-out latency, feed lag.
MS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# A Redis round trip on a local network is well under a millisecond.
REDIS_BUCKETS = (0.0001, 0.00025, 0.0005, *MS_BUCKETS)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class CounterReading(Collector):
    """A counter the code keeps itself as a plain number (on a path too hot for anything
    more), read when Prometheus scrapes: the counter's counterpart of Gauge.set_function."""

    def __init__(self, name: str, documentation: str, registry: CollectorRegistry) -> None:
        self.name = name
        self.documentation = documentation
        self._read: Callable[[], float] = lambda: 0.0
        registry.register(self)

    def set_function(self, read: Callable[[], float]) -> None:
        self._read = read

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily(self.name, self.documentation)

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(self.name, self.documentation, value=self._read())


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        # Each app has its own registry: several apps in one process (the tests) never share.
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry

        # Gauges, read at scrape time from what the code keeps anyway.
        self.connections = Gauge(
            "stackvote_connections", "Sockets connected to this instance.", registry=r
        )
        self.rooms = Gauge(
            "stackvote_rooms", "Sessions with at least one socket on this instance.", registry=r
        )
        self.sessions_held = Gauge(
            "stackvote_sessions_held",
            "Sessions this instance keeps a copy of (in use here, or being written).",
            registry=r,
        )
        self.event_loop_lag = Gauge(
            "stackvote_event_loop_lag_seconds",
            "How late the event loop runs (votes and connections are refused as busy past "
            "STACKVOTE_BUSY_LAG_MS).",
            registry=r,
        )
        self.event_loop_late = Histogram(
            "stackvote_event_loop_late_seconds",
            "How late each tick of the event loop's 100 ms timer fired (the worst wait any "
            "task had in that moment).",
            buckets=MS_BUCKETS,
            registry=r,
        )
        self.advice = CounterReading(
            "stackvote_advice_worked_out",
            "Recommendations worked out off the event loop (server.advice).",
            r,
        )
        self.feed_channels = Gauge(
            "stackvote_feed_channels",
            "Change channels (one per session, in Redis) this instance follows.",
            registry=r,
        )

        # Counters.
        self.votes = Counter(
            "stackvote_votes",
            "Votes answered: counted (stored), refused (not counted: rules, limits, busy, "
            "storage down) or unknown (storage stopped answering mid-write; left unanswered).",
            ["outcome"],
            registry=r,
        )
        self.controls = Counter(
            "stackvote_controls",
            "Facilitator commands answered: applied, refused or unknown (as for votes).",
            ["outcome"],
            registry=r,
        )
        self.rate_limited = Counter(
            "stackvote_rate_limited",
            "Refusals by a rate limit: socket events (per connection), connections, "
            "session creations, join code lookups and template checks (per client address).",
            ["kind"],
            registry=r,
        )
        self.feed_records = Counter(
            "stackvote_feed_records",
            "Changes stored by other instances and applied to this instance's copies.",
            registry=r,
        )
        self.feed_gaps = Counter(
            "stackvote_feed_gaps",
            "Times a copy was read again from the store because the change feed could not "
            "bring it up to date (a missing change, a change that did not apply, the feed "
            "interrupted, a copy found behind).",
            registry=r,
        )
        self.redis_errors = Counter(
            "stackvote_redis_errors",
            "Redis commands that failed (connection lost, timeout, error reply).",
            ["command"],
            registry=r,
        )
        # Counted by the fan-out as plain integers, once per message on its hottest loop.
        self.deltas = CounterReading(
            "stackvote_deltas", "Deltas built (one per room per flush that changed).", r
        )
        self.messages_sent = CounterReading(
            "stackvote_messages_sent",
            "Deltas and snapshots written to sockets (one per recipient).",
            r,
        )
        self.snapshots_sent = CounterReading(
            "stackvote_snapshots_sent",
            "Snapshots written to sockets (newcomers, resyncs, clients that asked).",
            r,
        )
        self.snapshots_built = CounterReading(
            "stackvote_snapshots_built",
            "Snapshots encoded (once per room and version, however many sockets get it).",
            r,
        )
        self.resyncs = CounterReading(
            "stackvote_resyncs",
            "Slow readers that were skipped while behind and sent a fresh snapshot once caught up.",
            r,
        )

        # Histograms.
        self.change_to_delta = Histogram(
            "stackvote_change_to_delta_seconds",
            "From the first change a delta covers being applied here to the delta being "
            "written to the room's sockets (includes the coalescing window).",
            buckets=MS_BUCKETS,
            registry=r,
        )
        self.feed_lag = Histogram(
            "stackvote_feed_lag_seconds",
            "From another instance storing a change to this instance hearing of it (wall "
            "clocks of two machines: as good as their time sync).",
            buckets=MS_BUCKETS,
            registry=r,
        )
        self.redis_seconds = Histogram(
            "stackvote_redis_seconds",
            "Redis round trips, by command.",
            ["command"],
            buckets=REDIS_BUCKETS,
            registry=r,
        )

    def watch_store(self, store: object) -> None:
        """Read the store's followed channels at scrape time, and let it count its own round
        trips and errors (`store.instrument(metrics)`), where the store offers either."""

        def channels() -> float:
            value = getattr(store, "followed_channels", 0)
            return float(value() if callable(value) else value)

        self.feed_channels.set_function(channels)
        instrument = getattr(store, "instrument", None)
        if instrument is not None:
            instrument(self)

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)
