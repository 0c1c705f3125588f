"""M4: checkpoint averaging over one training job — SWA (uniform) and EMA (exponential).

Both are a weighted sum of the job's saved checkpoints (``<job>/checkpoints/checkpoint-<step>``),
streamed tensor by tensor like every merge here:
- ``swa``: wᵢ = 1/n over the chosen checkpoints (Izmailov et al., applied after training);
- ``ema``: the average an EMA with decay d would hold had it been updated once per saved checkpoint
  in step order — e₁ = θ₁, eₖ = d·eₖ₋₁ + (1−d)·θₖ — i.e. w₁ = dⁿ⁻¹, wₖ = (1−d)·dⁿ⁻ᵏ.
A per-step EMA during training would need a callback inside the trainer (train/, issue 4); this
post-hoc form needs only the checkpoints a job already keeps. Checkpoints holding LoRA adapters
are averaged as adapters (A and B separately, which is what SWA of the trainable parameters is);
full checkpoints as full models.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from llmloop.models.sources import Source, SurgeryError, default_out, pick_name
from llmloop.models.weights import ADAPTER_WEIGHTS, WEIGHTS_NAME, ShardWriter, WeightReader, copy_side_files, staged_dir

ProgressFn = Callable[[int, int], None]
_STEP = re.compile(r"checkpoint-(\d+)$")
_ADAPTER_SIDE = ("adapter_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                 "chat_template.jinja", "README.md")


class AverageConfig(BaseModel):
    """`llmloop models average`: SWA or EMA over the saved checkpoints of one training job."""

    model_config = ConfigDict(extra="forbid")

    job: str = Field(description="Training job id whose checkpoints are averaged (see `llmloop jobs list`)")
    method: Literal["swa", "ema"] = Field("swa", description="swa: uniform mean; ema: exponential, newest weighted most")
    decay: float = Field(0.5, gt=0, lt=1, description="ema: weight kept by the running average at each checkpoint")
    last: int | None = Field(None, ge=2, description="Use only the newest N checkpoints (default: all)")
    steps: list[int] | None = Field(None, description="Use exactly these checkpoint steps (overrides --last)")
    max_shard_mb: int = Field(2048, ge=1, description="Largest output safetensors shard in MiB")
    out: Path | None = Field(None, description="Output folder (must not exist); default: the workspace's models/<name>")
    name: str | None = Field(None, description="Name of the registered version (default: next free after the job's version)")
    register_version: bool = Field(True, description="Register the result as a candidate version with lineage")


@dataclass(frozen=True)
class Checkpoint:
    step: int
    path: Path

    @property
    def is_adapter(self) -> bool:
        return (self.path / ADAPTER_WEIGHTS).exists()


def job_checkpoints(output_dir: str | Path) -> list[Checkpoint]:
    """``checkpoint-<step>`` folders of a job (in ``checkpoints/`` or the output dir itself), by step."""
    found = []
    for root in (Path(output_dir) / "checkpoints", Path(output_dir)):
        if root.is_dir():
            for d in root.iterdir():
                m = _STEP.search(d.name)
                if m and d.is_dir():
                    found.append(Checkpoint(int(m.group(1)), d))
    return sorted(set(found), key=lambda c: c.step)


def ema_weights(n: int, decay: float) -> list[float]:
    return [decay ** (n - 1)] + [(1 - decay) * decay ** (n - k) for k in range(2, n + 1)]


def average_dirs(dirs: list[Path], weights: list[float], out: Path, *, max_shard_bytes: int,
                 progress: ProgressFn | None = None) -> dict:
    """Weighted sum of same-shaped checkpoints (full models or adapters) into ``out``."""
    import torch

    readers = [WeightReader(d) for d in dirs]
    names = readers[0].names()
    for d, r in zip(dirs[1:], readers[1:]):
        if set(r.names()) != set(names) or any(r.infos[n].shape != readers[0].infos[n].shape for n in names):
            raise SurgeryError(f"{d} does not hold the same tensors as {dirs[0]}; checkpoints of one job should")
    adapter = (dirs[0] / ADAPTER_WEIGHTS).exists()
    infos = list(readers[0].infos.values())
    writer = ShardWriter(out, infos, max_shard_bytes if not adapter else 2**62, metadata=readers[0].metadata)
    w = torch.tensor(weights, dtype=torch.float64)
    for i, info in enumerate(infos):
        first = readers[0].get(info.name)
        if torch.is_floating_point(first):
            acc = sum(float(wk) * r.get(info.name).double() for wk, r in zip(w, readers))
            writer.add(info.name, acc.to(first.dtype))
        else:
            writer.add(info.name, first)
        if progress:
            progress(i + 1, len(infos))
    files = writer.finish()
    if adapter:
        files[0].rename(out / ADAPTER_WEIGHTS)
        for name in _ADAPTER_SIDE:
            if (dirs[-1] / name).exists():
                shutil.copy2(dirs[-1] / name, out / name)
    else:
        copy_side_files(dirs[-1], out)
    return {"tensors": len(infos), "adapter": adapter, "files": [WEIGHTS_NAME if not adapter else ADAPTER_WEIGHTS]
            if len(files) == 1 else [f.name for f in files]}


def run_average(db, config: AverageConfig, progress: ProgressFn | None = None):  # noqa: ANN001, ANN201
    """Pick checkpoints → weighted average into a staged folder → register. Returns (path, version, report)."""
    from llmloop.store import job_queue
    from llmloop.store import registry

    job = job_queue.get_job(db, config.job)
    ckpts = job_checkpoints(job.output_dir)
    if config.steps:
        by_step = {c.step: c for c in ckpts}
        missing = [s for s in config.steps if s not in by_step]
        if missing:
            raise SurgeryError(f"job {job.id} has no checkpoint for step(s) {missing}; saved: {sorted(by_step)}")
        ckpts = [by_step[s] for s in sorted(config.steps)]
    elif config.last:
        ckpts = ckpts[-config.last:]
    if len(ckpts) < 2:
        raise SurgeryError(
            f"job {job.id} has {len(ckpts)} checkpoint(s) under {job.output_dir}; averaging needs two or more "
            f"(train with save_strategy=steps and a save_steps below max_steps)"
        )
    weights = [1.0 / len(ckpts)] * len(ckpts) if config.method == "swa" else ema_weights(len(ckpts), config.decay)
    result = job.result or {}
    job_version = registry.get(db, result["model_version"]) if result.get("model_version") else None
    start = result.get("starting_model") or {}
    parent = Source(job_version.name, job_version.base_model, job_version.adapter_path, job_version) if job_version else None
    kind = job_version.kind if job_version else ("completion" if job.stage == "pt" else "chat")
    name = pick_name(db, config.name, parent, kind) if config.register_version else (config.name or f"{job.id}-{config.method}")
    out = Path(config.out) if config.out else default_out(db, name)
    with staged_dir(out) as tmp:
        report = average_dirs([c.path for c in ckpts], weights, tmp, max_shard_bytes=config.max_shard_mb * 2**20,
                              progress=progress)
    report.update(method=config.method, steps=[c.step for c in ckpts], weights=[round(x, 6) for x in weights], job=job.id)
    version = None
    if config.register_version:
        if report["adapter"]:
            base = (job_version.base_model if job_version else start.get("base_model"))
            if not base:
                raise SurgeryError(f"job {job.id} records no base model for its adapter; pass --no-register and register by hand")
            base_model, adapter_path = base, str(out.resolve())
        else:
            base_model, adapter_path = str(out.resolve()), None
        parents = [parent] if parent else []
        version = registry.register(
            db, name=name, kind=kind, base_model=base_model, adapter_path=adapter_path,
            parent=parent.name if parent else start.get("version"), job_id=job.id,
            dataset_versions=list(job_version.dataset_versions) if job_version else
            ([result["dataset_version_id"]] if result.get("dataset_version_id") else []),
            note=f"{config.method.upper()} of {len(ckpts)} checkpoints of job {job.id}",
            lineage=registry.Lineage(name, "average", [p.name for p in parents] + [str(c.path) for c in ckpts],
                                     config.model_dump(mode="json"), report),
        )
    return out, version, report
