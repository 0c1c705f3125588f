"""``/api/v1/monitor``: request rate, error rate, latency and thumbs-up ratio per version over time,
read from the very counters ``/metrics`` exposes (the gateway's ``ServeMetrics`` registry).

Prometheus counters are cumulative; a time series needs them sampled. A Prometheus server does that
in production (and the Grafana dashboard reads it); for the UI, each gateway keeps its own short
history: a daemon thread snapshots the registry every ``LLMLOOP_MONITOR_SECONDS`` (default 5) into a
ring buffer of ``MAX_SAMPLES``, and a series point is the difference of two snapshots. Counts are
this process's since it started, like ``/metrics``. The thread holds the metrics weakly and ends
with the app.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections import deque
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from llmloop.api.common import Annotator, gateway
from llmloop.serve.auth import Principal

router = APIRouter(prefix="/api/v1/monitor", tags=["monitor"])
MAX_SAMPLES = 720
Snapshot = dict[str, dict[str, float]]  # version → requests, errors, latency_sum, latency_count, up, down


def snapshot(metrics: Any) -> Snapshot:
    """Cumulative counts per version from the gateway's ``ServeMetrics`` — the very metric objects
    ``/metrics`` renders. Only these four are read: other collectors registered on the same registry
    (the loop's, which query the store) are not this view's business and not worth a query every
    few seconds."""
    out: Snapshot = {}

    def slot(version: str) -> dict[str, float]:
        return out.setdefault(version, dict(requests=0.0, errors=0.0, latency_sum=0.0, latency_count=0.0, up=0.0, down=0.0))

    families = [f for m in (metrics.requests, metrics.errors, metrics.latency, metrics.feedback) for f in m.collect()]
    for family in families:
        for s in family.samples:
            version = s.labels.get("version")
            if not version or version == "none":
                continue
            if s.name == "llmloop_requests_total":
                slot(version)["requests"] += s.value
            elif s.name == "llmloop_request_errors_total":
                slot(version)["errors"] += s.value
            elif s.name == "llmloop_request_latency_seconds_sum":
                slot(version)["latency_sum"] += s.value
            elif s.name == "llmloop_request_latency_seconds_count":
                slot(version)["latency_count"] += s.value
            elif s.name == "llmloop_feedback_events_total" and s.labels.get("type") in ("thumbs_up", "thumbs_down"):
                slot(version)["up" if s.labels["type"] == "thumbs_up" else "down"] += s.value
    return out


class Sampler:
    def __init__(self, metrics: Any, interval: float) -> None:
        self.interval = interval
        self.samples: deque[tuple[float, Snapshot]] = deque(maxlen=MAX_SAMPLES)
        self._metrics = weakref.ref(metrics)
        self._lock = threading.Lock()
        self.sample()
        threading.Thread(target=self._loop, name="llmloop-monitor", daemon=True).start()

    def sample(self) -> bool:
        metrics = self._metrics()
        if metrics is None:
            return False
        snap = snapshot(metrics)
        with self._lock:
            self.samples.append((time.time(), snap))
        return True

    def _loop(self) -> None:
        while True:
            time.sleep(self.interval)
            if not self.sample():  # the app is gone
                return

    def series(self) -> dict[str, list[dict[str, Any]]]:
        """Per version, one point per interval: rates over it and the cumulative thumbs-up ratio."""
        self.sample()  # the latest point is always now
        with self._lock:
            samples = list(self.samples)
        out: dict[str, list[dict[str, Any]]] = {}
        for (t0, a), (t1, b) in zip(samples, samples[1:]):
            dt = max(t1 - t0, 1e-9)
            for version, now in b.items():
                before = a.get(version, dict.fromkeys(now, 0.0))
                d = {k: now[k] - before.get(k, 0.0) for k in now}
                if d["requests"] < 0:  # counters never go down; a reset would — skip the point
                    continue
                thumbs = now["up"] + now["down"]
                out.setdefault(version, []).append({
                    "time": round(t1, 3),
                    "requests_per_s": round(d["requests"] / dt, 4),
                    "errors_per_s": round(d["errors"] / dt, 4),
                    "error_ratio": round(d["errors"] / d["requests"], 4) if d["requests"] else None,
                    "mean_latency_s": round(d["latency_sum"] / d["latency_count"], 4) if d["latency_count"] else None,
                    "thumbs_up_ratio": round(now["up"] / thumbs, 4) if thumbs else None,
                    "requests_total": now["requests"],
                    "thumbs_total": thumbs,
                })
        return out


def install(app: Any) -> Sampler:
    interval = float(os.environ.get("LLMLOOP_MONITOR_SECONDS", "5"))
    sampler = Sampler(app.state.gateway.metrics, interval)
    app.state.admin_monitor = sampler
    return sampler


class MonitorView(BaseModel):
    interval_s: float = Field(description="Seconds between snapshots")
    versions: dict[str, list[dict[str, Any]]] = Field(
        description="Per version: time, requests_per_s, errors_per_s, error_ratio, mean_latency_s, thumbs_up_ratio, "
                    "requests_total, thumbs_total")


@router.get("", response_model=MonitorView)
async def monitor(request: Request, principal: Principal = Annotator) -> MonitorView:
    sampler: Sampler = request.app.state.admin_monitor
    return MonitorView(interval_s=sampler.interval, versions=await gateway(request).lanes.store(sampler.series))
