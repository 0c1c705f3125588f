"""Several GPUs (T12): a job with ``gpus=2`` runs through ``accelerate launch`` (DDP), rank 0 records
and registers, rank 1 only trains. Marked ``gpu``; skipped without two CUDA devices."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs")]


def test_two_gpu_job_through_accelerate_ddp(db, datasets, tiny_model_dir):
    from llmloop.store import job_queue
    from llmloop.train.config import SFTConfig
    from llmloop.train.worker import run_claimed, submit

    config = SFTConfig(model=str(tiny_model_dir), dataset="faq", learning_rate=5e-3, max_steps=6,
                       per_device_train_batch_size=2, max_length=64, logging_steps=1, plot_loss=False)
    job = submit(db, "sft", config, gpus=2)
    job_queue.claim(db, job.id, "w")
    done = run_claimed(db, job_queue.get_job(db, job.id))
    log = Path(job.log_path).read_text()
    assert done.status == "succeeded", (done.error, log[-3000:])
    assert "Running training" in log
    rows = job_queue.get_metrics(db, job.id)
    assert [r["step"] for r in rows] == list(range(1, 7))  # logged once (rank 0), not once per GPU
    assert done.result["model_version"] == "v1.0"
    # 2 examples per device x 2 processes: DDP over both GPUs
    assert "Total train batch size (w. parallel, distributed & accumulation) = 4" in log
