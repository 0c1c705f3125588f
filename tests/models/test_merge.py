"""M2/M3: every merge rule against an independent reference; streamed merges of real (tiny) models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from models_helpers import logits

from llmloop.models.merge import MergeConfig, merge_tensors, run_merge, slerp
from llmloop.models.sources import SurgeryError
from llmloop.store import registry


# -- the arithmetic, against references written out here -----------------------------------------
def _ref_trim(x: torch.Tensor, density: float) -> torch.Tensor:
    k = int(density * x.numel())
    keep = torch.zeros(x.numel(), dtype=torch.bool)
    keep[x.abs().flatten().argsort(descending=True)[:k]] = True
    return x * keep.view_as(x)


def test_linear_is_the_weighted_sum():
    g = torch.Generator().manual_seed(0)
    a, b, c = (torch.randn(5, 7, generator=g) for _ in range(3))
    out = merge_tensors("linear", [a, b, c], [0.5, 0.3, 0.2])
    assert torch.allclose(out, 0.5 * a + 0.3 * b + 0.2 * c, atol=1e-6)


def test_slerp_endpoints_and_midpoint():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g)
    assert torch.equal(slerp(0.0, a, b), a) and torch.equal(slerp(1.0, a, b), b)
    # independent reference: angle between the flattened tensors
    ua, ub = a.flatten() / a.norm(), b.flatten() / b.norm()
    theta = torch.acos((ua * ub).sum())
    t = 0.3
    ref = (torch.sin((1 - t) * theta) * a + torch.sin(t * theta) * b) / torch.sin(theta)
    assert torch.allclose(merge_tensors("slerp", [a, b], [0.5, 0.5], t=t), ref, atol=1e-5)
    # parallel tensors: falls back to linear interpolation
    assert torch.allclose(slerp(0.25, a, 2 * a), 0.75 * a + 0.25 * 2 * a, atol=1e-6)


def test_ties_matches_reference():
    g = torch.Generator().manual_seed(2)
    base = torch.randn(6, 8, generator=g)
    models = [base + torch.randn(6, 8, generator=g) for _ in range(3)]
    w, density = [1.0, 0.5, 0.8], 0.4
    # TIES (Yadav et al.): trim each task vector to its top-k magnitudes, elect the sign of the
    # summed trimmed vectors, average the weighted values that agree with it.
    deltas = [_ref_trim(m - base, density) for m in models]
    sign = torch.sign(sum(deltas))
    num = torch.zeros_like(base)
    cnt = torch.zeros_like(base)
    for wi, d in zip(w, deltas):
        agree = (torch.sign(d) == sign) & (d != 0)
        num += torch.where(agree, wi * d, 0.0)
        cnt += agree.float()
    ref = base + num / cnt.clamp(min=1)
    out = merge_tensors("ties", models, w, base=base, density=density)
    assert torch.allclose(out, ref, atol=1e-5)


@pytest.mark.parametrize("method", ["dare_linear", "dare_ties"])
def test_dare_matches_reference_with_the_same_random_mask(method):
    g = torch.Generator().manual_seed(3)
    base = torch.randn(50, 40, generator=g)
    models = [base + torch.randn(50, 40, generator=g) for _ in range(2)]
    w, p = [0.6, 0.4], 0.3
    torch.manual_seed(7)
    out = merge_tensors(method, models, w, base=base, density=p)
    # DARE: drop each delta entry with probability 1-p (Bernoulli, same draws as ours), rescale by 1/p
    torch.manual_seed(7)
    deltas = [(m - base) * torch.bernoulli(torch.full((50, 40), p)) / p for m in models]
    if method == "dare_linear":
        ref = base + sum(wi * d for wi, d in zip(w, deltas))
    else:
        sign = torch.sign(sum(deltas))
        num = sum(torch.where((torch.sign(d) == sign) & (d != 0), wi * d, 0.0) for wi, d in zip(w, deltas))
        cnt = sum(((torch.sign(d) == sign) & (d != 0)).float() for d in deltas)
        ref = base + num / cnt.clamp(min=1)
    assert torch.allclose(out, ref, atol=1e-5)
    kept = ((out - base) != 0).float().mean().item()
    assert 0.3 < kept < 0.7  # about 1-(1-p)^2 of the entries survive in at least one model


def test_config_errors_name_the_flag():
    with pytest.raises(ValueError, match="--weights"):
        MergeConfig(models=["a", "b"], weights=[1.0])
    with pytest.raises(ValueError, match="slerp"):
        MergeConfig(models=["a", "b", "c"], method="slerp")
    with pytest.raises(ValueError, match="at least two"):
        MergeConfig(models=["a"])


# -- real models, streamed -----------------------------------------------------------------------
def _register(db, name, base, adapter=None):
    return registry.register(db, name=name, kind="chat", base_model=str(base), adapter_path=str(adapter) if adapter else None)


def test_full_slerp_endpoints_equal_the_models(db, tiny_model_dir, tiny_b_dir, tmp_path):
    from llmloop.models.weights import WeightReader

    _register(db, "v1.0", tiny_model_dir)
    _register(db, "v2.0", tiny_b_dir)
    for t, want in ((0.0, tiny_model_dir), (1.0, tiny_b_dir)):
        out, v, _ = run_merge(db, MergeConfig(models=["v1.0", "v2.0"], method="slerp", t=t, out=tmp_path / f"t{t}"))
        got, ref = WeightReader(out), WeightReader(want)
        assert got.names() == ref.names()
        assert all(torch.equal(got.get(n), ref.get(n)) for n in ref.names())
    lineage = registry.get_lineage(db, v.name)
    assert lineage.operation == "merge" and lineage.parents == ["v1.0", "v2.0"] and lineage.recipe["t"] == 1.0
    assert v.parent == "v1.0" and v.stage == "candidate"


def test_full_linear_merge_is_sharded_loads_and_matches(db, tiny_model_dir, tiny_b_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    from llmloop.models.weights import WeightReader

    out, v, report = run_merge(db, MergeConfig(models=[str(tiny_model_dir), str(tiny_b_dir)], weights=[0.7, 0.3],
                                               max_shard_mb=1, out=tmp_path / "lin"))
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert report["shards"] > 1 and len(set(index["weight_map"].values())) == report["shards"]
    a, b, m = WeightReader(tiny_model_dir), WeightReader(tiny_b_dir), WeightReader(out)
    for n in a.names():
        assert torch.allclose(m.get(n), 0.7 * a.get(n) + 0.3 * b.get(n), atol=1e-6), n
    model = AutoModelForCausalLM.from_pretrained(out)  # a loadable HF model with tokenizer and template
    assert (out / "tokenizer.json").exists() and "generation" in (out / "tokenizer_config.json").read_text() + (
        (out / "chat_template.jinja").read_text() if (out / "chat_template.jinja").exists() else "")
    assert model.config.num_hidden_layers == 4
    assert registry.get(db, v.name).base_model == str(out.resolve())


def test_architecture_mismatch_is_refused_before_any_work(db, tiny_model_dir, tmp_path):
    from llmloop.models.tiny import TinyModelConfig, build_tiny_model

    other = build_tiny_model(tmp_path / "wide", TinyModelConfig(hidden_size=64, intermediate_size=128))
    with pytest.raises(SurgeryError, match="architecture mismatch.*hidden_size"):
        run_merge(db, MergeConfig(models=[str(tiny_model_dir), str(other)], out=tmp_path / "x"))
    assert not (tmp_path / "x").exists() and not list(tmp_path.glob(".x.*"))
    assert registry.list_versions(db) == []


def test_ties_without_a_base_is_refused(db, tiny_model_dir, tiny_b_dir, tmp_path):
    with pytest.raises(SurgeryError, match="--base"):
        run_merge(db, MergeConfig(models=[str(tiny_model_dir), str(tiny_b_dir)], method="ties", out=tmp_path / "x"))
    assert [p.name for p in tmp_path.iterdir()] == ["home"]


def test_interrupted_merge_registers_nothing_and_leaves_no_files(db, tiny_model_dir, tiny_b_dir, tmp_path, monkeypatch):
    import llmloop.models.merge as merge_mod

    calls = {"n": 0}
    real = merge_mod.merge_tensors

    def dying(*a, **k):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the tensors
        return real(*a, **k)

    monkeypatch.setattr(merge_mod, "merge_tensors", dying)
    with pytest.raises(KeyboardInterrupt):
        run_merge(db, MergeConfig(models=[str(tiny_model_dir), str(tiny_b_dir)], max_shard_mb=1, out=tmp_path / "m"))
    assert [p.name for p in tmp_path.iterdir()] == ["home"]  # neither the output nor its staging folder
    assert registry.list_versions(db) == []


# -- LoRA ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("engine", ["stream", "peft"])
def test_merge_lora_equals_adapter_on(db, tiny_model_dir, adapters, tmp_path, engine):
    from llmloop.models.lora_merge import MergeLoraConfig, merge_lora

    _register(db, "v1.0", tiny_model_dir)
    registry.register(db, name="v1.1", kind="chat", base_model=str(tiny_model_dir), adapter_path=str(adapters[0]), parent="v1.0")
    out, v, report = merge_lora(db, MergeLoraConfig(version="v1.1", out=tmp_path / "merged", engine=engine, max_shard_mb=1))
    assert len(list(out.glob("*.safetensors"))) > 1
    want = logits(tiny_model_dir, adapter=adapters[0])
    got = logits(out)
    assert torch.allclose(got, want, atol=1e-4)
    assert not torch.allclose(logits(tiny_model_dir), want, atol=1e-2)  # the adapter matters
    assert v.name == "v1.2" and v.parent == "v1.1" and v.adapter_path is None
    assert "generation %}" in ((out / "chat_template.jinja").read_text() if (out / "chat_template.jinja").exists()
                                  else (out / "tokenizer_config.json").read_text())
    # generates the same tokens as adapter-on
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from peft import PeftModel

    tok = AutoTokenizer.from_pretrained(out)
    ids = tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, return_tensors="pt", return_dict=True)
    m1 = AutoModelForCausalLM.from_pretrained(out)
    m2 = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), adapters[0])
    g1 = m1.generate(**ids, max_new_tokens=8, do_sample=False)
    g2 = m2.generate(**ids, max_new_tokens=8, do_sample=False)
    assert torch.equal(g1, g2)


def test_merge_lora_with_resized_vocabulary(db, tiny_model_dir, tmp_path):
    """An adapter trained after adding tokens (embeddings in modules_to_save) merges with its tokenizer."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmloop.models.lora_merge import MergeLoraConfig, merge_lora

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok.add_tokens(["<|tool|>", "<|domain|>"])
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model.resize_token_embeddings(len(tok))
    torch.manual_seed(0)
    pm = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], modules_to_save=["embed_tokens"],
                                          init_lora_weights=False, task_type="CAUSAL_LM"))
    with torch.no_grad():
        pm.base_model.model.model.embed_tokens.modules_to_save["default"].weight[-2:] += 1.0
    adir = tmp_path / "resized"
    pm.save_pretrained(adir)
    tok.save_pretrained(adir)
    out, _, report = merge_lora(db, MergeLoraConfig(version=str(adir), out=tmp_path / "m", register_version=False))
    assert report["vocab_size"] == len(tok)
    text = "hello <|domain|> world"
    ref_model = pm.eval()
    with torch.no_grad():
        want = ref_model(**tok(text, return_tensors="pt")).logits[0]
    merged_tok = AutoTokenizer.from_pretrained(out)
    assert len(merged_tok) == len(tok)
    got = logits(out, text)
    assert torch.allclose(got, want, atol=1e-4)


def test_resized_tokenizer_without_embeddings_is_refused(db, tiny_model_dir, adapters, tmp_path):
    import shutil

    from transformers import AutoTokenizer

    from llmloop.models.lora_merge import MergeLoraConfig, merge_lora

    adir = tmp_path / "bad"
    shutil.copytree(adapters[0], adir)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok.add_tokens([f"<|t{i}|>" for i in range(200)])
    tok.save_pretrained(adir)
    with pytest.raises(SurgeryError, match="modules_to_save"):
        merge_lora(db, MergeLoraConfig(version=str(adir), out=tmp_path / "m", register_version=False))
    assert not (tmp_path / "m").exists()


def _delta(adapter_dir: Path, module: str) -> torch.Tensor:
    from safetensors.torch import load_file

    cfg = json.loads((adapter_dir / "adapter_config.json").read_text())
    sd = load_file(adapter_dir / "adapter_model.safetensors")
    a = sd[f"base_model.model.{module}.lora_A.weight"]
    b = sd[f"base_model.model.{module}.lora_B.weight"]
    return (b @ a) * cfg["lora_alpha"] / cfg["r"]


def test_adapter_linear_and_ties_merges_match_reference(db, tiny_model_dir, adapters, tmp_path):
    _register(db, "v1.0", tiny_model_dir)
    registry.register(db, name="v1.1", kind="chat", base_model=str(tiny_model_dir), adapter_path=str(adapters[0]))
    registry.register(db, name="v1.2", kind="chat", base_model=str(tiny_model_dir), adapter_path=str(adapters[1]))
    module = "model.layers.1.self_attn.k_proj"  # 64×128: rank 64 is full rank
    d1, d2 = _delta(adapters[0], module), _delta(adapters[1], module)
    out, v, rep = run_merge(db, MergeConfig(models=["v1.1", "v1.2"], weights=[0.6, 0.4], out=tmp_path / "lin"))
    assert v.adapter_path == str(out.resolve()) and v.base_model == str(tiny_model_dir)
    assert torch.allclose(_delta(out, module), 0.6 * d1 + 0.4 * d2, atol=1e-5)
    # TIES on the deltas, then SVD at full rank (asked 128, capped at the smallest matrix side, 64)
    out, v, rep = run_merge(db, MergeConfig(models=["v1.1", "v1.2"], method="ties", weights=[1.0, 1.0], density=0.5,
                                            svd_rank=128, out=tmp_path / "ties"))
    assert rep["svd_rank"] == 64
    ref = merge_tensors("ties", [d1, d2], [1.0, 1.0], base=torch.zeros_like(d1), density=0.5)
    assert torch.allclose(_delta(out, module), ref, atol=1e-4)
    # serving view: the merged adapter loads on its base
    assert logits(tiny_model_dir, adapter=out).shape[-1] > 0


def test_slerp_of_adapters_folds_them_first(db, tiny_model_dir, adapters, tmp_path):
    registry.register(db, name="v1.1", kind="chat", base_model=str(tiny_model_dir), adapter_path=str(adapters[0]))
    registry.register(db, name="v1.2", kind="chat", base_model=str(tiny_model_dir), adapter_path=str(adapters[1]))
    out, v, _ = run_merge(db, MergeConfig(models=["v1.1", "v1.2"], method="slerp", t=0.0, out=tmp_path / "s"))
    assert v.adapter_path is None
    assert torch.allclose(logits(out), logits(tiny_model_dir, adapter=adapters[0]), atol=1e-4)


@pytest.mark.parametrize("method,t", [("linear", 0.5), ("slerp", 0.3), ("slerp", 1.0)])
def test_row_chunked_merge_equals_whole_tensor_merge(db, tiny_model_dir, tiny_b_dir, tmp_path, monkeypatch, method, t):
    """Big tensors are merged a block of rows at a time; the result is the whole-tensor result."""
    import llmloop.models.merge as merge_mod
    from llmloop.models.weights import WeightReader

    cfg = dict(models=[str(tiny_model_dir), str(tiny_b_dir)], method=method, t=t, weights=[0.3, 0.7], register_version=False)
    whole, _, _ = run_merge(db, MergeConfig(**cfg, out=tmp_path / "whole"))
    monkeypatch.setattr(merge_mod, "CHUNK_ELEMENTS", 1000)  # every matrix is "big" now: 7 rows a block
    chunked, _, _ = run_merge(db, MergeConfig(**cfg, out=tmp_path / "chunked"))
    a, b = WeightReader(whole), WeightReader(chunked)
    for n in a.names():
        assert torch.allclose(a.get(n), b.get(n), atol=1e-5), n


def test_adapters_on_different_architectures_are_refused_before_folding(db, tiny_model_dir, adapters, tmp_path, monkeypatch):
    import llmloop.models.lora_merge as lora_mod
    from llmloop.models.tiny import TinyModelConfig, build_tiny_model

    other = build_tiny_model(tmp_path / "deep", TinyModelConfig(num_hidden_layers=2))
    registry.register(db, name="v1.1", kind="chat", base_model=str(tiny_model_dir), adapter_path=str(adapters[0]))
    registry.register(db, name="v5.0", kind="chat", base_model=str(other))

    def no_work(*a, **k):
        raise AssertionError("folded an adapter before checking the architectures")

    monkeypatch.setattr(lora_mod, "merge_lora_stream", no_work)
    with pytest.raises(SurgeryError, match="num_hidden_layers"):
        run_merge(db, MergeConfig(models=["v1.1", "v5.0"], out=tmp_path / "o"))
