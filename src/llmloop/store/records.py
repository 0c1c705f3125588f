"""Frozen records the store hands out: what crosses from ``store`` to the rest of llmloop."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DatasetVersion:
    id: int
    dataset: str
    kind: str
    version: str
    content_hash: str
    parent_id: int | None
    row_count: int
    path: str
    source_format: str
    note: str
    created_by: str
    created_at: dt.datetime


@dataclass(frozen=True)
class Job:
    id: str
    stage: str
    status: str
    config: dict[str, Any]
    output_dir: str
    log_path: str
    error: str | None
    result: dict[str, Any] | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None


@dataclass(frozen=True)
class ModelVersion:
    name: str
    kind: str
    base_model: str
    adapter_path: str | None
    parent: str | None
    job_id: str | None
    dataset_versions: list[int]
    metrics: dict[str, Any]
    stage: str
    note: str
    created_at: dt.datetime
    aliases: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Completion:
    request_id: str
    user_id: str
    version: str
    messages: list[dict[str, Any]]
    output: str
    battle_id: str | None
    created_at: dt.datetime


@dataclass(frozen=True)
class Battle:
    id: str
    user_id: str
    messages: list[dict[str, Any]]
    request_id_a: str
    request_id_b: str
    version_a: str
    version_b: str
    created_at: dt.datetime


@dataclass(frozen=True)
class VotedBattle:
    """A vote joined with the battle and both answers: one row of preference evidence."""

    vote_id: int
    battle_id: str
    user_id: str
    choice: str
    messages: list[dict[str, Any]]
    output_a: str
    output_b: str
    request_id_a: str
    request_id_b: str
    version_a: str
    version_b: str
    voted_at: dt.datetime
    # a multi-turn battle: what each side's last answer replied to (its own earlier answers and the
    # user's follow-ups); None for a one-turn battle, where both are ``messages``
    messages_a: list[dict[str, Any]] | None = None
    messages_b: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class Thumb:
    id: int
    request_id: str
    user_id: str
    rating: int
    comment: str
    correction: str | None
    created_at: dt.datetime


@dataclass(frozen=True)
class LoopRound:
    id: int
    status: str
    production_version: str
    candidate_version: str | None
    first_vote_id: int
    last_vote_id: int
    dataset_version_id: int | None
    job_id: str | None
    evidence: dict[str, Any]
    started_at: dt.datetime
    finished_at: dt.datetime | None
