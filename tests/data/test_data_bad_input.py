"""The issue's bad-input list, through the CLI: a clear error naming file, row and fix, exit code ≠ 0,
and nothing written — no version file under datasets/, no dataset in the store."""

from __future__ import annotations

import json

import pytest
from data_helpers import files_under
from typer.testing import CliRunner

from llmloop.cli.main import app
from llmloop.store import datasets as store_datasets

runner = CliRunner()
GOOD = {"instruction": "Where is my order?", "output": "It ships tomorrow."}


def _lines(*rows) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in rows)


CASES = {
    "malformed_json": ("a.jsonl", _lines(GOOD, b'{"instruction": "q", "output": "a"', GOOD),
                       ["a.jsonl, row 2", "malformed JSON", "Fix: each line must be one complete JSON object"]),
    "wrong_types": ("b.jsonl", _lines(GOOD, {"instruction": 42, "output": ["a"]}),
                    ["b.jsonl, row 2", "instruction: must be a string", "output: must be a string"]),
    "missing_roles": ("c.jsonl", _lines({"messages": [{"content": "hi"}, {"role": "assistant", "content": "a"}]}),
                      ["c.jsonl, row 1", "missing role field 'role'", "Fix: give every message a 'role'"]),
    "non_utf8": ("d.jsonl", _lines(GOOD) + b'{"instruction": "caf\xe9", "output": "a"}\n',
                 ["d.jsonl, row 2", "not valid UTF-8 at byte offset", "Fix: save the file as UTF-8"]),
    "empty_file": ("e.jsonl", b"\n  \n", ["e.jsonl", "the file is empty", "Fix: give a file with at least one row"]),
    "ragged_csv": ("f.csv", b"instruction,input,output\nq1,,a1\nq2,a2\nq3,x,a3,extra\n",
                   ["f.csv, row 2, line 3: fewer cells than header columns (2 of 3)",
                    "f.csv, row 3, line 4: more cells than header columns", "Fix: quote cells"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_file_is_refused_with_row_and_fix(db, tmp_path, case):
    filename, content, expected = CASES[case]
    path = tmp_path / filename
    path.write_bytes(content)
    r = runner.invoke(app, ["data", "import", str(path), "--name", "bad"])
    assert r.exit_code == 2, r.output
    text = " ".join(r.output.split())
    for needle in expected:
        assert needle in text, (needle, text)
    assert "nothing was written" in text
    assert not files_under(db.workspace.datasets_dir) and store_datasets.list_versions(db) == []
    v = runner.invoke(app, ["data", "validate", str(path)])
    assert v.exit_code == 1 and expected[0] in " ".join(v.output.split())


@pytest.mark.slow
def test_a_50_mb_single_row_is_refused(db, tmp_path):
    big = "x" * (50 * 2**20)
    path = tmp_path / "big.jsonl"
    path.write_bytes(_lines(GOOD, {"instruction": "summarise", "input": big, "output": "ok"}, GOOD))
    r = runner.invoke(app, ["data", "import", str(path), "--name", "big"])
    text = " ".join(r.output.split())
    assert r.exit_code == 2 and "big.jsonl, row 2" in text and "the row is 50.0 MiB; rows over 8 MiB are refused" in text
    assert "Fix: check the file for a lost line break" in text and "--skip-invalid" in text
    assert not files_under(db.workspace.datasets_dir) and store_datasets.list_versions(db) == []
    csv_path = tmp_path / "big.csv"
    csv_path.write_text(f"instruction,output\nq,{big}\n", encoding="utf-8")
    r = runner.invoke(app, ["data", "import", str(csv_path), "--name", "big"])
    assert r.exit_code == 2 and "big.csv, row 1" in r.output and "rows over 8 MiB" in r.output
    # --skip-invalid keeps the good rows and says what it left out
    r = runner.invoke(app, ["data", "import", str(path), "--name", "big", "--skip-invalid"])
    assert r.exit_code == 0 and "skipped 1 invalid row(s)" in r.output
    assert store_datasets.get_version(db, "big").row_count == 2


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", "/abs", ".hidden", "a" * 101, "x\\y"])
def test_path_traversal_in_names_is_refused(db, tmp_path, name):
    path = tmp_path / "ok.jsonl"
    path.write_bytes(_lines(GOOD))
    for args in (["import", str(path), "--name", name], ["corpus", str(path), "--name", name],
                 ["build-preferences", "--from", "votes", "--name", name],
                 ["generate", "paraphrase", "--seeds", str(path), "--name", name, "--generator", "template"]):
        r = runner.invoke(app, ["data", *args])
        assert r.exit_code == 2 and "is not allowed" in r.output and "no slashes" in " ".join(r.output.split()), args
    assert not files_under(db.workspace.datasets_dir) and store_datasets.list_versions(db) == []
    assert not (tmp_path.parent / "escape").exists()
