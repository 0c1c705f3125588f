"""Dataset statistics (D7): rows, token-length distribution, duplicate rate, warnings.

Token lengths are counted with a model's own tokenizer (``tokenizer=PATH`` to a Hugging Face
tokenizer folder or hub id already in the local cache) over each row's message contents; without
one, words are counted (a CJK character is a word) and the result says so, because a word count
is not what training truncates on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from llmloop.data.dedup import exact_matches
from llmloop.data.quality import content_text, words
from llmloop.data.rows import DataError
from llmloop.data.versions import read_rows, resolve
from llmloop.store import Database
from llmloop.store.records import DatasetVersion

BUCKETS = (64, 128, 256, 512, 1024, 2048, 4096)


@dataclass(frozen=True)
class DatasetStats:
    version: DatasetVersion
    rows: int
    unit: str  # "tokens" or "words"
    tokenizer: str | None
    lengths: dict[str, float]  # min, mean, p50, p90, p99, max
    histogram: list[tuple[str, int]]  # ("≤64", n), …, (">4096", n)
    duplicates: int
    duplicate_rate: float
    warnings: list[str]


def load_tokenizer(path: str) -> Callable[[list[str]], list[int]]:
    try:
        from transformers import AutoTokenizer
    except ImportError as e:
        raise DataError("--tokenizer needs transformers: pip install 'llmloop[train]'") from e
    try:
        tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except Exception as e:  # noqa: BLE001 - transformers raises many kinds; all mean "cannot load"
        raise DataError(f"--tokenizer {path}: cannot load a tokenizer there ({type(e).__name__}: {e}); "
                        "give a model folder holding tokenizer files (tokenizer.json / tokenizer_config.json)") from None

    def count(texts: list[str]) -> list[int]:
        return [len(ids) for ids in tok(texts, add_special_tokens=True)["input_ids"]]

    return count


def _percentile(s: list[int], q: float) -> int:
    return s[min(len(s) - 1, int(q * len(s)))]


def dataset_stats(db: Database, ref: str, *, tokenizer: str | None = None, max_length: int | None = None) -> DatasetStats:
    v = resolve(db, ref)
    rows: list[dict[str, Any]] = read_rows(v)
    texts = [content_text(v.kind, r) for r in rows]
    if tokenizer:
        count = load_tokenizer(tokenizer)
        lengths = [n for i in range(0, len(texts), 1000) for n in count(texts[i : i + 1000])]
        unit = "tokens"
    else:
        lengths = [len(words(t)) for t in texts]
        unit = "words"
    s = sorted(lengths)
    summary = {"min": s[0], "mean": round(sum(s) / len(s), 1), "p50": _percentile(s, 0.5),
               "p90": _percentile(s, 0.9), "p99": _percentile(s, 0.99), "max": s[-1]}
    hist, lo = [], 0
    for b in BUCKETS:
        hist.append((f"{lo + 1}-{b}" if lo else f"≤{b}", sum(1 for n in lengths if lo < n <= b or (lo == 0 and n == 0))))
        lo = b
    hist.append((f">{BUCKETS[-1]}", sum(1 for n in lengths if n > BUCKETS[-1])))
    dups = len(exact_matches(texts))
    warnings = []
    if not tokenizer:
        warnings.append("lengths are words, not tokens: pass --tokenizer PATH (the model's folder) for token counts")
    if dups:
        warnings.append(f"{dups} duplicate row(s) ({dups / len(texts):.1%}); `llmloop data dedup {v.dataset} --exact`")
    empty = sum(1 for t in texts if not t.strip())
    if empty:
        warnings.append(f"{empty} row(s) have no text")
    if max_length:
        over = sum(1 for n in lengths if n > max_length)
        if over:
            warnings.append(f"{over} row(s) are longer than --max-length {max_length} {unit} and would be truncated")
    return DatasetStats(v, len(rows), unit, tokenizer, summary, hist, dups, round(dups / len(rows), 4), warnings)
