"""Preference data from what users said (D4–D6), for the loop and for ``llmloop data build-preferences``.

* arena votes → pairs (the voted answer chosen, the other rejected);
* thumbs-down + correction, and edits → pairs (the user's text chosen, the served answer rejected);
* thumbs without a partner → KTO rows (label = the thumb);
* unvoted arena pairs → pairs labelled by an AI judge (``llmloop.eval``'s pairwise judge asks in
  both orders; a pair whose orders disagree, a tie or a failed judgement is dropped, not guessed).

Every row keeps its provenance (source, feedback ids, request ids, model versions, user, times) in
a ``provenance`` field, so a trained version can be traced back to the feedback that shaped it.
Rows whose prompt is not a valid conversation (``data.rows`` rules) are dropped and counted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llmloop.data.rows import DataError, RowCheck, check_conversation
from llmloop.store import Database
from llmloop.store.feedback_queries import EditedAnswer, RatedAnswer, UnvotedBattle
from llmloop.store.records import DatasetVersion, VotedBattle

SOURCES = ("votes", "thumbs", "corrections", "judge")


def _valid_prompt(messages: list[dict[str, Any]]) -> bool:
    check = RowCheck("feedback", None)
    ok_shape = isinstance(messages, list) and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in messages)
    if not ok_shape:
        return False
    check_conversation(check, [("prompt", m) for m in messages], ends="prompt", what="prompt")
    return check.ok


def _pair(prompt: list[dict[str, Any]], chosen: str, rejected: str, provenance: dict[str, Any]) -> dict[str, Any]:
    return {"prompt": [{"role": m["role"], "content": m["content"]} for m in prompt],
            "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}],
            "provenance": provenance}


def _sides(v: VotedBattle) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Each side's part of the battle after the shared first prompt: its answer, or in a multi-turn
    battle its whole conversation from there (its answers and the user's follow-ups, the same on both
    sides), ending with its last answer."""
    out = []
    for messages, output in ((v.messages_a, v.output_a), (v.messages_b, v.output_b)):
        later = [{"role": m["role"], "content": m["content"]} for m in (messages or v.messages)[len(v.messages):]]
        out.append([*later, {"role": "assistant", "content": output}])
    return out[0], out[1]


def pairs_from_votes(votes: list[VotedBattle]) -> list[dict[str, Any]]:
    """A/B votes become pairs; ties, both-bad and identical answers carry no preference and are
    dropped; the same (prompt, chosen, rejected) voted twice is kept once. A multi-turn battle's vote
    judges the whole conversation: the prompt is the shared first turn and chosen/rejected hold each
    side's conversation from there (TRL's conversational format takes several messages a side)."""
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, str, str]] = set()
    for v in votes:
        side_a, side_b = _sides(v)
        if v.choice not in ("a", "b") or [m["content"].strip() for m in side_a] == [m["content"].strip() for m in side_b]:
            continue
        chosen, rejected = (side_a, side_b) if v.choice == "a" else (side_b, side_a)
        key = (repr(v.messages), repr(chosen), repr(rejected))
        if key in seen:
            continue
        seen.add(key)
        rows.append(
            {
                "prompt": v.messages,
                "chosen": chosen,
                "rejected": rejected,
                "provenance": {
                    "source": "arena_vote",
                    "vote_id": v.vote_id,
                    "battle_id": v.battle_id,
                    "user_id": v.user_id,
                    "request_ids": [v.request_id_a, v.request_id_b],
                    "versions": [v.version_a, v.version_b],
                    "voted_at": v.voted_at.isoformat(),
                    **({"turns": sum(m["role"] == "assistant" for m in chosen)} if len(chosen) > 1 else {}),
                },
            }
        )
    return rows


def pairs_from_corrections(rated: Sequence[RatedAnswer], edits: Sequence[EditedAnswer] = ()) -> list[dict[str, Any]]:
    """A thumbs-down with a correction, or an edit: the user's text is chosen, the served answer
    rejected. A correction equal to the answer, or an invalid prompt, is dropped; the same pair
    given twice is kept once (the first)."""
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, str, str]] = set()
    items: list[tuple[list[dict[str, Any]], str, str, dict[str, Any]]] = []
    for t in rated:
        if t.rating != -1 or not (t.correction or "").strip():
            continue
        items.append((t.messages, t.correction or "", t.output, {
            "source": "thumb_correction", "thumb_id": t.thumb_id, "request_id": t.request_id,
            "version": t.version, "user_id": t.user_id, "comment": t.comment,
            "served_at": t.served_at.isoformat(), "rated_at": t.rated_at.isoformat()}))
    for e in edits:
        items.append((e.messages, e.text, e.output, {
            "source": "edit", "event_id": e.event_id, "request_id": e.request_id, "version": e.version,
            "user_id": e.user_id, "served_at": e.served_at.isoformat(), "edited_at": e.edited_at.isoformat()}))
    for messages, chosen, rejected, prov in items:
        if chosen.strip() == rejected.strip() or not _valid_prompt(messages):
            continue
        key = (repr(messages), chosen, rejected)
        if key not in seen:
            seen.add(key)
            rows.append(_pair(messages, chosen, rejected, prov))
    return rows


def kto_from_thumbs(rated: Sequence[RatedAnswer]) -> list[dict[str, Any]]:
    """Every thumb becomes an unpaired KTO row: the served answer, label = thumbs up. When one user
    rated the same answer twice the last rating counts; rows with an invalid prompt are dropped."""
    last: dict[tuple[str, str], RatedAnswer] = {}
    for t in rated:
        last[(t.request_id, t.user_id)] = t
    rows = []
    for t in sorted(last.values(), key=lambda t: t.thumb_id):
        if not _valid_prompt(t.messages) or not t.output.strip():
            continue
        rows.append({
            "prompt": [{"role": m["role"], "content": m["content"]} for m in t.messages],
            "completion": [{"role": "assistant", "content": t.output}],
            "label": t.rating > 0,
            "provenance": {"source": "thumb", "thumb_id": t.thumb_id, "request_id": t.request_id,
                           "version": t.version, "user_id": t.user_id, "comment": t.comment,
                           "served_at": t.served_at.isoformat(), "rated_at": t.rated_at.isoformat()},
        })
    return rows


@dataclass(frozen=True)
class JudgedPairs:
    rows: list[dict[str, Any]]
    dropped: dict[str, int] = field(default_factory=dict)  # reason → count (tie, orders disagree, failed …)
    reasons: list[str] = field(default_factory=list)  # the first failure reasons, for the user


def pairs_from_judge(battles: Sequence[UnvotedBattle], judge: Any) -> JudgedPairs:
    """Label unvoted pairs with ``judge`` (an ``llmloop.eval.judges.PairwiseJudge``; the LLM judge
    asks in both orders and answers "tie" when they disagree). Only a clear winner becomes a pair."""
    todo = [b for b in battles if b.output_a.strip() != b.output_b.strip() and _valid_prompt(b.messages)
            and b.turns == 1]
    multi = sum(b.turns > 1 for b in battles)  # each side answered its own history: no one prompt to judge on
    dropped = {"identical or invalid": len(battles) - len(todo) - multi, "multi-turn (the judge reads one turn)": multi}
    items = [(b.messages, b.output_a, b.output_b) for b in todo]
    verdicts = judge.judge_batch(items) if hasattr(judge, "judge_batch") else [judge.judge(*it) for it in items]
    rows, reasons = [], []
    for b, v in zip(todo, verdicts, strict=True):
        if v.winner not in ("x", "y"):
            why = "orders disagree" if "orders disagree" in (v.reason or "") else v.winner
            dropped[why] = dropped.get(why, 0) + 1
            if v.winner == "failed" and len(reasons) < 5:
                reasons.append(v.reason)
            continue
        chosen, rejected = (b.output_a, b.output_b) if v.winner == "x" else (b.output_b, b.output_a)
        rows.append(_pair(b.messages, chosen, rejected, {
            "source": "ai_judge", "judge": getattr(judge, "name", type(judge).__name__), "reason": v.reason,
            "battle_id": b.battle_id, "user_id": b.user_id, "request_ids": [b.request_id_a, b.request_id_b],
            "versions": [b.version_a, b.version_b], "served_at": b.created_at.isoformat()}))
    return JudgedPairs(rows, {k: n for k, n in dropped.items() if n}, reasons)


# --- one call for the CLI and the loop ------------------------------------------------------------

class BuildPreferencesConfig(BaseModel):
    """``llmloop data build-preferences``: feedback in the store → a new dataset version."""

    model_config = ConfigDict(extra="forbid")
    source: Literal["votes", "thumbs", "corrections", "judge"] = Field(
        description="votes: arena votes → pairs; corrections: thumbs-down with a correction and edits → pairs; "
        "thumbs: every thumb → KTO rows; judge: unvoted arena pairs labelled by an AI judge → pairs")
    name: str = Field(description="Dataset to add the version to (created on first use)")
    after_id: int = Field(0, ge=0, description="Only feedback with a larger id (votes, thumbs, edit events): "
                          "the watermark of the previous build")
    note: str = Field("", description="Note kept with the new version")
    limit: int | None = Field(None, ge=1, description="judge: label at most this many unvoted pairs")


@dataclass(frozen=True)
class BuildResult:
    source: str
    kind: str  # preference | kto
    version: DatasetVersion | None  # None when no row came out (nothing stored)
    rows: int
    considered: int  # feedback items read
    last_id: int  # highest feedback id read (the next after_id); 0 for judge
    dropped: dict[str, int] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)


def build_preferences(db: Database, config: BuildPreferencesConfig, *, judge: Any = None,
                      progress: Callable[[int], None] | None = None) -> BuildResult:
    """Read feedback (``store.feedback_queries``), build rows, store them as the next version of
    ``config.name``. ``judge`` (a ``PairwiseJudge``) is required for ``source="judge"``."""
    from llmloop.data.versions import check_name, write_version
    from llmloop.store import feedback, feedback_queries

    try:
        check_name(config.name)
    except ValueError as e:
        raise DataError(f"{e}; pass another --name") from None
    src = config.source
    dropped: dict[str, int] = {}
    reasons: list[str] = []
    last_id = 0
    if src == "votes":
        votes = feedback.voted_battles(db, after_id=config.after_id)
        rows, kind, considered = pairs_from_votes(votes), "preference", len(votes)
        last_id = max((v.vote_id for v in votes), default=config.after_id)
    elif src == "corrections":
        rated = feedback_queries.rated_answers(db, after_id=config.after_id, rating=-1)
        edits = feedback_queries.edited_answers(db, after_id=config.after_id)
        rows, kind, considered = pairs_from_corrections(rated, edits), "preference", len(rated) + len(edits)
        last_id = max([t.thumb_id for t in rated] + [e.event_id for e in edits] + [config.after_id])
    elif src == "thumbs":
        rated = feedback_queries.rated_answers(db, after_id=config.after_id)
        rows, kind, considered = kto_from_thumbs(rated), "kto", len(rated)
        last_id = max((t.thumb_id for t in rated), default=config.after_id)
    else:
        if judge is None:
            raise DataError("--from judge needs a judge: pass --judge openai:MODEL@BASE_URL (any OpenAI-compatible "
                            "endpoint, e.g. the gateway) or --judge python:pkg.module:function")
        battles = feedback_queries.unvoted_battles(db, limit=config.limit)
        judged = pairs_from_judge(battles, judge)
        rows, kind, considered, dropped, reasons = judged.rows, "preference", len(battles), judged.dropped, judged.reasons
    if progress:
        progress(considered)
    if not rows:
        return BuildResult(src, kind, None, 0, considered, last_id, dropped, reasons)
    note = config.note or f"{len(rows)} rows from {considered} {src} item(s)"
    try:
        version = write_version(db, rows, name=config.name, kind=kind, source_format=f"feedback:{src}",
                                note=note, created_by=f"build-preferences:{src}")
    except ValueError as e:  # the dataset exists with another kind
        raise DataError(f"{e}") from None
    return BuildResult(src, kind, version, len(rows), considered, last_id, dropped, reasons)
