"""Logging set-up: one format for the app and uvicorn, and a cap on repeated warnings.

Lines are plain text, or with STACKVOTE_LOG_FORMAT=json one JSON object per line: `time`
(ISO 8601, UTC), `level`, `logger`, `message`, and where known `request` (the id of the HTTP
request being answered, also sent back as X-Request-ID) and `connection` (the Socket.IO id of
the socket whose event is being handled), so that every line about one request or one socket
can be picked out.

A client that sends thousands of bad packets must not be able to fill the disk with the same
warning: each message template at WARNING or above may appear a few times a minute, and the
next line that gets through says how many were held back.
"""

from __future__ import annotations

import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# The HTTP request (server.app.RequestIds) and the socket (server.realtime) being handled.
REQUEST: ContextVar[str | None] = ContextVar("request", default=None)
CONNECTION: ContextVar[str | None] = ContextVar("connection", default=None)


class RepeatLimit(logging.Filter):
    """At most `burst` records per template, refilled at `burst` per `per` seconds."""

    def __init__(
        self,
        *,
        burst: int = 5,
        per: float = 60.0,
        max_templates: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.burst = burst
        self.per = per
        self.max_templates = max_templates
        self.clock = clock
        # template -> (tokens, last refill, lines held back since the last one shown)
        self._seen: OrderedDict[tuple[str, str], tuple[float, float, int]] = OrderedDict()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, str(record.msg))
        now = self.clock()
        tokens, last, held = self._seen.pop(key, (float(self.burst), now, 0))
        tokens = min(float(self.burst), tokens + (now - last) * self.burst / self.per)
        passed = tokens >= 1.0
        if passed:
            tokens -= 1.0
            if held:
                record.msg = f"{record.msg} [{held} similar lines held back]"
                held = 0
        else:
            held += 1
        self._seen[key] = (tokens, now, held)
        if len(self._seen) > self.max_templates:
            self._seen.popitem(last=False)
        return passed


class NoFrameData(logging.Filter):
    """At debug level the WebSocket protocol logs every frame it sends or receives with (the
    two ends of) its content, and a connection request carries the person's token: keep only
    each frame's kind and size."""

    _FRAME = re.compile(r"(TEXT|BINARY|CONT) .*(\[[^\]]*\])\Z", re.S)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.DEBUG or record.msg not in ("< %s", "> %s"):
            return True
        if not isinstance(record.args, tuple) or len(record.args) != 1:
            return True
        found = self._FRAME.match(str(record.args[0]))
        if found is not None:
            record.args = (f"{found.group(1)} {found.group(2)}",)
        return True


class JsonLines(JsonFormatter):
    """One JSON object per line: time, level, logger, message, request and connection (when
    known), and the traceback of an exception."""

    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            # uvicorn adds a coloured copy of some messages; the message itself is enough.
            reserved_attrs=[*RESERVED_ATTRS, "color_message"],
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        when = datetime.fromtimestamp(record.created, UTC)
        log_data["time"] = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        super().add_fields(log_data, record, message_dict)
        request = REQUEST.get()
        if request is not None:
            log_data["request"] = request
        connection = CONNECTION.get()
        if connection is not None:
            log_data["connection"] = connection


def configure(level: str, fmt: str = "text") -> None:
    """Log to stderr in one format (`text` or `json`), repeated warnings capped and frame
    contents left out (uvicorn's loggers included)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLines() if fmt == "json" else logging.Formatter(FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler])
    for each in logging.getLogger().handlers:
        each.addFilter(NoFrameData())
        each.addFilter(RepeatLimit())
