"""Write a stored dataset version out: canonical JSON Lines, or a LLaMA-Factory data folder.

The LLaMA-Factory export writes ``<dataset>.jsonl`` and adds (or replaces) the dataset's entry in
the folder's ``dataset_info.json``, keeping the entries already there:

* sft → ``formatting: sharegpt`` with OpenAI-style ``tags`` (role/content; ``tool_call`` is the
  function tag and ``tool`` the observation tag) and a ``tools`` column when rows have tools;
* preference → the same plus ``ranking: true`` and chosen/rejected message objects;
* pt → ``{"text"}`` rows with ``columns: {"prompt": "text"}``.

Every file is written to a temporary name and renamed into place, so a reader never sees half.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmloop.data import versions
from llmloop.data.export_targets import one_reply
from llmloop.data.rows import DataError
from llmloop.fsutil import write_atomic
from llmloop.store.records import DatasetVersion

TARGETS = ("jsonl", "llamafactory", "trl", "openai", "hf")
DATASET_INFO = "dataset_info.json"
LLAMAFACTORY_TAGS = {
    "role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
    "observation_tag": "tool", "function_tag": "tool_call", "system_tag": "system",
}


@dataclass(frozen=True)
class ExportResult:
    version: DatasetVersion
    files: tuple[Path, ...]  # every file written or updated
    rows: int
    entry: dict[str, Any] | None = None  # the dataset_info.json entry, for the llamafactory target


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(r, ensure_ascii=False).encode("utf-8") + b"\n" for r in rows)


def llamafactory_rows(kind: str, rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Canonical rows of ``kind`` → LLaMA-Factory rows and the ``dataset_info.json`` entry
    (without ``file_name``) that reads them back."""
    if kind == "pt":
        return [{"text": r["text"]} for r in rows], {"columns": {"prompt": "text"}}
    has_tools = any(r.get("tools") for r in rows)
    columns = {"messages": "messages"}
    if kind == "sft":
        out = [{"messages": r["messages"]} for r in rows]
    elif kind == "preference":
        one_reply(rows, "LLaMA-Factory's ranking format", "--to trl (conversational) or jsonl")
        out = [{"messages": r["prompt"], "chosen": r["chosen"][0], "rejected": r["rejected"][0]} for r in rows]
        columns.update(chosen="chosen", rejected="rejected")
    elif kind == "kto":
        out = [{"messages": [*r["prompt"], *r["completion"]], "label": r["label"]} for r in rows]
        columns.update(kto_tag="label")
    else:
        raise DataError(f"LLaMA-Factory has no layout for {kind!r} rows (it reads PPO prompts from SFT data); "
                        "export them with --to trl, jsonl or hf")
    if has_tools:
        columns["tools"] = "tools"
        for src, dst in zip(rows, out, strict=True):
            dst["tools"] = src.get("tools", "")
    entry: dict[str, Any] = {"formatting": "sharegpt"}
    if kind == "preference":
        entry["ranking"] = True
    entry.update(columns=columns, tags=dict(LLAMAFACTORY_TAGS))
    return out, entry


def export_version(
    version: DatasetVersion,
    to: str,
    out_dir: str | Path,
    *,
    entry_name: str | None = None,
    style: str = "conversational",
) -> ExportResult:
    """Write ``version`` under ``out_dir`` as ``to`` (see ``TARGETS``).

    jsonl: ``<dataset>-<version>.jsonl`` in the canonical schema. llamafactory: ``<entry>.jsonl``
    plus its entry (named ``entry_name``, default the dataset's name) in ``dataset_info.json``.
    trl/openai: ``<dataset>-<version>.<to>.jsonl`` (``export_targets``; ``style`` for trl). hf: a
    ``datasets.save_to_disk`` folder ``<dataset>-<version>`` of the canonical rows.
    """
    if to not in TARGETS:
        raise DataError(f"unknown export target {to!r}; use --to {' or '.join(TARGETS)}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} is a file; give a directory")
    out.mkdir(parents=True, exist_ok=True)
    rows = versions.read_rows(version)
    if to == "jsonl":
        path = out / f"{version.dataset}-{version.version}.jsonl"
        write_atomic(path, _jsonl(rows))
        return ExportResult(version, (path,), len(rows))
    if to in ("trl", "openai"):
        from llmloop.data.export_targets import openai_rows, trl_rows

        converted = trl_rows(version.kind, rows, style) if to == "trl" else openai_rows(version.kind, rows)
        path = out / f"{version.dataset}-{version.version}.{to}.jsonl"
        write_atomic(path, _jsonl(converted))
        return ExportResult(version, (path,), len(rows))
    if to == "hf":
        return ExportResult(version, (_save_to_disk(version, rows, out),), len(rows))
    name = versions.check_name(entry_name or version.dataset)
    info_path = out / DATASET_INFO
    info: dict[str, Any] = {}
    if info_path.exists():
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DataError(f"{info_path} exists but is not valid JSON ({e}); fix or remove it") from None
        if not isinstance(info, dict):
            raise DataError(f"{info_path} exists but is not a JSON object; fix or remove it")
    lf_rows, entry = llamafactory_rows(version.kind, rows)
    data_path = out / f"{name}.jsonl"
    entry = {"file_name": data_path.name, **entry}
    write_atomic(data_path, _jsonl(lf_rows))
    info[name] = entry
    write_atomic(info_path, (json.dumps(info, ensure_ascii=False, indent=2) + "\n").encode("utf-8"))
    return ExportResult(version, (data_path, info_path), len(rows), entry)


def _save_to_disk(version: DatasetVersion, rows: list[dict[str, Any]], out: Path) -> Path:
    """Canonical rows as a Hugging Face ``datasets`` folder, saved under a temporary name and renamed
    into place so a failed save leaves nothing behind."""
    import shutil
    import tempfile

    try:
        from datasets import Dataset
    except ImportError as e:
        raise DataError("--to hf needs the datasets library: pip install datasets") from e
    final = out / f"{version.dataset}-{version.version}"
    if final.exists():
        raise DataError(f"{final} exists; remove it or export into another --out")
    tmp = Path(tempfile.mkdtemp(dir=out, prefix=f".{final.name}.", suffix=".incoming"))
    try:
        keys = sorted({k for r in rows for k in r})  # from_list takes its columns from the first row
        Dataset.from_list([{k: r.get(k) for k in keys} for r in rows]).save_to_disk(str(tmp))
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
