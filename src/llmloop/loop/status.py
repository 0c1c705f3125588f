"""``loop status``: one dict that says what the loop is doing now (also the UI's and REST's source);
``loop history``: every round, or one round's events with their evidence."""

from __future__ import annotations

import datetime as dt
from typing import Any

from llmloop.loop.policy import LoopPolicy
from llmloop.store import Database, loop_events, registry, rounds, traffic
from llmloop.store.loop_events import LoopEvent
from llmloop.store.records import LoopRound


def loop_status(db: Database, policy: LoopPolicy | None = None) -> dict[str, Any]:
    st = loop_events.get_state(db)
    rnd = rounds.get_round(db, st.round_id) if st.round_id else None
    split = traffic.get_split(db)
    out: dict[str, Any] = {
        "phase": st.phase + (" (paused)" if st.paused else ""),
        "round": None if rnd is None else {"id": rnd.id, "production": rnd.production_version,
                                           "candidate": rnd.candidate_version or st.data.get("candidate"),
                                           "started_at": rnd.started_at.isoformat()},
        "production": registry.resolve_alias(db, "production"),
        "candidate": registry.resolve_alias(db, "candidate"),
        "traffic_split": split.weights if split else dict(traffic.DEFAULT_SPLIT),
        "split_set_by": f"{split.actor}: {split.reason}" if split else "default",
        "pending_feedback": loop_events.pending_counts(db),
    }
    if st.phase == "canary" and policy is not None and policy.rollout.stages:
        i = st.stage_index
        stage = policy.rollout.stages[i]
        out["rollout_stage"] = f"{i + 1}/{len(policy.rollout.stages)}: {stage.model_dump()}"
        if st.phase_started_at is not None:
            due = st.phase_started_at + dt.timedelta(minutes=stage.timeout_minutes)
            out["stage_timeout"] = (f"{due.isoformat()} ({policy.rollout.on_timeout} if it has fewer than "
                                    f"{stage.min_requests} candidate requests by then)"
                                    + ("; overdue, holding" if st.data.get("timeout_noted") == i else ""))
    elif st.phase == "canary":
        out["rollout_stage"] = st.stage_index + 1
    if policy is not None:
        from llmloop.loop.controller import trigger_status

        t = trigger_status(db, policy)
        out["pending_pairs"] = t.pairs
        out["next_trigger"] = ("now" if t.ready else (t.next_check.isoformat() if t.next_check else "manual")) + f" ({t.reason})"
    last = rounds.list_rounds(db)[-1:] or [None]
    if last[0] is not None:
        out["last_round"] = {"id": last[0].id, "status": last[0].status, "decision": last[0].evidence.get("decision")}
    return out


def round_history(db: Database) -> list[LoopRound]:
    """Every round the loop started, oldest first: feedback used, candidate, evidence, outcome."""
    return rounds.list_rounds(db)


def round_events(db: Database, round_id: int) -> list[LoopEvent]:
    """What happened in round ``round_id``, oldest first: each step and decision, who made it, its evidence."""
    return loop_events.list_events(db, round_id)
