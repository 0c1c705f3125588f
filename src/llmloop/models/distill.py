"""M9: distil a teacher version into a student model with TRL's GKD trainer.

The recipe, top to bottom: resolve the teacher (a version; its adapter is folded in memory) and
the student (a version or model folder — full fine-tuning of its weights), check they share a
vocabulary (GKD compares full next-token distributions), read an SFT dataset version's
``messages`` rows, train with ``trl.experimental.gkd.GKDTrainer`` (generalised JSD between
student and teacher; ``lmbda`` of the batches use the student's own samples — on-policy — and
``seq_kd`` trains on teacher generations), save the student, register it as a version whose
parent is the teacher. The run is a job (stage ``distill``) with its losses in the store, like
every training run. Kept here rather than in ``train/`` (issue 4 is reshaping it) and small: the
trainer does the work.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from llmloop.models.sources import SurgeryError, pick_name, publish, resolve

ProgressFn = Callable[[int, int], None]
log = logging.getLogger(__name__)


class DistillConfig(BaseModel):
    """`llmloop models distill`: teacher version → student model through TRL's GKD trainer."""

    model_config = ConfigDict(extra="forbid")

    teacher: str = Field(description="Teacher version or alias (its adapter, if any, is folded in)")
    student: str = Field(description="Student: version, alias or model folder (same tokenizer/vocabulary as the teacher)")
    dataset: str = Field(description="SFT dataset with messages rows: name (latest) or name@v1.2")
    max_steps: int = Field(50, ge=1, description="Optimizer steps")
    learning_rate: float = Field(5e-5, gt=0, description="AdamW learning rate")
    per_device_train_batch_size: int = Field(4, ge=1, description="Conversations per step")
    max_length: int = Field(512, ge=16, description="Longest tokenized conversation")
    lmbda: float = Field(0.5, ge=0, le=1, description="Share of batches trained on the student's own samples (on-policy)")
    beta: float = Field(0.5, ge=0, le=1, description="Generalised JSD interpolation: 0 = forward KL, 1 = reverse KL")
    temperature: float = Field(0.9, gt=0, description="Sampling temperature for on-policy samples and the distributions")
    max_new_tokens: int = Field(64, ge=1, description="Length of on-policy samples")
    seq_kd: bool = Field(False, description="Also train on teacher-generated completions (sequence-level KD)")
    logging_steps: int = Field(1, ge=1, description="Log the loss every N steps")
    seed: int = Field(0, description="Seed")
    name: str | None = Field(None, description="Name of the registered version (default: next free after the teacher)")
    register_version: bool = Field(True, description="Register the student as a candidate version with lineage")


def _load(source, dtype):  # noqa: ANN001, ANN202
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(source.base_model, dtype=dtype)
    if source.adapter_path:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, source.adapter_path).merge_and_unload()
    return model


def _callback(db, job_id: str, progress: ProgressFn | None):  # noqa: ANN001, ANN202
    from transformers import TrainerCallback

    from llmloop.store import job_queue

    class Record(TrainerCallback):
        def __init__(self) -> None:
            self.losses: list[float] = []

        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001, ANN201
            if logs and "loss" in logs:
                self.losses.append(float(logs["loss"]))
                job_queue.add_metrics(db, job_id, state.global_step, {"loss": logs["loss"], "lr": logs.get("learning_rate")})

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
            if progress:
                progress(state.global_step, state.max_steps)

    return Record()


def run_distill(db, config: DistillConfig, progress: ProgressFn | None = None):  # noqa: ANN001, ANN201
    """Returns (output path, version or None, report)."""
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer, PrinterCallback, ProgressCallback
    from trl.experimental.gkd import GKDConfig, GKDTrainer

    from llmloop.data.versions import read_rows
    from llmloop.data.versions import resolve as resolve_dataset
    from llmloop.store import job_queue

    teacher_src, student_src = resolve(db, config.teacher), resolve(db, config.student)
    data = resolve_dataset(db, config.dataset)
    if data.kind != "sft":
        raise SurgeryError(f"--dataset {config.dataset!r} holds {data.kind} rows; distillation needs an sft dataset (messages)")
    rows = [{"messages": r["messages"]} for r in read_rows(data) if r.get("messages")]
    if not rows:
        raise SurgeryError(f"--dataset {config.dataset!r}: no rows with messages")
    tok = AutoTokenizer.from_pretrained(student_src.base_model)
    cuda = torch.cuda.is_available()
    dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32
    student, teacher = _load(student_src, dtype), _load(teacher_src, dtype)
    if student.config.vocab_size != teacher.config.vocab_size:
        raise SurgeryError(
            f"teacher {teacher_src.name} has vocab_size {teacher.config.vocab_size}, student {student_src.name} "
            f"{student.config.vocab_size}; GKD needs one vocabulary (pick a student of the teacher's family)"
        )
    job = job_queue.create_job(db, stage="distill", config=config.model_dump(mode="json"))
    out = Path(job.output_dir)
    job_queue.set_status(db, job.id, "running")
    before = {n: p.detach().clone() for n, p in student.named_parameters()}
    record = _callback(db, job.id, progress)
    try:
        args = GKDConfig(
            output_dir=str(out / "checkpoints"), max_steps=config.max_steps, learning_rate=config.learning_rate,
            per_device_train_batch_size=config.per_device_train_batch_size, max_length=config.max_length,
            lmbda=config.lmbda, beta=config.beta, temperature=config.temperature, max_new_tokens=config.max_new_tokens,
            seq_kd=config.seq_kd, logging_steps=config.logging_steps, logging_first_step=True, seed=config.seed,
            save_strategy="no", report_to=[], disable_tqdm=True, use_cpu=not cuda, bf16=dtype == torch.bfloat16,
        )
        trainer = GKDTrainer(model=student, teacher_model=teacher, args=args, train_dataset=Dataset.from_list(rows),
                             processing_class=tok, callbacks=[record])
        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)
        result = trainer.train()
        dest = out / "model"
        trainer.save_model(str(dest))
        tok.save_pretrained(str(dest))
    except BaseException as e:
        job_queue.set_status(db, job.id, "failed", error=f"{type(e).__name__}: {e}")
        raise
    changed = sum(int(not torch.equal(before[n], p.detach().cpu())) for n, p in trainer.model.named_parameters() if n in before)
    report: dict[str, Any] = {"job": job.id, "steps": result.global_step, "loss_first": record.losses[0] if record.losses else None,
                              "loss_last": record.losses[-1] if record.losses else None, "loss_mean": result.training_loss,
                              "tensors_changed": changed, "teacher": teacher_src.name, "student": student_src.name}
    version = None
    if config.register_version:
        name = pick_name(db, config.name, teacher_src, teacher_src.kind)
        version = publish(db, name=name, kind=teacher_src.kind, base_model=str(dest.resolve()), adapter_path=None,
                          operation="distill", parents=[teacher_src, student_src], recipe=config.model_dump(mode="json"),
                          report={**report, "dataset_version_id": data.id}, job_id=job.id, datasets=[data.id],
                          note=f"{student_src.name} distilled from {teacher_src.name} on {data.dataset}@{data.version}")
    job_queue.set_status(db, job.id, "succeeded", result={"output": str(dest), "model_version": version.name if version else None,
                                                           "dataset_version_id": data.id, "metrics": report})
    return dest, version, report
