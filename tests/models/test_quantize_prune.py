"""M7 (cast, GGUF, bitsandbytes' clear refusal on CPU) and M8 (pruning with a sparsity report)."""

from __future__ import annotations

import pytest
import torch
from models_helpers import logits

from llmloop.models.prune import PruneConfig, run_prune
from llmloop.models.quantize import QuantizeConfig, run_quantize
from llmloop.models.sources import SurgeryError
from llmloop.store import registry


def _generate(model_dir, **kw):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(kw.pop("tokenizer_dir", model_dir))
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, **kw).eval()
    enc = tok.apply_chat_template([{"role": "user", "content": "你好"}], add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**enc, max_new_tokens=6, do_sample=False)
    return out[0, enc["input_ids"].shape[1]:]


@pytest.mark.parametrize("method", ["bf16", "fp16"])
def test_cast_halves_the_size_loads_generates_and_reports_the_delta(db, tiny_model_dir, method):
    registry.register(db, name="v1.0", kind="chat", base_model=str(tiny_model_dir))
    out, v, rep = run_quantize(db, QuantizeConfig(version="v1.0", method=method, max_texts=4))
    assert 0.45 < rep["size_ratio"] < 0.55
    assert abs(rep["perplexity_delta"]) < 0.05 * rep["perplexity_before"]
    assert len(_generate(out)) > 0
    want = {"bf16": torch.bfloat16, "fp16": torch.float16}[method]
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(out, dtype="auto").dtype == want
    assert v.parent == "v1.0" and registry.get_lineage(db, v.name).report["size_ratio"] == rep["size_ratio"]


def test_gguf_export_loads_back_with_the_same_logits(db, tiny_model_dir):
    registry.register(db, name="v1.0", kind="chat", base_model=str(tiny_model_dir))
    for gtype, tol in (("f32", 1e-4), ("q8_0", None)):
        out, v, rep = run_quantize(db, QuantizeConfig(version="v1.0", method="gguf", gguf_type=gtype, max_texts=4))
        assert v is None and (out / "model.gguf").exists()
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(tiny_model_dir)
        model = AutoModelForCausalLM.from_pretrained(out, gguf_file="model.gguf", dtype=torch.float32).eval()
        with torch.no_grad():
            got = model(**tok("hello 你好 world", return_tensors="pt")).logits[0]
        want = logits(tiny_model_dir, "hello 你好 world")
        if tol:
            assert torch.allclose(got, want, atol=tol)  # f32: exact up to float error (Q/K permutation undone)
        else:
            assert rep["size_ratio"] < 0.35 and abs(rep["perplexity_delta"]) < 0.05 * rep["perplexity_before"]
            assert (got.argmax(-1) == want.argmax(-1)).float().mean() > 0.9
        assert len(_generate(out, gguf_file="model.gguf", tokenizer_dir=tiny_model_dir)) > 0
    exports = registry.list_exports(db, "v1.0")
    assert [e["format"] for e in exports] == ["gguf", "gguf"] and exports[1]["report"]["gguf_type"] == "q8_0"


@pytest.mark.parametrize("method", ["int8", "int4"])
def test_bitsandbytes_quantization_loads_generates_and_reports(db, tiny_model_dir, method):
    """bitsandbytes >= 0.50 runs LLM.int8 / NF4 on CPU as well: real quantized layers, saved and reloaded."""
    import json

    from transformers import AutoModelForCausalLM

    registry.register(db, name="v1.0", kind="chat", base_model=str(tiny_model_dir))
    out, v, rep = run_quantize(db, QuantizeConfig(version="v1.0", method=method, max_texts=4))
    qcfg = json.loads((out / "config.json").read_text())["quantization_config"]
    assert qcfg["load_in_8bit" if method == "int8" else "load_in_4bit"] is True
    assert rep["size_ratio"] < 0.7 and abs(rep["perplexity_delta"]) < 0.1 * rep["perplexity_before"]
    model = AutoModelForCausalLM.from_pretrained(out, device_map="cpu")
    layer = type(model.model.layers[0].mlp.down_proj).__name__
    assert layer == ("Linear8bitLt" if method == "int8" else "Linear4bit")
    assert len(_generate(out, device_map="cpu")) > 0
    assert v.parent == "v1.0"


def test_missing_bitsandbytes_is_refused_before_any_work(db, tiny_model_dir, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # `import bitsandbytes` raises ImportError
    registry.register(db, name="v1.0", kind="chat", base_model=str(tiny_model_dir))
    with pytest.raises(SurgeryError, match="bitsandbytes is not installed"):
        run_quantize(db, QuantizeConfig(version="v1.0", method="int8"))
    assert [v.name for v in registry.list_versions(db)] == ["v1.0"]
    assert list(db.workspace.models_dir.iterdir()) == []


@pytest.mark.parametrize("method,scope", [("magnitude", "layer"), ("magnitude", "global"), ("structured", "layer")])
def test_pruning_reaches_the_asked_sparsity(db, tiny_model_dir, method, scope):
    from transformers import AutoModelForCausalLM

    registry.register(db, name="v1.0", kind="chat", base_model=str(tiny_model_dir))
    out, v, rep = run_prune(db, PruneConfig(version="v1.0", method=method, amount=0.4, scope=scope, max_texts=4))
    assert rep["sparsity_pruned_layers"] == pytest.approx(0.4, abs=0.01)
    assert 0 < rep["sparsity_model"] < rep["sparsity_pruned_layers"]  # embeddings and norms untouched
    assert rep["perplexity_after"] != rep["perplexity_before"]
    model = AutoModelForCausalLM.from_pretrained(out)
    w = model.model.layers[0].mlp.down_proj.weight
    if method == "structured":
        zero_rows = (w.abs().sum(dim=1) == 0).float().mean().item()
        assert zero_rows == pytest.approx(0.4, abs=0.02)
    elif scope == "layer":
        assert (w == 0).float().mean().item() == pytest.approx(0.4, abs=0.01)
    before = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert torch.equal(model.model.embed_tokens.weight, before.model.embed_tokens.weight)
    assert len(_generate(out)) > 0
    assert registry.get_lineage(db, v.name).operation == "prune"


def test_quality_texts_from_a_file_or_a_stored_dataset(db, tiny_model_dir, tmp_path):
    import json

    from llmloop.data.versions import write_version

    registry.register(db, name="v1.0", kind="chat", base_model=str(tiny_model_dir))
    f = tmp_path / "texts.jsonl"
    f.write_text("\n".join(json.dumps({"text": f"Order {i} ships in two days."}) for i in range(3)), encoding="utf-8")
    _, _, rep = run_quantize(db, QuantizeConfig(version="v1.0", method="bf16", texts=str(f), register_version=False,
                                                out=tmp_path / "q1"))
    assert rep["perplexity_texts"] == 3
    write_version(db, [{"text": "Returns are free within thirty days."}] * 2, name="corpus", kind="pt", source_format="jsonl")
    _, _, rep = run_quantize(db, QuantizeConfig(version="v1.0", method="bf16", texts="corpus", register_version=False,
                                                out=tmp_path / "q2"))
    assert rep["perplexity_texts"] == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"body": "x"}\n', encoding="utf-8")
    with pytest.raises(SurgeryError, match="--texts.*line 1"):
        run_quantize(db, QuantizeConfig(version="v1.0", method="bf16", texts=str(bad), out=tmp_path / "q3"))
    assert not (tmp_path / "q3").exists()
