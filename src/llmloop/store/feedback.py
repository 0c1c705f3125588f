"""Served answers, arena battles, votes and thumbs: the raw material of preference data.

Every write here commits before it returns, so a caller that acknowledges after the call returns
never acknowledges something a crash could lose.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from llmloop.errors import UserError
from llmloop.store.db import Database, as_utc, utcnow
from llmloop.store.records import Battle, Completion, Thumb, VotedBattle
from llmloop.store.tables import battles, completions, feedback_events, thumbs, votes

VOTE_CHOICES = ("a", "b", "tie", "both_bad")
EVENT_KINDS = ("edit", "regenerate")


class FeedbackError(UserError, ValueError):
    """Feedback that points at nothing, or repeats a vote: the caller's mistake, a 4xx."""


def record_completion(
    db: Database,
    *,
    request_id: str,
    user_id: str,
    version: str,
    messages: list[dict[str, Any]],
    output: str,
) -> None:
    with db.begin() as conn:
        conn.execute(
            completions.insert().values(
                request_id=request_id,
                user_id=user_id,
                version=version,
                messages=messages,
                output=output,
                created_at=utcnow(),
            )
        )


def record_battle(
    db: Database,
    *,
    battle_id: str,
    user_id: str,
    messages: list[dict[str, Any]],
    answers: list[tuple[str, str, str]],
) -> None:
    """Store a battle and both of its answers, ``answers`` = [(request_id, version, output)] × 2."""
    (rid_a, ver_a, out_a), (rid_b, ver_b, out_b) = answers
    now = utcnow()
    with db.begin() as conn:
        conn.execute(
            completions.insert(),
            [
                dict(request_id=rid, user_id=user_id, version=ver, messages=messages, output=out,
                     battle_id=battle_id, created_at=now)
                for rid, ver, out in answers
            ],
        )
        conn.execute(
            battles.insert().values(
                id=battle_id,
                user_id=user_id,
                messages=messages,
                request_id_a=rid_a,
                request_id_b=rid_b,
                version_a=ver_a,
                version_b=ver_b,
                created_at=now,
            )
        )


def get_completion(db: Database, request_id: str) -> Completion:
    with db.begin() as conn:
        r = conn.execute(sa.select(completions).where(completions.c.request_id == request_id)).first()
    if r is None:
        raise FeedbackError(f"no answer with request id {request_id!r}")
    return Completion(
        request_id=r.request_id, user_id=r.user_id, version=r.version, messages=r.messages,
        output=r.output, battle_id=r.battle_id, created_at=as_utc(r.created_at),
    )


def get_battle(db: Database, battle_id: str) -> Battle:
    with db.begin() as conn:
        r = conn.execute(sa.select(battles).where(battles.c.id == battle_id)).first()
    if r is None:
        raise FeedbackError(f"no arena battle {battle_id!r}")
    return Battle(**{**r._mapping, "created_at": as_utc(r.created_at)})


def record_vote(db: Database, *, battle_id: str, user_id: str, choice: str) -> int:
    """Store a vote; returns its id. One vote per user and battle."""
    if choice not in VOTE_CHOICES:
        raise FeedbackError(f"vote choice must be one of {VOTE_CHOICES}, got {choice!r}")
    try:
        with db.begin() as conn:
            if conn.execute(sa.select(battles.c.id).where(battles.c.id == battle_id)).first() is None:
                raise FeedbackError(f"no arena battle {battle_id!r}: vote on a battle id you were served")
            return conn.execute(
                votes.insert().values(
                    battle_id=battle_id, user_id=user_id, choice=choice, created_at=utcnow()
                )
            ).inserted_primary_key[0]
    except sa.exc.IntegrityError as e:
        raise FeedbackError(f"user {user_id!r} already voted on battle {battle_id!r}") from e


def record_thumb(
    db: Database,
    *,
    request_id: str,
    user_id: str,
    rating: int,
    comment: str = "",
    correction: str | None = None,
) -> int:
    if rating not in (1, -1):
        raise FeedbackError(f"rating must be 1 (up) or -1 (down), got {rating!r}")
    with db.begin() as conn:
        if conn.execute(
            sa.select(completions.c.request_id).where(completions.c.request_id == request_id)
        ).first() is None:
            raise FeedbackError(f"no answer with request id {request_id!r}: rate an answer you were served")
        return conn.execute(
            thumbs.insert().values(
                request_id=request_id, user_id=user_id, rating=rating, comment=comment,
                correction=correction, created_at=utcnow(),
            )
        ).inserted_primary_key[0]


def list_thumbs(db: Database) -> list[Thumb]:
    with db.begin() as conn:
        return [
            Thumb(**{**r._mapping, "created_at": as_utc(r.created_at)})
            for r in conn.execute(sa.select(thumbs).order_by(thumbs.c.id))
        ]


def max_vote_id(db: Database) -> int:
    with db.begin() as conn:
        return conn.execute(sa.select(sa.func.coalesce(sa.func.max(votes.c.id), 0))).scalar()


def count_votes(db: Database, *, after_id: int = 0) -> int:
    with db.begin() as conn:
        return conn.execute(
            sa.select(sa.func.count()).select_from(votes).where(votes.c.id > after_id)
        ).scalar()


def voted_battles(db: Database, *, after_id: int = 0, up_to_id: int | None = None) -> list[VotedBattle]:
    """Votes with id in (after_id, up_to_id], joined with their battle and both answers."""
    ca, cb = completions.alias("ca"), completions.alias("cb")
    q = (
        sa.select(
            votes.c.id, votes.c.battle_id, votes.c.user_id, votes.c.choice, votes.c.created_at,
            battles.c.messages, battles.c.request_id_a, battles.c.request_id_b,
            battles.c.version_a, battles.c.version_b,
            ca.c.output.label("output_a"), cb.c.output.label("output_b"),
            ca.c.messages.label("messages_a"), cb.c.messages.label("messages_b"),
        )
        .join(battles, battles.c.id == votes.c.battle_id)
        .join(ca, ca.c.request_id == battles.c.request_id_a)
        .join(cb, cb.c.request_id == battles.c.request_id_b)
        .where(votes.c.id > after_id)
        .order_by(votes.c.id)
    )
    if up_to_id is not None:
        q = q.where(votes.c.id <= up_to_id)
    with db.begin() as conn:
        return [
            VotedBattle(
                vote_id=r.id, battle_id=r.battle_id, user_id=r.user_id, choice=r.choice,
                messages=r.messages, output_a=r.output_a, output_b=r.output_b,
                request_id_a=r.request_id_a, request_id_b=r.request_id_b,
                version_a=r.version_a, version_b=r.version_b, voted_at=as_utc(r.created_at),
                **_later_turns(r.messages, r.messages_a, r.messages_b),
            )
            for r in conn.execute(q)
        ]


def _later_turns(first: list[dict[str, Any]], a: list[dict[str, Any]], b: list[dict[str, Any]]) -> dict[str, Any]:
    """Each side's last prompt when the battle went on past its first turn (see ``ingest.BattleTurnOp``)."""
    return {} if a == first and b == first else {"messages_a": a, "messages_b": b}


def list_events(db: Database, *, kind: str | None = None, after_id: int = 0) -> list[dict[str, Any]]:
    """Edit/regenerate events (id, kind, request_id, version, user_id, payload, created_at), oldest first.

    Writes go through ``store.ingest`` (group commit); this is the read side.
    """
    q = sa.select(feedback_events).where(feedback_events.c.id > after_id).order_by(feedback_events.c.id)
    if kind is not None:
        q = q.where(feedback_events.c.kind == kind)
    with db.begin() as conn:
        return [{**r._mapping, "created_at": as_utc(r.created_at)} for r in conn.execute(q)]
