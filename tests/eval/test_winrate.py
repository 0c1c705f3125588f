import datetime as dt
import math

import pytest

from llmloop.demo.users import preference_score
from llmloop.eval.judges import ScoreJudge, load_judge
from llmloop.eval.winrate import (
    PairSample,
    compare_versions,
    summarize,
    wilson_interval,
)
from llmloop.inference.base import SamplingParams
from llmloop.inference.embedded import EmbeddedEngine
from llmloop.store.records import ModelVersion


def test_wilson_interval_matches_the_textbook_values():
    # Wilson score interval, z = 1.96: 5/10 → [0.2366, 0.7634]; 0/10 → [0, 0.2775]; 81/263 → [0.2553, 0.3662]
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    with pytest.raises(ValueError):
        wilson_interval(0, 0)


def test_ties_count_half_and_the_interval_narrows_with_n():
    def samples(w, l, t):
        return [PairSample([], "", "", "x", "")] * w + [PairSample([], "", "", "y", "")] * l + [PairSample([], "", "", "tie", "")] * t

    r = summarize("v1.1", "v1.0", "j", samples(6, 2, 2))
    assert (r.wins, r.losses, r.ties, r.n) == (6, 2, 2, 10)
    assert r.win_rate == pytest.approx(0.7)
    assert r.ci_low < 0.7 < r.ci_high
    big = summarize("v1.1", "v1.0", "j", samples(60, 20, 20))
    assert big.win_rate == pytest.approx(0.7)
    assert big.ci_high - big.ci_low < r.ci_high - r.ci_low
    assert big.ci_low > 0.5 > r.ci_low


def test_score_judge_and_loading_by_import_path():
    judge = load_judge("python:llmloop.demo.users:preference_score")
    curt, helpful = "Check My Orders.", (
        "You can track your lamp under My Orders, where each order shows its tracking number. "
        "Is there anything else I can help you with?"
    )
    assert judge.judge([], helpful, curt).winner == "x"
    assert judge.judge([], curt, helpful).winner == "y"
    assert judge.judge([], curt, curt).winner == "tie"
    assert preference_score(helpful) == 3 and preference_score(curt) == 0
    assert preference_score("请问还有什么可以帮您的吗？您可以在我的订单中查看物流信息，点击运单号即可。") == 3
    for bad in ("llmloop.demo.users:preference_score", "python:nope.module:f", "python:llmloop.demo.users:missing"):
        with pytest.raises(ValueError, match="judge"):
            load_judge(bad)


def test_compare_versions_generates_with_the_real_engine(tiny_model_dir):
    engine = EmbeddedEngine(device="cpu")
    for name in ("a", "b"):
        engine.load(ModelVersion(name=name, kind="chat", base_model=str(tiny_model_dir), adapter_path=None,
                                 parent=None, job_id=None, dataset_versions=[], metrics={}, stage="candidate",
                                 note="", created_at=dt.datetime.now(dt.timezone.utc)))
    prompts = [[{"role": "user", "content": f"Where is my order {i}?"}] for i in range(5)]
    seen = []
    judge = ScoreJudge(len, name="length")
    params = SamplingParams(max_tokens=12, temperature=0.8, seed=7)
    report = compare_versions(engine, "a", "b", prompts, judge, params, batch_size=2,
                              on_progress=lambda d, t: seen.append((d, t)))
    # same weights, same seed: both versions write the same answers, so every pair ties
    assert report.n == 5 and report.ties == 5 and report.win_rate == 0.5
    assert all(s.answer_x == s.answer_y and s.answer_x for s in report.samples)
    assert seen[-1] == (15, 15) and (10, 15) in seen  # answers, then verdicts
    assert not math.isnan(report.ci_low)


def test_length_controlled_win_rate_removes_a_length_bias():
    import random

    from llmloop.eval.winrate import length_controlled

    rng = random.Random(0)
    samples = []
    for _ in range(300):
        # equally good versions; x is longer half the time, and the judge picks the longer answer 85% of the time
        lx, ly = rng.choice([(80, 20), (20, 80)])
        longer = "x" if lx > ly else "y"
        winner = longer if rng.random() < 0.85 else ("y" if longer == "x" else "x")
        samples.append(PairSample([], "a" * lx, "b" * ly, winner, ""))
    # x is longer 80% of the time: the raw rate rewards it, the length-controlled rate does not
    biased = [s for s in samples if len(s.answer_x) > len(s.answer_y)][:160] + \
             [s for s in samples if len(s.answer_x) < len(s.answer_y)][:40]
    raw = summarize("x", "y", "j", biased)
    lc = length_controlled(raw, bootstrap=100)
    assert raw.win_rate > 0.65
    assert abs(lc.win_rate - 0.5) < 0.08 and lc.ci_low < 0.5 < lc.ci_high and lc.length_coef > 1
    with pytest.raises(ValueError, match="two judged"):
        length_controlled(summarize("x", "y", "j", [PairSample([], "", "", "x", "")]))
