"""The embedded store on disk: one SQLite file, so `stackvote serve` keeps every session and
decision record across a restart, an upgrade or a crash.

A session is laid out as in Redis (server.store.layout): a few "hashes" of fields, here rows of
one table, so a vote writes its ballot's fields and the version, not the whole session. Each
change is one transaction that first checks the stored version (compare-and-set), like the
other stores. The file is in WAL mode with synchronous=NORMAL: a change is on disk (in the
write-ahead log) before it is acknowledged, so killing the process loses nothing acknowledged;
a power cut may lose the last moments' changes (as Redis' `appendfsync everysec` may).

SQLite calls block, so they run on one thread of their own, in order; the event loop only
waits for their answers. One server per file: a lock file next to it (flock) refuses a second
server with a clear message, since two would each believe they are the only instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from server.models import Session
from server.ops import Op
from server.settings import SettingsError
from server.store import layout
from server.store.base import (
    Conflict,
    JoinCodeTaken,
    Lifetimes,
    SessionNotFound,
    Store,
    StoreFull,
    StoreUnavailable,
)

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    joined INTEGER NOT NULL,   -- anyone ever in the list (a session nobody joined goes sooner)
    online INTEGER NOT NULL,   -- people online (a session nobody is in may be evicted)
    join_code TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sessions_by_code ON sessions (join_code);
CREATE INDEX IF NOT EXISTS sessions_by_age ON sessions (updated_at);
CREATE TABLE IF NOT EXISTS fields (
    session TEXT NOT NULL,
    hash TEXT NOT NULL,        -- which of the session's hashes (layout.Keys, without the id)
    field TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (session, hash, field)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS instances (
    id TEXT PRIMARY KEY,
    alive_until REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS holding (
    instance TEXT NOT NULL,
    session TEXT NOT NULL,
    PRIMARY KEY (instance, session)
) WITHOUT ROWID;
PRAGMA user_version = 1;
"""

FILE_NAME = "stackvote.sqlite3"


class DataDirInUse(SettingsError):
    """Another stackvote server holds the store's lock."""


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


@contextlib.contextmanager
def holding_lock(path: Path) -> Iterator[int]:
    """Hold the store's lock file for the block (see SqliteStore)."""
    fd = take_lock(path)
    try:
        yield fd
    finally:
        os.close(fd)


def take_lock(path: Path) -> int:
    """Lock the store at `path` for this process, or raise DataDirInUse saying who holds it
    (SettingsError when the directory cannot be used at all)."""
    try:
        # A directory made here is this user's only (one given may be shared on purpose).
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(lock_path(path), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise SettingsError(
            f"cannot use {path.parent} for the sessions' file ({exc.strerror}); set "
            "STACKVOTE_DATA_DIR to a directory this user can write to"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise DataDirInUse(
            f"another stackvote server (process {holder}) is using {path}; stop it first, "
            "or give this one a data directory of its own with STACKVOTE_DATA_DIR"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def private_file(path: Path) -> None:
    """Create `path` readable by this user only, if it is not there yet: it holds hidden
    scores and token hashes, and SQLite gives its journal files the same permissions."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))


def connect(path: Path) -> sqlite3.Connection:
    private_file(path)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("PRAGMA foreign_keys = OFF")
    db.executescript(SCHEMA)
    return db


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE .. COMMIT (ROLLBACK on any error): one writer, all or nothing."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class SqliteStore(Store):
    def __init__(
        self,
        path: Path,
        *,
        lifetimes: Lifetimes | None = None,
        max_sessions: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.path = path
        self._lock = take_lock(path)
        try:
            self._db = connect(path)
        except sqlite3.Error as exc:
            os.close(self._lock)
            raise SettingsError(f"cannot open the data file {path}: {exc}") from None
        self._lifetimes = lifetimes or Lifetimes()
        self._max = max_sessions
        self._clock = clock
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stackvote-sqlite")

    async def _run(self, work: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, work, *args)
        except sqlite3.Error as exc:
            # Nothing was stored: the transaction rolled back (disk full, file unreadable...).
            raise StoreUnavailable(f"the data file {self.path} cannot be used: {exc}") from exc

    def now(self) -> float:
        return self._clock()

    # --- sessions

    async def create(self, session: Session) -> None:
        await self._run(self._create, session)

    def _create(self, session: Session) -> None:
        keys = _keys(session.id)
        with _transaction(self._db) as db:
            if db.execute("SELECT 1 FROM sessions WHERE id = ?", (session.id,)).fetchone():
                raise ValueError(f"session {session.id} exists already")
            if self._count(db) >= self._max:
                self._forget_expired(db)
            if self._count(db) >= self._max and not self._evict_one(db):
                raise StoreFull("this server holds as many sessions as it is allowed to")
            code = session.join_code
            if code is not None:
                for (holder,) in db.execute(
                    "SELECT id FROM sessions WHERE join_code = ?", (code,)
                ).fetchall():
                    if self._live(db, holder):
                        raise JoinCodeTaken(code)
            db.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?)",
                (
                    session.id,
                    session.version,
                    session.updated_at,
                    int(bool(session.participants)),
                    _online(session),
                    code,
                ),
            )
            _write(db, session.id, keys, layout.everything(keys, session))

    async def get(self, session_id: str) -> Session | None:
        return await self._run(self._get, session_id)

    def _get(self, session_id: str) -> Session | None:
        row = self._row(self._db, session_id)
        if row is None:
            return None
        if self._expired(row):
            # Forgotten now (the memory store does the same).
            with _transaction(self._db) as db:
                _forget(db, session_id)
            return None
        # One statement reads one version: writes happen on this same connection, in turn.
        return _load(self._db, session_id)

    async def find_join_code(self, code: str) -> str | None:
        return await self._run(self._find_join_code, code)

    def _find_join_code(self, code: str) -> str | None:
        for (session_id,) in self._db.execute(
            "SELECT id FROM sessions WHERE join_code = ?", (code,)
        ).fetchall():
            if self._live(self._db, session_id):
                found: str = session_id
                return found
        return None

    async def commit(self, before: Session, after: Session, ops: Sequence[Op]) -> None:
        await self._run(self._commit, before, after)

    def _commit(self, before: Session, after: Session) -> None:
        keys = _keys(before.id)
        with _transaction(self._db) as db:
            row = self._row(db, before.id)
            if row is None or self._expired(row):
                raise SessionNotFound(before.id)
            if row[0] != before.version:
                raise Conflict(row[0])
            _write(db, before.id, keys, layout.changes(keys, before, after))
            db.execute(
                "UPDATE sessions SET version = ?, updated_at = ?, joined = max(joined, ?), "
                "online = ? WHERE id = ?",
                (
                    after.version,
                    after.updated_at,
                    int(bool(after.participants)),
                    _online(after),
                    before.id,
                ),
            )

    async def versions(self, session_ids: Collection[str]) -> dict[str, int]:
        return await self._run(self._versions, list(session_ids))

    def _versions(self, session_ids: list[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for start in range(0, len(session_ids), 500):
            chunk = session_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for session_id, version, updated_at, joined in self._db.execute(
                f"SELECT id, version, updated_at, joined FROM sessions WHERE id IN ({marks})",  # noqa: S608
                chunk,
            ):
                if not self._expired((version, updated_at, joined)):
                    found[session_id] = version
        return found

    # --- lifetimes

    def _expired(self, row: tuple[int, float, int]) -> bool:
        _, updated_at, joined = row
        ttl = self._lifetimes.ttl_seconds if joined else self._lifetimes.unjoined_ttl_seconds
        return self._clock() - updated_at > ttl

    @staticmethod
    def _row(db: sqlite3.Connection, session_id: str) -> tuple[int, float, int] | None:
        row: tuple[int, float, int] | None = db.execute(
            "SELECT version, updated_at, joined FROM sessions WHERE id = ?", (session_id,)
        ).fetchone()
        return row

    def _live(self, db: sqlite3.Connection, session_id: str) -> bool:
        """Whether the session is held and not expired."""
        row = self._row(db, session_id)
        return row is not None and not self._expired(row)

    @staticmethod
    def _count(db: sqlite3.Connection) -> int:
        count: int = db.execute("SELECT count(*) FROM sessions").fetchone()[0]
        return count

    def _forget_expired(self, db: sqlite3.Connection) -> None:
        now = self._clock()
        for (session_id,) in db.execute(
            "SELECT id FROM sessions WHERE (joined AND updated_at < ?) "
            "OR (NOT joined AND updated_at < ?)",
            (now - self._lifetimes.ttl_seconds, now - self._lifetimes.unjoined_ttl_seconds),
        ).fetchall():
            _forget(db, session_id)

    def _evict_one(self, db: sqlite3.Connection) -> bool:
        """Forget the session idle longest (nobody online, unchanged for a while), if any."""
        row = db.execute(
            "SELECT id FROM sessions WHERE online = 0 AND updated_at < ? "
            "ORDER BY updated_at LIMIT 1",
            (self._clock() - self._lifetimes.idle_seconds,),
        ).fetchone()
        if row is None:
            return False
        _forget(db, row[0])
        return True

    # --- instances (one server per file, but its predecessor's sockets are dead after a
    # restart: they show up as an orphan, whose people the upkeep marks offline)

    async def heartbeat(self, instance: str, session_ids: Collection[str], ttl: float) -> bool:
        return await self._run(self._heartbeat, instance, list(session_ids), ttl)

    def _heartbeat(self, instance: str, session_ids: list[str], ttl: float) -> bool:
        with _transaction(self._db) as db:
            added = db.execute(
                "INSERT OR IGNORE INTO instances VALUES (?, ?)", (instance, self._clock() + ttl)
            ).rowcount
            db.execute(
                "UPDATE instances SET alive_until = ? WHERE id = ?",
                (self._clock() + ttl, instance),
            )
            db.executemany(
                "INSERT OR IGNORE INTO holding VALUES (?, ?)",
                [(instance, s) for s in session_ids],
            )
        return bool(added)

    async def orphans(self) -> dict[str, set[str]]:
        return await self._run(self._orphans)

    def _orphans(self) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for (instance,) in self._db.execute(
            "SELECT id FROM instances WHERE alive_until < ?", (self._clock(),)
        ).fetchall():
            found[instance] = {
                s
                for (s,) in self._db.execute(
                    "SELECT session FROM holding WHERE instance = ?", (instance,)
                )
            }
        return found

    async def forget_instance(self, instance: str) -> None:
        await self._run(self._forget_instance, instance)

    def _forget_instance(self, instance: str) -> None:
        with _transaction(self._db) as db:
            db.execute("DELETE FROM holding WHERE instance = ?", (instance,))
            db.execute("DELETE FROM instances WHERE id = ?", (instance,))

    async def ping(self) -> None:
        await self._run(lambda: self._db.execute("SELECT 1").fetchone())

    async def close(self) -> None:
        await self._run(self._db.close)
        self._pool.shutdown(wait=True)
        os.close(self._lock)


def _keys(session_id: str) -> layout.Keys:
    return layout.Keys("", session_id)


def _hash(keys: layout.Keys, key: str) -> str:
    """The name of one of the session's hashes, without the session: "", ":p", ":b:<case>"..."""
    return key[len(keys.meta) :]


def _online(session: Session) -> int:
    return sum(1 for p in session.participants if p.sids)


def _write(
    db: sqlite3.Connection, session_id: str, keys: layout.Keys, writes: layout.Writes
) -> None:
    sets, deletes = [], []
    for key, fields in writes.items():
        name = _hash(keys, key)
        for field, value in fields.items():
            if value is None:
                deletes.append((session_id, name, field))
            else:
                sets.append((session_id, name, field, value))
    if deletes:
        db.executemany("DELETE FROM fields WHERE session = ? AND hash = ? AND field = ?", deletes)
    if sets:
        db.executemany("INSERT OR REPLACE INTO fields VALUES (?, ?, ?, ?)", sets)


def _load(db: sqlite3.Connection, session_id: str) -> Session | None:
    hashes: dict[str, dict[bytes, bytes]] = {}
    for name, field, value in db.execute(
        "SELECT hash, field, value FROM fields WHERE session = ?", (session_id,)
    ):
        hashes.setdefault(name, {})[field.encode()] = bytes(value)
    meta = hashes.get("", {})
    case_ids = layout.case_ids(meta)
    if case_ids is None:
        return None
    keys = _keys(session_id)
    raw = [hashes.get(_hash(keys, key), {}) for key in keys.all(case_ids)]
    return layout.load(session_id, raw, case_ids)


def _forget(db: sqlite3.Connection, session_id: str) -> None:
    db.execute("DELETE FROM holding WHERE session = ?", (session_id,))
    db.execute("DELETE FROM fields WHERE session = ?", (session_id,))
    db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))


def backup(source: Path, target: Path) -> None:
    """Copy the store at `source` to `target`, consistently, while a server may be using it
    (SQLite's online backup: the copy is one moment of the file)."""
    if not source.exists():
        raise SettingsError(f"there is no data file at {source}")
    target.parent.mkdir(parents=True, exist_ok=True)
    private_file(target)
    # Readers never block the server's writes (WAL); the backup reads one moment of the file.
    with (
        contextlib.closing(sqlite3.connect(source)) as db,
        contextlib.closing(sqlite3.connect(target)) as out,
    ):
        db.backup(out)


def restore(backup_file: Path, target: Path) -> None:
    """Put a backup in place of the store at `target`: only while no server uses it."""
    if not backup_file.exists():
        raise SettingsError(f"there is no backup at {backup_file}")
    with contextlib.closing(sqlite3.connect(backup_file)) as db:
        # A file that is not a stackvote store is refused before anything is replaced.
        try:
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
        except sqlite3.DatabaseError:
            tables = set()
        if not {"sessions", "fields"} <= tables:
            raise SettingsError(f"{backup_file} is not a stackvote backup")
        with holding_lock(target), contextlib.closing(connect(target)) as out:
            db.backup(out)
