"""Training jobs: durable status, per-step metrics, and how each job runs as a process.

Claiming is atomic so several workers can share one store: on PostgreSQL a worker selects the oldest
queued job ``FOR UPDATE SKIP LOCKED`` (others skip the row it holds) and marks it running in the same
transaction; on SQLite (one writer at a time) a guarded ``UPDATE … WHERE status = 'queued'`` wins
for exactly one worker, which its row count tells.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from llmloop.errors import UserError, NotFound
from llmloop.store.db import Database, as_utc, utcnow
from llmloop.store.records import Job
from llmloop.store.tables import job_metrics, job_runs, jobs

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")


class JobNotFound(NotFound, LookupError):
    pass


def _record(row: sa.Row) -> Job:
    return Job(
        id=row.id,
        stage=row.stage,
        status=row.status,
        config=row.config,
        output_dir=row.output_dir,
        log_path=row.log_path,
        error=row.error,
        result=row.result,
        created_at=as_utc(row.created_at),
        started_at=as_utc(row.started_at),
        finished_at=as_utc(row.finished_at),
    )


@dataclass(frozen=True)
class JobRun:
    """How a job runs: its backend, the worker that claimed it, its process, attempts, requests."""

    job_id: str
    backend: str
    worker: str | None
    pid: int | None
    attempts: int
    resume: bool
    cancel_requested: bool
    gpus: int


def create_job(db: Database, *, stage: str, config: dict[str, Any], backend: str = "trl", gpus: int = 1) -> Job:
    job_id = f"{stage}-{uuid.uuid4().hex[:12]}"
    out = db.workspace.jobs_dir / job_id
    out.mkdir(parents=True, exist_ok=False)
    with db.begin() as conn:
        conn.execute(
            jobs.insert().values(
                id=job_id,
                stage=stage,
                status="queued",
                config=config,
                output_dir=str(out),
                log_path=str(out / "job.log"),
                created_at=utcnow(),
            )
        )
        conn.execute(job_runs.insert().values(job_id=job_id, backend=backend, attempts=0, resume=False,
                                              cancel_requested=False, gpus=gpus, updated_at=utcnow()))
    return get_job(db, job_id)


def get_job(db: Database, job_id: str) -> Job:
    with db.begin() as conn:
        row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
    if row is None:
        raise JobNotFound(f"no job {job_id!r}; see `llmloop jobs list`")
    return _record(row)


def list_jobs(db: Database) -> list[Job]:
    with db.begin() as conn:
        return [_record(r) for r in conn.execute(sa.select(jobs).order_by(jobs.c.created_at))]


def set_status(
    db: Database,
    job_id: str,
    status: str,
    *,
    error: str | None = None,
    result: dict[str, Any] | None = None,
) -> Job:
    if status not in STATUSES:
        raise ValueError(f"job status must be one of {STATUSES}, got {status!r}")
    values: dict[str, Any] = {"status": status}
    if status == "running":
        values["started_at"] = utcnow()
    if status in ("succeeded", "failed", "cancelled"):
        values["finished_at"] = utcnow()
    if error is not None:
        values["error"] = error
    if result is not None:
        values["result"] = result
    with db.begin() as conn:
        conn.execute(jobs.update().where(jobs.c.id == job_id).values(**values))
    return get_job(db, job_id)


def add_metrics(db: Database, job_id: str, step: int, values: dict[str, Any]) -> None:
    with db.begin() as conn:
        conn.execute(
            job_metrics.insert().values(job_id=job_id, step=step, values=values, created_at=utcnow())
        )


def get_metrics(db: Database, job_id: str) -> list[dict[str, Any]]:
    with db.begin() as conn:
        rows = conn.execute(
            sa.select(job_metrics.c.step, job_metrics.c["values"])
            .where(job_metrics.c.job_id == job_id)
            .order_by(job_metrics.c.id)
        )
        return [{"step": r.step, **r[1]} for r in rows]


def get_run(db: Database, job_id: str) -> JobRun:
    with db.begin() as conn:
        row = conn.execute(sa.select(job_runs).where(job_runs.c.job_id == job_id)).first()
    if row is None:  # a job from before job_runs existed: it ran in-process
        get_job(db, job_id)
        return JobRun(job_id, "trl", None, None, 1, False, False, 1)
    return JobRun(row.job_id, row.backend, row.worker, row.pid, row.attempts, row.resume, row.cancel_requested,
                  row.gpus)


def _mark_claimed(conn: sa.Connection, job_id: str, worker: str) -> None:
    now = utcnow()
    conn.execute(jobs.update().where(jobs.c.id == job_id).values(status="running", started_at=now, error=None,
                                                                  finished_at=None))
    conn.execute(job_runs.update().where(job_runs.c.job_id == job_id)
                 .values(worker=worker, pid=None, attempts=job_runs.c.attempts + 1, updated_at=now))


def claim(db: Database, job_id: str, worker: str) -> bool:
    """Move ``job_id`` from queued to running for ``worker``; False when another worker got it first."""
    with db.begin() as conn:
        done = conn.execute(jobs.update().where(jobs.c.id == job_id, jobs.c.status == "queued")
                            .values(status="running"))
        if done.rowcount != 1:
            return False
        _mark_claimed(conn, job_id, worker)
    return True


def claim_next(db: Database, worker: str) -> Job | None:
    """The oldest queued job, now running for ``worker``; None when the queue is empty."""
    if db.engine.dialect.name == "postgresql":
        with db.begin() as conn:
            row = conn.execute(
                sa.select(jobs.c.id).where(jobs.c.status == "queued").order_by(jobs.c.created_at, jobs.c.id)
                .limit(1).with_for_update(skip_locked=True)
            ).first()
            if row is None:
                return None
            _mark_claimed(conn, row.id, worker)
        return get_job(db, row.id)
    while True:  # SQLite: guarded update; a lost race means someone else took that one, try the next
        with db.begin() as conn:
            row = conn.execute(sa.select(jobs.c.id).where(jobs.c.status == "queued")
                               .order_by(jobs.c.created_at, jobs.c.id).limit(1)).first()
        if row is None:
            return None
        if claim(db, row.id, worker):
            return get_job(db, row.id)


def set_pid(db: Database, job_id: str, pid: int | None) -> None:
    with db.begin() as conn:
        conn.execute(job_runs.update().where(job_runs.c.job_id == job_id).values(pid=pid, updated_at=utcnow()))


def request_cancel(db: Database, job_id: str) -> Job:
    """A queued job is cancelled at once; a running one is asked to stop (its process checks)."""
    job = get_job(db, job_id)
    with db.begin() as conn:
        conn.execute(jobs.update().where(jobs.c.id == job_id, jobs.c.status == "queued")
                     .values(status="cancelled", finished_at=utcnow(), error="cancelled before it started"))
        conn.execute(job_runs.update().where(job_runs.c.job_id == job_id)
                     .values(cancel_requested=True, updated_at=utcnow()))
    return get_job(db, job.id)


def cancel_requested(db: Database, job_id: str) -> bool:
    with db.begin() as conn:
        value = conn.execute(sa.select(job_runs.c.cancel_requested).where(job_runs.c.job_id == job_id)).scalar()
    return bool(value)


class JobNotResumable(UserError, ValueError):
    pass


def requeue_for_resume(db: Database, job_id: str) -> Job:
    """A failed or cancelled job goes back to the queue; its next attempt resumes from its last checkpoint."""
    job = get_job(db, job_id)
    with db.begin() as conn:
        done = conn.execute(jobs.update().where(jobs.c.id == job_id, jobs.c.status.in_(("failed", "cancelled")))
                            .values(status="queued", finished_at=None))
        if done.rowcount != 1:
            raise JobNotResumable(
                f"job {job_id} is {job.status}; only failed or cancelled jobs can be resumed "
                "(a running one can be cancelled first: `llmloop jobs cancel`)"
            )
        conn.execute(job_runs.update().where(job_runs.c.job_id == job_id)
                     .values(resume=True, cancel_requested=False, pid=None, updated_at=utcnow()))
    return get_job(db, job_id)


def delete_metrics_after(db: Database, job_id: str, step: int) -> None:
    """Forget steps logged after ``step`` (a resumed run does them again from its checkpoint)."""
    with db.begin() as conn:
        conn.execute(job_metrics.delete().where(job_metrics.c.job_id == job_id, job_metrics.c.step > step))
