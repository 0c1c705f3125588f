"""Live A/B statistics (E8): thumbs-up ratio and arena vote share per version, with sequential tests.

A dashboard is looked at every hour; a fixed-n test checked at every look rejects a true null far
more often than its alpha. Both tests here give *always-valid* p-values: the chance that p ever
drops below alpha, at any look, under the null is at most alpha (Ville's inequality on a test
martingale). So "significant" may be read off whenever anyone looks.

* Vote share (candidate vs incumbent, ties and both-bad left out): H0 share = ½. The e-process is
  the Beta(1,1)-mixture likelihood ratio Λ_n = ∫ p^k (1−p)^(n−k) dp / ½^n = B(k+1, n−k+1)·2^n,
  an exact martingale under H0; p_n = min(1, 1 / max_{m≤n} Λ_m).
* Thumbs-up ratio of two versions (independent streams, unequal sizes): the mixture SPRT of
  Johari, Pekelis & Walsh (2017, "Always valid inference", the test behind Optimizely's stats
  engine) on the difference of proportions, normal mixture N(0, τ²) over the effect:
  Λ_n = sqrt(V/(V+τ²)) · exp(τ² Δ² / (2 V (V+τ²))), V = p̂a(1−p̂a)/na + p̂b(1−p̂b)/nb. It is valid
  asymptotically (plug-in variance; nothing is claimed before 10 thumbs per version); tests/eval simulate its false-positive rate under many looks.
  τ = 0.1 puts the mixture's mass on differences of a few to ~20 points, where product changes live.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from llmloop.eval import EvalInputError


def vote_share_evalues(wins: Sequence[int]) -> list[float]:
    """Λ after each decisive vote (1 = candidate won, 0 = lost), in log space to stay finite."""
    out, k = [], 0
    for n, w in enumerate(wins, start=1):
        k += int(w)
        log_lam = math.lgamma(k + 1) + math.lgamma(n - k + 1) - math.lgamma(n + 2) + n * math.log(2)
        out.append(log_lam)
    return out  # log Λ


def always_valid_p(log_evalues: Sequence[float]) -> float:
    """p = min(1, 1 / max Λ) over every look so far."""
    if not log_evalues:
        return 1.0
    return min(1.0, math.exp(-max(max(log_evalues), 0.0)))


MIN_PER_ARM = 10


def msprt_log_lambda(up_a: int, n_a: int, up_b: int, n_b: int, tau: float = 0.1) -> float:
    """log Λ of the normal-mixture SPRT for H0: ratio_a = ratio_b at one look.

    0 (no evidence) until each version has ``MIN_PER_ARM`` thumbs: the plug-in variance of 3 thumbs
    is noise. The variance uses add-½ smoothed ratios so an all-up start does not divide by zero.
    """
    if n_a < MIN_PER_ARM or n_b < MIN_PER_ARM:
        return 0.0
    pa, pb = up_a / n_a, up_b / n_b
    sa, sb = (up_a + 0.5) / (n_a + 1), (up_b + 0.5) / (n_b + 1)
    v = sa * (1 - sa) / n_a + sb * (1 - sb) / n_b
    t2 = tau * tau
    return 0.5 * math.log(v / (v + t2)) + t2 * (pa - pb) ** 2 / (2 * v * (v + t2))


def thumbs_sequence_p(events: Sequence[tuple[str, int]], a: str, b: str, tau: float = 0.1) -> float:
    """Always-valid p for equal thumbs-up ratios of ``a`` and ``b`` over time-ordered (version, up) events."""
    up = {a: 0, b: 0}
    n = {a: 0, b: 0}
    logs = []
    for version, is_up in events:
        if version not in n:
            continue
        n[version] += 1
        up[version] += int(is_up)
        logs.append(msprt_log_lambda(up[a], n[a], up[b], n[b], tau))
    return always_valid_p(logs)


@dataclass(frozen=True)
class VersionStats:
    version: str
    thumbs_up: int
    thumbs_down: int
    up_ratio: float | None
    votes_won: float  # ties count half
    votes: int  # battles this version was in (against a different version)
    vote_share: float | None


@dataclass(frozen=True)
class ABReport:
    candidate: str
    incumbent: str
    versions: list[VersionStats]
    alpha: float
    thumbs_p: float  # always-valid p, H0: equal thumbs-up ratios
    votes_p: float  # always-valid p, H0: head-to-head vote share ½
    head_to_head: dict[str, int] = field(default_factory=dict)  # candidate / incumbent / tie counts
    method: str = "thumbs: normal-mixture SPRT (Johari et al. 2017, tau 0.1); votes: Beta(1,1)-mixture SPRT"

    @property
    def thumbs_significant(self) -> bool:
        return self.thumbs_p <= self.alpha

    @property
    def votes_significant(self) -> bool:
        return self.votes_p <= self.alpha


def ab_report(db, candidate: str, incumbent: str, alpha: float = 0.05, tau: float = 0.1) -> ABReport:  # noqa: ANN001
    """Thumbs and votes per version from the store, tests of ``candidate`` against ``incumbent``."""
    from llmloop.store import feedback

    if candidate == incumbent:
        raise EvalInputError(f"an A/B test needs two different versions, got {candidate!r} twice")
    if not 0 < alpha < 1:
        raise EvalInputError(f"alpha must be in (0, 1), got {alpha}")
    version_of: dict[str, str] = {}
    events = []
    for t in feedback.list_thumbs(db):  # ordered by id = time
        if t.request_id not in version_of:
            version_of[t.request_id] = feedback.get_completion(db, t.request_id).version
        events.append((version_of[t.request_id], t.rating == 1))
    ups: dict[str, int] = defaultdict(int)
    downs: dict[str, int] = defaultdict(int)
    for v, is_up in events:
        (ups if is_up else downs)[v] += 1
    won: dict[str, float] = defaultdict(float)
    seen: dict[str, int] = defaultdict(int)
    h2h = {"candidate": 0, "incumbent": 0, "tie": 0}
    decisive = []
    for vb in feedback.voted_battles(db):
        if vb.version_a == vb.version_b:
            continue
        seen[vb.version_a] += 1
        seen[vb.version_b] += 1
        if vb.choice in ("a", "b"):
            won[vb.version_a if vb.choice == "a" else vb.version_b] += 1
        else:
            won[vb.version_a] += 0.5
            won[vb.version_b] += 0.5
        if {vb.version_a, vb.version_b} == {candidate, incumbent}:
            if vb.choice not in ("a", "b"):
                h2h["tie"] += 1
                continue
            winner = vb.version_a if vb.choice == "a" else vb.version_b
            h2h["candidate" if winner == candidate else "incumbent"] += 1
            decisive.append(int(winner == candidate))
    names = sorted(set(ups) | set(downs) | set(seen) | {candidate, incumbent})
    stats = [
        VersionStats(v, ups[v], downs[v], ups[v] / (ups[v] + downs[v]) if ups[v] + downs[v] else None,
                     won[v], seen[v], won[v] / seen[v] if seen[v] else None)
        for v in names
    ]
    return ABReport(candidate, incumbent, stats, alpha,
                    thumbs_sequence_p(events, candidate, incumbent, tau),
                    always_valid_p(vote_share_evalues(decisive)), h2h)
