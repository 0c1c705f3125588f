import math

import numpy as np
import pytest

from llmloop.eval.rm_quality import reward_model_quality


def test_pairwise_accuracy_counts_ties_half():
    q = reward_model_quality([2.0, 1.0, 0.5, 3.0], [1.0, 1.0, 0.7, -1.0])
    assert q.pairwise_accuracy == pytest.approx((1 + 0.5 + 0 + 1) / 4)
    assert q.mean_margin == pytest.approx((1 + 0 - 0.2 + 4) / 4)
    assert q.correlated_against == "chosen/rejected labels"


def test_correlations_against_gold_scores():
    gold = [1, 2, 3, 4, 5]
    perfect = reward_model_quality([1], [0], gold_scores=gold, predicted_scores=[-3, 0.1, 0.2, 7, 9])
    assert perfect.kendall_tau == pytest.approx(1.0) and perfect.spearman_rho == pytest.approx(1.0)
    reversed_ = reward_model_quality([1], [0], gold_scores=gold, predicted_scores=[5, 4, 3, 2, 1])
    assert reversed_.kendall_tau == pytest.approx(-1.0) and reversed_.spearman_rho == pytest.approx(-1.0)
    # one adjacent swap in 5: τ = (9 − 1)/10 = 0.8, ρ = 1 − 6·2/(5·24) = 0.9
    one_swap = reward_model_quality([1], [0], gold_scores=gold, predicted_scores=[1, 3, 2, 4, 5])
    assert one_swap.kendall_tau == pytest.approx(0.8) and one_swap.spearman_rho == pytest.approx(0.9)


def test_a_noisy_reward_model_beats_a_random_one():
    rng = np.random.default_rng(0)
    quality = rng.normal(size=(400, 2))
    chosen, rejected = quality.max(1), quality.min(1)
    good = reward_model_quality(chosen + rng.normal(0, 0.3, 400), rejected + rng.normal(0, 0.3, 400))
    rand = reward_model_quality(rng.normal(size=400), rng.normal(size=400))
    assert good.pairwise_accuracy > 0.8 and abs(rand.pairwise_accuracy - 0.5) < 0.08
    assert good.kendall_tau > 0.3 > abs(rand.kendall_tau)
    assert good.spearman_p < 1e-6 and math.isfinite(rand.spearman_p)


def test_user_errors():
    with pytest.raises(ValueError, match="one of each"):
        reward_model_quality([1, 2], [1])
    with pytest.raises(ValueError, match="together"):
        reward_model_quality([1], [0], gold_scores=[1, 2])
