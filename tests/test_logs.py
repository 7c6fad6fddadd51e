"""Logging (server.logs): the cap on repeated lines, JSON lines, and what is never logged."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest
import websockets.frames

from server.cli import build_parser
from server.logs import CONNECTION, REQUEST, JsonLines, NoFrameData, RepeatLimit
from server.settings import Settings, SettingsError


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record(msg: str, level: int = logging.WARNING, name: str = "server.gate") -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, (), None)


def test_a_repeated_warning_is_shown_a_few_times_then_held_back() -> None:
    limit = RepeatLimit(burst=3, per=60, clock=Clock())
    shown = [limit.filter(record("closing connection %s")) for _ in range(1000)]
    assert shown.count(True) == 3


def test_the_next_line_shown_says_how_many_were_held_back() -> None:
    clock = Clock()
    limit = RepeatLimit(burst=2, per=60, clock=clock)
    for _ in range(10):
        limit.filter(record("bad packet from %s"))
    clock.now = 30.0  # one token back
    again = record("bad packet from %s")
    assert limit.filter(again)
    assert again.getMessage() == "bad packet from %s [8 similar lines held back]"


def test_templates_are_counted_apart_and_info_lines_always_pass() -> None:
    limit = RepeatLimit(burst=1, per=60, clock=Clock())
    assert limit.filter(record("one"))
    assert not limit.filter(record("one"))
    assert limit.filter(record("two"))
    assert limit.filter(record("one", name="other.logger"))
    assert all(limit.filter(record("one", level=logging.INFO)) for _ in range(100))


def test_memory_is_bounded_by_the_number_of_templates() -> None:
    limit = RepeatLimit(burst=1, per=60, max_templates=50, clock=Clock())
    for n in range(10_000):
        limit.filter(record(f"line {n}"))
    assert len(limit._seen) == 50


# --- JSON lines


def emit(record: logging.LogRecord, *filters: logging.Filter) -> list[dict[str, object]]:
    """What a handler configured as server.logs.configure("...", "json") writes."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonLines())
    for each in filters:
        handler.addFilter(each)
    handler.handle(record)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_json_line_has_time_level_logger_and_message() -> None:
    line = record("closing connection %s", logging.INFO)
    line.args = ("abc",)
    line.created = 0.25
    (written,) = emit(line)
    assert written == {
        "time": "1970-01-01T00:00:00.250Z",
        "level": "INFO",
        "logger": "server.gate",
        "message": "closing connection abc",
    }


def test_the_request_and_the_connection_being_handled_are_on_each_line() -> None:
    request, connection = REQUEST.set("9f86d081884c7d65"), CONNECTION.set("sid-1")
    try:
        (written,) = emit(record("storage unavailable"))
    finally:
        REQUEST.reset(request)
        CONNECTION.reset(connection)
    assert written["request"] == "9f86d081884c7d65" and written["connection"] == "sid-1"
    (outside,) = emit(record("storage unavailable"))
    assert "request" not in outside and "connection" not in outside


def test_the_repeat_limit_holds_json_lines_back_too() -> None:
    clock = Clock()
    limit = RepeatLimit(burst=1, per=60, clock=clock)
    written = [line for _ in range(5) for line in emit(record("bad packet"), limit)]
    clock.now = 60.0
    written += emit(record("bad packet"), limit)
    assert [w["message"] for w in written] == [
        "bad packet",
        "bad packet [4 similar lines held back]",
    ]


def test_an_exception_is_one_json_line_with_its_traceback() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        failure = sys.exc_info()
    line = logging.LogRecord("server.app", logging.ERROR, __file__, 1, "failed", (), failure)
    (written,) = emit(line)
    assert "RuntimeError: boom" in str(written["exc_info"])


def test_websocket_frames_are_logged_without_their_content() -> None:
    payload = b'40{"token":"tClx44px13WhIuWaubMQibJRGAQTUYzM"}'
    frame = websockets.frames.Frame(websockets.frames.Opcode.TEXT, payload)
    line = logging.LogRecord("uvicorn.error", logging.DEBUG, __file__, 1, "< %s", (frame,), None)
    assert NoFrameData().filter(line)
    assert line.getMessage() == f"< TEXT [{len(payload)} bytes]"


def test_the_log_format_is_text_or_json() -> None:
    assert Settings.from_env({}).log_format == "text"
    assert Settings.from_env({"STACKVOTE_LOG_FORMAT": "JSON"}).log_format == "json"
    with pytest.raises(SettingsError, match="log format"):
        Settings.from_env({"STACKVOTE_LOG_FORMAT": "xml"})
    args = build_parser().parse_args(["serve", "--log-format", "json"])
    assert args.log_format == "json"
