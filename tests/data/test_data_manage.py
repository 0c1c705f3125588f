"""D10/D7 management: diff two versions, rename, describe, delete (files kept unless --purge)."""

from __future__ import annotations

from pathlib import Path

import pytest
from data_helpers import files_under, write_jsonl
from typer.testing import CliRunner

from llmloop.cli import data as data_cli
from llmloop.cli.main import app
from llmloop.data.dedup import dedup
from llmloop.data.importer import import_file
from llmloop.data.manage import delete, describe, diff, rename
from llmloop.data.rows import DataError
from llmloop.store import datasets as store_datasets

runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    for console in (data_cli.console, data_cli.err):
        monkeypatch.setattr(console, "_width", 250)


def cli(*args, input=None):
    result = runner.invoke(app, ["data", *map(str, args)], input=input)
    plain = "".join(" " if "\u2500" <= ch <= "\u257f" else ch for ch in result.output)
    result.text = " ".join(plain.split())
    return result


@pytest.fixture
def two_versions(db, tmp_path):
    f = write_jsonl(tmp_path / "a.jsonl", [{"text": "one"}, {"text": "two"}, {"text": "two"}])
    import_file(db, f, name="ds")
    write_jsonl(f, [{"text": "two"}, {"text": "three"}])
    import_file(db, f, name="ds")


def test_diff_by_content_hash_as_multiset(db, two_versions):
    d = diff(db, "ds@v1.0", "ds@v1.1")
    assert [r["text"] for r in d.added] == ["three"]
    assert sorted(r["text"] for r in d.removed) == ["one", "two"]
    assert d.unchanged == 1
    with pytest.raises(DataError, match="NAME@v1.0"):
        diff(db, "ds", "ds@v1.1")


def test_cli_diff(db, two_versions):
    r = cli("diff", "ds@v1.0", "ds@v1.1")
    assert r.exit_code == 0, r.output
    assert "+1 added, -2 removed, 1 unchanged" in r.text and "+ three" in r.text and "- one" in r.text
    r = cli("diff", "ds@v1.0", "ds@v9.9")
    assert r.exit_code == 2 and "no dataset version 'ds@v9.9'" in r.text


def test_rename_and_describe(db, two_versions, tmp_path):
    rename(db, "ds", "renamed")
    assert [v.version for v in store_datasets.list_versions(db, "renamed")] == ["v1.0", "v1.1"]
    assert Path(store_datasets.get_version(db, "renamed").path).is_file()
    with pytest.raises(DataError, match="not allowed"):
        rename(db, "renamed", "../evil")
    import_file(db, write_jsonl(tmp_path / "o.jsonl", [{"text": "x"}]), name="other")
    with pytest.raises(DataError, match="a dataset 'other' exists"):
        rename(db, "renamed", "other")
    assert describe(db, "renamed") == ""
    describe(db, "renamed", "FAQ corpus")
    assert describe(db, "renamed") == "FAQ corpus"
    r = cli("rename", "missing", "x")
    assert r.exit_code == 2 and "no dataset 'missing'" in r.text
    r = cli("describe", "renamed")
    assert r.exit_code == 0 and "FAQ corpus" in r.text


def test_delete_keeps_files_unless_purged(db, two_versions, tmp_path):
    files = files_under(db.workspace.datasets_dir / "ds")
    r = cli("delete", "ds", "--yes")
    assert r.exit_code == 0 and "deleted ds (2 version(s)); files kept" in r.text
    assert store_datasets.list_versions(db, "ds") == []
    assert files_under(db.workspace.datasets_dir / "ds") == files

    f = write_jsonl(tmp_path / "p.jsonl", [{"text": "a b c d e"}, {"text": "a b c d e"}])
    import_file(db, f, name="p")
    dedup(db, "p", "exact")
    assert len(files_under(db.workspace.datasets_dir / "p")) == 3  # two versions + dedup report
    result = delete(db, "p", purge=True)
    assert len(result.purged) == 3 and not (db.workspace.datasets_dir / "p").exists()
    r = cli("delete", "p", "--yes")
    assert r.exit_code == 2 and "no dataset 'p'" in r.text


def test_delete_asks_first(db, two_versions):
    r = cli("delete", "ds", input="n\n")
    assert r.exit_code == 1 and len(store_datasets.list_versions(db, "ds")) == 2


def test_delete_refuses_while_referred_to_unless_forced(db, two_versions, tmp_path):
    from llmloop.data.versions import read_rows, resolve, write_version
    from llmloop.store import registry

    src = resolve(db, "ds@v1.0")
    child = write_version(db, [{"text": "derived"}], name="derived", kind="pt", source_format="x", note="mix",
                          parent_id=src.id)
    registry.register(db, name="v1.0", kind="chat", base_model="/m", dataset_versions=[resolve(db, "ds@v1.1").id])
    r = cli("delete", "ds", "--yes")
    assert r.exit_code == 2
    assert "dataset version derived@v1.0 was derived from ds@v1.0" in r.text
    assert "model version v1.0 was trained on ds@v1.1" in r.text and "--force" in r.text
    assert len(store_datasets.list_versions(db, "ds")) == 2  # nothing deleted

    r = cli("delete", "ds", "--yes", "--force")
    assert r.exit_code == 0, r.text
    kept = resolve(db, "derived")
    assert kept.parent_id is None and kept.note.startswith("mix [parent ds@v1.0 deleted ")
    assert read_rows(kept) == read_rows(child) == [{"text": "derived"}]  # its rows and file are untouched
