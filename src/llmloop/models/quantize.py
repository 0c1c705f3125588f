"""M7: quantize / cast a version, with a size and quality-delta report.

- ``fp16`` / ``bf16``: every floating tensor cast, streamed shard by shard (no model in memory);
  the result is a normal HF model, registered as a version.
- ``int8`` / ``int4``: bitsandbytes (LLM.int8 / NF4) through transformers' ``BitsAndBytesConfig``,
  saved with its ``quantization_config`` and registered. bitsandbytes ≥ 0.50 runs these on CPU too
  (its CPU backend; compute in fp32 there, bf16 on a GPU); without the package the command stops
  before any work, naming the install.
- ``gguf``: one ``.gguf`` file through the ``gguf`` package (``gguf_export.py``; f32/f16/bf16/q8_0/q4_0).
  It is an artifact for llama.cpp-family runtimes, not something the embedded engine serves, so it
  is recorded as an *export* of the version (``llmloop models show`` lists it), not as a version.

Quality delta: perplexity of the source and of the result on the same texts (``--texts``: a JSONL
file of ``{"text"}`` or a stored pt dataset, read by the eval package's ``load_texts``; default: 32
documents of the shipped demo corpus), through the eval package's ``perplexity``; the GGUF file is loaded back with transformers (which dequantizes it).
Adapter versions are folded into their base first (``merge-lora``'s streamed merge).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from llmloop.models.sources import Source, SurgeryError, default_out, pick_name, publish, resolve
from llmloop.models.weights import ShardWriter, TensorInfo, WeightReader, copy_side_files, dir_bytes, read_config, staged_dir

ProgressFn = Callable[[int, int], None]
_CAST = {"fp16": ("float16", "F16"), "bf16": ("bfloat16", "BF16")}


class QuantizeConfig(BaseModel):
    """`llmloop models quantize`: a smaller copy of a version, with its size and perplexity delta."""

    model_config = ConfigDict(extra="forbid")

    version: str = Field(description="Version (or alias) or model folder to quantize")
    method: Literal["fp16", "bf16", "int8", "int4", "gguf"] = Field(description="fp16 | bf16 (cast) | int8 | int4 (bitsandbytes) | gguf (file)")
    gguf_type: Literal["f32", "f16", "bf16", "q8_0", "q4_0"] = Field("q8_0", description="gguf: tensor type of the 2-D weights")
    texts: str | None = Field(None, description="Texts for the perplexity delta: JSONL of {\"text\"} or a stored pt dataset NAME[@v1.2] (default: demo corpus)")
    max_texts: int = Field(32, ge=1, description="Use at most this many texts for the perplexity delta")
    evaluate: bool = Field(True, description="Measure the perplexity delta (off: sizes only)")
    max_shard_mb: int = Field(2048, ge=1, description="Largest output safetensors shard in MiB")
    out: Path | None = Field(None, description="Output folder (must not exist); default: the workspace's models/<name>")
    name: str | None = Field(None, description="Name of the registered version (default: next free after the source)")
    register_version: bool = Field(True, description="Register the result (a version; gguf: an export of the source)")


def load_texts(spec: str | None, limit: int, db=None) -> list[str]:  # noqa: ANN001
    """The eval package's text loader (file or stored pt dataset); default: the shipped demo corpus."""
    if spec is None:
        from llmloop.resources import demo_texts

        texts = [t for t in demo_texts() if len(t) > 20]
    else:
        from llmloop.eval.evalset import load_texts as eval_texts

        try:
            texts, _ = eval_texts(spec, db)
        except ValueError as e:
            raise SurgeryError(f"--texts: {e}") from None
    if not texts:
        raise SurgeryError(f"--texts {spec}: no texts")
    return texts[:limit]


def model_perplexity(model_dir: Path, texts: list[str], *, gguf_file: str | None = None, tokenizer_dir: Path | None = None) -> float:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmloop.eval.text_metrics import perplexity

    # on CPU the stored weights are measured in fp32 (the values are the stored ones, the matmuls exact)
    kwargs: dict = {"gguf_file": gguf_file, "dtype": torch.float32} if gguf_file else {"dtype": "auto"}
    if not gguf_file and "quantization_config" in read_config(model_dir):
        kwargs["device_map"] = _device_map()  # bitsandbytes weights load onto their device directly
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), **kwargs).eval()
    if model.dtype == torch.float16 and not torch.cuda.is_available():
        model = model.float()
    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir or model_dir))
    return perplexity(model, tok, texts, max_length=512)


def cast_model(src_dir: Path, out: Path, method: str, *, max_shard_bytes: int, progress: ProgressFn | None = None) -> dict:
    import torch

    torch_name, st_name = _CAST[method]
    dtype = getattr(torch, torch_name)
    reader = WeightReader(src_dir)
    infos = [TensorInfo(i.name, i.shape, st_name if i.dtype in ("F32", "F16", "BF16", "F64") else i.dtype)
             for i in reader.infos.values()]
    writer = ShardWriter(out, infos, max_shard_bytes, metadata=reader.metadata)
    for k, info in enumerate(infos):
        t = reader.get(info.name)
        writer.add(info.name, t.to(dtype) if torch.is_floating_point(t) else t)
        if progress:
            progress(k + 1, len(infos))
    writer.finish()
    copy_side_files(src_dir, out)
    cfg = read_config(src_dir)
    cfg["dtype"] = torch_name
    cfg.pop("torch_dtype", None)
    (out / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True), encoding="utf-8")
    return {"dtype": torch_name}


def bnb_available() -> str | None:
    """None when bitsandbytes can run here, else the reason it cannot (and the fix)."""
    import importlib

    import torch

    try:
        bnb = importlib.import_module("bitsandbytes")
    except ImportError:
        return "bitsandbytes is not installed; `pip install -e \".[models]\"` (or `pip install bitsandbytes`)"
    if not torch.cuda.is_available():
        from packaging.version import Version

        if Version(bnb.__version__) < Version("0.50"):
            return (f"bitsandbytes {bnb.__version__} needs a CUDA GPU and none is visible; bitsandbytes>=0.50 also "
                    f"runs on CPU (`pip install -U bitsandbytes`), or use --method bf16/fp16/gguf")
    return None


def _device_map() -> str:
    import torch

    return "auto" if torch.cuda.is_available() else "cpu"


def bnb_quantize(src_dir: Path, out: Path, method: str) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    compute = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    q = (BitsAndBytesConfig(load_in_8bit=True) if method == "int8" else
         BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute))
    model = AutoModelForCausalLM.from_pretrained(str(src_dir), quantization_config=q, device_map=_device_map())
    model.save_pretrained(str(out))
    AutoTokenizer.from_pretrained(str(src_dir)).save_pretrained(str(out))
    copy_side_files(src_dir, out, skip=("config.json",))
    return {"bnb": q.to_dict()}


def _full_weights(src: Source, scratch: Path) -> Path:
    if not src.adapter_path:
        return Path(src.base_model)
    from llmloop.models.lora_merge import merge_lora_stream

    d = scratch / "folded"
    d.mkdir()
    merge_lora_stream(Path(src.base_model), Path(src.adapter_path), d)
    return d


def run_quantize(db, config: QuantizeConfig, progress: ProgressFn | None = None):  # noqa: ANN001, ANN201
    """Returns (path, version or None, report). gguf: path is the .gguf file, recorded as an export."""
    from llmloop.store import registry

    src = resolve(db, config.version)
    if config.method in ("int8", "int4"):
        reason = bnb_available()
        if reason:
            raise SurgeryError(f"--method {config.method}: {reason}")
    texts = load_texts(config.texts, config.max_texts, db) if config.evaluate else []
    gguf = config.method == "gguf"
    name = (pick_name(db, config.name, src, src.kind) if config.register_version and not gguf
            else (config.name or f"{src.name}-{config.method}"))
    out = Path(config.out) if config.out else default_out(db, name if not gguf else f"{src.name}-gguf-{config.gguf_type}")
    with tempfile.TemporaryDirectory(prefix="llmloop-quant-") as scratch:
        full = _full_weights(src, Path(scratch))
        before = dir_bytes_weights(full)
        report: dict = {"method": config.method, "source": src.name, "bytes_before": before}
        with staged_dir(out) as tmp:
            if gguf:
                from llmloop.models.gguf_export import export_gguf

                report.update(export_gguf(full, tmp / "model.gguf", config.gguf_type))
                for f in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
                    if (full / f).exists():
                        (tmp / f).write_bytes((full / f).read_bytes())
            elif config.method in _CAST:
                report.update(cast_model(full, tmp, config.method, max_shard_bytes=config.max_shard_mb * 2**20, progress=progress))
            else:
                report.update(bnb_quantize(full, tmp, config.method))
            report["bytes_after"] = (tmp / "model.gguf").stat().st_size if gguf else dir_bytes_weights(tmp)
            report["size_ratio"] = round(report["bytes_after"] / before, 4)
            if texts:
                report["perplexity_before"] = model_perplexity(full, texts)
                report["perplexity_after"] = (model_perplexity(tmp, texts, gguf_file="model.gguf", tokenizer_dir=full) if gguf
                                              else model_perplexity(tmp, texts))
                report["perplexity_delta"] = report["perplexity_after"] - report["perplexity_before"]
                report["perplexity_texts"] = len(texts)
    version = None
    if config.register_version:
        if gguf:
            report["export_id"] = registry.record_export(db, src.name, "gguf", str((out / "model.gguf").resolve()), report)
        else:
            version = publish(db, name=name, kind=src.kind, base_model=str(out.resolve()), adapter_path=None,
                              operation="quantize", parents=[src], recipe=config.model_dump(mode="json"), report=report,
                              note=f"{src.name} quantized ({config.method})")
    return out, version, report


def dir_bytes_weights(d: Path) -> int:
    """Bytes of the weight files (safetensors) in a model folder."""
    files = list(Path(d).glob("*.safetensors"))
    return sum(f.stat().st_size for f in files) if files else dir_bytes(d)
