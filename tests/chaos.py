"""A small TCP proxy that delays traffic and cuts connections at random, for fault tests."""

from __future__ import annotations

import asyncio
import contextlib
import random

from tests.live import free_port


class ChaosProxy:
    """Forwards 127.0.0.1:<port> to a server, adding delay and cutting every connection now and
    then (both directions at once, as a dropped Wi-Fi does)."""

    def __init__(
        self,
        upstream_port: int,
        *,
        seed: int = 1,
        max_delay: float = 0.01,
        cut_every: tuple[float, float] = (0.05, 0.4),
    ) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.rng = random.Random(seed)
        self.max_delay = max_delay
        self.cut_every = cut_every
        self.cuts = 0
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._server: asyncio.Server | None = None
        self._cutter: asyncio.Task[None] | None = None
        self.cutting = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self._cutter = asyncio.create_task(self._cut_now_and_then())

    async def stop(self) -> None:
        if self._cutter:
            self._cutter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._cutter
        if self._server:
            self._server.close()
        self._cut_all()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        link = (writer, up_writer)
        self._links.add(link)
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._links.discard(link)
            for w in link:
                w.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                if self.max_delay:
                    await asyncio.sleep(self.rng.random() * self.max_delay)
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _cut_now_and_then(self) -> None:
        while True:
            await asyncio.sleep(self.rng.uniform(*self.cut_every))
            if self.cutting and self._links:
                self.cuts += 1
                self._cut_all()

    def _cut_all(self) -> None:
        for link in list(self._links):
            for writer in link:
                transport = writer.transport
                transport.abort()
        self._links.clear()
