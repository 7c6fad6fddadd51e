"""The library internals the fast path stands on (server.sio.internals): all there at the
installed versions, used from one package only, and a missing one costs speed, not the install.

When an upgrade of python-socketio, python-engineio or uvicorn fails here, the message names
what moved and what it was used for: adapt server/sio/ and the version bounds in pyproject.toml
together (the stock path keeps the server working meanwhile).
"""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest

from server import sio
from server.settings import Settings
from server.sio import internals

ROOT = Path(__file__).resolve().parent.parent
# The libraries whose internals the fast path uses (the stock path uses their public API).
LIBRARIES = ("socketio", "engineio", "uvicorn")


@pytest.mark.parametrize("part", ["socketio", "uvicorn", "redis"])
def test_every_internal_the_fast_path_needs_is_there(part: internals.Part) -> None:
    internals.problems.cache_clear()
    missing = internals.problems(part)
    assert not missing, "the installed libraries moved what server/sio/ needs:\n" + "\n".join(
        missing
    )


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_only_the_adapter_imports_what_lies_beneath_the_public_api() -> None:
    """Outside server/sio/, the libraries are used through their top-level API only (and
    uvicorn only to run the app, in server/serve.py)."""
    for path in sorted((ROOT / "server").rglob("*.py")):
        if "sio" in path.relative_to(ROOT / "server").parts:
            continue
        for module in _imports(path):
            top = module.split(".")[0]
            if top in LIBRARIES:
                assert module in ("socketio", "uvicorn"), f"{path.name} imports {module}"
                assert module != "uvicorn" or path.name == "serve.py", path


def test_the_wire_format_module_is_pure() -> None:
    used = {m.split(".")[0] for m in _imports(ROOT / "server" / "sio" / "wire.py")}
    assert used <= {"__future__", "re", "struct", "typing", "msgspec"}, used


def test_the_adapter_has_no_import_cycle() -> None:
    package = ROOT / "server" / "sio"
    graph = {
        path.stem: {
            m.removeprefix("server.sio.") for m in _imports(path) if m.startswith("server.sio.")
        }
        for path in package.glob("*.py")
    }

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(
            nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt}))
            for nxt in graph.get(start, set())
        )

    for module in graph:
        assert not reaches(module, module, {module}), f"server.sio.{module} imports itself"


def test_the_fan_out_needs_no_server_internals() -> None:
    imported = _imports(ROOT / "server" / "fanout.py")
    assert not {m for m in imported if m.split(".")[0] in LIBRARIES}
    assert "server.sio.connection" not in imported and "server.sio.framing" not in imported


def test_a_missing_internal_means_the_stock_path_and_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    sio._fast.cache_clear()
    monkeypatch.setattr(sio, "problems", lambda part: ("engineio:X.y is gone (used: z)",))
    try:
        with caplog.at_level(logging.WARNING, logger="server.sio"):
            server = sio.build_server(
                events=["vote"], charge=lambda sid: None, limits=sio.Limits.of("1/second", 1, 1, 1)
            )
            assert sio.websocket_protocol() == "auto" and sio.http_protocol(1.0) == "auto"
            sio.build_server(
                events=["vote"], charge=lambda sid: None, limits=sio.Limits.of("1/second", 1, 1, 1)
            )
        assert not server.fast
        warnings = [r for r in caplog.records if "stock" in r.getMessage()]
        assert len(warnings) == 2  # one for Socket.IO, one for uvicorn; each said once
        assert "engineio:X.y is gone" in warnings[0].getMessage()
    finally:
        sio._fast.cache_clear()


def test_the_fast_path_is_taken_when_everything_is_there() -> None:
    sio._fast.cache_clear()
    limits = sio.Limits.of("1/second", 1, 1, 1)
    assert sio.build_server(events=["vote"], charge=lambda sid: None, limits=limits).fast
    assert not sio.build_server(
        "stock", events=["vote"], charge=lambda sid: None, limits=limits
    ).fast
    assert Settings(connections="stock").validated().connections == "stock"


@pytest.mark.parametrize(
    ("module", "attribute", "stand_in"),
    [
        ("uvicorn.protocols.websockets.websockets_sansio_impl", "queue", "Mailbox"),
        ("uvicorn.protocols.websockets.websockets_sansio_impl", "writable", "Flag"),
        ("engineio.async_socket", "queue", "Mailbox"),
    ],
)
def test_the_light_queue_and_flag_offer_all_the_libraries_use(
    module: str, attribute: str, stand_in: str
) -> None:
    """uvicorn's connections and Engine.IO's sockets get a Mailbox for their queue and a Flag for
    uvicorn's `writable` event (server.sio.mailbox): whatever the installed versions call on
    them must be there."""
    import importlib
    import inspect
    import re

    from server.sio import mailbox

    source = inspect.getsource(importlib.import_module(module))
    called = set(re.findall(rf"\.{attribute}\.(\w+)", source))
    assert called, f"{module} no longer uses .{attribute}: is the stand-in still needed?"
    offered = {name for name in dir(getattr(mailbox, stand_in)) if not name.startswith("_")}
    assert called <= offered, f"{module} calls {sorted(called - offered)} on its {attribute}"


async def test_the_flag_wakes_its_waiters_as_an_event_does() -> None:
    import asyncio

    from server.sio.mailbox import Flag

    flag = Flag()
    assert not flag.is_set()
    waiters = [asyncio.ensure_future(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    waiters[0].cancel()  # a waiter that gives up leaves nothing behind
    await asyncio.sleep(0)
    flag.set()
    assert await asyncio.gather(*waiters[1:]) == [True, True]
    assert flag.is_set() and await flag.wait()
    flag.clear()
    assert not flag.is_set()
