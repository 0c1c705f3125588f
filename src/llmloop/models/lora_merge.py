"""M2: fold a LoRA adapter into its base → a full, sharded safetensors HF model.

Two engines, same result (the tests check both against the adapter-on logits):
- ``peft`` loads base + adapter and calls peft's ``merge_and_unload`` — the reference, but the
  whole model is in memory (fine up to a few B parameters).
- ``stream`` (default) never loads the model: for each base tensor it reads the matching
  ``lora_A``/``lora_B`` and writes ``W + scale · B @ A`` (scale = alpha/r, or alpha/√r with rsLoRA,
  per-module rank/alpha patterns honoured), one tensor at a time, so the peak memory is one output
  shard. peft has no tensor-streaming merge; this is the arithmetic of peft's ``get_delta_weight``
  for ``nn.Linear`` (fan_in_fan_out transposes), and adapters it does not cover (DoRA, LoRA on
  embeddings/convolutions) are refused with the flag that works (``--engine peft``).

Vocabulary-resized adapters (``modules_to_save`` holding a bigger ``embed_tokens``/``lm_head``)
are handled by both engines: the saved full matrices replace the base's, ``vocab_size`` in the
config follows, and the adapter folder's tokenizer (which has the added tokens) is copied. A
resized vocabulary without saved embeddings cannot be merged and is refused.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from llmloop.models.weights import (
    DEFAULT_SHARD_BYTES,
    ShardWriter,
    WeightReader,
    copy_side_files,
    read_config,
    staged_dir,
)
from llmloop.models.sources import SurgeryError

ProgressFn = Callable[[int, int], None]
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                    "added_tokens.json", "vocab.json", "merges.txt", "tokenizer.model")


class MergeLoraConfig(BaseModel):
    """`llmloop models merge-lora`: fold a version's LoRA adapter into its base weights."""

    model_config = ConfigDict(extra="forbid")

    version: str = Field(description="Version (or alias) whose adapter is merged, or an adapter folder")
    out: Path | None = Field(None, description="Output folder (must not exist); default: the workspace's models/<name>")
    engine: Literal["stream", "peft"] = Field("stream", description="stream: tensor by tensor (memory ≈ one shard); peft: merge_and_unload in memory")
    max_shard_mb: int = Field(2048, ge=1, description="Largest safetensors shard in MiB")
    name: str | None = Field(None, description="Name of the registered version (default: next free after the source)")
    register_version: bool = Field(True, description="Register the merged model as a candidate version with lineage")


@dataclass(frozen=True)
class LoraFolding:
    scale: float
    a: str
    b: str
    fan_in_fan_out: bool


def _adapter_config(adapter_dir: Path) -> dict:
    f = adapter_dir / "adapter_config.json"
    if not f.exists():
        raise SurgeryError(f"{adapter_dir}: no adapter_config.json; is this a PEFT LoRA adapter?")
    cfg = json.loads(f.read_text(encoding="utf-8"))
    if cfg.get("peft_type", "LORA") != "LORA":
        raise SurgeryError(f"{adapter_dir}: peft_type {cfg.get('peft_type')!r}; only LoRA adapters can be merged")
    return cfg


def _pattern_value(patterns: dict, module: str, default: float) -> float:
    for key, val in (patterns or {}).items():
        if re.search(rf"(^|\.){re.escape(key)}$", module) or re.fullmatch(key, module):
            return val
    return default


def _strip(name: str) -> str:
    """``base_model.model.model.layers.0.q_proj.lora_A.weight`` → ``model.layers.0.q_proj``."""
    name = name.removeprefix("base_model.model.")
    for tail in (".lora_A.weight", ".lora_B.weight"):
        name = name.removesuffix(tail)
    return name


def plan_folding(adapter_dir: Path, reader: WeightReader, cfg: dict) -> tuple[dict[str, LoraFolding], dict[str, str]]:
    """base tensor name → how to fold; base tensor name → adapter tensor replacing it (modules_to_save)."""
    if cfg.get("use_dora"):
        raise SurgeryError(f"{adapter_dir}: a DoRA adapter; merge it with --engine peft")
    folds: dict[str, LoraFolding] = {}
    replace: dict[str, str] = {}
    r0, alpha0 = cfg.get("r", 8), cfg.get("lora_alpha", 8)
    for name in reader.names():
        if "lora_embedding_" in name or "lora_magnitude" in name:
            raise SurgeryError(f"{adapter_dir}: tensor {name} is not a Linear LoRA; merge it with --engine peft")
        if name.endswith(".lora_A.weight"):
            module = _strip(name)
            r = _pattern_value(cfg.get("rank_pattern"), module, r0)
            alpha = _pattern_value(cfg.get("alpha_pattern"), module, alpha0)
            scale = alpha / math.sqrt(r) if cfg.get("use_rslora") else alpha / r
            folds[module + ".weight"] = LoraFolding(scale, name, name.replace(".lora_A.", ".lora_B."),
                                                    bool(cfg.get("fan_in_fan_out")))
        elif ".original_module." in name:
            continue  # peft's copy of the untouched module
        elif ".modules_to_save." in name:
            replace[re.sub(r"\.modules_to_save(\.[^.]+)?(?=\.(weight|bias)$)", "", name.removeprefix("base_model.model."))] = name
        elif "lora_" not in name:  # save_embedding_layers: the resized base matrix itself
            replace.setdefault(name.removeprefix("base_model.model."), name)
    return folds, replace


def merge_lora_stream(base_dir: Path, adapter_dir: Path, out: Path, *, max_shard_bytes: int = DEFAULT_SHARD_BYTES,
                      progress: ProgressFn | None = None) -> dict:
    """Write base + adapter as full weights into ``out`` (an existing empty folder)."""
    import torch

    cfg = _adapter_config(adapter_dir)
    base = WeightReader(base_dir)
    adapter = WeightReader(adapter_dir)
    folds, replace = plan_folding(adapter_dir, adapter, cfg)
    model_cfg = read_config(base_dir)
    untie = False
    if model_cfg.get("tie_word_embeddings") and "lm_head.weight" not in base.infos:
        # adapter-on, the head is the (possibly resized) base embedding unless lm_head itself was saved;
        # when that differs from the input embedding the adapter uses, the merged model must untie them
        emb = "model.embed_tokens.weight"
        plain = f"base_model.model.{emb}"
        head_src = replace.get("lm_head.weight") or (plain if plain in adapter.infos else emb)
        emb_src = replace.get(emb)
        if emb_src and head_src != emb_src:
            untie = True
            replace["lm_head.weight"] = head_src  # `emb` alone names the base's own matrix
        else:
            replace.pop("lm_head.weight", None)
    missing = [n for n in list(folds) + [d for d in replace if not (untie and d == "lm_head.weight")] if n not in base.infos]
    if missing:
        raise SurgeryError(
            f"adapter {adapter_dir} targets {len(missing)} tensors the base {base_dir} does not have (e.g. {missing[0]}); "
            f"is base_model_name_or_path the right model?"
        )
    infos = []
    for name, info in base.infos.items():
        if name in replace:
            info = type(info)(name, _src_info(replace[name], adapter, base).shape, info.dtype)
        infos.append(info)
    if untie:
        emb_info = base.infos["model.embed_tokens.weight"]
        infos.append(type(emb_info)("lm_head.weight", _src_info(replace["lm_head.weight"], adapter, base).shape, emb_info.dtype))
    vocab = _resized_vocab(model_cfg, base, adapter, replace, adapter_dir)
    writer = ShardWriter(out, infos, max_shard_bytes, metadata=base.metadata)
    for i, info in enumerate(infos):
        name = info.name
        if name in replace:
            src = replace[name]
            t = (adapter.get(src) if src in adapter.infos else base.get(src)).to(getattr(torch, _TORCH_DTYPE[info.dtype]))
        else:
            t = base.get(name)
            fold = folds.get(name)
            if fold is not None:
                a = adapter.get(fold.a).float()
                b = adapter.get(fold.b).float()
                delta = (b @ a) * fold.scale
                if fold.fan_in_fan_out:
                    delta = delta.T
                if delta.shape != t.shape:
                    raise SurgeryError(f"{name}: LoRA delta {tuple(delta.shape)} does not fit the base tensor {tuple(t.shape)}")
                t = (t.float() + delta).to(t.dtype)
        writer.add(name, t)
        if progress:
            progress(i + 1, len(infos))
    files = writer.finish()
    copy_side_files(base_dir, out)
    if untie:
        model_cfg["tie_word_embeddings"] = False
    if vocab is not None:
        model_cfg["vocab_size"] = vocab
        _copy_tokenizer(adapter_dir, out)
    model_cfg.pop("quantization_config", None)
    (out / "config.json").write_text(json.dumps(model_cfg, indent=2, sort_keys=True), encoding="utf-8")
    return {"engine": "stream", "folded": len(folds), "replaced": sorted(replace), "shards": len(files),
            "vocab_size": vocab or model_cfg.get("vocab_size")}


_TORCH_DTYPE = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64"}


def _src_info(src: str, adapter: WeightReader, base: WeightReader):  # noqa: ANN202
    return adapter.infos[src] if src in adapter.infos else base.infos[src]


def _resized_vocab(model_cfg: dict, base: WeightReader, adapter: WeightReader, replace: dict[str, str],
                   adapter_dir: Path) -> int | None:
    """The new vocabulary size when the adapter carries resized embeddings; refuse a resize it cannot merge."""
    vocab = model_cfg.get("vocab_size")
    sizes = {_src_info(src, adapter, base).shape[0] for dst, src in replace.items() if dst.endswith(("embed_tokens.weight", "lm_head.weight"))}
    tok = adapter_dir / "tokenizer.json"
    if tok.exists():
        from transformers import PreTrainedTokenizerFast

        n_tok = len(PreTrainedTokenizerFast(tokenizer_file=str(tok)))
        if vocab is not None and n_tok > vocab and not sizes:
            raise SurgeryError(
                f"{adapter_dir}: its tokenizer has {n_tok} tokens but the base vocabulary is {vocab} and the adapter "
                f"saved no embeddings; retrain with modules_to_save=['embed_tokens','lm_head'] to merge a resized vocabulary"
            )
    if not sizes or sizes == {vocab}:
        return None
    if len(sizes) > 1:
        raise SurgeryError(f"{adapter_dir}: embed_tokens and lm_head disagree on the vocabulary size {sorted(sizes)}")
    return sizes.pop()


def _copy_tokenizer(adapter_dir: Path, out: Path) -> None:
    for name in _TOKENIZER_FILES:
        f = adapter_dir / name
        if f.exists():
            (out / name).write_bytes(f.read_bytes())


def merge_lora_peft(base_dir: Path, adapter_dir: Path, out: Path, *, max_shard_bytes: int = DEFAULT_SHARD_BYTES) -> dict:
    """peft's ``merge_and_unload`` on the whole model in memory."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype="auto")
    tok_dir = adapter_dir if (adapter_dir / "tokenizer_config.json").exists() else base_dir
    tokenizer = AutoTokenizer.from_pretrained(str(tok_dir))
    reader = WeightReader(adapter_dir)
    emb = [i.shape[0] for n, i in reader.infos.items() if "embed_tokens" in n and "lora_" not in n]
    if emb and emb[0] != model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(emb[0])
    merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(str(out), max_shard_size=max_shard_bytes)
    tokenizer.save_pretrained(str(out))
    copy_side_files(base_dir, out, skip=("config.json", *_TOKENIZER_FILES))
    return {"engine": "peft", "vocab_size": merged.config.vocab_size}


def merge_lora(db, config: MergeLoraConfig, progress: ProgressFn | None = None):  # noqa: ANN001, ANN201
    """Resolve → merge into a staged folder → rename → register. Returns (path, version or None, report)."""
    from llmloop.models.sources import default_out, pick_name, publish, resolve

    src = resolve(db, config.version)
    if not src.adapter_path:
        raise SurgeryError(f"{config.version!r} has no LoRA adapter (its weights are full already: {src.base_model})")
    name = pick_name(db, config.name, src, src.kind) if config.register_version else (config.name or f"{src.name}-merged")
    out = Path(config.out) if config.out else default_out(db, name)
    shard = config.max_shard_mb * 2**20
    with staged_dir(out) as tmp:
        if config.engine == "stream":
            report = merge_lora_stream(Path(src.base_model), Path(src.adapter_path), tmp, max_shard_bytes=shard, progress=progress)
        else:
            report = merge_lora_peft(Path(src.base_model), Path(src.adapter_path), tmp, max_shard_bytes=shard)
    version = None
    if config.register_version:
        version = publish(db, name=name, kind=src.kind, base_model=str(out.resolve()), adapter_path=None,
                          operation="merge-lora", parents=[src], recipe=config.model_dump(mode="json"), report=report,
                          note=f"{src.name} with its adapter merged into the weights")
    return out, version, report
