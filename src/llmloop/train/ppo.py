"""Stage ppo with this engine: there is no recipe to run. TRL 1.16 removed its PPO trainer (GRPO and
RLOO replace it upstream), so ``llmloop train ppo`` runs only with ``--backend llamafactory``
(train/llamafactory.py); this recipe says so, as a user error, when a job reaches it."""

from __future__ import annotations

from typing import Any

from llmloop.train.recipe_base import RecipeOutput, TrainingInputError


def run(config: Any, *args: Any, **kwargs: Any) -> RecipeOutput:  # noqa: ARG001 - the recipes' signature
    raise TrainingInputError(
        "stage ppo: TRL 1.16 (this engine) has no PPO trainer any more; run it with --backend llamafactory "
        "(LLaMA-Factory's ppo stage, with reward_model from `llmloop train rm`), or use `llmloop train grpo`"
    )
