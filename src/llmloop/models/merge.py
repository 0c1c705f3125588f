"""M3: merge models — linear, SLERP, TIES, DARE — for full models and for LoRA adapters on one base.

Full models are merged tensor by tensor straight from their safetensors shards (``weights.py``), so
two 1.5B models merge in about one shard of memory. The combination rules are peft's
(``peft.utils.merge_utils``: ``task_arithmetic``, ``ties``, ``dare_linear``, ``dare_ties``), applied to
task vectors ``θ_i − θ_base`` for TIES/DARE and to the weights themselves for linear. peft has no
SLERP, so ``slerp`` below is the usual formula (as in mergekit): interpolate along the great circle
between the two flattened tensors, falling back to linear interpolation when they are (anti)parallel.

LoRA adapters on one base merge through peft's ``add_weighted_adapter``: linear uses ``cat`` (the
exact Σ wᵢ·ΔWᵢ, rank Σ rᵢ — peft's ``linear`` combines A and B separately and adds cross terms),
TIES/DARE use the ``*_svd`` variants (combine the full deltas, then SVD back to ``--svd-rank``).
SLERP of adapters has no low-rank form: each adapter is folded into its base first and the full
models are interpolated. Anything that does not fit (different architectures, shapes, bases) is
refused before any tensor is read.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from llmloop.models.sources import Source, SurgeryError, default_out, pick_name, publish, resolve
from llmloop.models.weights import ShardWriter, WeightReader, copy_side_files, read_config, staged_dir

Method = Literal["linear", "slerp", "ties", "dare_linear", "dare_ties"]
ProgressFn = Callable[[int, int], None]
NEEDS_BASE = ("ties", "dare_linear", "dare_ties")
# config.json fields that must agree for tensors to mean the same thing
ARCH_FIELDS = ("model_type", "architectures", "hidden_size", "intermediate_size", "num_hidden_layers",
               "num_attention_heads", "num_key_value_heads", "vocab_size", "tie_word_embeddings")
PEFT_COMBINATION = {"linear": "cat", "ties": "ties_svd", "dare_linear": "dare_linear_svd", "dare_ties": "dare_ties_svd"}


class MergeConfig(BaseModel):
    """`llmloop models merge`: combine two or more models (or LoRA adapters on one base) into one."""

    model_config = ConfigDict(extra="forbid")

    models: list[str] = Field(description="Versions, aliases or model folders to merge (two or more; slerp: exactly two)")
    method: Method = Field("linear", description="linear | slerp | ties | dare_linear | dare_ties")
    weights: list[float] | None = Field(None, description="One weight per model (default: equal weights summing to 1)")
    base: str | None = Field(None, description="Base the task vectors are taken against (ties/dare); default: the models' common base")
    density: float = Field(0.5, gt=0, le=1, description="ties/dare: share of each task vector kept")
    t: float = Field(0.5, ge=0, le=1, description="slerp: position between the first (0) and the second model (1)")
    majority_sign: Literal["total", "frequency"] = Field("total", description="ties/dare_ties: how the sign is elected")
    svd_rank: int | None = Field(None, ge=1, description="LoRA ties/dare: rank of the merged adapter (default: the largest input rank)")
    seed: int = Field(0, description="Seed for DARE's random drop")
    max_shard_mb: int = Field(2048, ge=1, description="Largest output safetensors shard in MiB")
    out: Path | None = Field(None, description="Output folder (must not exist); default: the workspace's models/<name>")
    name: str | None = Field(None, description="Name of the registered version (default: next free after the first model)")
    register_version: bool = Field(True, description="Register the result as a candidate version with lineage")

    @model_validator(mode="after")
    def _check(self) -> "MergeConfig":
        if len(self.models) < 2:
            raise ValueError(f"--models: give at least two models to merge, got {self.models}")
        if self.method == "slerp" and len(self.models) != 2:
            raise ValueError(f"--method slerp interpolates exactly two models, got {len(self.models)}")
        if self.weights is not None and len(self.weights) != len(self.models):
            raise ValueError(f"--weights: {len(self.weights)} weights for {len(self.models)} models; give one per model")
        return self

    def resolved_weights(self) -> list[float]:
        return self.weights if self.weights is not None else [1.0 / len(self.models)] * len(self.models)


# -- the arithmetic, on tensors -----------------------------------------------------------------
def slerp(t: float, a, b, eps: float = 1e-8, dot_threshold: float = 0.9995):  # noqa: ANN001, ANN201
    """Spherical interpolation between tensors ``a`` (t=0) and ``b`` (t=1); linear if nearly parallel."""
    import torch

    a32, b32 = a.float(), b.float()
    if t == 0:
        return a32.clone()
    if t == 1:
        return b32.clone()
    na, nb = a32.flatten() / (a32.norm() + eps), b32.flatten() / (b32.norm() + eps)
    dot = torch.clamp((na * nb).sum(), -1.0, 1.0)
    if abs(float(dot)) > dot_threshold:
        return (1 - t) * a32 + t * b32
    theta = torch.arccos(dot)
    s = torch.sin(theta)
    return (torch.sin((1 - t) * theta) / s) * a32 + (torch.sin(t * theta) / s) * b32


def merge_tensors(method: str, tensors: Sequence, weights: Sequence[float], *, base=None,  # noqa: ANN001
                  density: float = 0.5, t: float = 0.5, majority_sign: str = "total"):  # noqa: ANN201
    """One merged float32 tensor from same-shaped inputs (``base`` required for ties/dare)."""
    import torch
    from peft.utils import merge_utils

    xs = [x.float() for x in tensors]
    w = torch.tensor(list(weights), dtype=torch.float32)
    if method == "linear":
        return merge_utils.task_arithmetic(xs, w)
    if method == "slerp":
        return slerp(t, xs[0], xs[1])
    if method not in NEEDS_BASE:
        raise SurgeryError(f"unknown merge method {method!r}; use one of linear, slerp, ties, dare_linear, dare_ties")
    if base is None:
        raise SurgeryError(f"--method {method} needs a base model (task vectors are θ_i − θ_base); pass --base")
    b = base.float()
    deltas = [x - b for x in xs]
    if method == "ties":
        return b + merge_utils.ties(deltas, w, density, majority_sign)
    if method == "dare_linear":
        return b + merge_utils.dare_linear(deltas, w, density)
    return b + merge_utils.dare_ties(deltas, w, density, majority_sign)


# -- big tensors in row chunks ------------------------------------------------------------------
CHUNK_ELEMENTS = 16 * 2**20  # rows are read and merged this many elements at a time


def _row_chunks(shape: tuple[int, ...]) -> list[tuple[int, int]]:
    per_row = 1
    for d in shape[1:]:
        per_row *= d
    step = max(1, CHUNK_ELEMENTS // max(per_row, 1))
    return [(i, min(i + step, shape[0])) for i in range(0, shape[0], step)]


def merge_chunked(method: str, readers: Sequence[WeightReader], name: str, weights: Sequence[float], t: float):  # noqa: ANN201
    """linear / slerp of one big tensor, read and combined a block of rows at a time.

    The elementwise rules need nothing else; SLERP first accumulates the dot product and norms over
    the blocks (float64), then applies the same two coefficients to every block. TIES/DARE are not
    chunked: TIES' trim is a top-k over the whole tensor.
    """
    import torch

    info = readers[0].infos[name]
    dtype = readers[0].get_rows(name, 0, 1).dtype
    out = torch.empty(info.shape, dtype=dtype)
    chunks = _row_chunks(info.shape)
    if method == "linear":
        for a, b in chunks:
            acc = sum(w * r.get_rows(name, a, b).float() for w, r in zip(weights, readers))
            out[a:b] = acc.to(dtype)
        return out
    if t in (0, 1):
        src = readers[0 if t == 0 else 1]
        for a, b in chunks:
            out[a:b] = src.get_rows(name, a, b)
        return out
    dot = na = nb = 0.0
    for a, b in chunks:
        x, y = (r.get_rows(name, a, b).double() for r in readers[:2])
        dot, na, nb = dot + float((x * y).sum()), na + float((x * x).sum()), nb + float((y * y).sum())
    eps = 1e-8
    cos = max(-1.0, min(1.0, dot / ((na ** 0.5 + eps) * (nb ** 0.5 + eps))))
    if abs(cos) > 0.9995:
        ca, cb = 1 - t, t
    else:
        import math

        theta = math.acos(cos)
        ca, cb = math.sin((1 - t) * theta) / math.sin(theta), math.sin(t * theta) / math.sin(theta)
    for a, b in chunks:
        out[a:b] = (ca * readers[0].get_rows(name, a, b).float() + cb * readers[1].get_rows(name, a, b).float()).to(dtype)
    return out


# -- checks before any work ----------------------------------------------------------------------
def check_compatible(dirs: Sequence[Path], labels: Sequence[str]) -> list[WeightReader]:
    """Same architecture (config) and same tensor names/shapes, else a SurgeryError naming the difference."""
    cfgs = [read_config(d) for d in dirs]
    for f in ARCH_FIELDS:
        vals = [c.get(f) for c in cfgs]
        if any(v != vals[0] for v in vals[1:]):
            seen = ", ".join(f"{lab}: {v}" for lab, v in zip(labels, vals))
            raise SurgeryError(f"architecture mismatch in config.json field {f!r} ({seen}); only models of one architecture can be merged")
    readers = [WeightReader(d) for d in dirs]
    ref = readers[0].infos
    for lab, r in zip(labels[1:], readers[1:]):
        only_a, only_b = set(ref) - set(r.infos), set(r.infos) - set(ref)
        if only_a or only_b:
            ex = sorted(only_a or only_b)[0]
            raise SurgeryError(f"{labels[0]} and {lab} hold different tensors (e.g. {ex!r}); same architecture and tensor names are needed")
        for n, info in ref.items():
            if r.infos[n].shape != info.shape:
                raise SurgeryError(f"tensor {n}: shape {info.shape} in {labels[0]} but {r.infos[n].shape} in {lab}")
    return readers


def merge_full(dirs: Sequence[Path], out: Path, config: MergeConfig, *, base_dir: Path | None = None,
               labels: Sequence[str] | None = None, progress: ProgressFn | None = None) -> dict:
    """Stream-merge full models into ``out`` (an existing empty folder); returns a report."""
    import torch

    labels = list(labels or [str(d) for d in dirs])
    all_dirs = [*dirs, *([base_dir] if base_dir else [])]
    readers = check_compatible(all_dirs, [*labels, *(["base"] if base_dir else [])])
    models, base = readers[: len(dirs)], (readers[-1] if base_dir else None)
    if config.method in NEEDS_BASE and base is None:
        raise SurgeryError(f"--method {config.method} needs --base (the model the others were fine-tuned from)")
    torch.manual_seed(config.seed)
    infos = list(models[0].infos.values())
    writer = ShardWriter(out, infos, config.max_shard_mb * 2**20, metadata=models[0].metadata)
    weights = config.resolved_weights()
    for i, info in enumerate(infos):
        numel = 1
        for d in info.shape:
            numel *= d
        if numel > CHUNK_ELEMENTS and config.method in ("linear", "slerp") and info.dtype in ("F32", "F16", "BF16"):
            writer.add(info.name, merge_chunked(config.method, models, info.name, weights, config.t))
            if progress:
                progress(i + 1, len(infos))
            continue
        first = models[0].get(info.name)
        if not torch.is_floating_point(first):
            writer.add(info.name, first)  # integer buffers are not merged
        else:
            xs = [first, *(m.get(info.name) for m in models[1:])]
            merged = merge_tensors(config.method, xs, weights, base=base.get(info.name) if base else None,
                                   density=config.density, t=config.t, majority_sign=config.majority_sign)
            writer.add(info.name, merged.to(first.dtype))
            del xs, merged
        if progress:
            progress(i + 1, len(infos))
    files = writer.finish()
    copy_side_files(dirs[0], out)
    return {"method": config.method, "tensors": len(infos), "shards": len(files), "bytes": writer.total_bytes}


def merge_adapters(sources: Sequence[Source], out: Path, config: MergeConfig) -> dict:
    """peft ``add_weighted_adapter`` over LoRA adapters on one base; writes the merged adapter to ``out``."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base_dir = sources[0].base_model
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype="auto")
    names = [f"m{i}" for i in range(len(sources))]
    peft_model = PeftModel.from_pretrained(model, sources[0].adapter_path, adapter_name=names[0])
    for n, s in zip(names[1:], sources[1:]):
        peft_model.load_adapter(s.adapter_path, adapter_name=n)
    targets = [set(peft_model.peft_config[n].target_modules) for n in names]
    if any(t != targets[0] for t in targets[1:]):
        raise SurgeryError(f"the adapters target different modules ({[sorted(t) for t in targets]}); merge them as full models "
                           f"(merge-lora each, then `models merge` the results)")
    combo = PEFT_COMBINATION[config.method]
    ranks = [peft_model.peft_config[n].r for n in names]
    kwargs = {}
    if combo.endswith("_svd"):
        # peft writes an adapter that does not load when the rank exceeds a target matrix's smaller side
        limit = min(min(m.weight.shape) for n, m in peft_model.named_modules()
                    if hasattr(m, "lora_A") and names[0] in m.lora_A)
        kwargs["svd_rank"] = min(config.svd_rank or max(ranks), limit)
    if config.method != "linear":
        kwargs["density"] = config.density
        if "ties" in config.method:
            kwargs["majority_sign_method"] = config.majority_sign
    torch.manual_seed(config.seed)
    peft_model.add_weighted_adapter(names, config.resolved_weights(), adapter_name="merged",
                                    combination_type=combo, **kwargs)
    for n in names:
        peft_model.delete_adapter(n)
    with tempfile.TemporaryDirectory(dir=out) as scratch:
        peft_model.save_pretrained(scratch, selected_adapters=["merged"])
        saved = Path(scratch) / "merged" if (Path(scratch) / "merged").is_dir() else Path(scratch)
        for f in saved.iterdir():
            if f.is_file():
                shutil.move(str(f), out / f.name)
    copy_side_files(sources[0].adapter_path, out, skip=("config.json", "generation_config.json", "llmloop_tiny.json"))
    return {"method": config.method, "peft_combination": combo, "input_ranks": ranks, **kwargs}


# -- the whole operation -------------------------------------------------------------------------
def _same_base(sources: Sequence[Source]) -> bool:
    bases = {str(Path(s.base_model).resolve()) if Path(s.base_model).exists() else s.base_model for s in sources}
    return len(bases) == 1


def run_merge(db, config: MergeConfig, progress: ProgressFn | None = None):  # noqa: ANN001, ANN201
    """Resolve → check → merge into a staged folder → rename → register. Returns (path, version, report)."""
    from llmloop.models.lora_merge import merge_lora_stream

    sources = [resolve(db, m) for m in config.models]
    base_src = resolve(db, config.base) if config.base else None
    if base_src is not None and base_src.adapter_path:
        raise SurgeryError(f"--base {config.base!r} has a LoRA adapter; the base must be full weights")
    adapters = [s for s in sources if s.adapter_path]
    kinds = {s.kind for s in sources}
    kind = sources[0].kind if len(kinds) == 1 else "chat"
    name = pick_name(db, config.name, sources[0], kind) if config.register_version else (config.name or "merged")
    out = Path(config.out) if config.out else default_out(db, name)
    adapter_mode = len(adapters) == len(sources) and _same_base(sources) and config.method != "slerp" and base_src is None
    if not adapter_mode:  # fail fast: configs and tensor tables (of adapters' bases too) before any work
        check_compatible([Path(s.base_model) for s in sources] + ([Path(base_src.base_model)] if base_src else []),
                         [s.name for s in sources] + (["base"] if base_src else []))
    with staged_dir(out) as tmp:
        if adapter_mode:
            report = merge_adapters(sources, tmp, config)
            base_model, adapter_path = sources[0].base_model, str(out.resolve())
        else:
            with tempfile.TemporaryDirectory(dir=tmp.parent, prefix=f".{out.name}.fold-") as scratch:
                dirs = []
                for i, s in enumerate(sources):  # adapters are folded into their base first
                    if s.adapter_path:
                        d = Path(scratch) / f"m{i}"
                        d.mkdir()
                        merge_lora_stream(Path(s.base_model), Path(s.adapter_path), d, max_shard_bytes=config.max_shard_mb * 2**20)
                        dirs.append(d)
                    else:
                        dirs.append(Path(s.base_model))
                base_dir = Path(base_src.base_model) if base_src else None
                if base_dir is None and config.method in NEEDS_BASE and adapters and _same_base(sources):
                    base_dir = Path(sources[0].base_model)  # adapters on one base: their task vectors are the deltas
                report = merge_full(dirs, tmp, config, base_dir=base_dir, labels=[s.name for s in sources], progress=progress)
            base_model, adapter_path = str(out.resolve()), None
    version = None
    if config.register_version:
        parents = [*sources, *([base_src] if base_src else [])]
        version = publish(db, name=name, kind=kind, base_model=base_model, adapter_path=adapter_path, operation="merge",
                          parents=parents, recipe=config.model_dump(mode="json"), report=report)
    return out, version, report
