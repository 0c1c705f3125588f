"""Served answers, arena battles, votes and thumbs: the raw material of preference data (the read side).

Every write goes through ``store.ingest`` (group commit: a unit is acknowledged only after its
commit, so nothing acknowledged can be lost by a crash); this module reads what it stored, and holds
the vocabulary both share (``VOTE_CHOICES``, ``EVENT_KINDS``).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from llmloop.errors import UserError
from llmloop.store.db import Database, as_utc
from llmloop.store.records import Battle, Completion, Thumb, VotedBattle
from llmloop.store.tables import battles, completions, feedback_events, thumbs, votes

VOTE_CHOICES = ("a", "b", "tie", "both_bad")
EVENT_KINDS = ("edit", "regenerate")


class FeedbackError(UserError, ValueError):
    """Feedback that points at nothing, or repeats a vote: the caller's mistake, a 4xx."""


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
