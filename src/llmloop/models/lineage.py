"""M1: a version's ancestry as a tree — back to the base weights, with data and configs at each step.

A trained version has one parent (``model_versions.parent``), its job (whose config is the
recipe) and its dataset versions; a surgery version has a lineage row with every parent (a merge
has several) and the recipe that made it. ``build_lineage`` walks both kinds into ``LineageNode``s;
the CLI renders them as a tree. Parents that are folders, not versions, end the walk there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llmloop.store import registry
from llmloop.store.db import Database

# job config keys worth showing in a lineage (the rest is in `llmloop jobs show`)
_JOB_KEYS = ("model", "dataset", "finetuning", "learning_rate", "num_train_epochs", "max_steps", "beta", "loss_type",
             "lora", "per_device_train_batch_size", "max_length", "seed")


@dataclass
class LineageNode:
    name: str
    kind: str | None  # None: a folder, not a registered version
    stage: str | None = None
    made_by: str = ""  # "sft job sft-…", "merge", "registered"
    base_model: str | None = None
    adapter_path: str | None = None
    datasets: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    parents: list["LineageNode"] = field(default_factory=list)

    def chain(self) -> list["LineageNode"]:
        """The first-parent chain from this version to its root."""
        out, node = [self], self
        while node.parents:
            node = node.parents[0]
            out.append(node)
        return out


def _datasets(db: Database, ids: list[int]) -> list[str]:
    from llmloop.store import datasets

    names = []
    for i in ids:
        try:
            dv = datasets.get_version_by_id(db, i)
            names.append(f"{dv.dataset}@{dv.version} ({dv.row_count} rows)")
        except datasets.DatasetNotFound:
            names.append(f"#{i}")
    return names


def build_lineage(db: Database, name_or_alias: str, _seen: set[str] | None = None) -> LineageNode:
    from llmloop.store import job_queue

    seen = _seen if _seen is not None else set()
    v = registry.get(db, name_or_alias)
    node = LineageNode(v.name, v.kind, v.stage, base_model=v.base_model, adapter_path=v.adapter_path,
                       datasets=_datasets(db, v.dataset_versions), metrics=dict(v.metrics))
    seen.add(v.name)
    lin = registry.get_lineage(db, v.name)
    if lin is not None:
        node.made_by = lin.operation
        node.config = dict(lin.recipe)
        parents = list(lin.parents)
    else:
        parents = [v.parent] if v.parent else []
        node.made_by = "registered"
    if v.job_id:
        try:
            job = job_queue.get_job(db, v.job_id)
            node.made_by = f"{node.made_by if lin else job.stage} job {job.id}"
            if lin is None:
                node.config = {k: job.config[k] for k in _JOB_KEYS if k in job.config}
        except job_queue.JobNotFound:
            node.made_by += f" job {v.job_id} (missing)"
    for p in parents:
        if p in seen:
            continue
        try:
            node.parents.append(build_lineage(db, p, seen))
        except registry.VersionNotFound:
            node.parents.append(LineageNode(p, None, made_by="folder"))
    return node
