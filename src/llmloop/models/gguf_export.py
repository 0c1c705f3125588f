"""GGUF export (for llama.cpp / Ollama / LM Studio) of Llama-architecture models, via the ``gguf`` package.

The ``gguf`` package (maintained in llama.cpp's repository) provides the writer, the tensor-name
map and the quantizers (``gguf.quants``: Q8_0, Q4_0 … in numpy); llama.cpp's
``convert_hf_to_gguf.py`` is not on PyPI, so the little glue it would do for a ``LlamaForCausalLM``
is here, following it: hyper-parameters under ``llama.*``, Q/K rows permuted into GGML's rotary
layout, 1-D tensors (norms) kept in F32, a byte-level BPE tokenizer written as ``gpt2`` tokens +
merges, special ids and the chat template through ``gguf.SpecialVocab``. Tensors are read and
written one at a time. Other architectures are refused with the converter to use instead.
The tests load the file back with transformers (``from_pretrained(..., gguf_file=...)``), which
dequantizes and undoes the permutation, and compare logits.
"""

from __future__ import annotations

import json
from pathlib import Path

from llmloop.models.sources import SurgeryError
from llmloop.models.weights import WeightReader, read_config

GGUF_TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0")


def _permute(w, n_head: int, n_head_kv: int | None):  # noqa: ANN001, ANN202 - numpy arrays
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _vocab(model_dir: Path) -> tuple[list[str], list[int]]:
    import gguf
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    by_id = {i: t for t, i in tok.get_vocab().items()}
    added = {t.content: t for t in tok.added_tokens_decoder.values()}
    tokens, types = [], []
    for i in range(len(by_id)):
        t = by_id.get(i, f"[PAD{i}]")
        tokens.append(t)
        if t in added:
            types.append(int(gguf.TokenType.CONTROL if added[t].special else gguf.TokenType.USER_DEFINED))
        else:
            types.append(int(gguf.TokenType.NORMAL if i in by_id else gguf.TokenType.UNUSED))
    return tokens, types


def export_gguf(model_dir: str | Path, out_file: str | Path, outtype: str = "q8_0") -> dict:
    """Write ``model_dir`` (a full HF Llama model) as one GGUF file; returns a small report."""
    import gguf
    import numpy as np
    import torch

    model_dir, out_file = Path(model_dir), Path(out_file)
    if outtype not in GGUF_TYPES:
        raise SurgeryError(f"--gguf-type {outtype!r}: use one of {', '.join(GGUF_TYPES)}")
    cfg = read_config(model_dir)
    if cfg.get("model_type") != "llama":
        raise SurgeryError(
            f"{model_dir}: GGUF export here covers model_type 'llama' (got {cfg.get('model_type')!r}); for other "
            f"architectures run llama.cpp's convert_hf_to_gguf.py on the merged folder (see docs/models.md)"
        )
    n_head, n_kv = cfg["num_attention_heads"], cfg.get("num_key_value_heads", cfg["num_attention_heads"])
    n_layers = cfg["num_hidden_layers"]
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // n_head
    qtype = {"f32": gguf.GGMLQuantizationType.F32, "f16": gguf.GGMLQuantizationType.F16,
             "bf16": gguf.GGMLQuantizationType.BF16, "q8_0": gguf.GGMLQuantizationType.Q8_0,
             "q4_0": gguf.GGMLQuantizationType.Q4_0}[outtype]
    ftype = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16, "bf16": gguf.LlamaFileType.MOSTLY_BF16,
             "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0, "q4_0": gguf.LlamaFileType.MOSTLY_Q4_0}[outtype]

    w = gguf.GGUFWriter(str(out_file), "llama", use_temp_file=True)  # tensors spool to disk, not RAM
    w.add_name(model_dir.name)
    w.add_context_length(cfg.get("max_position_embeddings", 2048))
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(n_layers)
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_rope_dimension_count(head_dim)
    w.add_layer_norm_rms_eps(cfg.get("rms_norm_eps", 1e-6))
    rope = (cfg.get("rope_parameters") or {}).get("rope_theta") or cfg.get("rope_theta") or 10000.0
    w.add_rope_freq_base(float(rope))
    w.add_vocab_size(cfg["vocab_size"])
    w.add_file_type(ftype)
    tokens, types = _vocab(model_dir)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    special = gguf.SpecialVocab(model_dir, load_merges=True, n_vocab=len(tokens))
    special.add_to_gguf(w, quiet=True)

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_layers)
    reader = WeightReader(model_dir)
    counts: dict[str, int] = {}
    for name in reader.names():
        if name.endswith("rotary_emb.inv_freq"):
            continue
        new = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if new is None:
            raise SurgeryError(f"{model_dir}: no GGUF name for tensor {name!r}; use llama.cpp's converter")
        data = reader.get(name).to(torch.float32).numpy()
        if name.endswith("q_proj.weight"):
            data = _permute(data, n_head, n_head)
        elif name.endswith("k_proj.weight"):
            data = _permute(data, n_head, n_kv)
        t = qtype if data.ndim > 1 else gguf.GGMLQuantizationType.F32
        if t in (gguf.GGMLQuantizationType.Q8_0, gguf.GGMLQuantizationType.Q4_0) and data.shape[-1] % 32:
            t = gguf.GGMLQuantizationType.F16  # block quantization needs rows divisible by 32 (llama.cpp does the same)
        if t == gguf.GGMLQuantizationType.F32:
            w.add_tensor(new, np.ascontiguousarray(data, dtype=np.float32))
        elif t == gguf.GGMLQuantizationType.F16:
            w.add_tensor(new, np.ascontiguousarray(data, dtype=np.float16))
        else:
            q = gguf.quants.quantize(data, t)
            w.add_tensor(new, q, raw_shape=q.shape, raw_dtype=t)
        counts[t.name] = counts.get(t.name, 0) + 1
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return {"format": "gguf", "gguf_type": outtype, "tensor_types": counts, "file": out_file.name,
            "config": json.dumps({k: cfg.get(k) for k in ("model_type", "hidden_size", "num_hidden_layers")})}
