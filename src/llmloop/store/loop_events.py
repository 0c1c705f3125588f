"""The loop's durable memory: the controller's state row, its decision events, which round consumed
which feedback, and pipeline runs.

* ``loop_controller`` holds one row: the round and phase the controller is in. Every phase change is
  one transaction together with the event that explains it, so a controller killed at any point
  restarts in the phase whose event it last wrote.
* ``loop_events`` is append-only: each decision with its evidence (numbers, CIs, versions).
* ``loop_feedback`` claims feedback for a round: one row per vote/thumb, unique per item, so the
  database itself refuses to let two rounds use the same feedback. A failed round releases its claims.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from llmloop.errors import Conflict, NotFound
from llmloop.store.db import Database, as_utc, utcnow
from llmloop.store.tables import (
    completions,
    loop_controller,
    loop_events,
    loop_feedback,
    pipeline_runs,
    pipeline_steps,
    thumbs,
    votes,
)

IDLE = "idle"


@dataclass(frozen=True)
class ControllerState:
    round_id: int | None
    phase: str  # idle | dataset | train | gate | canary
    stage_index: int
    phase_started_at: dt.datetime | None
    paused: bool
    data: dict[str, Any]
    updated_at: dt.datetime


@dataclass(frozen=True)
class LoopEvent:
    id: int
    round_id: int | None
    kind: str
    message: str
    evidence: dict[str, Any]
    actor: str
    created_at: dt.datetime


@dataclass(frozen=True)
class FeedbackClaim:
    """One piece of feedback a round consumed, and what became of it."""

    source: str  # vote | thumb | edit | battle
    source_id: str
    outcome: str  # train | holdout | dropped
    reason: str
    row_index: int | None
    user_id: str
    request_ids: list[str]
    versions: list[str]
    feedback_at: dt.datetime
    round_id: int = 0


# -- controller state -----------------------------------------------------------------------------
def _state(row: sa.Row | None) -> ControllerState:
    if row is None:
        return ControllerState(None, IDLE, 0, None, False, {}, utcnow())
    return ControllerState(row.round_id, row.phase, row.stage_index, as_utc(row.phase_started_at),
                           bool(row.paused), dict(row.data or {}), as_utc(row.updated_at))


def get_state(db: Database) -> ControllerState:
    with db.begin() as conn:
        return _state(conn.execute(sa.select(loop_controller).where(loop_controller.c.id == 1)).first())


def _write_state(conn: sa.Connection, **values: Any) -> None:
    values["updated_at"] = utcnow()
    if conn.execute(sa.select(loop_controller.c.id).where(loop_controller.c.id == 1)).first() is None:
        base = dict(id=1, round_id=None, phase=IDLE, stage_index=0, phase_started_at=None, paused=False, data={})
        conn.execute(loop_controller.insert().values(**{**base, **values}))
    else:
        conn.execute(loop_controller.update().where(loop_controller.c.id == 1).values(**values))


def _event(conn: sa.Connection, round_id: int | None, kind: str, message: str, evidence: dict[str, Any] | None,
           actor: str) -> int:
    return conn.execute(loop_events.insert().values(
        round_id=round_id, kind=kind, message=message, evidence=evidence or {}, actor=actor, created_at=utcnow(),
    )).inserted_primary_key[0]


class StaleState(Conflict, RuntimeError):
    """The controller's state changed under a writer (an admin command or another controller)."""


def _check(conn: sa.Connection, expect: tuple[int | None, str, int] | None) -> None:
    if expect is None:
        return
    row = conn.execute(sa.select(loop_controller).where(loop_controller.c.id == 1).with_for_update()).first()
    st = _state(row)
    if (st.round_id, st.phase, st.stage_index) != expect or st.data.get("decision"):
        raise StaleState(f"the loop is at round {st.round_id} phase {st.phase} stage {st.stage_index}"
                         f"{' with a pending ' + st.data['decision']['action'] if st.data.get('decision') else ''}, "
                         f"not {expect}; someone else moved it")


def transition(db: Database, *, round_id: int | None, phase: str, stage_index: int = 0,
               data: dict[str, Any] | None = None, event: tuple[str, str, dict[str, Any]] | None = None,
               actor: str = "loop", expect: tuple[int | None, str, int] | None = None) -> ControllerState:
    """Move the controller to ``phase`` (and record ``event`` = (kind, message, evidence)) atomically;
    with ``expect`` = (round, phase, stage) only if the state is still that (else ``StaleState``)."""
    with db.begin() as conn:
        _check(conn, expect)
        if event is not None:
            _event(conn, round_id, event[0], event[1], event[2], actor)
        _write_state(conn, round_id=round_id, phase=phase, stage_index=stage_index,
                     phase_started_at=utcnow(), data=data or {})
    return get_state(db)


def update_state_data(db: Database, data: dict[str, Any], expect: tuple[int | None, str, int] | None = None) -> None:
    """Merge ``data`` into the state's phase data (e.g. a decision about to be carried out)."""
    with db.begin() as conn:
        _check(conn, expect)
        row = conn.execute(sa.select(loop_controller.c.data).where(loop_controller.c.id == 1)).first()
        _write_state(conn, data={**((row.data if row else None) or {}), **data})


def set_paused(db: Database, paused: bool, *, reason: str, actor: str) -> ControllerState:
    with db.begin() as conn:
        row = conn.execute(sa.select(loop_controller.c.round_id).where(loop_controller.c.id == 1)).first()
        _event(conn, row.round_id if row else None, "paused" if paused else "resumed", reason, {}, actor)
        _write_state(conn, paused=paused)
    return get_state(db)


def add_event(db: Database, round_id: int | None, kind: str, message: str, evidence: dict[str, Any] | None = None,
              actor: str = "loop") -> int:
    with db.begin() as conn:
        return _event(conn, round_id, kind, message, evidence, actor)


def _ev(r: sa.Row) -> LoopEvent:
    return LoopEvent(r.id, r.round_id, r.kind, r.message, dict(r.evidence or {}), r.actor, as_utc(r.created_at))


def list_events(db: Database, round_id: int | None = None, kinds: tuple[str, ...] = (), limit: int = 1000) -> list[LoopEvent]:
    q = sa.select(loop_events).order_by(loop_events.c.id)
    if round_id is not None:
        q = q.where(loop_events.c.round_id == round_id)
    if kinds:
        q = q.where(loop_events.c.kind.in_(kinds))
    with db.begin() as conn:
        rows = conn.execute(q).all()
    return [_ev(r) for r in rows[-limit:]]


# -- feedback claims ------------------------------------------------------------------------------
def _source_ids(source: str) -> sa.Column:
    from llmloop.store.tables import feedback_events

    return {"vote": votes.c.id, "thumb": thumbs.c.id, "edit": feedback_events.c.id}[source]


def _claimed(source: str) -> sa.Select:
    return sa.select(loop_feedback.c.source_id).where(loop_feedback.c.source == source)


def unclaimed_ids(db: Database, source: str) -> list[int]:
    """Feedback ids of ``source`` (vote | thumb | edit) no round has consumed yet — not a watermark:
    an item committed late (a lower id after a higher one) is never skipped."""
    col = _source_ids(source)
    q = sa.select(col).where(sa.cast(col, sa.String(64)).not_in(_claimed(source))).order_by(col)
    if source == "edit":
        from llmloop.store.tables import feedback_events

        q = q.where(feedback_events.c.kind == "edit")
    with db.begin() as conn:
        return list(conn.execute(q).scalars())


def claimed_ids(db: Database) -> dict[str, set[str]]:
    with db.begin() as conn:
        rows = conn.execute(sa.select(loop_feedback.c.source, loop_feedback.c.source_id)).all()
    out: dict[str, set[str]] = {}
    for source, sid in rows:
        out.setdefault(source, set()).add(sid)
    return out


def claim(db: Database, round_id: int, claims: list[FeedbackClaim]) -> None:
    """Record that ``round_id`` consumed ``claims``; all or nothing (IntegrityError if any was claimed)."""
    if not claims:
        return
    with db.begin() as conn:
        conn.execute(loop_feedback.insert(), [
            dict(round_id=round_id, source=c.source, source_id=c.source_id, outcome=c.outcome, reason=c.reason,
                 row_index=c.row_index, user_id=c.user_id, request_ids=c.request_ids, versions=c.versions,
                 feedback_at=c.feedback_at)
            for c in claims
        ])


def release(db: Database, round_id: int) -> int:
    """A failed round gives its feedback back to the next round; returns how many items."""
    with db.begin() as conn:
        return conn.execute(loop_feedback.delete().where(loop_feedback.c.round_id == round_id)).rowcount


def claims_of(db: Database, round_id: int) -> list[FeedbackClaim]:
    with db.begin() as conn:
        rows = conn.execute(sa.select(loop_feedback).where(loop_feedback.c.round_id == round_id)
                            .order_by(loop_feedback.c.id)).all()
    return [FeedbackClaim(r.source, r.source_id, r.outcome, r.reason, r.row_index, r.user_id, list(r.request_ids),
                          list(r.versions), as_utc(r.feedback_at), r.round_id) for r in rows]


def claim_counts(db: Database) -> dict[tuple[str, str], int]:
    """(source, source_id) → how many rounds claimed it (always 1: the unique constraint)."""
    with db.begin() as conn:
        rows = conn.execute(sa.select(loop_feedback.c.source, loop_feedback.c.source_id, sa.func.count())
                            .group_by(loop_feedback.c.source, loop_feedback.c.source_id)).all()
    return {(r[0], r[1]): r[2] for r in rows}


def thumbs_by_version(db: Database, since: dt.datetime, versions: tuple[str, ...]) -> list[tuple[str, bool]]:
    """(version, thumbs up?) of thumbs given since ``since`` on answers of ``versions``, in time order."""
    q = (sa.select(completions.c.version, thumbs.c.rating)
         .join(completions, completions.c.request_id == thumbs.c.request_id)
         .where(thumbs.c.created_at >= since, completions.c.version.in_(versions))
         .order_by(thumbs.c.id))
    with db.begin() as conn:
        return [(r.version, r.rating > 0) for r in conn.execute(q)]


# -- pipelines ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PipelineStep:
    run_id: int
    step: str
    status: str
    job_id: str | None
    outputs: dict[str, Any]
    error: str | None


@dataclass(frozen=True)
class PipelineRun:
    id: int
    name: str
    spec_hash: str
    status: str
    report_path: str | None
    created_at: dt.datetime
    finished_at: dt.datetime | None


def _run(r: sa.Row) -> PipelineRun:
    return PipelineRun(r.id, r.name, r.spec_hash, r.status, r.report_path, as_utc(r.created_at), as_utc(r.finished_at))


def start_pipeline(db: Database, name: str, spec_hash: str, spec: dict[str, Any]) -> PipelineRun:
    with db.begin() as conn:
        rid = conn.execute(pipeline_runs.insert().values(
            name=name, spec_hash=spec_hash, spec=spec, status="running", created_at=utcnow())).inserted_primary_key[0]
    return get_pipeline(db, rid)


class PipelineRunNotFound(NotFound, LookupError):
    """No pipeline run of that id."""


def get_pipeline(db: Database, run_id: int) -> PipelineRun:
    with db.begin() as conn:
        r = conn.execute(sa.select(pipeline_runs).where(pipeline_runs.c.id == run_id)).first()
    if r is None:
        raise PipelineRunNotFound(f"no pipeline run {run_id}; see `llmloop pipeline list`")
    return _run(r)


def unfinished_pipeline(db: Database, spec_hash: str) -> PipelineRun | None:
    with db.begin() as conn:
        r = conn.execute(sa.select(pipeline_runs).where(pipeline_runs.c.spec_hash == spec_hash,
                                                        pipeline_runs.c.status != "succeeded")
                         .order_by(pipeline_runs.c.id.desc()).limit(1)).first()
    return _run(r) if r else None


def list_pipelines(db: Database) -> list[PipelineRun]:
    with db.begin() as conn:
        return [_run(r) for r in conn.execute(sa.select(pipeline_runs).order_by(pipeline_runs.c.id))]


def finish_pipeline(db: Database, run_id: int, status: str, report_path: str | None = None) -> None:
    with db.begin() as conn:
        conn.execute(pipeline_runs.update().where(pipeline_runs.c.id == run_id).values(
            status=status, report_path=report_path, finished_at=utcnow()))


def pipeline_steps_of(db: Database, run_id: int) -> dict[str, PipelineStep]:
    with db.begin() as conn:
        rows = conn.execute(sa.select(pipeline_steps).where(pipeline_steps.c.run_id == run_id)
                            .order_by(pipeline_steps.c.id)).all()
    return {r.step: PipelineStep(r.run_id, r.step, r.status, r.job_id, dict(r.outputs or {}), r.error) for r in rows}


def set_pipeline_step(db: Database, run_id: int, step: str, status: str, *, job_id: str | None = None,
                      outputs: dict[str, Any] | None = None, error: str | None = None) -> None:
    now = utcnow()
    values = dict(status=status, job_id=job_id, outputs=outputs or {}, error=error,
                  finished_at=now if status != "running" else None)
    with db.begin() as conn:
        exists = conn.execute(sa.select(pipeline_steps.c.id).where(
            pipeline_steps.c.run_id == run_id, pipeline_steps.c.step == step)).first()
        if exists:
            conn.execute(pipeline_steps.update().where(pipeline_steps.c.id == exists.id).values(**values))
        else:
            conn.execute(pipeline_steps.insert().values(run_id=run_id, step=step, started_at=now, **values))


def pending_counts(db: Database) -> dict[str, int]:
    """Unclaimed feedback that can become pairs (a/b votes; thumbs-down with a correction): a cheap
    upper bound of the pairs pending (dedup, filters and identical answers are not applied)."""
    with db.begin() as conn:
        v = conn.execute(sa.select(sa.func.count()).select_from(votes).where(
            votes.c.choice.in_(("a", "b")), sa.cast(votes.c.id, sa.String(64)).not_in(_claimed("vote")))).scalar()
        t = conn.execute(sa.select(sa.func.count()).select_from(thumbs).where(
            thumbs.c.rating < 0, thumbs.c.correction.is_not(None),
            sa.cast(thumbs.c.id, sa.String(64)).not_in(_claimed("thumb")))).scalar()
    return {"votes": int(v or 0), "thumbs": int(t or 0)}


def round_counts(db: Database) -> dict[str, int]:
    from llmloop.store.tables import loop_rounds

    with db.begin() as conn:
        rows = conn.execute(sa.select(loop_rounds.c.status, sa.func.count()).group_by(loop_rounds.c.status)).all()
    return {r[0]: int(r[1]) for r in rows}
