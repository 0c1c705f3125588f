import json

from typer.testing import CliRunner

from llmloop.cli.main import app
from llmloop.eval.winrate import PairSample, summarize

runner = CliRunner()


def test_eval_leaderboard_from_votes_and_a_saved_report(db, tmp_path):
    from dataclasses import asdict

    import feedback_seed as seed

    r = runner.invoke(app, ["eval", "leaderboard"])
    assert r.exit_code == 2 and "at least one battle" in r.output
    for i in range(6):
        seed.battle(db, battle_id=f"b{i}", user_id="u", messages=[{"role": "user", "content": "hi"}],
                    answers=[(f"r{i}a", "v1.1", "good"), (f"r{i}b", "v1.0", "bad")])
        seed.vote(db, battle_id=f"b{i}", user_id="u", choice="a" if i else "b")
    rep = tmp_path / "rep.json"
    rep.write_text(json.dumps(asdict(summarize("v1.2", "v1.1", "j", [PairSample([], "", "", "x", "")] * 4))))
    out = tmp_path / "board.json"
    r = runner.invoke(app, ["eval", "leaderboard", "--report", str(rep), "--bootstrap", "20", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "arena 6, judge 4" in r.output
    assert [row["model"] for row in json.loads(out.read_text())["ratings"]] == ["v1.2", "v1.1", "v1.0"]
    r = runner.invoke(app, ["eval", "leaderboard", "--report", str(tmp_path / "missing.json")])
    assert r.exit_code == 2 and "missing.json" in r.output


def test_eval_compare_rejects_a_malformed_llm_judge(db, tmp_path):
    from llmloop.store import registry

    registry.register(db, name="v1.0", kind="chat", base_model="x")
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "hi"}\n')
    r = runner.invoke(app, ["eval", "compare", "v1.0", "v1.0", "--prompts", str(prompts), "--judge", "openai:gpt"])
    assert r.exit_code == 2 and "openai:MODEL@BASE_URL" in r.output
    r = runner.invoke(app, ["eval", "compare", "v1.0", "v1.0", "--prompts", str(prompts),
                            "--judge", "openai:m@http://127.0.0.1:9/v1", "--judge-key-env", "NO_SUCH_KEY_VAR"])
    assert r.exit_code == 2 and "NO_SUCH_KEY_VAR" in r.output


def test_eval_rm_quality(tmp_path):
    f = tmp_path / "s.jsonl"
    f.write_text('{"chosen_score": 2, "rejected_score": 1}\n{"chosen_score": 0, "rejected_score": 1}\n')
    r = runner.invoke(app, ["eval", "rm-quality", str(f)])
    assert r.exit_code == 0 and json.loads(r.output)["pairwise_accuracy"] == 0.5
    f.write_text('{"chosen": 2}\n')
    r = runner.invoke(app, ["eval", "rm-quality", str(f)])
    assert r.exit_code == 2 and "chosen_score" in r.output


def test_eval_ab(db):
    import feedback_seed as seed

    from llmloop.store import registry

    registry.register(db, name="v1.0", kind="chat", base_model="x")
    registry.register(db, name="v1.1", kind="chat", base_model="x")
    seed.battle(db, battle_id="b", user_id="u", messages=[], answers=[("a", "v1.1", "x"), ("b", "v1.0", "y")])
    seed.vote(db, battle_id="b", user_id="u", choice="a")
    r = runner.invoke(app, ["eval", "ab", "v1.1", "v1.0"])
    assert r.exit_code == 0, r.output
    assert "not significant" in r.output and "'candidate': 1" in r.output
    assert runner.invoke(app, ["eval", "ab", "v1.1", "v9"]).exit_code == 2
    assert runner.invoke(app, ["eval", "ab", "v1.1", "v1.0", "--alpha", "2"]).exit_code == 2


def test_eval_run_writes_all_three_reports(db, tiny_model_dir, tmp_path):
    from llmloop.store import registry

    registry.register(db, name="v1.0", kind="chat", base_model=str(tiny_model_dir))
    data = tmp_path / "e.jsonl"
    data.write_text('{"prompt": "Where is my order?", "reference": "See My Orders."}\n')
    out = tmp_path / "rep"
    r = runner.invoke(app, ["eval", "run", "v1.0", "--data", str(data), "--out-dir", str(out), "--max-tokens", "4"])
    assert r.exit_code == 0, r.output
    assert {p.name for p in out.iterdir()} == {"report.html", "report.json", "report.csv", "report.samples.csv",
                                               "generations.jsonl", "run.json"}
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{}\n")
    r = runner.invoke(app, ["eval", "run", "v1.0", "--data", str(bad)])
    assert r.exit_code == 2 and "line 1" in r.output


def test_review_export_then_import(tmp_path):
    import csv
    from dataclasses import asdict

    rep = tmp_path / "cmp.json"
    rep.write_text(json.dumps(asdict(summarize("v1.1", "v1.0", "j", [PairSample([{"role": "user", "content": "q"}], "good", "bad", "x", "")] * 3))))
    sheet = tmp_path / "s.csv"
    assert runner.invoke(app, ["eval", "review-export", str(rep), "--sheet", str(sheet)]).exit_code == 0
    rows = list(csv.reader(sheet.open(encoding="utf-8-sig")))
    for r in rows[1:]:
        r[4] = "1" if r[2] == "good" else "2"
    with sheet.open("w", newline="", encoding="utf-8-sig") as f:
        csv.writer(f).writerows(rows)
    out = tmp_path / "human.json"
    r = runner.invoke(app, ["eval", "review-import", str(sheet), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())["wins"] == 3 and "v1.1 vs v1.0 by human" in r.output
    # human verdicts are mixed into the comparisons the leaderboard counts
    board = runner.invoke(app, ["eval", "leaderboard", "--bootstrap", "0", "--out", str(tmp_path / "b.json")])
    assert board.exit_code == 0 and "judge 3" in board.output, board.output
    assert [r["model"] for r in json.loads((tmp_path / "b.json").read_text())["ratings"]] == ["v1.1", "v1.0"]
    rows[1][4] = "A"
    with sheet.open("w", newline="", encoding="utf-8-sig") as f:
        csv.writer(f).writerows(rows)
    r = runner.invoke(app, ["eval", "review-import", str(sheet)])
    assert r.exit_code == 2 and "row 2: preferred" in r.output
    assert runner.invoke(app, ["eval", "review-export", str(sheet), "--sheet", str(tmp_path / "x.csv")]).exit_code == 2


def test_eval_judge_names_the_flag_that_fixes_a_bad_value(tmp_path):
    answers = tmp_path / "a.jsonl"
    answers.write_text('{"prompt": "hi", "answer": "hello"}\n')
    r = runner.invoke(app, ["eval", "judge", str(answers), "--judge-url", "http://127.0.0.1:9/v1",
                            "--judge-model", "m", "--timeout", "0"])
    assert r.exit_code == 2 and "--timeout:" in r.output and "timeout-s" not in r.output, r.output
