"""What the training tests share: the tiny run's settings and what they check after a run.

A plain module next to the tests (pytest puts this folder on ``sys.path``), imported by them.
"""

from __future__ import annotations

from pathlib import Path

# Every example fits one batch, the schedule is flat: each step sees the same data at the same rate.
TINY = dict(per_device_train_batch_size=8, max_length=64, logging_steps=1, lr_scheduler_type="constant",
            plot_loss=False)


def logged_losses(db, job_id: str) -> list[float]:  # noqa: ANN001
    """The job's logged training losses (the store's metric rows that have one), in step order."""
    from llmloop.store import job_queue

    return [m["loss"] for m in job_queue.get_metrics(db, job_id) if "loss" in m]


def adapter_moved(path: Path) -> bool:
    """Whether training moved the adapter saved in ``path`` (LoRA B starts at zero)."""
    from safetensors.torch import load_file

    weights = load_file(path / "adapter_model.safetensors")
    return any(t.abs().sum() > 0 for k, t in weights.items() if "lora_B" in k)
