"""M5: merge-ratio scan — every point scored through the eval package, best one registered."""

from __future__ import annotations

import json

import pytest
import torch

from llmloop.models.scan import ScanConfig, run_scan
from llmloop.models.sources import SurgeryError
from llmloop.store import registry


def _eval_set(path, n=4):
    rows = [{"prompt": f"What is the return window for item {i}?", "reference": "Thirty days from delivery."} for i in range(n)]
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    return path


def test_scan_scores_each_ratio_and_registers_the_best(db, tiny_model_dir, tiny_b_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmloop.eval.text_metrics import perplexity
    from llmloop.eval.evalset import read_eval_set

    registry.register(db, name="v1.0", kind="chat", base_model=str(tiny_model_dir))
    registry.register(db, name="v2.0", kind="chat", base_model=str(tiny_b_dir))
    es = _eval_set(tmp_path / "eval.jsonl")
    res = run_scan(db, ScanConfig(a="v1.0", b="v2.0", points=3, eval_set=str(es), alias="candidate"))
    assert [p.t for p in res.points] == [0.0, 0.5, 1.0]
    assert res.best.score == min(p.score for p in res.points)
    # independent check of an endpoint: t=0 is model A itself
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    rows = read_eval_set(es)
    texts = [tok.apply_chat_template([*r.messages, {"role": "assistant", "content": r.reference}], tokenize=False) for r in rows]
    assert res.points[0].score == pytest.approx(perplexity(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tok, texts), rel=1e-5)
    assert res.png.stat().st_size > 1000 and res.png.read_bytes()[:4] == b"\x89PNG"
    assert res.csv.read_text().splitlines()[0] == "t,perplexity"
    v = registry.get(db, "candidate")
    assert v.name == res.version and registry.get_lineage(db, v.name).recipe["chosen_t"] == res.best.t
    assert [p.name for p in db.workspace.models_dir.iterdir()] == [v.name]  # scratch points are gone


def test_scan_with_a_generation_metric(db, tiny_model_dir, tiny_b_dir, tmp_path):
    es = _eval_set(tmp_path / "eval.jsonl", n=2)
    res = run_scan(db, ScanConfig(a=str(tiny_model_dir), b=str(tiny_b_dir), points=2, eval_set=str(es), metric="rougeL",
                                  max_tokens=4, register_version=False))
    assert len(res.points) == 2 and not res.lower_is_better and res.version is None
    with pytest.raises(SurgeryError, match="--metric"):
        run_scan(db, ScanConfig(a=str(tiny_model_dir), b=str(tiny_b_dir), points=2, eval_set=str(es), metric="nope",
                                max_tokens=2, register_version=False))


def test_scan_folds_adapter_versions(db, tiny_model_dir, adapters, tmp_path):
    from models_helpers import logits

    registry.register(db, name="v1.0", kind="chat", base_model=str(tiny_model_dir))
    registry.register(db, name="v1.1", kind="chat", base_model=str(tiny_model_dir), adapter_path=str(adapters[0]), parent="v1.0")
    es = _eval_set(tmp_path / "eval.jsonl", n=2)
    res = run_scan(db, ScanConfig(a="v1.1", b="v1.0", points=2, eval_set=str(es)))
    assert len(res.points) == 2
    # t=0 is v1.1 (base + adapter) itself, t=1 the base
    best_is_adapter = res.best.t == 0.0
    want = logits(tiny_model_dir, adapter=adapters[0]) if best_is_adapter else logits(tiny_model_dir)
    assert torch.allclose(logits(res.model_dir), want, atol=1e-4)
