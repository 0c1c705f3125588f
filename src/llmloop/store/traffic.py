"""The traffic split in force: which alias/version gets which share of routed requests.

Written by an admin (``llmloop serve split``) or by the loop's rollout controller; read by the
gateway's router on every request (cheaply: one indexed row). Each change is a new row, so the
history of splits is the audit trail of a rollout.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from llmloop.errors import UserError
from llmloop.store.db import Database, as_utc, utcnow
from llmloop.store.tables import traffic_splits

DEFAULT_SPLIT: dict[str, float] = {"production": 1.0}


@dataclass(frozen=True)
class TrafficSplit:
    id: int
    weights: dict[str, float]
    reason: str
    actor: str
    created_at: dt.datetime


class SplitError(UserError, ValueError):
    """Split weights the store refuses: none, negative, or all 0."""


def _check(weights: dict[str, float]) -> dict[str, float]:
    if not weights:
        raise SplitError("a traffic split needs at least one name, e.g. {'production': 1.0}")
    bad = {k: w for k, w in weights.items() if not isinstance(w, (int, float)) or w < 0}
    if bad:
        raise SplitError(f"traffic split weights must be numbers >= 0, got {bad}")
    if sum(weights.values()) <= 0:
        raise SplitError(f"traffic split weights must not all be 0, got {weights}")
    return {str(k): float(v) for k, v in weights.items()}


def set_split(db: Database, weights: dict[str, float], *, reason: str = "", actor: str = "") -> TrafficSplit:
    """Record a new split (names are aliases or versions; shares are normalised by readers)."""
    clean = _check(weights)
    now = utcnow()
    with db.begin() as conn:
        new_id = conn.execute(
            sa.insert(traffic_splits).values(weights=clean, reason=reason, actor=actor, created_at=now)
        ).inserted_primary_key[0]
    return TrafficSplit(int(new_id), clean, reason, actor, now)


def get_split(db: Database) -> TrafficSplit | None:
    """The split in force, or None when none was ever set (callers then use their configured default)."""
    with db.begin() as conn:
        row = conn.execute(sa.select(traffic_splits).order_by(traffic_splits.c.id.desc()).limit(1)).first()
    if row is None:
        return None
    return TrafficSplit(row.id, dict(row.weights), row.reason, row.actor, as_utc(row.created_at))


def split_history(db: Database, limit: int = 100) -> list[TrafficSplit]:
    with db.begin() as conn:
        rows = conn.execute(sa.select(traffic_splits).order_by(traffic_splits.c.id.desc()).limit(limit)).all()
    return [TrafficSplit(r.id, dict(r.weights), r.reason, r.actor, as_utc(r.created_at)) for r in rows]
