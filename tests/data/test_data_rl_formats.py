"""KTO in TRL's unpaired layout and GRPO/PPO prompt rows: import from every file type, validate,
export to TRL and back."""

from __future__ import annotations

import json

import pytest
from data_helpers import files_under, write_jsonl
from typer.testing import CliRunner

from llmloop.cli.main import app
from llmloop.data.export import export_version
from llmloop.data.importer import import_file
from llmloop.data.rows import DataError, DataValidationError
from llmloop.data.validate import parse_file
from llmloop.data.versions import read_rows

runner = CliRunner()

KTO_ROWS = [
    {"prompt": "Where is my order?", "completion": "It ships tomorrow.", "label": True},
    {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Refund?"}],
     "completion": [{"role": "assistant", "content": "No."}], "label": False},
]


def test_trl_kto_layout_auto_detected_and_by_flag(db, tmp_path):
    f = write_jsonl(tmp_path / "kto.jsonl", KTO_ROWS)
    auto, flagged = parse_file(f), parse_file(f, "kto")
    assert auto.kind == flagged.kind == "kto" and auto.rows == flagged.rows and not auto.problems
    assert auto.rows[0] == {"prompt": [{"role": "user", "content": "Where is my order?"}],
                            "completion": [{"role": "assistant", "content": "It ships tomorrow."}], "label": True}
    assert auto.rows[1]["prompt"][0] == {"role": "system", "content": "Be brief."} and auto.rows[1]["label"] is False
    v = import_file(db, f, name="kto", format="kto").version
    assert (v.kind, v.row_count, v.source_format) == ("kto", 2, "kto")
    out = export_version(v, "trl", tmp_path / "out", style="conversational")
    back = parse_file(out.files[0], "kto")  # TRL's own layout reads back row for row
    assert back.rows == read_rows(v)


def test_kto_from_csv_parquet_and_alpaca_columns(db, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    csv_file = tmp_path / "k.csv"
    csv_file.write_text("prompt,completion,label\nq1,a1,true\nq2,a2,FALSE\n", encoding="utf-8")
    rows = parse_file(csv_file, "kto").rows
    assert [r["label"] for r in rows] == [True, False]
    pq.write_table(pa.Table.from_pylist([{"prompt": "q", "completion": "a", "label": True}]), tmp_path / "k.parquet")
    assert parse_file(tmp_path / "k.parquet").rows[0]["label"] is True
    alpaca = write_jsonl(tmp_path / "a.jsonl", [{"instruction": "q", "input": "ctx", "output": "a", "label": False}])
    (row,) = parse_file(alpaca).rows
    assert row == {"prompt": [{"role": "user", "content": "q\nctx"}],
                   "completion": [{"role": "assistant", "content": "a"}], "label": False}


def test_kto_problems_name_row_and_field(db, tmp_path):
    bad = write_jsonl(tmp_path / "bad.jsonl", [
        KTO_ROWS[0],
        {"prompt": "q", "completion": "a", "label": "maybe"},
        {"prompt": "q", "completion": [{"role": "user", "content": "a"}], "label": True},
        {"prompt": "q", "label": True, "completion": None}])
    problems = parse_file(bad, "kto").problems
    assert [(p.row, p.field) for p in problems] == [(2, "label"), (3, "completion[0]"), (4, "completion")]
    with pytest.raises(DataValidationError, match="row 2"):
        import_file(db, bad, name="k")
    assert not files_under(db.workspace.datasets_dir)
    no_label = write_jsonl(tmp_path / "nl.jsonl", [{"prompt": "q", "completion": "a"}])
    (p,) = parse_file(no_label, "kto").problems
    assert "need a true/false 'label'" in p.problem and p.row is None


def test_grpo_prompts_with_solution_from_each_file_type(db, tmp_path):
    jsonl = write_jsonl(tmp_path / "g.jsonl", [
        {"prompt": "What is 2+3?", "answer": 5},
        {"prompt": [{"role": "system", "content": "Think."}, {"role": "user", "content": "7*6?"}], "answer": "42"}])
    parsed = parse_file(jsonl)
    assert (parsed.format, parsed.kind) == ("grpo", "prompt") and not parsed.problems
    assert parsed.rows == [{"prompt": [{"role": "user", "content": "What is 2+3?"}], "solution": "5"},
                           {"prompt": [{"role": "system", "content": "Think."}, {"role": "user", "content": "7*6?"}],
                            "solution": "42"}]
    csv_file = tmp_path / "g.csv"
    csv_file.write_text("prompt,solution\nName a colour.,red\n", encoding="utf-8")
    txt_like = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "Just a prompt"}])
    assert parse_file(csv_file, "grpo").rows == [{"prompt": [{"role": "user", "content": "Name a colour."}],
                                                  "solution": "red"}]
    assert parse_file(txt_like).rows == [{"prompt": [{"role": "user", "content": "Just a prompt"}]}]
    ends_wrong = write_jsonl(tmp_path / "w.jsonl", [{"prompt": [{"role": "user", "content": "q"},
                                                                 {"role": "assistant", "content": "a"}]}])
    (p,) = parse_file(ends_wrong, "grpo").problems
    assert p.row == 1 and "must end with the user's turn" in p.problem

    v = import_file(db, jsonl, name="math").version
    assert v.kind == "prompt" and v.row_count == 2
    with pytest.raises(DataError, match="row 2: the plain TRL style holds one user turn"):
        export_version(v, "trl", tmp_path / "o1", style="plain")
    single = import_file(db, csv_file, name="colours", format="grpo").version
    plain = export_version(single, "trl", tmp_path / "o1", style="plain").files[0]
    assert json.loads(plain.read_text(encoding="utf-8")) == {"prompt": "Name a colour.", "solution": "red"}
    conv = export_version(v, "trl", tmp_path / "o2").files[0]
    assert parse_file(conv, "grpo").rows == read_rows(v)  # round trip row for row


def test_cli_import_kto_and_grpo(db, tmp_path):
    kto = write_jsonl(tmp_path / "kto.jsonl", KTO_ROWS)
    r = runner.invoke(app, ["data", "import", str(kto), "--name", "k", "--format", "kto"])
    assert r.exit_code == 0, r.output
    assert "2 kto rows" in r.output
    grpo = write_jsonl(tmp_path / "g.jsonl", [{"prompt": "q", "solution": "a"}])
    r = runner.invoke(app, ["data", "import", str(grpo), "--name", "g", "--format", "grpo"])
    assert r.exit_code == 0 and "1 prompt rows" in r.output, r.output
    r = runner.invoke(app, ["data", "show", "g"])
    assert "solution" in r.output and r.exit_code == 0
    r = runner.invoke(app, ["data", "import", str(grpo), "--name", "x", "--format", "ppo"])
    assert r.exit_code == 2 and "unknown format 'ppo'" in r.output


def test_stats_report_dedup_and_export_work_on_kto_and_prompt_kinds(db, tmp_path):
    kto = write_jsonl(tmp_path / "kto.jsonl", KTO_ROWS + [KTO_ROWS[0]])
    grpo = write_jsonl(tmp_path / "g.jsonl", [{"prompt": "2+2?", "answer": "4"}, {"prompt": "2+2?", "answer": "4"},
                                              {"prompt": "3+3?", "answer": "6"}])
    import_file(db, kto, name="k")
    import_file(db, grpo, name="g")
    for name in ("k", "g"):
        r = runner.invoke(app, ["data", "stats", name])
        assert r.exit_code == 0 and "3" in r.output and "duplicate rate" in r.output, r.output
        r = runner.invoke(app, ["data", "report", name, "--html", str(tmp_path / f"{name}.html")])
        assert r.exit_code == 0 and (tmp_path / f"{name}.html").exists(), r.output
        r = runner.invoke(app, ["data", "dedup", name, "--exact"])
        assert r.exit_code == 0 and "v1.1" in r.output, r.output
    from llmloop.data.versions import resolve

    assert resolve(db, "k").row_count == 2 and resolve(db, "g").row_count == 2
    r = runner.invoke(app, ["data", "export", "g", "--to", "llamafactory", "--out", str(tmp_path / "lf")])
    assert r.exit_code == 2 and "export them with --to trl" in " ".join(r.output.split())
    r = runner.invoke(app, ["data", "export", "k", "--to", "openai", "--out", str(tmp_path / "oa")])
    assert r.exit_code == 2 and "OpenAI" in r.output
