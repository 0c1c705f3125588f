"""``loop explain vX``: where a version came from and exactly which feedback trained it.

A version made by the loop points at its round; the round's claims name every feedback item it
consumed (vote or thumb id, request ids, the versions that answered, user, time) and what became of
it (a training row, a held-out prompt, or dropped and why); its events hold every decision with the
evidence. A version made otherwise (SFT, a merge) is explained by its registry lineage alone.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from llmloop.store import Database, loop_events, registry, rounds
from llmloop.store.loop_events import FeedbackClaim, LoopEvent
from llmloop.store.records import LoopRound, ModelVersion


@dataclass(frozen=True)
class Explanation:
    version: ModelVersion
    round: LoopRound | None
    trained_on: list[FeedbackClaim] = field(default_factory=list)
    held_out: list[FeedbackClaim] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)
    events: list[LoopEvent] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        def claim(c: FeedbackClaim) -> dict[str, Any]:
            return {"source": c.source, "id": c.source_id, "row": c.row_index, "user": c.user_id,
                    "request_ids": c.request_ids, "versions": c.versions, "at": c.feedback_at.isoformat()}

        v = self.version
        return {
            "version": v.name, "parent": v.parent, "job_id": v.job_id, "dataset_versions": v.dataset_versions,
            "stage": v.stage, "aliases": list(v.aliases),
            "round": None if self.round is None else {
                "id": self.round.id, "status": self.round.status, "production_before": self.round.production_version,
                "decision": self.round.evidence.get("decision"), "started_at": self.round.started_at.isoformat(),
                "finished_at": self.round.finished_at.isoformat() if self.round.finished_at else None},
            "trained_on": [claim(c) for c in self.trained_on],
            "held_out": [claim(c) for c in self.held_out],
            "dropped": self.dropped,
            "events": [{"kind": e.kind, "message": e.message, "actor": e.actor, "at": e.created_at.isoformat(),
                        "evidence": e.evidence} for e in self.events],
        }


def explain(db: Database, version: str) -> Explanation:
    v = registry.get(db, version)
    rnd = next((r for r in reversed(rounds.list_rounds(db)) if r.candidate_version == v.name), None)
    if rnd is None:
        return Explanation(v, None)
    claims = loop_events.claims_of(db, rnd.id)
    return Explanation(
        v, rnd,
        trained_on=sorted((c for c in claims if c.outcome == "train"), key=lambda c: c.row_index or 0),
        held_out=[c for c in claims if c.outcome == "holdout"],
        dropped=dict(Counter(c.reason for c in claims if c.outcome == "dropped")),
        events=loop_events.list_events(db, rnd.id),
    )
