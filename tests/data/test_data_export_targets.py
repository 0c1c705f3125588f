"""D11 export targets: TRL (plain and conversational), OpenAI (messages; DPO form), HF save_to_disk."""

from __future__ import annotations

import json

import pytest
from data_helpers import files_under, write_jsonl
from typer.testing import CliRunner

from llmloop.cli.main import app
from llmloop.data.export import export_version
from llmloop.data.importer import import_file
from llmloop.data.rows import DataError

runner = CliRunner()

PREF = {"prompt": "What is 2+2?", "chosen": "4", "rejected": "5"}
MULTI = {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"},
                      {"role": "assistant", "content": "hello"}]}


def read(path):
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def pref(db, tmp_path):
    return import_file(db, write_jsonl(tmp_path / "p.jsonl", [PREF]), name="pref", format="trl").version


def test_trl_preference_plain_and_conversational(pref, tmp_path):
    r = export_version(pref, "trl", tmp_path / "o", style="plain")
    assert read(r.files[0]) == [PREF]
    r = export_version(pref, "trl", tmp_path / "o2")
    assert read(r.files[0]) == [{"prompt": [{"role": "user", "content": "What is 2+2?"}],
                                 "chosen": [{"role": "assistant", "content": "4"}],
                                 "rejected": [{"role": "assistant", "content": "5"}]}]


def test_openai_dpo_form(pref, tmp_path):
    r = export_version(pref, "openai", tmp_path / "o")
    assert read(r.files[0]) == [{"input": {"messages": [{"role": "user", "content": "What is 2+2?"}]},
                                 "preferred_output": [{"role": "assistant", "content": "4"}],
                                 "non_preferred_output": [{"role": "assistant", "content": "5"}]}]


def test_sft_targets_and_plain_refuses_multi_turn(db, tmp_path):
    v = import_file(db, write_jsonl(tmp_path / "s.jsonl", [MULTI]), name="s").version
    assert read(export_version(v, "openai", tmp_path / "o").files[0]) == [MULTI]
    assert read(export_version(v, "trl", tmp_path / "o").files[0]) == [MULTI]
    with pytest.raises(DataError, match="row 1.*--style conversational"):
        export_version(v, "trl", tmp_path / "bad", style="plain")
    assert files_under(tmp_path / "bad") == []


def test_openai_tool_calls(db, lf_dir, tmp_path):
    from llmloop.data.importer import import_llamafactory

    import_llamafactory(db, lf_dir, names=["glaive_toolcall_en_demo"])
    from llmloop.data.versions import resolve

    v = resolve(db, "glaive_toolcall_en_demo")
    rows = read(export_version(v, "openai", tmp_path / "o").files[0])
    calls = [m for r in rows for m in r["messages"] if "tool_calls" in m]
    assert calls and all(isinstance(c["tool_calls"][0]["function"]["arguments"], str) for c in calls)
    assert all("tools" in r for r in rows if any("tool_calls" in m for m in r["messages"]))


def test_pt_has_no_openai_form(db, tmp_path):
    v = import_file(db, write_jsonl(tmp_path / "t.jsonl", [{"text": "x"}]), name="t").version
    with pytest.raises(DataError, match="no format for pt"):
        export_version(v, "openai", tmp_path / "o")
    assert read(export_version(v, "trl", tmp_path / "o").files[0]) == [{"text": "x"}]


def test_hf_save_to_disk_round_trip(pref, tmp_path):
    from datasets import load_from_disk

    r = export_version(pref, "hf", tmp_path / "o")
    ds = load_from_disk(str(r.files[0]))
    assert ds[0]["chosen"] == [{"role": "assistant", "content": "4"}]
    with pytest.raises(DataError, match="exists"):
        export_version(pref, "hf", tmp_path / "o")
    assert [p.name for p in (tmp_path / "o").iterdir()] == ["pref-v1.0"]


def test_cli_export_trl_plain(db, pref, tmp_path):
    r = runner.invoke(app, ["data", "export", "pref", "--to", "trl", "--style", "plain", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["data", "export", "pref", "--to", "trl", "--style", "odd", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "unknown --style 'odd'" in r.output
