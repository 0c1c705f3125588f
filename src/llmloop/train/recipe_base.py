"""What the three recipes share: where training starts, how models load, the trainer arguments.

The contract: a recipe gets a ``StartingModel`` (already resolved from a path, hub id or registry
version by ``models.sources.resolve``), the dataset rows and an output directory; it knows nothing about jobs, the store or the
registry. Loading and saving live here so that pt, sft and dpo treat LoRA, full fine-tuning and
"continue this version's adapter" the same way.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmloop.models.sources import Source
from llmloop.train.config import StageConfig, TrainingInputError  # noqa: F401 - re-exported: its home for callers
from llmloop.train.speed import VARLEN, SpeedPlan


log = logging.getLogger("llmloop.train")


# Where a run starts: full weights, plus an adapter to continue when there is one. Resolved from a
# version, alias, folder or hub id by the one model-reference resolver, ``models.sources.resolve``.
StartingModel = Source


@dataclass(frozen=True)
class RecipeOutput:
    path: Path  # the adapter directory (LoRA) or the full model directory
    metrics: dict[str, Any]  # the trainer's summary (train_loss, train_runtime, …)


def load_tokenizer(start: StartingModel, path: str | None = None):  # -> PreTrainedTokenizerBase
    from transformers import AutoTokenizer

    # The base's tokenizer, as the serving engine uses it: adapters never change the vocabulary here.
    source = path or start.base_model
    tokenizer = _loading(source, AutoTokenizer.from_pretrained, source)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _dtype(config: StageConfig):  # noqa: ANN202
    import torch

    # On GPU a LoRA base is frozen, so bf16 weights lose nothing; trained full weights stay fp32
    # (bf16 autocast does the speed-up) so small updates are not rounded away. CPU: fp32 throughout.
    if torch.cuda.is_available() and config.finetuning in ("lora", "qlora"):
        return torch.bfloat16
    return torch.float32


def load_policy(start: StartingModel, config: StageConfig, speed: SpeedPlan | None = None):  # -> PreTrainedModel | PeftModel
    """The model to train: a new adapter, the starting version's adapter (continued), or all weights."""
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM, set_seed

    set_seed(config.seed)  # before any adapter is initialised, so runs repeat exactly
    extra = speed.model_kwargs() if speed else {}
    if config.finetuning == "qlora":
        extra["quantization_config"] = quantization_config(config)
    model = _loading(start.base_model, AutoModelForCausalLM.from_pretrained, start.base_model, dtype=_dtype(config),
                     **extra)
    if config.finetuning == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=config.gradient_checkpointing)
    if start.adapter_path and config.finetuning in ("lora", "qlora") and config.adapter_start == "continue":
        log.info("continuing adapter %s (its own LoRA shape is kept; lora.* settings are ignored)", start.adapter_path)
        continued = PeftModel.from_pretrained(model, start.adapter_path, is_trainable=True)
        if speed:
            speed.apply_to_adapter(continued)
        return continued
    if start.adapter_path and config.finetuning == "qlora":
        raise TrainingInputError(
            "adapter_start=merge cannot merge an adapter into a quantised (qlora) model; use finetuning=lora, "
            "or adapter_start=continue"
        )
    merged = False
    if start.adapter_path and config.finetuning == "lora":
        log.info("merging adapter %s into the base; a new adapter trains on top", start.adapter_path)
        model = PeftModel.from_pretrained(model, start.adapter_path).merge_and_unload()
        merged = True
    elif start.adapter_path:
        log.info("merging adapter %s into the base for full fine-tuning", start.adapter_path)
        return PeftModel.from_pretrained(model, start.adapter_path).merge_and_unload()
    if config.finetuning in ("lora", "qlora"):
        lora = config.lora
        log.info("new LoRA adapter r=%d alpha=%d dropout=%s on %s", lora.r, lora.alpha, lora.dropout, lora.target_modules)
        peft_model = get_peft_model(
            model,
            LoraConfig(
                task_type="CAUSAL_LM",
                r=lora.r,
                lora_alpha=lora.alpha,
                lora_dropout=lora.dropout,
                target_modules=lora.target_modules,
            ),
        )
        peft_model.llmloop_merged_base = merged  # train_and_save keeps the merged base with the job
        if speed:
            speed.apply_to_adapter(peft_model)
        return peft_model
    log.info("full fine-tuning of %s", start.base_model)
    return model


def quantization_config(config: StageConfig):  # -> BitsAndBytesConfig
    """QLoRA's frozen base: NF4 (double quantisation, bf16 compute) or 8-bit; CUDA + bitsandbytes only."""
    import importlib.util

    import torch

    if not torch.cuda.is_available():
        raise TrainingInputError(
            "finetuning=qlora quantises the model with bitsandbytes, which needs a CUDA GPU and none is visible; "
            "use finetuning=lora on this machine"
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise TrainingInputError("finetuning=qlora needs bitsandbytes: pip install 'llmloop[gpu]' (or bitsandbytes)")
    from transformers import BitsAndBytesConfig

    if config.qlora_bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch.bfloat16)


def load_reference(start: StartingModel, config: StageConfig, speed: SpeedPlan | None = None):  # -> PreTrainedModel
    """A frozen copy of ``start`` (base plus its adapter, merged): DPO's reference."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    extra = speed.model_kwargs() if speed else {}
    model = _loading(start.base_model, AutoModelForCausalLM.from_pretrained, start.base_model, dtype=_dtype(config),
                     **extra)
    if start.adapter_path:
        model = PeftModel.from_pretrained(model, start.adapter_path).merge_and_unload()
    model.requires_grad_(False)
    return model.eval()


def _loading(ref: str, loader, *args: Any, **kwargs: Any):  # noqa: ANN001, ANN202
    try:
        return loader(*args, **kwargs)
    except OSError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TrainingInputError(
            f"cannot load model {ref!r}: {first}; check the path, or for a hub id that it exists "
            "and that HF_HUB_OFFLINE is not set"
        ) from e


def rows_to_dataset(rows: list[dict[str, Any]], columns: tuple[str, ...], what: str):  # -> datasets.Dataset
    """Keep only ``columns`` (rows may carry provenance and other extras) as a HF ``Dataset``."""
    from datasets import Dataset

    if not rows:
        raise TrainingInputError(f"dataset {what} has no rows")
    kept = []
    for i, row in enumerate(rows, start=1):
        missing = [c for c in columns if c not in row]
        if missing:
            raise TrainingInputError(
                f"dataset {what}, row {i}: missing {', '.join(missing)}; this stage needs rows with "
                f"{', '.join(columns)} (re-import the data as the right kind)"
            )
        kept.append({c: row[c] for c in columns})
    return Dataset.from_list(kept)


def trainer_arguments(config: StageConfig, out: Path, speed: SpeedPlan | None = None) -> dict[str, Any]:
    """Keyword arguments every TRL config gets, from the fields every stage config has."""
    import torch

    speed_args: dict[str, Any] = {}
    if speed is not None:
        # transformers refuses automatic batch sizing under DeepSpeed ZeRO-3: "auto" means off there.
        auto_bs = speed.auto_find_batch_size and not (
            config.speed.auto_find_batch_size is None and _zero_stage(config.accelerate_config) == 3)
        speed_args = dict(use_liger_kernel=speed.liger_kernel, auto_find_batch_size=auto_bs)

    cuda = torch.cuda.is_available()
    bf16 = cuda and torch.cuda.is_bf16_supported()
    args = dict(
        output_dir=str(out / "checkpoints"),
        learning_rate=config.learning_rate,
        num_train_epochs=config.num_train_epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.per_device_train_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        max_length=config.max_length,
        seed=config.seed,
        logging_steps=config.logging_steps,
        logging_first_step=True,  # the first loss is the "before" of every loss curve
        warmup_steps=config.warmup_ratio,  # transformers 5: a float below 1 is a ratio of all steps
        lr_scheduler_type=config.lr_scheduler_type,
        weight_decay=config.weight_decay,
        gradient_checkpointing=config.gradient_checkpointing,
        save_strategy=config.save_strategy,
        save_steps=config.save_steps,
        # TRL defaults bf16 to True even on CPU, where it is slow and lossy: decide it here.
        bf16=bf16,
        fp16=cuda and not bf16,
        use_cpu=not cuda,
        report_to=[],
        disable_tqdm=True,
        include_num_input_tokens_seen="non_padding",  # tokens/s in the metrics
        **speed_args,
    )
    args.update(eval_arguments(config))  # evaluation decides checkpointing when it is on
    return args


def split_for_eval(dataset, config: StageConfig, eval_rows: list[dict[str, Any]] | None = None,  # noqa: ANN001, ANN201
                   columns: tuple[str, ...] = ()):
    """(train, eval) datasets: ``eval.dataset`` rows when given, else a seeded ``eval.split`` of
    ``dataset``, else (dataset, None)."""
    ev = config.evaluation
    if eval_rows is not None:
        return dataset, rows_to_dataset(eval_rows, columns, ev.dataset or "eval")
    if ev.split <= 0:
        return dataset, None
    n_eval = max(1, round(len(dataset) * ev.split))
    if n_eval >= len(dataset):
        raise TrainingInputError(
            f"eval.split={ev.split} of {len(dataset)} rows leaves nothing to train on; lower eval.split"
        )
    parts = dataset.train_test_split(test_size=n_eval, seed=config.seed, shuffle=True)
    return parts["train"], parts["test"]


def eval_arguments(config: StageConfig) -> dict[str, Any]:
    """TRL/transformers arguments for evaluation every N steps and keeping the best checkpoint.

    Checkpoints are written at each evaluation, so the best one exists on disk and
    ``state.best_model_checkpoint`` names it (recorded with the job)."""
    ev = config.evaluation
    if not ev.enabled:
        return {"save_total_limit": config.save_total_limit}
    greater = ev.greater_is_better if ev.greater_is_better is not None else not ev.metric.endswith("loss")
    return dict(
        eval_strategy="steps",
        eval_steps=ev.steps,
        save_strategy="steps",
        save_steps=ev.steps,
        per_device_eval_batch_size=config.per_device_train_batch_size,
        metric_for_best_model=ev.metric,
        greater_is_better=greater,
        load_best_model_at_end=ev.load_best,
        save_total_limit=config.save_total_limit,
    )


def eval_callbacks(config: StageConfig) -> list:
    from transformers import EarlyStoppingCallback

    ev = config.evaluation
    if ev.enabled and ev.early_stopping_patience:
        return [EarlyStoppingCallback(ev.early_stopping_patience, ev.early_stopping_threshold)]
    return []


def last_complete_checkpoint(checkpoints: Path) -> str | None:
    """The newest ``checkpoint-N`` that was written to the end. transformers writes
    ``trainer_state.json`` last, so a process killed while saving leaves a directory without it (or
    with it cut short): that one is skipped, the one before is used."""
    if not checkpoints.is_dir():
        return None
    found = sorted((p for p in checkpoints.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
                   key=lambda p: int(p.name.split("-")[-1]), reverse=True)
    for path in found:
        try:
            json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            log.warning("skipping incomplete checkpoint %s (no readable trainer_state.json)", path)
            continue
        return str(path)
    return None


def _zero_stage(accelerate_config: str | None) -> int | None:
    if not accelerate_config or not Path(accelerate_config).is_file():
        return None
    import yaml

    data = yaml.safe_load(Path(accelerate_config).read_text(encoding="utf-8")) or {}
    return (data.get("deepspeed_config") or {}).get("zero_stage")


MERGED_BASE = "merged_base"


def merged_base(config: StageConfig, trainer) -> bool:  # noqa: ANN001
    """Whether this run trains a new adapter on a merged starting adapter (``adapter_start: merge``)."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    return config.finetuning == "lora" and bool(getattr(model, "llmloop_merged_base", False))


def train_and_save(trainer, config: StageConfig, out: Path, resume: bool = False) -> RecipeOutput:  # noqa: ANN001
    """Run ``trainer`` without console output and save the adapter or the full model (+ tokenizer).

    ``resume``: continue from the newest checkpoint under ``out/checkpoints`` (optimizer, scheduler,
    RNG and step restored by transformers' ``resume_from_checkpoint``) when there is one.
    """
    from transformers import PrinterCallback, ProgressCallback

    # Our callbacks record progress; the trainer's own would print to the console.
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    args = trainer.args
    log.info("training on %s (bf16=%s, fp16=%s), weights in %s", args.device, args.bf16, args.fp16, trainer.model.dtype)
    checkpoint = last_complete_checkpoint(Path(args.output_dir)) if resume else None
    log.info("resuming from %s", checkpoint) if checkpoint else None
    output = trainer.train(resume_from_checkpoint=checkpoint)
    model = trainer.model
    if getattr(model.config, "_attn_implementation", None) == VARLEN:
        # The saved model must load anywhere: our kernel name is for padding-free training only.
        try:
            model.set_attn_implementation("sdpa")
        except (AttributeError, ValueError) as e:  # older transformers: the name is not saved anyway
            log.warning("could not switch attention back to sdpa before saving: %s", e)
    if merged_base(config, trainer):
        # adapter_start=merge: the new adapter sits on base + the old adapter; keep that base with the job.
        base_dir = out / MERGED_BASE
        unwrapped = trainer.accelerator.unwrap_model(trainer.model)
        import copy

        copy.deepcopy(unwrapped).unload().save_pretrained(str(base_dir))
        if trainer.processing_class is not None:
            trainer.processing_class.save_pretrained(str(base_dir))
        log.info("saved the merged starting model to %s", base_dir)
    dest = out / ("adapter" if config.finetuning != "full" else "model")
    trainer.save_model(str(dest))  # an adapter for a PeftModel, else full weights; tokenizer too
    log.info("saved %s to %s", "adapter" if config.finetuning != "full" else "model", dest)
    return RecipeOutput(path=dest, metrics={**output.metrics, "global_step": output.global_step})
