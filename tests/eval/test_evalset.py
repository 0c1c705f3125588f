"""Eval sets are datasets: files, stored eval versions, and sft/preference datasets reused as eval sets."""

import json

import pytest
from typer.testing import CliRunner

from llmloop.cli.main import app
from llmloop.eval.evalset import import_eval_set, load_eval_set, read_eval_set

runner = CliRunner()


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_rows_carry_reference_label_and_metadata(tmp_path):
    f = _jsonl(tmp_path / "e.jsonl", [
        {"prompt": "2+2?", "reference": 4, "metadata": {"topic": "math"}},
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Mood: great"}],
         "label": "pos", "id": "r2", "lang": "en"},
    ])
    a, b = read_eval_set(f)
    assert (a.reference, a.label, a.metadata) == ("4", None, {"topic": "math"})
    assert b.messages[0]["role"] == "system" and b.label == "pos"
    assert b.metadata == {"id": "r2", "lang": "en"}  # other top-level fields are metadata too


def test_every_bad_line_is_reported_with_its_number(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text('{"prompt": "ok"}\n{"text": "no prompt"}\nnot json\n'
                 '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n'
                 '{"prompt": "x", "metadata": [1]}\n', encoding="utf-8")
    with pytest.raises(ValueError) as e:
        read_eval_set(f)
    msg = str(e.value)
    for line, what in ((2, "needs \"prompt\""), (3, "not JSON"), (4, "end with a user turn"), (5, "metadata must be")):
        assert f"line {line}: " in msg and what in msg
    assert "line 1:" not in msg


def test_import_stores_immutable_versions_and_runs_from_the_store(db, tmp_path):
    f = _jsonl(tmp_path / "e.jsonl", [{"prompt": "Where is my order?", "reference": "My Orders", "metadata": {"k": 1}}])
    v1 = import_eval_set(db, f, "support-eval")
    assert (v1.dataset, v1.version, v1.kind, v1.row_count) == ("support-eval", "v1.0", "prompt", 1)
    assert import_eval_set(db, f, "support-eval").id == v1.id  # same content: no new version
    _jsonl(f, [{"prompt": "Where is my order?", "reference": "My Orders"}, {"prompt": "Refund?", "label": "refund"}])
    v2 = import_eval_set(db, f, "support-eval")
    assert v2.version == "v1.1" and v2.parent_id == v1.id
    rows, desc = load_eval_set("support-eval@v1.0", db)
    assert [r.metadata for r in rows] == [{"k": 1}] and desc.startswith("support-eval@v1.0 (prompt")
    rows, _ = load_eval_set("support-eval", db)
    assert [r.label for r in rows] == [None, "refund"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": ""}\n')
    with pytest.raises(ValueError, match="line 1"):
        import_eval_set(db, bad, "support-eval")
    assert load_eval_set("support-eval", db)[0][1].label == "refund"  # nothing was written
    # the data area reads it like any prompt dataset (GRPO prompts with a solution)
    from llmloop.data.versions import read_rows, resolve

    assert read_rows(resolve(db, "support-eval@v1.1"))[0] == {"prompt": [{"role": "user", "content": "Where is my order?"}],
                                                               "solution": "My Orders"}
    with pytest.raises(ValueError, match="neither a file nor a stored dataset"):
        load_eval_set("no-such-set", db)
    with pytest.raises(ValueError, match="no such file"):
        load_eval_set(str(tmp_path / "missing.jsonl"), db)


def test_sft_preference_and_prompt_datasets_are_eval_sets(db, tmp_path):
    from llmloop.data.versions import write_version

    write_version(db, [{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                                     {"role": "user", "content": "Refund?"}, {"role": "assistant", "content": "Sure."}]}],
                  name="chat", kind="sft", source_format="openai")
    write_version(db, [{"prompt": [{"role": "user", "content": "Q"}], "chosen": [{"role": "assistant", "content": "good"}],
                        "rejected": [{"role": "assistant", "content": "bad"}]}],
                  name="prefs", kind="preference", source_format="trl")
    (row,), _ = load_eval_set("chat", db)
    assert [m["content"] for m in row.messages] == ["Hi", "Hello!", "Refund?"] and row.reference == "Sure."
    (row,), _ = load_eval_set("prefs@v1.0", db)
    assert row.messages == [{"role": "user", "content": "Q"}] and row.reference == "good"
    write_version(db, [{"prompt": [{"role": "user", "content": "6*7?"}], "solution": "42"}],
                  name="math", kind="prompt", source_format="grpo")
    (row,), _ = load_eval_set("math", db)
    assert row.prompt_text == "6*7?" and row.reference == "42"
    write_version(db, [{"text": "corpus"}], name="corpus", kind="pt", source_format="pt")
    with pytest.raises(ValueError, match="cannot be an eval set"):
        load_eval_set("corpus", db)


def test_eval_import_and_run_on_a_stored_set_cli(db, tiny_model_dir, tmp_path):
    from llmloop.store import registry

    registry.register(db, name="v1.0", kind="chat", base_model=str(tiny_model_dir))
    f = _jsonl(tmp_path / "e.jsonl", [{"prompt": "Where is my order?", "reference": "My Orders", "topic": "orders"}])
    r = runner.invoke(app, ["eval", "import", str(f), "--name", "held-out"])
    assert r.exit_code == 0 and "held-out@v1.0: 1 eval rows" in r.output, r.output
    out = tmp_path / "rep"
    r = runner.invoke(app, ["eval", "run", "v1.0", "--data", "held-out@v1.0", "--out-dir", str(out), "--max-tokens", "3"])
    assert r.exit_code == 0, r.output
    rep = json.loads((out / "report.json").read_text())
    assert rep["eval_set"].startswith("held-out@v1.0") and rep["rows"][0]["metadata"] == {"topic": "orders"}
    assert "orders" in (out / "report.html").read_text()
    r = runner.invoke(app, ["eval", "import", str(tmp_path / "nope.jsonl"), "--name", "x"])
    assert r.exit_code == 2 and "nope.jsonl" in r.output
