"""``EchoEngine``: a real ``Engine`` with no model — it answers with the last user message's words
(cut to ``max_tokens`` words, ``stop`` applied). Serves load tests and benchmarks of the gateway
itself (``llmloop serve --engine echo``; ``benchmarks/gateway_overhead.py``), where model compute
would hide the gateway's own cost, and API fuzzing, where what matters is what the gateway accepts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from llmloop.inference.base import (
    Generation,
    SamplingParams,
    StreamResult,
    UnknownVersion,
    truncate_at_stop,
)
from llmloop.store.records import ModelVersion


class EchoEngine:
    def __init__(self) -> None:
        self._versions: dict[str, ModelVersion] = {}

    def load(self, version: ModelVersion) -> None:
        self._versions[version.name] = version

    def unload(self, name: str) -> None:
        self._versions.pop(name, None)

    def loaded(self) -> list[str]:
        return sorted(self._versions)

    def count_tokens(self, version: str, messages: list[dict[str, Any]]) -> int:
        return sum(len((m.get("content") or "").split()) + 4 for m in messages)

    def _answer(self, version: str, prompt: str, params: SamplingParams) -> Generation:
        if version not in self._versions:
            raise UnknownVersion(f"model version {version!r} is not loaded; loaded: {self.loaded()}")
        words = prompt.split()
        text = " ".join(words[: params.max_tokens])
        text, stopped = truncate_at_stop(text, params.stop)
        finish = "length" if len(words) > params.max_tokens and not stopped else "stop"
        return Generation(text=text, prompt_tokens=len(words) + 4, completion_tokens=min(len(words), params.max_tokens),
                          finish_reason=finish)

    @staticmethod
    def _last_user(messages: list[dict[str, Any]]) -> str:
        return next((m.get("content") or "" for m in reversed(messages) if m.get("role") == "user"), "")

    def chat(self, version: str, messages: list[dict[str, Any]], params: SamplingParams, n: int = 1) -> list[Generation]:
        return [self._answer(version, self._last_user(messages), params)] * n

    def chat_batch(self, version: str, conversations: list[list[dict[str, Any]]], params: SamplingParams) -> list[Generation]:
        return [self.chat(version, c, params)[0] for c in conversations]

    def chat_stream(self, version: str, messages: list[dict[str, Any]], params: SamplingParams,
                    result: StreamResult) -> Iterator[str]:
        gen = self._answer(version, self._last_user(messages), params)
        for i, word in enumerate(gen.text.split(" ")):
            yield word if i == 0 else " " + word
        result.prompt_tokens, result.completion_tokens = gen.prompt_tokens, gen.completion_tokens
        result.finish_reason, result.text = gen.finish_reason, gen.text

    def complete(self, version: str, prompt: str, params: SamplingParams) -> Generation:
        return self._answer(version, prompt, params)
