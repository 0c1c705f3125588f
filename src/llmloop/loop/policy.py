"""The loop's policy: when a round starts, what data it trains on, how it trains, what it takes to
pass the gate, how the candidate is rolled out, and what rolls it back. One YAML file, validated
by these models (``extra="forbid"``; every field's description is its documentation — see
``docs/loop.md`` and the shipped ``configs/loop/weekly.yaml``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from llmloop.errors import UserError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TriggerPolicy(_Strict):
    min_new_pairs: int = Field(50, ge=1, description="Fewest new, unused preference pairs that start a round")
    min_days_since_last_round: float = Field(
        0.0, ge=0, description="Days that must pass after the last decided round before the next one starts")
    manual: bool = Field(False, description="Start rounds only on `llmloop loop run --now` (min_new_pairs still applies)")
    poll_seconds: float = Field(60.0, gt=0, description="How often `loop run` checks the trigger and the canary")


class DataPolicy(_Strict):
    sources: list[Literal["votes", "corrections", "thumbs", "judge"]] = Field(
        ["votes"], min_length=1,
        description="Feedback that becomes training rows (llmloop.data.preferences builders): 'votes' (arena A/B "
                    "votes → pairs), 'corrections' (thumbs-down with a correction, and edits → pairs: the user's text "
                    "chosen), 'thumbs' (every thumb → unpaired KTO rows; needs train.stage kto), 'judge' (unvoted arena "
                    "pairs labelled by data.judge → pairs)")
    judge: str | None = Field(None, description="Pairwise judge for the 'judge' source (openai:MODEL@URL, python:…, rm:…)")
    judge_min_age_minutes: float = Field(
        60.0, ge=0, description="'judge' labels only battles at least this old (users had their chance to vote)")
    dataset_name: str = Field("feedback-pairs", description="Dataset that collects each round's pairs as a new version")
    dedup: Literal["none", "exact", "prompt"] = Field(
        "exact", description="'exact': the same (prompt, chosen, rejected) once; 'prompt': one pair per prompt; 'none'")
    min_chars: int = Field(1, ge=0, description="Drop pairs whose chosen or rejected answer is shorter than this")
    max_chars: int = Field(8000, ge=1, description="Drop pairs whose prompt or answers are longer than this")
    holdout_share: float = Field(
        0.0, ge=0, lt=0.9,
        description="Share of pairs (by prompt) held out of training; their prompts join the gate's evaluation "
                    "as held-out production prompts")
    contamination_sets: list[str] = Field(
        default_factory=list,
        description="JSONL eval sets ({'prompt'} or {'messages'}) whose prompts must never be trained on; a pair whose "
                    "prompt matches one (normalised text) is dropped and reported. The gate's and guard's prompts are "
                    "always included")
    flip_preferences: bool = Field(
        False, description="Swap chosen and rejected (fault drill: trains a deliberately bad candidate)")
    seed: int = Field(0, description="Seed of the hold-out split")


class TrainPolicy(_Strict):
    stage: Literal["dpo", "kto", "orpo"] = Field("dpo", description="Preference training stage (must be one `llmloop train` has)")
    preset: str | None = Field(None, description="A training config YAML whose fields come first (e.g. configs/dpo/tiny.yaml)")
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="Training config fields over the preset (see `llmloop train dpo --help`); model and dataset are "
                    "set by the loop")
    from_alias: str = Field("production", description="Alias the candidate trains from (its adapter is continued)")


class GuardPolicy(_Strict):
    prompts: str = Field(..., description="JSONL guard set: {'prompt' or 'messages', 'reference'}")
    metric: Literal["rougeL", "exact_match", "bleu"] = Field("rougeL", description="Metric of answers vs references")
    max_regression: float = Field(0.02, ge=0, description="Largest drop (production − candidate) the gate tolerates")
    max_tokens: int = Field(96, ge=1, description="Longest answer generated per guard prompt")


class GatePolicy(_Strict):
    prompts: str | None = Field(
        None, description="JSONL of held-out prompts ({'prompt'} or {'messages'}) never trained on; with "
                          "data.holdout_share > 0 the round's held-out production prompts are added")
    judge: str = Field(..., description="Pairwise judge, e.g. 'python:package.module:score_function'")
    temperature: float = Field(0.7, ge=0, description="Sampling temperature for both versions' answers")
    max_tokens: int = Field(96, ge=1, description="Longest answer generated per prompt")
    seed: int = Field(1234, description="Sampling seed (the same for both versions)")
    min_win_rate: float = Field(0.55, ge=0, le=1, description="Candidate's win rate vs production must reach this")
    min_ci_low: float = Field(0.5, ge=0, le=1, description="The 95% CI's lower bound must be above this (0.5 = better than a coin)")
    guard: GuardPolicy | None = Field(None, description="No regression beyond a tolerance on this guard eval set")


class RolloutStage(_Strict):
    percent: float = Field(..., gt=0, le=100, description="Share of routed traffic the candidate gets")
    min_requests: int = Field(100, ge=0, description="Candidate requests this stage must see before it may advance")
    min_minutes: float = Field(0.0, ge=0, description="Minutes this stage must last before it may advance")
    timeout_minutes: float = Field(
        1440.0, gt=0,
        description="Minutes after which a stage that still lacks min_requests candidate requests (no traffic, or "
                    "gateway metrics unreadable) ends with rollout.on_timeout; at least min_minutes. Default: one day")

    @model_validator(mode="after")
    def _timeout_after_min(self) -> RolloutStage:
        if self.timeout_minutes < self.min_minutes:
            raise ValueError(f"timeout_minutes {self.timeout_minutes:g} is shorter than min_minutes {self.min_minutes:g}: "
                             "the stage would time out before it may advance; raise timeout_minutes")
        return self


class RolloutPolicy(_Strict):
    stages: list[RolloutStage] = Field(
        default_factory=lambda: [RolloutStage(percent=p) for p in (5, 20, 50, 100)],
        description="Canary stages in order; after the last one the candidate is promoted. Empty: promote at the gate")
    gateways: list[str] = Field(
        default_factory=list,
        description="Base URLs of the gateways whose /metrics tell the candidate's errors and latency "
                    "(e.g. http://127.0.0.1:8000); required when stages are given")
    endpoint: str = Field("/v1/chat/completions", description="Endpoint whose requests are counted")
    on_timeout: Literal["rollback", "hold"] = Field(
        "rollback",
        description="What a stage that reached its timeout_minutes without min_requests does: 'rollback' (the "
                    "candidate is rolled back with the reason 'no traffic') or 'hold' (a stage_timeout event is "
                    "recorded once; the stage keeps its share and its rollback checks until it has its requests or "
                    "an admin decides)")

    @model_validator(mode="after")
    def _needs_gateways(self) -> RolloutPolicy:
        if self.stages and not self.gateways:
            raise ValueError("rollout.stages need rollout.gateways (the gateway URLs whose /metrics are read); "
                             "or give stages: [] to promote at the gate")
        return self


class RollbackPolicy(_Strict):
    alpha: float = Field(0.05, gt=0, lt=1, description="Always-valid p below which a worse candidate is rolled back")
    tau: float = Field(0.1, gt=0, description="Mixture width of the sequential test (eval.ab.msprt_log_lambda)")
    error_rate: bool = Field(True, description="Roll back when the candidate's 5xx rate is significantly higher")
    p99_latency: bool = Field(True, description="Roll back when significantly more candidate requests exceed the latency bound")
    latency_seconds: float | None = Field(
        None, gt=0, description="Latency bound; default: production's p99 over the same window")
    thumbs: bool = Field(True, description="Roll back when the candidate's thumbs-up ratio is significantly lower")


class LoopPolicy(_Strict):
    """``llmloop loop run`` / ``run-once`` settings. YAML keys are these field names."""

    trigger: TriggerPolicy = Field(default_factory=TriggerPolicy, description="When a round starts")
    data: DataPolicy = Field(default_factory=DataPolicy, description="Which feedback becomes the round's pairs")
    train: TrainPolicy = Field(default_factory=TrainPolicy, description="How the candidate is trained")
    gate: GatePolicy = Field(..., description="What the candidate must show before any user sees it")
    rollout: RolloutPolicy = Field(default_factory=lambda: RolloutPolicy(stages=[]), description="Canary stages")
    rollback: RollbackPolicy = Field(default_factory=RollbackPolicy, description="What rolls a canary back")

    @model_validator(mode="after")
    def _consistent(self) -> LoopPolicy:
        problems = []
        if self.gate.prompts is None and self.data.holdout_share == 0:
            problems.append("the gate has no prompts: give gate.prompts (a held-out JSONL) or data.holdout_share > 0")
        if "judge" in self.data.sources and not self.data.judge:
            problems.append("data.sources has 'judge': give data.judge (e.g. openai:MODEL@http://127.0.0.1:8000/v1)")
        if "thumbs" in self.data.sources and self.train.stage != "kto":
            problems.append("data.sources 'thumbs' gives unpaired KTO rows: use train.stage kto, or the source "
                            "'corrections' for pairs")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class PolicyError(UserError, ValueError):
    pass


def _resolve_paths(data: dict[str, Any], folder: Path) -> None:
    """Relative file paths in a policy are read from the policy file's folder."""
    def fix(section: dict[str, Any] | None, key: str) -> None:
        if isinstance(section, dict) and isinstance(section.get(key), str) and not Path(section[key]).is_absolute():
            candidate = folder / section[key]
            if candidate.exists() or key != "preset":
                section[key] = str(candidate.resolve())

    gate = data.get("gate") if isinstance(data.get("gate"), dict) else None
    fix(gate, "prompts")
    fix((gate or {}).get("guard") if gate else None, "prompts")
    fix(data.get("train") if isinstance(data.get("train"), dict) else None, "preset")
    d = data.get("data")
    if isinstance(d, dict) and isinstance(d.get("contamination_sets"), list):
        d["contamination_sets"] = [str((folder / s).resolve()) if isinstance(s, str) and not Path(s).is_absolute() else s
                                   for s in d["contamination_sets"]]


def _errors(source: str, e: ValidationError) -> str:
    return "\n".join(f"{source}: {'.'.join(map(str, err['loc'])) or '(policy)'}: {err['msg']}"
                     + (f" (got {json.dumps(err.get('input'), default=str)[:80]})" if err['loc'] else "")
                     for err in e.errors())


def load_policy(path: str | Path, overrides: dict[str, Any] | None = None) -> LoopPolicy:
    """Read a policy YAML; ``demo`` names the one shipped for the demo. All errors are reported together."""
    if str(path) == "demo":
        from llmloop.resources import demo_file

        path = demo_file("loop_policy.yaml")
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise PolicyError(f"{p}: no such loop policy file") from None
    except yaml.YAMLError as e:
        raise PolicyError(f"{p}: not valid YAML ({e})") from None
    if not isinstance(data, dict):
        raise PolicyError(f"{p}: a loop policy is a YAML mapping (trigger:, data:, train:, gate:, rollout:, rollback:)")
    _resolve_paths(data, p.parent)
    try:
        return LoopPolicy.model_validate(_merge(data, overrides or {}))
    except ValidationError as e:
        raise PolicyError(_errors(str(p), e)) from None


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def read_prompts(path: str | Path) -> list[list[dict[str, Any]]]:
    """Held-out prompts as conversations; each row ``{"prompt": str}`` or ``{"messages": [...]}``."""
    return [r[0] for r in read_prompt_rows(path)]


def read_prompt_rows(path: str | Path) -> list[tuple[list[dict[str, Any]], dict[str, Any]]]:
    """(conversation, the row) for each line of a prompt JSONL."""
    p = Path(path)
    out = []
    try:
        f = p.open(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(f"{p}: no such prompt file") from None
    with f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise PolicyError(f"{p}: row {i}: not JSON ({e.msg}); one JSON object per line") from None
            if isinstance(row.get("prompt"), str):
                out.append(([{"role": "user", "content": row["prompt"]}], row))
            elif isinstance(row.get("messages"), list):
                out.append((row["messages"], row))
            else:
                raise PolicyError(f"{p}: row {i}: needs a 'prompt' string or a 'messages' list")
    if not out:
        raise PolicyError(f"{p}: no prompts")
    return out
