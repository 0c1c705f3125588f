"""M6: pick a job's best checkpoint by a validation metric, and say whether it overfitted.

The evidence is the job's own log: per-step metrics in the store (``store.job_queue.get_metrics``) and
the trainer's ``log_history`` in the newest checkpoint's ``trainer_state.json`` (which has every
evaluation even when the store recorded only training losses). Overfitting is declared when, for
``patience`` evaluations in a row, the validation metric got worse while the training loss
(the last one logged before each evaluation) kept falling — the classic divergence of the curves.
The best checkpoint is the best evaluation that has a checkpoint on disk; when the very best
evaluation was not saved, the report says so and names the best one that was.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llmloop.models.average import job_checkpoints
from llmloop.models.sources import SurgeryError


class SelectConfig(BaseModel):
    """`llmloop models select-checkpoint`: best checkpoint of a job by a validation metric."""

    model_config = ConfigDict(extra="forbid")

    job: str = Field(description="Training job id (see `llmloop jobs list`)")
    metric: str = Field("eval_loss", description="Validation metric logged by the trainer, e.g. eval_loss, eval_rewards/accuracies")
    mode: Literal["auto", "min", "max"] = Field("auto", description="Lower or higher is better; auto: min for losses/perplexity, else max")
    patience: int = Field(3, ge=1, description="Evaluations in a row that worsen while train loss falls before overfitting is declared")
    name: str | None = Field(None, description="With --register: name of the version (default: next free)")
    register_version: bool = Field(False, description="Register the chosen checkpoint as a candidate version")


@dataclass(frozen=True)
class EvalPoint:
    step: int
    value: float
    train_loss: float | None
    checkpoint: str | None


@dataclass(frozen=True)
class Selection:
    job: str
    metric: str
    mode: str
    points: list[EvalPoint]
    best: EvalPoint
    best_overall: EvalPoint
    overfitting: bool
    overfit_from_step: int | None
    explanation: list[str] = field(default_factory=list)
    version: str | None = None


def _mode(metric: str, mode: str) -> str:
    if mode != "auto":
        return mode
    return "min" if any(k in metric.lower() for k in ("loss", "perplexity", "ppl", "error")) else "max"


def _history(db, job) -> list[dict[str, Any]]:  # noqa: ANN001
    from llmloop.store import job_queue

    rows = [dict(r) for r in job_queue.get_metrics(db, job.id)]
    ckpts = job_checkpoints(job.output_dir)
    if ckpts:
        state = ckpts[-1].path / "trainer_state.json"
        if state.exists():
            for h in json.loads(state.read_text(encoding="utf-8")).get("log_history", []):
                if "step" in h:
                    rows.append(dict(h))
    return rows


def evaluation_points(rows: list[dict[str, Any]], metric: str, checkpoints: dict[int, str]) -> list[EvalPoint]:
    """One point per step that logged ``metric``, with the newest train loss logged at or before it."""
    values: dict[int, float] = {}
    train: dict[int, float] = {}
    for r in rows:
        step = int(r["step"])
        if r.get(metric) is not None:
            values[step] = float(r[metric])
        if r.get("loss") is not None:
            train[step] = float(r["loss"])
    points = []
    for step in sorted(values):
        before = [s for s in train if s <= step]
        points.append(EvalPoint(step, values[step], train[max(before)] if before else None, checkpoints.get(step)))
    return points


def detect_overfitting(points: list[EvalPoint], mode: str, patience: int) -> int | None:
    """Step of the first evaluation of the first run of ``patience`` worsening evals with falling train loss."""
    run: list[EvalPoint] = []
    for prev, cur in zip(points, points[1:]):
        worse = cur.value > prev.value if mode == "min" else cur.value < prev.value
        falling = cur.train_loss is not None and prev.train_loss is not None and cur.train_loss < prev.train_loss
        run = run + [cur] if (worse and falling) else []
        if len(run) >= patience:
            return run[0].step
    return None


def select_checkpoint(db, config: SelectConfig) -> Selection:  # noqa: ANN001
    from llmloop.store import job_queue

    job = job_queue.get_job(db, config.job)
    mode = _mode(config.metric, config.mode)
    ckpts = {c.step: str(c.path) for c in job_checkpoints(job.output_dir)}
    rows = _history(db, job)
    points = evaluation_points(rows, config.metric, ckpts)
    if not points:
        seen = sorted({k for r in rows for k in r if k.startswith("eval_")})
        raise SurgeryError(
            f"job {job.id} logged no {config.metric!r}; "
            + (f"it logged {', '.join(seen)} — pass one as --metric" if seen else
               "train with an eval split (eval.split > 0) so the trainer evaluates")
        )
    pick = min if mode == "min" else max
    best_overall = pick(points, key=lambda p: p.value)
    saved = [p for p in points if p.checkpoint]
    if not saved:
        raise SurgeryError(
            f"job {job.id} has no checkpoint at any evaluated step ({[p.step for p in points]}); "
            f"train with save_strategy=steps and save_steps equal to the eval interval"
        )
    best = pick(saved, key=lambda p: p.value)
    since = detect_overfitting(points, mode, config.patience)
    word = "lowest" if mode == "min" else "highest"
    why = [f"{len(points)} evaluations of {config.metric} ({mode} is better); checkpoints saved at steps {sorted(ckpts)}.",
           f"best: step {best.step}, {config.metric} = {best.value:.4g} (the {word} among saved checkpoints)."]
    if best_overall.step != best.step:
        why.append(f"the {word} value overall was at step {best_overall.step} ({best_overall.value:.4g}) but no checkpoint was saved there.")
    if since is not None:
        why.append(f"overfitting: from step {since}, {config.metric} worsened {config.patience}+ evaluations in a row "
                   f"while the training loss kept falling — later checkpoints fit the training data, not the task.")
    else:
        why.append(f"no overfitting: {config.metric} never worsened {config.patience} evaluations in a row while train loss fell.")
    sel = Selection(job.id, config.metric, mode, points, best, best_overall, since is not None, since, why)
    if config.register_version:
        sel = _register(db, job, sel, config)
    return sel


def _register(db, job, sel: Selection, config: SelectConfig) -> Selection:  # noqa: ANN001
    from dataclasses import replace

    from llmloop.models.sources import Source, pick_name
    from llmloop.store import registry

    result = job.result or {}
    parent_v = registry.get(db, result["model_version"]) if result.get("model_version") else None
    start = result.get("starting_model") or {}
    kind = parent_v.kind if parent_v else ("completion" if job.stage == "pt" else "chat")
    parent = Source(parent_v.name, parent_v.base_model, parent_v.adapter_path, parent_v) if parent_v else None
    name = pick_name(db, config.name, parent, kind)
    path = Path(sel.best.checkpoint)
    if (path / "adapter_config.json").exists():
        base = parent_v.base_model if parent_v else start.get("base_model")
        base_model, adapter_path = base, str(path.resolve())
    else:
        base_model, adapter_path = str(path.resolve()), None
    registry.register(
        db, name=name, kind=kind, base_model=base_model, adapter_path=adapter_path,
        parent=parent_v.name if parent_v else start.get("version"), job_id=job.id,
        dataset_versions=list(parent_v.dataset_versions) if parent_v else [],
        metrics={sel.metric: sel.best.value, "step": sel.best.step},
        note=f"checkpoint {sel.best.step} of job {job.id}, best {sel.metric}",
        lineage=registry.Lineage(name, "select-checkpoint", [parent_v.name] if parent_v else [],
                                 config.model_dump(mode="json"),
                                 {"step": sel.best.step, "value": sel.best.value, "overfitting": sel.overfitting,
                                  "overfit_from_step": sel.overfit_from_step, "checkpoint": sel.best.checkpoint}),
    )
    return replace(sel, version=name)
