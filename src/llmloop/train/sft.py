"""Supervised fine-tuning (stage sft, T2): conversations → a chat model.

Rows are ``{"messages": [...]}``, rendered with the model's chat template. With
``assistant_only_loss`` only the assistant turns (and their end-of-turn token, so the model learns
to stop) are learned; that needs ``{% generation %}`` markers in the template, which the tiny
model's ChatML template has.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmloop.train.common import (
    RecipeOutput,
    StartingModel,
    eval_callbacks,
    load_policy,
    load_tokenizer,
    rows_to_dataset,
    split_for_eval,
    train_and_save,
    trainer_arguments,
)
from llmloop.train.config import SFTConfig
from llmloop.train.speed import plan


COLUMNS = ("messages",)


def run(config: SFTConfig, start: StartingModel, rows: list[dict[str, Any]], out: Path, callbacks: list,
        resume: bool = False, eval_rows: list[dict[str, Any]] | None = None) -> RecipeOutput:
    dataset = rows_to_dataset(rows, COLUMNS, config.dataset)
    train, evaluation = split_for_eval(dataset, config, eval_rows, COLUMNS)
    trainer = build_trainer(config, start, train, out, callbacks + eval_callbacks(config), evaluation)
    return train_and_save(trainer, config, out, resume)


def build_trainer(config: SFTConfig, start: StartingModel, dataset, out: Path, callbacks: list,  # noqa: ANN001
                  eval_dataset=None):  # noqa: ANN001, ANN201
    """The configured ``SFTTrainer`` (also what benchmarks/train_throughput.py times).

    Padding-free runs (GPU) use TRL's best-fit-decreasing packing: whole examples are packed into
    rows of at most ``max_length`` tokens and flattened, the varlen kernel keeps them apart.
    """
    from trl import SFTConfig as TRLSFTConfig
    from trl import SFTTrainer

    speed = plan(config.speed, "sft")
    tokenizer = load_tokenizer(start, config.tokenizer)
    model = load_policy(start, config, speed)
    packing = dict(packing=True, packing_strategy="bfd") if speed.padding_free else {}
    args = TRLSFTConfig(**trainer_arguments(config, out, speed), assistant_only_loss=config.assistant_only_loss, **packing)
    return SFTTrainer(model=model, args=args, train_dataset=dataset, eval_dataset=eval_dataset,
                      processing_class=tokenizer, callbacks=callbacks)
