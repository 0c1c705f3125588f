"""Canary health: the candidate's errors, latency and thumbs against production's, with sequential tests.

The evidence comes from where it lives:
* requests, 5xx errors and latency per version from the gateways' Prometheus ``/metrics``
  (``llmloop_requests_total`` and ``llmloop_request_latency_seconds`` by ``version``), scraped and
  summed over every gateway; each scrape is compared with a baseline taken when the rollout began
  (a gateway whose counters went down restarted, and counts from zero);
* thumbs from the store (thumbs on answers of either version since the rollout began).

Each signal is a two-proportion comparison of the candidate with production over the same window,
decided by the always-valid mixture SPRT of ``llmloop.eval.ab`` (``msprt_log_lambda``): the p-value
may be read at every poll without inflating false rollbacks. A signal rolls back only when it is
significant *and* the candidate is the worse arm. Latency becomes a proportion too: the share of
requests slower than a bound (the policy's, or production's p99 over the window).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from llmloop.errors import Unavailable
from llmloop.eval.ab import msprt_log_lambda
from llmloop.loop.policy import RollbackPolicy

Snapshot = dict[str, dict[str, Any]]  # gateway url → {version: {"requests", "errors", "buckets": {le: n}}}


class ScrapeError(Unavailable, RuntimeError):
    pass


def scrape(urls: list[str], endpoint: str, timeout: float = 5.0) -> Snapshot:
    """Cumulative request, 5xx and latency-bucket counts per version at each gateway."""
    out: Snapshot = {}
    for url in urls:
        try:
            r = httpx.get(url.rstrip("/") + "/metrics", timeout=timeout)
            r.raise_for_status()
        except httpx.HTTPError as e:
            raise ScrapeError(f"cannot read {url}/metrics ({e}); is the gateway up? (rollout.gateways)") from None
        per: dict[str, Any] = {}
        for fam in text_string_to_metric_families(r.text):
            for s in fam.samples:
                labels = s.labels
                if labels.get("endpoint") != endpoint:
                    continue
                v = per.setdefault(labels.get("version", "none"), {"requests": 0.0, "errors": 0.0, "buckets": {}})
                if s.name == "llmloop_requests_total":
                    v["requests"] += s.value
                    if labels.get("status", "").startswith("5"):
                        v["errors"] += s.value
                elif s.name == "llmloop_request_latency_seconds_bucket":
                    v["buckets"][labels["le"]] = v["buckets"].get(labels["le"], 0.0) + s.value
        out[url] = per
    return out


def _sub(now: dict[str, Any], base: dict[str, Any] | None) -> dict[str, Any]:
    if not base or now["requests"] < base["requests"]:  # new, or the gateway restarted
        return now
    return {"requests": now["requests"] - base["requests"], "errors": now["errors"] - base["errors"],
            "buckets": {le: n - base["buckets"].get(le, 0.0) for le, n in now["buckets"].items()}}


def window(now: Snapshot, base: Snapshot) -> dict[str, dict[str, Any]]:
    """Counts per version since ``base``, summed over gateways."""
    total: dict[str, dict[str, Any]] = {}
    for url, per in now.items():
        for version, counts in per.items():
            d = _sub(counts, base.get(url, {}).get(version))
            t = total.setdefault(version, {"requests": 0.0, "errors": 0.0, "buckets": {}})
            t["requests"] += d["requests"]
            t["errors"] += d["errors"]
            for le, n in d["buckets"].items():
                t["buckets"][le] = t["buckets"].get(le, 0.0) + n
    return total


def _bounds(buckets: dict[str, float]) -> list[tuple[float, float]]:
    return sorted((math.inf if le == "+Inf" else float(le), n) for le, n in buckets.items())


def quantile_bound(buckets: dict[str, float], q: float) -> float | None:
    """The smallest bucket bound under which at least ``q`` of the requests finished."""
    b = _bounds(buckets)
    if not b or b[-1][1] <= 0:
        return None
    total = b[-1][1]
    return next(le for le, n in b if n >= q * total)


def slower_than(buckets: dict[str, float], bound: float) -> float:
    """Requests slower than the first bucket bound ≥ ``bound``."""
    b = _bounds(buckets)
    if not b:
        return 0.0
    under = next((n for le, n in b if le >= bound), b[-1][1])
    return b[-1][1] - under


@dataclass(frozen=True)
class Signal:
    name: str
    candidate: tuple[float, float]  # (events, n)
    production: tuple[float, float]
    p: float
    worse: bool  # the candidate is the worse arm
    significant: bool

    def as_dict(self) -> dict[str, Any]:
        rate = lambda k, n: round(k / n, 4) if n else None  # noqa: E731
        return {"candidate": {"events": self.candidate[0], "n": self.candidate[1], "rate": rate(*self.candidate)},
                "production": {"events": self.production[0], "n": self.production[1], "rate": rate(*self.production)},
                "p_always_valid": round(self.p, 5), "candidate_worse": self.worse, "rollback": self.significant and self.worse}


@dataclass(frozen=True)
class Assessment:
    candidate_requests: float
    production_requests: float
    signals: list[Signal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def rollback(self) -> bool:
        return any(s.significant and s.worse for s in self.signals)

    @property
    def reasons(self) -> list[str]:
        return [f"{s.name}: candidate {s.candidate[0]:g}/{s.candidate[1]:g} vs production "
                f"{s.production[0]:g}/{s.production[1]:g}, always-valid p {s.p:.4f}" for s in self.signals
                if s.significant and s.worse]

    def evidence(self) -> dict[str, Any]:
        return {"candidate_requests": self.candidate_requests, "production_requests": self.production_requests,
                "signals": {s.name: s.as_dict() for s in self.signals}, "notes": self.notes}


def _test(name: str, bad_c: float, n_c: float, bad_p: float, n_p: float, policy: RollbackPolicy,
          higher_is_worse: bool = True) -> Signal:
    """Two proportions (events/n); ``higher_is_worse`` says which direction hurts users."""
    log_lam = msprt_log_lambda(int(round(n_c - bad_c)), int(round(n_c)), int(round(n_p - bad_p)), int(round(n_p)),
                               tau=policy.tau) if n_c and n_p else 0.0
    p = min(1.0, math.exp(-max(log_lam, 0.0)))
    rc, rp = (bad_c / n_c if n_c else 0.0), (bad_p / n_p if n_p else 0.0)
    worse = rc > rp if higher_is_worse else rc < rp
    return Signal(name, (bad_c, n_c), (bad_p, n_p), p, worse, p <= policy.alpha)


def assess(counts: dict[str, dict[str, Any]], thumbs: list[tuple[str, bool]], candidate: str, production: str,
           policy: RollbackPolicy, previous_p: dict[str, float] | None = None) -> Assessment:
    """Signals of ``candidate`` against ``production`` over one window.

    ``previous_p`` carries each signal's smallest p so far: the always-valid p is the minimum over
    every look (``eval.ab.always_valid_p``), so evidence seen at one poll is not forgotten at the next.
    """
    empty = {"requests": 0.0, "errors": 0.0, "buckets": {}}
    c, pr = counts.get(candidate, empty), counts.get(production, empty)
    signals, notes = [], []
    if policy.error_rate:
        signals.append(_test("error_rate", c["errors"], c["requests"], pr["errors"], pr["requests"], policy))
    if policy.p99_latency:
        bound = policy.latency_seconds or quantile_bound(pr["buckets"], 0.99)
        if bound is None:
            notes.append("p99 latency: no production requests in the window yet")
        else:
            notes.append(f"latency bound {bound:g} s ({'policy' if policy.latency_seconds else 'production p99'})")
            signals.append(_test("p99_latency", slower_than(c["buckets"], bound), c["requests"],
                                 slower_than(pr["buckets"], bound), pr["requests"], policy))
    if policy.thumbs:
        up_c = sum(1 for v, up in thumbs if v == candidate and up)
        n_c = sum(1 for v, _ in thumbs if v == candidate)
        up_p = sum(1 for v, up in thumbs if v == production and up)
        n_p = sum(1 for v, _ in thumbs if v == production)
        signals.append(_test("thumbs_up_ratio", n_c - up_c, n_c, n_p - up_p, n_p, policy))  # events = thumbs down
    if previous_p:
        signals = [Signal(s.name, s.candidate, s.production, min(s.p, previous_p.get(s.name, 1.0)) if s.worse else s.p,
                          s.worse, (min(s.p, previous_p.get(s.name, 1.0)) if s.worse else s.p) <= policy.alpha)
                   for s in signals]
    return Assessment(c["requests"], pr["requests"], signals, notes)
