"""Check a data file without storing it: every problem, with its file, row, field and fix.

``parse_file`` is the one path from a file on disk to canonical rows; ``import_file`` stores what
it returns and ``validate_file`` (``llmloop data validate``) only reports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path
from typing import Any

from llmloop.data.formats import FormatError, Layout, check_format, layout_for, to_canonical
from llmloop.data.readers import iter_records
from llmloop.data.rows import Problem, RowCheck, show

_DETECT_ROWS = 5  # how many leading rows auto-detection looks at


@dataclass(frozen=True)
class ParsedFile:
    path: Path
    format: str  # the format used ("alpaca", …), resolved from "auto"; "" if it could not be told
    kind: str  # pt | sft | preference; "" if the format could not be told
    rows: list[dict[str, Any]]  # the valid rows, canonical, in file order
    rows_read: int  # rows found in the file, valid or not
    problems: list[Problem]

    @property
    def fatal(self) -> bool:
        """A file-level problem: no row of this file can be kept, even with skip_invalid."""
        return any(p.row is None for p in self.problems)


class ParseStream:
    """``path`` read as ``format`` (or ``layout``), one canonical row at a time.

    The format is told from the first rows on construction (``format``/``kind``; a file-level problem
    when it cannot be); ``rows()`` then yields the valid canonical rows in file order and appends every
    problem to ``problems`` as it goes, so a JSON Lines file of any length is validated in bounded
    memory. Raises ``DataError`` only for what is wrong with the request (no such file, unknown format).
    """

    def __init__(self, path: str | Path, format: str = "auto", *, layout: Layout | None = None,
                 progress: Callable[[int], None] | None = None) -> None:
        if layout is None:
            check_format(format)
        self.path = Path(path)
        self.problems: list[Problem] = []
        self.rows_read = 0
        self._records = iter_records(self.path, self.problems, progress)
        self._head = list(islice(self._records, _DETECT_ROWS))
        self._not_objects = False
        self.layout = layout
        self.format = self.kind = ""
        if layout is None and not self.fatal:
            objects = [r.value for r in self._head if isinstance(r.value, dict)]
            if not objects:  # nothing to tell the format from: report the rows themselves
                self._not_objects = True
            else:
                try:
                    self.layout = layout_for(format, objects)
                except FormatError as e:
                    self.problems.append(Problem(self.path.name, None, "", e.problem, "", e.fix))
        if self.layout is not None:
            self.format, self.kind = self.layout.formatting, self.layout.kind

    @property
    def fatal(self) -> bool:
        """A file-level problem: no row of this file can be kept, even with skip_invalid."""
        return any(p.row is None for p in self.problems)

    def rows(self) -> Iterator[dict[str, Any]]:
        name = self.path.name
        for record in chain(self._head, self._records):
            self.rows_read = max(self.rows_read, record.row)
            if self._not_objects:
                self.problems.append(Problem(name, record.row, "", "a row must be a JSON object", show(record.value),
                                             'write each row as {"field": value, …}', record.line))
                continue
            if self.layout is None or self.fatal:
                continue
            check = RowCheck(name, record.row, record.line)
            row = to_canonical(record.value, self.layout, check)
            if row is None:
                self.problems.extend(check.problems)
            else:
                yield row
        self.rows_read = max([self.rows_read] + [p.row for p in self.problems if p.row is not None])


def parse_file(path: str | Path, format: str = "auto", *, layout: Layout | None = None) -> ParsedFile:
    """Read ``path`` as ``format`` (or the explicit ``layout``) into canonical rows and problems.

    Raises ``DataError`` only for what is wrong with the request (no such file, unknown format);
    everything wrong with the data comes back as problems.
    """
    stream = ParseStream(path, format, layout=layout)
    rows = list(stream.rows())
    problems = sorted(stream.problems, key=lambda p: p.row or 0)
    return ParsedFile(stream.path, stream.format, stream.kind, rows if not stream.fatal else [], stream.rows_read,
                      problems)


def validate_file(path: str | Path, format: str = "auto") -> list[Problem]:
    """Every problem in ``path`` read as ``format``; an empty list means it imports cleanly."""
    return parse_file(path, format).problems
