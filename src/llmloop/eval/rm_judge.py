"""A reward model (T4 output) as a judge: score each answer in its conversation, higher wins.

The model is a Hugging Face sequence-classification model with one output (what TRL's
RewardTrainer saves), or a PEFT adapter on one (a folder with ``adapter_config.json``). The
conversation plus the answer is rendered with the tokenizer's chat template when it has one, so the
reward model sees the same text it was trained on. Rewards within ``tie_margin`` (default 1e-5: batched float arithmetic differs by ~1e-8 for the same text) tie.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from llmloop.eval import EvalInputError
from llmloop.eval.verdict import Verdict


class RewardModelJudge:
    def __init__(self, path: str | Path, device: str = "cpu", tie_margin: float = 1e-5, max_length: int = 1024) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = Path(path)
        if not path.is_dir():
            raise EvalInputError(f"reward model {path}: not a folder (pass a saved reward model or its LoRA adapter)")
        if (path / "adapter_config.json").exists():
            from peft import AutoPeftModelForSequenceClassification

            model = AutoPeftModelForSequenceClassification.from_pretrained(path, num_labels=1)
        else:
            model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
        self.model = model.to(device).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.device, self.tie_margin, self.max_length = device, tie_margin, max_length
        self.name = f"rm:{path}"

    def _text(self, messages: list[dict[str, Any]], answer: str) -> str:
        convo = [*messages, {"role": "assistant", "content": answer}]
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(convo, tokenize=False)
        return "\n".join(f"{m['role']}: {m['content']}" for m in convo)

    def rewards(self, messages: list[dict[str, Any]], answers: list[str]) -> list[float]:
        import torch

        enc = self.tokenizer([self._text(messages, a) for a in answers], return_tensors="pt", padding=True,
                             truncation=True, max_length=self.max_length).to(self.device)
        with torch.no_grad():
            return self.model(**enc).logits[:, 0].float().tolist()

    def judge(self, messages: list[dict[str, Any]], answer_x: str, answer_y: str) -> Verdict:
        rx, ry = self.rewards(messages, [answer_x, answer_y])
        winner = "tie" if abs(rx - ry) <= self.tie_margin else "x" if rx > ry else "y"
        return Verdict(winner, f"reward {rx:.3f} vs {ry:.3f}")  # type: ignore[arg-type]

    def score_one(self, messages: list[dict[str, Any]], answer: str, reference: str | None = None):  # noqa: ANN201
        """Pointwise (``eval run --judge rm:…``): the answer's reward; the reference is not shown to a reward model."""
        from llmloop.eval.llm_judge import PointwiseResult

        try:
            (reward,) = self.rewards(messages, [answer])
        except Exception as e:  # noqa: BLE001 - one bad sample (e.g. an over-long text) fails alone
            return PointwiseResult(str(messages[-1].get("content", "")), answer, None, f"{type(e).__name__}: {e}")
        return PointwiseResult(str(messages[-1].get("content", "")), answer, RewardScore(reward=reward))


class RewardScore(BaseModel):
    reward: float
