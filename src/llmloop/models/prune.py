"""M8: pruning through ``torch.nn.utils.prune``, with a sparsity and perplexity report.

- ``magnitude``: L1 unstructured — the smallest-|w| entries set to zero, per layer
  (``l1_unstructured``) or across all pruned layers at once (``--scope global``,
  ``global_unstructured``), which lets robust layers give up more than fragile ones.
- ``structured``: whole output rows (neurons / attention output channels) with the smallest L2
  norm zeroed (``ln_structured``, n=2, dim=0).
Only the ``nn.Linear`` layers inside the transformer blocks are pruned; embeddings, the LM head and
norms are left alone (pruning them ruins a small model for little saving). The masks are made
permanent (``prune.remove``), so the result is a plain HF model with zeros — dense storage, same
size on disk; the gain comes from a sparse kernel or from a following ``quantize``/compression.
The model is held in memory: ``torch.nn.utils.prune`` works on modules.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from llmloop.models.sources import SurgeryError, default_out, pick_name, publish, resolve
from llmloop.models.weights import copy_side_files, staged_dir

ProgressFn = Callable[[int, int], None]


class PruneConfig(BaseModel):
    """`llmloop models prune`: zero the least important weights of a version."""

    model_config = ConfigDict(extra="forbid")

    version: str = Field(description="Version (or alias) or model folder to prune")
    method: Literal["magnitude", "structured"] = Field("magnitude", description="magnitude: L1 unstructured; structured: L2 rows")
    amount: float = Field(0.3, gt=0, lt=1, description="Share of the weights (magnitude) or rows (structured) of each pruned layer to zero")
    scope: Literal["layer", "global"] = Field("layer", description="magnitude: per layer, or one threshold across all pruned layers")
    texts: str | None = Field(None, description="Texts for the perplexity delta: JSONL of {\"text\"} or a stored pt dataset (default: demo corpus)")
    max_texts: int = Field(32, ge=1, description="Use at most this many texts for the perplexity delta")
    evaluate: bool = Field(True, description="Measure the perplexity delta")
    out: Path | None = Field(None, description="Output folder (must not exist); default: the workspace's models/<name>")
    name: str | None = Field(None, description="Name of the registered version (default: next free after the source)")
    register_version: bool = Field(True, description="Register the result as a candidate version with lineage")


def prunable(model) -> list[tuple[str, object]]:  # noqa: ANN001
    import torch

    layers = getattr(getattr(model, "model", model), "layers", None)
    if layers is None:
        raise SurgeryError("no `model.layers` (transformer blocks) found; pruning supports decoder-only HF models")
    return [(f"model.layers.{i}.{n}", m) for i, block in enumerate(layers)
            for n, m in block.named_modules() if isinstance(m, torch.nn.Linear)]


def prune_model(model, method: str, amount: float, scope: str) -> dict:  # noqa: ANN001
    """Prune in place; returns per-layer and total sparsity of the pruned layers and of the whole model."""
    from torch.nn.utils import prune

    targets = prunable(model)
    if method == "magnitude" and scope == "global":
        prune.global_unstructured([(m, "weight") for _, m in targets], pruning_method=prune.L1Unstructured, amount=amount)
    else:
        for _, m in targets:
            if method == "magnitude":
                prune.l1_unstructured(m, "weight", amount=amount)
            else:
                prune.ln_structured(m, "weight", amount=amount, n=2, dim=0)
    for _, m in targets:
        prune.remove(m, "weight")
    layers = {}
    zeros = total = 0
    for name, m in targets:
        z, n = int((m.weight == 0).sum()), m.weight.numel()
        layers[name] = round(z / n, 4)
        zeros, total = zeros + z, total + n
    all_zero = sum(int((p == 0).sum()) for p in model.parameters())
    all_n = sum(p.numel() for p in model.parameters())
    return {"sparsity_pruned_layers": round(zeros / total, 4), "sparsity_model": round(all_zero / all_n, 4),
            "pruned_params": total, "model_params": all_n, "layers": layers}


def run_prune(db, config: PruneConfig, progress: ProgressFn | None = None):  # noqa: ANN001, ANN201
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmloop.eval.text_metrics import perplexity
    from llmloop.models.quantize import load_texts

    src = resolve(db, config.version)
    texts = load_texts(config.texts, config.max_texts, db) if config.evaluate else []
    name = pick_name(db, config.name, src, src.kind) if config.register_version else (config.name or f"{src.name}-pruned")
    out = Path(config.out) if config.out else default_out(db, name)
    model = AutoModelForCausalLM.from_pretrained(src.base_model, dtype="auto")
    tok = AutoTokenizer.from_pretrained(src.adapter_path if src.adapter_path and
                                        (Path(src.adapter_path) / "tokenizer_config.json").exists() else src.base_model)
    if src.adapter_path:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, src.adapter_path).merge_and_unload()
    model.eval()
    report: dict = {"method": config.method, "amount": config.amount, "scope": config.scope}
    if texts:
        report["perplexity_before"] = perplexity(model, tok, texts, max_length=512)
    report.update(prune_model(model, config.method, config.amount, config.scope))
    if progress:
        progress(1, 1)
    if texts:
        report["perplexity_after"] = perplexity(model, tok, texts, max_length=512)
        report["perplexity_delta"] = report["perplexity_after"] - report["perplexity_before"]
    with staged_dir(out) as tmp:
        model.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
        copy_side_files(src.base_model, tmp, skip=("config.json", "tokenizer.json", "tokenizer_config.json",
                                                   "special_tokens_map.json", "chat_template.jinja"))
    version = None
    if config.register_version:
        summary = {k: v for k, v in report.items() if k != "layers"}
        version = publish(db, name=name, kind=src.kind, base_model=str(out.resolve()), adapter_path=None, operation="prune",
                          parents=[src], recipe=config.model_dump(mode="json"), report={**summary, "layers": report["layers"]},
                          note=f"{src.name} pruned ({config.method}, {config.amount:.0%})")
    return out, version, report
