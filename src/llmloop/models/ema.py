"""M4, per-step EMA: a ``transformers.TrainerCallback`` that keeps an exponential moving average of
the trainable weights during any (TRL) training run and saves it beside the run's output.

``models average --method ema`` averages saved checkpoints after the fact; this callback is the
in-training form: after every optimizer step e ← d·e + (1−d)·θ (float32 shadow copies of the
trainable parameters only — for a LoRA run, just the adapter). At the end of training the shadow
weights are swapped into the model, ``save_pretrained`` writes them (an adapter for a PeftModel, a
full model otherwise) to ``out_dir``, and the trained weights are swapped back, so the trainer's own
save is unaffected. The train recipes take it through ``callbacks=[EMACallback(...)]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import TrainerCallback


class EMACallback(TrainerCallback):
    def __init__(self, decay: float = 0.999, out_dir: str | Path | None = None, tokenizer: Any = None) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.out_dir = Path(out_dir) if out_dir else None
        self.tokenizer = tokenizer
        self.shadow: dict[str, Any] = {}
        self.updates = 0

    @staticmethod
    def _trainable(model) -> dict[str, Any]:  # noqa: ANN001
        return {n: p for n, p in model.named_parameters() if p.requires_grad}

    def on_train_begin(self, args, state, control, model=None, **kwargs):  # noqa: ANN001, ANN201
        self.shadow = {n: p.detach().float().clone() for n, p in self._trainable(model).items()}

    def on_step_end(self, args, state, control, model=None, **kwargs):  # noqa: ANN001, ANN201
        import torch

        with torch.no_grad():
            for n, p in self._trainable(model).items():
                self.shadow[n].mul_(self.decay).add_(p.detach().float(), alpha=1 - self.decay)
        self.updates += 1

    def on_train_end(self, args, state, control, model=None, **kwargs):  # noqa: ANN001, ANN201
        if self.out_dir is not None and model is not None:
            self.save(model, self.out_dir)

    def save(self, model, out_dir: str | Path) -> Path:  # noqa: ANN001
        """Write the EMA weights with ``model.save_pretrained`` (the model keeps its own weights)."""
        import torch

        params = self._trainable(model)
        with torch.no_grad():
            kept = {n: p.detach().clone() for n, p in params.items()}
            for n, p in params.items():
                p.copy_(self.shadow[n].to(p.dtype))
            try:
                model.save_pretrained(str(out_dir))
            finally:
                for n, p in params.items():
                    p.copy_(kept[n])
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(str(out_dir))
        return Path(out_dir)
