"""Manage datasets as a whole: diff two versions, rename, describe, delete (files kept unless purged).

Versions themselves never change: a rename changes only the dataset's name in the store (each
version's file path is recorded, so files stay where they are); delete removes the dataset's rows
from the store in one transaction and, only with ``purge``, then removes its files.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmloop.data.rows import DataError
from llmloop.data.versions import check_name, read_rows, resolve
from llmloop.store import Database
from llmloop.store import datasets as store_datasets
from llmloop.store.records import DatasetVersion


def row_hash(row: dict[str, Any]) -> str:
    """Content hash of one canonical row (key order and whitespace do not matter)."""
    return hashlib.sha256(json.dumps(row, ensure_ascii=False, sort_keys=True).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class VersionDiff:
    old: DatasetVersion
    new: DatasetVersion
    added: list[dict[str, Any]]  # rows in new and not in old (as many times as the surplus)
    removed: list[dict[str, Any]]  # rows in old and not in new
    unchanged: int


def diff(db: Database, old_ref: str, new_ref: str) -> VersionDiff:
    """Rows added and removed between two versions, compared by content hash (a multiset: a row
    kept twice in old and once in new counts as one removal)."""
    for ref in (old_ref, new_ref):
        if "@" not in ref:
            raise DataError(f"diff needs two versions like NAME@v1.0 NAME@v1.1, got {ref!r}")
    old, new = resolve(db, old_ref), resolve(db, new_ref)
    old_rows, new_rows = read_rows(old), read_rows(new)
    old_count = Counter(row_hash(r) for r in old_rows)
    new_count = Counter(row_hash(r) for r in new_rows)
    plus, minus = new_count - old_count, old_count - new_count

    def take(rows: list[dict[str, Any]], want: Counter) -> list[dict[str, Any]]:
        out = []
        for r in rows:
            h = row_hash(r)
            if want[h] > 0:
                want[h] -= 1
                out.append(r)
        return out

    added, removed = take(new_rows, Counter(plus)), take(old_rows, Counter(minus))
    return VersionDiff(old, new, added, removed, unchanged=len(new_rows) - len(added))


def rename(db: Database, old: str, new: str) -> None:
    try:
        check_name(new)
        store_datasets.rename_dataset(db, old, new)
    except ValueError as e:
        if isinstance(e, store_datasets.DatasetNotFound):
            raise
        raise DataError(str(e)) from None


def describe(db: Database, name: str, description: str | None = None) -> str:
    """Set the dataset's description when given; return the (new) description."""
    if description is not None:
        store_datasets.set_description(db, name, description)
        return description
    return store_datasets.get_description(db, name)


@dataclass(frozen=True)
class Deleted:
    name: str
    versions: list[DatasetVersion]
    purged: list[Path]


def delete(db: Database, name: str, *, purge: bool = False, force: bool = False) -> Deleted:
    """Remove dataset ``name`` and its versions from the store; with ``purge`` also its files (the
    version files and reports next to them), only after the store change committed.

    Refused (``DataError`` listing them) while something else refers to its versions — another
    dataset's version derived from one, a model version trained on one, a loop round that built one —
    unless ``force``: then derived versions keep their rows, lose the parent link and get a note
    naming the deleted parent; model lineage keeps the ids of versions that no longer exist."""
    found = store_datasets.dependants(db, name)
    if found and not force:
        listed = "; ".join(found[:10]) + (f"; … and {len(found) - 10} more" if len(found) > 10 else "")
        raise DataError(f"dataset {name!r} is still referred to: {listed}. Pass --force to delete it anyway "
                        "(derived versions keep their rows; their note records the deleted parent)")
    removed = store_datasets.delete_dataset(db, name)
    purged: list[Path] = []
    if purge:
        still_used = {v.path for v in store_datasets.list_versions(db)}
        for v in removed:
            path = Path(v.path)
            if v.path in still_used:
                continue
            for p in {path, *path.parent.glob(path.stem + ".*")}:
                if p.is_file():
                    p.unlink()
                    purged.append(p)
        folder = db.workspace.datasets_dir / name
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    return Deleted(name, removed, purged)
