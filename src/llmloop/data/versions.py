"""Write and read immutable dataset versions.

Rows are stored in llmloop's canonical schema for their kind (see ``CANONICAL``) as JSON lines under
``$LLMLOOP_HOME/datasets/<name>/<version-hash>.jsonl``. A version is written to a temporary file,
fsynced, renamed into place and only then registered in the store: a crash at any point leaves
either a complete, registered version or nothing visible.
"""

from __future__ import annotations

import hashlib
import json
import re

import orjson
from typing import Any

from llmloop.data.rows import DataError
from llmloop.fsutil import write_atomic
from llmloop.store import Database
from llmloop.store import datasets as store_datasets
from llmloop.store.records import DatasetVersion

# kind -> what one canonical row looks like
CANONICAL = {
    "pt": '{"text": str}',
    "sft": '{"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}',
    "preference": '{"prompt": [messages...], "chosen": [{"role": "assistant", ...}], '
    '"rejected": [{"role": "assistant", ...}]}',
    "kto": '{"prompt": [messages...], "completion": [{"role": "assistant", ...}], "label": bool}',
    # GRPO/PPO prompts: the conversation up to the user's turn, optionally the reference answer
    "prompt": '{"prompt": [messages... ending with the user], "solution"?: str}',
}
KINDS = tuple(CANONICAL)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def check_name(name: str) -> str:
    if not _NAME.match(name) or ".." in name:
        raise DataError(
            f"dataset name {name!r} is not allowed: use 1-100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (no slashes, no '..')"
        )
    return name


def encode_row(row: dict[str, Any]) -> bytes:
    """One canonical row as a compact, key-sorted JSON line (UTF-8). orjson is ~10× faster than the
    standard encoder and writes the same bytes as ``json.dumps(separators=(",", ":"), sort_keys=True,
    ensure_ascii=False)``, the fallback for what orjson refuses (integers over 64 bits)."""
    try:
        return orjson.dumps(row, option=orjson.OPT_SORT_KEYS) + b"\n"
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(row, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8") + b"\n"


def serialize(rows: list[dict[str, Any]]) -> bytes:
    """The bytes of a version file; its SHA-256 is the version's content hash."""
    return b"".join(encode_row(r) for r in rows)


def write_version(
    db: Database,
    rows: list[dict[str, Any]],
    *,
    name: str,
    kind: str,
    source_format: str,
    note: str = "",
    created_by: str = "",
    parent_id: int | None = None,
) -> DatasetVersion:
    """Store ``rows`` (already canonical and validated) as the next version of ``name``."""
    check_name(name)
    if kind not in KINDS:
        raise DataError(f"dataset kind must be one of {KINDS}, got {kind!r}")
    if not rows:
        raise DataError(f"refusing to store an empty version of dataset {name!r}")
    payload = serialize(rows)
    digest = hashlib.sha256(payload).hexdigest()
    folder = db.workspace.datasets_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{digest[:16]}.jsonl"
    if not final.exists():
        write_atomic(final, payload)
    return store_datasets.add_version(
        db,
        name=name,
        kind=kind,
        path=str(final),
        content_hash=digest,
        row_count=len(rows),
        source_format=source_format,
        note=note,
        created_by=created_by,
        parent_id=parent_id,
    )


def read_rows(version: DatasetVersion) -> list[dict[str, Any]]:
    with open(version.path, "rb") as f:
        return [_loads(line) for line in f if line.strip()]


def _loads(line: bytes) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:  # what orjson refuses (huge integers) the standard parser reads
        return json.loads(line)


def resolve(db: Database, ref: str) -> DatasetVersion:
    """``name`` (latest) or ``name@v1.2``."""
    name, _, version = ref.partition("@")
    return store_datasets.get_version(db, name, version or None)
