"""The store contract: every backend keeps the same promises (run over each backend in BACKENDS).

To run the suite against another backend, teach `open_backend` to build it and add its name to
BACKENDS; tests that need an injected clock build a MemoryStore themselves.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from functools import partial
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from msgspec.structs import replace

from server import rules
from server.models import Round, Session, dump_session, evolve, load_session
from server.rules import RuleError
from server.store import (
    Conflict,
    JoinCodeTaken,
    Lifetimes,
    MemoryStore,
    SessionNotFound,
    Store,
    StoreFull,
    Unconfirmed,
    Updated,
)
from server.store.redis import RedisStore
from server.store.sqlite import SqliteStore
from tests.factories import (
    case_in,
    cast,
    control,
    custom_template,
    lasting,
    new_session,
    person,
    team,
    with_people,
)
from tests.redis_server import RedisServer

# "sqlite": the embedded default on disk; "cluster": the same Redis store on a Redis Cluster
# (sharded pub/sub, scripts per hash slot).
BACKENDS = ["memory", "sqlite", "redis", "cluster"]

StoreFactory = Callable[..., Store]


def open_backend(
    kind: str,
    *,
    max_sessions: int = 10_000,
    ttl_seconds: float = 86400,
    redis_url: str | None = None,
    directory: Path | None = None,
    prefix: str | None = None,
) -> Store:
    """A fresh, empty store of the given kind (or, with `prefix`, a second client of the
    Redis store that uses it: another instance of the same deployment)."""
    if kind == "memory":
        return MemoryStore(max_sessions=max_sessions, lifetimes=lasting(ttl_seconds))
    if kind == "sqlite" and directory is not None:
        path = directory / f"store-{next(_prefixes)}.sqlite3"
        return SqliteStore(path, max_sessions=max_sessions, lifetimes=lasting(ttl_seconds))
    if kind in ("redis", "cluster") and redis_url is not None:
        # A prefix of its own makes the store empty without flushing the shared server.
        return RedisStore(
            redis_url,
            max_sessions=max_sessions,
            lifetimes=lasting(ttl_seconds),
            prefix=prefix or f"test{next(_prefixes)}",
        )
    raise LookupError(f"no test backend called {kind!r}")


_prefixes = iter(range(1_000_000))


@pytest.fixture(params=BACKENDS)
async def make_store(request: pytest.FixtureRequest) -> AsyncIterator[StoreFactory]:
    opened: list[Store] = []
    url = None
    if request.param in ("redis", "cluster"):
        url = request.getfixturevalue(request.param).url

    directory = request.getfixturevalue("tmp_path")

    def make(
        *, max_sessions: int = 10_000, ttl_seconds: float = 86400, twin_of: Store | None = None
    ) -> Store:
        if twin_of is not None and not isinstance(twin_of, RedisStore):
            pytest.skip(f"{request.param} is one instance's store: no second instance shares it")
        store = open_backend(
            request.param,
            max_sessions=max_sessions,
            ttl_seconds=ttl_seconds,
            redis_url=url,
            directory=directory,
            prefix=twin_of._prefix if isinstance(twin_of, RedisStore) else None,
        )
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


@pytest.fixture
def store(make_store: StoreFactory) -> Store:
    return make_store()


_counter = iter(range(1_000_000))


def fresh(*voters: str) -> Session:
    """A session with a unique id, touched just now, with facilitator `fay` and `voters`."""
    return team(
        *voters, session_id=f"store-test-{time.time_ns()}-{next(_counter)}", now=time.time()
    )


# --- create and get


async def test_a_created_session_can_be_read_back(store: Store) -> None:
    session = fresh("Alice")
    await store.create(session)
    assert await store.get(session.id) == session
    assert await store.version(session.id) == session.version


async def test_an_unknown_session_reads_as_none(store: Store) -> None:
    assert await store.get("no-such-session") is None
    assert await store.version("no-such-session") is None


async def test_creating_the_same_id_twice_is_refused_and_keeps_the_first(store: Store) -> None:
    session = fresh("Alice")
    await store.create(session)
    with pytest.raises(ValueError, match="exists already"):
        await store.create(with_people(session, person("Bob")))
    assert await store.get(session.id) == session


async def test_sessions_are_kept_apart(store: Store) -> None:
    first, second = fresh("Alice"), fresh("Bob")
    await store.create(first)
    await store.create(second)
    await store.update(first.id, lambda s: control(s, "open_all"))
    untouched = await store.get(second.id)
    assert untouched == second


async def test_the_store_is_reachable(store: Store) -> None:
    await store.ping()


# --- update


async def test_a_change_is_saved_with_the_version_one_higher(store: Store) -> None:
    session = fresh("Alice")
    await store.create(session)
    before = time.time()
    updated = await store.update(session.id, lambda s: control(s, "open", "realtime"))
    assert isinstance(updated, Updated)
    assert updated.changed is True
    assert updated.session.version == session.version + 1
    assert updated.session.updated_at >= before
    assert case_in(updated.session, "realtime").status == "voting"
    assert await store.get(session.id) == updated.session
    assert await store.version(session.id) == session.version + 1

    again = await store.update(session.id, lambda s: rules.vote(s, "alice", "realtime", 2))
    assert again.changed is True
    assert again.session.version == session.version + 2


async def test_a_change_that_changes_nothing_is_not_written(store: Store) -> None:
    session = fresh("Alice")
    await store.create(session)
    opened = (await store.update(session.id, lambda s: control(s, "open", "realtime"))).session
    voted = (
        await store.update(session.id, lambda s: rules.vote(s, "alice", "realtime", 3))
    ).session

    same_vote = await store.update(session.id, lambda s: rules.vote(s, "alice", "realtime", 3))
    assert same_vote.changed is False
    assert same_vote.session == voted
    assert same_vote.session.version == opened.version + 1

    identity = await store.update(session.id, lambda s: s)
    assert identity.changed is False
    assert (await store.get(session.id)) == voted
    assert await store.version(session.id) == voted.version


async def test_a_refused_change_propagates_and_leaves_the_session_alone(store: Store) -> None:
    session = fresh("Alice")
    await store.create(session)
    with pytest.raises(RuleError, match="has not started yet"):
        await store.update(session.id, lambda s: rules.vote(s, "alice", "realtime", 3))
    with pytest.raises(RuleError, match="Only the facilitator"):
        await store.update(session.id, lambda s: rules.control(s, "alice", "finish", None))
    assert await store.get(session.id) == session
    assert await store.version(session.id) == session.version


async def test_a_crashing_change_propagates_and_leaves_the_session_alone(store: Store) -> None:
    session = fresh("Alice")
    await store.create(session)

    def broken(s: Session) -> Session:
        raise ZeroDivisionError("a bug in a change")

    with pytest.raises(ZeroDivisionError):
        await store.update(session.id, broken)
    assert await store.get(session.id) == session


async def test_updating_an_unknown_session_raises_not_found(store: Store) -> None:
    calls: list[Session] = []

    def change(s: Session) -> Session:
        calls.append(s)
        return s

    with pytest.raises(SessionNotFound):
        await store.update("no-such-session", change)
    assert calls == []
    assert await store.get("no-such-session") is None


async def test_concurrent_votes_are_all_kept_with_exact_versions(store: Store) -> None:
    voters = [f"Voter {i:02d}" for i in range(20)]
    session = fresh(*voters)
    await store.create(session)
    opened = (await store.update(session.id, lambda s: control(s, "open_all"))).session
    # 200 writers racing one compare-and-set (60 on a cluster, whose client costs more per
    # attempt: the race is the same, the number of rounds smaller).
    on_cluster = isinstance(store, RedisStore) and store.cluster
    case_ids = [c.id for c in opened.cases][: 3 if on_cluster else 10]
    expected = {
        case_id: {f"voter-{i:02d}": (i + j) % 5 for i in range(20)}
        for j, case_id in enumerate(case_ids)
    }
    changes = [
        partial(rules.vote, participant_id=pid, case_id=case_id, score=score)
        for case_id, scores in expected.items()
        for pid, score in scores.items()
    ]
    assert len(changes) == 20 * len(case_ids)

    results = await asyncio.gather(*(store.update(session.id, change) for change in changes))

    assert all(r.changed for r in results)
    assert sorted(r.session.version for r in results) == list(
        range(opened.version + 1, opened.version + len(changes) + 1)
    )
    final = await store.get(session.id)
    assert final is not None
    assert final.version == opened.version + len(changes)
    for case_id, scores in expected.items():
        assert case_in(final, case_id).ballots == scores


async def test_a_commit_from_a_stale_version_is_refused_and_stores_nothing(store: Store) -> None:
    session = fresh("Alice")
    await store.create(session)
    opened = (await store.update(session.id, lambda s: control(s, "open", "realtime"))).session
    vote = partial(rules.vote, participant_id="alice", case_id="realtime")
    first = evolve(vote(opened, score=1), version=opened.version + 1)
    await store.commit(opened, first, ())
    # A second writer read the same version and lost the race.
    late = evolve(vote(opened, score=4), version=opened.version + 1)
    with pytest.raises(Conflict) as refused:
        await store.commit(opened, late, ())
    assert refused.value.current == first.version
    stored = await store.get(session.id)
    assert stored is not None
    assert stored.version == first.version
    assert case_in(stored, "realtime").ballots == {"alice": 1}


async def test_instances_racing_on_one_session_keep_every_change(
    make_store: StoreFactory,
) -> None:
    """Two instances of one deployment: their writers meet only at the compare-and-set."""
    one = make_store()
    other = make_store(twin_of=one)
    voters = [f"Voter {i:02d}" for i in range(20)]
    session = fresh(*voters)
    await one.create(session)
    opened = (await one.update(session.id, lambda s: control(s, "open_all"))).session
    case_ids = [c.id for c in opened.cases][:4]
    changes = [
        (i % 2, partial(rules.vote, participant_id=f"voter-{i:02d}", case_id=case, score=i % 5))
        for case in case_ids
        for i in range(20)
    ]
    stores = (one, other)
    results = await asyncio.gather(*(stores[s].update(session.id, c) for s, c in changes))

    assert sorted(r.session.version for r in results) == list(
        range(opened.version + 1, opened.version + len(changes) + 1)
    )
    final = await other.get(session.id)
    assert final is not None
    for case in case_ids:
        assert case_in(final, case).ballots == {f"voter-{i:02d}": i % 5 for i in range(20)}


async def test_concurrent_changes_to_one_ballot_leave_one_of_them(store: Store) -> None:
    session = fresh("Alice")
    await store.create(session)
    opened = (await store.update(session.id, lambda s: control(s, "open", "realtime"))).session
    scores = [0, 1, 2, 3, 4, None, 4, 3]
    results = await asyncio.gather(
        *(
            store.update(
                session.id,
                partial(rules.vote, participant_id="alice", case_id="realtime", score=score),
            )
            for score in scores
        )
    )
    final = await store.get(session.id)
    assert final is not None
    written = sum(r.changed for r in results)
    assert final.version == opened.version + written
    assert case_in(final, "realtime").ballots["alice"] in scores


# --- capacity


async def test_a_full_store_refuses_new_sessions_and_keeps_the_old(
    make_store: StoreFactory,
) -> None:
    store = make_store(max_sessions=2)
    first, second, third = fresh(), fresh(), fresh()
    await store.create(first)
    await store.create(second)
    with pytest.raises(StoreFull):
        await store.create(third)
    assert await store.get(third.id) is None
    assert await store.get(first.id) == first
    assert await store.get(second.id) == second
    # Existing sessions still take changes when the store is full.
    assert (await store.update(first.id, lambda s: control(s, "open_all"))).changed


# --- making room: at capacity the session idle longest goes, active ones never


@pytest.fixture(params=BACKENDS)
async def clocked(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Store, Clock]]:
    """A store of each kind holding two sessions at most, on a clock the test moves."""
    clock = Clock(time.time())
    lifetimes = Lifetimes(ttl_seconds=86400, unjoined_ttl_seconds=86400, idle_seconds=600)
    store: Store
    if request.param == "memory":
        store = MemoryStore(lifetimes=lifetimes, max_sessions=2, clock=clock)
    elif request.param == "sqlite":
        path = request.getfixturevalue("tmp_path") / "clocked.sqlite3"
        store = SqliteStore(path, lifetimes=lifetimes, max_sessions=2, clock=clock)
    else:
        url = request.getfixturevalue("redis").url
        prefix = f"test{next(_prefixes)}"
        store = RedisStore(url, lifetimes=lifetimes, max_sessions=2, prefix=prefix, clock=clock)
    yield store, clock
    await store.close()


def at(clock: Clock, *voters: str) -> Session:
    return team(*voters, session_id=f"evict-{time.time_ns()}-{next(_counter)}", now=clock.now)


async def test_a_full_store_evicts_the_session_idle_longest(
    clocked: tuple[Store, Clock],
) -> None:
    store, clock = clocked
    older, newer = at(clock), at(clock)
    await store.create(older)
    clock.now += 60
    await store.create(newer)
    clock.now += 3600  # both idle now; the older one longer
    third = at(clock)
    await store.create(third)
    assert await store.get(older.id) is None
    assert await store.get(newer.id) is not None and await store.get(third.id) is not None


async def test_a_session_with_someone_connected_is_never_evicted(
    clocked: tuple[Store, Clock],
) -> None:
    store, clock = clocked
    meeting, quiet = at(clock, "ann"), at(clock)
    await store.create(meeting)
    await store.update(meeting.id, lambda s: rules.attach(s, "ann", "i:1"))
    clock.now += 60
    await store.create(quiet)
    clock.now += 7200  # the meeting has been quiet for two hours, but Ann is still there
    await store.create(at(clock))
    assert await store.get(meeting.id) is not None
    assert await store.get(quiet.id) is None


async def test_a_recently_changed_session_is_never_evicted(
    clocked: tuple[Store, Clock],
) -> None:
    store, clock = clocked
    first, second = at(clock), at(clock)
    await store.create(first)
    await store.create(second)
    clock.now += 120  # nobody connected, but both changed two minutes ago: still in use
    with pytest.raises(StoreFull):
        await store.create(at(clock))
    assert await store.get(first.id) is not None and await store.get(second.id) is not None


async def test_a_session_nobody_joined_expires_sooner() -> None:
    clock = Clock()
    store = MemoryStore(lifetimes=Lifetimes(ttl_seconds=3600, unjoined_ttl_seconds=60), clock=clock)
    empty = new_session(session_id="empty", now=clock.now)
    joined = team("Ann", session_id="joined", now=clock.now)
    await store.create(empty)
    await store.create(joined)
    clock.now += 61
    assert await store.get("empty") is None
    assert await store.get("joined") is not None


async def test_redis_forgets_a_session_nobody_joined_sooner(redis: RedisServer) -> None:
    lifetimes = Lifetimes(ttl_seconds=60, unjoined_ttl_seconds=0.5)
    store = RedisStore(redis.url, lifetimes=lifetimes, prefix=f"test{next(_prefixes)}")
    empty = new_session(session_id=f"empty-{time.time_ns()}", now=time.time())
    joined = fresh("ann")
    await store.create(empty)
    await store.create(joined)
    await asyncio.sleep(0.8)
    assert await store.get(empty.id) is None
    assert await store.get(joined.id) is not None
    # Once someone joins, the session gets the full lifetime.
    later = new_session(session_id=f"later-{time.time_ns()}", now=time.time())
    await store.create(later)
    await store.update(later.id, lambda s: with_people(s, person("Ann")))
    await asyncio.sleep(0.8)
    assert await store.get(later.id) is not None
    await store.close()


# --- expiry (needs an injected clock: memory only)


class Clock:
    def __init__(self, now: float = 10_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_an_untouched_session_expires_after_the_ttl() -> None:
    clock = Clock()
    store = MemoryStore(lifetimes=lasting(60), clock=clock)
    session = team("Alice", now=clock.now)
    await store.create(session)
    clock.now += 60
    assert await store.get(session.id) == session
    clock.now += 1
    assert await store.get(session.id) is None
    assert await store.version(session.id) is None
    with pytest.raises(SessionNotFound):
        await store.update(session.id, lambda s: control(s, "open_all"))


async def test_a_change_keeps_a_session_alive() -> None:
    clock = Clock()
    store = MemoryStore(lifetimes=lasting(60), clock=clock)
    session = team("Alice", now=clock.now)
    await store.create(session)
    clock.now += 50
    updated = await store.update(session.id, lambda s: control(s, "open_all"))
    assert updated.session.updated_at == clock.now
    clock.now += 50  # 100 s after creation, 50 s after the change
    assert await store.get(session.id) == updated.session
    clock.now += 11
    assert await store.get(session.id) is None


async def test_a_no_op_change_does_not_keep_a_session_alive() -> None:
    clock = Clock()
    store = MemoryStore(lifetimes=lasting(60), clock=clock)
    session = team("Alice", now=clock.now)
    await store.create(session)
    clock.now += 50
    assert (await store.update(session.id, lambda s: s)).changed is False
    clock.now += 11
    assert await store.get(session.id) is None


async def test_expired_sessions_make_room_for_new_ones() -> None:
    clock = Clock()
    store = MemoryStore(lifetimes=lasting(60), max_sessions=1, clock=clock)
    old = team(session_id="old", now=clock.now)
    await store.create(old)
    with pytest.raises(StoreFull):
        await store.create(team(session_id="new", now=clock.now))
    clock.now += 61
    new = team(session_id="new", now=clock.now)
    await store.create(new)
    assert await store.get("new") == new
    assert await store.get("old") is None


# --- serialisation


def busy_session() -> Session:
    """A session with every kind of state: ballots, abstentions, reasons, history, sockets, a
    spectator, a countdown, auto-reveal, someone removed and the facilitator role handed on."""
    session = team("Alice", "Bob", "Cat", anonymous=True, mode="open")
    session = with_people(session, person("Watcher", "spectator"))
    session = rules.attach(rules.attach(session, "alice", "sid-1"), "alice", "sid-2")
    session = control(session, "open", "realtime")
    session = rules.vote(session, "alice", "realtime", 4, reason="Chat is the product")
    session = cast(session, "realtime", {"bob": None, "fay": 0, "cat": 1})
    session = control(session, "reveal", "realtime")
    session = control(session, "revote", "realtime")
    session = rules.vote(session, "alice", "realtime", 3, reason="Less sure now")
    session = control(session, "lock", "realtime")
    session = control(session, "open", "prototype")
    session = rules.vote(session, "bob", "prototype", 2, reason="An MVP in <b>two</b> weeks")
    session = rules.countdown(session, "fay", "prototype", 90, 1_234.5)
    session = rules.remove(session, "fay", "cat", keep_ballots=True)
    session = rules.set_auto_reveal(session, "fay", True)
    session = rules.set_door(session, "fay", False)
    session = rules.decide(session, "fay", "go", "Latency first.\n\nThen the team.", 1_300.0)
    session = rules.hand_over(session, "fay", "alice")
    return replace(session, join_code="7KQM4X")


def test_a_session_survives_a_dump_and_load() -> None:
    session = busy_session()
    loaded = load_session(dump_session(session))
    assert loaded == session
    case = loaded.case("realtime")
    assert case is not None
    assert case.history == (
        Round(
            round=1,
            status="revealed",
            ballots={"alice": 4, "bob": None, "fay": 0, "cat": 1},
            reasons={"alice": "Chat is the product"},
        ),
    )
    alice = loaded.participant("alice")
    assert alice is not None
    assert alice.sids == ("sid-1", "sid-2")
    assert load_session(dump_session(session).decode()) == session


def test_a_custom_template_survives_a_dump_and_load() -> None:
    session = new_session(template=custom_template())
    loaded = load_session(dump_session(session))
    assert loaded.template == session.template
    assert loaded.template.cases[0].fit == {"postgres": 2.0, "sqlite": -1.0}


@given(
    st.dictionaries(
        st.sampled_from(["alice", "bob", "fay"]),
        st.one_of(st.none(), st.integers(min_value=0, max_value=4)),
    )
)
def test_any_ballots_survive_a_dump_and_load(ballots: dict[str, int | None]) -> None:
    session = cast(control(team("Alice", "Bob"), "open", "performance"), "performance", ballots)
    assert load_session(dump_session(session)) == session


async def test_a_stored_session_reads_back_whole(store: Store) -> None:
    session = busy_session()
    session = replace(session, id=fresh().id, updated_at=time.time())
    await store.create(session)
    assert await store.get(session.id) == session


async def test_the_version_is_readable_on_its_own(store: Store) -> None:
    session = fresh("ann")
    await store.create(session)
    assert await store.version(session.id) == session.version
    await store.update(session.id, lambda s: rules.control(s, "fay", "open_all", None))
    assert await store.version(session.id) == session.version + 1
    assert await store.version("missing") is None


async def test_reasons_deadlines_and_roles_survive_each_change(store: Store) -> None:
    # Each change stored as the field writes it makes (not the whole session) reads back whole.
    session = fresh("Ann", "Ben", "Cat")
    await store.create(session)
    steps: list[Callable[[Session], Session]] = [
        lambda s: rules.attach(rules.attach(s, "ann", "i:1"), "ben", "i:2"),
        lambda s: control(s, "open_all"),
        lambda s: rules.nudge(s, "fay", None, 1_999.0),
        lambda s: rules.vote(s, "ann", "realtime", 4, reason="Chat is <i>core</i> | really"),
        lambda s: rules.vote(s, "ben", "realtime", None, reason="Not sure"),
        lambda s: rules.vote(s, "ben", "realtime", 1),
        lambda s: rules.countdown(s, "fay", "realtime", 30, 2_000.25),
        lambda s: rules.countdown(s, "fay", None, 600, 2_001.5),
        lambda s: rules.close_overdue(s, 2_601.5),
        lambda s: control(s, "revote", "realtime"),
        lambda s: rules.vote(s, "ann", "realtime", 3, reason="Changed my mind"),
        lambda s: rules.set_auto_reveal(s, "fay", True),
        lambda s: rules.set_door(s, "fay", False),
        lambda s: rules.hand_over(s, "fay", "ann"),
        # Ben leaves from the middle of the list: the newcomers after him keep their places.
        lambda s: rules.remove(s, "ann", "ben", keep_ballots=False),
        lambda s: rules.set_door(s, "ann", True),
        lambda s: rules.decide(s, "ann", None, "Neither: we wait a quarter.", 2_700.0),
        lambda s: rules.decide(s, "ann", "go", "", 2_701.0),
        lambda s: with_people(s, person("Dan"), person("Eve")),
        lambda s: rules.remove(s, "ann", "cat", keep_ballots=True),
    ]
    for step in steps:
        updated = await store.update(session.id, step)
        assert updated.changed
        assert await store.get(session.id) == updated.session
    final = await store.get(session.id)
    assert final is not None
    assert [p.id for p in final.participants] == ["fay", "ann", "dan", "eve"]
    assert (final.auto_reveal, final.facilitator_hash) == (True, "")
    realtime = case_in(final, "realtime")
    assert realtime.reasons == {"ann": "Changed my mind"}
    assert realtime.history[0].reasons == {"ann": "Chat is <i>core</i> | really"}
    assert rules.next_deadline(final) is None


async def test_a_countdown_survives_a_round_trip(store: Store) -> None:
    session = fresh("Ann")
    await store.create(session)
    await store.update(session.id, lambda s: control(s, "open", "realtime"))
    counted = await store.update(
        session.id, lambda s: rules.countdown(s, "fay", "realtime", 45, 1_700_000_000.123)
    )
    stored = await store.get(session.id)
    assert stored == counted.session
    assert stored is not None
    assert case_in(stored, "realtime").deadline == 1_700_000_045.123


async def test_a_join_code_finds_its_session_and_no_other_takes_it(store: Store) -> None:
    session = replace(fresh("Ann"), join_code=f"{next(_counter) % 10**6:06d}")
    await store.create(session)
    assert await store.find_join_code(session.join_code or "") == session.id
    assert await store.find_join_code("ZZZZZZ") is None
    other = replace(fresh("Ben"), join_code=session.join_code)
    with pytest.raises(JoinCodeTaken):
        await store.create(other)
    assert await store.get(other.id) is None
    assert await store.find_join_code(session.join_code or "") == session.id


async def test_a_join_code_goes_with_its_session() -> None:
    clock = Clock()
    store = MemoryStore(lifetimes=lasting(60), clock=clock)
    session = replace(team("Ann", now=clock.now), join_code="ABCDEF")
    await store.create(session)
    clock.now += 61
    assert await store.find_join_code("ABCDEF") is None
    newer = replace(team("Ann", session_id="s2", now=clock.now), join_code="ABCDEF")
    await store.create(newer)
    assert await store.find_join_code("ABCDEF") == "s2"


async def test_redis_forgets_a_join_code_with_its_session(redis: RedisServer) -> None:
    store = RedisStore(redis.url, lifetimes=lasting(0.5), prefix=f"test{next(_prefixes)}")
    session = replace(fresh("Ann"), join_code="QWERTY")
    await store.create(session)
    assert await store.find_join_code("QWERTY") == session.id
    await asyncio.sleep(0.8)
    assert await store.find_join_code("QWERTY") is None
    await store.close()


# Redis only: the in-memory store lives and dies with its single process.
@pytest.fixture
def redis_store(redis: RedisServer) -> Iterator[RedisStore]:
    yield RedisStore(redis.url, prefix=f"test{next(_prefixes)}", lifetimes=lasting(1.0))


async def test_redis_sessions_expire_when_idle_and_not_before(redis_store: RedisStore) -> None:
    kept, idle = fresh("ann"), fresh("bob")
    await redis_store.create(kept)
    await redis_store.create(idle)
    for _ in range(3):
        await asyncio.sleep(0.4)
        # Every change starts the idle clock again.
        await redis_store.update(kept.id, lambda s: rules.attach(s, "ann", f"x:{time.time()}"))
    assert await redis_store.get(kept.id) is not None
    assert await redis_store.get(idle.id) is None
    await redis_store.close()


async def test_redis_knows_which_instances_stopped_beating(redis_store: RedisStore) -> None:
    assert await redis_store.heartbeat("alive", ["s1"], ttl=5) is True
    assert await redis_store.heartbeat("alive", ["s2"], ttl=5) is False
    assert await redis_store.heartbeat("dying", ["s1", "s3"], ttl=0.2) is True
    await asyncio.sleep(0.4)
    assert await redis_store.orphans() == {"dying": {"s1", "s3"}}
    await redis_store.forget_instance("dying")
    assert await redis_store.orphans() == {}
    # An instance that was presumed dead learns it on its next beat.
    assert await redis_store.heartbeat("dying", [], ttl=5) is True
    await redis_store.close()


async def test_with_wait_a_change_no_replica_confirmed_is_stored_but_unconfirmed(
    redis: RedisServer,
) -> None:
    # The test Redis has no replica: WAIT can only time out.
    store = RedisStore(redis.url, prefix=f"test{next(_prefixes)}", wait_replicas=1, wait_ms=50)
    session = fresh("ann")
    await store.create(session)
    current = await store.get(session.id)
    assert current is not None
    opened = control(current, "open", "realtime")
    after = replace(opened, version=current.version + 1)
    with pytest.raises(Unconfirmed, match="0 of 1 replicas"):
        await store.commit(current, after, ())
    # Stored all the same (the primary has it), just not acknowledged as safe.
    assert await store.version(session.id) == current.version + 1
    await store.close()
