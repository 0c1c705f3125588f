"""Loop rounds: which votes each round consumed, what it trained, and what it decided."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from llmloop.store.db import Database, as_utc, utcnow
from llmloop.store.records import LoopRound
from llmloop.store.tables import loop_rounds

# running → promoted (through every rollout stage) | rejected (gate) | rolled_back (canary or admin)
# | failed (an error; its feedback is released for the next round)
FINISHED = ("promoted", "rejected", "rolled_back", "failed")


def _record(r: sa.Row) -> LoopRound:
    return LoopRound(
        **{
            **r._mapping,
            "started_at": as_utc(r.started_at),
            "finished_at": as_utc(r.finished_at),
        }
    )


def start_round(db: Database, *, production_version: str, first_vote_id: int, last_vote_id: int) -> LoopRound:
    with db.begin() as conn:
        rid = conn.execute(
            loop_rounds.insert().values(
                status="running",
                production_version=production_version,
                first_vote_id=first_vote_id,
                last_vote_id=last_vote_id,
                evidence={},
                started_at=utcnow(),
            )
        ).inserted_primary_key[0]
    return get_round(db, rid)


def update_round(db: Database, round_id: int, **values: Any) -> LoopRound:
    if values.get("status") in FINISHED:
        values["finished_at"] = utcnow()
    with db.begin() as conn:
        conn.execute(loop_rounds.update().where(loop_rounds.c.id == round_id).values(**values))
    return get_round(db, round_id)


def get_round(db: Database, round_id: int) -> LoopRound:
    with db.begin() as conn:
        r = conn.execute(sa.select(loop_rounds).where(loop_rounds.c.id == round_id)).one()
    return _record(r)


def list_rounds(db: Database) -> list[LoopRound]:
    with db.begin() as conn:
        return [_record(r) for r in conn.execute(sa.select(loop_rounds).order_by(loop_rounds.c.id))]


def current_round(db: Database) -> LoopRound | None:
    """The newest round still running, if any."""
    with db.begin() as conn:
        r = conn.execute(sa.select(loop_rounds).where(loop_rounds.c.status == "running")
                         .order_by(loop_rounds.c.id.desc()).limit(1)).first()
    return _record(r) if r else None


def last_finished(db: Database, statuses: tuple[str, ...] = ("promoted", "rejected", "rolled_back")) -> LoopRound | None:
    """The newest round that ended with one of ``statuses`` (what the trigger's min-days counts from)."""
    with db.begin() as conn:
        r = conn.execute(sa.select(loop_rounds).where(loop_rounds.c.status.in_(statuses))
                         .order_by(loop_rounds.c.id.desc()).limit(1)).first()
    return _record(r) if r else None


def open_round(db: Database, *, production_version: str, first_vote_id: int, last_vote_id: int,
               claims: list, event: tuple[str, str, dict[str, Any]], dataset_version_id: int | None = None,
               evidence: dict[str, Any] | None = None, data: dict[str, Any] | None = None, phase: str = "train",
               actor: str = "loop") -> int:
    """One transaction: a running round, its feedback claims (``loop_events.FeedbackClaim``), the
    controller in ``phase`` (with ``data``) and the event that says why. A claim another round holds already
    makes the whole transaction fail (the unique constraint), so feedback is never used twice."""
    from llmloop.store import loop_events as le
    from llmloop.store.tables import loop_feedback

    with db.begin() as conn:
        rid = conn.execute(loop_rounds.insert().values(
            status="running", production_version=production_version, first_vote_id=first_vote_id,
            last_vote_id=last_vote_id, evidence=evidence or {}, started_at=utcnow(),
            dataset_version_id=dataset_version_id,
        )).inserted_primary_key[0]
        if claims:
            conn.execute(loop_feedback.insert(), [
                dict(round_id=rid, source=c.source, source_id=c.source_id, outcome=c.outcome, reason=c.reason,
                     row_index=c.row_index, user_id=c.user_id, request_ids=c.request_ids, versions=c.versions,
                     feedback_at=c.feedback_at)
                for c in claims
            ])
        le._event(conn, rid, event[0], event[1], event[2], actor)
        le._write_state(conn, round_id=rid, phase=phase, stage_index=0, phase_started_at=utcnow(), data=data or {})
    return rid


def finish_round(db: Database, round_id: int, status: str, *, evidence: dict[str, Any],
                 event: tuple[str, str, dict[str, Any]], actor: str = "loop", release: bool = False) -> None:
    """One transaction: the round's final status, its event, the controller back to idle (and, for a
    failed round, its feedback claims released for the next round)."""
    from llmloop.store import loop_events as le
    from llmloop.store.tables import loop_feedback

    if status not in FINISHED:
        raise ValueError(f"a round finishes as one of {FINISHED}, not {status!r}")
    with db.begin() as conn:
        row = conn.execute(sa.select(loop_rounds.c.evidence, loop_rounds.c.status)
                           .where(loop_rounds.c.id == round_id).with_for_update()).one()
        if row.status != "running":  # decided already (a decision carried out twice): nothing to do
            return
        conn.execute(loop_rounds.update().where(loop_rounds.c.id == round_id).values(
            status=status, evidence={**(row.evidence or {}), **evidence}, finished_at=utcnow()))
        if release:
            conn.execute(loop_feedback.delete().where(loop_feedback.c.round_id == round_id))
        le._event(conn, round_id, event[0], event[1], event[2], actor)
        le._write_state(conn, round_id=None, phase=le.IDLE, stage_index=0, phase_started_at=utcnow(), data={})
