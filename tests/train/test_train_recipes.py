"""The three recipes through ``run_training``: weights move, loss falls, jobs and lineage recorded.

The chain is the demo's: PT as full fine-tuning of the random tiny model (c1.0), SFT as a LoRA on
that full model directory (v1.0), DPO continuing the SFT adapter against the frozen v1.0 (v1.1).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest
from safetensors.torch import load_file

from llmloop.store import job_queue
from llmloop.store import registry
from llmloop.train.config import DPOConfig, PTConfig, SFTConfig
from llmloop.train.job_runner import JobFailed, run_training
from tiny_runs import TINY  # every example fits one batch, the schedule is flat



def _logged_losses(job_id: str, db) -> list[float]:  # noqa: ANN001
    return [m["loss"] for m in job_queue.get_metrics(db, job_id)]


def _assert_job_recorded(db, result, steps: int) -> None:  # noqa: ANN001
    job = job_queue.get_job(db, result.job.id)
    assert job.status == "succeeded" and job.error is None
    assert job.started_at and job.finished_at
    assert job.result["output"] == str(result.output_dir)
    losses = _logged_losses(job.id, db)
    assert len(losses) == steps
    rows = [json.loads(line) for line in (Path(job.output_dir) / "trainer_log.jsonl").read_text().splitlines()]
    assert [r["current_steps"] for r in rows] == list(range(1, steps + 1))
    assert {"current_steps", "total_steps", "loss", "lr", "epoch", "percentage", "elapsed_time",
            "remaining_time"} <= set(rows[0])
    assert rows[-1]["percentage"] == 100.0 and rows[-1]["total_steps"] == steps
    assert [r["loss"] for r in rows] == losses
    log_text = Path(job.log_path).read_text()
    assert "llmloop.train" in log_text and "Running training" in log_text


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_pt_full_then_sft_lora_then_dpo_from_the_sft_version(db, datasets, tiny_model_dir, capfd):
    # --- PT: full fine-tuning of the random tiny model -> completion model c1.0
    seen = []
    pt = run_training(db, "pt", PTConfig(model=str(tiny_model_dir), dataset="corpus", finetuning="full",
                                         learning_rate=1e-3, max_steps=6, **TINY), progress=seen.append)
    assert sorted({p.step for p in seen}) == list(range(7)) and {p.total_steps for p in seen} == {6}
    assert [p.step for p in seen] == sorted(p.step for p in seen)
    assert seen[0].loss is None and seen[-1].loss == pytest.approx(_logged_losses(pt.job.id, db)[-1])
    before = load_file(tiny_model_dir / "model.safetensors")
    after = load_file(pt.output_dir / "model.safetensors")
    assert before.keys() == after.keys()
    assert any(not after[k].equal(before[k]) for k in before)
    assert (pt.output_dir / "tokenizer.json").is_file()
    losses = _logged_losses(pt.job.id, db)
    assert losses[-1] < losses[0] - 0.5, losses
    _assert_job_recorded(db, pt, steps=6)
    c1 = pt.model_version
    assert (c1.name, c1.kind, c1.stage) == ("c1.0", "completion", "candidate")
    assert (c1.base_model, c1.adapter_path, c1.parent) == (str(pt.output_dir), None, None)
    assert c1.job_id == pt.job.id and c1.dataset_versions == [datasets["corpus"].id]
    assert c1.metrics["loss_final"] == pytest.approx(losses[-1])

    # --- SFT: a new LoRA adapter on the PT model, named by the registry version -> chat model v1.0
    sft = run_training(db, "sft", SFTConfig(model="c1.0", dataset="faq", learning_rate=5e-3, max_steps=6,
                                            lora={"r": 8, "alpha": 16, "dropout": 0.0}, **TINY))
    adapter = load_file(sft.output_dir / "adapter_model.safetensors")
    lora_b = [t for k, t in adapter.items() if "lora_B" in k]
    assert lora_b and any(t.abs().sum() > 0 for t in lora_b)  # peft starts every B at zero
    losses = _logged_losses(sft.job.id, db)
    assert losses[-1] < losses[0] - 0.2, losses
    _assert_job_recorded(db, sft, steps=6)
    v1 = sft.model_version
    assert (v1.name, v1.kind, v1.parent) == ("v1.0", "chat", "c1.0")
    assert (v1.base_model, v1.adapter_path) == (c1.base_model, str(sft.output_dir))
    assert v1.job_id == sft.job.id and v1.dataset_versions == [datasets["faq"].id]

    # --- DPO: continue v1.0's adapter; the reference is v1.0 itself (base + SFT adapter) -> v1.1
    sft_adapter_hash = _sha256(sft.output_dir / "adapter_model.safetensors")
    dpo = run_training(db, "dpo", DPOConfig(model="v1.0", dataset="prefs", learning_rate=2e-3, max_steps=6, **TINY))
    assert _sha256(sft.output_dir / "adapter_model.safetensors") == sft_adapter_hash  # copied, not modified
    new = load_file(dpo.output_dir / "adapter_model.safetensors")
    assert new.keys() == adapter.keys()  # the same adapter, trained further
    assert any(not new[k].equal(adapter[k]) for k in adapter)
    losses = _logged_losses(dpo.job.id, db)
    # Before the first update the policy *is* the reference: loss = log 2 exactly. It would not be,
    # were the reference the bare base instead of base + the SFT adapter.
    assert losses[0] == pytest.approx(math.log(2), abs=1e-3)
    assert losses[-1] < losses[0] - 0.1, losses
    _assert_job_recorded(db, dpo, steps=6)
    rows = [json.loads(line) for line in (Path(dpo.job.output_dir) / "trainer_log.jsonl").read_text().splitlines()]
    assert {"rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "accuracy"} <= set(rows[-1])
    v11 = dpo.model_version
    assert (v11.name, v11.kind, v11.parent, v11.stage) == ("v1.1", "chat", "v1.0", "candidate")
    assert (v11.base_model, v11.adapter_path) == (c1.base_model, str(dpo.output_dir))
    assert v11.job_id == dpo.job.id and v11.dataset_versions == [datasets["prefs"].id]
    assert v11.metrics["rewards/accuracies"] == rows[-1]["rewards/accuracies"]
    assert registry.get(db, "v1.1").adapter_path == str(dpo.output_dir)

    # The library printed nothing: logs went to each job's log file.
    out, err = capfd.readouterr()
    assert out == "" and err == "", (out, err)


def test_sft_full_model_stops_generating_at_im_end(db, datasets, tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result = run_training(db, "sft", SFTConfig(model=str(tiny_model_dir), dataset="faq", finetuning="full",
                                               learning_rate=1e-3, max_steps=20, **TINY))
    assert result.model_version.adapter_path is None
    assert result.model_version.base_model == str(result.output_dir)
    tok = AutoTokenizer.from_pretrained(result.output_dir)
    model = AutoModelForCausalLM.from_pretrained(result.output_dir).eval()
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert im_end in model.generation_config.eos_token_id
    enc = tok.apply_chat_template([{"role": "user", "content": "Can I return the kettle?"}],
                                  add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=40, do_sample=False)
    new = out[0, enc["input_ids"].shape[1]:].tolist()
    assert im_end in new, tok.decode(new)
    assert new.index(im_end) == len(new) - 1 < 39  # stopped right at <|im_end|>, well before the limit
    assert "<|im_start|>" not in tok.decode(new)


def test_failed_runs_are_recorded_with_their_error(db, datasets, tiny_model_dir):
    with pytest.raises(JobFailed) as info:
        run_training(db, "sft", SFTConfig(model=str(tiny_model_dir), dataset="corpus", max_steps=1))
    assert info.value.user_error
    job = job_queue.get_job(db, info.value.job.id)
    assert job.status == "failed" and job.finished_at is not None
    assert "holds pt rows" in job.error and "needs sft rows" in job.error
    assert "failed" in Path(job.log_path).read_text()

    with pytest.raises(JobFailed, match="not a registered version or alias") as info:
        run_training(db, "dpo", DPOConfig(model="v9.9", dataset="prefs"))
    assert info.value.user_error and job_queue.get_job(db, info.value.job.id).status == "failed"

    with pytest.raises(JobFailed, match="no dataset version 'nope'"):
        run_training(db, "pt", PTConfig(model=str(tiny_model_dir), dataset="nope"))

    with pytest.raises(TypeError, match="needs a SFTConfig"):
        run_training(db, "sft", PTConfig(model="m", dataset="d"))
    assert [j.status for j in job_queue.list_jobs(db)] == ["failed"] * 3
    assert registry.list_versions(db) == []


def test_dpo_with_an_sft_term_adds_the_chosen_nll(db, datasets, tiny_model_dir):
    """sft_weight > 0 combines TRL's 'sigmoid' and 'sft' losses: the first loss is ln 2 plus the
    (weighted) NLL of the chosen answers, where plain DPO starts at exactly ln 2."""
    import math

    from llmloop.train.config import DPOConfig
    from llmloop.train.job_runner import run_training

    common = {"model": str(tiny_model_dir), "dataset": "prefs", "max_steps": 2, "per_device_train_batch_size": 2,
              "max_length": 64, "logging_steps": 1, "plot_loss": False, "register": {"enabled": False}}
    plain = run_training(db, "dpo", DPOConfig.model_validate(common))
    rpo = run_training(db, "dpo", DPOConfig.model_validate({**common, "sft_weight": 0.5}))
    assert plain.metrics["loss_first"] == pytest.approx(math.log(2), abs=1e-4)
    # an untrained tiny model's NLL per token is about ln(vocab) ≈ 8
    assert rpo.metrics["loss_first"] > math.log(2) + 0.5 * 5
