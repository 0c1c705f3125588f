"""Simulated users chatting through a gateway while a canary runs: routed requests (``model="llmloop"``,
sticky by user) and thumbs given by the users' hidden taste (``demo.users``).

``UserTraffic`` runs in background threads until stopped and counts what happened per serving
version: requests answered, errors, thumbs acknowledged — so tests can check that no acknowledged
feedback was lost and that the split moved traffic.
"""

from __future__ import annotations

import random
import threading
from collections import defaultdict
from dataclasses import dataclass, field

import httpx

from llmloop.demo import users
from llmloop.resources import demo_file, read_jsonl

VERSION_HEADER = "x-llmloop-version"


@dataclass
class TrafficCounts:
    answered: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    thumbs: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # acknowledged (201) per version
    thumb_ids: list[int] = field(default_factory=list)


class UserTraffic:
    def __init__(self, url: str, *, users_n: int = 40, workers: int = 4, max_tokens: int = 16, thumbs_share: float = 0.5,
                 seed: int = 0, temperature: float = 0.7) -> None:
        self.url, self.users_n, self.workers, self.max_tokens = url, users_n, workers, max_tokens
        self.thumbs_share, self.seed, self.temperature = thumbs_share, seed, temperature
        self.counts = TrafficCounts()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.prompts = [r["prompt"] for r in read_jsonl(demo_file("arena_prompts.jsonl"))]

    def _worker(self, k: int) -> None:
        rng = random.Random(self.seed * 1000 + k)
        with httpx.Client(timeout=120) as client:
            while not self._stop.is_set():
                user = f"shopper-{rng.randrange(self.users_n):04d}"
                try:
                    r = client.post(f"{self.url}/v1/chat/completions", json={
                        "model": "llmloop", "user": user, "max_tokens": self.max_tokens,
                        "temperature": self.temperature,
                        "messages": [{"role": "user", "content": rng.choice(self.prompts)}]})
                except httpx.TransportError:
                    continue
                version = r.headers.get(VERSION_HEADER, "none")
                if r.status_code != 200:
                    with self._lock:
                        self.counts.errors[version] += 1
                    continue
                body = r.json()
                with self._lock:
                    self.counts.answered[version] += 1
                if rng.random() < self.thumbs_share:
                    answer = body["choices"][0]["message"]["content"]
                    rating = 1 if users.preference_score(answer) >= 2 else -1
                    t = client.post(f"{self.url}/v1/feedback/thumbs", json={
                        "request_id": body["id"], "rating": rating, "user": user})
                    if t.status_code == 201:
                        with self._lock:
                            self.counts.thumbs[version] += 1
                            tid = t.json().get("id") or t.json().get("thumb_id")
                            if isinstance(tid, int):
                                self.counts.thumb_ids.append(tid)

    def start(self) -> UserTraffic:
        self._threads = [threading.Thread(target=self._worker, args=(k,), daemon=True) for k in range(self.workers)]
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> TrafficCounts:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=180)
        return self.counts

    def __enter__(self) -> UserTraffic:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
