"""An OpenAI-compatible endpoint as the model under test: the ``chat``/``chat_batch`` half of the
serving ``Engine`` protocol over HTTP, so ``eval run`` and ``compare_versions`` evaluate a remote model
(our own gateway, vLLM, a hosted API) exactly like a local version. The "version" is the ``model``
field sent. Requests run concurrently with retries and a per-request timeout; a sample that still
fails comes back as a ``Generation`` with ``finish_reason="error: <reason>"`` and empty text, which
``eval.report.run_eval`` records as a failed sample — never an exception for the whole batch.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from llmloop.eval import EvalInputError
from llmloop.inference.base import Generation, SamplingParams


class EndpointEngine:
    def __init__(self, base_url: str, api_key_env: str | None = None, timeout_s: float = 60.0, attempts: int = 3,
                 concurrency: int = 8, backoff_s: float = 0.5) -> None:
        import httpx

        key = os.environ.get(api_key_env) if api_key_env else None
        if api_key_env and not key:
            raise EvalInputError(f"endpoint API key: environment variable {api_key_env} is not set")
        self.http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout_s,
                                 headers={"Authorization": f"Bearer {key}"} if key else {})
        self.timeout_s, self.attempts, self.concurrency, self.backoff_s = timeout_s, attempts, concurrency, backoff_s

    def _one(self, model: str, messages: list[dict[str, Any]], params: SamplingParams) -> Generation:
        import httpx

        body = {"model": model, "messages": messages, "max_tokens": params.max_tokens, "temperature": params.temperature,
                "top_p": params.top_p, **({"seed": params.seed} if params.seed is not None else {}),
                **({"stop": list(params.stop)} if params.stop else {})}
        reasons = []
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                r = self.http.post("/chat/completions", json=body)
            except httpx.TimeoutException:
                reasons.append(f"timeout after {self.timeout_s:g} s")
                continue
            except httpx.HTTPError as e:
                reasons.append(f"{type(e).__name__}: {e}")
                continue
            if r.status_code != 200:
                reasons.append(f"HTTP {r.status_code}: {r.text[:160]}")
                if 400 <= r.status_code < 500 and r.status_code != 429:
                    break  # our request is wrong; asking again will not help
                continue
            try:
                data = r.json()
                usage = data.get("usage") or {}
                return Generation(str(data["choices"][0]["message"]["content"] or ""), int(usage.get("prompt_tokens", 0)),
                                  int(usage.get("completion_tokens", 0)), str(data["choices"][0].get("finish_reason") or "stop"))
            except (ValueError, KeyError, IndexError, TypeError):
                reasons.append(f"not an OpenAI chat completion: {r.text[:160]!r}")
        return Generation("", 0, 0, "error: " + " | ".join(reasons))

    def chat(self, version: str, messages: list[dict[str, Any]], params: SamplingParams, n: int = 1) -> list[Generation]:
        return [self._one(version, messages, params) for _ in range(n)]

    def chat_batch(self, version: str, conversations: list[list[dict[str, Any]]], params: SamplingParams) -> list[Generation]:
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(lambda c: self._one(version, c, params), conversations))

    def close(self) -> None:
        self.http.close()
