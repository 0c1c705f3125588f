"""M9: GKD distillation through TRL — the student's weights change and its loss falls."""

from __future__ import annotations

import pytest

from llmloop.models.distill import DistillConfig, run_distill
from llmloop.models.sources import SurgeryError
from llmloop.store import job_queue
from llmloop.store import registry


def _sft(db):
    """The first 16 conversations of the shipped demo SFT data, as a stored sft dataset."""
    import json
    from importlib.resources import files

    from llmloop.data.versions import write_version

    rows = [json.loads(line) for line in files("llmloop.resources").joinpath("demo/sft.jsonl").read_text(encoding="utf-8").splitlines()[:16]]
    return write_version(db, rows, name="faq", kind="sft", source_format="messages")


@pytest.mark.slow
def test_gkd_moves_the_student_towards_the_teacher(db, tiny_model_dir, tiny_b_dir):
    import torch

    torch.set_num_threads(1)
    _sft(db)
    registry.register(db, name="v1.0", kind="chat", base_model=str(tiny_model_dir))
    out, v, rep = run_distill(db, DistillConfig(teacher="v1.0", student=str(tiny_b_dir), dataset="faq", max_steps=12,
                                                learning_rate=1e-3, lmbda=0.0, per_device_train_batch_size=4, max_length=128))
    assert rep["tensors_changed"] > 0
    assert rep["loss_last"] < 0.8 * rep["loss_first"], rep
    assert v.parent == "v1.0" and v.base_model == str(out.resolve()) and v.job_id == rep["job"]
    lin = registry.get_lineage(db, v.name)
    assert lin.operation == "distill" and lin.parents == ["v1.0", str(tiny_b_dir)]
    assert job_queue.get_job(db, rep["job"]).status == "succeeded"
    assert len(job_queue.get_metrics(db, rep["job"])) >= 12


@pytest.mark.slow
def test_gkd_on_policy_step_runs(db, tiny_model_dir, tiny_b_dir):
    """lmbda=1: every batch is the student's own sample, scored by the teacher (GKD proper)."""
    _sft(db)
    registry.register(db, name="v1.0", kind="chat", base_model=str(tiny_model_dir))
    _, v, rep = run_distill(db, DistillConfig(teacher="v1.0", student=str(tiny_b_dir), dataset="faq", max_steps=2,
                                              lmbda=1.0, max_new_tokens=8, per_device_train_batch_size=2, max_length=96,
                                              register_version=False))
    assert v is None and rep["steps"] == 2 and rep["tensors_changed"] > 0


def test_vocabulary_mismatch_is_refused(db, tiny_model_dir, tmp_path):
    from llmloop.models.tiny import TinyModelConfig, build_tiny_model

    _sft(db)
    other = build_tiny_model(tmp_path / "small_vocab", TinyModelConfig(vocab_size=1024))
    registry.register(db, name="v1.0", kind="chat", base_model=str(tiny_model_dir))
    with pytest.raises(SurgeryError, match="vocab_size"):
        run_distill(db, DistillConfig(teacher="v1.0", student=str(other), dataset="faq", max_steps=1))
    assert job_queue.list_jobs(db) == []
