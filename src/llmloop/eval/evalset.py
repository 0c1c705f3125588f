"""Eval sets: what the model under test is asked, and what its answers are scored against.

One row is a prompt (``"prompt": str`` or ``"messages": [...]`` ending with a user turn), an optional
``reference`` (scored by exact match, BLEU, ROUGE, math accuracy, and shown to an LLM judge), an
optional ``label`` (scored by accuracy and macro-F1) and optional ``metadata`` (any JSON object,
kept with every sample in the reports, e.g. ``{"topic": "refund", "lang": "zh"}``; other top-level
fields of a row, such as ``"id"`` or ``"topic"``, are folded into it).

An eval set is read from a JSONL file, or from the data store (``NAME`` or ``NAME@v1.2``):
* ``prompt`` datasets — what ``import_eval_set`` (``llmloop eval import``) stores, as immutable,
  content-hashed versions through the data area's ``write_version``: ``{"prompt": [messages],
  "solution"?: reference, "label"?, "metadata"?}``; GRPO/PPO prompt sets are the same kind, so an eval
  set with references doubles as GRPO prompts and the other way round;
* ``sft`` datasets: the conversation up to its last assistant turn is the prompt, that turn the reference;
* ``preference`` datasets: the prompt, with the chosen answer as the reference.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmloop.eval import EvalInputError

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class EvalRow:
    messages: list[dict[str, Any]]
    reference: str | None = None
    label: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt_text(self) -> str:
        return str(self.messages[-1].get("content", "")) if self.messages else ""

    def canonical(self) -> dict[str, Any]:
        return {"messages": self.messages, "reference": self.reference, "label": self.label, "metadata": self.metadata}


def parse_row(raw: Any, where: str) -> EvalRow:
    """One raw JSON value → ``EvalRow``; ``where`` ("file.jsonl line 3") starts every error."""
    if not isinstance(raw, dict):
        raise EvalInputError(f"{where}: expected a JSON object, got {type(raw).__name__}")
    if isinstance(raw.get("messages"), list):
        msgs = raw["messages"]
        for j, m in enumerate(msgs):
            if not (isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str)):
                raise EvalInputError(f"{where}: messages[{j}] must be {{\"role\": one of {list(ROLES)}, \"content\": str}}, "
                                 f"got {json.dumps(m, ensure_ascii=False)[:80]}")
        if not msgs or msgs[-1]["role"] != "user":
            raise EvalInputError(f"{where}: messages must end with a user turn (the model under test answers it)")
    elif isinstance(raw.get("prompt"), str) and raw["prompt"].strip():
        msgs = [{"role": "user", "content": raw["prompt"]}]
    else:
        raise EvalInputError(f"{where}: needs \"prompt\" (a non-empty string) or \"messages\" (a list ending with a user turn)")
    meta = raw.get("metadata", {})
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise EvalInputError(f"{where}: metadata must be a JSON object, got {type(meta).__name__}")
    # other top-level fields (an id, "topic", "lang" …) are metadata too: prompt files carry them
    extra = {k: v for k, v in raw.items() if k not in ("prompt", "messages", "reference", "label", "metadata")}
    meta = {**extra, **meta}
    ref, label = raw.get("reference"), raw.get("label")
    for name, v in (("reference", ref), ("label", label)):
        if isinstance(v, (dict, list)):
            raise EvalInputError(f"{where}: {name} must be text or a number, got {type(v).__name__}")
    return EvalRow(msgs, None if ref is None else str(ref), None if label is None else str(label), meta)


def read_eval_set(path: str | Path) -> list[EvalRow]:
    """JSONL → rows; every bad line is reported (with its number and the fix), none is skipped."""
    from llmloop.eval.user_files import read_text

    path = Path(path)
    text = read_text(path)
    rows, problems = [], []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(parse_row(json.loads(line), f"{path} line {i}"))
        except json.JSONDecodeError as e:
            problems.append(f"{path} line {i}: not JSON ({e.msg} at column {e.colno})")
        except ValueError as e:
            problems.append(str(e))
    if problems:
        raise EvalInputError("\n".join(problems[:20]) + (f"\n… and {len(problems) - 20} more" if len(problems) > 20 else ""))
    if not rows:
        raise EvalInputError(f"{path}: no rows")
    return rows


def _from_dataset_row(kind: str, row: dict[str, Any], where: str) -> EvalRow:
    if kind == "sft":
        msgs = row["messages"]
        last = max((i for i, m in enumerate(msgs) if m["role"] == "assistant"), default=None)
        if last is None or not any(m["role"] == "user" for m in msgs[:last]):
            raise EvalInputError(f"{where}: an sft row needs a user turn followed by an assistant turn to be an eval row")
        return EvalRow([dict(m) for m in msgs[:last]], str(msgs[last]["content"]), None, {})
    if kind == "preference":
        return EvalRow([dict(m) for m in row["prompt"]], str(row["chosen"][-1]["content"]), None, {})
    if kind == "prompt":  # eval sets stored by `eval import`, and GRPO/PPO prompts: the solution is the reference
        sol, label, meta = row.get("solution"), row.get("label"), row.get("metadata") or {}
        return EvalRow([dict(m) for m in row["prompt"]], None if sol is None else str(sol),
                       None if label is None else str(label), dict(meta) if isinstance(meta, dict) else {})
    raise EvalInputError(f"{where}: a {kind} dataset cannot be an eval set; use a prompt, sft or preference dataset "
                     "(or `llmloop eval import FILE --name NAME`)")


def load_eval_set(spec: str | Path, db: Any = None) -> tuple[list[EvalRow], str]:
    """A JSONL file, or a dataset in the store (``NAME`` / ``NAME@v1.2``) → (rows, description)."""
    p = Path(spec)
    if p.exists():
        return read_eval_set(p), str(p)
    if db is None or p.suffix in (".jsonl", ".json") or "/" in str(spec):
        raise EvalInputError(f"eval set {str(spec)!r}: no such file (or, for a stored dataset, write NAME or NAME@v1.2)")
    from llmloop.data.versions import resolve
    from llmloop.store.datasets import DatasetNotFound

    try:
        v = resolve(db, str(spec))
    except DatasetNotFound as e:
        raise EvalInputError(f"eval set {str(spec)!r}: neither a file nor a stored dataset ({e})") from None
    with open(v.path, encoding="utf-8") as f:
        raw = [json.loads(line) for line in f if line.strip()]
    rows = [_from_dataset_row(v.kind, r, f"dataset {v.dataset}@{v.version} row {i}") for i, r in enumerate(raw, start=1)]
    if not rows:
        raise EvalInputError(f"eval set {v.dataset}@{v.version}: no rows")
    return rows, f"{v.dataset}@{v.version} ({v.kind}, sha256 {v.content_hash[:12]})"


def stored_row(row: EvalRow) -> dict[str, Any]:
    """An eval row in the data area's ``prompt`` kind: the prompt, its reference as ``solution`` (what
    GRPO reward functions compare with), and ``label``/``metadata`` only when present."""
    out: dict[str, Any] = {"prompt": row.messages}
    if row.reference is not None:
        out["solution"] = row.reference
    if row.label is not None:
        out["label"] = row.label
    if row.metadata:
        out["metadata"] = row.metadata
    return out


def import_eval_set(db: Any, path: str | Path, name: str, note: str = "", created_by: str = ""):  # noqa: ANN201 - DatasetVersion
    """Validate a JSONL eval set and store it as the next immutable version of dataset ``name``
    (the data area's kind ``prompt``, through ``data.versions.write_version``).

    All or nothing: an invalid file stores nothing. Identical content to the latest version is a no-op
    (that version is returned)."""
    from llmloop.data.versions import check_name, serialize, write_version
    from llmloop.store import datasets as store_datasets

    check_name(name)
    rows = [stored_row(r) for r in read_eval_set(path)]
    digest = hashlib.sha256(serialize(rows)).hexdigest()
    try:
        latest = store_datasets.get_version(db, name)
    except store_datasets.DatasetNotFound:
        latest = None
    if latest is not None:
        if latest.kind != "prompt":
            raise EvalInputError(f"dataset {name!r} holds {latest.kind} rows, not eval prompts: import under another --name")
        if latest.content_hash == digest:
            return latest
    return write_version(db, rows, name=name, kind="prompt", source_format="eval-jsonl", note=note, created_by=created_by)


def load_texts(spec: str | Path, db: Any = None) -> tuple[list[str], str]:
    """Texts for perplexity: a JSONL file of ``{"text": str}`` rows, or a stored ``pt`` dataset NAME[@v1.2]."""
    p = Path(spec)
    if p.exists():
        texts = []
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise EvalInputError(f"{p} line {i}: not JSON ({e.msg})") from None
            if not (isinstance(row, dict) and isinstance(row.get("text"), str) and row["text"].strip()):
                raise EvalInputError(f"{p} line {i}: needs \"text\" (a non-empty string)")
            texts.append(row["text"])
        if not texts:
            raise EvalInputError(f"{p}: no rows")
        return texts, str(p)
    if db is None:
        raise EvalInputError(f"text set {str(spec)!r}: no such file")
    from llmloop.data.versions import read_rows, resolve
    from llmloop.store.datasets import DatasetNotFound

    try:
        v = resolve(db, str(spec))
    except DatasetNotFound as e:
        raise EvalInputError(f"text set {str(spec)!r}: neither a file nor a stored dataset ({e})") from None
    if v.kind != "pt":
        raise EvalInputError(f"dataset {v.dataset}@{v.version} holds {v.kind} rows; perplexity needs a pt (text) dataset")
    return [r["text"] for r in read_rows(v)], f"{v.dataset}@{v.version}"
