"""What datasets the store holds: one summary per dataset, a dataset's versions, a preview.

``DatasetNotFound`` (a name or id that names no dataset version) is what these raise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import islice
from typing import Any

from llmloop.store import Database
from llmloop.store import datasets as store_datasets
from llmloop.store.datasets import DatasetNotFound
from llmloop.store.records import DatasetVersion

__all__ = ["DatasetNotFound", "DatasetSummary", "get_version_by_id", "head", "history", "list_datasets"]


@dataclass(frozen=True)
class DatasetSummary:
    name: str
    kind: str
    latest: DatasetVersion
    versions: int


def list_datasets(db: Database) -> list[DatasetSummary]:
    """Every dataset with its latest version, by name."""
    by_name: dict[str, list[DatasetVersion]] = {}
    for v in store_datasets.list_versions(db):
        by_name.setdefault(v.dataset, []).append(v)
    return [DatasetSummary(name, vs[-1].kind, vs[-1], len(vs)) for name, vs in sorted(by_name.items())]


def history(db: Database, name: str) -> list[DatasetVersion]:
    """All versions of ``name``, oldest first; ``DatasetNotFound`` if there is none."""
    found = store_datasets.list_versions(db, name)
    if not found:
        raise DatasetNotFound(f"no dataset {name!r}; see `llmloop data list`")
    return found


def get_version_by_id(db: Database, version_id: int) -> DatasetVersion:
    """The dataset version with this id (a version's ``parent_id`` names its parent this way)."""
    return store_datasets.get_version_by_id(db, version_id)


def head(version: DatasetVersion, n: int = 5) -> list[dict[str, Any]]:
    """The first ``n`` rows of ``version``, without reading the rest."""
    with open(version.path, encoding="utf-8") as f:
        return [json.loads(line) for line in islice((ln for ln in f if ln.strip()), max(n, 0))]
