"""LLaMA-Factory interop (T9): our stage config → LLaMA-Factory's train YAML + ``dataset_info.json``
+ data files; and ``--backend llamafactory``, which runs the user's ``llamafactory-cli`` as the
job's process and ingests its ``trainer_log.jsonl`` into the job's metrics.

The YAML uses LLaMA-Factory's own argument names (``src/llamafactory/hparams/*_args.py`` plus
transformers' ``Seq2SeqTrainingArguments``); tests check every key against that list. What has no
LLaMA-Factory counterpart is refused with the reason (GRPO; TRL-only DPO losses) rather than
silently dropped. The data files come from the data area's exporter (``data.export``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from llmloop.store import Database
from llmloop.store import job_queue
from llmloop.store.records import Job
from llmloop.models.sources import resolve as resolve_source
from llmloop.train.recipe_base import TrainingInputError
from llmloop.train.config import CONFIGS, StageConfig

log = logging.getLogger("llmloop.train")

YAML_NAME = "llamafactory.yaml"
DATA_DIR = "data"
ENV_CLI = "LLMLOOP_LLAMAFACTORY_CLI"
LF_DPO_LOSSES = ("sigmoid", "hinge", "ipo")  # LLaMA-Factory's pref_loss values shared with TRL's DPO


@dataclass(frozen=True)
class Export:
    yaml_path: Path
    dataset_info: Path
    data_files: tuple[Path, ...]
    arguments: dict[str, Any]


def arguments(stage: str, config: StageConfig, base_model: str, adapter: str | None, dataset: str,
              eval_dataset: str | None, output_dir: str) -> dict[str, Any]:
    """The LLaMA-Factory arguments equivalent to ``config``."""
    if stage == "grpo":
        raise TrainingInputError("LLaMA-Factory has no GRPO stage; train grpo with this engine (--backend trl)")
    lf_stage = "dpo" if stage == "orpo" else stage  # LLaMA-Factory runs ORPO as its dpo stage, pref_loss orpo
    out: dict[str, Any] = {"model_name_or_path": base_model}
    if adapter and config.finetuning != "full":
        out["adapter_name_or_path"] = adapter  # continued, as our engine continues it
    out.update(stage=lf_stage, do_train=True,
               finetuning_type="full" if config.finetuning == "full" else "lora")
    if config.finetuning == "qlora":
        out["quantization_bit"] = config.qlora_bits
    if config.finetuning != "full":
        targets = config.lora.target_modules
        out.update(lora_rank=config.lora.r, lora_alpha=config.lora.alpha, lora_dropout=config.lora.dropout,
                   lora_target="all" if targets == "all-linear" else ",".join(
                       [targets] if isinstance(targets, str) else targets))
    out.update(dataset=dataset, dataset_dir=DATA_DIR, template=config.llamafactory.template,
               cutoff_len=config.max_length)
    if stage == "pt":
        out["packing"] = config.packing
    if stage == "sft":
        out["train_on_prompt"] = not config.assistant_only_loss
    if stage == "dpo":
        if config.method == "simpo":
            out["pref_loss"] = config.method
        elif config.loss_type in LF_DPO_LOSSES:
            out["pref_loss"] = config.loss_type
        else:
            raise TrainingInputError(
                f"loss_type {config.loss_type!r} has no LLaMA-Factory counterpart (it has "
                f"{', '.join(LF_DPO_LOSSES)}, simpo); change loss_type or use --backend trl"
            )
        out.update(pref_beta=config.beta, pref_ftx=config.sft_weight)
        if config.method == "simpo":
            out["simpo_gamma"] = config.simpo_gamma
        if config.ref_model:
            out["ref_model"] = config.ref_model
    if stage == "orpo":
        out.update(pref_loss="orpo", pref_beta=config.beta)
    if stage == "kto":
        out.update(pref_beta=config.beta, kto_chosen_weight=config.desirable_weight,
                   kto_rejected_weight=config.undesirable_weight)
        if config.ref_model:
            out["ref_model"] = config.ref_model
    if stage == "ppo":
        if not config.reward_model:
            raise TrainingInputError("stage ppo needs reward_model (the output directory of `llmloop train rm`)")
        reward_is_adapter = (Path(config.reward_model) / "adapter_config.json").is_file()
        out.update(reward_model=config.reward_model, reward_model_type="lora" if reward_is_adapter else "full",
                   max_new_tokens=config.max_new_tokens)
    out.update(
        output_dir=output_dir, overwrite_output_dir=True, plot_loss=True, report_to="none",
        learning_rate=config.learning_rate, num_train_epochs=config.num_train_epochs,
        per_device_train_batch_size=config.per_device_train_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps, lr_scheduler_type=config.lr_scheduler_type,
        warmup_ratio=config.warmup_ratio, weight_decay=config.weight_decay, logging_steps=config.logging_steps,
        seed=config.seed, bf16=True,
    )
    if config.max_steps > 0:
        out["max_steps"] = config.max_steps
    ev = config.evaluation
    if ev.enabled:
        if eval_dataset:
            out["eval_dataset"] = eval_dataset
        else:
            out["val_size"] = ev.split
        out.update(eval_strategy="steps", eval_steps=ev.steps, save_strategy="steps", save_steps=ev.steps,
                   per_device_eval_batch_size=config.per_device_train_batch_size, metric_for_best_model=ev.metric,
                   load_best_model_at_end=ev.load_best)
        if ev.early_stopping_patience:
            out["early_stopping_steps"] = ev.early_stopping_patience
    else:
        out["save_strategy"] = config.save_strategy
        if config.save_strategy == "steps":
            out["save_steps"] = config.save_steps
    if config.save_total_limit:
        out["save_total_limit"] = config.save_total_limit
    if config.speed.liger_kernel:
        out["enable_liger_kernel"] = True
    return out


def export(db: Database, stage: str, config: StageConfig, out_dir: Path, output_dir: str | None = None) -> Export:
    """Write ``llamafactory.yaml``, ``data/dataset_info.json`` and the data files under ``out_dir``."""
    from llmloop.data.export import export_version
    from llmloop.data.versions import resolve
    from llmloop.train.job_runner import DATASET_KIND

    if not isinstance(config, CONFIGS[stage]):
        raise TypeError(f"stage {stage!r} needs a {CONFIGS[stage].__name__}")
    if stage == "grpo":
        raise TrainingInputError("LLaMA-Factory has no GRPO stage; train grpo with this engine (--backend trl)")
    start = resolve_source(db, config.model, hub_ids=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    names = []
    for ref in [config.dataset, *([config.evaluation.dataset] if config.evaluation.dataset else [])]:
        version = resolve(db, ref)
        want = "preference" if stage == "rm" else DATASET_KIND[stage]
        if stage == "ppo" and version.kind == "prompt":
            raise TrainingInputError(
                f"dataset {ref!r}: LLaMA-Factory reads PPO prompts from sft data (messages); export an sft dataset"
            )
        if version.kind != want and stage != "ppo":
            raise TrainingInputError(f"dataset {ref!r} holds {version.kind} rows, but stage {stage} needs {want} rows")
        name = f"{version.dataset}_{version.version}".replace(".", "_")
        result = export_version(version, "llamafactory", out_dir / DATA_DIR, entry_name=name)
        files.extend(p for p in result.files if p.name != "dataset_info.json")
        names.append(name)
    args = arguments(stage, config, start.base_model, start.adapter_path, names[0],
                     names[1] if len(names) > 1 else None, output_dir or f"saves/{stage}")
    path = out_dir / YAML_NAME
    header = (f"# llamafactory-cli train {YAML_NAME}\n# Exported by llmloop from a `llmloop train {stage}` config; "
              f"run it in this directory (dataset_dir: {DATA_DIR}).\n")
    path.write_text(header + yaml.safe_dump(args, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return Export(path, out_dir / DATA_DIR / "dataset_info.json", tuple(files), args)


def find_cli(config: StageConfig) -> str:
    """``llamafactory.cli`` from the config, else ``$LLMLOOP_LLAMAFACTORY_CLI``, else on PATH."""
    candidate = config.llamafactory.cli or os.environ.get(ENV_CLI) or shutil.which("llamafactory-cli")
    if not candidate:
        raise TrainingInputError(
            "--backend llamafactory needs llamafactory-cli: install LLaMA-Factory, or point "
            f"${ENV_CLI} or llamafactory.cli at the executable"
        )
    if not (Path(candidate).is_file() and os.access(candidate, os.X_OK)) and not shutil.which(candidate):
        raise TrainingInputError(f"llamafactory-cli {candidate!r} is not an executable file; fix llamafactory.cli "
                                 f"or ${ENV_CLI}")
    return candidate


def run_backend(db: Database, job: Job, resume: bool = False) -> int:
    """The job's process for ``--backend llamafactory``: export, run the CLI, ingest its log, register."""
    from llmloop.train.recipe_base import last_complete_checkpoint
    from llmloop.train.job_runner import MODEL_KIND, _job_log, _register, failed_on_input, record_failure  # one registration path
    from llmloop.train.live_metrics import LOG_FILE

    config = CONFIGS[job.stage].model_validate(job.config)
    work_dir = Path(job.output_dir) / "llamafactory"
    lf_output = work_dir / "output"
    with _job_log(Path(job.log_path)):
        try:
            cli = find_cli(config)
            exported = export(db, job.stage, config, work_dir, output_dir=str(lf_output))
            if resume and (checkpoint := last_complete_checkpoint(lf_output)):
                args = {**exported.arguments, "resume_from_checkpoint": checkpoint, "overwrite_output_dir": False}
                exported.yaml_path.write_text(yaml.safe_dump(args, sort_keys=False), encoding="utf-8")
            log.info("running %s train %s", cli, exported.yaml_path)
            code, rows = _run_cli(db, job, cli, exported.yaml_path, lf_output / LOG_FILE, Path(job.output_dir) / LOG_FILE)
            if code != 0:
                raise RuntimeError(f"llamafactory-cli exited with code {code}; its output is in the job log above")
            if not rows:
                raise RuntimeError(f"llamafactory-cli wrote no {LOG_FILE} under {lf_output}")
            metrics = {"loss_first": rows[0]["loss"], "loss_final": rows[-1]["loss"], "steps": rows[-1]["current_steps"],
                       "backend": "llamafactory"}
            version = None
            kind = MODEL_KIND.get(job.stage)
            if config.registration.enabled and kind is not None:
                from llmloop.data.versions import resolve

                start = resolve_source(db, config.model, hub_ids=True)
                version = _register(db, job, config, kind, start, resolve(db, config.dataset), lf_output, metrics)
            job_queue.set_status(db, job.id, "succeeded", result={
                "output": str(lf_output), "model_version": version.name if version else None, "metrics": metrics,
                "backend": "llamafactory"})
            return 0
        except KeyboardInterrupt:
            job_queue.set_status(db, job.id, "cancelled", error="interrupted")
            return 130
        except Exception as e:  # noqa: BLE001 - recorded with the job
            log.exception("job %s failed", job.id)
            record_failure(db, job.id, e)
            return 2 if failed_on_input(e) else 1


def _run_cli(db: Database, job: Job, cli: str, yaml_path: Path, lf_log: Path, our_log: Path) -> tuple[int, list[dict]]:
    """Run the CLI; copy each new ``trainer_log.jsonl`` row into our log and the store as it appears."""
    with open(job.log_path, "ab") as out:
        proc = subprocess.Popen([cli, "train", yaml_path.name], cwd=yaml_path.parent, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    job_queue.set_pid(db, job.id, os.getpid())
    rows: list[dict] = []
    seen = 0
    try:
        while True:
            finished = proc.poll() is not None
            if lf_log.is_file():
                lines = lf_log.read_text(encoding="utf-8").splitlines()
                complete = lines if finished else lines[:-1]  # the last line may still be being written
                for line in complete[seen:]:
                    if not line.strip():
                        continue
                    row = json.loads(line)
                    with our_log.open("a", encoding="utf-8") as f:
                        f.write(json.dumps(row, ensure_ascii=False) + "\n")
                    job_queue.add_metrics(db, job.id, int(row.get("current_steps", 0)),
                                           {k: v for k, v in row.items() if k != "current_steps"})
                    if "loss" in row:
                        rows.append(row)
                seen = max(seen, len(complete))
            if finished:
                return proc.returncode, rows
            if job_queue.cancel_requested(db, job.id):
                proc.terminate()
            time.sleep(0.2)
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait()
        raise
