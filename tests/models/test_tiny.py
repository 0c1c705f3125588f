import hashlib

import pytest

from transformers import AutoModelForCausalLM, AutoTokenizer
from typer.testing import CliRunner

from llmloop.cli.main import app
from llmloop.models.tiny import IM_END, TinyModelConfig, build_tiny_model

TEXTS = ["Where is my order? 我的订单在哪里？", "Refunds take 3 to 5 days. 退款需3到5天。"] * 50


def _digest(path):
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(path.iterdir())}


def test_same_seed_same_files_other_seed_other_weights(tmp_path):
    cfg = TinyModelConfig(vocab_size=400, hidden_size=32, num_hidden_layers=1, intermediate_size=64,
                          num_attention_heads=2, num_key_value_heads=1)
    a = build_tiny_model(tmp_path / "a", cfg, TEXTS)
    b = build_tiny_model(tmp_path / "b", cfg, TEXTS)
    c = build_tiny_model(tmp_path / "c", cfg.model_copy(update={"seed": 1}), TEXTS)
    assert _digest(a) == _digest(b)
    assert _digest(a)["model.safetensors"] != _digest(c)["model.safetensors"]
    assert _digest(a)["tokenizer.json"] == _digest(c)["tokenizer.json"]


def test_tokenizer_template_and_stopping(tiny_model_dir):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert model.config.model_type == "llama"
    text = "我买的台灯到哪了？ Where is my lamp?"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text  # byte-level: lossless
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello!"}]
    out = tok.apply_chat_template(msgs, return_dict=True, return_assistant_tokens_mask=True)
    learned = [t for t, m in zip(out["input_ids"], out["assistant_masks"]) if m]
    # only the assistant's words and its closing <|im_end|> are trained on
    assert tok.decode(learned) == "Hello!" + IM_END
    im_end = tok.convert_tokens_to_ids(IM_END)
    assert tok.eos_token == IM_END and im_end in model.generation_config.eos_token_id
    # once the model emits <|im_end|>, generation stops: allow only that token, then only a word
    prompt = tok.apply_chat_template(msgs[:1], add_generation_prompt=True, return_tensors="pt", return_dict=True)
    gen = model.generate(**prompt, max_new_tokens=20, do_sample=False, prefix_allowed_tokens_fn=lambda b, ids: [im_end])
    assert gen[0, prompt["input_ids"].shape[1]:].tolist() == [im_end]
    hello = tok("Hello", add_special_tokens=False)["input_ids"][0]
    gen = model.generate(**prompt, max_new_tokens=5, do_sample=False, prefix_allowed_tokens_fn=lambda b, ids: [hello])
    assert gen.shape[1] - prompt["input_ids"].shape[1] == 5


@pytest.mark.parametrize("group", ["models", "model"])  # `model`: the old, hidden spelling
def test_cli_builds_a_model(tmp_path, group):
    r = CliRunner().invoke(app, [group, "tiny", "--out", str(tmp_path / "m"), "--hidden-size", "32", "--layers", "1",
                                 "--vocab-size", "600"])
    assert r.exit_code == 0, r.output
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "m").config.hidden_size == 32


def test_only_one_models_group_is_listed():
    r = CliRunner().invoke(app, ["--help"])
    commands = [line.split()[1] for line in r.output.splitlines() if line.startswith("│ ") and len(line.split()) > 1]
    assert r.exit_code == 0 and "models" in commands and "model" not in commands
