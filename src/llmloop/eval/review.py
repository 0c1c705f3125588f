"""Human review (E3): export a blind side-by-side sheet (CSV or XLSX), import the filled sheet back.

The sheet shows each prompt with two answers as "answer_1"/"answer_2" in a random order per row,
so reviewers cannot favour a version by position or name; the order is kept in a key file next to
the sheet (``<sheet>.key.json``), never in the sheet. Reviewers fill ``preferred`` (1, 2 or tie),
optionally ``score_1``/``score_2`` (1–5) and ``comment``. Import validates every row and reports all
problems at once with their row numbers; the result is a ``WinRateReport`` (judge "human"), so
human verdicts mix into the same win-rate and leaderboard code as judge verdicts.
XLSX needs openpyxl (imported only for .xlsx files).
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

from llmloop.eval import EvalInputError
from llmloop.eval.winrate import PairSample, WinRateReport, summarize

COLUMNS = ["id", "prompt", "answer_1", "answer_2", "preferred", "score_1", "score_2", "comment"]


def _key_path(sheet: Path) -> Path:
    return sheet.with_name(sheet.name + ".key.json")


def export_review(report: WinRateReport, sheet: str | Path, seed: int = 0) -> Path:
    """Write the blind sheet (.csv or .xlsx by suffix) and its key file; returns the key file's path."""
    sheet = Path(sheet)
    if sheet.suffix not in (".csv", ".xlsx"):
        raise EvalInputError(f"review sheet {sheet}: use a .csv or .xlsx file name")
    rng = random.Random(seed)
    rows, key = [], {"version_x": report.version_x, "version_y": report.version_y, "rows": {}}
    for i, s in enumerate(report.samples):
        swapped = rng.random() < 0.5
        a1, a2 = (s.answer_y, s.answer_x) if swapped else (s.answer_x, s.answer_y)
        prompt = "\n".join(f"{m.get('role')}: {m.get('content')}" for m in s.prompt) if len(s.prompt) > 1 else \
            (s.prompt[0].get("content", "") if s.prompt else "")
        rows.append([str(i), prompt, a1, a2, "", "", "", ""])
        key["rows"][str(i)] = {"swapped": swapped, "prompt": s.prompt, "answer_x": s.answer_x, "answer_y": s.answer_y}
    if sheet.suffix == ".csv":
        with sheet.open("w", newline="", encoding="utf-8-sig") as f:  # BOM: Excel opens Chinese CSV correctly
            w = csv.writer(f)
            w.writerow(COLUMNS)
            w.writerows(rows)
    else:
        from openpyxl import Workbook

        wb = Workbook()
        ws = wb.active
        ws.title = "review"
        ws.append(COLUMNS)
        for r in rows:
            ws.append(r)
        wb.save(sheet)
    kp = _key_path(sheet)
    kp.write_text(json.dumps(key, ensure_ascii=False, indent=1), encoding="utf-8")
    return kp


def _read_sheet(sheet: Path) -> list[dict[str, str]]:
    if sheet.suffix == ".xlsx":
        from openpyxl import load_workbook

        ws = load_workbook(sheet, read_only=True).active
        it = ws.iter_rows(values_only=True)
        header = [str(h or "").strip() for h in next(it)]
        return [{h: "" if v is None else str(v) for h, v in zip(header, r)} for r in it if any(v is not None for v in r)]
    with sheet.open(newline="", encoding="utf-8-sig") as f:
        return list(csv.DictReader(f))


def import_review(sheet: str | Path, reviewer: str = "human") -> WinRateReport:
    """Filled sheet + key → a win-rate report of version_x against version_y. ValueError lists every bad row."""
    sheet = Path(sheet)
    if not sheet.is_file():
        raise EvalInputError(f"review sheet {sheet}: no such file")
    kp = _key_path(sheet)
    if not kp.exists():
        raise EvalInputError(f"review sheet {sheet}: its key file {kp} is missing (export_review writes both)")
    key = json.loads(kp.read_text(encoding="utf-8"))
    rows = _read_sheet(sheet)
    missing = [c for c in ("id", "preferred") if rows and c not in rows[0]]
    if missing:
        raise EvalInputError(f"review sheet {sheet}: columns {missing} are missing; keep the exported header")
    problems, samples = [], []
    for n, r in enumerate(rows, start=2):  # row 1 is the header
        rid = str(r.get("id", "")).strip().removesuffix(".0")
        pref = str(r.get("preferred", "")).strip().lower().removesuffix(".0")
        if rid not in key["rows"]:
            problems.append(f"row {n}: id {rid!r} is not in the exported sheet")
            continue
        if pref == "":
            continue  # not reviewed yet
        if pref not in ("1", "2", "tie"):
            problems.append(f"row {n}: preferred must be 1, 2 or tie, got {r.get('preferred')!r}")
            continue
        for col in ("score_1", "score_2"):
            v = str(r.get(col, "") or "").strip().removesuffix(".0")
            if v and v not in {"1", "2", "3", "4", "5"}:
                problems.append(f"row {n}: {col} must be an integer 1–5 or empty, got {r.get(col)!r}")
        k = key["rows"][rid]
        if pref == "tie":
            winner = "tie"
        else:
            first_is_x = not k["swapped"]
            winner = "x" if (pref == "1") == first_is_x else "y"
        scores = {c: str(r.get(c, "") or "").strip() for c in ("score_1", "score_2")}
        reason = "; ".join(x for x in [str(r.get("comment", "") or "").strip(),
                                        f"scores {scores['score_1']}/{scores['score_2']}" if any(scores.values()) else ""] if x)
        samples.append(PairSample(k["prompt"], k["answer_x"], k["answer_y"], winner, reason))
    if problems:
        raise EvalInputError(f"review sheet {sheet}: {len(problems)} problem(s):\n" + "\n".join(problems))
    if not samples:
        raise EvalInputError(f"review sheet {sheet}: no row has 'preferred' filled in")
    return summarize(key["version_x"], key["version_y"], reviewer, samples)


def human_scores(sheet: str | Path) -> dict[str, dict[str, float | int | None]]:
    """The reviewers' 1–5 scores per version, un-blinded with the key: ``{version: {"n": k, "mean": m}}``.

    Call after ``import_review`` has validated the sheet (it raises on any bad score); rows without a
    score are skipped, so ``mean`` is None when nobody scored that version."""
    sheet = Path(sheet)
    key = json.loads(_key_path(sheet).read_text(encoding="utf-8"))
    got: dict[str, list[int]] = {key["version_x"]: [], key["version_y"]: []}
    for r in _read_sheet(sheet):
        k = key["rows"].get(str(r.get("id", "")).strip().removesuffix(".0"))
        if k is None:
            continue
        first, second = (key["version_y"], key["version_x"]) if k["swapped"] else (key["version_x"], key["version_y"])
        for col, version in (("score_1", first), ("score_2", second)):
            v = str(r.get(col, "") or "").strip().removesuffix(".0")
            if v in {"1", "2", "3", "4", "5"}:
                got[version].append(int(v))
    return {v: {"n": len(s), "mean": sum(s) / len(s) if s else None} for v, s in got.items()}
