"""ORPO (stage orpo, T7): preference pairs → a better chat model, without a reference model.

Rows are TRL's conversational preference format: ``{"prompt": [messages], "chosen": [assistant
message], "rejected": [assistant message]}`` (the kind ``preference``, as for dpo). The loss is TRL's
experimental ``ORPOTrainer``'s (Hong et al. 2024): the negative log-likelihood of the chosen answer
minus ``beta`` (ORPO's λ) times the log-sigmoid of the log odds ratio of chosen over rejected. No
reference model is loaded, so a round costs one model's memory and one forward pass per answer.

The model to train comes from ``train.recipe_base.load_policy`` like every stage's: a new PEFT LoRA adapter
on a full-weight version, the starting version's adapter continued (the loop's "train from the
production adapter"), or ``adapter_start: merge`` / full fine-tuning. TRL 1.16's ``ORPOConfig`` takes
``max_length`` (prompt + answer) and ``processing_class=``; it has no ``max_prompt_length``.

``llmloop train dpo --set method=orpo`` runs the same trainer through the dpo stage; this stage is the
one the loop's ``train.stage: orpo`` names, with ORPO's own defaults (``ORPOConfig`` in train/config.py).
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
from llmloop.train.config import ORPOConfig
from llmloop.train.speed import plan

COLUMNS = ("prompt", "chosen", "rejected")


def run(config: ORPOConfig, start: StartingModel, rows: list[dict[str, Any]], out: Path, callbacks: list,
        resume: bool = False, eval_rows: list[dict[str, Any]] | None = None,
        reference: StartingModel | None = None) -> RecipeOutput:  # reference: the recipes' signature; unused
    from trl.experimental.orpo import ORPOConfig as TRLORPOConfig
    from trl.experimental.orpo import ORPOTrainer

    dataset = rows_to_dataset(rows, COLUMNS, config.dataset)
    train, evaluation = split_for_eval(dataset, config, eval_rows, COLUMNS)
    speed = plan(config.speed, "orpo")
    tokenizer = load_tokenizer(start, config.tokenizer)
    model = load_policy(start, config, speed)  # a PEFT LoRA adapter (new or continued), or all weights
    args = TRLORPOConfig(**trainer_arguments(config, out, speed), beta=config.beta)
    trainer = ORPOTrainer(model=model, args=args, train_dataset=train, eval_dataset=evaluation,
                          processing_class=tokenizer, callbacks=callbacks + eval_callbacks(config))
    return train_and_save(trainer, config, out, resume)
