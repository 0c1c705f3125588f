"""``llmloop data …`` through typer's CliRunner: exit codes, messages, and what reaches the store."""

from __future__ import annotations

import json

import pytest
from data_helpers import files_under, write_jsonl
from typer.testing import CliRunner

from llmloop.cli import data as data_cli
from llmloop.cli.main import app
from llmloop.store import datasets as store_datasets

runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    """Rich wraps at 80 columns without a terminal; give tables room so cells stay whole."""
    for console in (data_cli.console, data_cli.err):
        monkeypatch.setattr(console, "_width", 250)


def run(*args: str):
    result = runner.invoke(app, ["data", *map(str, args)])
    result.text = " ".join(result.output.split())
    return result


def test_import_list_show_versions_export(db, tmp_path):
    f = write_jsonl(tmp_path / "faq.jsonl", [{"instruction": "hi", "output": "hello"}])
    r = run("import", f, "--name", "faq", "--note", "seed")
    assert r.exit_code == 0, r.output
    assert "imported faq v1.0: 1 sft rows from faq.jsonl (alpaca)" in r.text
    r = run("import", f, "--name", "faq")
    assert r.exit_code == 0 and "unchanged: same content as faq v1.0" in r.text
    write_jsonl(f, [{"instruction": "hi", "output": "hello"}, {"instruction": "bye", "output": "ciao"}])
    r = run("import", f, "--name", "faq", "--format", "alpaca")
    assert r.exit_code == 0 and "imported faq v1.1 (parent v1.0): 2 sft rows" in r.text

    r = run("list")
    assert r.exit_code == 0 and "faq" in r.text and "v1.1" in r.text
    r = run("versions", "faq")
    assert r.exit_code == 0 and "v1.0" in r.text and "seed" in r.text and "import:faq.jsonl" in r.text
    r = run("show", "faq@v1.0", "--rows", "1")
    assert r.exit_code == 0 and "faq v1.0" in r.text and "user: hi" in r.text and "assistant: hello" in r.text

    out = tmp_path / "lf"
    r = run("export", "faq", "--to", "llamafactory", "--out", out)
    assert r.exit_code == 0 and "exported faq v1.1 (2 rows)" in r.text
    assert json.loads((out / "dataset_info.json").read_text())["faq"]["file_name"] == "faq.jsonl"
    r = run("export", "faq@v1.0", "--to", "jsonl", "--out", out)
    assert r.exit_code == 0 and (out / "faq-v1.0.jsonl").is_file()


def test_user_errors_exit_2_with_a_message_and_write_nothing(db, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"text": oops}\n', encoding="utf-8")
    r = run("import", bad, "--name", "corpus")
    assert r.exit_code == 2
    assert "bad.jsonl, row 2: malformed JSON" in r.text and "nothing was written" in r.text
    assert "Traceback" not in r.output
    r = run("import", bad, "--name", "../../etc")
    assert r.exit_code == 2 and "dataset name '../../etc' is not allowed" in r.text
    r = run("import", tmp_path / "missing.jsonl", "--name", "corpus")
    assert r.exit_code == 2 and "no such file" in r.text
    r = run("import", bad, "--name", "corpus", "--format", "yaml")
    assert r.exit_code == 2 and "unknown format 'yaml'" in r.text
    assert store_datasets.list_versions(db) == [] and files_under(db.workspace.datasets_dir) == []

    for args in (["show", "nope"], ["versions", "nope"], ["export", "nope", "--to", "jsonl", "--out", tmp_path]):
        r = run(*args)
        assert r.exit_code == 2 and "nope" in r.text and "llmloop data list" in r.text, args


def test_skip_invalid_reports_what_it_left_out(db, tmp_path):
    f = tmp_path / "mixed.jsonl"
    f.write_text('{"text": "one"}\n{"text": ""}\n{"text": "two"}\n', encoding="utf-8")
    r = run("import", f, "--name", "corpus", "--skip-invalid")
    assert r.exit_code == 0, r.output
    assert "imported corpus v1.0: 2 pt rows" in r.text
    assert "skipped 1 invalid row(s)" in r.text and "mixed.jsonl, row 2: text: empty text" in r.text


def test_validate_exit_codes(tmp_path):
    good = write_jsonl(tmp_path / "good.jsonl", [{"prompt": "q", "chosen": "a", "rejected": "b"}])
    r = run("validate", good)
    assert r.exit_code == 0 and "ok" in r.text and "1 preference rows (trl)" in r.text
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"messages": [{"role": "user", "content": "q"}]},
                                               {"messages": [{"role": "user", "content": "q"},
                                                             {"role": "assistant", "content": "a"}]}])
    r = run("validate", bad)
    assert r.exit_code == 1
    assert "bad.jsonl, row 1: messages[0]: the conversation must end with an assistant reply" in r.text
    assert "1 problem(s) in 1 of 2 row(s); 1 row(s) valid" in r.text
    r = run("validate", tmp_path / "nope.json")
    assert r.exit_code == 2 and "no such file" in r.text


def test_import_llamafactory_cli(db, lf_dir):
    r = run("import-llamafactory", lf_dir, "--only", "identity", "--only", "wiki_demo", "--prefix", "lf-")
    assert r.exit_code == 0, r.output
    assert "lf-identity" in r.text and "lf-wiki_demo" in r.text
    assert sorted(v.dataset for v in store_datasets.list_versions(db)) == ["lf-identity", "lf-wiki_demo"]
    r = run("import-llamafactory", lf_dir, "--only", "kto_en_demo")
    assert r.exit_code == 0 and "kto_en_demo" in r.text and "kto" in r.text
