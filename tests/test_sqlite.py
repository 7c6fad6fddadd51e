"""The built-in store on disk (server.store.sqlite), beyond the contract every store keeps
(tests/test_store.py): it survives a restart, and a kill in the middle of voting; one server
per file; backup while serving, restore while stopped."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.models import evolve
from server.settings import Settings, SettingsError
from server.store.sqlite import DataDirInUse, SqliteStore, lock_path
from tests.factories import scored, team
from tests.live import (
    GENEROUS_LIMITS,
    ROOT,
    LiveServer,
    create_session,
    facilitate,
    free_port,
    join,
    live_server,
    stop_process,
    wait_ready,
)


async def test_sessions_are_there_after_the_store_is_opened_again(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    store = SqliteStore(path, clock=lambda: 1_001.0)
    session = team("Ann", "Bob")
    await store.create(session)
    voted = evolve(
        scored(session, "realtime", {"ann": 3, "bob": None}), version=session.version + 1
    )
    await store.commit(session, voted, ())
    # Hidden scores and token hashes: readable by this user only, journal included.
    made = [path, path.with_name(path.name + "-wal"), lock_path(path)]
    assert all(f.exists() and f.stat().st_mode & 0o077 == 0 for f in made), made
    await store.close()
    again = SqliteStore(path, clock=lambda: 1_001.0)
    assert await again.get(session.id) == voted
    assert await again.versions([session.id, "nope"]) == {session.id: voted.version}
    await again.close()


async def test_a_second_store_on_the_same_file_is_refused_saying_why(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    store = SqliteStore(path)
    with pytest.raises(DataDirInUse, match=f"process {os.getpid()}.*STACKVOTE_DATA_DIR"):
        SqliteStore(path)
    await store.close()
    # Closed, the file is free again.
    await SqliteStore(path).close()


def test_a_data_directory_that_cannot_be_written_is_refused_saying_what_to_do(
    tmp_path: Path,
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    with pytest.raises(SettingsError, match="STACKVOTE_DATA_DIR to a directory"):
        SqliteStore(blocked / "store.sqlite3")


def test_the_default_file_is_in_the_data_directory(tmp_path: Path) -> None:
    assert Settings().store_kind == "sqlite"
    assert Settings(data_dir=str(tmp_path)).sqlite_path == tmp_path / "stackvote.sqlite3"
    assert Settings(redis_url="sqlite:///here.db").sqlite_path == Path("here.db")
    assert Settings(redis_url="sqlite:////abs/x.db").sqlite_path == Path("/abs/x.db")
    assert Settings(redis_url="memory://").store_kind == "memory"
    assert Settings(redis_url="redis://localhost:6379/0").store_kind == "redis"


def serve(data: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--port", str(port), "--data-dir", str(data)],
        cwd=ROOT,
        env={**os.environ, **GENEROUS_LIMITS, "STACKVOTE_INSTANCE_TTL_SECONDS": "2"},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


async def test_a_server_killed_mid_vote_keeps_every_acknowledged_vote(tmp_path: Path) -> None:
    data, port = tmp_path / "data", free_port()
    process = serve(data, port, tmp_path / "server.log")
    server = LiveServer(f"http://127.0.0.1:{port}", process, tmp_path / "server.log")
    wait_ready(server)
    created = create_session(server.url)
    fay = await facilitate(server.url, created)
    voters = [await join(server.url, {"session": created["id"], "name": f"V{i}"}) for i in range(6)]
    cases = [c["id"] for c in fay.state["cases"]]
    assert (await fay.control("open_all"))["ok"]
    acked: dict[tuple[str, str], int] = {}
    # The vote each voter had sent when the server died: stored or not, its ack never came.
    in_flight: dict[tuple[str, str], int] = {}

    async def keep_voting(member: Any, offset: int) -> None:
        n = offset
        while True:
            case, score = cases[n % len(cases)], n % 5
            in_flight[(member.id, case)] = score
            ack = await member.vote(case, score)
            del in_flight[(member.id, case)]
            if ack.get("ok"):
                acked[(member.id, case)] = score
            n += 1

    voting = [asyncio.create_task(keep_voting(v, i)) for i, v in enumerate(voters)]
    await asyncio.sleep(1.5)
    # Killed without warning, votes in flight.
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    await asyncio.gather(*voting, return_exceptions=True)
    assert len(acked) > 20
    for member in [fay, *voters]:
        await member.client.disconnect()

    again = serve(data, port, tmp_path / "server.log")
    server = LiveServer(f"http://127.0.0.1:{port}", again, tmp_path / "server.log")
    try:
        wait_ready(server)
        # Every acknowledged vote is there, each the last one acknowledged.
        fay = await facilitate(server.url, created)
        assert (await fay.control("reveal_all"))["ok"]
        document = httpx.get(f"{server.url}/api/sessions/{created['id']}/results").json()
        stored = {
            (b["participant"], case["id"]): b["score"]
            for case in document["cases"]
            for b in case["ballots"]
        }
        for key, score in acked.items():
            # The last acknowledged score, or a later one stored just before the kill whose
            # ack was still on its way.
            assert stored[key] in (score, in_flight.get(key)), key
        # The killed server's people are shown offline once it is presumed dead.
        state = await fay.until(
            lambda s: all(not p["online"] for p in s["participants"] if p["name"] != "Fay"),
            timeout=20,
        )
        assert len(state["participants"]) == 7
        await fay.client.disconnect()
    finally:
        stop_process(again)


def test_a_second_server_on_the_same_data_directory_refuses_to_start(tmp_path: Path) -> None:
    with live_server(tmp_path, {"STACKVOTE_DATA_DIR": str(tmp_path / "shared")}) as first:
        second = subprocess.run(
            [sys.executable, "-m", "server", "serve", "--port", str(free_port())],
            cwd=ROOT,
            env={**os.environ, "STACKVOTE_DATA_DIR": str(tmp_path / "shared")},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 2
        assert f"another stackvote server (process {first.process.pid})" in second.stderr
        assert httpx.get(first.url + "/healthz").status_code == 200


def stackvote(*args: str, data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", *args, "--data-dir", str(data)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_backup_taken_while_serving_restores_with_the_server_stopped(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with live_server(tmp_path, {"STACKVOTE_DATA_DIR": str(data)}) as server:
        kept = create_session(server.url, title="Kept")
        done = stackvote("backup", str(tmp_path / "copy.sqlite3"), data=data)
        assert done.returncode == 0, done.stderr
        later = create_session(server.url, title="After the backup")
        # Restoring under a running server is refused: it would not see the change.
        refused = stackvote("restore", str(tmp_path / "copy.sqlite3"), data=data)
        assert refused.returncode == 2 and "another stackvote server" in refused.stderr
    done = stackvote("restore", str(tmp_path / "copy.sqlite3"), data=data)
    assert done.returncode == 0, done.stderr
    with live_server(tmp_path, {"STACKVOTE_DATA_DIR": str(data)}) as server:
        assert httpx.get(f"{server.url}/api/sessions/{kept['id']}").status_code == 200
        assert httpx.get(f"{server.url}/api/sessions/{later['id']}").status_code == 404
    not_a_backup = tmp_path / "notes.txt"
    not_a_backup.write_text("hello")
    refused = stackvote("restore", str(not_a_backup), data=data)
    assert refused.returncode == 2 and "is not a stackvote backup" in refused.stderr
