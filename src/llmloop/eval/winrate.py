"""Pairwise win rate of one model version against another, with a 95% confidence interval.

Both versions answer the same prompts (never seen in training, the caller's responsibility); a judge
compares each pair. Ties count half a win. A sample whose judgement failed (winner "failed", e.g.
the judge endpoint timed out) is kept in the report with its reason but counts in neither n nor the
rate; ``failed`` says how many. The interval is Wilson's score interval on the win share,
which behaves at small n and near 0 or 1 where the normal approximation does not.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmloop.eval import EvalInputError
from llmloop.eval.judges import PairwiseJudge, Verdict
from llmloop.inference.base import Engine, SamplingParams


@dataclass(frozen=True)
class PairSample:
    prompt: list[dict[str, Any]]
    answer_x: str
    answer_y: str
    winner: str
    reason: str


@dataclass(frozen=True)
class WinRateReport:
    version_x: str
    version_y: str
    judge: str
    n: int
    wins: int
    losses: int
    ties: int
    win_rate: float
    ci_low: float
    ci_high: float
    method: str = "wilson-95"
    failed: int = 0
    samples: list[PairSample] = field(default_factory=list, repr=False)

    def summary(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "samples"}


def wilson_interval(successes: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    if n <= 0:
        raise EvalInputError("a confidence interval needs at least one comparison")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def summarize(version_x: str, version_y: str, judge: str, samples: list[PairSample]) -> WinRateReport:
    wins = sum(s.winner == "x" for s in samples)
    losses = sum(s.winner == "y" for s in samples)
    failed = sum(s.winner == "failed" for s in samples)
    n = len(samples) - failed
    ties = n - wins - losses
    if n == 0:  # nothing judged: no evidence either way, and a gate reading ci_low must not pass
        return WinRateReport(version_x, version_y, judge, 0, 0, 0, 0, float("nan"), 0.0, 1.0,
                             failed=failed, samples=samples)
    rate = (wins + 0.5 * ties) / n
    low, high = wilson_interval(wins + 0.5 * ties, n)
    return WinRateReport(version_x, version_y, judge, n, wins, losses, ties, rate, low, high,
                         failed=failed, samples=samples)


def compare_versions(
    engine: Engine,
    version_x: str,
    version_y: str,
    prompts: list[list[dict[str, Any]]],
    judge: PairwiseJudge,
    params: SamplingParams | None = None,
    batch_size: int = 32,
    on_progress: Callable[[int, int], None] | None = None,
    checkpoint: str | Path | None = None,
) -> WinRateReport:
    """Generate both versions' answers to ``prompts`` and judge each pair (x = the challenger).

    ``on_progress(done, total)``: total is 3 per prompt (two answers, one verdict).

    Generation is ``eval.report.run_eval``'s (batched; a batch that raises is retried row by row; a
    row that still fails, or an endpoint's failed request, makes its pair "failed", never an
    exception). With ``checkpoint`` (a JSONL path) answers are appended to it and verdicts to
    ``<stem>.verdicts.jsonl`` beside it as they come; a rerun with the same path reuses both and
    only generates/judges what is missing (failed ones are tried again)."""
    from llmloop.eval.evalset import EvalRow
    from llmloop.eval.report import run_eval

    if not prompts:
        raise EvalInputError("compare_versions needs at least one prompt")
    params = params or SamplingParams(max_tokens=96, temperature=0.7, seed=1234)
    ckpt = Path(checkpoint) if checkpoint else None
    n = len(prompts)
    total = 3 * n  # two answers and one verdict per prompt
    gen = run_eval(engine, [version_x, version_y], [EvalRow(p) for p in prompts], params, batch_size=batch_size,
                   on_progress=(lambda d, _t: on_progress(d, total)) if on_progress else None, checkpoint=ckpt,
                   measure_memory=False)
    sx, sy = gen.samples[:n], gen.samples[n:]  # by position: a version compared with itself stays two sides
    bad = {i: f"{version_x}: {a.error}" if a.error else f"{version_y}: {b.error}"
           for i, (a, b) in enumerate(zip(sx, sy)) if a.error or b.error}
    verdict_file = ckpt.with_name(ckpt.stem + ".verdicts.jsonl") if ckpt else None
    verdicts: dict[int, Verdict] = _load_verdicts(verdict_file)
    todo = [i for i in range(n) if i not in bad and i not in verdicts]
    judged = n - len(todo)
    if on_progress:
        on_progress(2 * n + judged, total)

    def record(i: int, v: Verdict) -> None:
        nonlocal judged
        verdicts[i] = v
        judged += 1
        if on_progress:
            on_progress(2 * n + judged, total)
        if verdict_file is not None:
            with verdict_file.open("a", encoding="utf-8") as f:
                f.write(json.dumps({"index": i, "winner": v.winner, "reason": v.reason}, ensure_ascii=False) + "\n")
                f.flush()
                os.fsync(f.fileno())

    # an endpoint judge judges concurrently; a local judge (a function, a reward model) one pair at a time
    concurrency = getattr(getattr(judge, "endpoint", None), "concurrency", 1)
    if concurrency > 1 and len(todo) > 1:
        lock = threading.Lock()
        with ThreadPoolExecutor(concurrency) as pool:
            futures = {pool.submit(judge.judge, prompts[i], sx[i].output, sy[i].output): i for i in todo}
            for fut in as_completed(futures):
                with lock:
                    record(futures[fut], fut.result())
    else:
        for i in todo:
            record(i, judge.judge(prompts[i], sx[i].output, sy[i].output))
    samples = []
    for i in range(n):
        v = Verdict("failed", f"generation failed ({bad[i]})") if i in bad else verdicts[i]
        samples.append(PairSample(prompts[i], sx[i].output, sy[i].output, v.winner, v.reason))
    return summarize(version_x, version_y, judge.name, samples)


def _load_verdicts(path: Path | None) -> dict[int, Verdict]:
    """Verdicts kept by an earlier, interrupted comparison; failed ones are judged again."""
    out: dict[int, Verdict] = {}
    if path is None or not path.exists():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            raw = json.loads(line)
            v = Verdict(raw["winner"], raw.get("reason", ""))
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # a line cut short by a crash
        if v.winner in ("x", "y", "tie"):
            out[int(raw["index"])] = v
    return out


@dataclass(frozen=True)
class LengthControlled:
    win_rate: float
    ci_low: float
    ci_high: float
    length_coef: float  # > 0: the judge prefers the longer answer
    n: int
    method: str = "logistic GLM on tanh(std. length difference), ties half; LC rate = σ(intercept); bootstrap 95% CI"


def length_controlled(report: WinRateReport, bootstrap: int = 200, seed: int = 0) -> LengthControlled:
    """Win rate with the judge's length preference regressed out (AlpacaEval 2's idea, no per-prompt terms).

    Fits P(x wins) = σ(a + b·tanh(Δ/sd(Δ))), Δ = len(x) − len(y) in characters, by maximum likelihood
    (ties are half a win) and reports σ(a): the win rate the judge would give if both answers were
    the same length. The CI is a bootstrap over samples.
    """
    import numpy as np
    from scipy.optimize import minimize
    from scipy.special import log_expit

    judged = [s for s in report.samples if s.winner in ("x", "y", "tie")]
    if len(judged) < 2:
        raise EvalInputError(f"a length-controlled win rate needs at least two judged samples, got {len(judged)}")
    d = np.array([len(s.answer_x) - len(s.answer_y) for s in judged], dtype=float)
    sd = d.std() or 1.0
    z = np.tanh(d / sd)
    w = np.array([{"x": 1.0, "y": 0.0, "tie": 0.5}[s.winner] for s in judged])

    def fit(weights):  # noqa: ANN001, ANN202
        def nll(p):  # noqa: ANN001, ANN202
            t = p[0] + p[1] * z
            return -(weights * (w * log_expit(t) + (1 - w) * log_expit(-t))).sum() + 1e-3 * (p @ p)
        return minimize(nll, np.zeros(2), method="L-BFGS-B").x

    a, b = fit(np.ones(len(judged)))
    rng = np.random.default_rng(seed)
    boots = [fit(rng.multinomial(len(judged), np.full(len(judged), 1 / len(judged))).astype(float))[0]
             for _ in range(bootstrap)]
    sig = lambda v: float(1 / (1 + np.exp(-v)))  # noqa: E731
    lo, hi = (np.percentile(boots, [2.5, 97.5]) if bootstrap else (a, a))
    return LengthControlled(sig(a), sig(lo), sig(hi), float(b), len(judged))


def report_from_json(raw: dict[str, Any]) -> WinRateReport:
    """A report as ``dataclasses.asdict`` wrote it (``eval compare --out``) → ``WinRateReport``.

    Keys that are not report fields (a failure summary, a length-controlled block …) are ignored; a
    shape that is not such a report is an ``EvalInputError`` naming the first missing field."""
    import dataclasses

    def required(cls: type) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]

    if not isinstance(raw, dict):
        raise EvalInputError(f"expected a JSON object, got {type(raw).__name__}")
    missing = [k for k in required(WinRateReport) if k not in raw and k != "samples"]
    samples = raw.get("samples", [])
    if not isinstance(samples, list) or not all(isinstance(s, dict) for s in samples):
        raise EvalInputError("samples: expected a list of objects")
    missing += [f"samples[{i}].{k}" for i, s in enumerate(samples) for k in PairSample.__dataclass_fields__ if k not in s][:1]
    if missing:
        raise EvalInputError(f"no {missing[0]!r} field")
    names = set(WinRateReport.__dataclass_fields__)
    body = {k: v for k, v in raw.items() if k in names}
    body["samples"] = [PairSample(**{k: s[k] for k in PairSample.__dataclass_fields__}) for s in samples]
    return WinRateReport(**body)
