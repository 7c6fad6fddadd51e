"""Memory per session, in the built-in store and in Redis.

    python bench/sessions.py

Sizes: a new session from the default template; the same after 10 people scored every case;
after 1,000 people did; and a new session from the largest template the server accepts (30
cases, 20 stacks, every text at its longest). The built-in store's figure is what Python holds
(tracemalloc, averaged over many sessions); Redis' is `MEMORY USAGE` summed over the session's
keys, on a real redis-server started here.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from server import rules  # noqa: E402
from server.decks import builtin_templates, parse_template  # noqa: E402
from server.models import CaseState, Participant, Session, Template  # noqa: E402
from server.security import hash_token, new_participant_id, new_session_id  # noqa: E402
from server.store import MemoryStore  # noqa: E402
from server.store.redis import RedisStore  # noqa: E402
from tests.redis_server import redis_server  # noqa: E402


def largest_template() -> Template:
    stacks = [{"id": f"stack_{n:02d}", "name": "S" * 120} for n in range(20)]
    cases = [
        {
            "id": f"case_{n:02d}",
            "title": "T" * 120,
            "help": "H" * 300,
            "fit": {s["id"]: 2 for s in stacks},
        }
        for n in range(30)
    ]
    return parse_template(
        {"title": "X" * 120, "description": "D" * 500, "stacks": stacks, "cases": cases}
    )


def new(template: Template) -> Session:
    now = time.time()
    return Session(
        id=new_session_id(),
        title="A session title of ordinary length",
        mode="hidden",
        anonymous=False,
        template=template,
        facilitator_hash=hash_token("x"),
        created_at=now,
        updated_at=now,
        cases=tuple(CaseState(id=c.id, status="voting") for c in template.cases),
    )


def scored(people: int) -> Callable[[Session], Session]:
    def fill(session: Session) -> Session:
        for n in range(people):
            person = Participant(
                id=new_participant_id(),
                name=f"Person number {n}",
                role="voter",
                token_hash=hash_token(str(n)),
            )
            session = rules.join(session, person, limit=people + 1)
            for case in session.cases:
                session = rules.vote(session, person.id, case.id, n % 5)
        return session

    return fill


SHAPES: dict[str, tuple[Callable[[], Template], Callable[[Session], Session] | None, int]] = {
    "default template, nobody yet": (lambda: builtin_templates()["django"], None, 200),
    "default template, 10 people scored all": (
        lambda: builtin_templates()["django"],
        scored(10),
        100,
    ),
    "default template, 1,000 people scored all": (
        lambda: builtin_templates()["django"],
        scored(1000),
        3,
    ),
    "largest template, nobody yet": (largest_template, None, 100),
}


async def in_memory(
    template: Callable[[], Template], fill: Callable[[Session], Session] | None, count: int
) -> float:
    """Bytes Python holds per stored session (a built-in template is shared by all sessions
    made from it, as in the server; a custom one is each session's own)."""
    store = MemoryStore(max_sessions=count + 1)
    template()  # a built-in template is loaded once, before any session
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(count):
        session = new(template())
        await store.create(fill(session) if fill else session)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / count


async def in_redis(url: str, template: Template, fill: Callable[[Session], Session] | None) -> int:
    store = RedisStore(url, prefix=f"mem{time.time_ns()}")
    session = new(template)
    if fill:
        session = fill(session)
    await store.create(session)
    client = store._redis
    total = 0
    async for key in client.scan_iter(match=f"{store._prefix}:*"):
        if key.endswith(b":sessions"):
            continue
        total += await client.memory_usage(key) or 0
    await store.close()
    return total


def main() -> None:
    print("| session | built-in store | Redis |")
    print("|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp)) as redis:
        for label, (template, fill, count) in SHAPES.items():
            memory = asyncio.run(in_memory(template, fill, count))
            stored = asyncio.run(in_redis(redis.url, template(), fill))
            print(f"| {label} | {memory / 1024:.1f} KiB | {stored / 1024:.1f} KiB |")


if __name__ == "__main__":
    main()
