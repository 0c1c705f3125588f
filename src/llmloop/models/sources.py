"""Model references — what training, evaluation and surgery read — and how surgery output enters the registry.

``resolve(db, ref)`` is the one model-reference resolver: a registered version or alias (the
registry wins over a same-named folder), else a model folder on disk (a full model with
``config.json``, or a LoRA adapter continued on the base its ``adapter_config.json`` names), else —
where the caller can fetch weights (training: ``hub_ids=True``) — a Hugging Face hub id
``owner/name``. It gives a ``Source``: full weights (``base_model``) plus an optional LoRA adapter;
anything else is a ``ModelRefError`` naming the reference and the fix. ``publish`` is the only way surgery output
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


class ModelRefError(UserError, ValueError):
    """A model reference that names no registered version or alias, no model folder and no hub id."""


@dataclass(frozen=True)
class Source:
    ref: str  # what the user typed: a version, alias, folder or hub id
    base_model: str  # folder (or hub id) of full weights
    adapter_path: str | None = None
    version: ModelVersion | None = None  # set when ``ref`` named a registered version

    @property
    def name(self) -> str:
        return self.version.name if self.version else self.ref

    @property
    def kind(self) -> str:
        return self.version.kind if self.version else "chat"


def resolve(db: Database, ref: str, *, hub_ids: bool = False) -> Source:
    """A registered version or alias first, then a model folder, then (``hub_ids``) a hub id (owner/name)."""
    try:
        v = registry.get(db, ref)
    except registry.VersionNotFound:
        return resolve_folder(ref, hub_ids=hub_ids)
    return Source(ref, v.base_model, v.adapter_path, v)


def resolve_folder(ref: str, *, hub_ids: bool = False) -> Source:
    """``ref`` as a model folder (full model or LoRA adapter) or, with ``hub_ids``, a hub id; no registry."""
    path = Path(ref).expanduser()
    if path.is_dir():
        adapter_cfg = path / "adapter_config.json"
        if adapter_cfg.is_file():  # an adapter directory: continued on the base it names
            try:
                base = json.loads(adapter_cfg.read_text(encoding="utf-8")).get("base_model_name_or_path")
            except ValueError as e:
                raise ModelRefError(f"model {ref!r}: {adapter_cfg} is not valid JSON ({e}); fix or replace it") from None
            if not base:
                raise ModelRefError(
                    f"model {ref!r} is an adapter whose adapter_config.json names no base model; "
                    "set base_model_name_or_path there or register it as a model version with its base"
                )
            return Source(ref, str(base), str(path.resolve()))
        if not (path / "config.json").is_file():
            raise ModelRefError(
                f"model {ref!r}: neither adapter_config.json (a LoRA adapter) nor config.json (a full model) is in "
                "this directory; is this a model folder? Point at the folder that holds the weights"
            )
        return Source(ref, str(path.resolve()))
    if hub_ids and ref.count("/") == 1 and not ref.startswith((".", "/", "~")):
        return Source(ref, ref)  # a hub id; loading reports if it cannot be fetched
    other = "a model or checkpoint folder, or a hub id like Qwen/Qwen2.5-0.5B" if hub_ids else "or a model or checkpoint folder"
    raise ModelRefError(
        f"model {ref!r} is not a registered version or alias (see `llmloop models list`), {other}; fix the model reference"
    )


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
