"""M4 (SWA/EMA over a job's checkpoints) and M6 (best checkpoint, overfitting detection)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from llmloop.models.average import AverageConfig, run_average
from llmloop.models.checkpoint_select import SelectConfig, select_checkpoint
from llmloop.models.sources import SurgeryError
from llmloop.store import job_queue
from llmloop.store import registry


def _checkpoints(job, src: Path, steps: list[int], weights_file: str = "model.safetensors") -> list[dict]:
    """Checkpoints whose every tensor is the source's plus a step-dependent offset (known values)."""
    sd = load_file(src / weights_file)
    out = []
    for k, step in enumerate(steps):
        d = Path(job.output_dir) / "checkpoints" / f"checkpoint-{step}"
        shutil.copytree(src, d)
        shifted = {n: t + (k + 1) * 0.01 for n, t in sd.items()}
        save_file(shifted, d / weights_file, metadata={"format": "pt"})
        out.append(shifted)
    return out


def test_swa_and_ema_equal_their_definitions(db, tiny_model_dir):
    registry.register(db, name="v1.0", kind="chat", base_model=str(tiny_model_dir))
    job = job_queue.create_job(db, stage="sft", config={})
    job_queue.set_status(db, job.id, "succeeded", result={"model_version": "v1.0"})
    states = _checkpoints(job, tiny_model_dir, [10, 20, 30])
    name = next(iter(states[0]))
    out, v, rep = run_average(db, AverageConfig(job=job.id, method="swa"))
    got = load_file(out / "model.safetensors")[name]
    assert torch.allclose(got, sum(s[name] for s in states) / 3, atol=1e-6)
    assert v.name == "v1.1" and v.parent == "v1.0" and v.job_id == job.id and rep["steps"] == [10, 20, 30]
    # EMA, written as the recursion it stands for
    d = 0.6
    out, v, rep = run_average(db, AverageConfig(job=job.id, method="ema", decay=d, last=2))
    e = states[1][name]
    e = d * e + (1 - d) * states[2][name]
    assert torch.allclose(load_file(out / "model.safetensors")[name], e, atol=1e-6)
    assert registry.get_lineage(db, v.name).operation == "average"


def test_average_of_adapter_checkpoints_stays_an_adapter(db, tiny_model_dir, adapters):
    registry.register(db, name="v1.0", kind="chat", base_model=str(tiny_model_dir))
    registry.register(db, name="v1.1", kind="chat", base_model=str(tiny_model_dir), adapter_path=str(adapters[0]), parent="v1.0")
    job = job_queue.create_job(db, stage="dpo", config={})
    job_queue.set_status(db, job.id, "succeeded", result={"model_version": "v1.1"})
    states = _checkpoints(job, adapters[0], [5, 10], "adapter_model.safetensors")
    out, v, _ = run_average(db, AverageConfig(job=job.id))
    n = next(iter(states[0]))
    assert torch.allclose(load_file(out / "adapter_model.safetensors")[n], (states[0][n] + states[1][n]) / 2, atol=1e-6)
    assert v.adapter_path == str(out.resolve()) and v.base_model == str(tiny_model_dir)


def test_average_needs_two_checkpoints(db, tiny_model_dir):
    job = job_queue.create_job(db, stage="sft", config={})
    _checkpoints(job, tiny_model_dir, [10])
    with pytest.raises(SurgeryError, match="save_strategy=steps"):
        run_average(db, AverageConfig(job=job.id))


def _log(db, job, train: dict[int, float], evals: dict[int, float]) -> None:
    for step, loss in train.items():
        job_queue.add_metrics(db, job.id, step, {"loss": loss})
    for step, val in evals.items():
        job_queue.add_metrics(db, job.id, step, {"eval_loss": val})


def test_select_finds_best_and_detects_overfitting(db, tiny_model_dir):
    job = job_queue.create_job(db, stage="sft", config={})
    for step in (10, 20, 30, 40, 50, 60):
        (Path(job.output_dir) / "checkpoints" / f"checkpoint-{step}").mkdir(parents=True)
    train = {s: 2.0 - s / 40 for s in range(5, 65, 5)}  # always falling
    evals = {10: 1.9, 20: 1.5, 30: 1.4, 40: 1.45, 50: 1.6, 60: 1.8}  # U-shaped: overfits after 30
    _log(db, job, train, evals)
    sel = select_checkpoint(db, SelectConfig(job=job.id, patience=3))
    assert sel.best.step == 30 and sel.overfitting and sel.overfit_from_step == 40
    assert any("overfitting" in line for line in sel.explanation)
    sel = select_checkpoint(db, SelectConfig(job=job.id, patience=4))
    assert not sel.overfitting and sel.best.step == 30


def test_select_uses_trainer_state_and_saved_checkpoints_only(db, tiny_model_dir):
    job = job_queue.create_job(db, stage="sft", config={})
    ck = Path(job.output_dir) / "checkpoints"
    for step in (20, 40):
        (ck / f"checkpoint-{step}").mkdir(parents=True)
    history = [{"step": 10, "loss": 2.0}, {"step": 10, "eval_acc": 0.9}, {"step": 20, "loss": 1.8},
               {"step": 20, "eval_acc": 0.5}, {"step": 40, "loss": 1.5}, {"step": 40, "eval_acc": 0.7}]
    (ck / "checkpoint-40" / "trainer_state.json").write_text(json.dumps({"log_history": history}))
    sel = select_checkpoint(db, SelectConfig(job=job.id, metric="eval_acc"))
    assert sel.mode == "max" and sel.best.step == 40 and sel.best_overall.step == 10
    assert any("no checkpoint was saved" in line for line in sel.explanation)
    with pytest.raises(SurgeryError, match="eval_acc"):
        select_checkpoint(db, SelectConfig(job=job.id, metric="eval_loss"))


def test_select_registers_the_checkpoint(db, tiny_model_dir):
    registry.register(db, name="v1.0", kind="chat", base_model=str(tiny_model_dir))
    job = job_queue.create_job(db, stage="sft", config={})
    job_queue.set_status(db, job.id, "succeeded", result={"model_version": "v1.0"})
    _checkpoints(job, tiny_model_dir, [10, 20])
    _log(db, job, {10: 1.0, 20: 0.9}, {10: 1.2, 20: 1.3})
    sel = select_checkpoint(db, SelectConfig(job=job.id, register_version=True))
    v = registry.get(db, sel.version)
    assert sel.best.step == 10 and v.base_model.endswith("checkpoint-10") and v.parent == "v1.0"
