"""Logging set-up: one format for the app and uvicorn, and a cap on repeated warnings.

A client that sends thousands of bad packets must not be able to fill the disk with the same
warning: each message template at WARNING or above may appear a few times a minute, and the
next line that gets through says how many were held back.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


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


def configure(level: str) -> None:
    """Log to stderr in one format, repeated warnings capped (uvicorn's loggers included)."""
    logging.basicConfig(level=level.upper(), format=FORMAT)
    for handler in logging.getLogger().handlers:
        handler.addFilter(RepeatLimit())
