"""SmolLM2 through the loop's own paths: LoRA SFT with its template, DPO on that adapter, the gateway
through the unchanged ``openai`` client, merge-lora, and a GGUF export read back with ``gguf``.

One workspace for the module (``trained``): SFT → v1.0, DPO from v1.0 → v1.1; each test reads it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from llmloop.resources import demo_file, read_jsonl

NAME = "smollm2-135m-instruct"
QUESTION = "What is the capital of France? Answer in one word."  # SmolLM2 answers it and ends its turn
_CJK = re.compile(r"[\u4e00-\u9fff]")


def _english(n: int) -> list[dict]:
    return [r for r in read_jsonl(demo_file("sft.jsonl")) if not _CJK.search(r["messages"][0]["content"])][:n]


def _lora_changed(adapter: Path) -> bool:
    from safetensors.torch import load_file

    weights = load_file(str(adapter / "adapter_model.safetensors"))
    return any(k.endswith("lora_B.weight") and v.abs().max() > 0 for k, v in weights.items())


@pytest.fixture(scope="module")
def trained(smollm2_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """A workspace with the base, v1.0 (LoRA SFT on 8 English demo rows) and v1.1 (DPO on v1.0's adapter)."""
    from llmloop.data.importer import import_file
    from llmloop.store import open_database, registry
    from llmloop.train.config import DPOConfig, SFTConfig
    from llmloop.train.job_runner import run_training
    from llmloop.workspace import get_workspace

    home = tmp_path_factory.mktemp("trained")
    db = open_database(get_workspace(home))
    registry.register(db, name=NAME, kind="chat", base_model=str(smollm2_dir))
    sft_rows = home / "sft.jsonl"
    sft_rows.write_text("".join(json.dumps(r) + "\n" for r in _english(8)))
    sft_data = import_file(db, sft_rows, name="sft", format="openai").version
    lora = dict(finetuning="lora", lora=dict(r=8, alpha=16, dropout=0.0), max_length=192, logging_steps=1)
    sft = run_training(db, "sft", SFTConfig.model_validate(dict(
        **lora, model=NAME, dataset=sft_data.dataset, learning_rate=2e-3, num_train_epochs=2,
        per_device_train_batch_size=4)))
    pairs = home / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({
        "prompt": [{"role": "user", "content": r["messages"][0]["content"]}],
        "chosen": [{"role": "assistant", "content": r["messages"][1]["content"] + " Anything else I can help with?"}],
        "rejected": [{"role": "assistant", "content": r["messages"][1]["content"]}],  # the same, without the offer
    }) + "\n" for r in _english(4)))
    pref = import_file(db, pairs, name="pairs", format="trl").version
    dpo = run_training(db, "dpo", DPOConfig.model_validate(dict(
        **lora, model=sft.model_version.name, dataset=pref.dataset, learning_rate=1e-3, num_train_epochs=3,
        per_device_train_batch_size=2, beta=0.1)))
    yield {"home": home, "db": db, "sft": sft, "dpo": dpo}
    db.dispose()


def test_sft_learns_only_the_assistant_turns_with_smollm2s_template(smollm2_dir: Path, tmp_path: Path) -> None:
    from datasets import Dataset
    from transformers import AutoTokenizer

    from llmloop.train.recipe_base import StartingModel
    from llmloop.train.config import SFTConfig
    from llmloop.train.sft import build_trainer, has_generation_markers

    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    assert not has_generation_markers(tok)  # so TRL's assistant_only_loss could not find the turns
    rows = _english(2)
    config = SFTConfig.model_validate(dict(model=str(smollm2_dir), dataset="x", finetuning="lora", max_length=192))
    trainer = build_trainer(config, StartingModel(str(smollm2_dir), str(smollm2_dir)),
                            Dataset.from_list(rows), tmp_path, [])
    row = trainer.train_dataset[0]
    learned = [t for t in row["labels"] if t != -100]  # TRL folds the completion mask into the labels
    assert tok.decode(learned) == rows[0]["messages"][1]["content"] + "<|im_end|>\n"  # the answer and its stop
    full = tok.decode(row["input_ids"])
    assert full.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")


def test_lora_sft_then_dpo_on_its_adapter_learn(trained) -> None:  # noqa: ANN001
    sft, dpo = trained["sft"], trained["dpo"]
    assert sft.model_version.name == "v1.0" and dpo.model_version.name == "v1.1"
    assert sft.metrics["loss_final"] < sft.metrics["loss_first"]
    assert dpo.metrics["loss_final"] < dpo.metrics["loss_first"]
    for r in (sft, dpo):
        assert _lora_changed(Path(r.model_version.adapter_path))
    cfg = json.loads((Path(dpo.model_version.adapter_path) / "adapter_config.json").read_text())
    assert set(cfg["target_modules"]) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def test_gateway_serves_it_to_the_openai_client_and_stops_at_the_end_of_turn(trained) -> None:  # noqa: ANN001
    from openai import OpenAI

    from llmloop.serve.process import GatewayProcess
    from llmloop.store import registry

    registry.set_alias(trained["db"], "production", "v1.1")
    gateway = GatewayProcess(trained["home"]).start(timeout=180)
    try:
        client = OpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0, timeout=120)
        r = client.chat.completions.create(model="production", temperature=0, max_tokens=80,
                                           messages=[{"role": "user", "content": QUESTION}])
        answer = r.choices[0].message.content
        assert r.model == "v1.1" and r.choices[0].finish_reason == "stop", answer
        assert "Paris" in answer
        assert answer.strip() and "<|im_end|>" not in answer and "<|im_start|>" not in answer
        assert r.usage.completion_tokens < 80
        chunks = client.chat.completions.create(model="production", temperature=0, max_tokens=80, stream=True,
                                                messages=[{"role": "user", "content": QUESTION}])
        streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert streamed == answer
    finally:
        gateway.stop()


def test_merge_lora_then_gguf_export_keeps_template_and_stop_token(trained, tmp_path: Path) -> None:  # noqa: ANN001
    import gguf
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmloop.models.lora_merge import MergeLoraConfig, merge_lora
    from llmloop.models.quantize import QuantizeConfig, run_quantize

    db = trained["db"]
    v11 = trained["dpo"].model_version
    out, merged_v, _ = merge_lora(db, MergeLoraConfig(version="v1.1", out=tmp_path / "merged"))
    tok = AutoTokenizer.from_pretrained(out)
    ids = tok.apply_chat_template([{"role": "user", "content": "Can I return a kettle?"}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)["input_ids"]
    with torch.no_grad():
        base = AutoModelForCausalLM.from_pretrained(v11.base_model)
        want = PeftModel.from_pretrained(base, v11.adapter_path)(ids).logits
        got = AutoModelForCausalLM.from_pretrained(out)(ids).logits
    assert torch.allclose(want, got, atol=1e-3)
    assert json.loads((out / "generation_config.json").read_text())["eos_token_id"] == tok.convert_tokens_to_ids("<|im_end|>")
    assert tok.chat_template == AutoTokenizer.from_pretrained(v11.base_model).chat_template

    path, _, report = run_quantize(db, QuantizeConfig(version=merged_v.name, method="gguf", gguf_type="q8_0",
                                                      evaluate=False, out=tmp_path / "gguf"))
    reader = gguf.GGUFReader(str(Path(path) / "model.gguf"))

    def field(key: str):  # noqa: ANN202
        f = reader.fields[key]
        return f.contents()

    assert field("general.architecture") == "llama"
    assert field("tokenizer.chat_template") == tok.chat_template
    assert field("tokenizer.ggml.eos_token_id") == tok.convert_tokens_to_ids("<|im_end|>")
    with torch.no_grad():
        back = AutoModelForCausalLM.from_pretrained(str(path), gguf_file="model.gguf", dtype=torch.float32)(ids).logits
    assert back[0, -1].argmax() == got[0, -1].argmax()  # q8_0 keeps the next token
    assert torch.nn.functional.cosine_similarity(back[0, -1], got[0, -1], dim=0) > 0.99
