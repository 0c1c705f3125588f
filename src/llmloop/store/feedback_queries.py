"""Read-only queries over feedback for the preference builders (``llmloop.data.preferences``).

The serving side writes feedback (``store.feedback``, ``store.ingest``); this module only reads it,
joined with the answers it is about, so the data layer can turn it into training rows with full
provenance. Every query takes an id window ``(after_id, up_to_id]`` where the feedback has integer
ids, so a caller (the loop) can consume feedback incrementally by watermark and never twice.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from llmloop.store.db import Database, as_utc
from llmloop.store.tables import battles, completions, feedback_events, thumbs, votes


@dataclass(frozen=True)
class RatedAnswer:
    """A thumb joined with the answer it rates."""

    thumb_id: int
    request_id: str
    user_id: str  # who rated
    rating: int  # +1 | -1
    comment: str
    correction: str | None
    messages: list[dict[str, Any]]  # the conversation the answer replied to
    output: str  # the served answer
    version: str  # the model version that served it
    served_at: dt.datetime
    rated_at: dt.datetime


@dataclass(frozen=True)
class EditedAnswer:
    """An ``edit`` feedback event (the user rewrote the answer) joined with the served answer."""

    event_id: int
    request_id: str
    user_id: str
    text: str  # the user's rewrite
    messages: list[dict[str, Any]]
    output: str
    version: str
    served_at: dt.datetime
    edited_at: dt.datetime


@dataclass(frozen=True)
class UnvotedBattle:
    """An arena battle nobody voted on: an unlabelled pair of answers to one prompt."""

    battle_id: str
    user_id: str
    messages: list[dict[str, Any]]
    request_id_a: str
    request_id_b: str
    version_a: str
    version_b: str
    output_a: str
    output_b: str
    created_at: dt.datetime
    turns: int = 1  # a multi-turn battle's sides answered their own histories (the judge skips those)


def _window(q: sa.Select, column: sa.Column, after_id: int, up_to_id: int | None) -> sa.Select:
    q = q.where(column > after_id)
    return q if up_to_id is None else q.where(column <= up_to_id)


def rated_answers(db: Database, *, after_id: int = 0, up_to_id: int | None = None,
                  rating: int | None = None) -> list[RatedAnswer]:
    """Thumbs with id in ``(after_id, up_to_id]`` (only ``rating`` when given), oldest first."""
    q = (
        sa.select(thumbs.c.id, thumbs.c.request_id, thumbs.c.user_id, thumbs.c.rating, thumbs.c.comment,
                  thumbs.c.correction, thumbs.c.created_at.label("rated_at"), completions.c.messages,
                  completions.c.output, completions.c.version, completions.c.created_at.label("served_at"))
        .join(completions, completions.c.request_id == thumbs.c.request_id)
        .order_by(thumbs.c.id)
    )
    q = _window(q, thumbs.c.id, after_id, up_to_id)
    if rating is not None:
        q = q.where(thumbs.c.rating == rating)
    with db.begin() as conn:
        return [
            RatedAnswer(thumb_id=r.id, request_id=r.request_id, user_id=r.user_id, rating=r.rating,
                        comment=r.comment or "", correction=r.correction, messages=r.messages, output=r.output,
                        version=r.version, served_at=as_utc(r.served_at), rated_at=as_utc(r.rated_at))
            for r in conn.execute(q)
        ]


def edited_answers(db: Database, *, after_id: int = 0, up_to_id: int | None = None) -> list[EditedAnswer]:
    """``edit`` events with id in ``(after_id, up_to_id]``, oldest first (events without text are left out)."""
    q = (
        sa.select(feedback_events.c.id, feedback_events.c.request_id, feedback_events.c.user_id,
                  feedback_events.c.payload, feedback_events.c.created_at.label("edited_at"),
                  completions.c.messages, completions.c.output, completions.c.version,
                  completions.c.created_at.label("served_at"))
        .join(completions, completions.c.request_id == feedback_events.c.request_id)
        .where(feedback_events.c.kind == "edit")
        .order_by(feedback_events.c.id)
    )
    q = _window(q, feedback_events.c.id, after_id, up_to_id)
    out = []
    with db.begin() as conn:
        for r in conn.execute(q):
            text = (r.payload or {}).get("text") if isinstance(r.payload, dict) else None
            if isinstance(text, str) and text.strip():
                out.append(EditedAnswer(event_id=r.id, request_id=r.request_id, user_id=r.user_id, text=text,
                                        messages=r.messages, output=r.output, version=r.version,
                                        served_at=as_utc(r.served_at), edited_at=as_utc(r.edited_at)))
    return out


def unvoted_battles(db: Database, *, since: dt.datetime | None = None, limit: int | None = None) -> list[UnvotedBattle]:
    """Arena battles without any vote (created at or after ``since``), oldest first."""
    ca, cb = completions.alias("ca"), completions.alias("cb")
    voted = sa.select(votes.c.battle_id).where(votes.c.battle_id == battles.c.id).exists()
    q = (
        sa.select(battles.c.id, battles.c.user_id, battles.c.messages, battles.c.request_id_a,
                  battles.c.request_id_b, battles.c.version_a, battles.c.version_b, battles.c.created_at,
                  ca.c.output.label("output_a"), cb.c.output.label("output_b"), ca.c.messages.label("messages_a"))
        .join(ca, ca.c.request_id == battles.c.request_id_a)
        .join(cb, cb.c.request_id == battles.c.request_id_b)
        .where(~voted)
        .order_by(battles.c.created_at, battles.c.id)
    )
    if since is not None:
        q = q.where(battles.c.created_at >= since)
    if limit is not None:
        q = q.limit(limit)
    with db.begin() as conn:
        return [
            UnvotedBattle(battle_id=r.id, user_id=r.user_id, messages=r.messages, request_id_a=r.request_id_a,
                          request_id_b=r.request_id_b, version_a=r.version_a, version_b=r.version_b,
                          output_a=r.output_a, output_b=r.output_b, created_at=as_utc(r.created_at),
                          turns=1 + sum(m.get("role") == "assistant" for m in r.messages_a[len(r.messages):]))
            for r in conn.execute(q)
        ]


@dataclass(frozen=True)
class BattleState:
    """Where an arena battle stands, for its next turn: each side's conversation so far (its own
    answers and the user's follow-ups), the request ids of the last two answers, and whether a vote
    ended it."""

    battle_id: str
    user_id: str
    version_a: str
    version_b: str
    request_id_a: str
    request_id_b: str
    history_a: list[dict[str, Any]]
    history_b: list[dict[str, Any]]
    turns: int
    voted: bool


def battle_state(db: Database, battle_id: str) -> BattleState | None:
    """The battle ``battle_id`` as its next turn needs it, or None when there is no such battle."""
    ca, cb = completions.alias("ca"), completions.alias("cb")
    voted = sa.select(votes.c.battle_id).where(votes.c.battle_id == battles.c.id).exists()
    q = (
        sa.select(battles.c.id, battles.c.user_id, battles.c.messages, battles.c.request_id_a, battles.c.request_id_b,
                  battles.c.version_a, battles.c.version_b, voted.label("voted"),
                  ca.c.messages.label("messages_a"), ca.c.output.label("output_a"),
                  cb.c.messages.label("messages_b"), cb.c.output.label("output_b"))
        .join(ca, ca.c.request_id == battles.c.request_id_a)
        .join(cb, cb.c.request_id == battles.c.request_id_b)
        .where(battles.c.id == battle_id)
    )
    with db.begin() as conn:
        r = conn.execute(q).first()
    if r is None:
        return None
    return BattleState(
        battle_id=r.id, user_id=r.user_id, version_a=r.version_a, version_b=r.version_b,
        request_id_a=r.request_id_a, request_id_b=r.request_id_b,
        history_a=[*r.messages_a, {"role": "assistant", "content": r.output_a}],
        history_b=[*r.messages_b, {"role": "assistant", "content": r.output_b}],
        turns=1 + sum(m.get("role") == "assistant" for m in r.messages_a[len(r.messages):]),
        voted=bool(r.voted))


def max_feedback_ids(db: Database) -> dict[str, int]:
    """The highest vote, thumb and feedback-event ids now stored (0 when none): watermarks."""
    with db.begin() as conn:
        return {
            name: conn.execute(sa.select(sa.func.coalesce(sa.func.max(col), 0))).scalar()
            for name, col in (("votes", votes.c.id), ("thumbs", thumbs.c.id), ("events", feedback_events.c.id))
        }
