"""Reward-model quality (E9) on a held-out preference set.

Given the reward model's scores for each pair's chosen and rejected answer:
* pairwise accuracy — share of pairs where chosen scores strictly higher (a tie counts half, so a
  constant model scores 0.5, not 0 or 1);
* Kendall τ-b and Spearman ρ (scipy.stats) between the reward scores and graded human/gold scores,
  when the set carries them (e.g. 1–5 ratings), measuring whether the reward *orders* answers the
  way people do beyond one pair at a time. Without graded scores they are computed on the pooled
  answers against the binary label chosen = 1, rejected = 0.
Scoring the answers (running the T4 reward model) is the caller's part; this module only measures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llmloop.eval import EvalInputError


@dataclass(frozen=True)
class RewardModelQuality:
    n_pairs: int
    pairwise_accuracy: float
    mean_margin: float  # mean of chosen − rejected score
    kendall_tau: float
    kendall_p: float
    spearman_rho: float
    spearman_p: float
    correlated_against: str  # "gold scores" or "chosen/rejected labels"


def reward_model_quality(chosen_scores: Sequence[float], rejected_scores: Sequence[float],
                         gold_scores: Sequence[float] | None = None,
                         predicted_scores: Sequence[float] | None = None) -> RewardModelQuality:
    """Pairwise accuracy over (chosen, rejected) pairs; τ and ρ against ``gold_scores`` when given.

    ``gold_scores`` and ``predicted_scores`` are parallel (one entry per rated answer); both or neither.
    """
    from scipy.stats import kendalltau, spearmanr

    if len(chosen_scores) != len(rejected_scores):
        raise EvalInputError(f"{len(chosen_scores)} chosen scores but {len(rejected_scores)} rejected: one of each per pair")
    if len(chosen_scores) == 0:
        raise EvalInputError("reward-model quality needs at least one preference pair")
    if (gold_scores is None) != (predicted_scores is None):
        raise EvalInputError("pass gold_scores and predicted_scores together (one reward score per gold-rated answer)")
    margins = [float(c) - float(r) for c, r in zip(chosen_scores, rejected_scores)]
    acc = sum(1.0 if m > 0 else 0.5 if m == 0 else 0.0 for m in margins) / len(margins)
    if gold_scores is not None:
        if len(gold_scores) != len(predicted_scores) or len(gold_scores) < 2:
            raise EvalInputError(f"gold_scores ({len(gold_scores)}) and predicted_scores ({len(predicted_scores)}) "
                             "must be parallel and hold at least two answers")
        x, y, against = list(predicted_scores), list(gold_scores), "gold scores"
    else:
        x = [float(s) for s in chosen_scores] + [float(s) for s in rejected_scores]
        y = [1.0] * len(chosen_scores) + [0.0] * len(rejected_scores)
        against = "chosen/rejected labels"
    tau = kendalltau(x, y)
    rho = spearmanr(x, y)
    return RewardModelQuality(len(margins), acc, sum(margins) / len(margins), float(tau.statistic), float(tau.pvalue),
                              float(rho.statistic), float(rho.pvalue), against)


# -- running the reward model on a held-out preference set ------------------------------------------
def _as_messages(value, role: str, where: str) -> list[dict]:  # noqa: ANN001
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    if isinstance(value, list) and all(isinstance(m, dict) and "content" in m for m in value):
        return value
    raise EvalInputError(f"{where}: expected text or a list of messages, got {type(value).__name__}")


def read_preference_pairs(spec: str, db=None) -> list[tuple[list[dict], str, str]]:  # noqa: ANN001
    """(prompt messages, chosen text, rejected text) from a stored ``preference`` dataset (NAME[@v1.2]) or a
    JSONL file whose rows have ``prompt`` and ``chosen``/``rejected`` (text, or TRL conversational messages)."""
    from pathlib import Path

    from llmloop.eval.user_files import read_jsonl

    p = Path(spec)
    if p.exists():
        raw = read_jsonl(p)
    else:
        if db is None:
            raise EvalInputError(f"preference set {spec!r}: no such file")
        from llmloop.data.versions import read_rows, resolve
        from llmloop.store.datasets import DatasetNotFound

        try:
            v = resolve(db, spec)
        except DatasetNotFound as e:
            raise EvalInputError(f"preference set {spec!r}: neither a file nor a stored dataset ({e})") from None
        if v.kind != "preference":
            raise EvalInputError(f"dataset {v.dataset}@{v.version} holds {v.kind} rows; reward-model quality needs preference pairs")
        raw = [(f"dataset {v.dataset}@{v.version} row {i}", r) for i, r in enumerate(read_rows(v), start=1)]
    pairs = []
    for where, r in raw:
        if not isinstance(r, dict) or not all(k in r for k in ("prompt", "chosen", "rejected")):
            raise EvalInputError(f"{where}: needs prompt, chosen and rejected")
        prompt = _as_messages(r["prompt"], "user", where)
        chosen = _as_messages(r["chosen"], "assistant", where)[-1]["content"]
        rejected = _as_messages(r["rejected"], "assistant", where)[-1]["content"]
        pairs.append((prompt, str(chosen), str(rejected)))
    if not pairs:
        raise EvalInputError(f"preference set {spec!r}: no pairs")
    return pairs


def score_pairs(judge, pairs) -> tuple[list[float], list[float]]:  # noqa: ANN001 - eval.rm_judge.RewardModelJudge
    """The reward model's score of each pair's chosen and rejected answer (both in one batch per pair)."""
    chosen, rejected = [], []
    for prompt, c, r in pairs:
        rc, rr = judge.rewards(prompt, [c, r])
        chosen.append(rc)
        rejected.append(rr)
    return chosen, rejected
