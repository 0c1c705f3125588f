"""Files a user names to an evaluation command (scores, answers, preference pairs, eval sets, reports):
read whole, and every failure to read one is an ``EvalInputError`` that names the file and line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmloop.eval import EvalInputError


def read_text(path: str | Path) -> str:
    """The UTF-8 text of ``path``; a missing, unreadable or non-UTF-8 file is the user's to fix."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise EvalInputError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); save the file as UTF-8") from None
    except OSError as e:  # a file the caller named: missing, a folder, unreadable
        raise EvalInputError(f"{path}: cannot read it ({e.strerror or e})") from None


def read_jsonl(path: str | Path, needs: str = "") -> list[tuple[str, Any]]:
    """``(where, value)`` for every non-blank line of a JSON Lines file, ``where`` being ``"PATH line N"``.
    The first line that is not JSON stops the read with its number and ``needs`` (what a row must hold)."""
    rows = []
    for i, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((f"{path} line {i}", json.loads(line)))
        except json.JSONDecodeError as e:
            raise EvalInputError(f"{path} line {i}: not JSON ({e.msg} at column {e.colno})"
                                 + (f"; {needs}" if needs else "")) from None
    return rows
