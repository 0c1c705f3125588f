"""Seed feedback (answers, arena battles, votes, thumbs) through the production write path.

The gateway writes every answer and every piece of feedback through ``store.ingest`` (group commit,
one validation per unit); tests store theirs the same way, so what they read back is what the
gateway would have stored. Each call is one unit committed in its own transaction (``ingest_now``)
and returns once it is durable; a unit the writer refuses raises its ``UnitRejected`` (whose
``errors`` carry the codes the HTTP API answers with: not_found, duplicate, invalid, forbidden).
"""

from __future__ import annotations

from typing import Any

from llmloop.store import Database
from llmloop.store.ingest import (
    BattleOp,
    CompletionOp,
    Op,
    OpResult,
    ThumbOp,
    UnitRejected,
    VoteOp,
    ingest_now,
)


def seed(db: Database, *ops: Op) -> list[OpResult]:
    """Store ``ops`` as one unit (all or nothing); their results once committed."""
    (result,) = ingest_now(db, [list(ops)])
    if isinstance(result, UnitRejected):
        raise result
    return result


def completion(db: Database, *, request_id: str, user_id: str, version: str, messages: list[dict[str, Any]],
               output: str, battle_id: str | None = None) -> None:
    """A served answer."""
    seed(db, CompletionOp(request_id=request_id, user_id=user_id, version=version, messages=messages, output=output,
                          battle_id=battle_id))


def battle(db: Database, *, battle_id: str, user_id: str, messages: list[dict[str, Any]],
           answers: list[tuple[str, str, str]]) -> None:
    """An arena battle and both its answers, ``answers`` = [(request_id, version, output)] × 2."""
    seed(db, BattleOp(battle_id=battle_id, user_id=user_id, messages=messages, answers=(answers[0], answers[1])))


def vote(db: Database, *, battle_id: str, user_id: str, choice: str) -> int:
    """A vote on a stored battle (a, b, tie, both_bad); its id."""
    (r,) = seed(db, VoteOp(battle_id=battle_id, user_id=user_id, choice=choice))
    return r.id


def thumb(db: Database, *, request_id: str, user_id: str, rating: int, comment: str = "",
          correction: str | None = None) -> int:
    """A thumb (1 up, -1 down) on a stored answer, with an optional comment and correction; its id."""
    (r,) = seed(db, ThumbOp(request_id=request_id, user_id=user_id, rating=rating, comment=comment,
                            correction=correction))
    return r.id
