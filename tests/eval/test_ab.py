import math

import numpy as np
import pytest

from llmloop.eval.ab import ab_report, always_valid_p, thumbs_sequence_p, vote_share_evalues

N, REPS, ALPHA = 600, 300, 0.05


def _thumbs(rng, pa, pb):
    arm = rng.integers(0, 2, N)
    up = rng.random(N) < np.where(arm == 1, pa, pb)
    return [("a" if v else "b", bool(u)) for v, u in zip(arm, up)]


def _naive_peeking_rejects(events):
    """A fixed-n two-proportion z-test looked at after every thumb: what the sequential test replaces."""
    up, n = {"a": 0, "b": 0}, {"a": 0, "b": 0}
    for v, u in events:
        n[v] += 1
        up[v] += u
        if min(n.values()) >= 10:
            p = (up["a"] + up["b"]) / (n["a"] + n["b"])
            se = math.sqrt(p * (1 - p) * (1 / n["a"] + 1 / n["b"])) or 1e-9
            if abs(up["a"] / n["a"] - up["b"] / n["b"]) / se > 1.96:
                return True
    return False


def test_false_positive_rate_stays_near_alpha_under_continuous_peeking():
    rng = np.random.default_rng(1)
    thumbs = [_thumbs(rng, 0.6, 0.6) for _ in range(REPS)]
    seq = np.mean([thumbs_sequence_p(e, "a", "b") <= ALPHA for e in thumbs])
    naive = np.mean([_naive_peeking_rejects(e) for e in thumbs])
    votes = np.mean([always_valid_p(vote_share_evalues(rng.integers(0, 2, N))) <= ALPHA for _ in range(REPS)])
    # binomial sd of a 5% rate over 300 runs is 1.3 points: 0.08 is alpha plus two sd
    assert seq <= 0.08 and votes <= 0.08
    assert naive > 0.2  # peeking at a fixed-n test: the error the sequential test exists to prevent


def test_detects_a_real_difference():
    rng = np.random.default_rng(2)
    assert np.mean([thumbs_sequence_p(_thumbs(rng, 0.75, 0.55), "a", "b") <= ALPHA for _ in range(50)]) > 0.9
    assert np.mean([always_valid_p(vote_share_evalues(rng.random(N) < 0.62)) <= ALPHA for _ in range(50)]) > 0.9
    # the exact mixture: 10 wins in 10 votes gives Λ = 2^10 / 11
    assert math.exp(vote_share_evalues([1] * 10)[-1]) == pytest.approx(2 ** 10 / 11)


def test_report_from_the_store(db):
    import feedback_seed as seed

    msgs = [{"role": "user", "content": "hi"}]
    for i in range(40):
        seed.battle(db, battle_id=f"b{i}", user_id=f"u{i}", messages=msgs,
                    answers=[(f"a{i}", "v1.1", "good"), (f"b{i}", "v1.0", "meh")])
        seed.vote(db, battle_id=f"b{i}", user_id=f"u{i}", choice="a" if i % 10 else "tie")
        seed.thumb(db, request_id=f"a{i}", user_id=f"u{i}", rating=1)
        seed.thumb(db, request_id=f"b{i}", user_id=f"u{i}", rating=1 if i % 3 == 0 else -1)
    r = ab_report(db, "v1.1", "v1.0")
    by = {s.version: s for s in r.versions}
    assert (by["v1.1"].thumbs_up, by["v1.1"].up_ratio) == (40, 1.0)
    assert by["v1.0"].thumbs_up == 14 and by["v1.0"].votes == 40
    assert r.head_to_head == {"candidate": 36, "incumbent": 0, "tie": 4}
    assert by["v1.1"].vote_share == pytest.approx((36 + 2) / 40)
    assert r.thumbs_significant and r.votes_significant and r.votes_p < 1e-6
    with pytest.raises(ValueError, match="two different"):
        ab_report(db, "v1.0", "v1.0")
