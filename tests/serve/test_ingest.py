"""Group commit (``store.ingest``): units are all-or-nothing, ids come back in order, a unit sees what
earlier units of the same group wrote, and nothing is acknowledged before it committed."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import feedback_seed as seed
import pytest

from llmloop.store import feedback
from llmloop.store.ingest import (
    BattleOp,
    CompletionOp,
    EventOp,
    GroupCommitWriter,
    ThumbOp,
    UnitRejected,
    VoteOp,
    ingest_now,
)

MSG = [{"role": "user", "content": "hi"}]


def test_units_validate_together_and_fail_alone(db) -> None:
    results = ingest_now(db, [
        [CompletionOp("r1", "alice", "v1.0", MSG, "hello")],
        [ThumbOp("r1", "alice", 1), EventOp("edit", "r1", "alice", {"text": "hi!"})],  # sees r1 from unit 0
        [ThumbOp("r1", "bob", -1), ThumbOp("missing", "bob", 1)],  # one bad op: the unit fails
        [BattleOp("b1", "alice", MSG, (("ra", "v1.0", "x"), ("rb", "v1.1", "y"))),
         VoteOp("b1", "alice", "a"), VoteOp("b1", "alice", "b")],  # a repeated vote in one unit
        [VoteOp("nope", "alice", "a"), ThumbOp("r1", "carol", 1, owner="alice")],
    ])
    assert results[0][0].version == "v1.0"
    thumb, event = results[1]
    assert thumb.id is not None and event.id is not None and thumb.version == event.version == "v1.0"
    assert isinstance(results[2], UnitRejected) and [e.index for e in results[2].errors] == [1]
    assert isinstance(results[3], UnitRejected) and results[3].errors[0].code == "duplicate"
    assert isinstance(results[4], UnitRejected) and [e.code for e in results[4].errors] == ["not_found"]
    assert [(t.user_id, t.rating) for t in feedback.list_thumbs(db)] == [("alice", 1)]
    assert feedback.count_votes(db) == 0
    with pytest.raises(feedback.FeedbackError):
        feedback.get_battle(db, "b1")  # the failed unit's battle was not written either
    owned = ingest_now(db, [[ThumbOp("r1", "mallory", 1, owner="mallory")]])
    assert isinstance(owned[0], UnitRejected) and owned[0].errors[0].code == "forbidden"


def test_writer_groups_concurrent_units_and_acks_after_commit(db) -> None:
    seed.battle(db, battle_id="b", user_id="u", messages=MSG, answers=[("a1", "v1.0", "x"), ("b1", "v1.1", "y")])
    writer = GroupCommitWriter(db)
    committed = threading.Event()
    try:
        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(lambda i: writer.write([VoteOp("b", f"user-{i}", "ab"[i % 2])]), range(400)))
        ids = [r[0].id for r in results]
        assert len(set(ids)) == 400 and all(r[0].versions == ("v1.0", "v1.1") for r in results)
        stored = {v.user_id: v.vote_id for v in feedback.voted_battles(db)}
        assert stored == {f"user-{i}": ids[i] for i in range(400)}  # every acknowledged id is in the store
        assert writer.stats["units"] == 400 and writer.stats["commits"] < 400  # grouped
        with pytest.raises(UnitRejected, match="already voted"):
            writer.write([VoteOp("b", "user-0", "tie")])
        committed.set()
    finally:
        writer.close()
    with pytest.raises(RuntimeError, match="closed"):
        writer.submit([VoteOp("b", "late", "a")])
    assert committed.is_set()


def test_rows_read_back_as_sqlalchemy_writes_them(db) -> None:
    """The SQLite path writes through the raw DB-API cursor: its timestamps and JSON must be stored
    exactly as SQLAlchemy's own types store them (same text format, so ``ORDER BY created_at`` and
    reads mixing both writers agree), and read back equal."""
    import sqlalchemy as sa

    from llmloop.store.db import utcnow
    from llmloop.store.tables import completions, feedback_events

    messages = [{"role": "user", "content": "héllo ✓", "n": 2**70}]  # non-ASCII, an int orjson refuses
    (done,) = ingest_now(db, [[CompletionOp("r9", "alice", "v1.0", messages, "out"),
                               EventOp("edit", "r9", "alice", {"text": "é", "nested": [1, None]})]])
    with db.begin() as conn:
        conn.execute(completions.insert(), [dict(request_id="core", user_id="bob", version="v1.0", messages=messages,
                                                 output="x", battle_id=None, created_at=utcnow())])
        row = conn.execute(sa.select(completions).where(completions.c.request_id == "r9")).one()
        event = conn.execute(sa.select(feedback_events).where(feedback_events.c.id == done[1].id)).one()
        raw = conn.execute(sa.text("SELECT request_id, CAST(created_at AS TEXT), typeof(messages) FROM completions"
                                   " ORDER BY created_at")).all() if db.engine.dialect.name == "sqlite" else []
    assert row.messages == messages and row.created_at is not None
    assert event.payload == {"text": "é", "nested": [1, None]} and event.version == "v1.0"
    if raw:  # SQLite: same text shapes as SQLAlchemy's own insert, JSON stored as text
        (ours, ours_at, ours_type), (core, core_at, core_type) = raw
        assert (ours, core) == ("r9", "core") and ours_type == core_type == "text"
        assert len(ours_at) == len(core_at) and ours_at[10] == core_at[10] == " "


def test_submit_async_acks_after_commit_one_wakeup_per_group(db) -> None:
    """``submit_async`` resolves asyncio futures on their own loop, one hop per commit for all of it."""
    import asyncio

    seed.battle(db, battle_id="b", user_id="u", messages=MSG, answers=[("a1", "v1.0", "x"), ("b1", "v1.1", "y")])
    writer = GroupCommitWriter(db)
    hops = []

    async def main() -> tuple[list, BaseException]:
        loop = asyncio.get_running_loop()
        real = loop.call_soon_threadsafe
        loop.call_soon_threadsafe = lambda *a, **k: (hops.append(1), real(*a, **k))[1]  # count the writer's hops
        results = await asyncio.gather(*(writer.submit_async([VoteOp("b", f"user-{i}", "a")]) for i in range(300)))
        try:
            await writer.submit_async([VoteOp("b", "user-0", "tie")])
        except UnitRejected as e:
            return results, e
        raise AssertionError("a repeated vote was acknowledged")

    try:
        results, rejected = asyncio.run(main())
    finally:
        writer.close()
    ids = [r[0].id for r in results]
    assert "already voted" in str(rejected) and len(set(ids)) == 300
    assert {v.user_id: v.vote_id for v in feedback.voted_battles(db)} == {f"user-{i}": ids[i] for i in range(300)}
    assert len(hops) == writer.stats["commits"] < 300  # one wake-up per commit, not per unit
