"""Live training metrics (T11): each logging step goes to the store, to ``trainer_log.jsonl`` and to
an optional progress callback; a loss curve PNG at the end.

``trainer_log.jsonl`` uses LLaMA-Factory's keys (current_steps, total_steps, loss, lr, epoch,
percentage, elapsed_time, remaining_time, throughput, total_tokens, accuracy), so its web UI and
scripts read our runs; grad_norm and TRL's DPO ``rewards/*`` values are kept alongside.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from llmloop.store import Database
from llmloop.store import job_queue

LOG_FILE = "trainer_log.jsonl"
_DPO_KEYS = ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies")
_RM_KEYS = ("accuracy", "margin", "kl", "reward", "reward_std")  # reward model (accuracy), KTO (kl), GRPO (reward)


@dataclass(frozen=True)
class TrainProgress:
    """Where a run stands; handed to the ``progress`` callback at the start, after every optimizer
    step and again when a step's loss is logged."""

    step: int
    total_steps: int
    epoch: float
    elapsed_s: float
    remaining_s: float
    loss: float | None  # the latest logged loss


ProgressFn = Callable[[TrainProgress], None]


class MetricsRecorder(TrainerCallback):
    """Records every logging step of one job; keeps the step logs for the run's summary."""

    def __init__(self, db: Database, job_id: str, out_dir: Path, progress: ProgressFn | None = None,
                 resume: bool = False) -> None:
        self.db = db
        self.job_id = job_id
        self.log_file = out_dir / LOG_FILE
        self.progress = progress
        self.resume = resume
        self.steps: list[dict[str, Any]] = []  # trainer_log.jsonl training rows, in order
        self.evals: list[dict[str, Any]] = []  # trainer_log.jsonl evaluation rows
        self.best: dict[str, Any] = {}  # best checkpoint and metric, when evaluation ran
        self.cancelled = False
        self._start = time.monotonic()
        self._last_loss: float | None = None
        self._last_cancel_check = 0.0

    def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
        self._start = time.monotonic()
        if self.resume:
            self._forget_after(state.global_step)
        self._report(state)

    def _forget_after(self, step: int) -> None:
        """A resumed run repeats the steps after its checkpoint: drop what the killed attempt logged."""
        if self.log_file.is_file():
            rows = [json.loads(line) for line in self.log_file.read_text(encoding="utf-8").splitlines() if line.strip()]
            kept = [r for r in rows if r["current_steps"] <= step]
            self.log_file.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept), encoding="utf-8")
            self.steps = [r for r in kept if "loss" in r]
            self.evals = [r for r in kept if "loss" not in r]
        job_queue.delete_metrics_after(self.db, self.job_id, step)

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
        self._report(state)
        now = time.monotonic()
        if now - self._last_cancel_check >= 1.0:  # one small query a second at most
            self._last_cancel_check = now
            if job_queue.cancel_requested(self.db, self.job_id):
                self.cancelled = True
                control.should_save = True  # a checkpoint to resume from
                control.should_training_stop = True

    def on_train_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
        if state.best_model_checkpoint:
            self.best = {"best_checkpoint": state.best_model_checkpoint, "best_metric": state.best_metric,
                         "metric": args.metric_for_best_model}

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):  # noqa: ANN001, ANN201
        if not metrics:
            return
        row: dict[str, Any] = {"current_steps": state.global_step, "total_steps": state.max_steps}
        row.update({k: v for k, v in metrics.items() if k.startswith("eval_") and isinstance(v, (int, float))})
        self.evals.append(row)
        with self.log_file.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
        job_queue.add_metrics(self.db, self.job_id, state.global_step,
                               {k: v for k, v in row.items() if k != "current_steps"})

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001, ANN201
        # The trainer's closing summary (train_loss, train_runtime …) has no "loss": the runner
        # stores that one with the job's result instead. Evaluations arrive through on_evaluate.
        if not logs or "loss" not in logs:
            return
        step = state.global_step
        elapsed, remaining = self._times(state)
        row: dict[str, Any] = {
            "current_steps": step,
            "total_steps": state.max_steps,
            "loss": logs["loss"],
            "lr": logs.get("learning_rate"),
            "epoch": logs.get("epoch", state.epoch),
            "percentage": round(100 * step / state.max_steps, 2) if state.max_steps else 100.0,
            "elapsed_time": str(timedelta(seconds=int(elapsed))),
            "remaining_time": str(timedelta(seconds=int(remaining))),
        }
        if logs.get("grad_norm") is not None:
            row["grad_norm"] = logs["grad_norm"]
        if state.num_input_tokens_seen:
            row["total_tokens"] = state.num_input_tokens_seen
            row["throughput"] = round(state.num_input_tokens_seen / max(elapsed, 1e-9), 2)
        for key in (*_DPO_KEYS, *_RM_KEYS):
            if key in logs:
                row[key] = logs[key]
        if "rewards/accuracies" in logs:
            row["accuracy"] = logs["rewards/accuracies"]
        self.steps.append(row)
        self._last_loss = row["loss"]
        with self.log_file.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
        job_queue.add_metrics(self.db, self.job_id, step, {k: v for k, v in row.items() if k != "current_steps"})
        self._report(state)  # the trainer logs after on_step_end: report the fresh loss too

    def _times(self, state) -> tuple[float, float]:  # noqa: ANN001
        """Seconds since training began, and an estimate of the seconds left."""
        elapsed = time.monotonic() - self._start
        step = state.global_step
        return elapsed, (state.max_steps - step) * elapsed / step if step else 0.0

    def _report(self, state) -> None:  # noqa: ANN001
        if self.progress is None:
            return
        elapsed, remaining = self._times(state)
        self.progress(
            TrainProgress(
                step=state.global_step,
                total_steps=state.max_steps,
                epoch=float(state.epoch or 0.0),
                elapsed_s=elapsed,
                remaining_s=remaining,
                loss=self._last_loss,
            )
        )

    def summary(self) -> dict[str, Any]:
        """First and final logged loss, and the last DPO reward statistics when there are any."""
        if not self.steps:
            return {}
        first, last = self.steps[0], self.steps[-1]
        out: dict[str, Any] = {"loss_first": first["loss"], "loss_final": last["loss"]}
        out.update({k: last[k] for k in _DPO_KEYS if k in last})
        for key in _RM_KEYS:
            if key in last:
                out[key] = last[key]
        if self.evals:
            out.update({k: v for k, v in self.evals[-1].items() if k.startswith("eval_")})
        out.update(self.best)
        return out


def plot_loss(log_file: Path, png: Path) -> Path | None:
    """Draw the training loss (and evaluation loss, when evaluation ran) from ``trainer_log.jsonl``
    as a PNG; None when matplotlib is not installed or nothing was logged."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rows = [json.loads(line) for line in log_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    train = [r for r in rows if "loss" in r]
    evals = [r for r in rows if "eval_loss" in r]
    if not train and not evals:
        return None
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    if train:
        ax.plot([r["current_steps"] for r in train], [r["loss"] for r in train], label="training loss",
                marker="o" if len(train) < 30 else None)
    if evals:
        ax.plot([r["current_steps"] for r in evals], [r["eval_loss"] for r in evals], label="eval loss", marker="s")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(log_file.parent.name)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)
    return png
