"""Continued pre-training (stage pt, T1): domain text → a completion model.

Rows are ``{"text": …}``, each ended with the tokenizer's EOS. With ``packing`` (the default) the
documents are concatenated and cut into ``max_length`` blocks, as LLaMA-Factory's pt stage does:
no padding and no text dropped, and every token is learned. (TRL's best-fit packing would keep
documents apart, but it flattens each batch into one padding-free sequence, which is efficient only
with flash-attention's variable-length kernels; plain blocks suit every attention implementation,
CPU included.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmloop.train.recipe_base import (
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
from llmloop.train.config import PTConfig
from llmloop.train.speed import plan


COLUMNS = ("text",)


def run(config: PTConfig, start: StartingModel, rows: list[dict[str, Any]], out: Path, callbacks: list,
        resume: bool = False, eval_rows: list[dict[str, Any]] | None = None) -> RecipeOutput:
    from trl import SFTConfig as TRLSFTConfig
    from trl import SFTTrainer

    dataset = rows_to_dataset(rows, COLUMNS, config.dataset)
    train, evaluation = split_for_eval(dataset, config, eval_rows, COLUMNS)
    speed = plan(config.speed, "pt")
    tokenizer = load_tokenizer(start, config.tokenizer)
    model = load_policy(start, config, speed)
    # Padding-free (GPU): best-fit packing keeps documents whole and apart (varlen attention);
    # otherwise plain max_length blocks, as LLaMA-Factory's pt stage cuts them.
    strategy = "bfd" if speed.padding_free else "wrapped"
    args = TRLSFTConfig(
        **trainer_arguments(config, out, speed),
        dataset_text_field="text",
        packing=config.packing or speed.padding_free,
        packing_strategy=strategy,
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=train, eval_dataset=evaluation,
                         processing_class=tokenizer, callbacks=callbacks + eval_callbacks(config))
    return train_and_save(trainer, config, out, resume)
