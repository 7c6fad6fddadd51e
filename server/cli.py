"""The `stackvote` command: argument parsing only."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from server.settings import LOG_FORMATS, LOG_LEVELS, Settings, SettingsError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stackvote", description="Real-time team voting on technical decisions."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the web server")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8000)")
    serve.add_argument(
        "--redis-url",
        help="where sessions live: redis://localhost:6379/0 (Redis), sqlite:///PATH (a file; "
        "the default is one in the data directory) or memory:// (forgotten on restart)",
    )
    serve.add_argument("--data-dir", help="directory of the built-in store's file")
    serve.add_argument("--public-url", help="address people use to reach this server")
    serve.add_argument("--log-level", choices=LOG_LEVELS)
    serve.add_argument(
        "--log-format", choices=LOG_FORMATS, help="text (default) or json: one object per line"
    )
    backup = commands.add_parser(
        "backup", help="copy the built-in store's sessions to a file (while serving, too)"
    )
    backup.add_argument("path", type=Path, help="the backup file to write")
    backup.add_argument("--data-dir", help="directory of the built-in store's file")
    restore = commands.add_parser(
        "restore", help="put a backup in place of the built-in store (with the server stopped)"
    )
    restore.add_argument("path", type=Path, help="the backup file to read")
    restore.add_argument("--data-dir", help="directory of the built-in store's file")
    return parser


def _store_file(settings: Settings) -> Path:
    if settings.store_kind != "sqlite":
        raise SettingsError(
            "backup and restore are for the built-in store; this configuration uses "
            f"{settings.store_kind} (Redis: see the README's backup section)"
        )
    return settings.sqlite_path


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command in ("backup", "restore"):
            from server.store import sqlite

            settings = Settings.from_env(data_dir=args.data_dir)
            store_file = _store_file(settings)
            if args.command == "backup":
                sqlite.backup(store_file, args.path)
                print(f"stackvote: copied {store_file} to {args.path}")
            else:
                sqlite.restore(args.path, store_file)
                print(f"stackvote: {store_file} now holds what {args.path} held")
            return 0
        settings = Settings.from_env(
            host=args.host,
            port=args.port,
            redis_url=args.redis_url,
            data_dir=args.data_dir,
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
