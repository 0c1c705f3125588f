"""What a surgery reads and how its output enters the registry.

A *source* is a registered version (name or alias) or a model folder on disk; it resolves to full
weights (``base_model``) plus an optional LoRA adapter. ``publish`` is the only way surgery output
becomes a version: the files are already complete in their final folder (see
``weights.staged_dir``), and the version row and its lineage row are one transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmloop.errors import UserError
from llmloop.store import registry
from llmloop.store.db import Database
from llmloop.store.records import ModelVersion

PREFIX = {"chat": "v", "completion": "c"}


class SurgeryError(UserError, ValueError):
    """Bad input to a surgery command; the message names the value and the fix."""


@dataclass(frozen=True)
class Source:
    ref: str  # what the user typed
    base_model: str  # folder (or hub id) of full weights
    adapter_path: str | None
    version: ModelVersion | None

    @property
    def name(self) -> str:
        return self.version.name if self.version else self.ref

    @property
    def kind(self) -> str:
        return self.version.kind if self.version else "chat"


def resolve(db: Database, ref: str) -> Source:
    """A version name/alias, or a folder holding a full model or a LoRA adapter."""
    try:
        v = registry.get(db, ref)
        return Source(ref, v.base_model, v.adapter_path, v)
    except registry.VersionNotFound:
        pass
    p = Path(ref)
    if not p.is_dir():
        raise SurgeryError(f"{ref!r} is neither a model version/alias (see `llmloop models list`) nor a model folder")
    cfg = p / "adapter_config.json"
    if cfg.exists():
        base = json.loads(cfg.read_text(encoding="utf-8")).get("base_model_name_or_path")
        if not base:
            raise SurgeryError(f"{cfg}: no base_model_name_or_path; register the adapter as a version with its base")
        return Source(ref, str(base), str(p.resolve()), None)
    if not (p / "config.json").exists():
        raise SurgeryError(f"{p}: no config.json or adapter_config.json; is this a model folder?")
    return Source(ref, str(p.resolve()), None, None)


def default_out(db: Database, name: str) -> Path:
    return db.workspace.models_dir / name


def pick_name(db: Database, name: str | None, parent: Source | None, kind: str) -> str:
    """The requested name (checked free) or the next free version after ``parent``."""
    if name:
        try:
            registry.get(db, name)
        except registry.VersionNotFound:
            return name
        raise SurgeryError(f"--name {name!r} is taken (versions are immutable); choose another or leave it out")
    parent_name = parent.version.name if parent and parent.version else None
    return registry.next_version_name(db, parent_name, prefix=PREFIX[kind])


def publish(
    db: Database,
    *,
    name: str,
    kind: str,
    base_model: str,
    adapter_path: str | None,
    operation: str,
    parents: list[Source],
    recipe: dict[str, Any],
    report: dict[str, Any],
    note: str = "",
    job_id: str | None = None,
    datasets: list[int] | None = None,
) -> ModelVersion:
    """Register finished surgery output as a candidate version with its lineage (one transaction)."""
    first = parents[0] if parents else None
    dataset_versions: list[int] = list(datasets or [])
    for p in parents:
        for d in (p.version.dataset_versions if p.version else []):
            if d not in dataset_versions:
                dataset_versions.append(d)
    return registry.register(
        db,
        name=name,
        kind=kind,
        base_model=base_model,
        adapter_path=adapter_path,
        parent=first.version.name if first and first.version else None,
        job_id=job_id,
        dataset_versions=dataset_versions,
        metrics={k: v for k, v in report.items() if isinstance(v, (int, float, str))},
        stage="candidate",
        note=note or f"{operation} of {', '.join(p.name for p in parents)}",
        lineage=registry.Lineage(name, operation, [p.name for p in parents], recipe, report),
    )


def register_folder(db: Database, path: str, *, kind: str = "chat", name: str | None = None, parent: str | None = None,
                    note: str = "") -> ModelVersion:
    """Register a model folder made elsewhere (a full HF model, or a LoRA adapter with its base) as a version."""
    p = Path(path).expanduser()
    src = resolve(db, str(p)) if p.is_dir() else None
    if src is None or src.version is not None:
        raise SurgeryError(f"{path!r} is not a model folder (config.json or adapter_config.json inside)")
    if src.adapter_path and not Path(src.base_model).is_dir():
        raise SurgeryError(f"{path}: its base {src.base_model!r} is not a local folder; register the base first and merge, "
                           f"or fix base_model_name_or_path in adapter_config.json")
    if kind not in PREFIX:
        raise SurgeryError(f"--kind {kind!r}: use chat or completion")
    parent_src = None
    if parent:
        try:
            pv = registry.get(db, parent)
        except registry.VersionNotFound:
            raise SurgeryError(f"--parent {parent!r}: no such version or alias; see `llmloop models list`") from None
        parent_src = Source(parent, pv.base_model, pv.adapter_path, pv)
    chosen = pick_name(db, name, parent_src, kind)
    return registry.register(db, name=chosen, kind=kind, base_model=src.base_model, adapter_path=src.adapter_path,
                             parent=parent_src.name if parent_src else None, note=note or f"registered from {p}")
