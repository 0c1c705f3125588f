"""Import data files (and LLaMA-Factory data folders) as immutable dataset versions.

All or nothing: every row is validated before anything is written, and when a row is invalid
(without ``skip_invalid``) or the file as a whole is (empty, not UTF-8, format unknown) nothing is
written — no file under ``datasets/``, no row in the store — and ``DataValidationError`` lists the
problems. Importing content identical to the dataset's latest version stores nothing new and
reports that version as ``unchanged``; changed content becomes the next version (v1.0 → v1.1).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmloop.data import versions
from llmloop.data.formats import OPENAI_TAGS, SHAREGPT_TAGS, Layout
from llmloop.data.readers import SUFFIXES
from llmloop.data.rows import DataError, DataValidationError, Problem
from llmloop.data.validate import ParsedFile, ParseStream, parse_file
from llmloop.store import Database
from llmloop.store import datasets as store_datasets
from llmloop.store.records import DatasetVersion

DATASET_INFO = "dataset_info.json"


@dataclass(frozen=True)
class ImportReport:
    version: DatasetVersion  # the stored version (the existing one when ``unchanged``)
    source: str  # the file (or LLaMA-Factory entry) read
    format: str  # the source format used, e.g. "alpaca"
    rows_read: int
    rows_kept: int
    skipped: tuple[Problem, ...]  # the problems of the rows left out (skip_invalid only)
    unchanged: bool = False  # the content equals the latest version's; nothing new was stored

    @property
    def rows_skipped(self) -> int:
        return self.rows_read - self.rows_kept


@dataclass(frozen=True)
class SkippedDataset:
    name: str
    reason: str


@dataclass(frozen=True)
class LlamaFactoryImport:
    imported: tuple[ImportReport, ...]
    skipped: tuple[SkippedDataset, ...]  # entries llmloop cannot import (KTO, hub-hosted, multimodal)


def _checked_name(name: str) -> str:
    try:
        return versions.check_name(name)
    except ValueError as e:
        raise DataError(f"{e}; pass another --name") from None


def import_file(
    db: Database,
    path: str | Path,
    *,
    name: str,
    format: str = "auto",
    note: str = "",
    skip_invalid: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Validate ``path`` (read as ``format``) and store its rows as the next version of ``name``;
    ``progress`` gets the bytes of the file read so far.

    Raises ``DataValidationError`` (nothing written) when a row is invalid and ``skip_invalid`` is
    False, or when the file as a whole cannot be read; ``DataError`` for a bad name or path.
    """
    name = _checked_name(name)
    stream = ParseStream(path, format, progress=progress)
    if stream.fatal:  # the format cannot be told: nothing to read further
        list(stream.rows())
        raise DataValidationError(sorted(stream.problems, key=lambda p: p.row or 0), total_rows=stream.rows_read)
    _check_kind(db, name, stream.kind)
    folder = db.workspace.datasets_dir / name
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=".import.", suffix=".incoming")
    tmp = Path(tmp_name)
    try:
        digest, kept = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out:
            for row in stream.rows():  # validate, convert and write in one pass: memory stays bounded
                line = versions.encode_row(row)
                digest.update(line)
                out.write(line)
                kept += 1
            out.flush()
            os.fsync(out.fileno())
        problems = sorted(stream.problems, key=lambda p: p.row or 0)
        if stream.fatal or (problems and not skip_invalid):
            hint = "" if stream.fatal or not kept else (
                f"To import the {kept} valid row(s) and leave out the rest, pass --skip-invalid.")
            raise DataValidationError(problems, total_rows=stream.rows_read, hint=hint)
        if not kept:
            raise DataValidationError(problems, total_rows=stream.rows_read,
                                      hint=f"No row of {stream.path.name} is valid, so there is nothing to import.")
        report = _store_file(db, tmp, digest.hexdigest(), kept, stream, name=name, note=note)
    except BaseException:
        tmp.unlink(missing_ok=True)
        if created and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
        raise
    return report


def _store_file(db: Database, tmp: Path, digest: str, kept: int, stream: ParseStream, *, name: str,
                note: str) -> ImportReport:
    """Register the streamed file ``tmp`` (already fsynced) as the next version, or as unchanged."""
    try:
        latest = store_datasets.get_version(db, name)
    except store_datasets.DatasetNotFound:
        latest = None
    problems = tuple(sorted(stream.problems, key=lambda p: p.row or 0))
    common = dict(source=str(stream.path), format=stream.format, rows_read=stream.rows_read, rows_kept=kept,
                  skipped=problems)
    if latest is not None and latest.content_hash == digest:
        tmp.unlink()
        return ImportReport(version=latest, unchanged=True, **common)
    final = tmp.parent / f"{digest[:16]}.jsonl"
    if final.exists():
        tmp.unlink()
    else:
        os.replace(tmp, final)
    version = store_datasets.add_version(
        db, name=name, kind=stream.kind, path=str(final), content_hash=digest, row_count=kept,
        source_format=stream.format, note=note, created_by=f"import:{stream.path.name}")
    return ImportReport(version=version, **common)


def _accept(parsed: list[ParsedFile], skip_invalid: bool) -> None:
    problems = [p for f in parsed for p in f.problems]
    total = sum(f.rows_read for f in parsed)
    fatal = any(f.fatal for f in parsed)
    if fatal or (problems and not skip_invalid):
        kept = sum(len(f.rows) for f in parsed)
        hint = "" if fatal or not kept else (
            f"To import the {kept} valid row(s) and leave out the rest, pass --skip-invalid.")
        raise DataValidationError(problems, total_rows=total, hint=hint)
    for f in parsed:
        if not f.rows:
            raise DataValidationError(f.problems, total_rows=f.rows_read,
                                      hint=f"No row of {f.path.name} is valid, so there is nothing to import.")


def _check_kind(db: Database, name: str, kind: str) -> None:
    try:
        latest = store_datasets.get_version(db, name)
    except store_datasets.DatasetNotFound:
        return
    if latest.kind != kind:
        raise DataError(f"dataset {name!r} holds {latest.kind} rows, this file has {kind} rows; "
                        "import it under another --name")


def _store(db: Database, parsed: ParsedFile, *, name: str, note: str, source: str) -> ImportReport:
    rows = parsed.rows
    digest = hashlib.sha256(versions.serialize(rows)).hexdigest()
    try:
        latest = store_datasets.get_version(db, name)
    except store_datasets.DatasetNotFound:
        latest = None
    unchanged = latest is not None and latest.content_hash == digest
    version = latest if unchanged else versions.write_version(
        db, rows, name=name, kind=parsed.kind, source_format=parsed.format, note=note,
        created_by=f"import:{parsed.path.name}")
    return ImportReport(version=version, source=source, format=parsed.format, rows_read=parsed.rows_read,
                        rows_kept=len(rows), skipped=tuple(parsed.problems), unchanged=unchanged)


# --- LLaMA-Factory ------------------------------------------------------------------------------

_HOSTED = ("hf_hub_url", "ms_hub_url", "om_hub_url", "script_url", "cloud_file_name")
_ALPACA_COLUMNS = ("prompt", "query", "response", "history")
_COMMON_COLUMNS = ("system", "tools", "chosen", "rejected", "kto_tag")
_TAG_KEYS = tuple(SHAREGPT_TAGS)


def llamafactory_layout(entry: dict[str, Any]) -> Layout:
    """The layout a ``dataset_info.json`` entry describes, read as LLaMA-Factory reads it: listed
    ``columns`` replace the defaults (an unlisted column is absent), and so do listed ``tags``.

    Raises ``DataError`` with the reason for entries llmloop cannot import.
    """
    formatting = entry.get("formatting", "alpaca")
    if formatting not in ("alpaca", "sharegpt", "openai"):
        raise DataError(f"formatting {formatting!r} is not one LLaMA-Factory documents (alpaca, sharegpt, openai)")
    ranking = bool(entry.get("ranking", False))
    given = entry.get("columns")
    if given is not None and not isinstance(given, dict):
        raise DataError(f"'columns' must be an object, not {type(given).__name__}")
    media = [c for c in ("images", "videos", "audios") if given and given.get(c)]
    if media:
        raise DataError(f"multimodal columns {media} are not supported yet; llmloop stores text rows")
    if formatting == "alpaca":
        defaults = {"prompt": "instruction", "query": "input", "response": "output"}
        names = _ALPACA_COLUMNS + _COMMON_COLUMNS
    else:
        defaults = {"messages": "conversations"}
        names = ("messages",) + _COMMON_COLUMNS
    columns = {k: given.get(k) for k in names} if given is not None else dict(defaults)
    if formatting != "alpaca" and not columns.get("messages"):
        columns["messages"] = "conversations"
    tags = dict(OPENAI_TAGS if formatting == "openai" else SHAREGPT_TAGS)
    if formatting != "alpaca" and isinstance(entry.get("tags"), dict):
        tags = {k: entry["tags"].get(k) for k in _TAG_KEYS}
    if ranking:
        if not (columns.get("chosen") and columns.get("rejected")):
            raise DataError("'ranking': true needs 'chosen' and 'rejected' in 'columns'")
        return Layout(formatting, "preference", True, columns, tags)
    if formatting == "alpaca" and not columns.get("response"):  # prompt only: pre-training text
        return Layout("pt", "pt", False, {"prompt": columns.get("prompt") or "text"})
    if columns.get("kto_tag"):  # unpaired desirable/undesirable replies: the kto kind
        return Layout(formatting, "kto", False, columns, tags)
    return Layout(formatting, "sft", False, columns, tags)


def _entry_files(root: Path, file_name: str) -> list[Path]:
    target = (root / file_name).resolve()
    if root.resolve() not in target.parents:
        raise DataError(f"file_name {file_name!r} points outside {root}")
    if target.is_dir():
        files = sorted(p for p in target.iterdir() if p.suffix.lower() in SUFFIXES and not p.name.startswith("."))
        if not files:
            raise DataError(f"folder {file_name!r} holds no data files ({', '.join(SUFFIXES)})")
        return files
    if not target.exists():
        raise DataError(f"file_name {file_name!r} does not exist in {root}")
    return [target]


def _parse_entry(root: Path, entry: dict[str, Any]) -> ParsedFile:
    layout = llamafactory_layout(entry)
    if not isinstance(entry.get("file_name"), str):
        raise DataError("no 'file_name'")
    parts = [parse_file(f, layout=layout) for f in _entry_files(root, entry["file_name"])]
    if len(parts) == 1:
        return parts[0]
    return ParsedFile(root / entry["file_name"], layout.formatting, layout.kind,
                      [r for p in parts for r in p.rows], sum(p.rows_read for p in parts),
                      [q for p in parts for q in p.problems])


def import_llamafactory(
    db: Database,
    directory: str | Path,
    *,
    names: list[str] | None = None,
    prefix: str = "",
    note: str = "",
    skip_invalid: bool = False,
) -> LlamaFactoryImport:
    """Import every dataset that ``directory/dataset_info.json`` names (or only ``names``), each as
    dataset ``prefix + entry name``, honouring its ``formatting``, ``columns``, ``tags`` and
    ``ranking``. Entries llmloop cannot store (KTO, hub-hosted, multimodal) are skipped with the
    reason; all other entries are validated first and nothing is written unless all pass."""
    root = Path(directory)
    info_path = root / DATASET_INFO
    if not info_path.is_file():
        raise DataError(f"no {DATASET_INFO} in {root}; give a LLaMA-Factory data folder")
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{info_path} is not valid JSON: {e}") from None
    if not isinstance(info, dict):
        raise DataError(f"{info_path} must hold an object of dataset entries")
    wanted = list(info) if names is None else names
    unknown = [n for n in wanted if n not in info]
    if unknown:
        raise DataError(f"{DATASET_INFO} has no dataset(s) {unknown}; it has {sorted(info)}")
    parsed: list[tuple[str, str, ParsedFile]] = []
    skipped: list[SkippedDataset] = []
    for key in wanted:
        entry = info[key]
        if not isinstance(entry, dict):
            raise DataError(f"{DATASET_INFO}: entry {key!r} must be an object")
        if "file_name" not in entry and any(k in entry for k in _HOSTED):
            skipped.append(SkippedDataset(key, "hosted elsewhere (hub or script); download it and give "
                                          "'file_name'"))
            continue
        name = _checked_name(prefix + key)
        try:
            p = _parse_entry(root, entry)
        except DataError as e:
            skipped.append(SkippedDataset(key, str(e)))
            continue
        parsed.append((key, name, p))
    if names is not None and skipped:  # asked for by name: not importing it is an error
        raise DataError("; ".join(f"{s.name}: {s.reason}" for s in skipped))
    _accept([p for _, _, p in parsed], skip_invalid)
    for _, name, p in parsed:
        _check_kind(db, name, p.kind)
    reports = tuple(_store(db, p, name=name, note=note, source=f"{info_path}#{key}") for key, name, p in parsed)
    return LlamaFactoryImport(imported=reports, skipped=tuple(skipped))
