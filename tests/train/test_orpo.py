"""Stage orpo (train/orpo.py): TRL's experimental ORPOTrainer on a PEFT LoRA adapter, run as a job
like dpo — job row, per-step metrics, registered version — from a full model (new adapter) and
from a version with an adapter (continued, as the loop trains from the production adapter)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file
from typer.testing import CliRunner

from llmloop.store import job_queue
from llmloop.store import registry
from llmloop.train.config import ConfigError, ORPOConfig, load_config
from llmloop.train.job_runner import run_training
from tiny_runs import TINY

PROMPT = [{"role": "user", "content": "Can I return the kettle?"}]
CHOSEN, REJECTED = "Yes, return the kettle within 30 days.", "No."


def _margin(base: str, adapter: str | None = None) -> float:
    """log p(chosen) − log p(rejected) of the answer tokens, for the conftest's kettle pair."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base)
    if adapter:
        model = PeftModel.from_pretrained(model, adapter)
    model.eval()
    prompt_ids = tok.apply_chat_template(PROMPT, add_generation_prompt=True, tokenize=True, return_dict=False)

    def logp(answer: str) -> float:
        ids = tok.apply_chat_template(PROMPT + [{"role": "assistant", "content": answer}], tokenize=True,
                                      return_dict=False)
        x = torch.tensor([ids])
        with torch.no_grad():
            logits = model(x).logits[0, :-1].log_softmax(-1)
        picked = logits.gather(1, x[0, 1:, None])[:, 0]
        return picked[len(prompt_ids) - 1:].sum().item()

    return logp(CHOSEN) - logp(REJECTED)


def _lora_b(path: Path) -> dict:
    return {k: t for k, t in load_file(path / "adapter_model.safetensors").items() if "lora_B" in k}


def test_orpo_trains_a_new_adapter_as_a_job_and_prefers_the_chosen_answers(db, datasets, tiny_model_dir):
    config = ORPOConfig(model=str(tiny_model_dir), dataset="prefs", learning_rate=5e-3, max_steps=6, **TINY)
    result = run_training(db, "orpo", config)

    job = job_queue.get_job(db, result.job.id)
    assert job.stage == "orpo" and job.status == "succeeded"
    logged = [m for m in job_queue.get_metrics(db, job.id) if "loss" in m]
    losses = [m["loss"] for m in logged]
    assert len(losses) == 6 and losses[-1] < losses[0], losses
    assert {"rewards/chosen", "rewards/rejected", "rewards/margins", "accuracy"} <= set(logged[-1])  # as dpo records
    rows = [json.loads(x) for x in (Path(job.output_dir) / "trainer_log.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in rows if "loss" in r] == pytest.approx(losses)

    assert any(t.abs().sum() > 0 for t in _lora_b(result.output_dir).values())  # LoRA B starts at zero
    v = result.model_version
    assert (v.kind, v.adapter_path, v.job_id, v.dataset_versions) == ("chat", str(result.output_dir), job.id,
                                                                       [datasets["prefs"].id])
    assert _margin(str(tiny_model_dir), str(result.output_dir)) > _margin(str(tiny_model_dir)) + 1.0


def test_orpo_continues_the_adapter_of_the_version_it_starts_from(db, datasets, tiny_model_dir):
    first = run_training(db, "orpo", ORPOConfig(model=str(tiny_model_dir), dataset="prefs", learning_rate=5e-3,
                                                max_steps=2, **TINY))
    registry.set_alias(db, "production", first.model_version.name)
    second = run_training(db, "orpo", ORPOConfig(model="production", dataset="prefs", learning_rate=5e-3,
                                                 max_steps=2, **TINY))
    assert second.model_version.parent == first.model_version.name
    assert second.model_version.base_model == str(tiny_model_dir)  # the same base, the adapter trained further
    before, after = _lora_b(first.output_dir), _lora_b(second.output_dir)
    assert before.keys() == after.keys() and any((before[k] - after[k]).abs().sum() > 0 for k in before)


def test_orpo_config_defaults_errors_and_cli_help(tmp_path):
    c = load_config("orpo", None, ["model=v1.0", "dataset=prefs"])
    assert isinstance(c, ORPOConfig) and (c.beta, c.learning_rate, c.finetuning) == (0.1, 8e-6, "lora")
    with pytest.raises(ConfigError) as e:
        load_config("orpo", None, ["model=v1.0", "dataset=prefs", "beta=0", "ref_model=v1.0"])
    msg = str(e.value)
    assert "beta" in msg and "ref_model (from --set): unknown key" in msg
    from llmloop.cli.main import app

    r = CliRunner().invoke(app, ["train", "orpo", "--help"], terminal_width=200)
    assert r.exit_code == 0 and "beta" in r.output and "odds-ratio" in r.output


def test_orpo_is_reachable_only_as_its_own_stage(db, datasets, tiny_model_dir, tmp_path):
    """dpo with method (or loss_type) orpo is refused, naming `llmloop train orpo`; exit 2, no job."""
    for key in ("method", "loss_type"):
        with pytest.raises(ConfigError, match="llmloop train orpo") as e:
            load_config("dpo", None, ["model=v1.0", "dataset=prefs", f"{key}=orpo"])
        assert f"{key} (from --set)" in str(e.value)
    from llmloop.cli.main import app

    r = CliRunner().invoke(app, ["train", "dpo", "--set", f"model={tiny_model_dir}", "--set", "dataset=prefs",
                                 "--set", "method=orpo"])
    assert r.exit_code == 2 and "llmloop train orpo" in r.output and "Traceback" not in r.output
    assert job_queue.list_jobs(db) == []
    paper = load_config("orpo", Path(__file__).resolve().parents[2] / "configs" / "orpo" / "paper.yaml")
    assert isinstance(paper, ORPOConfig) and paper.learning_rate == 8e-6
