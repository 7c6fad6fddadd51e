"""The `stackvote` command: argument parsing only."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from server.settings import LOG_FORMATS, LOG_LEVELS, Settings, SettingsError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stackvote", description="Real-time team voting on technical decisions."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the web server")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8000)")
    serve.add_argument("--redis-url", help="keep sessions in Redis, e.g. redis://localhost:6379/0")
    serve.add_argument("--public-url", help="address people use to reach this server")
    serve.add_argument("--log-level", choices=LOG_LEVELS)
    serve.add_argument(
        "--log-format", choices=LOG_FORMATS, help="text (default) or json: one object per line"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env(
            host=args.host,
            port=args.port,
            redis_url=args.redis_url,
            public_url=args.public_url,
            log_level=args.log_level,
            log_format=args.log_format,
        )
    except SettingsError as exc:
        print(f"stackvote: {exc}", file=sys.stderr)
        return 2
    from server.serve import run  # the web stack loads only when serving

    return run(settings)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
