"""LLaMA-Factory interop (T9): the exported YAML uses LLaMA-Factory's argument names and our values;
dataset_info.json + data files read as its demo data does; ``--backend llamafactory`` runs an
external ``llamafactory-cli`` (here a small script standing in for it at that program boundary) and
ingests its trainer_log.jsonl."""

from __future__ import annotations

import json
import stat
import sys
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from llmloop.store import job_queue
from llmloop.train.recipe_base import TrainingInputError
from llmloop.train.config import DPOConfig, GRPOConfig, KTOConfig, PTConfig, SFTConfig
from llmloop.train.llamafactory import export
from llmloop.train.worker import run_claimed, submit

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "llamafactory"
# LLaMA-Factory's own argument names (src/llamafactory/hparams/{model,data,finetuning,generating}_args.py);
# its training arguments are transformers' Seq2SeqTrainingArguments, checked against the installed class.
LLAMAFACTORY_ARGS = {
    "model_name_or_path", "adapter_name_or_path", "quantization_bit", "enable_liger_kernel", "template", "dataset",
    "eval_dataset", "dataset_dir", "cutoff_len", "val_size", "packing", "neat_packing", "train_on_prompt",
    "stage", "finetuning_type", "lora_rank", "lora_alpha", "lora_dropout", "lora_target", "pref_beta", "pref_ftx",
    "pref_loss", "kto_chosen_weight", "kto_rejected_weight", "simpo_gamma", "ref_model", "reward_model",
    "reward_model_type", "plot_loss", "early_stopping_steps", "max_new_tokens",
    # transformers 4.x TrainingArguments (LLaMA-Factory's pinned range; its examples/train_lora/*.yaml use
    # both) that transformers 5, installed here, dropped:
    "warmup_ratio", "overwrite_output_dir",
}


def _known() -> set[str]:
    from transformers import Seq2SeqTrainingArguments

    return LLAMAFACTORY_ARGS | {f.name for f in fields(Seq2SeqTrainingArguments)}


@pytest.mark.parametrize("stage", ["pt", "sft", "dpo", "kto"])
def test_export_writes_yaml_with_llamafactory_names_and_our_values(db, datasets, tiny_model_dir, tmp_path, stage):
    config = {
        "pt": PTConfig(model=str(tiny_model_dir), dataset="corpus", max_length=512),
        "sft": SFTConfig(model=str(tiny_model_dir), dataset="faq", lora={"r": 16, "alpha": 32},
                         eval={"split": 0.1, "steps": 20, "early_stopping_patience": 3}),
        "dpo": DPOConfig(model=str(tiny_model_dir), dataset="prefs", beta=0.2, loss_type="ipo", sft_weight=0.5),
        "kto": KTOConfig(model=str(tiny_model_dir), dataset="feedback", desirable_weight=1.5),
    }[stage]
    result = export(db, stage, config, tmp_path / "lf")
    lines = result.yaml_path.read_text().splitlines()
    assert lines[0] == "# llamafactory-cli train llamafactory.yaml"
    args = yaml.safe_load(result.yaml_path.read_text())
    assert set(args) <= _known(), set(args) - _known()
    assert args["stage"] == stage and args["model_name_or_path"] == str(tiny_model_dir)
    assert args["cutoff_len"] == config.max_length and args["learning_rate"] == config.learning_rate
    assert args["finetuning_type"] == "lora" and args["lora_rank"] == config.lora.r and args["lora_target"] == "all"
    info = json.loads(result.dataset_info.read_text())
    entry = info[args["dataset"]]
    data_file = result.dataset_info.parent / entry["file_name"]
    assert data_file.is_file() and len(data_file.read_text().splitlines()) == {
        "pt": 8, "sft": 8, "dpo": 8, "kto": 16}[stage]
    demo = json.loads((FIXTURES / "dataset_info.json").read_text())
    if stage == "dpo":
        assert (args["pref_loss"], args["pref_beta"], args["pref_ftx"]) == ("ipo", 0.2, 0.5)
        assert entry["ranking"] is True and demo["dpo_en_demo"]["ranking"] is True
        assert set(entry["columns"]) == set(demo["dpo_en_demo"]["columns"])
    if stage == "kto":
        assert args["kto_chosen_weight"] == 1.5 and entry["columns"]["kto_tag"] == "label"
    if stage == "sft":
        assert args["val_size"] == 0.1 and args["eval_steps"] == 20 and args["early_stopping_steps"] == 3
        assert args["train_on_prompt"] is False
    if stage == "pt":
        assert entry["columns"] == {"prompt": "text"} and args["packing"] is True


def test_export_refuses_what_llamafactory_cannot_do(db, datasets, tiny_model_dir, tmp_path):
    with pytest.raises(TrainingInputError, match="no GRPO stage"):
        export(db, "grpo", GRPOConfig(model=str(tiny_model_dir), dataset="math"), tmp_path)
    with pytest.raises(TrainingInputError, match="loss_type 'robust' has no LLaMA-Factory counterpart"):
        export(db, "dpo", DPOConfig(model=str(tiny_model_dir), dataset="prefs", loss_type="robust"), tmp_path)
    simpo = export(db, "dpo", DPOConfig(model=str(tiny_model_dir), dataset="prefs", method="simpo"), tmp_path / "s")
    assert simpo.arguments["pref_loss"] == "simpo" and simpo.arguments["simpo_gamma"] == 0.5


FAKE_CLI = '''#!{python}
"""Stands in for llamafactory-cli: reads the YAML it is given, writes LLaMA-Factory's trainer_log.jsonl."""
import json, os, sys, yaml
assert sys.argv[1] == "train", sys.argv
args = yaml.safe_load(open(sys.argv[2]))
assert os.path.isfile(os.path.join(args["dataset_dir"], "dataset_info.json"))
if os.environ.get("FAKE_LF_FAIL"):
    print("Traceback: CUDA out of memory", flush=True)
    sys.exit(3)
out = args["output_dir"]
os.makedirs(out, exist_ok=True)
for step in range(1, 4):
    row = {{"current_steps": step, "total_steps": 3, "loss": 2.0 / step, "lr": args["learning_rate"],
           "epoch": step / 3, "percentage": round(100 * step / 3, 2), "elapsed_time": "0:00:01",
           "remaining_time": "0:00:01"}}
    with open(os.path.join(out, "trainer_log.jsonl"), "a") as f:
        f.write(json.dumps(row) + "\\n")
json.dump({{"base_model_name_or_path": args["model_name_or_path"], "r": args["lora_rank"]}},
          open(os.path.join(out, "adapter_config.json"), "w"))
print("llamafactory: training finished", flush=True)
'''


def _fake_cli(tmp_path: Path) -> Path:
    path = tmp_path / "llamafactory-cli"
    path.write_text(FAKE_CLI.format(python=sys.executable))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.mark.slow
def test_backend_llamafactory_runs_the_cli_ingests_its_log_and_registers(db, datasets, tiny_model_dir, tmp_path,
                                                                        monkeypatch):
    monkeypatch.setenv("LLMLOOP_LLAMAFACTORY_CLI", str(_fake_cli(tmp_path)))
    job = submit(db, "sft", SFTConfig(model=str(tiny_model_dir), dataset="faq"), backend="llamafactory")
    job_queue.claim(db, job.id, "w")
    done = run_claimed(db, job_queue.get_job(db, job.id))
    assert done.status == "succeeded", done.error
    assert [m["loss"] for m in job_queue.get_metrics(db, job.id)] == [2.0, 1.0, 2.0 / 3]
    ours = [json.loads(line) for line in (Path(job.output_dir) / "trainer_log.jsonl").read_text().splitlines()]
    assert [r["current_steps"] for r in ours] == [1, 2, 3]
    assert done.result["backend"] == "llamafactory" and done.result["model_version"] == "v1.0"
    assert "llamafactory: training finished" in Path(job.log_path).read_text()

    monkeypatch.setenv("FAKE_LF_FAIL", "1")
    failed = submit(db, "sft", SFTConfig(model=str(tiny_model_dir), dataset="faq"), backend="llamafactory")
    job_queue.claim(db, failed.id, "w")
    result = run_claimed(db, job_queue.get_job(db, failed.id))
    assert result.status == "failed" and "exited with code 3" in result.error
    assert "CUDA out of memory" in Path(failed.log_path).read_text()

    monkeypatch.setenv("LLMLOOP_LLAMAFACTORY_CLI", str(tmp_path / "missing"))
    missing = submit(db, "sft", SFTConfig(model=str(tiny_model_dir), dataset="faq"), backend="llamafactory")
    job_queue.claim(db, missing.id, "w")
    result = run_claimed(db, job_queue.get_job(db, missing.id))
    assert result.status == "failed" and "LLMLOOP_LLAMAFACTORY_CLI" in result.error
