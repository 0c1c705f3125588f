"""Read a data file into raw records, reporting what cannot be read as ``Problem``s.

Readers know file syntax (JSON, JSON Lines, text, CSV, Parquet) and encodings, nothing about
what a row means: ``formats`` turns records into canonical rows. Every record keeps its 1-based
``row`` and, where the file has lines, its physical ``line``, so later problems can point at it.
A problem that a reader cannot pin to one record (a JSON array that does not parse, a file that is
not UTF-8 as a whole) is a file-level problem (``row`` None): no row of such a file can be kept.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from llmloop.data.rows import DataError, Problem, show

SUFFIXES = (".json", ".jsonl", ".ndjson", ".txt", ".csv", ".parquet")
# One training row longer than this is refused: at that size it is almost surely a broken file (a lost
# newline merging rows, a whole document in one cell), and it would blow past any context length anyway.
MAX_ROW_BYTES = 8 * 1024 * 1024
_UTF8_FIX = "save the file as UTF-8 (for example `iconv -f latin1 -t utf-8 in > out`)"


@dataclass(frozen=True)
class Record:
    row: int  # 1-based record number in the file
    line: int | None  # 1-based physical line, where the file has lines
    value: Any  # a parsed JSON value, a CSV dict, or {"text": line} for .txt


@dataclass(frozen=True)
class RawFile:
    path: Path
    records: list[Record]
    problems: list[Problem]  # row-level (unreadable lines) and file-level

    @property
    def fatal(self) -> bool:
        return any(p.row is None for p in self.problems)

    @property
    def rows_read(self) -> int:
        """Records found, readable or not."""
        return len(self.records) + len({p.row for p in self.problems if p.row is not None})


def read_file(path: str | Path) -> RawFile:
    path = Path(path)
    read_file_checks(path)
    suffix = path.suffix.lower()
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte order mark: harmless, drop it
        data = data[3:]
    name = path.name
    if not data.strip():
        return RawFile(path, [], [Problem(name, None, "", "the file is empty", f"{len(data)} bytes",
                                          "give a file with at least one row")])
    if suffix == ".parquet":
        raw = _parquet(path)
    elif suffix in (".jsonl", ".ndjson"):
        raw = _lines(name, data, as_text=False)
    elif suffix == ".txt":
        raw = _lines(name, data, as_text=True)
    elif suffix == ".csv":
        raw = _csv(name, data)
    else:
        raw = _json(name, data)
    if not raw.records and not raw.problems:
        raw.problems.append(Problem(name, None, "", "the file holds no rows", "", "add at least one row"))
    return RawFile(path, raw.records, raw.problems)


def iter_records(path: str | Path, problems: list[Problem],
                 progress: Callable[[int], None] | None = None) -> Iterator[Record]:
    """Records of ``path`` one at a time, appending what cannot be read to ``problems``.

    JSON Lines and .txt are streamed line by line (memory bounded by the longest line); .json, .csv
    and .parquet are read whole (their syntax is not line based) and then yielded. ``progress`` gets the
    bytes read so far, now and then.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".ndjson", ".txt"):
        raw = read_file(path)
        problems.extend(raw.problems)
        if progress:
            progress(path.stat().st_size)
        yield from raw.records
        return
    read_file_checks(path)
    name, as_text = path.name, suffix == ".txt"
    row = offset = 0
    with path.open("rb") as f:
        for lineno, chunk in enumerate(f, start=1):
            start, offset = offset, offset + len(chunk)
            if lineno == 1 and chunk.startswith(b"\xef\xbb\xbf"):
                chunk = chunk[3:]
            if progress and lineno % 8192 == 0:
                progress(offset)
            chunk = chunk.rstrip(b"\n")
            if not chunk.strip():
                continue
            row += 1
            if len(chunk) > MAX_ROW_BYTES:
                problems.append(_too_long(name, row, len(chunk), lineno))
                continue
            try:
                text = chunk.decode("utf-8")
            except UnicodeDecodeError as e:
                problems.append(Problem(name, row, "", f"not valid UTF-8 at byte offset {start + e.start} (line {lineno})",
                                        f"bytes {e.object[e.start:e.start + 4]!r}", _UTF8_FIX, lineno))
                continue
            if as_text:
                yield Record(row, lineno, {"text": text.rstrip("\r")})
                continue
            try:
                value = _loads(text)
            except json.JSONDecodeError as e:
                problems.append(Problem(name, row, "", f"malformed JSON: {e.msg} at column {e.colno}",
                                        show(text.strip()), "each line must be one complete JSON object; check "
                                        "quotes, commas and braces", lineno))
                continue
            yield Record(row, lineno, value)
    if progress:
        progress(offset)
    if row == 0:
        problems.append(Problem(name, None, "", "the file is empty", f"{offset} bytes",
                                "give a file with at least one row"))


def _loads(text: str) -> Any:
    """orjson (several times faster); the standard parser for what orjson refuses (NaN, huge integers)
    and for the error message users know."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def read_file_checks(path: Path) -> None:
    """The request-level checks of ``read_file``: the path exists, is a file, has a known suffix."""
    if not path.exists():
        raise DataError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise DataError(f"{path} is a directory; give a data file (for a LLaMA-Factory data folder "
                        "use `llmloop data import-llamafactory`)")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(f"{path.name}: unsupported file type {suffix or '(none)'!r}; "
                        f"use one of {', '.join(SUFFIXES)}")


def _decode_error(name: str, data: bytes, err: UnicodeDecodeError, base: int = 0, row: int | None = None,
                  line: int | None = None) -> Problem:
    offset = base + err.start
    line = line or data[:offset].count(b"\n") + 1
    return Problem(name, row, "", f"not valid UTF-8 at byte offset {offset} (line {line})",
                   f"bytes {err.object[err.start:err.start + 4]!r}", _UTF8_FIX, line if row else None)


def _lines(name: str, data: bytes, *, as_text: bool) -> RawFile:
    """JSON Lines, or plain text with one document per line. Blank lines are not rows."""
    records: list[Record] = []
    problems: list[Problem] = []
    offset = 0
    row = 0
    for lineno, chunk in enumerate(data.split(b"\n"), start=1):
        start, offset = offset, offset + len(chunk) + 1
        if not chunk.strip():
            continue
        row += 1
        if len(chunk) > MAX_ROW_BYTES:
            problems.append(_too_long(name, row, len(chunk), lineno))
            continue
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError as e:
            problems.append(_decode_error(name, data, e, base=start, row=row, line=lineno))
            continue
        if as_text:
            records.append(Record(row, lineno, {"text": text.rstrip("\r")}))
            continue
        try:
            records.append(Record(row, lineno, json.loads(text)))
        except json.JSONDecodeError as e:
            problems.append(Problem(name, row, "", f"malformed JSON: {e.msg} at column {e.colno}",
                                    show(text.strip()),
                                    "each line must be one complete JSON object; check quotes, "
                                    "commas and braces", lineno))
    return RawFile(Path(name), records, problems)


def _json(name: str, data: bytes) -> RawFile:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        return RawFile(Path(name), [], [_decode_error(name, data, e)])
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        if text.lstrip().startswith("{") and e.msg == "Extra data":  # JSON Lines named .json
            return _lines(name, data, as_text=False)
        return RawFile(Path(name), [], [Problem(
            name, None, "", f"malformed JSON: {e.msg} at line {e.lineno} column {e.colno}",
            show(text[max(0, e.pos - 20):e.pos + 20]),
            "fix the JSON syntax there (a .json file holds one array of row objects)", e.lineno)])
    if isinstance(value, dict):  # a single row
        value = [value]
    if not isinstance(value, list):
        return RawFile(Path(name), [], [Problem(name, None, "", "expected a JSON array of row objects",
                                                show(value), "wrap the rows in [ … ]")])
    records, problems = [], []
    for i, v in enumerate(value, start=1):
        size = len(json.dumps(v, ensure_ascii=False).encode("utf-8")) if len(data) > MAX_ROW_BYTES else 0
        if size > MAX_ROW_BYTES:
            problems.append(_too_long(name, i, size, None))
        else:
            records.append(Record(i, None, v))
    return RawFile(Path(name), records, problems)


def _too_long(name: str, row: int, size: int, line: int | None) -> Problem:
    return Problem(name, row, "", f"the row is {size / 2**20:.1f} MiB; rows over {MAX_ROW_BYTES // 2**20} MiB are "
                   "refused", f"{size} bytes", "check the file for a lost line break merging rows, or split the "
                   "document into smaller rows (`llmloop data corpus` chunks long documents)", line)


def _csv(name: str, data: bytes) -> RawFile:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        return RawFile(Path(name), [], [_decode_error(name, data, e)])
    csv.field_size_limit(2**31 - 1)  # csv's own cell limit (128 KiB) would say "malformed"; ours is per row, below
    reader = csv.DictReader(io.StringIO(text, newline=""))
    records: list[Record] = []
    problems: list[Problem] = []
    try:
        for row, values in enumerate(reader, start=1):
            if None in values:
                problems.append(Problem(name, row, "", "more cells than header columns",
                                        show(values[None]), "quote cells that contain commas", reader.line_num))
                continue
            missing = [k for k, v in values.items() if v is None]
            if missing:
                n = len(values) - len(missing)
                problems.append(Problem(name, row, "", f"fewer cells than header columns ({n} of {len(values)})",
                                        f"no cell for {missing}", "add the missing cells (empty ones as ,,) "
                                        "or quote cells that contain line breaks", reader.line_num))
                continue
            if sum(len(v) for v in values.values()) > MAX_ROW_BYTES:
                problems.append(_too_long(name, row, sum(len(v.encode()) for v in values.values()), reader.line_num))
                continue
            records.append(Record(row, reader.line_num, dict(values)))
    except csv.Error as e:
        problems.append(Problem(name, None, "", f"malformed CSV: {e}", "", "fix the quoting", reader.line_num))
    return RawFile(Path(name), records, problems)


def _parquet(path: Path) -> RawFile:
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow comes with `datasets`
        raise DataError("reading .parquet needs pyarrow: pip install pyarrow") from None
    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as e:  # noqa: BLE001 - pyarrow raises many types for a bad file
        return RawFile(path, [], [Problem(path.name, None, "", f"unreadable Parquet: {e}", "",
                                          "write the file again with pyarrow or pandas")])
    return RawFile(path, [Record(i, None, v) for i, v in enumerate(rows, start=1)], [])
