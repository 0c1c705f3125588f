"""Serving classes: protocol request in, protocol response out, no web framework inside.

Each class does one endpoint family (as vLLM's ``OpenAIServingChat`` …): ``OpenAIServingChat`` /
``OpenAIServingCompletion`` / ``OpenAIServingModels`` speak OpenAI. ``ModelPool`` (``serve/pool.py``)
turns a request's ``model`` into a loaded version; ``ServingError`` is in ``serve/http_errors.py`` (both
re-exported here). Arena and feedback live in ``serve/capture.py``, sessions in
``serve/sessions.py``, admin in ``serve/admin.py``.

Two rules hold everywhere:
* an answer is recorded (``store.ingest``, group commit) before the response that carries it is
  complete — for a stream, before the last chunk and ``[DONE]`` — and generation and its record
  happen in one blocking call, so a client that goes away mid-request cannot leave an answer unrecorded;
* blocking work runs on ``ThreadLanes``: generation on its own pool (the engine serialises anyway)
  and store calls on another, so a queue of generations never delays a vote's commit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

from llmloop.inference.base import (
    Engine,
    Generation,
    SamplingParams,
    StreamResult,
    count_tokens,
)
from llmloop.serve import protocol as p
from llmloop.serve.http_errors import ServingError
from llmloop.serve.request_metrics import ServeMetrics
from llmloop.serve.pool import CANDIDATE, PRODUCTION, ModelPool  # noqa: F401 - re-exported for capture/admin
from llmloop.store import registry
from llmloop.store.db import Database
from llmloop.store.ingest import CompletionOp, GroupCommitWriter
from llmloop.store.records import ModelVersion

if TYPE_CHECKING:
    from llmloop.serve.auth import Principal
    from llmloop.serve.sessions import SessionService

log = logging.getLogger("llmloop.serve")
T = TypeVar("T")

DEFAULT_MAX_TOKENS = 256


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def choice_request_id(request_id: str, index: int) -> str:
    """Choice 0 is stored under the response's id, choice i > 0 under ``<id>-<i>``."""
    return request_id if index == 0 else f"{request_id}-{index}"


class ThreadLanes:
    """Two thread pools: ``generate`` (engine work) and ``store`` (database work)."""

    def __init__(self, generation_threads: int = 32, store_threads: int = 16) -> None:
        self._gen = ThreadPoolExecutor(generation_threads, thread_name_prefix="llmloop-gen")
        self._store = ThreadPoolExecutor(store_threads, thread_name_prefix="llmloop-store")

    async def generate(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._gen, fn, *args)

    async def store(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._store, fn, *args)

    def submit_generation(self, fn: Callable[[], None]) -> None:
        self._gen.submit(fn)

    def shutdown(self) -> None:
        self._gen.shutdown(wait=False, cancel_futures=True)
        self._store.shutdown(wait=False, cancel_futures=True)


@dataclass(frozen=True)
class RequestContext:
    """Who asks: the resolved user id and the caller's key (``Principal``)."""

    user_id: str
    principal: Principal


@dataclass(frozen=True)
class Limits:
    max_tokens: int = 4096
    max_prompt_tokens: int = 8192
    record_answers: str = "sync"  # sync | async (ServeConfig.record_answers)


def record_answers(writer: GroupCommitWriter, mode: str, ops: list[CompletionOp]) -> Future | None:
    """Store served answers. ``sync``: wait for the commit (the answer is durable before its response
    completes). ``async``: queue them and return; the writer is FIFO, so feedback on an answer (queued
    after the client saw it) commits in the same or a later group — no acknowledged feedback can point
    at a lost answer — but a crash loses the answers of the group in flight."""
    future = writer.submit(ops)
    if mode == "sync":
        return future
    future.add_done_callback(lambda f: f.exception() and log.error("recording answers failed: %s", f.exception()))
    return None


def _sampling(req: p.ChatCompletionRequest | p.CompletionRequest, ctx: RequestContext, limits: Limits) -> SamplingParams:
    if req.logprobs:
        raise ServingError("logprobs are not supported by this server", param="logprobs", code="unsupported")
    cap = ctx.principal.max_tokens or limits.max_tokens
    if req.max_tokens is not None and req.max_tokens > cap:
        raise ServingError(f"max_tokens={req.max_tokens} is above this key's limit of {cap}; ask for at most {cap}",
                           status=413, param="max_tokens", code="max_tokens_too_large")
    return SamplingParams(
        max_tokens=min(req.max_tokens or DEFAULT_MAX_TOKENS, cap), temperature=req.temperature, top_p=req.top_p,
        seed=req.seed, stop=tuple(req.stop or ()),
    )


def _nth(params: SamplingParams, i: int) -> SamplingParams:
    """The i-th of n separately generated samples: a different seed, so they differ."""
    return params if i == 0 or params.seed is None else replace(params, seed=params.seed + i)


def _usage(prompt_tokens: int, completion_tokens: int) -> p.Usage:
    return p.Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                   total_tokens=prompt_tokens + completion_tokens)


def sse(payload: p.ChatCompletionChunk | p.CompletionResponse | p.ErrorResponse, keep_usage: bool = False) -> str:
    """One ``data: {...}`` event. Empty delta fields are left out, as OpenAI does."""
    data = payload.model_dump(mode="json")
    for choice in data.get("choices", []):
        if "delta" in choice:
            choice["delta"] = {k: v for k, v in choice["delta"].items() if v is not None}
    if data.get("usage", 0) is None and not keep_usage:
        del data["usage"]
    return f"data: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"


DONE = "data: [DONE]\n\n"


@dataclass(frozen=True)
class EventStream:
    """A streamed answer: ids known up front (for headers), SSE text events to send."""

    request_id: str
    version: str
    events: AsyncIterator[str]
    session_id: str | None = None


def adapter_label(version: ModelVersion) -> str:
    return version.name if version.adapter_path else "base"


class OpenAIServingChat:
    def __init__(self, db: Database, engine: Engine, pool: ModelPool, lanes: ThreadLanes, metrics: ServeMetrics,
                 writer: GroupCommitWriter, sessions: SessionService, limits: Limits) -> None:
        self.db, self.engine, self.pool, self.lanes, self.metrics = db, engine, pool, lanes, metrics
        self.writer, self.sessions, self.limits = writer, sessions, limits

    async def create(self, req: p.ChatCompletionRequest, ctx: RequestContext) -> p.ChatCompletionResponse | EventStream:
        if req.tools:
            raise ServingError("tools are not supported by this server", param="tools", code="unsupported")
        params = _sampling(req, ctx, self.limits)
        new = [m.plain() for m in req.messages]
        version = await self.pool.resolve(self.lanes, req.model, ctx.user_id, kind="chat")
        history = await self.lanes.store(self.sessions.load, req.session_id, ctx.user_id) if req.session_id else []
        messages = [*history, *new]
        prompt_tokens = count_tokens(self.engine, version.name, messages)
        if prompt_tokens > self.limits.max_prompt_tokens:
            raise ServingError(f"the prompt has {prompt_tokens} tokens (history included); at most "
                               f"{self.limits.max_prompt_tokens} are allowed: shorten it or start a new session",
                               status=413, param="messages", code="prompt_too_long")
        request_id = new_id("chatcmpl")
        labels = (version.name, adapter_label(version))
        if req.stream:
            include_usage = bool(req.stream_options and req.stream_options.include_usage)
            events = await self._stream(labels, messages, params, req.n, request_id, ctx, include_usage,
                                        req.session_id)
            return EventStream(request_id=request_id, version=version.name, events=events, session_id=req.session_id)
        achat = getattr(self.engine, "achat", None)
        if achat is not None:
            gens = await self._agenerate(achat, labels, messages, params, req.n, request_id, ctx, req.session_id)
        else:
            gens = await self.lanes.generate(self._generate, labels, messages, params, req.n, request_id, ctx,
                                             req.session_id)
        return p.ChatCompletionResponse(
            id=request_id, model=version.name, session_id=req.session_id,
            choices=[p.ChatCompletionChoice(index=i, message=p.ChatCompletionMessage(content=g.text),
                                            finish_reason=g.finish_reason) for i, g in enumerate(gens)],
            usage=_usage(gens[0].prompt_tokens, sum(g.completion_tokens for g in gens)),
        )

    async def _agenerate(self, achat: Callable[..., Any], labels: tuple[str, str], messages: list[dict],
                         params: SamplingParams, n: int, request_id: str, ctx: RequestContext,
                         session_id: str | None) -> list[Generation]:
        """``_generate`` for an engine with ``achat`` (an upstream): the I/O waits on the event loop."""
        started = time.perf_counter()
        gens = await achat(labels[0], messages, params, n=n)
        self.metrics.observe_generation(*labels, gens[0].prompt_tokens, sum(g.completion_tokens for g in gens),
                                        time.perf_counter() - started)
        ops = self._answer_ops(labels[0], messages, [g.text for g in gens], request_id, ctx)
        if self.limits.record_answers == "sync":  # shielded: a client that leaves now does not cancel the record
            await asyncio.shield(self.writer.submit_async(ops))  # one loop wake-up per commit, not per answer
        else:
            record_answers(self.writer, "async", ops)
        if session_id:
            await self.lanes.store(self.sessions.append, session_id, ctx.user_id, labels[0], messages, gens[0].text)
        return gens

    @staticmethod
    def _answer_ops(version: str, messages: list[dict], outputs: list[str], request_id: str,
                    ctx: RequestContext) -> list[CompletionOp]:
        return [CompletionOp(request_id=choice_request_id(request_id, i), user_id=ctx.user_id, version=version,
                             messages=messages, output=text) for i, text in enumerate(outputs)]

    def _generate(self, labels: tuple[str, str], messages: list[dict], params: SamplingParams, n: int,
                  request_id: str, ctx: RequestContext, session_id: str | None) -> list[Generation]:
        started = time.perf_counter()
        gens = self.engine.chat(labels[0], messages, params, n=n)
        self.metrics.observe_generation(*labels, gens[0].prompt_tokens, sum(g.completion_tokens for g in gens),
                                        time.perf_counter() - started)
        self._record(labels[0], messages, [g.text for g in gens], request_id, ctx, session_id)
        return gens

    def _record(self, version: str, messages: list[dict], outputs: list[str], request_id: str, ctx: RequestContext,
                session_id: str | None) -> None:
        future = record_answers(self.writer, self.limits.record_answers, self._answer_ops(
            version, messages, outputs, request_id, ctx))
        if future is not None:
            future.result()
        if session_id:
            self.sessions.append(session_id, ctx.user_id, version, messages, outputs[0])

    async def _stream(self, labels: tuple[str, str], messages: list[dict], params: SamplingParams, n: int,
                      request_id: str, ctx: RequestContext, include_usage: bool,
                      session_id: str | None) -> AsyncIterator[str]:
        """Start generating; return the SSE events once the first piece (or the end) is there. A failure
        before that — an upstream that answers 5xx or cannot be reached — is raised here, so it leaves as
        an ordinary error response (its status, ``x-llmloop-version``) rather than a 200 whose body
        carries the error: the canary counts statuses. A failure mid-stream can only be an error event."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any, Any]] = asyncio.Queue()
        started = time.perf_counter()
        version = labels[0]

        def emit(*item: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is gone (shutdown); generation and its record still finish
                pass

        def work() -> None:
            # One thread consumes each engine stream start to end (it holds the engine's lock).
            try:
                results = []
                for i in range(n):
                    result = StreamResult()
                    last = None
                    for piece in self.engine.chat_stream(version, messages, _nth(params, i), result):
                        now = time.perf_counter()
                        if last is None and i == 0:
                            self.metrics.observe_first_token(*labels, now - started)
                        elif last is not None:
                            self.metrics.observe_inter_token(*labels, now - last)
                        last = now
                        emit("delta", i, piece)
                    results.append(result)
                    emit("finish", i, result)
                self.metrics.observe_generation(*labels, results[0].prompt_tokens,
                                                sum(r.completion_tokens for r in results), time.perf_counter() - started)
                self._record(version, messages, [r.text for r in results], request_id, ctx, session_id)
                emit("done", results, None)
            except BaseException as e:  # noqa: BLE001 - reported to the client as an error
                log.warning("stream %s failed: %s: %s", request_id, e.__class__.__name__, e)
                emit("error", e, None)

        self.lanes.submit_generation(work)
        first = await queue.get()
        if first[0] == "error":
            raise first[1]
        return self._events(first, queue, request_id, version, n, include_usage)

    @staticmethod
    async def _events(first: tuple[str, Any, Any], queue: asyncio.Queue[tuple[str, Any, Any]], request_id: str,
                      version: str, n: int, include_usage: bool) -> AsyncIterator[str]:
        created = int(time.time())

        def chunk(index: int, delta: p.DeltaMessage, finish: str | None = None) -> str:
            return sse(p.ChatCompletionChunk(id=request_id, created=created, model=version, choices=[
                p.ChatCompletionChunkChoice(index=index, delta=delta, finish_reason=finish)]), include_usage)

        for i in range(n):
            yield chunk(i, p.DeltaMessage(role="assistant", content=""))
        kind, a, b = first
        while True:
            if kind == "delta":
                yield chunk(a, p.DeltaMessage(content=b))
            elif kind == "finish":
                yield chunk(a, p.DeltaMessage(), finish=b.finish_reason)
            elif kind == "done":
                if include_usage:
                    usage = _usage(a[0].prompt_tokens, sum(r.completion_tokens for r in a))
                    yield sse(p.ChatCompletionChunk(id=request_id, created=created, model=version, choices=[],
                                                    usage=usage), keep_usage=True)
                yield DONE
                return
            else:
                yield sse(p.ErrorResponse(error=p.ErrorInfo(message=f"generation failed: {a}", type="server_error")))
                return
            kind, a, b = await queue.get()


class OpenAIServingCompletion:
    """``/v1/completions`` for completion models. A stream carries each choice as one chunk."""

    def __init__(self, db: Database, engine: Engine, pool: ModelPool, lanes: ThreadLanes, metrics: ServeMetrics,
                 writer: GroupCommitWriter, limits: Limits) -> None:
        self.db, self.engine, self.pool, self.lanes, self.metrics = db, engine, pool, lanes, metrics
        self.writer, self.limits = writer, limits

    async def create(self, req: p.CompletionRequest, ctx: RequestContext) -> p.CompletionResponse | EventStream:
        if req.suffix:
            raise ServingError("suffix (fill-in-the-middle) is not supported", param="suffix", code="unsupported")
        params = _sampling(req, ctx, self.limits)
        version = await self.pool.resolve(self.lanes, req.model, ctx.user_id, kind="completion")
        request_id = new_id("cmpl")
        response = await self.lanes.generate(self._generate, version, req, params, request_id, ctx.user_id)
        if not req.stream:
            return response
        return EventStream(request_id=request_id, version=version.name, events=self._events(response, req))

    @staticmethod
    async def _events(response: p.CompletionResponse, req: p.CompletionRequest) -> AsyncIterator[str]:
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        for choice in response.choices:
            yield sse(response.model_copy(update={"choices": [choice], "usage": None}), include_usage)
        if include_usage:
            yield sse(response.model_copy(update={"choices": []}), keep_usage=True)
        yield DONE

    def _generate(self, version: ModelVersion, req: p.CompletionRequest, params: SamplingParams,
                  request_id: str, user_id: str) -> p.CompletionResponse:
        started = time.perf_counter()
        choices, prompt_tokens, completion_tokens = [], 0, 0
        for prompt in req.prompts():
            for j in range(req.n):
                g = self.engine.complete(version.name, prompt, _nth(params, j))
                if j == 0:
                    prompt_tokens += g.prompt_tokens
                completion_tokens += g.completion_tokens
                text = prompt + g.text if req.echo else g.text
                choices.append((prompt, p.CompletionChoice(index=len(choices), text=text, finish_reason=g.finish_reason)))
        self.metrics.observe_generation(version.name, adapter_label(version), prompt_tokens, completion_tokens,
                                        time.perf_counter() - started)
        future = record_answers(self.writer, self.limits.record_answers, [
            CompletionOp(request_id=choice_request_id(request_id, c.index), user_id=user_id, version=version.name,
                         messages=[{"role": "user", "content": prompt}], output=c.text) for prompt, c in choices])
        if future is not None:
            future.result()
        return p.CompletionResponse(id=request_id, model=version.name, choices=[c for _, c in choices],
                                    usage=_usage(prompt_tokens, completion_tokens))


class OpenAIServingModels:
    def __init__(self, db: Database, pool: ModelPool) -> None:
        self.db, self.pool = db, pool

    def list(self) -> p.ModelList:
        versions = registry.list_versions(self.db)
        by_name = {v.name: v for v in versions}
        cards = [
            p.ModelCard(id=v.name, created=int(v.created_at.timestamp()), root=v.name, parent=v.parent,
                        kind=v.kind, stage=v.stage, aliases=list(v.aliases))
            for v in versions
        ]
        for v in versions:
            for alias in v.aliases:
                cards.append(p.ModelCard(id=alias, created=int(v.created_at.timestamp()), root=v.name,
                                         parent=v.parent, kind=v.kind, stage=v.stage))
        for v in self.pool.runtime.values():
            if v.name not in by_name:
                cards.append(p.ModelCard(id=v.name, created=int(v.created_at.timestamp()), root=v.name,
                                         parent=v.parent, kind=v.kind, stage="runtime"))
        now = int(time.time())
        routing, _ = self.pool.current_routing()
        for name in routing.route_names:
            if name not in by_name:
                cards.append(p.ModelCard(id=name, created=now, routing=routing.normalised()))
        return p.ModelList(data=cards)

    def get(self, model: str) -> p.ModelCard:
        for card in self.list().data:
            if card.id == model:
                return card
        raise ServingError(f"The model {model!r} does not exist; GET /v1/models lists them",
                           status=404, param="model", code="model_not_found")


class HealthService:
    def __init__(self, db: Database, engine: Engine, pool: ModelPool, lanes: ThreadLanes) -> None:
        self.db, self.engine, self.pool, self.lanes = db, engine, pool, lanes
        self._loading: set[str] = set()
        self._guard = threading.Lock()

    def ready(self) -> tuple[bool, dict[str, Any]]:
        """Ready when the store answers and the production version (or, with no registry, the
        ``--base-model``) is loaded. A production version not loaded yet starts loading here, so a
        readiness probe that took the gateway out of rotation also brings it back."""
        reasons: list[str] = []
        production = None
        try:
            self.db.ping()
            production = registry.get(self.db, PRODUCTION)
        except registry.VersionNotFound:
            if not self.pool.runtime:
                reasons.append("no 'production' alias in the registry")
        except Exception as e:  # noqa: BLE001 - any store failure means not ready
            reasons.append(f"store: {e.__class__.__name__}: {e}")
        if production is not None and production.name not in self.engine.loaded():
            reasons.append(f"production version {production.name!r} is loading")
            self._load_in_background(production)
        engine_ok = getattr(self.engine, "healthy", None)
        if engine_ok is not None and not engine_ok():
            reasons.append("the upstream server does not answer")
        body = {"status": "not_ready" if reasons else "ready",
                "production": production.name if production else None, "loaded": self.engine.loaded()}
        describe = getattr(self.engine, "describe", None)
        if describe is not None:
            body["engine"] = describe()
        if reasons:
            body["reasons"] = reasons
        return not reasons, body

    def _load_in_background(self, version: ModelVersion) -> None:
        with self._guard:
            if version.name in self._loading:
                return
            self._loading.add(version.name)

        def load() -> None:
            try:
                self.pool.ensure_loaded(version)
            except ServingError:
                log.exception("could not load production version %s", version.name)
            finally:
                with self._guard:
                    self._loading.discard(version.name)

        self.lanes.submit_generation(load)
