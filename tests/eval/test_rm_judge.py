import pytest

from llmloop.eval.judges import load_judge


def test_reward_model_judge_follows_its_rewards(reward_model_dir):
    judge = load_judge(f"rm:{reward_model_dir}")
    msgs = [{"role": "user", "content": "Where is my order?"}]
    answers = ["You can track it under My Orders.", "No.", "Thanks for waiting, it ships today."]
    r = judge.rewards(msgs, answers)
    assert len(set(r)) == 3  # a random head still separates different texts
    best, worst = answers[r.index(max(r))], answers[r.index(min(r))]
    assert judge.judge(msgs, best, worst).winner == "x"
    assert judge.judge(msgs, worst, best).winner == "y"
    assert judge.judge(msgs, best, best).winner == "tie"
    # batched rewards equal one-at-a-time rewards (padding does not leak in)
    assert judge.rewards(msgs, [answers[1]])[0] == pytest.approx(r[1], abs=1e-4)


def test_reward_model_judge_errors(tmp_path):
    with pytest.raises(ValueError, match="not a folder"):
        load_judge(f"rm:{tmp_path / 'missing'}")
