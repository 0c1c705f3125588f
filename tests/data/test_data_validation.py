"""Bad input: every problem names file, row, field and fix, and a refused import writes nothing."""

from __future__ import annotations

import pytest
from data_helpers import files_under, write_jsonl

from llmloop.data.importer import import_file
from llmloop.data.rows import DataError, DataValidationError
from llmloop.data.validate import validate_file
from llmloop.store import datasets as store_datasets


def assert_nothing_written(db) -> None:
    assert store_datasets.list_versions(db) == []
    assert files_under(db.workspace.datasets_dir) == []


def refused(db, path, **kw) -> DataValidationError:
    with pytest.raises(DataValidationError) as info:
        import_file(db, path, name="faq", **kw)
    assert_nothing_written(db)
    assert "nothing was written" in str(info.value)
    return info.value


def test_malformed_json_line_names_its_line(db, tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text('{"text": "fine"}\n\n{"text": "broken\n{"text": "also fine"}\n', encoding="utf-8")
    (p,) = validate_file(f)
    assert (p.file, p.row, p.line) == ("bad.jsonl", 2, 3)
    assert "malformed JSON" in p.problem and "complete JSON object" in p.fix
    e = refused(db, f)
    assert "bad.jsonl, row 2, line 3: malformed JSON" in str(e)
    assert "--skip-invalid" in str(e)  # two valid rows could be imported alone


def test_wrong_types_and_missing_fields(db, tmp_path):
    f = write_jsonl(tmp_path / "a.jsonl", [
        {"instruction": "ok", "output": "fine"},
        {"instruction": ["not", "text"], "output": "x"},
        {"instruction": "no answer"},
        {"instruction": "q", "output": 42},
    ])
    problems = validate_file(f)
    assert [(p.row, p.field, p.problem) for p in problems] == [
        (2, "instruction", "must be a string"),
        (3, "output", "missing required field"),
        (4, "output", "must be a string"),
    ]
    assert problems[0].seen.startswith("list") and problems[2].seen == "int 42"
    assert "give each row an 'output' string" in problems[1].fix
    refused(db, f)


def test_roles_missing_unknown_and_out_of_order(db, tmp_path):
    f = write_jsonl(tmp_path / "m.jsonl", [
        {"messages": [{"role": "user", "content": "hi"}, {"content": "no role"}]},
        {"messages": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "x"}]},
        {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
                      {"role": "assistant", "content": "c"}]},
        {"messages": [{"role": "user", "content": "q"}]},
        {"messages": [{"role": "assistant", "content": "a"}]},
        {"messages": [{"role": "user", "content": "   "}, {"role": "assistant", "content": "a"}]},
        {"messages": [{"role": "user", "content": "q"}, {"role": "system", "content": "late"},
                      {"role": "assistant", "content": "a"}]},
    ])
    got = {(p.row, p.field): p for p in validate_file(f)}
    assert "missing role field 'role'" in got[1, "messages[1]"].problem
    assert got[2, "messages[1].role"].problem == "unknown role" and got[2, "messages[1].role"].seen == "'bot'"
    assert "user, assistant" in got[2, "messages[1].role"].fix
    assert "role order: expected an assistant" in got[3, "messages[1]"].problem
    assert "must end with an assistant reply" in got[4, "messages[0]"].problem
    assert got[5, "messages"].problem == "no user turn"
    assert got[6, "messages[0]"].problem == "empty user content"
    assert "system message may only come first" in got[7, "messages[1]"].problem
    refused(db, f)


def test_non_utf8_bytes_give_byte_offset_and_line(db, tmp_path):
    lines = tmp_path / "latin1.jsonl"
    lines.write_bytes(b'{"text": "ok"}\n{"text": "caf\xe9"}\n')
    (p,) = validate_file(lines)
    assert (p.row, p.line) == (2, 2)
    assert "not valid UTF-8 at byte offset 28 (line 2)" in p.problem and "\\xe9" in p.seen and "UTF-8" in p.fix
    refused(db, lines)
    whole = tmp_path / "latin1.json"
    whole.write_bytes(b'[\n{"text": "caf\xe9"}]')
    (p,) = validate_file(whole)
    assert p.row is None and "byte offset 15 (line 2)" in p.problem
    e = refused(db, whole, skip_invalid=True)  # a file-level problem cannot be skipped
    assert "latin1.json: cannot be imported as it is" in str(e)


def test_empty_files(db, tmp_path):
    for name, content in [("empty.jsonl", ""), ("blank.json", "  \n"), ("none.json", "[]"), ("e.txt", "\n\n")]:
        f = tmp_path / name
        f.write_text(content, encoding="utf-8")
        (p,) = validate_file(f)
        assert p.row is None and ("empty" in p.problem or "no rows" in p.problem), name
        refused(db, f, skip_invalid=True)


def test_path_traversal_and_bad_names_are_refused_before_reading(db, tmp_path):
    f = write_jsonl(tmp_path / "ok.jsonl", [{"text": "fine"}])
    for name in ["../escape", "a/b", "..", "", ".hidden", "x" * 101]:
        with pytest.raises(DataError, match="is not allowed"):
            import_file(db, f, name=name)
    assert_nothing_written(db)
    assert not (db.workspace.home / "escape").exists()


def test_missing_file_and_unsupported_type(db, tmp_path):
    with pytest.raises(DataError, match="no such file"):
        import_file(db, tmp_path / "nope.jsonl", name="faq")
    xlsx = tmp_path / "sheet.xlsx"
    xlsx.write_bytes(b"PK")
    with pytest.raises(DataError, match="unsupported file type '.xlsx'"):
        import_file(db, xlsx, name="faq")
    assert_nothing_written(db)


def test_preference_problems(tmp_path):
    f = write_jsonl(tmp_path / "p.jsonl", [
        {"prompt": "q", "chosen": "same", "rejected": "same"},
        {"prompt": "q", "chosen": "", "rejected": "b"},
        {"prompt": "q", "chosen": "a"},
        {"prompt": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
         "chosen": "x", "rejected": "y"},
    ])
    got = {(p.row, p.field): p.problem for p in validate_file(f)}
    assert "identical" in got[1, "rejected"]
    assert got[2, "chosen"] == "empty reply"
    assert got[3, "rejected"] == "missing required field"
    assert "must end with the user's turn" in got[4, "prompt[1]"]


def test_skip_invalid_keeps_the_good_rows_and_reports_the_rest(db, tmp_path):
    f = tmp_path / "mixed.jsonl"
    f.write_bytes(b'{"text": "one"}\n{"text": \n{"text": ""}\n{"text": "caf\xe9"}\n{"text": "two"}\n')
    report = import_file(db, f, name="corpus", skip_invalid=True, note="first cut")
    assert (report.rows_read, report.rows_kept, report.rows_skipped) == (5, 2, 3)
    assert [p.row for p in report.skipped] == [2, 3, 4]
    assert {p.file for p in report.skipped} == {"mixed.jsonl"}
    v = report.version
    assert (v.dataset, v.version, v.kind, v.row_count, v.note) == ("corpus", "v1.0", "pt", 2, "first cut")


def test_a_file_with_no_valid_row_is_refused_even_with_skip_invalid(db, tmp_path):
    f = write_jsonl(tmp_path / "bad.jsonl", [{"text": ""}, {"text": 3}])
    e = refused(db, f, skip_invalid=True)
    assert "nothing to import" in str(e)


def test_problem_listing_is_capped(db, tmp_path):
    f = write_jsonl(tmp_path / "many.jsonl", [{"text": ""} for _ in range(45)])
    e = refused(db, f)
    assert len(e.problems) == 45
    assert "45 problem(s) in 45 row(s) of 45" in str(e) and "… and 25 more" in str(e)


def test_rows_that_are_not_objects_and_prompt_only_rows(tmp_path):
    nums = tmp_path / "nums.json"
    nums.write_text("[1, [2]]", encoding="utf-8")
    assert [(p.row, p.problem, p.seen) for p in validate_file(nums)] == [
        (1, "a row must be a JSON object", "int 1"), (2, "a row must be a JSON object", "list [2]")]
    prompts = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": "q"}, {"prompt": ""}])
    (p,) = validate_file(prompts)  # prompt-only rows are GRPO/PPO prompts; an empty one is named
    assert p.row == 2 and "empty user content" in p.problem
