"""L3 pipelines: a declared chain of steps (sft → eval → dpo → eval → merge-scan → gate) run with
``llmloop pipeline run FILE``.

Each step is a job (a row in ``jobs``: training steps through ``train.job_runner.submit`` and ``run_submitted``, the
others through the same job table with stage ``eval``/``merge_scan``/``gate``), and each step's
outputs are recorded in ``pipeline_steps``. A step's fields may name an earlier step's outputs as
``${step_id.key}`` (e.g. ``model: ${sft.version}``). Running the same file again resumes the
unfinished run of that exact spec: finished steps are skipped with their recorded outputs, so a
pipeline killed in its fourth step starts again at its fourth step. The final report (JSON and
Markdown) lands in ``$LLMLOOP_HOME/pipelines/<run id>/``.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from llmloop.errors import LlmloopError, UserError
from llmloop.store import Database, loop_events
from llmloop.store import job_queue

_REF = re.compile(r"\$\{([A-Za-z0-9_-]+)\.([A-Za-z0-9_]+)\}")


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(..., pattern=r"^[A-Za-z0-9_-]{1,100}$", description="Step name; later steps refer to ${id.key}")


class TrainStep(_Step):
    kind: Literal["train"] = Field(description="A training job (`llmloop train STAGE`)")
    stage: str = Field(..., description="Training stage: pt, sft, dpo … (as `llmloop train` has them)")
    preset: str | None = Field(None, description="Training config YAML read first (relative to the pipeline file)")
    config: dict[str, Any] = Field(default_factory=dict, description="Config fields over the preset (model, dataset, …)")


class EvalStep(_Step):
    kind: Literal["eval"] = Field(description="Win rate of `model` against `against` on held-out prompts")
    model: str = Field(..., description="The challenger: version, alias or ${step.version}")
    against: str = Field(..., description="The reference: version or alias")
    prompts: str = Field(..., description="Held-out prompts JSONL (relative to the pipeline file)")
    judge: str = Field(..., description="Pairwise judge spec, e.g. python:llmloop.demo.users:preference_score")
    max_tokens: int = Field(96, ge=1, description="Longest answer per prompt")
    temperature: float = Field(0.7, ge=0, description="Sampling temperature of both")
    seed: int = Field(1234, description="Sampling seed (the same for both)")


class MergeScanStep(_Step):
    kind: Literal["merge_scan"] = Field(description="`llmloop models merge-scan`: merge two models at N ratios, keep the best")
    config: dict[str, Any] = Field(..., description="Merge-scan config fields (a, b, eval_set, metric, points, …)")


class GateStep(_Step):
    kind: Literal["gate"] = Field(description="Stop the pipeline unless an earlier eval step passed")
    eval: str = Field(..., description="The eval step whose win rate is judged")
    min_win_rate: float = Field(0.55, ge=0, le=1, description="Win rate must reach this")
    min_ci_low: float = Field(0.5, ge=0, le=1, description="The 95% CI's lower bound must be above this")
    promote: bool = Field(False, description="On a pass, point `production` at the eval's model")


Step = Annotated[TrainStep | EvalStep | MergeScanStep | GateStep, Field(discriminator="kind")]


class PipelineSpec(BaseModel):
    """A pipeline file. YAML keys are these field names."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, max_length=200, description="Pipeline name (reports, `pipeline list`)")
    steps: list[Step] = Field(..., min_length=1, description="Steps, run in order")

    @model_validator(mode="after")
    def _refs(self) -> PipelineSpec:
        seen: dict[str, str] = {}
        problems = []
        for s in self.steps:
            if s.id in seen:
                problems.append(f"steps.{s.id}: the id is used twice")
            for ref, _ in _REF.findall(json.dumps(s.model_dump(mode="json"))):
                if ref not in seen:
                    problems.append(f"steps.{s.id}: ${{{ref}.…}} names no earlier step")
            if isinstance(s, GateStep) and seen.get(s.eval) != "eval":
                problems.append(f"steps.{s.id}: eval {s.eval!r} is not an earlier eval step")
            seen[s.id] = s.kind
        if problems:
            raise ValueError("; ".join(problems))
        return self


class PipelineError(UserError, ValueError):
    pass


def load_pipeline(path: str | Path) -> PipelineSpec:
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise PipelineError(f"{p}: no such pipeline file") from None
    except yaml.YAMLError as e:
        raise PipelineError(f"{p}: not valid YAML ({e})") from None
    for s in data.get("steps") or []:
        for key in ("preset", "prompts"):
            if isinstance(s, dict) and isinstance(s.get(key), str) and not Path(s[key]).is_absolute():
                s[key] = str((p.parent / s[key]).resolve())
        cfg = s.get("config") if isinstance(s, dict) else None
        if isinstance(cfg, dict) and isinstance(cfg.get("eval_set"), str) and not Path(cfg["eval_set"]).is_absolute():
            cfg["eval_set"] = str((p.parent / cfg["eval_set"]).resolve())
    try:
        return PipelineSpec.model_validate(data)
    except ValidationError as e:
        raise PipelineError("\n".join(f"{p}: {'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())) from None


def _fill(value: Any, outputs: dict[str, dict[str, Any]]) -> Any:
    if isinstance(value, str):
        whole = _REF.fullmatch(value)
        if whole:
            return outputs[whole.group(1)].get(whole.group(2))
        return _REF.sub(lambda m: str(outputs[m.group(1)].get(m.group(2))), value)
    if isinstance(value, dict):
        return {k: _fill(v, outputs) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, outputs) for v in value]
    return value


@dataclass(frozen=True)
class PipelineResult:
    run_id: int
    status: str  # succeeded | failed | rejected
    steps: dict[str, loop_events.PipelineStep]
    report_path: Path
    resumed: bool


StepSay = Callable[[str, str, str], None]  # (step id, event start|done|skip|fail, message)


def run_pipeline(db: Database, spec: PipelineSpec, *, new: bool = False, say: StepSay | None = None) -> PipelineResult:
    """Run ``spec``, resuming its unfinished run unless ``new``; every step a job, outputs recorded."""
    say = say or (lambda step, event, msg: None)
    dumped = spec.model_dump(mode="json")
    digest = hashlib.sha256(json.dumps(dumped, sort_keys=True).encode()).hexdigest()
    run = None if new else loop_events.unfinished_pipeline(db, digest)
    resumed = run is not None
    run = run or loop_events.start_pipeline(db, spec.name, digest, dumped)
    done = loop_events.pipeline_steps_of(db, run.id)
    outputs = {k: v.outputs for k, v in done.items() if v.status == "succeeded"}
    status = "succeeded"
    for step in spec.steps:
        if step.id in outputs:
            say(step.id, "skip", f"done in an earlier attempt (job {done[step.id].job_id})")
            continue
        filled = type(step).model_validate(_fill(step.model_dump(mode="json"), outputs))
        say(step.id, "start", f"{step.kind}")
        loop_events.set_pipeline_step(db, run.id, step.id, "running")
        t = time.monotonic()
        try:
            job_id, out = _run_step(db, filled, outputs)
        except Exception as e:  # noqa: BLE001 - recorded with the step; the run stops here and can resume
            loop_events.set_pipeline_step(db, run.id, step.id, "failed", job_id=getattr(e, "job_id", None),
                                          error=f"{type(e).__name__}: {e}")
            say(step.id, "fail", f"{type(e).__name__}: {e}")
            status = "failed"
            break
        out["seconds"] = round(time.monotonic() - t, 2)
        outputs[step.id] = out
        passed = out.get("passed", True)
        loop_events.set_pipeline_step(db, run.id, step.id, "succeeded" if passed else "failed", job_id=job_id,
                                      outputs=out, error=None if passed else out.get("decision"))
        say(step.id, "done" if passed else "fail", _summary(out))
        if not passed:
            status = "rejected"
            break
    steps = loop_events.pipeline_steps_of(db, run.id)
    report = _write_report(db, run.id, spec, steps, status, resumed)
    loop_events.finish_pipeline(db, run.id, status, str(report))
    return PipelineResult(run.id, status, steps, report, resumed)


def list_runs(db: Database) -> list[loop_events.PipelineRun]:
    """Every pipeline run, as ``llmloop pipeline list`` shows them."""
    return loop_events.list_pipelines(db)


def get_run(db: Database, run_id: int) -> tuple[loop_events.PipelineRun, dict[str, loop_events.PipelineStep]]:
    """One run and its steps by id; ``PipelineRunNotFound`` for an unknown id."""
    return loop_events.get_pipeline(db, run_id), loop_events.pipeline_steps_of(db, run_id)


def _summary(out: dict[str, Any]) -> str:
    keys = ("version", "win_rate", "ci_low", "decision", "best_t", "train_loss")
    return ", ".join(f"{k} {out[k]:.3f}" if isinstance(out.get(k), float) else f"{k} {out[k]}" for k in keys if out.get(k) is not None)


class _StepFailed(LlmloopError, RuntimeError):
    def __init__(self, message: str, job_id: str) -> None:
        super().__init__(message)
        self.job_id = job_id


def _job(db: Database, kind: str, config: dict[str, Any], fn: Callable[[], dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    job = job_queue.create_job(db, stage=kind, config=config)
    job_queue.set_status(db, job.id, "running")
    try:
        out = fn()
    except Exception as e:
        job_queue.set_status(db, job.id, "failed", error=f"{type(e).__name__}: {e}")
        raise _StepFailed(f"{type(e).__name__}: {e}", job.id) from e
    job_queue.set_status(db, job.id, "succeeded", result=out)
    return job.id, out


def _run_step(db: Database, step: Any, outputs: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    if isinstance(step, TrainStep):
        from llmloop.train.config import CONFIGS, load_config
        from llmloop.train.job_runner import JobFailed, run_submitted, submit

        if step.stage not in CONFIGS:
            raise PipelineError(f"step {step.id}: stage {step.stage!r} is not one of {sorted(CONFIGS)}")
        # the one preset loader; the step's config over the preset's fields
        config = load_config(step.stage, step.preset, values=step.config, values_from=f"steps.{step.id}.config")
        try:  # a job like any other: submitted, then run by this process as its worker
            r = run_submitted(db, submit(db, step.stage, config).id)
        except JobFailed as e:
            raise _StepFailed(str(e), e.job.id) from e
        return r.job.id, {"version": r.model_version.name if r.model_version else None, "job_id": r.job.id,
                          "output_dir": str(r.output_dir), "train_loss": r.train_loss}
    if isinstance(step, EvalStep):
        def evaluate() -> dict[str, Any]:
            from llmloop.eval.judges import load_judge
            from llmloop.eval.winrate import compare_versions
            from llmloop.inference.base import SamplingParams
            from llmloop.inference.embedded import EmbeddedEngine
            from llmloop.loop.policy import read_prompts
            from llmloop.store import registry

            engine = EmbeddedEngine()
            x, y = registry.get(db, step.model), registry.get(db, step.against)
            engine.load(x)
            engine.load(y)
            rep = compare_versions(engine, x.name, y.name, read_prompts(step.prompts), load_judge(step.judge),
                                   SamplingParams(max_tokens=step.max_tokens, temperature=step.temperature, seed=step.seed))
            from llmloop.eval.leaderboard import save_comparison

            # kept like every `eval compare`, so `eval leaderboard` counts these battles too
            return {**rep.summary(), "model": x.name, "against": y.name, "comparison": str(save_comparison(db, rep))}
        return _job(db, "eval", step.model_dump(mode="json"), evaluate)
    if isinstance(step, MergeScanStep):
        def scan() -> dict[str, Any]:
            from llmloop.models.scan import ScanConfig, run_scan

            r = run_scan(db, ScanConfig.model_validate(step.config))
            return {"version": r.version, "best_t": r.best.t, "best_score": r.best.score,
                    "points": [[p.t, p.score] for p in r.points], "png": str(r.png), "model_dir": str(r.model_dir)}
        return _job(db, "merge_scan", step.model_dump(mode="json"), scan)
    assert isinstance(step, GateStep)

    def gate() -> dict[str, Any]:
        ev = outputs[step.eval]
        ok = ev["win_rate"] >= step.min_win_rate and ev["ci_low"] > step.min_ci_low
        decision = (f"{ev['model']} vs {ev['against']}: win rate {ev['win_rate']:.3f} (≥ {step.min_win_rate}? "
                    f"{'yes' if ev['win_rate'] >= step.min_win_rate else 'no'}), CI low {ev['ci_low']:.3f} "
                    f"(> {step.min_ci_low}? {'yes' if ev['ci_low'] > step.min_ci_low else 'no'})")
        if ok and step.promote:
            from llmloop.store import registry

            registry.set_alias(db, "production", ev["model"], reason=f"pipeline gate {step.id}: {decision}")
        return {"passed": ok, "decision": decision, "promoted": ok and step.promote, "version": ev["model"]}
    return _job(db, "gate", step.model_dump(mode="json"), gate)


def _write_report(db: Database, run_id: int, spec: PipelineSpec, steps: dict[str, loop_events.PipelineStep],
                  status: str, resumed: bool) -> Path:
    folder = db.workspace.home / "pipelines" / str(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    data = {"run": run_id, "name": spec.name, "status": status, "resumed": resumed,
            "steps": [{"id": s.id, "kind": s.kind, **({"status": steps[s.id].status, "job": steps[s.id].job_id,
                                                        "outputs": steps[s.id].outputs, "error": steps[s.id].error}
                                                       if s.id in steps else {"status": "not run"})}
                      for s in spec.steps]}
    (folder / "report.json").write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    lines = [f"# Pipeline {spec.name} (run {run_id}): {status}", "", "| step | kind | status | job | result |",
             "| --- | --- | --- | --- | --- |"]
    for s in data["steps"]:
        lines.append(f"| {s['id']} | {s['kind']} | {s['status']} | {s.get('job') or ''} | "
                     f"{_summary(s.get('outputs') or {}) or (s.get('error') or '')} |")
    (folder / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder / "report.json"
