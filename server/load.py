"""How loaded this instance is: the event loop's lag, measured by a timer that should fire on
time. When the loop runs late, every task waits in line; new work is then refused with an
honest "busy" (nothing done, try again) rather than accepted and answered too late."""

from __future__ import annotations

import asyncio

from server.metrics import Metrics


class Load:
    def __init__(
        self, *, busy_after: float = 0.5, every: float = 0.1, metrics: Metrics | None = None
    ) -> None:
        """`busy_after`: lag (seconds) from which the instance refuses new work."""
        self.busy_after = busy_after
        self.every = every
        self.lag = 0.0
        metrics = metrics or Metrics()
        metrics.event_loop_lag.set_function(lambda: self.lag)
        self._late = metrics.event_loop_late

    @property
    def busy(self) -> bool:
        return self.lag > self.busy_after

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(self.every)
            # The newest measurement counts most, but one late tick alone does not decide.
            late = max(0.0, loop.time() - started - self.every)
            self._late.observe(late)
            self.lag = late if late > self.lag else 0.5 * self.lag + 0.5 * late
