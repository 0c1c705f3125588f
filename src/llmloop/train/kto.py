"""KTO (stage kto, T7): unpaired feedback (thumbs up/down) → a better chat model.

Rows are ``{"prompt": [messages], "completion": [assistant message], "label": bool}`` (TRL's
conversational unpaired-preference format). Reference model as in DPO (``train/dpo.py``): the
adapter-disabled model for a new adapter, the frozen starting version when its adapter is continued,
or ``ref_model``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmloop.train.recipe_base import (
    RecipeOutput,
    StartingModel,
    eval_callbacks,
    load_policy,
    load_reference,
    load_tokenizer,
    rows_to_dataset,
    split_for_eval,
    train_and_save,
    trainer_arguments,
)
from llmloop.train.config import KTOConfig
from llmloop.train.speed import plan

COLUMNS = ("prompt", "completion", "label")


def run(config: KTOConfig, start: StartingModel, rows: list[dict[str, Any]], out: Path, callbacks: list,
        resume: bool = False, eval_rows: list[dict[str, Any]] | None = None,
        reference: StartingModel | None = None) -> RecipeOutput:
    from trl import KTOConfig as TRLKTOConfig
    from trl import KTOTrainer

    dataset = rows_to_dataset(rows, COLUMNS, config.dataset)
    train, evaluation = split_for_eval(dataset, config, eval_rows, COLUMNS)
    speed = plan(config.speed, "kto")
    tokenizer = load_tokenizer(start, config.tokenizer)
    model = load_policy(start, config, speed)
    if reference is not None:
        ref_model = load_reference(reference, config, speed)
    elif start.adapter_path and config.finetuning != "full" and config.adapter_start == "continue":
        ref_model = load_reference(start, config, speed)
    else:
        ref_model = None
    args = TRLKTOConfig(**trainer_arguments(config, out, speed), beta=config.beta,
                        desirable_weight=config.desirable_weight, undesirable_weight=config.undesirable_weight)
    trainer = KTOTrainer(model=model, ref_model=ref_model, args=args, train_dataset=train, eval_dataset=evaluation,
                         processing_class=tokenizer, callbacks=callbacks + eval_callbacks(config))
    return train_and_save(trainer, config, out, resume)
