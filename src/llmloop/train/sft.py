"""Supervised fine-tuning (stage sft, T2): conversations → a chat model.

Rows are ``{"messages": [...]}``, rendered with the model's chat template. With
``assistant_only_loss`` only the assistant turns (and their end-of-turn token, so the model learns
to stop) are learned. TRL finds those turns through ``{% generation %}`` markers in the template,
which the tiny model's ChatML template has; real models' templates (SmolLM2, Qwen2.5, Llama 3) do
not. Their rows are handed to TRL as conversational prompt-completion pairs instead — one pair per
assistant turn, the conversation before it as the prompt — so TRL's completion-only loss learns
exactly the assistant turns with the model's own, unchanged template.
"""

from __future__ import annotations

import logging
import re
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
from llmloop.train.config import SFTConfig
from llmloop.train.speed import plan

_GENERATION_MARKER = re.compile(r"{%-?\s*generation\s*-?%}")


COLUMNS = ("messages",)
log = logging.getLogger("llmloop.train")


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
    assistant_only = config.assistant_only_loss
    if assistant_only and not has_generation_markers(tokenizer):
        log.info("the chat template has no {%% generation %%} markers: each assistant turn becomes a "
                 "prompt-completion pair, so only assistant turns are learned")
        dataset = as_prompt_completion(dataset)
        eval_dataset = as_prompt_completion(eval_dataset) if eval_dataset is not None else None
        assistant_only = False  # TRL's completion_only_loss (its default for these rows) does the masking
    args = TRLSFTConfig(**trainer_arguments(config, out, speed), assistant_only_loss=assistant_only, **packing)
    return SFTTrainer(model=model, args=args, train_dataset=dataset, eval_dataset=eval_dataset,
                      processing_class=tokenizer, callbacks=callbacks)


def has_generation_markers(tokenizer) -> bool:  # noqa: ANN001
    template = getattr(tokenizer, "chat_template", None) or ""
    return bool(_GENERATION_MARKER.search(template if isinstance(template, str) else str(template)))


def as_prompt_completion(dataset):  # noqa: ANN001, ANN201 - datasets.Dataset in and out
    """``messages`` rows → ``prompt``/``completion`` rows, one per assistant turn (TRL's conversational
    prompt-completion form: the prompt is every message before that turn)."""

    def split(batch: dict[str, list]) -> dict[str, list]:
        prompts, completions = [], []
        for messages in batch["messages"]:
            for i, m in enumerate(messages):
                if m["role"] == "assistant" and i > 0:
                    prompts.append(messages[:i])
                    completions.append([m])
        return {"prompt": prompts, "completion": completions}

    return dataset.map(split, batched=True, remove_columns=dataset.column_names)
