"""Run the app under uvicorn with the given settings."""

from __future__ import annotations

import logging

import uvicorn

from server.app import create_app
from server.settings import Settings


def run(settings: Settings) -> int:
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = create_app(settings)
    print(f"stackvote is listening on http://{settings.host}:{settings.port}", flush=True)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=10,
        proxy_headers=False,
    )
    return 0
