"""The inference contract every engine keeps: (model version, messages, sampling) in, text out.

An engine knows model versions by name and nothing about HTTP, users, routing or feedback. The
gateway (llmloop.serve), evaluation, the loop and model scans all talk to engines through this
protocol; ``embedded`` (transformers + peft in this process), ``upstream`` (an OpenAI-compatible
server such as vLLM), ``echo`` (a test double for the gateway's own overhead) implement it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from llmloop.errors import LlmloopError
from llmloop.store.records import ModelVersion


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int = 128
    temperature: float = 0.7
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" | "length"


@dataclass
class StreamResult:
    """Filled in once a stream is exhausted."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"
    text: str = ""


class Engine(Protocol):
    def load(self, version: ModelVersion) -> None: ...

    def unload(self, name: str) -> None: ...

    def loaded(self) -> list[str]: ...

    def chat(self, version: str, messages: list[dict[str, Any]], params: SamplingParams, n: int = 1) -> list[Generation]: ...

    def chat_batch(self, version: str, conversations: list[list[dict[str, Any]]], params: SamplingParams) -> list[Generation]: ...

    def chat_stream(self, version: str, messages: list[dict[str, Any]], params: SamplingParams, result: StreamResult) -> Iterator[str]: ...

    def complete(self, version: str, prompt: str, params: SamplingParams) -> Generation: ...


class UnknownVersion(LlmloopError, LookupError):
    """The engine was asked for a version it has not loaded. The gateway loads a version before it
    asks (``ModelPool``), so over HTTP this is llmloop's own failure (500), not the request's."""


def count_tokens(engine: Any, version: str, messages: list[dict[str, Any]]) -> int:
    """Prompt tokens of ``messages`` for ``version``: the engine's tokenizer when it has one (the
    embedded engine), else an estimate of 4 bytes per token (an upstream's tokenizer is not here)."""
    counter = getattr(engine, "count_tokens", None)
    if counter is not None:
        return counter(version, messages)
    return sum(len((m.get("content") or "").encode()) // 4 + 4 for m in messages)


def truncate_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    """``text`` cut before the first stop string it holds, and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)
