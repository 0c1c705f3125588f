"""``llmloop eval compare A B``: one config → win rate with a 95% CI, its length-controlled variant,
failures counted by cause, and the comparison kept for the leaderboard.

The numbers come from ``eval.winrate`` (``compare_versions``, ``length_controlled``) — the same
functions the loop's gate calls, so nothing computes a win rate twice.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from llmloop.eval import EvalInputError
from llmloop.eval.failures import summarize_failures
from llmloop.eval.winrate import (
    LengthControlled,
    WinRateReport,
    compare_versions,
    length_controlled,
)


class CompareConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    challenger: str = Field(..., description="Version (or alias, or checkpoint folder) under test, e.g. v1.1 or candidate")
    incumbent: str = Field(..., description="Version (or alias, or checkpoint folder) it is compared against, e.g. production")
    prompts: str = Field(..., description="Held-out prompts: a JSONL file ({\"prompt\"} or {\"messages\"}) or a stored "
                         "dataset NAME / NAME@v1.2 (kind prompt, sft or preference)")
    judge: str = Field(..., description="Pairwise judge: 'python:package.module:score_function', 'rm:/path/to/reward_model', "
                       "or an LLM judge 'openai:MODEL@BASE_URL' (any OpenAI-compatible endpoint, e.g. "
                       "openai:production@http://127.0.0.1:8000/v1)")
    judge_key_env: str | None = Field(None, description="Environment variable holding the LLM judge's API key")
    judge_templates: Path | None = Field(None, description="YAML with 'pairwise'/'pointwise' judge prompt templates")
    judge_timeout_s: float = Field(60.0, gt=0, description="Per-request timeout for an LLM judge, seconds")
    judge_attempts: int = Field(3, ge=1, description="Tries per LLM judgement (transport errors and unusable JSON count)")
    temperature: float = Field(0.7, ge=0, description="Sampling temperature for both versions")
    max_tokens: int = Field(96, ge=1, description="Longest answer generated per prompt")
    seed: int = Field(1234, description="Sampling seed (the same for both)")
    endpoint: str | None = Field(None, description="Generate through this OpenAI-compatible endpoint (e.g. "
                                 "http://127.0.0.1:8000/v1); challenger and incumbent are then its model names")
    endpoint_key_env: str | None = Field(None, description="Environment variable holding the endpoint's API key")
    timeout_s: float = Field(60.0, gt=0, description="Per-request timeout for the endpoint, seconds")
    bootstrap: int = Field(200, ge=0, description="Bootstrap resamples for the length-controlled win rate's CI")
    save: bool = Field(True, description="Keep the comparison in the workspace so `eval leaderboard` counts its battles")
    resume: bool = Field(True, description="Keep answers and verdicts as they come (under the workspace's "
                         "reports/compare-work/, keyed by every input) so the same comparison run again after a crash "
                         "continues where it stopped; removed once the comparison finishes")


@dataclass(frozen=True)
class CompareOutcome:
    report: WinRateReport
    length_controlled: LengthControlled | None  # None with fewer than two judged samples
    failures: dict[str, int]  # failed samples by cause
    saved: Path | None
    resumed: int = 0  # answers and verdicts reused from an interrupted run of the same comparison

    def as_json(self) -> dict:
        """The report's own fields first (``report_from_json`` reads them back), then the extras."""
        return {**asdict(self.report), "failures": self.failures,
                "length_controlled": asdict(self.length_controlled) if self.length_controlled else None}

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.as_json(), indent=2, ensure_ascii=False, default=str), encoding="utf-8")


def run_compare(config: CompareConfig, db=None, on_progress: Callable[[int, int], None] | None = None) -> CompareOutcome:  # noqa: ANN001
    """Generate, judge, summarise; ValueError (naming the input) for anything wrong before generating."""
    from llmloop.eval.evalset import load_eval_set
    from llmloop.eval.judges import load_judge
    from llmloop.inference.base import SamplingParams

    if db is None:
        from llmloop.store import open_database

        db = open_database()
    rows, _ = load_eval_set(config.prompts, db)
    judge = load_judge(config.judge, api_key_env=config.judge_key_env,
                       templates=str(config.judge_templates) if config.judge_templates else None,
                       timeout_s=config.judge_timeout_s, attempts=config.judge_attempts)
    if config.endpoint:
        from llmloop.eval.endpoint import EndpointEngine

        engine = EndpointEngine(config.endpoint, config.endpoint_key_env, timeout_s=config.timeout_s)
        xn, yn = config.challenger, config.incumbent
    else:
        from llmloop.eval.subjects import resolve_model
        from llmloop.inference.embedded import EmbeddedEngine
        from llmloop.store import registry

        try:
            x, y = resolve_model(db, config.challenger), resolve_model(db, config.incumbent)
        except registry.VersionNotFound as e:
            raise EvalInputError(f"{e}, or pass a checkpoint folder") from None
        engine = EmbeddedEngine()
        engine.load(x)
        engine.load(y)
        xn, yn = x.name, y.name
    work = _work_dir(db, config, xn, yn, rows) if config.resume else None
    ckpt = work / "answers.jsonl" if work else None
    resumed = 0
    if ckpt is not None:
        work.mkdir(parents=True, exist_ok=True)
        from llmloop.eval.report import _load_checkpoint
        from llmloop.eval.winrate import _load_verdicts

        resumed = len(_load_checkpoint(ckpt)) + len(_load_verdicts(ckpt.with_name("answers.verdicts.jsonl")))
    try:
        report = compare_versions(engine, xn, yn, [r.messages for r in rows], judge,
                                  SamplingParams(max_tokens=config.max_tokens, temperature=config.temperature,
                                                 seed=config.seed), on_progress=on_progress, checkpoint=ckpt)
    finally:
        for closeable in (engine, judge):
            if hasattr(closeable, "close"):
                closeable.close()
    lc = length_controlled(report, bootstrap=config.bootstrap) if report.n >= 2 else None
    failures = summarize_failures(s.reason for s in report.samples if s.winner == "failed")
    saved = None
    if config.save:
        from llmloop.eval.leaderboard import save_comparison

        saved = save_comparison(db, report)
    if work is not None:
        shutil.rmtree(work, ignore_errors=True)
    return CompareOutcome(report, lc, failures, saved, resumed)


def _work_dir(db, config: CompareConfig, x: str, y: str, rows) -> Path:  # noqa: ANN001
    """One folder per distinct comparison: every input that changes answers or verdicts is in its name."""
    templates = config.judge_templates.read_bytes().hex() if config.judge_templates else None
    key = json.dumps({"x": x, "y": y, "prompts": [r.messages for r in rows], "judge": config.judge,
                      "templates": templates, "temperature": config.temperature, "max_tokens": config.max_tokens,
                      "seed": config.seed, "endpoint": config.endpoint}, sort_keys=True, ensure_ascii=False)
    return db.workspace.reports_dir / "compare-work" / hashlib.sha256(key.encode()).hexdigest()[:20]
