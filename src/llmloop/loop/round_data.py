"""Feedback → one round's data: training rows, held-out prompts, and a claim for every item used.

Rows come from the data area's builders (``llmloop.data.preferences``), one feedback item at a time
so that each item's fate is known: ``votes`` → ``pairs_from_votes``; ``corrections`` (thumbs-down
with a correction, and edits) → ``pairs_from_corrections``; ``thumbs`` → ``kto_from_thumbs`` (KTO
rounds); ``judge`` (arena battles nobody voted on, older than ``data.judge_min_age_minutes``) →
``pairs_from_judge`` with ``data.judge``. Then, in order: length filters, contamination check
against every eval set the loop uses, dedup, flip (fault drills only), hold-out split by prompt.

Every feedback item consumed gets a ``FeedbackClaim`` saying what became of it (``train`` with its
row, ``holdout``, or ``dropped`` with the reason), so ``loop explain`` accounts for all of it and the
claims table's unique key guarantees no item is used twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from llmloop.data import preferences
from llmloop.loop.policy import LoopPolicy, read_prompt_rows
from llmloop.store import Database, feedback, feedback_queries, loop_events
from llmloop.store.db import utcnow
from llmloop.store.loop_events import FeedbackClaim


@dataclass
class _Item:
    """One feedback item and the row it gave (None: it carries no preference, see ``reason``)."""

    source: str  # vote | thumb | edit | battle
    source_id: str
    user_id: str
    request_ids: list[str]
    versions: list[str]
    at: dt.datetime
    row: dict[str, Any] | None
    reason: str = ""


@dataclass(frozen=True)
class RoundData:
    train_rows: list[dict[str, Any]]
    holdout_prompts: list[list[dict[str, Any]]]
    claims: list[FeedbackClaim]
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def pairs(self) -> int:
        """Usable rows (training + held out): what the trigger counts."""
        return sum(c.outcome in ("train", "holdout") for c in self.claims)

    def vote_range(self) -> tuple[int, int]:
        ids = [int(c.source_id) for c in self.claims if c.source == "vote"]
        return (min(ids), max(ids)) if ids else (0, 0)


def _votes(db: Database, ids: list[int], judged: set[str]) -> list[_Item]:
    if not ids:
        return []
    wanted = set(ids)
    out = []
    for v in feedback.voted_battles(db, after_id=min(ids) - 1, up_to_id=max(ids)):
        if v.vote_id not in wanted:
            continue
        rows = preferences.pairs_from_votes([v]) if v.battle_id not in judged else []
        reason = ("battle already labelled by the judge" if v.battle_id in judged else
                  "no preference (tie or both bad)" if v.choice not in ("a", "b") else "identical answers")
        out.append(_Item("vote", str(v.vote_id), v.user_id, [v.request_id_a, v.request_id_b], [v.version_a, v.version_b],
                         v.voted_at, rows[0] if rows else None, "" if rows else reason))
    return out


def _thumbs(db: Database, ids: list[int], kto: bool) -> list[_Item]:
    if not ids:
        return []
    wanted = set(ids)
    out = []
    for t in feedback_queries.rated_answers(db, after_id=min(ids) - 1, up_to_id=max(ids)):
        if t.thumb_id not in wanted:
            continue
        rows = preferences.kto_from_thumbs([t]) if kto else preferences.pairs_from_corrections([t])
        reason = "" if rows else ("invalid prompt or empty answer" if kto else
                                  "no pair (a thumb without a correction, or a correction equal to the answer)")
        out.append(_Item("thumb", str(t.thumb_id), t.user_id, [t.request_id], [t.version], t.rated_at,
                         rows[0] if rows else None, reason))
    return out


def _edits(db: Database, ids: list[int]) -> list[_Item]:
    if not ids:
        return []
    wanted = set(ids)
    out = []
    for e in feedback_queries.edited_answers(db, after_id=min(ids) - 1, up_to_id=max(ids)):
        if e.event_id not in wanted:
            continue
        rows = preferences.pairs_from_corrections([], [e])
        out.append(_Item("edit", str(e.event_id), e.user_id, [e.request_id], [e.version], e.edited_at,
                         rows[0] if rows else None, "" if rows else "edit equal to the answer, or an invalid prompt"))
    return out


def _judged(db: Database, policy: LoopPolicy, claimed: set[str], label: bool) -> list[_Item]:
    """Unvoted, unclaimed battles old enough; labelled by the judge only when ``label`` (opening a
    round), else counted as potential pairs (the trigger must not call an LLM judge every poll)."""
    from llmloop.eval.judges import load_judge

    cutoff = utcnow() - dt.timedelta(minutes=policy.data.judge_min_age_minutes)
    battles = [b for b in feedback_queries.unvoted_battles(db)  # a multi-turn battle has no one prompt to judge
               if b.battle_id not in claimed and b.created_at <= cutoff and b.turns == 1]
    judge = load_judge(policy.data.judge) if label and battles else None
    out = []
    for b in battles:
        row, reason = {"prompt": b.messages, "chosen": [], "rejected": [], "provenance": {}}, ""
        if judge is not None:
            res = preferences.pairs_from_judge([b], judge)
            row = res.rows[0] if res.rows else None
            reason = "" if row else "judge: " + ", ".join(res.dropped) if res.dropped else "judge: no clear winner"
        out.append(_Item("battle", b.battle_id, b.user_id, [b.request_id_a, b.request_id_b], [b.version_a, b.version_b],
                         b.created_at, row, reason))
    return out


def _norm(messages: list[dict[str, Any]]) -> str:
    text = " ".join(str(m.get("content", "")) for m in messages if m.get("role") == "user")
    return re.sub(r"\s+", " ", text).strip().lower()


def eval_prompt_keys(policy: LoopPolicy) -> set[str]:
    """Normalised prompts of every eval set the loop uses: never train on these."""
    files = [*policy.data.contamination_sets]
    if policy.gate.prompts:
        files.append(policy.gate.prompts)
    if policy.gate.guard:
        files.append(policy.gate.guard.prompts)
    keys: set[str] = set()
    for f in files:
        keys.update(_norm(conv) for conv, _ in read_prompt_rows(f))
    return keys


def _in_holdout(key: str, share: float, seed: int) -> bool:
    if share <= 0:
        return False
    h = int.from_bytes(hashlib.sha256(f"{seed}\x00{key}".encode()).digest()[:8], "big") / 2**64
    return h < share


def _texts(row: dict[str, Any]) -> tuple[str, ...]:
    if "completion" in row:  # a KTO row
        return (row["completion"][-1]["content"],)
    return (row["chosen"][-1]["content"], row["rejected"][-1]["content"]) if row["chosen"] else ()


def _dedup_key(row: dict[str, Any], key: str) -> tuple[Any, ...]:
    return (key, *_texts(row), row.get("label"))


def collect(db: Database, policy: LoopPolicy, label: bool = False) -> RoundData:
    """The round's data from unclaimed feedback. ``label``: run the judge source's judge (opening a
    round); without it the judge source only counts candidate battles."""
    d = policy.data
    claimed = loop_events.claimed_ids(db)
    items: list[_Item] = []
    if "judge" in d.sources:
        items += _judged(db, policy, claimed.get("battle", set()), label)
    judged = claimed.get("battle", set()) | {it.source_id for it in items if it.source == "battle"}
    if "votes" in d.sources:
        items += _votes(db, loop_events.unclaimed_ids(db, "vote"), judged)
    if "corrections" in d.sources or "thumbs" in d.sources:  # with 'thumbs' (KTO) every thumb is a KTO row
        items += _thumbs(db, loop_events.unclaimed_ids(db, "thumb"), kto="thumbs" in d.sources)
    if "corrections" in d.sources:
        items += _edits(db, loop_events.unclaimed_ids(db, "edit"))
    contaminated = eval_prompt_keys(policy)
    seen: set[tuple[Any, ...]] = set()
    seen_prompt: set[str] = set()
    train_rows: list[dict[str, Any]] = []
    holdout: dict[str, list[dict[str, Any]]] = {}
    claims: list[FeedbackClaim] = []
    for it in items:
        outcome, reason, row_index, row = "dropped", it.reason, None, it.row
        if row is not None:
            key, texts = _norm(row["prompt"]), _texts(row)
            if texts and min(len(t.strip()) for t in texts) < d.min_chars:
                reason = f"filtered: an answer shorter than data.min_chars {d.min_chars}"
            elif max([len(key), *map(len, texts)]) > d.max_chars:
                reason = f"filtered: longer than data.max_chars {d.max_chars}"
            elif key in contaminated:
                reason = "contaminated: the prompt is in an eval set"
            elif d.dedup == "exact" and _dedup_key(row, key) in seen:
                reason = "duplicate"
            elif d.dedup == "prompt" and key in seen_prompt:
                reason = "duplicate prompt"
            else:
                seen.add(_dedup_key(row, key))
                seen_prompt.add(key)
                if d.flip_preferences:
                    row = _flip(row)
                if _in_holdout(key, d.holdout_share, d.seed):
                    outcome, reason = "holdout", "held out for the gate"
                    holdout.setdefault(key, row["prompt"])
                else:
                    outcome, reason, row_index = "train", "", len(train_rows)
                    train_rows.append(row)
        claims.append(FeedbackClaim(it.source, it.source_id, outcome, reason, row_index, it.user_id,
                                    it.request_ids, it.versions, it.at))
    stats = dict(Counter(c.outcome if c.outcome != "dropped" else f"dropped: {c.reason.split(':')[0]}" for c in claims))
    return RoundData(train_rows, list(holdout.values()), claims, stats)


def _flip(row: dict[str, Any]) -> dict[str, Any]:
    prov = {**row.get("provenance", {}), "flipped": True}
    if "completion" in row:
        return {**row, "label": not row["label"], "provenance": prov}
    return {**row, "chosen": row["rejected"], "rejected": row["chosen"], "provenance": prov}


def training_rows(policy: LoopPolicy, rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """Rows as the stage wants them, and the dataset kind: KTO takes pairs as two unpaired rows."""
    if policy.train.stage != "kto":
        return rows, "preference"
    out = []
    for r in rows:
        if "completion" in r:
            out.append(r)
            continue
        prov = r.get("provenance", {})
        out.append({"prompt": r["prompt"], "completion": r["chosen"], "label": True, "provenance": prov})
        out.append({"prompt": r["prompt"], "completion": r["rejected"], "label": False, "provenance": prov})
    return out, "kto"
