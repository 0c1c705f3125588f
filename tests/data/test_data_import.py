"""Imports become immutable versions; LLaMA-Factory data folders import and round-trip."""

from __future__ import annotations

import json

import pytest
from data_helpers import files_under, write_jsonl

from llmloop.data import versions
from llmloop.data.export import export_version
from llmloop.data.importer import import_file, import_llamafactory
from llmloop.data.rows import DataError, DataValidationError
from llmloop.store import datasets as store_datasets


def test_reimport_of_changed_content_makes_the_next_version(db, tmp_path):
    f = write_jsonl(tmp_path / "faq.jsonl", [{"instruction": "hi", "output": "hello"}])
    first = import_file(db, f, name="faq", note="seed")
    v1 = first.version
    assert (v1.version, v1.parent_id, v1.kind, v1.source_format) == ("v1.0", None, "sft", "alpaca")
    assert v1.created_by == "import:faq.jsonl" and v1.note == "seed"
    assert versions.read_rows(v1) == [{"messages": [{"role": "user", "content": "hi"},
                                                    {"role": "assistant", "content": "hello"}]}]

    same = import_file(db, f, name="faq")
    assert same.unchanged and same.version == v1
    assert len(store_datasets.list_versions(db, "faq")) == 1

    write_jsonl(f, [{"instruction": "hi", "output": "hello"}, {"instruction": "bye", "output": "goodbye"}])
    second = import_file(db, f, name="faq", note="two rows")
    v2 = second.version
    assert (v2.version, v2.parent_id, v2.row_count, v2.note) == ("v1.1", v1.id, 2, "two rows")
    assert not second.unchanged
    assert versions.resolve(db, "faq@v1.0").content_hash == v1.content_hash
    assert versions.resolve(db, "faq").version == "v1.1"
    assert len(files_under(db.workspace.datasets_dir / "faq")) == 2  # v1.0's file is untouched


def test_a_dataset_keeps_its_kind(db, tmp_path):
    import_file(db, write_jsonl(tmp_path / "a.jsonl", [{"text": "doc"}]), name="mixed")
    prefs = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "q", "chosen": "a", "rejected": "b"}])
    with pytest.raises(DataError, match="holds pt rows, this file has preference rows"):
        import_file(db, prefs, name="mixed")
    assert [v.version for v in store_datasets.list_versions(db)] == ["v1.0"]
    assert len(files_under(db.workspace.datasets_dir)) == 1


def test_every_llamafactory_fixture_imports(db, lf_dir):
    result = import_llamafactory(db, lf_dir)
    got = {r.version.dataset: (r.version.kind, r.format, r.rows_kept, r.rows_skipped) for r in result.imported}
    assert got == {
        "identity": ("sft", "alpaca", 91, 0),
        "alpaca_en_demo": ("sft", "alpaca", 999, 0),
        "dpo_en_demo": ("preference", "sharegpt", 300, 0),
        "glaive_toolcall_en_demo": ("sft", "sharegpt", 300, 0),
        "c4_demo": ("pt", "pt", 300, 0),
        "wiki_demo": ("pt", "pt", 30, 0),
        "kto_en_demo": ("kto", "sharegpt", 300, 0),
    }
    assert result.skipped == ()

    # spot checks against the source files
    alpaca = json.loads((lf_dir / "alpaca_en_demo.json").read_text(encoding="utf-8"))
    rows = versions.read_rows(versions.resolve(db, "alpaca_en_demo"))
    with_input = next(i for i, r in enumerate(alpaca) if r["input"])
    assert rows[with_input]["messages"] == [
        {"role": "user", "content": alpaca[with_input]["instruction"] + "\n" + alpaca[with_input]["input"]},
        {"role": "assistant", "content": alpaca[with_input]["output"]},
    ]
    dpo = json.loads((lf_dir / "dpo_en_demo.json").read_text(encoding="utf-8"))
    prefs = versions.read_rows(versions.resolve(db, "dpo_en_demo"))
    assert prefs[0]["chosen"] == [{"role": "assistant", "content": dpo[0]["chosen"]["value"]}]
    assert prefs[0]["rejected"] == [{"role": "assistant", "content": dpo[0]["rejected"]["value"]}]
    tools = versions.read_rows(versions.resolve(db, "glaive_toolcall_en_demo"))
    roles = {m["role"] for r in tools for m in r["messages"]}
    assert roles == {"user", "assistant", "tool_call", "tool"} and all(r["tools"] for r in tools)
    wiki = versions.read_rows(versions.resolve(db, "wiki_demo"))
    assert wiki[0]["text"].startswith("Anarchism is a political philosophy")

    again = import_llamafactory(db, lf_dir, names=["alpaca_en_demo"])
    assert again.imported[0].unchanged and again.imported[0].version.version == "v1.0"


def test_alpaca_and_dpo_round_trip_row_for_row(db, lf_dir, tmp_path):
    first = import_llamafactory(db, lf_dir, names=["alpaca_en_demo", "dpo_en_demo"])
    out = tmp_path / "lf"
    for report in first.imported:
        result = export_version(report.version, "llamafactory", out)
        assert result.rows == report.rows_kept
    info = json.loads((out / "dataset_info.json").read_text(encoding="utf-8"))
    assert set(info) == {"alpaca_en_demo", "dpo_en_demo"}
    assert info["dpo_en_demo"]["ranking"] is True and info["dpo_en_demo"]["formatting"] == "sharegpt"
    assert info["alpaca_en_demo"]["tags"]["role_tag"] == "role"

    back = import_llamafactory(db, out, prefix="rt-")
    for a, b in zip(first.imported, back.imported, strict=True):
        assert b.version.dataset == "rt-" + a.version.dataset
        assert versions.read_rows(b.version) == versions.read_rows(a.version)
        assert b.version.content_hash == a.version.content_hash


def test_export_keeps_other_dataset_info_entries_and_writes_canonical_jsonl(db, tmp_path):
    v = import_file(db, write_jsonl(tmp_path / "c.jsonl", [{"text": "doc one"}, {"text": "doc two"}]),
                    name="corpus").version
    out = tmp_path / "out"
    out.mkdir()
    (out / "dataset_info.json").write_text(json.dumps({"theirs": {"file_name": "theirs.json"}}), encoding="utf-8")
    result = export_version(v, "llamafactory", out)
    info = json.loads((out / "dataset_info.json").read_text(encoding="utf-8"))
    assert info == {"theirs": {"file_name": "theirs.json"},
                    "corpus": {"file_name": "corpus.jsonl", "columns": {"prompt": "text"}}}
    assert result.entry == info["corpus"]

    (path,) = export_version(v, "jsonl", out).files
    assert path.name == "corpus-v1.0.jsonl"
    assert [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] == versions.read_rows(v)
    with pytest.raises(DataError, match="unknown export target 'parquet'"):
        export_version(v, "parquet", out)


def test_llamafactory_entries_honour_columns_and_tags(db, tmp_path):
    dialog = [{"speaker": "me", "text": "hi"}, {"speaker": "bot", "text": "yo"}]
    write_jsonl(tmp_path / "chat.jsonl", [{"dialog": dialog, "sys": "Be kind."}])
    write_jsonl(tmp_path / "qa.jsonl", [{"q": "2+2?", "a": "4"}])
    (tmp_path / "dataset_info.json").write_text(json.dumps({
        "chat": {"file_name": "chat.jsonl", "formatting": "sharegpt",
                 "columns": {"messages": "dialog", "system": "sys"},
                 "tags": {"role_tag": "speaker", "content_tag": "text", "user_tag": "me", "assistant_tag": "bot"}},
        "qa": {"file_name": "qa.jsonl", "columns": {"prompt": "q", "response": "a"}},
        "hub": {"hf_hub_url": "someone/data"},
    }), encoding="utf-8")
    result = import_llamafactory(db, tmp_path)
    rows = {r.version.dataset: versions.read_rows(r.version) for r in result.imported}
    assert rows["chat"] == [{"messages": [{"role": "system", "content": "Be kind."},
                                          {"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}]
    assert rows["qa"] == [{"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]}]
    assert [s.name for s in result.skipped] == ["hub"]


def test_llamafactory_import_is_all_or_nothing(db, tmp_path):
    write_jsonl(tmp_path / "good.jsonl", [{"text": "fine"}])
    write_jsonl(tmp_path / "bad.jsonl", [{"instruction": "q", "output": ""}])
    (tmp_path / "dataset_info.json").write_text(json.dumps({
        "good": {"file_name": "good.jsonl", "columns": {"prompt": "text"}},
        "bad": {"file_name": "bad.jsonl"},
    }), encoding="utf-8")
    with pytest.raises(DataValidationError, match=r"bad.jsonl, row 1: output: empty assistant content"):
        import_llamafactory(db, tmp_path)
    assert store_datasets.list_versions(db) == [] and files_under(db.workspace.datasets_dir) == []
    with pytest.raises(DataError, match="no dataset_info.json"):
        import_llamafactory(db, tmp_path / "nowhere")
    with pytest.raises(DataError, match=r"has no dataset\(s\) \['nope'\]"):
        import_llamafactory(db, tmp_path, names=["nope"])


def test_every_llamafactory_fixture_round_trips_row_for_row(db, lf_dir, tmp_path):
    first = import_llamafactory(db, lf_dir)
    out = tmp_path / "lf-all"
    for report in first.imported:
        export_version(report.version, "llamafactory", out)
    back = import_llamafactory(db, out, prefix="rt-")
    assert back.skipped == () and len(back.imported) == len(first.imported) == 7
    for a, b in zip(sorted(first.imported, key=lambda r: r.version.dataset),
                    sorted(back.imported, key=lambda r: r.version.dataset), strict=True):
        assert b.version.dataset == "rt-" + a.version.dataset and b.version.kind == a.version.kind
        assert versions.read_rows(b.version) == versions.read_rows(a.version), a.version.dataset


def test_import_streams_with_progress_in_bytes(db, tmp_path):
    from data_helpers import write_jsonl

    from llmloop.data.importer import import_file

    rows = [{"instruction": f"q{i}", "output": f"a{i}"} for i in range(20000)]
    f = write_jsonl(tmp_path / "big.jsonl", rows)
    seen: list[int] = []
    report = import_file(db, f, name="big", progress=seen.append)
    assert report.rows_kept == 20000 and seen == sorted(seen) and len(seen) >= 3
    assert seen[-1] == f.stat().st_size  # the whole file was read
    assert versions.read_rows(report.version)[19999] == {"messages": [{"role": "user", "content": "q19999"},
                                                                      {"role": "assistant", "content": "a19999"}]}
    assert not [p for p in (db.workspace.datasets_dir / "big").iterdir() if p.name.startswith(".")]  # no temp left
