"""``llmloop eval run``: one config → N models answer one eval set → scores, speed, memory, reports.

``evaluate(EvalRunConfig)`` is the whole command: resolve the models under test (registry versions,
aliases, checkpoint folders, or model names at an OpenAI-compatible endpoint), read the eval set (a
JSONL file or a stored dataset), generate (batched; concurrent with retries and timeouts for an
endpoint), optionally score every answer with a pointwise LLM judge, and write ``report.html`` /
``report.json`` / ``report.csv`` (+ ``report.samples.csv``) into ``out_dir``.

Resuming: answers and judgements are appended to ``out_dir/generations.jsonl`` as they come, and
``out_dir/run.json`` records what they depend on (eval set content, sampling, endpoint, judge). The
same command run again continues where a killed run stopped; if the inputs changed it refuses
(reusing answers to other questions would be wrong) until ``fresh=True`` or another ``out_dir``.
Adding a version to a rerun is fine: answers are kept per version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from llmloop.eval import EvalInputError
from llmloop.eval.report import EvalRunReport, run_eval


class EvalRunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    versions: list[str] = Field(..., min_length=1, description="Models under test: registered versions or aliases "
                                "(v1.0, production), checkpoint folders, or — with endpoint — model names at that endpoint")
    data: str = Field(..., description="Eval set: a JSONL file ({\"prompt\"|\"messages\", \"reference\"?, \"label\"?, "
                      "\"metadata\"?}) or a stored dataset NAME / NAME@v1.2 (kind prompt, sft or preference)")
    out_dir: Path = Field(Path("eval-report"), description="Folder for report.html, report.json, report.csv and the "
                          "resumable generations.jsonl")
    max_tokens: int = Field(128, ge=1, description="Longest answer per prompt, in tokens")
    temperature: float = Field(0.0, ge=0, description="Sampling temperature (0: greedy, reproducible)")
    seed: int = Field(1234, description="Sampling seed")
    batch_size: int = Field(8, ge=1, description="Prompts generated together (for an endpoint, a batch is at least "
                            "`concurrency` requests)")
    endpoint: str | None = Field(None, description="Evaluate models of this OpenAI-compatible endpoint instead "
                                 "(e.g. http://127.0.0.1:8000/v1); versions are then its model names")
    endpoint_key_env: str | None = Field(None, description="Environment variable holding the endpoint's API key")
    timeout_s: float = Field(60.0, gt=0, description="Per-request timeout for the endpoint, seconds")
    attempts: int = Field(3, ge=1, description="Tries per endpoint request (timeouts, 5xx and 429 are retried)")
    concurrency: int = Field(8, ge=1, description="Endpoint requests in flight at once")
    judge: str | None = Field(None, description="Pointwise judge of every answer: an LLM 'openai:MODEL@BASE_URL' "
                              "(accuracy, relevance, fluency, professionalism 1–5 + reason) or a reward model "
                              "'rm:/path/to/reward_model' (its reward)")
    judge_key_env: str | None = Field(None, description="Environment variable holding the judge's API key")
    judge_templates: Path | None = Field(None, description="YAML with a 'pointwise' judge prompt template")
    judge_timeout_s: float = Field(60.0, gt=0, description="Per-request timeout for the judge, seconds")
    judge_attempts: int = Field(3, ge=1, description="Tries per judgement (transport errors and unusable JSON both count)")
    group_by: str | None = Field(None, description="A metadata key (e.g. topic, lang): every score is also reported "
                                 "per value of it")
    fresh: bool = Field(False, description="Discard answers saved in out_dir by an earlier run instead of resuming")
    device: str | None = Field(None, description="Device for local models (cpu, cuda); default: cuda when available")


@dataclass(frozen=True)
class EvalRunOutcome:
    report: EvalRunReport
    files: dict[str, Path]
    resumed: int  # answers reused from an earlier, interrupted run


def _fingerprint(config: EvalRunConfig, rows) -> dict[str, str | float | int | None]:  # noqa: ANN001
    content = hashlib.sha256("\n".join(json.dumps(r.canonical(), sort_keys=True, ensure_ascii=False) for r in rows)
                             .encode()).hexdigest()
    templates = hashlib.sha256(config.judge_templates.read_bytes()).hexdigest()[:16] if config.judge_templates else None
    return {"eval_set_sha256": content, "max_tokens": config.max_tokens, "temperature": config.temperature,
            "seed": config.seed, "endpoint": config.endpoint, "judge": config.judge, "judge_templates": templates}


def _check_resume(config: EvalRunConfig, rows) -> Path:  # noqa: ANN001
    out = config.out_dir
    out.mkdir(parents=True, exist_ok=True)
    ckpt, meta = out / "generations.jsonl", out / "run.json"
    fp = _fingerprint(config, rows)
    if config.fresh:
        ckpt.unlink(missing_ok=True)
    elif ckpt.exists() and meta.exists():
        old = json.loads(meta.read_text(encoding="utf-8")).get("fingerprint", {})
        changed = sorted(k for k in fp if old.get(k) != fp[k])
        if changed:
            raise EvalInputError(f"{out} holds answers of a different run (changed: {', '.join(changed)}); "
                             "pass --fresh to discard them, or choose another --out-dir")
    meta.write_text(json.dumps({"fingerprint": fp, "versions": config.versions, "data": config.data}, indent=2),
                    encoding="utf-8")
    return ckpt


def evaluate(config: EvalRunConfig, db=None, on_progress: Callable[[int, int], None] | None = None,  # noqa: ANN001
             on_ready: Callable[[int, int], None] | None = None) -> EvalRunOutcome:
    """Run the evaluation the config describes; ValueError for anything wrong before generation starts.

    ``on_ready(n_rows, n_versions)`` is called once inputs are checked (e.g. to size a progress bar)."""
    from llmloop.eval.evalset import load_eval_set
    from llmloop.eval.render import write_csv, write_html, write_json
    from llmloop.inference.base import SamplingParams

    if db is None and not (config.endpoint and Path(config.data).exists()):
        from llmloop.store import open_database

        db = open_database()
    rows, described = load_eval_set(config.data, db)
    if config.endpoint:
        from llmloop.eval.endpoint import EndpointEngine

        engine = EndpointEngine(config.endpoint, config.endpoint_key_env, timeout_s=config.timeout_s,
                                attempts=config.attempts, concurrency=config.concurrency)
        names, prepare, measure = list(config.versions), None, False
        # a batch is also the unit the engine sends at once: let `concurrency` requests be in flight
        batch_size = max(config.batch_size, config.concurrency)
    else:
        from llmloop.eval.subjects import resolve_model
        from llmloop.inference.embedded import EmbeddedEngine
        from llmloop.store import registry

        found = []
        for ref in config.versions:
            try:
                found.append(resolve_model(db, ref))
            except registry.VersionNotFound as e:
                raise EvalInputError(f"{e}, or pass a checkpoint folder") from None
        by_name = {v.name: v for v in found}
        if len(by_name) < len(found):
            raise EvalInputError(f"versions {config.versions} name the same model twice; list each once")
        engine = EmbeddedEngine(device=config.device)
        names, measure, batch_size = [v.name for v in found], True, config.batch_size

        def prepare(name: str) -> None:
            engine.load(by_name[name])

    judge = None  # after the models resolved: a typo in a version name should not wait for a reward model to load
    if config.judge and config.judge.startswith("rm:"):
        from llmloop.eval.rm_judge import RewardModelJudge

        judge = RewardModelJudge(config.judge.removeprefix("rm:"), device=config.device or "cpu")
    elif config.judge:
        from llmloop.eval.llm_judge import llm_judge_from_spec

        judge = llm_judge_from_spec(config.judge, config.judge_key_env, config.judge_templates,
                                    config.judge_timeout_s, config.judge_attempts)
    try:
        ckpt = _check_resume(config, rows)
    except ValueError:
        if hasattr(judge, "close"):
            judge.close()
        raise
    from llmloop.eval.report import _load_checkpoint

    resumed = sum(1 for (v, _) in _load_checkpoint(ckpt) if v in names)
    if on_ready:
        on_ready(len(rows), len(names))
    try:
        report = run_eval(engine, names, rows,
                          SamplingParams(max_tokens=config.max_tokens, temperature=config.temperature, seed=config.seed),
                          batch_size=batch_size, on_progress=on_progress, checkpoint=ckpt, judge=judge,
                          prepare=prepare, measure_memory=measure, eval_set=described)
    finally:
        for closeable in (engine, judge):
            if hasattr(closeable, "close"):
                closeable.close()
    if config.group_by:
        from dataclasses import replace

        report = replace(report, group_by=config.group_by)
    files = {"html": config.out_dir / "report.html", "json": config.out_dir / "report.json",
             "csv": config.out_dir / "report.csv"}
    write_json(report, files["json"])
    files["samples_csv"] = write_csv(report, files["csv"])
    write_html(report, files["html"])
    return EvalRunOutcome(report, files, resumed)
