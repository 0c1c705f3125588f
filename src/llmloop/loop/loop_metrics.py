"""Loop metrics for Prometheus: a collector that reads the store when ``/metrics`` is scraped.

    from llmloop.loop.loop_metrics import LoopCollector
    LoopCollector(db).register(registry)      # e.g. the gateway's ServeMetrics.registry

Series (all gauges, computed at scrape time, so every gateway and the controller agree):
``llmloop_loop_pairs_pending{source}`` unclaimed feedback that can become pairs;
``llmloop_loop_rounds{status}`` rounds by outcome; ``llmloop_loop_rollbacks`` rolled-back rounds;
``llmloop_loop_rollout_share{version}`` each version's share of routed traffic under the split in
force; ``llmloop_loop_phase{phase}`` 1 for the controller's phase; ``llmloop_loop_feedback_to_rollout_seconds{stat}``
for the newest promotion: seconds from its oldest / median / newest training feedback to promotion.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from llmloop.store import Database, loop_events, registry, rounds, traffic

PHASES = ("idle", "train", "gate", "canary")
STATUSES = ("running", "promoted", "rejected", "rolled_back", "failed")


class LoopCollector(Collector):
    def __init__(self, db: Database) -> None:
        self.db = db

    def register(self, reg: CollectorRegistry) -> LoopCollector:
        reg.register(self)
        return self

    def collect(self) -> Iterator[GaugeMetricFamily]:
        db = self.db
        pending = GaugeMetricFamily("llmloop_loop_pairs_pending", "Unclaimed feedback that can become preference pairs",
                                    labels=["source"])
        for source, n in loop_events.pending_counts(db).items():
            pending.add_metric([source], n)
        yield pending

        counts = loop_events.round_counts(db)
        rnds = GaugeMetricFamily("llmloop_loop_rounds", "Loop rounds by status", labels=["status"])
        for s in STATUSES:
            rnds.add_metric([s], counts.get(s, 0))
        yield rnds
        yield GaugeMetricFamily("llmloop_loop_rollbacks", "Rounds rolled back (canary signal or admin)",
                                value=counts.get("rolled_back", 0))

        share = GaugeMetricFamily("llmloop_loop_rollout_share", "Share of routed traffic per version (split in force)",
                                  labels=["version"])
        split = traffic.get_split(db)
        weights = split.weights if split else dict(traffic.DEFAULT_SPLIT)
        total = sum(weights.values()) or 1.0
        per: dict[str, float] = {}
        for name, w in weights.items():
            version = registry.resolve_alias(db, name) or name
            per[version] = per.get(version, 0.0) + w / total
        for version, s in per.items():
            share.add_metric([version], s)
        yield share

        st = loop_events.get_state(db)
        phase = GaugeMetricFamily("llmloop_loop_phase", "1 for the controller's current phase", labels=["phase"])
        for p in PHASES:
            phase.add_metric([p], 1.0 if st.phase == p else 0.0)
        yield phase

        lat = GaugeMetricFamily("llmloop_loop_feedback_to_rollout_seconds",
                                "Newest promotion: seconds from its training feedback (oldest/median/newest) to promotion",
                                labels=["stat"])
        last = rounds.last_finished(db, ("promoted",))
        if last is not None and last.finished_at is not None:
            ages = [(last.finished_at - c.feedback_at).total_seconds() for c in loop_events.claims_of(db, last.id)
                    if c.outcome == "train"]
            if ages:
                lat.add_metric(["oldest"], max(ages))
                lat.add_metric(["median"], statistics.median(ages))
                lat.add_metric(["newest"], min(ages))
        yield lat


def render(db: Database) -> bytes:
    """The loop's series alone, in the Prometheus text format (``llmloop loop status --metrics``)."""
    from prometheus_client import generate_latest

    reg = CollectorRegistry()
    LoopCollector(db).register(reg)
    return generate_latest(reg)


