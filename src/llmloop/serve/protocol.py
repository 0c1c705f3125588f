"""The wire format: pydantic models for every request and response the gateway speaks.

OpenAI-compatible shapes for ``/v1/chat/completions``, ``/v1/completions`` and ``/v1/models``, plus
llmloop's own arena and feedback bodies. Requests ignore fields they do not know (OpenAI clients
send many optional ones), but fields whose silent omission would change the answer (``tools``,
``logprobs``) are declared so the serving layer can refuse them. Nothing here imports a web
framework or an engine.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ROLES = ("system", "developer", "user", "assistant")


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, v: Any) -> Any:
        # What the gateway stores must fit a PostgreSQL text column, which cannot hold NUL.
        if isinstance(v, str) and "\x00" in v:
            raise ValueError("text must not contain NUL (\\u0000) characters")
        return v


class _Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- errors --------------------------------------------------------------------------------------
class ErrorInfo(_Response):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(_Response):
    """OpenAI's error body: ``{"error": {"message", "type", "param", "code"}}``."""

    error: ErrorInfo


# -- chat ----------------------------------------------------------------------------------------
class TextPart(_Request):
    type: Literal["text"]
    text: str


class ChatMessage(_Request):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = Field(description="Text, or a list of text parts (joined)")
    name: str | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content)

    def plain(self) -> dict[str, str]:
        """What engines and the store see: ``{"role", "content"}`` with string content."""
        role = "system" if self.role == "developer" else self.role
        return {"role": role, "content": self.text()}


class StreamOptions(_Request):
    include_usage: bool = False


class _Sampling(_Request):
    max_tokens: int | None = Field(None, ge=1, le=4096, description="Most tokens to generate")
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int | None = Field(None, ge=-(2**63), le=2**63 - 1)
    stop: str | list[str] | None = None
    n: int = Field(1, ge=1, le=8)
    user: str | None = Field(None, max_length=200)
    stream: bool = False
    stream_options: StreamOptions | None = None
    logprobs: bool | None = None

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, v: str | list[str] | None) -> list[str] | None:
        if isinstance(v, str):
            v = [v]
        if v is not None and len(v) > 4:
            raise ValueError(f"at most 4 stop sequences are allowed, got {len(v)}")
        return v


class ChatCompletionRequest(_Sampling):
    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [
        {"model": "production", "messages": [{"role": "user", "content": "Where is my order?"}], "max_tokens": 32,
         "user": "alice"},
        {"model": "llmloop", "messages": [{"role": "user", "content": "Hi"}], "stream": True, "session_id": "s-1"},
    ]})
    model: str = Field(description="A version (v1.1), an alias (production) or a routing name (llmloop)")
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1, le=4096)
    tools: list[dict[str, Any]] | None = None
    session_id: str | None = Field(
        None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$",
        description="llmloop extension: keep this conversation's history server-side under this id; "
        "send only the new turn(s)",
    )

    @model_validator(mode="after")
    def _prefer_max_completion_tokens(self) -> ChatCompletionRequest:
        if self.max_completion_tokens is not None:
            self.max_tokens = self.max_completion_tokens
        return self


class ChatCompletionMessage(_Response):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatCompletionChoice(_Response):
    index: int
    message: ChatCompletionMessage
    finish_reason: Literal["stop", "length"]
    logprobs: None = None


class Usage(_Response):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletionResponse(_Response):
    id: str = Field(description="The request id: what `/v1/feedback/thumbs` takes")
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str = Field(description="The concrete version that answered")
    choices: list[ChatCompletionChoice]
    usage: Usage
    system_fingerprint: str | None = None
    session_id: str | None = Field(None, description="The session this answer was added to, if any")


class DeltaMessage(_Response):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChatCompletionChunkChoice(_Response):
    index: int
    delta: DeltaMessage
    finish_reason: Literal["stop", "length"] | None = None
    logprobs: None = None


class ChatCompletionChunk(_Response):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatCompletionChunkChoice]
    usage: Usage | None = None


# -- completions ---------------------------------------------------------------------------------
class CompletionRequest(_Sampling):
    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [
        {"model": "c1.0", "prompt": "Orders ship within", "max_tokens": 16}]})
    model: str = Field(description="A completion-model version or alias")
    prompt: str | list[str]
    echo: bool = False
    suffix: str | None = None

    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)


class CompletionChoice(_Response):
    index: int
    text: str
    finish_reason: Literal["stop", "length"] | None
    logprobs: None = None


class CompletionResponse(_Response):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


# -- models --------------------------------------------------------------------------------------
class ModelCard(_Response):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "llmloop"
    root: str | None = Field(None, description="The version an alias points at; the version itself")
    parent: str | None = None
    kind: str | None = Field(None, description="chat | completion; null for a routing name")
    stage: str | None = None
    aliases: list[str] = Field(default_factory=list)
    routing: dict[str, float] | None = Field(None, description="Weights, for a routing name")


class ModelList(_Response):
    object: Literal["list"] = "list"
    data: list[ModelCard]


# -- arena & feedback ----------------------------------------------------------------------------
class ArenaRequest(_Request):
    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [
        {"messages": [{"role": "user", "content": "My lamp arrived broken."}], "user": "alice", "max_tokens": 32}]})
    messages: list[ChatMessage] = Field(min_length=1, description="A new battle: the conversation both sides "
                                        "answer. With battle_id: the user's follow-up turn only")
    user: str | None = Field(None, max_length=200)
    max_tokens: int = Field(128, ge=1, le=4096)
    temperature: float = Field(0.8, gt=0.0, le=2.0, description="Sampling is always on in the arena")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    battle_id: str | None = Field(None, min_length=1, max_length=64, description=(
        "Go on with this battle (multi-turn, as in Chatbot Arena): the same two anonymous versions answer the "
        "follow-up in messages, each with its own conversation so far. A vote ends a battle and judges all of it"))


class ArenaAnswer(_Response):
    slot: Literal["a", "b"]
    content: str
    request_id: str = Field(description="This answer's request id, for thumbs")


class ArenaResponse(_Response):
    battle_id: str
    answers: list[ArenaAnswer]
    turn: int = Field(1, description="Which turn of the battle these answers are (1: the first)")


class VoteRequest(_Request):
    battle_id: str = Field(min_length=1, max_length=64)
    choice: Literal["a", "b", "tie", "both_bad"]
    user: str | None = Field(None, max_length=200)


class VoteResponse(_Response):
    id: int
    battle_id: str
    choice: str
    versions: dict[str, str] = Field(description="Revealed now: {'a': version, 'b': version}")


class ThumbsRequest(_Request):
    request_id: str = Field(min_length=1, max_length=64)
    rating: int = Field(description="1 or 'up'; -1 or 'down'")
    comment: str = Field("", max_length=10_000)
    correction: str | None = Field(None, max_length=100_000, description="What the answer should have said")
    user: str | None = Field(None, max_length=200)

    @field_validator("rating", mode="before")
    @classmethod
    def _rating(cls, v: Any) -> int:
        words = {"up": 1, "down": -1, "+1": 1, "-1": -1}
        if isinstance(v, str) and v.strip().lower() in words:
            return words[v.strip().lower()]
        if isinstance(v, int) and not isinstance(v, bool) and v in (1, -1):
            return v
        raise ValueError(f"rating must be 1, -1, 'up' or 'down', got {v!r}")


class ThumbsResponse(_Response):
    id: int
    request_id: str
    rating: int


class EventRequest(_Request):
    """An edit (the user rewrote the answer) or a regenerate (the user asked for another answer)."""

    request_id: str = Field(min_length=1, max_length=64, description="The answer the event is about")
    kind: Literal["edit", "regenerate"]
    text: str | None = Field(None, max_length=100_000, description="edit: the user's version of the answer")
    new_request_id: str | None = Field(None, max_length=64, description="regenerate: the id of the new answer, if known")
    user: str | None = Field(None, max_length=200)

    @model_validator(mode="after")
    def _edit_has_text(self) -> EventRequest:
        if self.kind == "edit" and not self.text:
            raise ValueError("an edit event needs `text`: the answer as the user rewrote it")
        return self

    def payload(self) -> dict[str, Any]:
        return {k: v for k, v in {"text": self.text, "new_request_id": self.new_request_id}.items() if v is not None}


class EventResponse(_Response):
    id: int
    request_id: str
    kind: str
    version: str


class BatchThumbs(ThumbsRequest):
    type: Literal["thumbs"]


class BatchVote(VoteRequest):
    type: Literal["vote"]


class BatchEvent(EventRequest):
    type: Literal["event"]


class FeedbackBatchRequest(_Request):
    """Feedback a client buffered: stored all together or not at all."""

    events: list[Annotated[BatchThumbs | BatchVote | BatchEvent, Field(discriminator="type")]] = Field(
        min_length=1, max_length=1000, description="Each with `type`: thumbs | vote | event")


class BatchItemResult(_Response):
    index: int
    type: str
    id: int


class FeedbackBatchResponse(_Response):
    stored: int
    results: list[BatchItemResult]


# -- sessions, admin, adapters ---------------------------------------------------------------------
class SessionView(_Response):
    id: str
    messages: list[dict[str, str]]


class SplitRequest(_Request):
    weights: dict[Annotated[str, Field(min_length=1, max_length=60)], Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(
        min_length=1, max_length=32, description="Alias or version → share, e.g. {'production': 95, 'candidate': 5}")
    reason: str = Field("", max_length=2000)


class SplitView(_Response):
    weights: dict[str, float] = Field(description="As set (not normalised)")
    shares: dict[str, float] = Field(description="Normalised to sum to 1")
    source: Literal["store", "default"] = Field(description="store: set by an admin or the rollout; default: --split")
    id: int | None = None
    reason: str = ""
    actor: str = ""
    created_at: str | None = None


class KeyCreateRequest(_Request):
    name: str = Field(min_length=1, max_length=200)
    role: Literal["user", "annotator", "admin"] = "user"
    user: str | None = Field(None, max_length=200, description="The identity the key's requests carry")
    rate_limit_per_minute: int | None = Field(None, ge=1, le=1_000_000)
    max_tokens: int | None = Field(None, ge=1, le=1_000_000)


class KeyView(_Response):
    id: int
    name: str
    prefix: str
    role: str
    user: str
    rate_limit_per_minute: int | None
    max_tokens: int | None
    created_at: str
    revoked_at: str | None
    key: str | None = Field(None, description="The key itself: shown once, at creation")


class LoadLoraAdapterRequest(_Request):
    """vLLM's ``/v1/load_lora_adapter`` body."""

    lora_name: str = Field(min_length=1, max_length=60)
    lora_path: str = Field(min_length=1, max_length=4096)


class UnloadLoraAdapterRequest(_Request):
    lora_name: str = Field(min_length=1, max_length=60)
    lora_int_id: int | None = Field(None, ge=0, le=2**31)
