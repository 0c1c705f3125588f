"""Every source format becomes the right canonical rows (no store needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from data_helpers import write_jsonl

from llmloop.data.rows import DataError
from llmloop.data.validate import parse_file


def parsed_ok(path: Path, fmt: str = "auto"):
    parsed = parse_file(path, fmt)
    assert parsed.problems == [], [str(p) for p in parsed.problems]
    return parsed


def user(text):
    return {"role": "user", "content": text}


def assistant(text):
    return {"role": "assistant", "content": text}


def test_alpaca_with_input_system_and_history(tmp_path):
    f = write_jsonl(tmp_path / "a.jsonl", [
        {"instruction": "Translate", "input": "bonjour", "output": "hello"},
        {"instruction": "And this?", "input": "", "output": "thanks", "system": "Be brief.",
         "history": [["Translate merci", "thank you"]]},
    ])
    p = parsed_ok(f)
    assert (p.format, p.kind, p.rows_read) == ("alpaca", "sft", 2)
    assert p.rows == [
        {"messages": [user("Translate\nbonjour"), assistant("hello")]},
        {"messages": [{"role": "system", "content": "Be brief."}, user("Translate merci"), assistant("thank you"),
                      user("And this?"), assistant("thanks")]},
    ]


def test_alpaca_ranking_is_preference(tmp_path):
    f = write_jsonl(tmp_path / "r.jsonl", [{"instruction": "2+2?", "input": "", "chosen": "4", "rejected": "5"}])
    p = parsed_ok(f)
    assert (p.format, p.kind) == ("alpaca", "preference")
    assert p.rows == [{"prompt": [user("2+2?")], "chosen": [assistant("4")], "rejected": [assistant("5")]}]


def test_sharegpt_system_tools_and_function_calls(tmp_path):
    call = json.dumps({"name": "weather", "arguments": {"city": "Oslo"}})
    f = tmp_path / "s.json"
    f.write_text(json.dumps([{
        "conversations": [
            {"from": "system", "value": "You help."},
            {"from": "human", "value": "Weather in Oslo?"},
            {"from": "function_call", "value": call},
            {"from": "observation", "value": '{"temp": 3}'},
            {"from": "gpt", "value": "3 degrees."},
        ],
        "tools": '[{"name": "weather"}]',
    }]), encoding="utf-8")
    p = parsed_ok(f)
    assert (p.format, p.kind) == ("sharegpt", "sft")
    assert p.rows == [{"messages": [
        {"role": "system", "content": "You help."}, user("Weather in Oslo?"),
        {"role": "tool_call", "content": call}, {"role": "tool", "content": '{"temp": 3}'}, assistant("3 degrees."),
    ], "tools": '[{"name": "weather"}]'}]


def test_sharegpt_ranking_with_message_dicts(tmp_path):
    f = write_jsonl(tmp_path / "d.jsonl", [{
        "conversations": [{"from": "human", "value": "hi"}],
        "chosen": {"from": "gpt", "value": "Hello!"}, "rejected": {"from": "gpt", "value": "go away"},
    }])
    p = parsed_ok(f)
    assert (p.format, p.kind) == ("sharegpt", "preference")
    assert p.rows == [{"prompt": [user("hi")], "chosen": [assistant("Hello!")], "rejected": [assistant("go away")]}]


def test_openai_messages_tool_calls_and_content_parts(tmp_path):
    f = write_jsonl(tmp_path / "o.jsonl", [
        {"messages": [user("hi"), assistant("hello")]},
        {"messages": [
            {"role": "user", "content": [{"type": "text", "text": "time in "}, {"type": "text", "text": "Rome?"}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"type": "function", "function": {"name": "clock", "arguments": '{"tz": "CET"}'}}]},
            {"role": "tool", "content": "10:00"},
            {"role": "tool", "content": "CET"},
            assistant("It is 10:00."),
        ], "tools": [{"type": "function", "function": {"name": "clock"}}]},
    ])
    p = parsed_ok(f)
    assert (p.format, p.kind) == ("openai", "sft")
    assert p.rows[0] == {"messages": [user("hi"), assistant("hello")]}
    msgs = p.rows[1]["messages"]
    assert msgs[0] == user("time in Rome?")
    assert msgs[1] == {"role": "tool_call", "content": json.dumps({"name": "clock", "arguments": {"tz": "CET"}})}
    assert msgs[2]["role"] == "tool" and msgs[2]["content"].startswith("10:00") and msgs[2]["content"].endswith("CET")
    assert json.loads(p.rows[1]["tools"]) == [{"type": "function", "function": {"name": "clock"}}]


def test_trl_preference_plain_conversational_and_implicit_prompt(tmp_path):
    plain = write_jsonl(tmp_path / "plain.jsonl", [{"prompt": "sky?", "chosen": "blue", "rejected": "green"}])
    conv = write_jsonl(tmp_path / "conv.jsonl", [{"prompt": [user("sky?")], "chosen": [assistant("blue")],
                                                  "rejected": [assistant("green")]}])
    implicit = write_jsonl(tmp_path / "implicit.jsonl", [{"chosen": [user("sky?"), assistant("blue")],
                                                          "rejected": [user("sky?"), assistant("green")]}])
    want = [{"prompt": [user("sky?")], "chosen": [assistant("blue")], "rejected": [assistant("green")]}]
    for f in (plain, conv, implicit):
        p = parsed_ok(f)
        assert (p.format, p.kind, p.rows) == ("trl", "preference", want), f.name


def test_trl_prompt_completion_is_sft(tmp_path):
    f = write_jsonl(tmp_path / "pc.jsonl", [{"prompt": "2+2?", "completion": "4"},
                                            {"prompt": [user("3+3?")], "completion": [assistant("6")]}])
    p = parsed_ok(f)
    assert (p.format, p.kind) == ("trl", "sft")
    assert p.rows == [{"messages": [user("2+2?"), assistant("4")]}, {"messages": [user("3+3?"), assistant("6")]}]


def test_pt_from_jsonl_txt_csv_and_parquet(tmp_path):
    jsonl = write_jsonl(tmp_path / "c.jsonl", [{"text": "doc one"}, {"text": "doc two"}])
    txt = tmp_path / "w.txt"
    txt.write_text("doc one\n\n  \ndoc two\n", encoding="utf-8")
    csv_file = tmp_path / "c.csv"
    csv_file.write_text('text\ndoc one\n"doc two"\n', encoding="utf-8")
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = tmp_path / "c.parquet"
    pq.write_table(pa.Table.from_pylist([{"text": "doc one"}, {"text": "doc two"}]), parquet)
    for f in (jsonl, txt, csv_file, parquet):
        p = parsed_ok(f)
        assert (p.format, p.kind, p.rows) == ("pt", "pt", [{"text": "doc one"}, {"text": "doc two"}]), f.name


def test_csv_alpaca(tmp_path):
    f = tmp_path / "a.csv"
    f.write_text('instruction,input,output\n"Say hi, please",,hi\n', encoding="utf-8")
    assert parsed_ok(f).rows == [{"messages": [user("Say hi, please"), assistant("hi")]}]


def test_explicit_format_wins_over_detection(tmp_path):
    # a sharegpt file that uses role/content tags, read as sharegpt on request
    f = write_jsonl(tmp_path / "k.jsonl", [{"conversations": [user("hi"), assistant("yo")]}])
    p = parsed_ok(f, "sharegpt")
    assert (p.format, p.rows) == ("sharegpt", [{"messages": [user("hi"), assistant("yo")]}])
    # forcing the wrong format reports the missing field, row by row
    p = parse_file(f, "alpaca")
    assert [(q.row, q.field, q.problem) for q in p.problems] == [(1, "instruction", "missing required field"),
                                                                 (1, "output", "missing required field")]


def test_unknown_ambiguous_and_kto_rows_are_explained(tmp_path, lf_dir):
    unknown = write_jsonl(tmp_path / "u.jsonl", [{"question": "q", "answer": "a"}])
    (problem,) = parse_file(unknown).problems
    assert "row 1 has keys ['answer', 'question']" in problem.problem
    assert "expected one of alpaca" in problem.problem and "--format" in problem.fix

    both = write_jsonl(tmp_path / "b.jsonl", [{"instruction": "q", "output": "a", "messages": []}])
    (problem,) = parse_file(both).problems
    assert "alpaca" in problem.problem and "--format" in problem.fix

    kto = lf_dir / "kto_en_demo.json"
    parsed = parse_file(kto)  # messages + label: the kto kind
    assert parsed.kind == "kto" and not parsed.problems and len(parsed.rows) == 300
    assert parse_file(kto, "kto").rows == parsed.rows  # --format kto says the same
    mixed = write_jsonl(tmp_path / "k.jsonl", [{"prompt": "q", "chosen": "a", "rejected": "b", "label": True}])
    (problem,) = parse_file(mixed).problems
    assert "KTO label next to chosen/rejected" in problem.problem and problem.row is None

    with pytest.raises(DataError, match="unknown format 'dpo'.*kto, grpo"):
        parse_file(kto, "dpo")
