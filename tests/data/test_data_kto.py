"""The kto kind: LLaMA-Factory's kto_en_demo imports, round-trips row for row, exports to TRL."""

from __future__ import annotations

import json

from llmloop.data.export import export_version
from llmloop.data.importer import import_llamafactory
from llmloop.data.versions import read_rows, resolve


def test_kto_demo_imports_and_round_trips(db, lf_dir, tmp_path):
    import_llamafactory(db, lf_dir, names=["kto_en_demo"])
    v = resolve(db, "kto_en_demo")
    rows = read_rows(v)
    src = json.loads((lf_dir / "kto_en_demo.json").read_text(encoding="utf-8"))
    assert v.kind == "kto" and len(rows) == len(src) == 300
    assert rows[0]["label"] is src[0]["label"]
    assert rows[0]["completion"] == [{"role": "assistant", "content": src[0]["messages"][-1]["content"]}]
    assert {r["label"] for r in rows} == {True, False}

    out = tmp_path / "lf"
    result = export_version(v, "llamafactory", out)
    assert result.entry["columns"]["kto_tag"] == "label"
    import_llamafactory(db, out, prefix="back-")
    assert read_rows(resolve(db, "back-kto_en_demo")) == rows

    trl = export_version(v, "trl", tmp_path / "trl").files[0]
    first = json.loads(trl.read_text(encoding="utf-8").splitlines()[0])
    assert set(first) == {"prompt", "completion", "label"} and first["label"] is rows[0]["label"]


def test_kto_file_imports_directly_and_bad_label_names_the_row(db, lf_dir, tmp_path):
    from data_helpers import write_jsonl

    from llmloop.data.importer import import_file
    from llmloop.data.validate import parse_file

    v = import_file(db, lf_dir / "kto_en_demo.json", name="kto").version
    assert v.kind == "kto" and v.row_count == 300
    bad = write_jsonl(tmp_path / "bad.jsonl", [
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "label": True},
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "b"}], "label": "yes"}])
    (problem,) = parse_file(bad).problems
    assert problem.row == 2 and problem.field == "label" and "true or false" in problem.problem
