"""Preference capture: the arena (two anonymous answers) and feedback (votes, thumbs, edit and
regenerate events, buffered batches). Every write goes through the group-commit writer and is
answered only after it committed. No web framework here.
"""

from __future__ import annotations

import secrets
import time

from llmloop.inference.base import Engine, SamplingParams
from llmloop.serve import protocol as p
from llmloop.serve.request_metrics import ServeMetrics
from llmloop.serve.serving import (
    CANDIDATE,
    PRODUCTION,
    ModelPool,
    RequestContext,
    ServingError,
    ThreadLanes,
    new_id,
)
from llmloop.store import feedback_queries, registry
from llmloop.store.db import Database
from llmloop.store.ingest import (
    BattleOp,
    BattleTurnOp,
    EventOp,
    GroupCommitWriter,
    Op,
    OpResult,
    ThumbOp,
    UnitRejected,
    VoteOp,
)
from llmloop.store.records import ModelVersion

_STATUS = {"not_found": 404, "forbidden": 403, "duplicate": 409, "invalid": 422}
_CODES = {"not_found": "not_found", "forbidden": "not_yours", "duplicate": "duplicate_vote", "invalid": "invalid_event"}
MAX_TURNS = 8  # a battle's turns (Chatbot Arena stops a conversation too): then vote and start anew


def _owner(ctx: RequestContext) -> str | None:
    """A plain user key may only give feedback on what it was served; annotators and admins on anything;
    with auth off nobody is checked (the demo's simulated users)."""
    if ctx.principal.authenticated and ctx.principal.role == "user":
        return ctx.user_id
    return None


class ArenaService:
    """Two anonymous answers to one prompt: production vs candidate, or production vs itself."""

    def __init__(self, db: Database, engine: Engine, pool: ModelPool, lanes: ThreadLanes, metrics: ServeMetrics,
                 writer: GroupCommitWriter) -> None:
        self.db, self.engine, self.pool, self.lanes, self.metrics, self.writer = db, engine, pool, lanes, metrics, writer

    def contenders(self) -> tuple[ModelVersion, ModelVersion]:
        """Production against the candidate; without one (or when it is production), against the other
        version the traffic split sends users to; only with neither, production against itself."""
        try:
            production = registry.get(self.db, PRODUCTION)
        except registry.VersionNotFound:
            raise ServingError("the arena needs a production version: point the 'production' alias at one",
                               status=503, type="server_error", code="no_production") from None
        try:
            candidate = registry.get(self.db, CANDIDATE)
        except registry.VersionNotFound:
            candidate = production
        if candidate.name == production.name:
            routing, _ = self.pool.current_routing()
            for name, share in sorted(routing.normalised().items(), key=lambda kv: -kv[1]):
                try:
                    other = registry.get(self.db, name)
                except registry.VersionNotFound:
                    continue
                if share > 0 and other.name != production.name and other.kind == "chat":
                    candidate = other
                    break
        if candidate.kind != "chat" or production.kind != "chat":
            raise ServingError("the arena compares chat models; 'production' and 'candidate' must be chat versions",
                               status=503, type="server_error", code="not_chat")
        return production, candidate

    async def battle(self, req: p.ArenaRequest, ctx: RequestContext) -> p.ArenaResponse:
        messages = [m.plain() for m in req.messages]
        if req.battle_id:
            return await self.next_turn(req.battle_id, messages, req, ctx)
        production, candidate = await self.lanes.store(self.contenders)
        for v in {production.name: production, candidate.name: candidate}.values():
            await self.lanes.generate(self.pool.ensure_loaded, v)
        params = SamplingParams(max_tokens=req.max_tokens, temperature=req.temperature, top_p=req.top_p)
        return await self.lanes.generate(self._battle, production, candidate, messages, params, ctx.user_id)

    def _battle(self, production: ModelVersion, candidate: ModelVersion, messages: list[dict], params: SamplingParams,
                user_id: str) -> p.ArenaResponse:
        started = time.perf_counter()
        if production.name == candidate.name:  # two independent samples, one batched generate
            gens = self.engine.chat(production.name, messages, params, n=2)
            pairs = [(production, gens[0]), (production, gens[1])]
        else:
            pairs = [(production, self.engine.chat(production.name, messages, params)[0]),
                     (candidate, self.engine.chat(candidate.name, messages, params)[0])]
        for version, g in pairs:
            self.metrics.observe_generation(version.name, version.name if version.adapter_path else "base",
                                            g.prompt_tokens, g.completion_tokens, (time.perf_counter() - started) / 2)
        if secrets.randbelow(2):
            pairs.reverse()
        battle_id = new_id("battle")
        answers = tuple((new_id("chatcmpl"), version.name, g.text) for version, g in pairs)
        self.writer.write([BattleOp(battle_id=battle_id, user_id=user_id, messages=messages, answers=answers)])
        return p.ArenaResponse(battle_id=battle_id, answers=[
            p.ArenaAnswer(slot=slot, content=text, request_id=rid) for slot, (rid, _, text) in zip("ab", answers)])


    async def next_turn(self, battle_id: str, follow_up: list[dict], req: p.ArenaRequest,
                        ctx: RequestContext) -> p.ArenaResponse:
        """The battle's next turn: each side answers ``follow_up`` after its own conversation so far."""
        state = await self.lanes.store(feedback_queries.battle_state, self.db, battle_id)
        if state is None:
            raise ServingError(f"no arena battle {battle_id!r}: give a battle_id the gateway returned to you",
                               status=404, param="battle_id", code="not_found")
        owner = _owner(ctx)
        if owner is not None and state.user_id != owner:
            raise ServingError(f"battle {battle_id!r} was not served to you", status=403, type="permission_error",
                               param="battle_id", code="not_yours")
        if state.voted:
            raise ServingError(f"battle {battle_id!r} was voted on: a vote ends a battle; start a new one "
                               "(leave battle_id out)", status=409, param="battle_id", code="battle_over")
        if state.turns >= MAX_TURNS:
            raise ServingError(f"battle {battle_id!r} has {state.turns} turns, the most a battle holds: vote on it "
                               "and start a new one", status=422, param="battle_id", code="too_many_turns")
        if follow_up[-1]["role"] != "user":
            raise ServingError("a follow-up ends with the user's turn; send the new user message only "
                               "(the gateway keeps each side's conversation)", status=422, param="messages")
        try:
            version_a = await self.lanes.store(registry.get, self.db, state.version_a)
            version_b = await self.lanes.store(registry.get, self.db, state.version_b)
        except registry.VersionNotFound as e:
            raise ServingError(f"battle {battle_id!r} cannot go on: {e}; vote on it or start a new one",
                               status=409, param="battle_id", code="battle_over") from None
        for v in {version_a.name: version_a, version_b.name: version_b}.values():
            await self.lanes.generate(self.pool.ensure_loaded, v)
        params = SamplingParams(max_tokens=req.max_tokens, temperature=req.temperature, top_p=req.top_p)
        sides = ((version_a, [*state.history_a, *follow_up]), (version_b, [*state.history_b, *follow_up]))
        answers = await self.lanes.generate(self._answer_both, sides, params)
        try:
            await self.writer.submit_async([BattleTurnOp(
                battle_id=battle_id, user_id=ctx.user_id, owner=owner,
                previous=(state.request_id_a, state.request_id_b), answers=answers)])
        except UnitRejected as e:
            first = e.errors[0]
            raise ServingError(first.message, status=_STATUS[first.code], param="battle_id",
                               type="permission_error" if first.code == "forbidden" else "invalid_request_error",
                               code={"duplicate": "battle_conflict"}.get(first.code, _CODES[first.code])) from None
        return p.ArenaResponse(battle_id=battle_id, turn=state.turns + 1, answers=[
            p.ArenaAnswer(slot=slot, content=text, request_id=rid) for slot, (rid, _, _, text) in zip("ab", answers)])

    def _answer_both(self, sides: tuple, params: SamplingParams) -> tuple:
        started = time.perf_counter()
        out = []
        for version, messages in sides:
            g = self.engine.chat(version.name, messages, params)[0]
            self.metrics.observe_generation(version.name, version.name if version.adapter_path else "base",
                                            g.prompt_tokens, g.completion_tokens, (time.perf_counter() - started) / 2)
            out.append((new_id("chatcmpl"), version.name, messages, g.text))
        return tuple(out)


class FeedbackService:
    """Votes, thumbs, events and batches; each returns only once the store has committed it."""

    def __init__(self, db: Database, lanes: ThreadLanes, metrics: ServeMetrics, writer: GroupCommitWriter) -> None:
        self.db, self.lanes, self.metrics, self.writer = db, lanes, metrics, writer

    async def _write(self, ops: list[Op], params: list[str]) -> list[OpResult]:
        try:
            return await self.writer.submit_async(ops)  # one event-loop wake-up per commit, not per unit
        except UnitRejected as e:
            first = e.errors[0]
            single = len(ops) == 1
            message = first.message if single else str(e) + "; nothing of the batch was stored"
            hint = {"not_found": ": give an id the gateway returned to you", "forbidden": "",
                    "duplicate": "", "invalid": ""}[first.code] if single else ""
            raise ServingError(message + hint, status=_STATUS[first.code],
                               param=params[first.index] if single else f"events.{first.index}",
                               type="permission_error" if first.code == "forbidden" else "invalid_request_error",
                               code=_CODES[first.code]) from None

    def _observe(self, op: Op, result: OpResult) -> None:
        if isinstance(op, VoteOp) and result.versions:
            self.metrics.observe_vote(op.choice, *result.versions)
        elif isinstance(op, ThumbOp) and result.version:
            self.metrics.observe_thumb(op.rating, result.version)
        elif isinstance(op, EventOp) and result.version:
            self.metrics.observe_event(op.kind, result.version)

    @staticmethod
    def _vote_op(req: p.VoteRequest, ctx: RequestContext) -> VoteOp:
        return VoteOp(battle_id=req.battle_id, user_id=ctx.user_id, choice=req.choice, owner=_owner(ctx))

    @staticmethod
    def _thumb_op(req: p.ThumbsRequest, ctx: RequestContext) -> ThumbOp:
        return ThumbOp(request_id=req.request_id, user_id=ctx.user_id, rating=req.rating, comment=req.comment,
                       correction=req.correction, owner=_owner(ctx))

    @staticmethod
    def _event_op(req: p.EventRequest, ctx: RequestContext) -> EventOp:
        return EventOp(kind=req.kind, request_id=req.request_id, user_id=ctx.user_id, payload=req.payload(),
                       owner=_owner(ctx))

    async def _write_one(self, op: Op, key: str, *, not_found: str) -> OpResult:
        """Write one op durably and count it; a missing target names what was missing (``not_found``)."""
        try:
            (result,) = await self._write([op], [key])
        except ServingError as e:
            if e.code == "not_found":
                e.code = not_found
            raise
        self._observe(op, result)
        return result

    async def vote(self, req: p.VoteRequest, ctx: RequestContext) -> p.VoteResponse:
        op = self._vote_op(req, ctx)
        result = await self._write_one(op, "battle_id", not_found="battle_not_found")
        assert result.id is not None and result.versions is not None
        return p.VoteResponse(id=result.id, battle_id=req.battle_id, choice=req.choice,
                              versions={"a": result.versions[0], "b": result.versions[1]})

    async def thumbs(self, req: p.ThumbsRequest, ctx: RequestContext) -> p.ThumbsResponse:
        op = self._thumb_op(req, ctx)
        result = await self._write_one(op, "request_id", not_found="request_not_found")
        assert result.id is not None
        return p.ThumbsResponse(id=result.id, request_id=req.request_id, rating=req.rating)

    async def event(self, req: p.EventRequest, ctx: RequestContext) -> p.EventResponse:
        op = self._event_op(req, ctx)
        result = await self._write_one(op, "request_id", not_found="request_not_found")
        assert result.id is not None and result.version is not None
        return p.EventResponse(id=result.id, request_id=req.request_id, kind=req.kind, version=result.version)

    async def batch(self, req: p.FeedbackBatchRequest, contexts: list[RequestContext]) -> p.FeedbackBatchResponse:
        ops: list[Op] = []
        for item, ctx in zip(req.events, contexts, strict=True):
            if isinstance(item, p.BatchVote):
                ops.append(self._vote_op(item, ctx))
            elif isinstance(item, p.BatchThumbs):
                ops.append(self._thumb_op(item, ctx))
            else:
                ops.append(self._event_op(item, ctx))
        results = await self._write(ops, [f"events.{i}" for i in range(len(ops))])
        for op, result in zip(ops, results, strict=True):
            self._observe(op, result)
        return p.FeedbackBatchResponse(stored=len(results), results=[
            p.BatchItemResult(index=i, type=item.type, id=int(r.id or 0))
            for i, (item, r) in enumerate(zip(req.events, results, strict=True))])
