import csv

import pytest

from llmloop.eval.review import export_review, import_review
from llmloop.eval.winrate import PairSample, summarize


def _report():
    samples = [PairSample([{"role": "user", "content": f"问题 {i}"}], f"good {i}", f"bad {i}", "x", "") for i in range(8)]
    return summarize("v1.1", "v1.0", "judge", samples)


def _fill(rows, pick_good=True):
    for r in rows[1:]:
        good_first = r[2].startswith("good")
        r[4] = "1" if good_first == pick_good else "2"
        r[5] = "4"
    return rows


def test_csv_round_trip_is_blind_and_maps_back_to_versions(tmp_path):
    sheet = tmp_path / "review.csv"
    key = export_review(_report(), sheet, seed=3)
    rows = list(csv.reader(sheet.open(encoding="utf-8-sig")))
    assert rows[0][:5] == ["id", "prompt", "answer_1", "answer_2", "preferred"] and rows[1][1] == "问题 0"
    firsts = [r[2].split()[0] for r in rows[1:]]
    assert "good" in firsts and "bad" in firsts  # positions are shuffled
    assert "v1.1" not in sheet.read_text(encoding="utf-8-sig") and key.exists()
    rows = _fill(rows)
    rows[8][4] = "tie"
    rows[7][4] = ""  # not reviewed: skipped
    with sheet.open("w", newline="", encoding="utf-8-sig") as f:
        csv.writer(f).writerows(rows)
    rep = import_review(sheet)
    assert (rep.n, rep.wins, rep.losses, rep.ties, rep.judge) == (7, 6, 0, 1, "human")
    assert rep.version_x == "v1.1" and "scores 4/" in rep.samples[0].reason


def test_xlsx_round_trip_and_validation(tmp_path):
    from openpyxl import load_workbook

    sheet = tmp_path / "review.xlsx"
    export_review(_report(), sheet)
    wb = load_workbook(sheet)
    ws = wb.active
    for row in ws.iter_rows(min_row=2):
        row[4].value = 1 if row[2].value.startswith("bad") else 2  # reviewers prefer the bad answer
    wb.save(sheet)
    assert import_review(sheet).losses == 8
    ws["E2"], ws["F3"] = "maybe", 9
    wb.save(sheet)
    with pytest.raises(ValueError, match=r"2 problem\(s\)") as e:
        import_review(sheet)
    assert "row 2: preferred" in str(e.value) and "row 3: score_1" in str(e.value)


def test_missing_key_and_bad_suffix(tmp_path):
    with pytest.raises(ValueError, match=".csv or .xlsx"):
        export_review(_report(), tmp_path / "r.txt")
    (tmp_path / "r.csv").write_text("id,preferred\n0,1\n")
    with pytest.raises(ValueError, match="key file"):
        import_review(tmp_path / "r.csv")


def test_human_scores_are_unblinded_per_version(tmp_path):
    from llmloop.eval.review import human_scores

    sheet = tmp_path / "review.csv"
    export_review(_report(), sheet, seed=5)
    rows = list(csv.reader(sheet.open(encoding="utf-8-sig")))
    for r in rows[1:]:
        good_first = r[2].startswith("good")
        r[4] = "1" if good_first else "2"
        r[5], r[6] = ("5", "2") if good_first else ("2", "5")  # the good answer scores 5 wherever it sits
    rows[1][5] = rows[1][6] = ""  # one row preferred but not scored
    with sheet.open("w", newline="", encoding="utf-8-sig") as f:
        csv.writer(f).writerows(rows)
    assert import_review(sheet).wins == 8
    assert human_scores(sheet) == {"v1.1": {"n": 7, "mean": 5.0}, "v1.0": {"n": 7, "mean": 2.0}}
