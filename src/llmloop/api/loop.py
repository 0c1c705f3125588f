"""``/api/v1/loop``: the loop's state and history (L1, L2), the traffic split (S8), and the admin's
hands on the rollout: promote, roll back, pause, resume — each a store/registry call.

Promote and roll back are the loop controller's own admin decision (``loop.controller.admin``,
what ``llmloop loop promote|rollback`` does); moving production by hand outside a round is
``PUT /api/v1/models/aliases/production``. Pause/resume set the controller's flag
(``store.loop_events.set_paused``, as ``llmloop loop pause|resume``). The trigger shown beside the
vote counts is the loop policy's (``$LLMLOOP_LOOP_POLICY``, else the shipped
``configs/loop/weekly.yaml`` when the gateway finds it).
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from llmloop.api.common import Admin, Annotator, actor, blocking, gateway, plain
from llmloop.errors import UserError
from llmloop.serve.auth import Principal

router = APIRouter(prefix="/api/v1/loop", tags=["loop"])


class DecisionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field("", description="Why (kept in the loop's events as the decision's evidence)")


class PauseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field("", description="Why (kept in the loop's events)")


def _policy() -> Any:
    """``$LLMLOOP_LOOP_POLICY``, else the shipped ``configs/loop/weekly.yaml`` when found; else None."""
    from llmloop.api.train import presets_dirs
    from llmloop.loop.policy import load_policy

    path = os.environ.get("LLMLOOP_LOOP_POLICY")
    if not path:
        path = next((str(d / "loop" / "weekly.yaml") for d in presets_dirs() if (d / "loop" / "weekly.yaml").is_file()), None)
    return load_policy(path) if path else None


def _status(db: Any) -> dict[str, Any]:
    """``loop.status.loop_status`` (what ``llmloop loop status`` prints), plus the paused flag, this
    week's votes and the trigger's threshold for the arena's counter."""
    from llmloop.loop.status import loop_status
    from llmloop.store import feedback, loop_events

    problem = None
    try:
        policy = _policy()
    except UserError as e:  # a broken policy file (PolicyError) must not hide the rest of the status
        policy, problem = None, f"the loop policy cannot be read: {e}"
    out = loop_status(db, policy)
    week_start = dt.datetime.now(dt.UTC) - dt.timedelta(days=7)
    out["paused"] = loop_events.get_state(db).paused
    out["votes_this_week"] = sum(1 for v in feedback.voted_battles(db) if v.voted_at >= week_start)
    out["trigger"] = plain(policy.trigger) if policy is not None else None
    if policy is None:
        out["next_trigger"] = problem or "no loop policy: set LLMLOOP_LOOP_POLICY on the gateway"
    return out


@router.get("/status")
async def status(request: Request, principal: Principal = Annotator) -> dict[str, Any]:
    """Controller phase, current round, production/candidate, votes this week and unused vs the trigger."""
    return await blocking(request, _status, gateway(request).db)


def _history(db: Any, limit: int) -> dict[str, Any]:
    from llmloop.store import loop_events, rounds

    return {"rounds": plain(list(reversed(rounds.list_rounds(db)))),
            "events": plain(list(reversed(loop_events.list_events(db, limit=limit))))}


@router.get("/history")
async def history(request: Request, limit: int = 200, principal: Principal = Annotator) -> dict[str, Any]:
    """Every round (newest first) and the loop's latest events with their evidence."""
    return await blocking(request, _history, gateway(request).db, limit)


@router.get("/split")
async def split(request: Request, principal: Principal = Annotator) -> dict[str, Any]:
    """The traffic split now (weights, shares, who set it and why)."""
    gw = gateway(request)
    return plain(await blocking(request, gw.admin.split))


class SplitChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    weights: dict[str, float] = Field(min_length=1, max_length=32,
                                      description="Alias or version → share, e.g. {'production': 90, 'candidate': 10}")
    reason: str = Field(min_length=1, max_length=2000, description="Why (kept in the split's history: the audit log)")


@router.put("/split")
async def set_split(body: SplitChange, request: Request, principal: Principal = Admin) -> dict[str, Any]:
    """Change the traffic split (the gateway's ``PUT /v1/admin/split``, same checks), with a reason."""
    from llmloop.serve import protocol

    gw = gateway(request)
    req = protocol.SplitRequest(weights=body.weights, reason=body.reason)
    return plain(await blocking(request, gw.admin.set_split, req, actor(principal)))


def _admin(db: Any, action: str, reason: str, who: str) -> dict[str, Any]:
    from llmloop.loop.controller import admin
    from llmloop.store import registry

    message = admin(db, action, reason=reason, actor=who)
    return {"message": message, "production": registry.resolve_alias(db, "production")}


@router.post("/promote")
async def promote(body: DecisionRequest, request: Request, principal: Principal = Admin) -> dict[str, Any]:
    """Promote the round's candidate now (at the gate or during the canary): ``loop.controller.admin``."""
    who = actor(principal)
    return await blocking(request, _admin, gateway(request).db, "promote", body.reason or f"promoted by {who} (REST)", who)


@router.post("/rollback")
async def rollback(body: DecisionRequest, request: Request, principal: Principal = Admin) -> dict[str, Any]:
    """Roll the round's candidate back, or — with no round in progress — production back to what it
    was before the last promotion: ``loop.controller.admin``."""
    who = actor(principal)
    return await blocking(request, _admin, gateway(request).db, "rollback", body.reason or f"rolled back by {who} (REST)",
                          who)


@router.post("/pause")
async def pause(body: PauseRequest, request: Request, principal: Principal = Admin) -> dict[str, Any]:
    from llmloop.store.loop_events import set_paused

    who = actor(principal)
    return plain(await blocking(request, set_paused, gateway(request).db, True, reason=body.reason or f"paused by {who}",
                                actor=who))


@router.post("/resume")
async def resume(body: PauseRequest, request: Request, principal: Principal = Admin) -> dict[str, Any]:
    from llmloop.store.loop_events import set_paused

    who = actor(principal)
    return plain(await blocking(request, set_paused, gateway(request).db, False,
                                reason=body.reason or f"resumed by {who}", actor=who))
