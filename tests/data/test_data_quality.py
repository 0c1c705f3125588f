"""D9 quality filters (new version + per-rule counts) and the quality report (table + HTML)."""

from __future__ import annotations

import pytest
from data_helpers import files_under, write_jsonl
from typer.testing import CliRunner

from llmloop.cli import data as data_cli
from llmloop.cli.main import app
from llmloop.data.importer import import_file
from llmloop.data.quality import (FilterRules, filter_version, garbage_ratio, language, longest_run,
                                  quality_report, words)
from llmloop.data.rows import DataError
from llmloop.data.versions import read_rows
from llmloop.store import datasets as store_datasets

runner = CliRunner()

ROWS = [
    "a perfectly normal english sentence about customer service",
    "短",  # 1 char
    "这是一个关于客户服务的正常中文句子，内容完整。",
    "this one mentions the forbidden word secretcode inside",
    "garbage \x00\x01\x02\ufffd\ufffd\ufffd\ufffd\ufffd\ufffd\ufffd\ufffd",
    "hellooooooooooooooooo there my friend how are you",
]


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    for console in (data_cli.console, data_cli.err):
        monkeypatch.setattr(console, "_width", 250)


@pytest.fixture
def ds(db, tmp_path):
    return import_file(db, write_jsonl(tmp_path / "q.jsonl", [{"text": t} for t in ROWS]), name="q").version


def cli(*args):
    result = runner.invoke(app, ["data", *map(str, args)])
    plain = "".join(" " if "\u2500" <= ch <= "\u257f" else ch for ch in result.output)
    result.text = " ".join(plain.split())
    return result


def test_measures():
    assert words("你好 world foo") == ["你", "好", "world", "foo"]
    assert garbage_ratio("abc") == 0 and garbage_ratio("\x00\x00ab") == 0.5
    assert longest_run("abbbbc") == 4
    assert language(ROWS[2]) == "zh" and language(ROWS[0]) == "en" and language("123") == "other"


def test_filter_per_rule_counts_and_new_version(db, ds, tmp_path):
    rules = FilterRules(min_chars=5, sensitive_words=["SecretCode"], max_garbage_ratio=0.3, max_repeat=8)
    r = filter_version(db, "q", rules)
    assert r.per_rule == {"min_chars": 1, "sensitive_words": 1, "max_garbage_ratio": 1, "max_repeat": 1}
    assert [row for row, _ in r.dropped] == [2, 4, 5, 6]
    v = r.version
    assert v.version == "v1.1" and v.parent_id == ds.id and v.created_by == "filter:v1.0"
    assert [x["text"] for x in read_rows(v)] == [ROWS[0], ROWS[2]]
    r = filter_version(db, "q@v1.0", FilterRules(languages=["zh"]))
    assert r.rows_kept == 2 and r.version.parent_id == ds.id  # "短" and the Chinese sentence
    r = filter_version(db, "q@v1.0", FilterRules(min_words=3, max_words=9))
    assert r.per_rule == {"min_words": 2, "max_words": 1}  # "短" and the garbage row; the CJK sentence


def test_filter_errors(db, ds):
    with pytest.raises(DataError, match="no filter rule given"):
        filter_version(db, "q", FilterRules())
    with pytest.raises(DataError, match="drop all 6 rows"):
        filter_version(db, "q", FilterRules(min_chars=10_000))
    with pytest.raises(ValueError, match="unknown language 'fr'"):
        FilterRules(languages=["fr"])
    assert len(store_datasets.list_versions(db, "q")) == 1


def test_cli_filter(db, ds, tmp_path):
    words_file = tmp_path / "sensitive.txt"
    words_file.write_text("# one per line\nsecretcode\n", encoding="utf-8")
    r = cli("filter", "q", "--sensitive-words", words_file, "--max-repeat", "8")
    assert r.exit_code == 0, r.output
    assert "sensitive_words 1" in r.text and "max_repeat 1" in r.text and "q v1.0 → v1.1: kept 4 of 6" in r.text
    before = files_under(db.workspace.datasets_dir)
    r = cli("filter", "q", "--sensitive-words", tmp_path / "missing.txt")
    assert r.exit_code == 2 and "--sensitive-words" in r.text and "no such file" in r.text
    r = cli("filter", "q", "--max-garbage", "1.5")
    assert r.exit_code == 2 and "--max-garbage" in r.text and "1.5" in r.text
    r = cli("filter", "q", "--lang", "fr")
    assert r.exit_code == 2 and "--lang" in r.text and "unknown language 'fr'" in r.text
    r = cli("filter", "q")
    assert r.exit_code == 2 and "no filter rule given" in r.text
    assert files_under(db.workspace.datasets_dir) == before


def test_quality_report_and_html(db, tmp_path):
    rows = [{"text": "the cat sat on the mat"}] * 3 + [{"text": "今天天气很好"}, {"text": "aaaaaaaaaaaaaaaa"}]
    import_file(db, write_jsonl(tmp_path / "r.jsonl", rows), name="r")
    rep = quality_report(db, "r")
    assert rep.rows == 5 and rep.duplicates == 2
    assert rep.chars["max"] == 22 and rep.words["min"] == 1
    assert rep.top_ngrams[0] == ("the cat", 3) and ("今天", 1) in rep.top_ngrams
    assert any("2 exact duplicate" in w for w in rep.warnings)
    assert any("repeat one character" in w for w in rep.warnings)
    assert any("mixed languages" in w for w in rep.warnings)
    out = tmp_path / "out" / "r.html"
    r = cli("report", "r", "--html", out)
    assert r.exit_code == 0, r.output
    assert "r v1.0: 5 pt rows, 2 exact duplicate(s)" in r.text and "the cat 3" in r.text
    page = out.read_text(encoding="utf-8")
    assert "<h1>Quality report: r v1.0</h1>" in page and "今天" in page
    r = cli("report", "nope")
    assert r.exit_code == 2
