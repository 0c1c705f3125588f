"""Reward model (stage rm, T4): preference pairs → a model that scores answers.

A sequence-classification head (one logit) on the starting model, trained by TRL's
``RewardTrainer`` with the pairwise loss ``-log σ(r(chosen) - r(rejected))``; the logged
``accuracy`` is the share of pairs it ranks right (E9 measures more). With LoRA the new head is
trained in full alongside the adapter (``modules_to_save``) and saved with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmloop.train.recipe_base import (
    RecipeOutput,
    StartingModel,
    TrainingInputError,
    _dtype,
    _loading,
    eval_callbacks,
    load_tokenizer,
    rows_to_dataset,
    split_for_eval,
    train_and_save,
    trainer_arguments,
)
from llmloop.train.config import RMConfig
from llmloop.train.speed import plan

COLUMNS = ("prompt", "chosen", "rejected")


def load_scorer(start: StartingModel, config: RMConfig, pad_token_id: int):  # noqa: ANN201
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForSequenceClassification, set_seed

    set_seed(config.seed)
    if config.finetuning == "qlora":
        raise TrainingInputError("stage rm supports finetuning lora or full; set finetuning=lora")
    model = _loading(start.base_model, AutoModelForSequenceClassification.from_pretrained, start.base_model,
                     num_labels=1, dtype=_dtype(config))
    model.config.pad_token_id = pad_token_id
    if start.adapter_path:  # a chat version with an adapter: score with that version's weights
        model = PeftModel.from_pretrained(model, start.adapter_path).merge_and_unload()
    if config.finetuning == "full":
        return model
    lora = config.lora
    return get_peft_model(model, LoraConfig(task_type="SEQ_CLS", r=lora.r, lora_alpha=lora.alpha,
                                            lora_dropout=lora.dropout, target_modules=lora.target_modules,
                                            modules_to_save=["score"]))


def run(config: RMConfig, start: StartingModel, rows: list[dict[str, Any]], out: Path, callbacks: list,
        resume: bool = False, eval_rows: list[dict[str, Any]] | None = None) -> RecipeOutput:
    from trl import RewardConfig, RewardTrainer

    dataset = rows_to_dataset(rows, COLUMNS, config.dataset)
    train, evaluation = split_for_eval(dataset, config, eval_rows, COLUMNS)
    speed = plan(config.speed, "rm")
    tokenizer = load_tokenizer(start, config.tokenizer)
    model = load_scorer(start, config, tokenizer.pad_token_id)
    args = RewardConfig(**trainer_arguments(config, out, speed), center_rewards_coefficient=config.center_rewards_coefficient)
    trainer = RewardTrainer(model=model, args=args, train_dataset=train, eval_dataset=evaluation,
                            processing_class=tokenizer, callbacks=callbacks + eval_callbacks(config))
    return train_and_save(trainer, config, out, resume)
