"""GRPO (stage grpo, T6): prompts + reward functions → a model that answers better.

Rows are ``{"prompt": [messages ending with the user], "solution"?: str}``. For each prompt the
policy samples ``num_generations`` answers; the reward functions (``train/rewards.py``: built-ins
or ``module:function``) score them; TRL's ``GRPOTrainer`` reinforces the answers above their
group's mean, with a KL penalty ``beta`` towards the adapter-disabled (reference) model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmloop.train.recipe_base import (
    RecipeOutput,
    StartingModel,
    TrainingInputError,
    eval_callbacks,
    load_policy,
    load_tokenizer,
    rows_to_dataset,
    split_for_eval,
    train_and_save,
    trainer_arguments,
)
from llmloop.train.config import GRPOConfig
from llmloop.train.rewards import load_reward
from llmloop.train.speed import plan


def run(config: GRPOConfig, start: StartingModel, rows: list[dict[str, Any]], out: Path, callbacks: list,
        resume: bool = False, eval_rows: list[dict[str, Any]] | None = None) -> RecipeOutput:
    from trl import GRPOConfig as TRLGRPOConfig
    from trl import GRPOTrainer

    needs_solution = "answer_match" in config.rewards
    columns = ("prompt", "solution") if needs_solution else ("prompt",)
    if needs_solution and rows and "solution" not in rows[0]:
        raise TrainingInputError(
            f"dataset {config.dataset}: the answer_match reward needs a 'solution' in every row; import prompts "
            "with their reference answers or drop answer_match from rewards"
        )
    dataset = rows_to_dataset(rows, columns, config.dataset)
    train, evaluation = split_for_eval(dataset, config, eval_rows, columns)
    try:
        funcs = [load_reward(name, config.target_length) for name in config.rewards]
    except ValueError as e:
        raise TrainingInputError(f"rewards: {e}") from e
    if config.reward_weights is not None and len(config.reward_weights) != len(funcs):
        raise TrainingInputError(
            f"reward_weights has {len(config.reward_weights)} values for {len(funcs)} reward functions; give one each"
        )
    speed = plan(config.speed, "grpo")
    tokenizer = load_tokenizer(start, config.tokenizer)
    model = load_policy(start, config, speed)
    base = trainer_arguments(config, out, speed)
    base.pop("max_length")  # GRPO bounds the sampled part instead (max_completion_length)
    args = TRLGRPOConfig(
        **base, num_generations=config.num_generations, max_completion_length=config.max_completion_length,
        temperature=config.temperature, beta=config.beta, reward_weights=config.reward_weights,
    )
    trainer = GRPOTrainer(model=model, reward_funcs=funcs, args=args, train_dataset=train, eval_dataset=evaluation,
                          processing_class=tokenizer, callbacks=callbacks + eval_callbacks(config))
    return train_and_save(trainer, config, out, resume)
