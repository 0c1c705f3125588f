"""Domain corpus (D1): documents → cleaned, token-aware, overlapping chunks → a ``pt`` dataset version.

Reading: ``.txt`` as is; ``.md`` rendered with markdown-it (the parser Rich already uses) and reduced
to its text, so ``#``, ``**`` and link syntax do not reach the model; ``.html``/``.htm`` through
BeautifulSoup with scripts, styles and page furniture (nav, header, footer, aside, forms) removed;
``.jsonl`` one document per line from a text field; ``.pdf`` through pypdf, page by page. Folders are
walked for those suffixes.

Cleaning (why by hand: each rule is one line and no maintained library does this combination):
Unicode NFC, control characters dropped, runs of spaces collapsed, more than one blank line collapsed,
page-number lines dropped, and *boilerplate lines* — the same line in at least 3 documents and in at
least half of them (copyright notes, running heads) — dropped.

Chunking: the model's tokenizer (``--tokenizer``, a fast tokenizer with offsets) gives token offsets;
windows of ``chunk_tokens`` tokens advance by ``chunk_tokens - overlap`` and each chunk is the exact
source text those tokens cover (no decode round trip). A window's end is pulled back to the last
paragraph, sentence or word break inside its final quarter so chunks do not stop mid-word. Without a
tokenizer, "tokens" are words (CJK characters count one each) and the result says so.

All or nothing: every document is read and chunked before anything is stored.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from llmloop.data.rows import DataError
from llmloop.store import Database
from llmloop.store.records import DatasetVersion

DOC_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".jsonl", ".pdf")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b\ufeff]")
_SPACES = re.compile(r"[ \t\u00a0\u3000]+")
_PAGE_NUMBER = re.compile(r"^\s*(page\s*)?\d{1,4}(\s*(/|of)\s*\d{1,4})?\s*$", re.I)
_WORD = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]|[^\s\u3400-\u9fff\uf900-\ufaff]+")
_BREAKS = (re.compile(r"\n\s*\n"), re.compile(r"(?<=[.!?。！？])\s"), re.compile(r"\s"))


class CorpusConfig(BaseModel):
    """``llmloop data corpus``: documents → a pt dataset of overlapping token chunks."""

    model_config = ConfigDict(extra="forbid")
    docs: list[Path] = Field(min_length=1, description="Files or folders: .txt .md .html .jsonl .pdf")
    name: str = Field(description="Dataset to add the pt version to")
    chunk_tokens: int = Field(512, ge=16, description="Tokens per chunk (the model's tokenizer)")
    overlap: int = Field(64, ge=0, description="Tokens shared by consecutive chunks of one document")
    tokenizer: str | None = Field(None, description="Model folder whose tokenizer counts tokens; words without it")
    text_field: str = Field("text", description="For .jsonl documents: the field holding the text")
    note: str = Field("", description="Note kept with the new version")

    @model_validator(mode="after")
    def _overlap_below_chunk(self) -> "CorpusConfig":
        if self.overlap >= self.chunk_tokens:
            raise ValueError(f"--overlap ({self.overlap}) must be smaller than --chunk-tokens ({self.chunk_tokens})")
        return self


@dataclass(frozen=True)
class Document:
    source: str  # file name (with #line for .jsonl, #page range for .pdf)
    text: str


@dataclass(frozen=True)
class CorpusResult:
    version: DatasetVersion
    documents: int
    chunks: int
    unit: str  # "tokens (<tokenizer>)" or "words"
    boilerplate_lines: int  # distinct lines removed as boilerplate
    empty: list[str] = field(default_factory=list)  # documents with no text left after cleaning


# --- reading -----------------------------------------------------------------------------------

def _text_of_html(html: str) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "lxml")
    for tag in soup(["script", "style", "noscript", "template", "nav", "header", "footer", "aside", "form", "svg"]):
        tag.decompose()
    blocks = ("p", "div", "section", "article", "li", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote",
              "tr", "br", "table", "ul", "ol")
    for tag in soup.find_all(blocks):
        tag.insert_before("\n")
        tag.insert_after("\n")
    return soup.get_text()


def _text_of_markdown(md: str) -> str:
    from markdown_it import MarkdownIt

    return _text_of_html(MarkdownIt("commonmark").enable("table").render(md))


def _decode(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise DataError(f"{path}: not valid UTF-8 at byte offset {e.start} (line {line}); save it as UTF-8 "
                        "(for example `iconv -f gbk -t utf-8 in > out`)") from None


def read_documents(path: Path, text_field: str = "text") -> list[Document]:
    """The documents in one file (a .jsonl holds one per line)."""
    suffix = path.suffix.lower()
    if suffix not in DOC_SUFFIXES:
        raise DataError(f"{path}: unsupported document type {suffix or '(none)'!r}; use {', '.join(DOC_SUFFIXES)}")
    if suffix == ".pdf":
        try:
            from pypdf import PdfReader
            from pypdf.errors import PdfReadError
        except ImportError as e:  # pragma: no cover - in the data extra
            raise DataError("reading .pdf needs pypdf: pip install 'llmloop[data]'") from e
        try:
            pages = [p.extract_text() or "" for p in PdfReader(str(path)).pages]
        except (PdfReadError, OSError, ValueError) as e:
            raise DataError(f"{path}: unreadable PDF ({e}); export it again or convert it to text") from None
        return [Document(path.name, "\n\n".join(pages))]
    text = _decode(path, path.read_bytes())
    if suffix in (".html", ".htm"):
        return [Document(path.name, _text_of_html(text))]
    if suffix in (".md", ".markdown"):
        return [Document(path.name, _text_of_markdown(text))]
    if suffix != ".jsonl":
        return [Document(path.name, text)]
    docs = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}, line {lineno}: malformed JSON ({e.msg} at column {e.colno}); each line must "
                            "be one JSON object") from None
        value = obj.get(text_field) if isinstance(obj, dict) else None
        if not isinstance(value, str):
            raise DataError(f"{path}, line {lineno}: no string field {text_field!r} "
                            f"(keys {sorted(obj) if isinstance(obj, dict) else type(obj).__name__}); "
                            "pass --text-field to name the field holding the document")
        docs.append(Document(f"{path.name}#{lineno}", value))
    return docs


def collect(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        if not p.exists():
            raise DataError(f"{p}: no such file or folder")
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in DOC_SUFFIXES
                           and not f.name.startswith("."))
            if not found:
                raise DataError(f"{p}: no documents ({', '.join(DOC_SUFFIXES)}) in this folder")
            files.extend(found)
        else:
            files.append(p)
    return files


# --- cleaning ----------------------------------------------------------------------------------

def _lines(text: str) -> list[str]:
    text = _CONTROL.sub("", unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n"))
    return [_SPACES.sub(" ", line).strip() for line in text.split("\n")]


def clean_documents(docs: list[Document]) -> tuple[list[Document], int]:
    """Cleaned documents (same order) and how many distinct boilerplate lines were removed."""
    split = [_lines(d.text) for d in docs]
    seen_in = Counter(line for lines in split for line in {x for x in lines if x})
    boiler = {line for line, n in seen_in.items() if n >= 3 and n * 2 >= len(docs)} if len(docs) >= 3 else set()
    out = []
    for d, lines in zip(docs, split, strict=True):
        kept = [x for x in lines if x not in boiler and not _PAGE_NUMBER.match(x)]
        text = re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()
        out.append(Document(d.source, text))
    return out, len(boiler)


# --- chunking ----------------------------------------------------------------------------------

Spans = Callable[[str], list[tuple[int, int]]]


def token_spans(tokenizer: str | None) -> tuple[Spans, str]:
    """(text → character span of every token, unit name)."""
    if tokenizer is None:
        return (lambda text: [m.span() for m in _WORD.finditer(text)]), "words"
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(tokenizer, local_files_only=True)
    except Exception as e:  # noqa: BLE001 - transformers raises many kinds; all mean "cannot load"
        raise DataError(f"--tokenizer {tokenizer}: cannot load a tokenizer there ({type(e).__name__}: {e}); give a "
                        "model folder holding tokenizer files") from None
    if not getattr(tok, "is_fast", False):
        raise DataError(f"--tokenizer {tokenizer}: a fast (Rust) tokenizer is needed for token offsets")

    def spans(text: str) -> list[tuple[int, int]]:
        return [tuple(s) for s in tok(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]]

    return spans, f"tokens ({tokenizer})"


def chunk_text(text: str, spans: list[tuple[int, int]], size: int, overlap: int) -> list[str]:
    """Windows of ``size`` tokens advancing by ``size - overlap``, as exact substrings of ``text``."""
    n = len(spans)
    if n <= size:
        return [text] if text.strip() else []
    chunks, start = [], 0
    while start < n:
        end = min(start + size, n)
        if end < n:  # pull the end back to a natural break in the window's last quarter
            lo = spans[start + (3 * (end - start)) // 4][0]
            hi = spans[end - 1][1]
            for pattern in _BREAKS:
                last = None
                for m in pattern.finditer(text, lo, hi):
                    last = m
                if last is not None:
                    cut = last.start()
                    idx = next((i for i in range(end - 1, start, -1) if spans[i][1] <= cut), None)
                    if idx is not None:
                        end = idx + 1
                    break
        piece = text[spans[start][0]:spans[end - 1][1]].strip()
        if piece:
            chunks.append(piece)
        if end >= n:
            break
        start = max(end - overlap, start + 1)
    return chunks


def build_corpus(db: Database, config: CorpusConfig, *, progress: Callable[[str], None] | None = None) -> CorpusResult:
    """Read, clean and chunk ``config.docs``; store the chunks as the next pt version of ``config.name``."""
    from llmloop.data.versions import check_name, write_version

    try:
        check_name(config.name)
    except ValueError as e:
        raise DataError(f"{e}; pass another --name") from None
    files = collect(config.docs)
    spans_of, unit = token_spans(config.tokenizer)
    docs: list[Document] = []
    for f in files:
        docs.extend(read_documents(f, config.text_field))
        if progress:
            progress(f.name)
    cleaned, boiler = clean_documents(docs)
    rows, empty = [], []
    for d in cleaned:
        if not d.text:
            empty.append(d.source)
            continue
        for i, piece in enumerate(chunk_text(d.text, spans_of(d.text), config.chunk_tokens, config.overlap)):
            rows.append({"text": piece, "meta": {"source": d.source, "chunk": i}})
    if not rows:
        raise DataError(f"no text left in {len(docs)} document(s) after cleaning ({', '.join(empty[:5])}); "
                        "check the files are not empty or image-only PDFs")
    note = config.note or (f"{len(rows)} chunks of ≤{config.chunk_tokens} {unit.split()[0]} (overlap {config.overlap}) "
                           f"from {len(cleaned) - len(empty)} document(s)")
    try:
        version = write_version(db, rows, name=config.name, kind="pt", source_format="corpus", note=note,
                                created_by=f"corpus:{len(files)} file(s)")
    except ValueError as e:
        raise DataError(str(e)) from None
    return CorpusResult(version, len(cleaned) - len(empty), len(rows), unit, boiler, empty)
