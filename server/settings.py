"""Every configuration knob of stackvote, read once from the environment (prefix STACKVOTE_)."""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

PREFIX = "STACKVOTE_"
SQLITE = "sqlite:///"
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")


class SettingsError(ValueError):
    """A configuration value that cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    # None runs the embedded store, an SQLite file in data_dir; "sqlite:///PATH" names the
    # file; "memory://" keeps sessions in memory only (tests, throwaway runs);
    # "redis://host:6379/0" switches to Redis, and redis+sentinel://... or redis+cluster://...
    # to Sentinel or Cluster (server/store/urls.py).
    redis_url: str | None = None
    # Where the embedded store keeps its file (empty: the user's data directory, e.g.
    # ~/.local/share/stackvote).
    data_dir: str = ""
    # With replicas: a change is acknowledged only once this many replicas have it (Redis'
    # WAIT, up to redis_wait_ms); 0 acknowledges once the primary has it, and a failover may
    # then lose the last changes.
    redis_wait_replicas: int = 0
    redis_wait_ms: float = 1000
    # How changes travel between instances: "room" (a channel per session, heard only by the
    # instances serving it) or "shared" (one channel every instance hears; for comparison).
    redis_channels: str = "room"
    # The address people use to reach this server, e.g. "https://vote.example.com". Used for
    # join links and QR codes; when empty, links are built from the incoming request.
    public_url: str = ""
    log_level: str = "info"
    # "text" (one readable line each) or "json" (one JSON object per line, for a log pipeline).
    log_format: str = "text"
    # "on" serves Prometheus metrics at GET /metrics (for the operator: the proxy in front
    # must not pass it on, as deploy/nginx.conf does not); "off" answers 404 there.
    metrics: str = "on"
    # Sessions not touched for this long are forgotten; one that nobody ever joined, sooner.
    session_ttl_hours: float = 30 * 24
    unjoined_ttl_hours: float = 24
    max_participants: int = 1500
    # When the server holds max_sessions, creating one more evicts the session idle longest
    # (nobody connected, nothing changed for idle_minutes); active sessions are never evicted.
    max_sessions: int = 10_000
    idle_minutes: float = 10
    # With several instances: one that has not proved itself alive for this long is presumed
    # dead, and the people connected through it are shown offline.
    instance_ttl_seconds: float = 15.0
    # Someone offline for this long is shown away: not counted in "n of m" and not waited for
    # by auto-reveal, until they come back; 0 never marks anyone away.
    away_after_seconds: float = 120
    # Someone who holds no ballot and has been offline for this long leaves the session by
    # themselves (names made up to fill a room go; a person coming back simply joins again);
    # 0 keeps everyone until they leave or are removed.
    expire_idle_after_seconds: float = 900
    # Rate limits ("N/second", "N/minute", several joined with ";"): socket events per
    # connection, new connections per client address, sessions created per client address.
    # A token bucket per rate: "60/second;600/minute" lets 60 in at once, then up to 60 a
    # second until the minute's 600 are used, then 10 a second; so an office of 300 behind one
    # address gets in within seconds (and back in after a network blip), while one address
    # cannot keep up more than 10 connections a second.
    limit_events: str = "20/second;300/minute"
    # Every WebSocket frame a client sends (events, pongs, anything): a little above the event
    # limit, so that only a client sending what no browser sends runs into it.
    limit_frames: str = "30/second;400/minute"
    # Snapshots asked for (`sync`), per connection and per client address: a page asks after a
    # gap in what it was sent; each answer can be large (a snapshot of the whole room).
    limit_syncs: str = "5/second;120/minute"
    limit_syncs_per_address: str = "30/second;600/minute"
    limit_connects: str = "60/second;600/minute"
    limit_creates: str = "10/minute;100/day"
    # Join codes looked up per client address (GET /join/<code>): enough for a meeting room
    # behind one address, too few to try codes until one hits (SECURITY.md has the numbers).
    limit_join_codes: str = "60/minute;1000/day"
    # Templates checked per client address (POST /api/templates/validate): the editor checks
    # its draft when typing pauses, so this is a writer's pace, not a creator's.
    limit_validations: str = "120/minute;3000/hour"
    # Engine.IO pings each client this often and lets it go when no pong comes back in time.
    ping_interval_seconds: float = 25
    ping_timeout_seconds: float = 20
    # Changes to a room within this window go out as one delta.
    coalesce_ms: float = 100
    # The most frames a second one room's deltas may cost (one per person per delta): a room
    # larger than this times coalesce_ms gathers its changes for longer (1,000 people: 200 ms; a
    # second at most).
    coalesce_frames_per_second: int = 5000
    # When the event loop runs this late, new votes, commands and connections are refused as
    # "busy" (not counted; the browser tries again) until it catches up.
    busy_lag_ms: float = 500
    # Addresses or networks (comma-separated, e.g. "10.0.0.5,172.20.0.0/24") of the reverse
    # proxies whose X-Forwarded-For is believed. The client is the right-most address in that
    # header that is not one of them; "*" is refused, because it would believe the left-most,
    # which any client can write. None by default: behind a proxy on the same machine, set
    # 127.0.0.1 (or ::1); docker-compose.yml names its own proxy.
    trusted_proxies: str = ""
    # WebSockets one client address may hold open at once (an IPv6 /64 counts as one): an
    # office of a few hundred behind one address fits; a script opening thousands does not.
    max_connections_per_address: int = 500
    # Seconds a WebSocket may stay open without joining a session (a browser joins at once),
    # and an HTTP request may take to send its headers.
    connect_within_seconds: float = 10
    header_timeout_seconds: float = 10
    # Bytes that may wait to be sent to one client before it is disconnected (it comes back as
    # the same person): only a client that asks for more than it reads gets there.
    max_backlog_kb: int = 2048
    # And what may wait for all clients together: past it, every client that is behind (has
    # 512 KiB waiting) is disconnected, however many there are.
    max_backlog_total_mb: int = 64
    # "auto": the fast connection layer when this install's libraries have what it needs (else
    # the stock one, with a warning); "stock": python-socketio and uvicorn as they come.
    connections: str = "auto"
    # Where the engine's advice (resampling, flips) is worked out at a reveal: "thread" (a
    # worker thread; the room sees the reveal at once and the advice a moment later) or
    # "loop" (on the event loop, within the delta: every other room waits meanwhile).
    advice: str = "thread"

    @property
    def public_urls(self) -> list[str]:
        """The addresses people use, first one for links (STACKVOTE_PUBLIC_URL, comma-separated)."""
        return [u.strip().rstrip("/") for u in self.public_url.split(",") if u.strip()]

    @property
    def public_origins(self) -> list[str]:
        """The browser origins of the configured public addresses (none: see server.edge)."""
        return [_origin(u) for u in self.public_urls]

    @property
    def listening_url(self) -> str:
        """This server's own address, for links when nothing better is known."""
        host = self.host
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 - every interface: name one of them
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def session_ttl_seconds(self) -> float:
        return self.session_ttl_hours * 3600

    @property
    def unjoined_ttl_seconds(self) -> float:
        """A session nobody joined goes sooner (never later than any other)."""
        return min(self.unjoined_ttl_hours, self.session_ttl_hours) * 3600

    @property
    def metrics_enabled(self) -> bool:
        return self.metrics.lower() == "on"

    @property
    def uses_redis(self) -> bool:
        return self.store_kind == "redis"

    @property
    def store_kind(self) -> str:
        """ "sqlite" (the default), "memory" or "redis"."""
        if self.redis_url is None or self.redis_url.startswith(SQLITE):
            return "sqlite"
        return "memory" if self.redis_url == "memory://" else "redis"

    @property
    def sqlite_path(self) -> Path:
        """The embedded store's file: sqlite:///relative/path, sqlite:////absolute/path, else
        stackvote.sqlite3 in data_dir (or the user's data directory)."""
        if self.redis_url is not None and self.redis_url.startswith(SQLITE):
            return Path(self.redis_url.removeprefix(SQLITE)).expanduser()
        if self.data_dir:
            directory = Path(self.data_dir).expanduser()
        else:
            import platformdirs  # only when the default is used

            directory = platformdirs.user_data_path("stackvote", appauthor=False)
        return directory / "stackvote.sqlite3"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from STACKVOTE_* variables; keyword overrides (e.g. from the CLI) win."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in fields(cls):
            raw = env.get(PREFIX + field.name.upper())
            if raw is None or raw == "":
                continue
            values[field.name] = _coerce(field.name, field.type, raw)
        legacy_days = env.get(PREFIX + "SESSION_TTL_DAYS")
        if legacy_days and "session_ttl_hours" not in values:
            # The TTL used to be given in whole days.
            values["session_ttl_hours"] = _coerce("session_ttl_days", "float", legacy_days) * 24
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values).validated()

    def validated(self) -> Settings:
        if not 0 < self.port < 65536:
            raise SettingsError(f"port must be between 1 and 65535, not {self.port}")
        if self.uses_redis:
            assert self.redis_url is not None
            from server.store import urls  # here: the store package imports this module

            try:
                urls.parse(self.redis_url)
            except ValueError as exc:
                raise SettingsError(
                    f"redis url {_without_password(self.redis_url)!r}: {exc} "
                    "(or sqlite:///PATH or memory:// for the built-in store)"
                ) from None
        if self.redis_wait_replicas < 0:
            raise SettingsError("redis_wait_replicas must be 0 (do not wait) or more")
        if not math.isfinite(self.redis_wait_ms) or self.redis_wait_ms <= 0:
            raise SettingsError("redis_wait_ms must be a positive number of milliseconds")
        if self.advice not in ("thread", "loop"):
            raise SettingsError('advice must be "thread" or "loop"')
        if self.connections not in ("auto", "stock"):
            raise SettingsError("connections must be 'auto' (the default) or 'stock'")
        if self.redis_channels not in ("room", "shared"):
            raise SettingsError("redis_channels must be 'room' (the default) or 'shared'")
        if not math.isfinite(self.instance_ttl_seconds) or self.instance_ttl_seconds < 1:
            raise SettingsError("instance_ttl_seconds must be a number of seconds, at least 1")
        for name in ("away_after_seconds", "expire_idle_after_seconds"):
            seconds = getattr(self, name)
            if not math.isfinite(seconds) or seconds < 0:
                raise SettingsError(f"{name} must be a number of seconds (0: never)")
        if self.log_level.lower() not in LOG_LEVELS:
            raise SettingsError(
                f"log level {self.log_level!r} must be one of {', '.join(LOG_LEVELS)}"
            )
        if self.log_format.lower() not in LOG_FORMATS:
            raise SettingsError(
                f"log format {self.log_format!r} must be one of {', '.join(LOG_FORMATS)}"
            )
        if self.metrics.lower() not in ("on", "off"):
            raise SettingsError(f"metrics {self.metrics!r} must be on or off")
        for url in self.public_urls:
            if not url.startswith(("http://", "https://")) or not urlsplit(url).hostname:
                raise SettingsError(f"public url {url!r} must look like https://vote.example.com")
        for name in (
            "limit_events",
            "limit_frames",
            "limit_syncs",
            "limit_syncs_per_address",
            "limit_connects",
            "limit_creates",
            "limit_join_codes",
            "limit_validations",
        ):
            try:
                parse_rates(getattr(self, name))
            except ValueError:
                raise SettingsError(
                    f"{name} {getattr(self, name)!r} must look like '20/second' "
                    "or '10/minute;100/day'"
                ) from None
        for proxy in (p.strip() for p in self.trusted_proxies.split(",") if p.strip()):
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise SettingsError(
                    f"trusted proxy {proxy!r} must be an IP address or network such as "
                    "10.0.0.5 or 172.20.0.0/24 (never *: any client could then pick its address)"
                ) from None
        for name in (
            "max_participants",
            "max_sessions",
            "max_connections_per_address",
            "max_backlog_kb",
            "max_backlog_total_mb",
        ):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name} must be at least 1")
        if not math.isfinite(self.coalesce_ms) or not 0 <= self.coalesce_ms <= 1000:
            raise SettingsError("coalesce_ms must be between 0 and 1000")
        if not 1000 <= self.coalesce_frames_per_second <= 10_000_000:
            raise SettingsError("coalesce_frames_per_second must be between 1000 and 10000000")
        for name in (
            "session_ttl_hours",
            "unjoined_ttl_hours",
            "idle_minutes",
            "busy_lag_ms",
            "ping_interval_seconds",
            "ping_timeout_seconds",
            "connect_within_seconds",
            "header_timeout_seconds",
        ):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise SettingsError(f"{name} must be a positive number")
        return replace(
            self,
            log_level=self.log_level.lower(),
            log_format=self.log_format.lower(),
            metrics=self.metrics.lower(),
        )


@dataclass(frozen=True)
class Rate:
    """At most `count` per `seconds`."""

    count: int
    seconds: float


_UNITS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(second|minute|hour|day)\s*$")


def parse_rates(text: str) -> list[Rate]:
    """'20/second;300/minute' -> two rates; ValueError if it does not read like that."""
    rates = []
    for part in text.split(";"):
        match = _RATE.match(part)
        if match is None or int(match.group(1)) < 1:
            raise ValueError(f"cannot read rate {part!r}")
        rates.append(Rate(int(match.group(1)), _UNITS[match.group(2)]))
    return rates


def _without_password(url: str) -> str:
    return re.sub(r"(//[^/@]*?:)[^/@]*@", r"\1***@", url)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _coerce(name: str, annotation: Any, raw: str) -> Any:
    kind = str(annotation)
    try:
        if kind.startswith("int"):
            return int(raw)
        if kind.startswith("float"):
            return float(raw)
    except ValueError:
        raise SettingsError(f"{PREFIX}{name.upper()} must be a number, not {raw!r}") from None
    return raw
