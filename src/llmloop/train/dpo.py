"""Preference optimisation (stage dpo, T3/T7): preference pairs → a better chat model.

Rows are TRL's conversational preference format: ``{"prompt": [messages], "chosen":
[assistant message], "rejected": [assistant message]}``. ``method`` picks the TRL trainer: DPO
(``DPOTrainer``, any of its ``loss_type``\\s) or SimPO (TRL's experimental ``CPOTrainer``,
reference-free). ORPO is a stage of its own (train/orpo.py, ``llmloop train orpo``).

The reference model (DPO only), T8:
- ``ref_model`` given: that model, loaded frozen.
- a new adapter on a full model: no second copy; TRL scores the reference by disabling the adapter.
- a continued adapter (DPO from the SFT version's adapter, "stacked"): a frozen copy of the
  starting version (base + its adapter, merged), so the loss measures the move away from the
  version training started from. ``finetuning: full`` from an adapter version merges the adapter
  into the weights first (the "merged" option).

Speed (GPU): DPO batches are TRL's padded chosen+rejected rows, run padding-free underneath
(train/unpad.py: real tokens only, one flattened row, the varlen attention kernel), so length
grouping is not needed; SimPO (TRL's experimental CPO trainer) trains padded.
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
from llmloop.train.config import DPOConfig
from llmloop.train.speed import add_length_column, cuda_available, grouping_arguments, plan
from llmloop.train.unpad import unpad_backbone

COLUMNS = ("prompt", "chosen", "rejected")


def run(config: DPOConfig, start: StartingModel, rows: list[dict[str, Any]], out: Path, callbacks: list,
        resume: bool = False, eval_rows: list[dict[str, Any]] | None = None,
        reference: StartingModel | None = None) -> RecipeOutput:
    dataset = rows_to_dataset(rows, COLUMNS, config.dataset)
    train, evaluation = split_for_eval(dataset, config, eval_rows, COLUMNS)
    trainer = build_trainer(config, start, train, out, callbacks + eval_callbacks(config), evaluation, reference)
    return train_and_save(trainer, config, out, resume)


def build_trainer(config: DPOConfig, start: StartingModel, dataset, out: Path, callbacks: list,  # noqa: ANN001
                  eval_dataset=None, reference: StartingModel | None = None):  # noqa: ANN001, ANN201
    """The configured preference trainer (also what benchmarks/train_throughput.py times)."""
    # SimPO runs TRL's experimental CPO trainer, which trains padded: planned under its own name.
    speed = plan(config.speed, "dpo" if config.method == "dpo" else config.method)
    tokenizer = load_tokenizer(start, config.tokenizer)
    model = load_policy(start, config, speed)
    common = dict(model=model, train_dataset=dataset, eval_dataset=eval_dataset, processing_class=tokenizer,
                  callbacks=callbacks)
    base_args = trainer_arguments(config, out, speed)
    if config.method == "simpo":
        from trl.experimental.cpo import CPOConfig, CPOTrainer

        args = CPOConfig(**base_args, beta=config.beta, loss_type="simpo", cpo_alpha=0.0, simpo_gamma=config.simpo_gamma)
        return CPOTrainer(args=args, **common)

    from trl import DPOConfig as TRLDPOConfig
    from trl import DPOTrainer

    if reference is not None:
        ref_model = load_reference(reference, config, speed)
    elif start.adapter_path and config.finetuning != "full" and config.adapter_start == "continue":
        ref_model = load_reference(start, config, speed)
    else:
        ref_model = None  # the policy with its adapter disabled (LoRA), or TRL's own frozen copy (full)
    losses, weights = [config.loss_type], [1.0]
    if config.sft_weight > 0:
        losses, weights = [*losses, "sft"], [*weights, config.sft_weight]
    precompute = config.precompute_ref_log_probs
    if precompute is None:  # measured: for one epoch, precomputing costs more than it saves (docs/benchmarks.md)
        precompute = cuda_available() and config.num_train_epochs > 1 and config.max_steps == -1
    if speed.padding_free:
        # Before the trainer exists: TRL precomputes reference log-probs inside its constructor.
        unpad_backbone(model)
        if ref_model is not None:
            unpad_backbone(ref_model)
    args = TRLDPOConfig(**base_args, **grouping_arguments(speed), beta=config.beta, loss_type=losses,
                        loss_weights=weights, precompute_ref_log_probs=precompute)
    trainer = DPOTrainer(ref_model=ref_model, args=args, **common)
    if speed.group_by_length:
        add_length_column(trainer, ("chosen_ids", "rejected_ids"))
    return trainer
