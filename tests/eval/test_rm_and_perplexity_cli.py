"""E9 with the reward model run on a held-out preference set; E1 perplexity on a text set, from the CLI."""

import json
import re

import pytest
from typer.testing import CliRunner

from llmloop.cli.main import app

runner = CliRunner()
ANSWERS = ["You can track it under My Orders.", "No.", "Thanks for waiting, it ships today.", "退款三天到账。", "?"]


def _pairs():
    q = [{"role": "user", "content": "Where is my order?"}]
    return [{"prompt": q, "chosen": [{"role": "assistant", "content": a}], "rejected": [{"role": "assistant", "content": b}]}
            for a, b in zip(ANSWERS, ANSWERS[1:] + ANSWERS[:1])]


def test_rm_quality_runs_the_reward_model_on_a_stored_preference_set(db, reward_model_dir, tmp_path):
    from llmloop.data.versions import write_version
    from llmloop.eval.rm_judge import RewardModelJudge

    write_version(db, _pairs(), name="held-out-prefs", kind="preference", source_format="trl")
    r = runner.invoke(app, ["eval", "rm-quality", "--reward-model", str(reward_model_dir), "--data", "held-out-prefs@v1.0"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.output[r.output.index("{"):])
    rm = RewardModelJudge(reward_model_dir)
    q = [{"role": "user", "content": "Where is my order?"}]
    expected = sum(rm.rewards(q, [p["chosen"][0]["content"], p["rejected"][0]["content"]])[0]
                   > rm.rewards(q, [p["chosen"][0]["content"], p["rejected"][0]["content"]])[1] for p in _pairs()) / 5
    assert got["n_pairs"] == 5 and got["pairwise_accuracy"] == pytest.approx(expected)
    # the same pairs with chosen and rejected swapped, from a plain-text JSONL file: accuracy mirrors
    flipped = tmp_path / "flipped.jsonl"
    flipped.write_text("".join(json.dumps({"prompt": "Where is my order?", "chosen": p["rejected"][0]["content"],
                                           "rejected": p["chosen"][0]["content"]}, ensure_ascii=False) + "\n"
                               for p in _pairs()))
    r = runner.invoke(app, ["eval", "rm-quality", "--reward-model", str(reward_model_dir), "--data", str(flipped)])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output[r.output.index("{"):])["pairwise_accuracy"] == pytest.approx(1 - expected)
    r = runner.invoke(app, ["eval", "rm-quality", "--reward-model", str(reward_model_dir)])
    assert r.exit_code == 2 and "--data" in r.output
    write_version(db, [{"text": "x"}], name="corpus", kind="pt", source_format="pt")
    r = runner.invoke(app, ["eval", "rm-quality", "--reward-model", str(reward_model_dir), "--data", "corpus"])
    assert r.exit_code == 2 and "needs preference pairs" in r.output


def test_perplexity_on_a_file_and_a_stored_text_set(db, tiny_model_dir, tmp_path):
    from llmloop.data.versions import write_version
    from llmloop.eval.text_metrics import version_perplexity
    from llmloop.store import registry

    registry.register(db, name="c1.0", kind="completion", base_model=str(tiny_model_dir))
    texts = ["Where is my order? You can track it under My Orders.", "退款会在三天内到账。"]
    f = tmp_path / "t.jsonl"
    f.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts))
    write_version(db, [{"text": t} for t in texts], name="corpus", kind="pt", source_format="pt")
    want = version_perplexity(str(tiny_model_dir), texts)
    for data in (str(f), "corpus@v1.0"):
        r = runner.invoke(app, ["eval", "perplexity", "c1.0", "--data", data])
        assert r.exit_code == 0, r.output
        assert float(re.search(r"perplexity ([\d.]+)", r.output).group(1)) == pytest.approx(want, abs=1e-3)
    r = runner.invoke(app, ["eval", "perplexity", str(tiny_model_dir), "--data", str(f)])  # a checkpoint folder
    assert r.exit_code == 0 and f"{want:.3f}" in r.output
    f.write_text('{"prompt": "x"}\n')
    r = runner.invoke(app, ["eval", "perplexity", "c1.0", "--data", str(f)])
    assert r.exit_code == 2 and "line 1" in r.output and "text" in r.output


def test_eval_run_with_a_reward_model_as_pointwise_judge(db, tiny_model_dir, reward_model_dir, tmp_path):
    from llmloop.eval.rm_judge import RewardModelJudge
    from llmloop.store import registry

    registry.register(db, name="v1.0", kind="chat", base_model=str(tiny_model_dir))
    data = tmp_path / "e.jsonl"
    data.write_text('{"prompt": "Where is my order?"}\n{"prompt": "退款？"}\n')
    out = tmp_path / "rep"
    r = runner.invoke(app, ["eval", "run", "v1.0", "--data", str(data), "--out-dir", str(out), "--max-tokens", "5",
                            "--judge", f"rm:{reward_model_dir}"])
    assert r.exit_code == 0, r.output
    rep = json.loads((out / "report.json").read_text())
    rm = RewardModelJudge(reward_model_dir)
    rewards = [rm.rewards([{"role": "user", "content": rep["rows"][s["index"]]["messages"][-1]["content"]}], [s["output"]])[0]
               for s in rep["samples"]]
    assert [s["judge"]["reward"] for s in rep["samples"]] == pytest.approx(rewards, abs=1e-4)
    assert rep["versions"][0]["metrics"]["judge_reward"] == pytest.approx(sum(rewards) / 2, abs=1e-4)
    assert rep["versions"][0]["judge_failed"] == 0 and "judge_overall" not in rep["versions"][0]["metrics"]
    assert "reward-model score" in (out / "report.html").read_text()
