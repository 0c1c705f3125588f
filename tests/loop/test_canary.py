"""The canary's three rollback signals, decided by eval.ab's always-valid sequential test: error rate
(also end to end in test_loop_e2e.py), share of requests over the latency bound, and thumbs-up ratio
(thumbs read from the store as the controller reads them)."""

import datetime as dt

import feedback_seed as seed

from llmloop.loop.canary import assess, quantile_bound, slower_than, window
from llmloop.loop.policy import RollbackPolicy
from llmloop.store import loop_events


def _counts(requests, errors=0.0, buckets=None):
    return {"requests": float(requests), "errors": float(errors), "buckets": buckets or {"+Inf": float(requests)}}


def _thumbs(db, version, ups, downs, start):
    for i in range(ups + downs):
        rid = f"{version}-{start + i}"
        seed.completion(db, request_id=rid, user_id=f"u{i}", version=version,
                        messages=[{"role": "user", "content": "Where is my order?"}], output="…")
        seed.thumb(db, request_id=rid, user_id=f"u{i}", rating=1 if i < ups else -1)


def test_a_lower_thumbs_up_ratio_rolls_back_once_each_arm_has_enough_thumbs(db):
    since = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
    counts = {"v1.1": _counts(100), "v1.0": _counts(100)}
    policy = RollbackPolicy(p99_latency=False)
    _thumbs(db, "v1.0", 4, 1, 0)
    _thumbs(db, "v1.1", 1, 4, 100)
    few = assess(counts, loop_events.thumbs_by_version(db, since, ("v1.1", "v1.0")), "v1.1", "v1.0", policy)
    assert not few.rollback  # 5 thumbs per arm: below the test's minimum, no claim either way
    _thumbs(db, "v1.0", 36, 4, 200)  # production 40/45 up
    _thumbs(db, "v1.1", 17, 23, 300)  # candidate 18/45 up
    thumbs = loop_events.thumbs_by_version(db, since, ("v1.1", "v1.0"))
    assert len(thumbs) == 90
    a = assess(counts, thumbs, "v1.1", "v1.0", policy)
    s = {x.name: x for x in a.signals}
    assert a.rollback and s["thumbs_up_ratio"].worse and s["thumbs_up_ratio"].p <= policy.alpha
    assert s["thumbs_up_ratio"].candidate == (27, 45) and s["thumbs_up_ratio"].production == (5, 45)  # thumbs down
    assert not s["error_rate"].worse and a.reasons[0].startswith("thumbs_up_ratio: candidate 27/45")
    # the same numbers the other way round: production is the worse arm, nothing rolls back
    assert not assess(counts, thumbs, "v1.0", "v1.1", policy).rollback
    assert not assess(counts, thumbs, "v1.1", "v1.0", RollbackPolicy(p99_latency=False, thumbs=False)).rollback


def test_more_requests_over_productions_p99_roll_back_and_the_smallest_p_is_kept():
    prod = _counts(200, buckets={"0.5": 198.0, "1.0": 200.0, "+Inf": 200.0})
    slow = _counts(200, buckets={"0.5": 100.0, "1.0": 140.0, "+Inf": 200.0})
    assert quantile_bound(prod["buckets"], 0.99) == 0.5 and slower_than(slow["buckets"], 0.5) == 100
    policy = RollbackPolicy(error_rate=False, thumbs=False)
    a = assess({"v1.1": slow, "v1.0": prod}, [], "v1.1", "v1.0", policy)
    (lat,) = a.signals
    assert a.rollback and lat.name == "p99_latency" and lat.candidate == (100, 200) and lat.production == (2, 200)
    assert "latency bound 0.5 s (production p99)" in a.notes
    # a fixed bound from the policy: 1 s — the candidate's 60 slow requests against production's none
    fixed = assess({"v1.1": slow, "v1.0": prod}, [], "v1.1", "v1.0", RollbackPolicy(error_rate=False, thumbs=False,
                                                                                     latency_seconds=1.0))
    assert fixed.signals[0].candidate == (60, 200) and fixed.rollback

    # equal latency: no evidence now, but an earlier look's small p (kept by the controller) still counts
    same = {"v1.1": _counts(200, buckets=dict(prod["buckets"])), "v1.0": prod}
    assert not assess(same, [], "v1.1", "v1.0", policy).rollback
    worse_now = {"v1.1": _counts(200, buckets={"0.5": 196.0, "1.0": 200.0, "+Inf": 200.0}), "v1.0": prod}
    assert not assess(worse_now, [], "v1.1", "v1.0", policy).rollback
    assert assess(worse_now, [], "v1.1", "v1.0", policy, previous_p={"p99_latency": 0.01}).rollback


def test_the_window_sums_gateways_and_counts_a_restarted_gateway_from_zero():
    base = {"g1": {"v1.1": _counts(50, 1)}, "g2": {"v1.1": _counts(40, 0)}}
    now = {"g1": {"v1.1": _counts(80, 4)}, "g2": {"v1.1": _counts(10, 2)}}  # g2 restarted (40 → 10)
    w = window(now, base)
    assert w["v1.1"]["requests"] == 30 + 10 and w["v1.1"]["errors"] == 3 + 2
