"""Bradley–Terry leaderboard (E7) from arena votes and judge battles, with bootstrap 95% CIs.

Model: P(i beats j) = σ(θ_i − θ_j). A tie (and an arena "both_bad") counts as half a win each way,
the usual convention (LMSYS Chatbot Arena does the same). θ is the maximum-likelihood estimate of
that logistic model, found with scipy's L-BFGS on the weighted log-likelihood plus a very small
ridge (1e-4 · Σθ²). Why this and not the MM algorithm: ties as half-wins are just fractional
weights in the likelihood, L-BFGS converges in a few dozen evaluations for hundreds of versions,
and the ridge keeps ratings finite when a version never lost (where the pure MLE runs off to
infinity and MM crawls towards it); the ridge moves well-connected ratings by far less than their
CI. Ratings are reported on the Elo scale: 1000 + 400·θ/ln 10, centred so the mean version is 1000
(a 400-point gap means 10:1 odds). The CI is the 2.5–97.5 percentile over bootstrap resamples
of the battles.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from llmloop.eval import EvalInputError, NoBattles

Outcome = Literal["a", "b", "tie"]
ELO_SCALE = 400 / math.log(10)


@dataclass(frozen=True)
class Battle:
    model_a: str
    model_b: str
    outcome: Outcome  # "a" = model_a won


@dataclass(frozen=True)
class Rating:
    model: str
    rating: float
    ci_low: float
    ci_high: float
    battles: int
    wins: float  # ties count half


@dataclass(frozen=True)
class Leaderboard:
    ratings: list[Rating]  # best first
    n_battles: int
    bootstrap_rounds: int
    method: str = "bradley-terry-mle (L-BFGS, ties = half wins), Elo scale, bootstrap percentile 95% CI"
    sources: dict[str, int] = field(default_factory=dict)

    def rows(self) -> list[dict[str, float | int | str]]:
        return [r.__dict__ | {"rank": i + 1} for i, r in enumerate(self.ratings)]


def battles_from_votes(voted: Iterable) -> list[Battle]:  # noqa: ANN001 - store.records.VotedBattle
    """Arena votes → battles; "both_bad" is a tie; a version against itself says nothing and is skipped."""
    out = []
    for v in voted:
        if v.version_a == v.version_b:
            continue
        outcome: Outcome = v.choice if v.choice in ("a", "b") else "tie"
        out.append(Battle(v.version_a, v.version_b, outcome))
    return out


def battles_from_report(report) -> list[Battle]:  # noqa: ANN001 - eval.winrate.WinRateReport
    """A judged comparison (x = challenger) → battles; failed samples (winner "failed") are skipped."""
    m = {"x": "a", "y": "b", "tie": "tie"}
    return [Battle(report.version_x, report.version_y, m[s.winner]) for s in report.samples if s.winner in m]


def _fit(n_models: int, ia, ib, wa, weights, ridge: float = 1e-4):  # noqa: ANN001
    """θ maximising Σ w·[wa·log σ(θa−θb) + (1−wa)·log σ(θb−θa)] − ridge·|θ|²."""
    import numpy as np
    from scipy.optimize import minimize
    from scipy.special import expit, log_expit

    def f(theta):  # noqa: ANN001
        d = theta[ia] - theta[ib]
        ll = weights * (wa * log_expit(d) + (1 - wa) * log_expit(-d))
        g_d = weights * (wa - expit(d))
        grad = np.zeros(n_models)
        np.add.at(grad, ia, g_d)
        np.add.at(grad, ib, -g_d)
        return -ll.sum() + ridge * theta @ theta, -grad + 2 * ridge * theta

    res = minimize(f, np.zeros(n_models), jac=True, method="L-BFGS-B")
    return res.x - res.x.mean()


def bradley_terry(battles: Sequence[Battle], bootstrap: int = 200, seed: int = 0) -> Leaderboard:
    """Ratings with bootstrap CIs; raises ValueError without at least one battle between two versions."""
    import numpy as np

    battles = [b for b in battles if b.model_a != b.model_b]
    if not battles:
        raise NoBattles("a leaderboard needs at least one battle between two different versions "
                         "(collect arena votes, or pass judged comparisons)")
    models = sorted({b.model_a for b in battles} | {b.model_b for b in battles})
    idx = {m: i for i, m in enumerate(models)}
    ia = np.array([idx[b.model_a] for b in battles])
    ib = np.array([idx[b.model_b] for b in battles])
    wa = np.array([{"a": 1.0, "b": 0.0, "tie": 0.5}[b.outcome] for b in battles])
    ones = np.ones(len(battles))
    try:  # vectors this small gain nothing from BLAS threads, which fight torch's for 2 cores (20× slower)
        from threadpoolctl import threadpool_limits

        limit = threadpool_limits(1)
    except ImportError:
        limit = contextlib.nullcontext()
    with limit:
        theta = _fit(len(models), ia, ib, wa, ones)
        rng = np.random.default_rng(seed)
        boots = np.empty((bootstrap, len(models)))
        for k in range(bootstrap):
            # a multinomial resample of the battles is the same as integer weights on each battle
            w = rng.multinomial(len(battles), ones / len(battles)).astype(float)
            boots[k] = _fit(len(models), ia, ib, wa, w)
    lo, hi = (np.percentile(boots, [2.5, 97.5], axis=0) if bootstrap else (theta, theta))
    counts = np.bincount(ia, minlength=len(models)) + np.bincount(ib, minlength=len(models))
    wins = np.bincount(ia, weights=wa, minlength=len(models)) + np.bincount(ib, weights=1 - wa, minlength=len(models))
    ratings = [
        Rating(m, 1000 + ELO_SCALE * theta[i], 1000 + ELO_SCALE * lo[i], 1000 + ELO_SCALE * hi[i],
               int(counts[i]), float(wins[i]))
        for i, m in enumerate(models)
    ]
    ratings.sort(key=lambda r: -r.rating)
    return Leaderboard(ratings, len(battles), bootstrap)


def comparisons_dir(db) -> Path:  # noqa: ANN001
    return db.workspace.reports_dir / "comparisons"


def save_comparison(db, report) -> Path:  # noqa: ANN001 - eval.winrate.WinRateReport
    """Keep a judged comparison in the workspace so every later leaderboard counts its battles.

    ``eval compare`` calls this for every run; the loop's gate may too. Written atomically
    (temporary file, fsync, rename), named by time and versions."""
    import datetime as dt
    import json
    import re
    from dataclasses import asdict

    from llmloop.fsutil import write_atomic

    folder = comparisons_dir(db)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", f"{report.version_x}_vs_{report.version_y}")
    path = folder / f"{stamp}_{safe}.json"
    write_atomic(path, json.dumps(asdict(report), ensure_ascii=False, default=str).encode("utf-8"))
    return path


def saved_comparisons(db) -> list:  # noqa: ANN001 - list[WinRateReport]
    """Every comparison ``save_comparison`` kept, oldest first; an unreadable file is a ValueError naming it."""
    import json

    from llmloop.eval.winrate import report_from_json

    out = []
    folder = comparisons_dir(db)
    for path in sorted(folder.glob("*.json")) if folder.exists() else []:
        try:
            out.append(report_from_json(json.loads(path.read_text(encoding="utf-8"))))
        except ValueError as e:  # not JSON, or not a report (EvalInputError)
            raise EvalInputError(f"saved comparison {path} is unreadable ({e}); move it away or fix it") from None
    return out


def leaderboard_from_store(db, reports: Sequence = (), bootstrap: int = 200, seed: int = 0,  # noqa: ANN001
                           include_saved: bool = False) -> Leaderboard:
    """Arena votes in the store plus judged comparisons (``WinRateReport``s) → one leaderboard.

    ``include_saved`` adds every comparison kept by ``save_comparison`` (all versions ever compared)."""
    from llmloop.store import feedback

    arena = battles_from_votes(feedback.voted_battles(db))
    every = [*(saved_comparisons(db) if include_saved else []), *reports]
    judged = [b for r in every for b in battles_from_report(r)]
    board = bradley_terry(arena + judged, bootstrap=bootstrap, seed=seed)
    return Leaderboard(board.ratings, board.n_battles, board.bootstrap_rounds,
                       sources={"arena": len(arena), "judge": len(judged)})
