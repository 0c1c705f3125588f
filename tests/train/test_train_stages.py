"""The stages beyond pt/sft/dpo through ``run_training``: kto, rm, grpo, and DPO's simpo method (orpo is a
stage of its own: test_orpo.py); ppo's clear refusal; QLoRA's clear refusal on CPU; eval split with early stopping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from llmloop.store import job_queue
from llmloop.train.config import DPOConfig, GRPOConfig, KTOConfig, PPOConfig, RMConfig, SFTConfig
from llmloop.train.job_runner import JobFailed, run_training
from tiny_runs import TINY, adapter_moved, logged_losses



def test_kto_trains_an_adapter_from_thumbs(db, datasets, tiny_model_dir):
    result = run_training(db, "kto", KTOConfig(model=str(tiny_model_dir), dataset="feedback", learning_rate=5e-3,
                                               max_steps=5, **{**TINY, "per_device_train_batch_size": 16}))
    assert adapter_moved(result.output_dir)
    losses = logged_losses(db, result.job.id)
    assert len(losses) == 5 and losses[-1] < losses[0], losses
    assert result.model_version.kind == "chat" and result.model_version.dataset_versions == [datasets["feedback"].id]


def test_reward_model_learns_to_rank_chosen_over_rejected(db, datasets, tiny_model_dir):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    result = run_training(db, "rm", RMConfig(model=str(tiny_model_dir), dataset="prefs", learning_rate=5e-3,
                                             max_steps=8, **TINY))
    assert result.model_version is None  # a scorer, not a chat model: recorded with the job only
    rows = [json.loads(line) for line in (Path(result.job.output_dir) / "trainer_log.jsonl").read_text().splitlines()]
    assert rows[-1]["loss"] < rows[0]["loss"] and "accuracy" in rows[-1]
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    base = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    base.config.pad_token_id = tok.pad_token_id or tok.eos_token_id
    model = PeftModel.from_pretrained(base, result.output_dir).eval()

    def score(answer: str) -> float:
        text = tok.apply_chat_template([{"role": "user", "content": "Can I return the kettle?"},
                                        {"role": "assistant", "content": answer}], tokenize=False)
        with torch.no_grad():
            return model(**tok(text, return_tensors="pt")).logits[0, 0].item()

    assert score("Yes, return the kettle within 30 days.") > score("No.")


def test_grpo_with_builtin_rewards_updates_the_adapter(db, datasets, tiny_model_dir):
    config = GRPOConfig(model=str(tiny_model_dir), dataset="math", learning_rate=1e-3, max_steps=2,
                        per_device_train_batch_size=4, num_generations=4, max_completion_length=8,
                        rewards=["answer_match", "format", "length"], target_length=20, logging_steps=1,
                        plot_loss=False)
    result = run_training(db, "grpo", config)
    assert adapter_moved(result.output_dir)
    rows = [json.loads(line) for line in (Path(result.job.output_dir) / "trainer_log.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and "reward" in rows[0]


def test_reference_free_preference_method_simpo(db, datasets, tiny_model_dir):
    result = run_training(db, "dpo", DPOConfig(model=str(tiny_model_dir), dataset="prefs", method="simpo",
                                               learning_rate=5e-3, max_steps=4, register={"enabled": False}, **TINY))
    assert adapter_moved(result.output_dir)
    losses = logged_losses(db, result.job.id)
    assert losses[-1] < losses[0], losses


def test_dpo_with_length_grouped_batches(db, datasets, tiny_model_dir):
    """The GPU default for padded stages, forced on here: batches come from transformers'
    LengthGroupedSampler over the lengths the engine adds to TRL's tokenized dataset."""
    config = DPOConfig(model=str(tiny_model_dir), dataset="prefs", learning_rate=5e-3, max_steps=3,
                       speed={"group_by_length": True}, register={"enabled": False},
                       **{**TINY, "per_device_train_batch_size": 2})
    result = run_training(db, "dpo", config)
    assert result.metrics["steps"] == 3 and adapter_moved(result.output_dir)


def test_ppo_and_qlora_on_cpu_fail_with_the_fix(db, datasets, tiny_model_dir):
    with pytest.raises(JobFailed, match="--backend llamafactory") as info:
        run_training(db, "ppo", PPOConfig(model=str(tiny_model_dir), dataset="math"))
    assert info.value.user_error
    import torch

    expected = "needs bitsandbytes|needs a CUDA GPU" if torch.cuda.is_available() else "needs a CUDA GPU.*use finetuning=lora"
    with pytest.raises(JobFailed, match=expected) as info:
        run_training(db, "sft", SFTConfig(model=str(tiny_model_dir), dataset="faq", finetuning="qlora", max_steps=1))
    assert info.value.user_error


def test_eval_split_early_stopping_and_best_checkpoint(db, datasets, tiny_model_dir):
    # A learning rate this high makes the held-out loss climb after the first steps: training stops early.
    config = SFTConfig(model=str(tiny_model_dir), dataset="faq", finetuning="full", learning_rate=0.3, max_steps=30,
                       eval={"split": 0.25, "steps": 1, "early_stopping_patience": 2}, register={"enabled": False},
                       **{**TINY, "per_device_train_batch_size": 6})
    result = run_training(db, "sft", config)
    m = result.metrics
    assert m["steps"] < 30  # stopped early
    assert m["metric"] == "eval_loss" and Path(m["best_checkpoint"]).is_dir()
    rows = [json.loads(line) for line in (Path(result.job.output_dir) / "trainer_log.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "eval_loss" in r]
    assert len(evals) == m["steps"]
    assert m["best_metric"] == pytest.approx(min(r["eval_loss"] for r in evals))
    assert any(m["eval_loss"] for m in job_queue.get_metrics(db, result.job.id) if "eval_loss" in m)


def test_dpo_on_a_merged_sft_adapter_trains_a_new_adapter(db, datasets, tiny_model_dir):
    """adapter_start=merge: the SFT version's adapter is merged into the base (saved with the job) and
    a new adapter of the configured shape trains on top; the reference is that merged model, so the
    first DPO loss is ln 2."""
    import math

    sft = run_training(db, "sft", SFTConfig(model=str(tiny_model_dir), dataset="faq", learning_rate=5e-3, max_steps=3,
                                            lora={"r": 8, "alpha": 16, "dropout": 0.0}, **TINY))
    dpo = run_training(db, "dpo", DPOConfig(model="v1.0", dataset="prefs", adapter_start="merge", learning_rate=5e-3,
                                            max_steps=3, lora={"r": 4, "alpha": 8, "dropout": 0.0}, **TINY))
    merged = Path(dpo.job.output_dir) / "merged_base"
    assert dpo.model_version.base_model == str(merged) and (merged / "config.json").is_file()
    assert dpo.model_version.adapter_path == str(dpo.output_dir) and dpo.model_version.parent == "v1.0"
    new = load_file(dpo.output_dir / "adapter_model.safetensors")
    assert {t.shape[0] for k, t in new.items() if "lora_A" in k} == {4}  # the new shape, not the SFT's 8
    base = load_file(tiny_model_dir / "model.safetensors")
    merged_weights = load_file(merged / "model.safetensors")
    assert any(not merged_weights[k].equal(base[k]) for k in base if k in merged_weights)  # SFT merged in
    assert logged_losses(db, dpo.job.id)[0] == pytest.approx(math.log(2), abs=1e-3)
    assert sft.model_version.adapter_path != dpo.model_version.adapter_path


def test_dpo_trains_on_multi_turn_arena_pairs(db, tiny_model_dir):
    """A vote on a battle that went on past its first turn: chosen/rejected hold each side's conversation
    after the shared first prompt (the user's follow-ups are the same on both sides). TRL's conversational
    preference format takes them as they are; the chosen conversation's answers become likelier."""
    from llmloop.data.versions import write_version

    def side(first: str, last: str, item: str) -> list[dict]:
        return [{"role": "assistant", "content": first}, {"role": "user", "content": f"And the {item} box?"},
                {"role": "assistant", "content": last}]

    rows = [{"prompt": [{"role": "user", "content": f"Can I return the {item}?"}],
             "chosen": side(f"Yes, return the {item} within 30 days.", "Keep the box, it helps.", item),
             "rejected": side("No.", "No.", item), "provenance": {"source": "arena_vote", "turns": 2}}
            for item in ("desk lamp", "kettle", "yoga mat", "office chair", "coffee mug", "desk fan", "backpack", "blender")]
    write_version(db, rows, name="arena-turns", kind="preference", source_format="trl")
    result = run_training(db, "dpo", DPOConfig(model=str(tiny_model_dir), dataset="arena-turns", learning_rate=5e-3,
                                               max_steps=6, register={"enabled": False}, **TINY))
    assert adapter_moved(result.output_dir)
    rows_logged = [json.loads(line) for line in (Path(result.job.output_dir) / "trainer_log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows_logged if "loss" in r]
    assert losses[-1] < losses[0], losses
    assert rows_logged[-1]["rewards/margins"] > 0
