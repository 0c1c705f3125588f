"""Selection and averaging on a real training job (TRL checkpoints, trainer_state.json, adapters)."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

import pytest
import torch

from llmloop.models.average import AverageConfig, job_checkpoints, run_average
from llmloop.models.checkpoint_select import SelectConfig, select_checkpoint
from llmloop.store import registry


@pytest.mark.slow
def test_select_and_average_a_real_lora_sft_job(db, tiny_model_dir):
    from llmloop.data.versions import write_version
    from llmloop.train.config import SFTConfig
    from llmloop.train.job_runner import run_training

    torch.set_num_threads(1)
    rows = [json.loads(line) for line in files("llmloop.resources").joinpath("demo/sft.jsonl").read_text(encoding="utf-8").splitlines()[:24]]
    write_version(db, rows, name="faq", kind="sft", source_format="messages")
    registry.register(db, name="v1.0", kind="chat", base_model=str(tiny_model_dir))
    config = SFTConfig(model="v1.0", dataset="faq", finetuning="lora", learning_rate=5e-3, max_steps=6,
                       per_device_train_batch_size=6, max_length=64, logging_steps=1, plot_loss=False,
                       save_total_limit=None, eval={"split": 0.25, "steps": 2})
    result = run_training(db, "sft", config)
    ckpts = job_checkpoints(result.job.output_dir)
    assert [c.step for c in ckpts] == [2, 4, 6] and all(c.is_adapter for c in ckpts)

    sel = select_checkpoint(db, SelectConfig(job=result.job.id, register_version=True))
    assert [p.step for p in sel.points] == [2, 4, 6] and all(p.train_loss is not None for p in sel.points)
    assert sel.best.value == min(p.value for p in sel.points)
    chosen = registry.get(db, sel.version)
    assert Path(chosen.adapter_path).name == f"checkpoint-{sel.best.step}" and chosen.base_model == str(tiny_model_dir)

    out, v, rep = run_average(db, AverageConfig(job=result.job.id, method="swa"))
    assert rep["adapter"] and rep["steps"] == [2, 4, 6]
    assert v.base_model == str(tiny_model_dir) and v.parent == result.model_version.name and v.job_id == result.job.id
    # the averaged adapter loads on its base and is not any single checkpoint
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), out)
    avg = load_file(out / "adapter_model.safetensors")
    each = [load_file(c.path / "adapter_model.safetensors") for c in ckpts]
    name = next(n for n in avg if "lora_B" in n)
    assert torch.allclose(avg[name], sum(e[name] for e in each) / 3, atol=1e-6)
