"""Prometheus metrics for one gateway, named after vLLM's (``vllm:time_to_first_token_seconds`` →
``llmloop_time_to_first_token_seconds`` …) under an ``llmloop_`` prefix. Series about a model carry
``version`` and ``adapter`` labels (``adapter`` is the version's LoRA adapter, or ``base``); request
series carry ``version`` (``none`` where no single version applies, e.g. a vote request).

Each ``ServeMetrics`` owns its ``CollectorRegistry``, so several apps in one process (tests) never
register the same name twice. No web framework here: the app feeds ``observe_request`` from a
middleware and serves ``render()`` at ``/metrics``.
"""

from __future__ import annotations

import threading

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

NO_VERSION = "none"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
TOKEN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 1, 2.5)


class ServeMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "llmloop_requests", "HTTP requests by endpoint, status code and serving version",
            ["endpoint", "status", "version"], registry=r,
        )
        self.errors = Counter(
            "llmloop_request_errors", "HTTP requests answered with status >= 400, by endpoint, status and code",
            ["endpoint", "status", "version"], registry=r,
        )
        self.latency = Histogram(
            "llmloop_request_latency_seconds", "Time from request to last response byte (vLLM: e2e_request_latency)",
            ["endpoint", "version"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.ttft = Histogram(
            "llmloop_time_to_first_token_seconds", "Streaming: time from request to first content",
            ["version", "adapter"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.itl = Histogram(
            "llmloop_inter_token_latency_seconds", "Streaming: time between successive pieces of content",
            ["version", "adapter"], buckets=TOKEN_BUCKETS, registry=r,
        )
        self.prompt_tokens = Counter(
            "llmloop_prompt_tokens", "Prompt tokens processed", ["version", "adapter"], registry=r,
        )
        self.generation_tokens = Counter(
            "llmloop_generation_tokens", "Tokens generated", ["version", "adapter"], registry=r,
        )
        self.generation_seconds = Counter(
            "llmloop_generation_seconds", "Time spent generating (tokens/s = generation_tokens / this)",
            ["version", "adapter"], registry=r,
        )
        self.feedback = Counter(
            "llmloop_feedback_events",
            "Feedback by type (thumbs_up, thumbs_down, vote_win, vote_loss, vote_tie, vote_both_bad, edit, "
            "regenerate) and the version it is about",
            ["type", "version"], registry=r,
        )
        self.thumbs_ratio = Gauge(
            "llmloop_thumbs_up_ratio", "Thumbs up / all thumbs per version, since this process started",
            ["version"], registry=r,
        )
        self._thumbs: dict[str, list[int]] = {}
        self._lock = threading.Lock()

    def observe_request(self, endpoint: str, status: int, version: str | None, seconds: float) -> None:
        v = version or NO_VERSION
        self.requests.labels(endpoint, str(status), v).inc()
        if status >= 400:
            self.errors.labels(endpoint, str(status), v).inc()
        self.latency.labels(endpoint, v).observe(seconds)

    def observe_generation(self, version: str, adapter: str, prompt_tokens: int, completion_tokens: int,
                           seconds: float) -> None:
        self.prompt_tokens.labels(version, adapter).inc(prompt_tokens)
        self.generation_tokens.labels(version, adapter).inc(completion_tokens)
        self.generation_seconds.labels(version, adapter).inc(seconds)

    def observe_first_token(self, version: str, adapter: str, seconds: float) -> None:
        self.ttft.labels(version, adapter).observe(seconds)

    def observe_inter_token(self, version: str, adapter: str, seconds: float) -> None:
        self.itl.labels(version, adapter).observe(seconds)

    def observe_vote(self, choice: str, version_a: str, version_b: str) -> None:
        outcome = {"a": ("vote_win", "vote_loss"), "b": ("vote_loss", "vote_win")}.get(choice)
        if outcome is None:
            outcome = (f"vote_{choice}", f"vote_{choice}")
        self.feedback.labels(outcome[0], version_a).inc()
        self.feedback.labels(outcome[1], version_b).inc()

    def observe_thumb(self, rating: int, version: str) -> None:
        self.feedback.labels("thumbs_up" if rating > 0 else "thumbs_down", version).inc()
        with self._lock:
            up_all = self._thumbs.setdefault(version, [0, 0])
            up_all[0] += rating > 0
            up_all[1] += 1
            self.thumbs_ratio.labels(version).set(up_all[0] / up_all[1])

    def observe_event(self, kind: str, version: str) -> None:
        self.feedback.labels(kind, version).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
