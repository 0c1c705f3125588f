"""Quality filters (D9) and the quality report.

``filter_version(db, ref, rules)`` applies each rule of a ``FilterRules`` to every row's text, keeps
the rows no rule rejects as a NEW version (parent = the version read, note + creator step recorded)
and returns per-rule counts (a row rejected by several rules counts for each). ``quality_report``
measures a version without changing it: lengths, diversity (distinct-n), top n-grams, exact
duplicates and warnings, and renders them as HTML.

The text a rule sees is every message content of the row (roles left out): pt ``text``; sft all
turns; preference prompt + chosen + rejected; kto prompt + completion. Lengths are counted in
characters or in words, where a word is a run of letters/digits or one CJK character (Chinese has
no spaces, so counting whitespace-separated words would make a paragraph one word).
"""

from __future__ import annotations

import html
import re
import statistics
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from llmloop.data.dedup import exact_matches
from llmloop.data.rows import DataError
from llmloop.data.versions import read_rows, resolve, write_version
from llmloop.fsutil import write_atomic
from llmloop.store import Database
from llmloop.store.records import DatasetVersion

_CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+", re.UNICODE)
_CJK_CHAR = re.compile(rf"[{_CJK}]")
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")
LANGUAGES = ("zh", "en", "other")


def content_text(kind: str, row: dict[str, Any]) -> str:
    if kind == "pt":
        return row["text"]
    if kind == "sft":
        msgs = row["messages"]
    elif kind == "kto":
        msgs = [*row["prompt"], *row["completion"]]
    elif kind == "prompt":
        msgs = [*row["prompt"], {"content": row.get("solution", "")}]
    else:
        msgs = [*row["prompt"], *row["chosen"], *row["rejected"]]
    return "\n".join(str(m.get("content", "")) for m in msgs)


def words(text: str) -> list[str]:
    return [w.casefold() for w in _TOKEN.findall(text)]


def garbage_ratio(text: str) -> float:
    """Share of characters that are neither letters, digits, marks, punctuation nor spaces
    (control and private-use characters, U+FFFD, symbol soup)."""
    if not text:
        return 0.0
    bad = sum(1 for ch in text if ch == "\ufffd" or unicodedata.category(ch)[0] not in "LNMPZ" and not ch.isspace())
    return bad / len(text)


def longest_run(text: str) -> int:
    best = run = 0
    prev = None
    for ch in text:
        run = run + 1 if ch == prev else 1
        prev = ch
        best = max(best, run)
    return best


def language(text: str) -> str:
    """A script-ratio detector: zh when CJK characters are ≥30% of letters, en when Latin letters
    are ≥50%, else other. Good enough to separate Chinese from English data; not a classifier."""
    cjk = len(_CJK_CHAR.findall(text))
    latin = len(_LATIN.findall(text))
    letters = sum(1 for ch in text if ch.isalpha())
    if not letters:
        return "other"
    if cjk / letters >= 0.3:
        return "zh"
    return "en" if latin / letters >= 0.5 else "other"


class FilterRules(BaseModel):
    """Which rows to drop. Every bound left out is not checked."""

    model_config = ConfigDict(extra="forbid")

    min_chars: int | None = Field(None, ge=0, description="Drop rows shorter than this many characters")
    max_chars: int | None = Field(None, ge=1, description="Drop rows longer than this many characters")
    min_words: int | None = Field(None, ge=0, description="Drop rows with fewer words (a CJK character is a word)")
    max_words: int | None = Field(None, ge=1, description="Drop rows with more words")
    sensitive_words: list[str] = Field(default_factory=list,
                                       description="Drop rows containing any of these (case-insensitive)")
    max_garbage_ratio: float | None = Field(None, ge=0, le=1,
                                            description="Drop rows whose garbage-character share exceeds this")
    max_repeat: int | None = Field(None, ge=2, description="Drop rows with a run of one character longer than this")
    languages: list[str] = Field(default_factory=list, description="Keep only rows in these languages (zh, en, other)")

    @field_validator("languages")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        bad = [x for x in v if x not in LANGUAGES]
        if bad:
            raise ValueError(f"unknown language {bad[0]!r}: use one of {', '.join(LANGUAGES)}")
        return v

    def active(self) -> list[str]:
        return [k for k, v in self.model_dump().items() if v not in (None, [])]


def load_word_list(path: Path) -> list[str]:
    """One word or phrase per line; blank lines and lines starting with # are ignored."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"--sensitive-words {path}: no such file; give a UTF-8 file with one word per line") from None
    except UnicodeDecodeError as e:
        raise DataError(f"--sensitive-words {path}: not UTF-8 (byte {e.start}); save it as UTF-8") from None
    found = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    if not found:
        raise DataError(f"--sensitive-words {path}: the file lists no words; put one word per line")
    return found


def rejections(text: str, rules: FilterRules) -> list[str]:
    """The names of the rules ``text`` breaks."""
    out = []
    n = len(text)
    if rules.min_chars is not None and n < rules.min_chars:
        out.append("min_chars")
    if rules.max_chars is not None and n > rules.max_chars:
        out.append("max_chars")
    if rules.min_words is not None or rules.max_words is not None:
        w = len(words(text))
        if rules.min_words is not None and w < rules.min_words:
            out.append("min_words")
        if rules.max_words is not None and w > rules.max_words:
            out.append("max_words")
    if rules.sensitive_words:
        low = text.casefold()
        if any(s.casefold() in low for s in rules.sensitive_words):
            out.append("sensitive_words")
    if rules.max_garbage_ratio is not None and garbage_ratio(text) > rules.max_garbage_ratio:
        out.append("max_garbage_ratio")
    if rules.max_repeat is not None and longest_run(text) > rules.max_repeat:
        out.append("max_repeat")
    if rules.languages and language(text) not in rules.languages:
        out.append("languages")
    return out


@dataclass(frozen=True)
class FilterResult:
    source: DatasetVersion
    version: DatasetVersion | None  # None when no row was dropped
    rows_in: int
    rows_kept: int
    per_rule: dict[str, int]  # rule -> rows it rejected
    dropped: list[tuple[int, list[str]]] = field(default_factory=list)  # (1-based row, rules)


def filter_version(db: Database, ref: str, rules: FilterRules, *, note: str = "") -> FilterResult:
    active = rules.active()
    if not active:
        raise DataError("no filter rule given: pass at least one of --min-chars, --max-chars, --min-words, "
                        "--max-words, --sensitive-words FILE, --max-garbage, --max-repeat, --lang")
    source = resolve(db, ref)
    rows = read_rows(source)
    per_rule = dict.fromkeys(active, 0)
    kept, dropped = [], []
    for i, row in enumerate(rows, start=1):
        why = rejections(content_text(source.kind, row), rules)
        if why:
            dropped.append((i, why))
            for r in why:
                per_rule[r] += 1
        else:
            kept.append(row)
    base = dict(source=source, rows_in=len(rows), rows_kept=len(kept), per_rule=per_rule, dropped=dropped)
    if not dropped:
        return FilterResult(version=None, **base)
    if not kept:
        raise DataError(f"the filter rules drop all {len(rows)} rows of {source.dataset} {source.version}; "
                        "loosen them (see `llmloop data report` for the lengths and languages seen)")
    version = write_version(
        db, kept, name=source.dataset, kind=source.kind, source_format=source.source_format,
        note=note or f"filter {', '.join(active)} of {source.version}: dropped {len(dropped)} of {len(rows)} rows",
        created_by=f"filter:{source.version}", parent_id=source.id,
    )
    return FilterResult(version=version, **base)


# --- quality report --------------------------------------------------------------------------------

@dataclass(frozen=True)
class QualityReport:
    version: DatasetVersion
    rows: int
    chars: dict[str, float]  # min, mean, median, p90, max
    words: dict[str, float]
    distinct: dict[int, float]  # n -> distinct n-grams / all n-grams
    top_ngrams: list[tuple[str, int]]
    duplicates: int  # rows whose normalized text repeats an earlier row
    languages: dict[str, int]
    warnings: list[str]


def _summary(values: list[int]) -> dict[str, float]:
    s = sorted(values)
    return {"min": s[0], "mean": round(statistics.fmean(s), 1), "median": statistics.median(s),
            "p90": s[min(len(s) - 1, int(0.9 * len(s)))], "max": s[-1]}


def _ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def quality_report(db: Database, ref: str, *, top: int = 10, ngram: int = 2) -> QualityReport:
    v = resolve(db, ref)
    texts = [content_text(v.kind, r) for r in read_rows(v)]
    toks = [words(t) for t in texts]
    distinct = {}
    for n in (1, 2):
        grams = [g for t in toks for g in _ngrams(t, n)]
        distinct[n] = round(len(set(grams)) / len(grams), 4) if grams else 0.0
    counts = Counter(g for t in toks for g in _ngrams(t, ngram))
    joiner = lambda g: ("" if all(_CJK_CHAR.fullmatch(x) for x in g) else " ").join(g)  # noqa: E731
    top_ngrams = [(joiner(g), c) for g, c in counts.most_common(top)]
    dups = len(exact_matches(texts))
    langs = Counter(language(t) for t in texts)
    chars, wcount = [len(t) for t in texts], [len(t) for t in toks]
    warnings = []
    if dups:
        warnings.append(f"{dups} exact duplicate row(s) ({dups / len(texts):.1%}); run `llmloop data dedup "
                        f"{v.dataset} --exact`")
    short = sum(1 for w in wcount if w < 3)
    if short:
        warnings.append(f"{short} row(s) have fewer than 3 words")
    garbage = sum(1 for t in texts if garbage_ratio(t) > 0.2)
    if garbage:
        warnings.append(f"{garbage} row(s) are more than 20% garbage characters")
    repeats = sum(1 for t in texts if longest_run(t) > 10)
    if repeats:
        warnings.append(f"{repeats} row(s) repeat one character more than 10 times in a row")
    if len(texts) >= 20 and distinct[2] < 0.2:
        warnings.append(f"low diversity: distinct-2 is {distinct[2]:.2f} (templated or repeated data?)")
    if len(langs) > 1:
        warnings.append("mixed languages: " + ", ".join(f"{k} {c}" for k, c in langs.most_common()))
    return QualityReport(v, len(texts), _summary(chars), _summary(wcount), distinct, top_ngrams, dups,
                         dict(langs), warnings)


def report_html(r: QualityReport) -> str:
    e = html.escape
    v = r.version

    def table(head: list[str], rows: list[list[Any]]) -> str:
        th = "".join(f"<th>{e(str(h))}</th>" for h in head)
        body = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in rows)
        return f"<table><tr>{th}</tr>{body}</table>"

    stats = [["characters", *r.chars.values()], ["words", *r.words.values()]]
    parts = [
        f"<h1>Quality report: {e(v.dataset)} {e(v.version)}</h1>",
        f"<p>{r.rows} {e(v.kind)} rows · hash {e(v.content_hash[:12])} · exact duplicates {r.duplicates} · "
        f"distinct-1 {r.distinct[1]:.3f} · distinct-2 {r.distinct[2]:.3f}</p>",
        "<h2>Lengths</h2>", table(["", "min", "mean", "median", "p90", "max"], stats),
        "<h2>Languages</h2>", table(["language", "rows"], [[k, c] for k, c in r.languages.items()]),
        "<h2>Top n-grams</h2>", table(["n-gram", "count"], [[g, c] for g, c in r.top_ngrams]),
        "<h2>Warnings</h2>",
        "<ul>" + "".join(f"<li>{e(w)}</li>" for w in r.warnings) + "</ul>" if r.warnings else "<p>none</p>",
    ]
    style = "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}"
    return f"<!doctype html><html><head><meta charset='utf-8'><title>{e(v.dataset)} {e(v.version)}</title>" \
           f"<style>{style}</style></head><body>{''.join(parts)}</body></html>\n"


def write_report_html(r: QualityReport, out: Path | None = None) -> Path:
    path = Path(out) if out else Path(r.version.path).with_suffix(".quality.html")
    write_atomic(path, report_html(r).encode("utf-8"))
    return path
