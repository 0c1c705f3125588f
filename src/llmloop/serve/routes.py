"""Thin FastAPI routers: check the caller, parse the body into a protocol model, call one serving
method, render. Every error leaves as OpenAI's ``{"error": {...}}`` body, 422s included."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi import Path as FastAPIPath
from fastapi.exceptions import RequestValidationError
from fastapi.responses import (
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from llmloop.errors import LlmloopError
from llmloop.serve import protocol as p
from llmloop.serve.auth import Principal, StoreNeeded
from llmloop.serve.http_errors import http_error
from llmloop.serve.routing import ANONYMOUS
from llmloop.serve.serving import EventStream, RequestContext, ServingError

if TYPE_CHECKING:
    from llmloop.serve.gateway import Gateway

log = logging.getLogger("llmloop.serve")
USER_HEADER = "x-llmloop-user"
REQUEST_ID_HEADER = "x-llmloop-request-id"
VERSION_HEADER = "x-llmloop-version"
SESSION_HEADER = "x-llmloop-session-id"
MAX_USER_CHARS = 200  # the store's user_id column

openai_router = APIRouter(prefix="/v1", tags=["openai"])
feedback_router = APIRouter(prefix="/v1", tags=["arena & feedback"])
admin_router = APIRouter(tags=["admin"])
ops_router = APIRouter(tags=["operations"])


def _gateway(request: Request) -> Gateway:
    return request.app.state.gateway


def _caller(role: str):  # noqa: ANN202
    async def dependency(request: Request) -> Principal:
        # A dict lookup on the event loop while the key cache is fresh (no thread hand-off: FastAPI runs
        # a plain ``def`` dependency on a worker thread); a one-row indexed read every few seconds.
        gw = _gateway(request)
        client = request.client.host if request.client else None
        authorization = request.headers.get("authorization")
        try:
            return gw.auth.principal(authorization, role, client, inline=True)
        except StoreNeeded:
            return await gw.lanes.store(gw.auth.principal, authorization, role, client)

    dependency.__name__ = f"needs_{role}"
    return dependency


User = Depends(_caller("user"))
Admin = Depends(_caller("admin"))


def user_id(body_user: str | None, request: Request, principal: Principal) -> str:
    """Who the request is for. Auth off: the body's ``user``, else ``X-LLMLoop-User``, else ``anonymous``.
    A user key: the key's user (naming another is refused). Annotator/admin keys may name the user."""
    named = body_user or request.headers.get(USER_HEADER)
    if named and len(named) > MAX_USER_CHARS:
        raise ServingError(f"the user id has {len(named)} characters; at most {MAX_USER_CHARS} are allowed",
                           param="user", code="user_too_long")
    if not principal.authenticated:
        return named or ANONYMOUS
    if principal.role == "user":
        if named and named != principal.user_id:
            raise ServingError(f"this key acts as user {principal.user_id!r} and cannot act for {named!r}; leave "
                               f"`user` out or use an annotator/admin key", status=403, type="permission_error",
                               param="user", code="user_mismatch")
        return principal.user_id or ANONYMOUS
    return named or principal.user_id or ANONYMOUS


def context(body_user: str | None, request: Request, principal: Principal) -> RequestContext:
    uid = user_id(body_user, request, principal)
    _gateway(request).auth.check_rate(principal, uid)
    return RequestContext(user_id=uid, principal=principal)


def _render(result: BaseModel | EventStream, request_id: str, version: str, session_id: str | None = None) -> Response:
    headers = {REQUEST_ID_HEADER: request_id, VERSION_HEADER: version}
    if session_id:
        headers[SESSION_HEADER] = session_id
    if isinstance(result, EventStream):
        return StreamingResponse(result.events, media_type="text/event-stream",
                                 headers={**headers, "cache-control": "no-cache", "x-accel-buffering": "no"})
    # pydantic's own serialiser (Rust) writes the bytes: no dict round trip through the json module
    return Response(result.model_dump_json(), media_type="application/json", headers=headers)


_ERRORS: dict[int | str, Any] = {
    code: {"model": p.ErrorResponse} for code in (400, 401, 403, 404, 409, 413, 422, 429, 503)
}


@openai_router.post("/chat/completions", responses=_ERRORS, response_model=p.ChatCompletionResponse)
async def chat_completions(body: p.ChatCompletionRequest, request: Request, principal: Principal = User) -> Response:
    result = await _gateway(request).chat.create(body, context(body.user, request, principal))
    if isinstance(result, EventStream):
        return _render(result, result.request_id, result.version, result.session_id)
    return _render(result, result.id, result.model, result.session_id)


@openai_router.post("/completions", responses=_ERRORS, response_model=p.CompletionResponse)
async def completions(body: p.CompletionRequest, request: Request, principal: Principal = User) -> Response:
    result = await _gateway(request).completions.create(body, context(body.user, request, principal))
    if isinstance(result, EventStream):
        return _render(result, result.request_id, result.version)
    return _render(result, result.id, result.model)


@openai_router.get("/models", responses=_ERRORS, response_model=p.ModelList)
async def list_models(request: Request, principal: Principal = User) -> p.ModelList:
    gw = _gateway(request)
    context(None, request, principal)  # rate limit
    return await gw.lanes.store(gw.models.list)


@openai_router.get("/models/{model}", responses=_ERRORS, response_model=p.ModelCard)
async def get_model(model: str, request: Request, principal: Principal = User) -> p.ModelCard:
    gw = _gateway(request)
    context(None, request, principal)  # rate limit
    return await gw.lanes.store(gw.models.get, model)


@openai_router.get("/sessions/{session_id}", responses=_ERRORS, response_model=p.SessionView)
async def get_session(session_id: str, request: Request, user: str | None = None,
                      principal: Principal = User) -> p.SessionView:
    gw = _gateway(request)
    ctx = context(user, request, principal)
    return p.SessionView(id=session_id, messages=await gw.lanes.store(gw.sessions.view, session_id, ctx.user_id))


@openai_router.delete("/sessions/{session_id}", status_code=204, responses=_ERRORS)
async def delete_session(session_id: str, request: Request, user: str | None = None,
                         principal: Principal = User) -> Response:
    gw = _gateway(request)
    ctx = context(user, request, principal)
    await gw.lanes.store(gw.sessions.delete, session_id, ctx.user_id)
    return Response(status_code=204)


@feedback_router.post("/arena", responses=_ERRORS, response_model=p.ArenaResponse)
async def arena(body: p.ArenaRequest, request: Request, principal: Principal = User) -> Response:
    result = await _gateway(request).arena.battle(body, context(body.user, request, principal))
    return JSONResponse(result.model_dump(mode="json"), headers={REQUEST_ID_HEADER: result.battle_id})


@feedback_router.post("/feedback/vote", status_code=201, responses=_ERRORS, response_model=p.VoteResponse)
async def vote(body: p.VoteRequest, request: Request, principal: Principal = User) -> p.VoteResponse:
    return await _gateway(request).feedback.vote(body, context(body.user, request, principal))


@feedback_router.post("/feedback/thumbs", status_code=201, responses=_ERRORS, response_model=p.ThumbsResponse)
async def thumbs(body: p.ThumbsRequest, request: Request, principal: Principal = User) -> p.ThumbsResponse:
    return await _gateway(request).feedback.thumbs(body, context(body.user, request, principal))


@feedback_router.post("/feedback/event", status_code=201, responses=_ERRORS, response_model=p.EventResponse)
async def event(body: p.EventRequest, request: Request, principal: Principal = User) -> p.EventResponse:
    return await _gateway(request).feedback.event(body, context(body.user, request, principal))


@feedback_router.post("/feedback/batch", status_code=201, responses=_ERRORS, response_model=p.FeedbackBatchResponse)
async def batch(body: p.FeedbackBatchRequest, request: Request, principal: Principal = User) -> p.FeedbackBatchResponse:
    gw = _gateway(request)
    contexts = [RequestContext(user_id=user_id(e.user, request, principal), principal=principal) for e in body.events]
    gw.auth.check_rate(principal, contexts[0].user_id)  # one request, one token
    return await gw.feedback.batch(body, contexts)


# -- admin ---------------------------------------------------------------------------------------
@admin_router.get("/v1/admin/split", responses=_ERRORS, response_model=p.SplitView)
async def get_split(request: Request, principal: Principal = Admin) -> p.SplitView:
    gw = _gateway(request)
    return await gw.lanes.store(gw.admin.split)


@admin_router.put("/v1/admin/split", responses=_ERRORS, response_model=p.SplitView)
async def put_split(body: p.SplitRequest, request: Request, principal: Principal = Admin) -> p.SplitView:
    gw = _gateway(request)
    return await gw.lanes.store(gw.admin.set_split, body, principal.user_id or "admin")


@admin_router.get("/v1/admin/split/history", responses=_ERRORS, response_model=list[p.SplitView])
async def split_history(request: Request, principal: Principal = Admin) -> list[p.SplitView]:
    gw = _gateway(request)
    return await gw.lanes.store(gw.admin.split_history)


@admin_router.post("/v1/admin/keys", status_code=201, responses=_ERRORS, response_model=p.KeyView)
async def create_key(body: p.KeyCreateRequest, request: Request, principal: Principal = Admin) -> p.KeyView:
    gw = _gateway(request)
    return await gw.lanes.store(gw.admin.create_key, body)


@admin_router.get("/v1/admin/keys", responses=_ERRORS, response_model=list[p.KeyView])
async def list_keys(request: Request, principal: Principal = Admin) -> list[p.KeyView]:
    gw = _gateway(request)
    return await gw.lanes.store(gw.admin.list_keys)


@admin_router.delete("/v1/admin/keys/{key_id}", responses=_ERRORS, response_model=p.KeyView)
async def revoke_key(request: Request, key_id: int = FastAPIPath(ge=1, le=2**31), principal: Principal = Admin) -> p.KeyView:
    gw = _gateway(request)
    return await gw.lanes.store(gw.admin.revoke_key, key_id)


@admin_router.post("/v1/load_lora_adapter", responses=_ERRORS, response_class=PlainTextResponse)
async def load_lora_adapter(body: p.LoadLoraAdapterRequest, request: Request, principal: Principal = Admin) -> str:
    gw = _gateway(request)
    return await gw.lanes.generate(gw.admin.load_adapter, body)


@admin_router.post("/v1/unload_lora_adapter", responses=_ERRORS, response_class=PlainTextResponse)
async def unload_lora_adapter(body: p.UnloadLoraAdapterRequest, request: Request, principal: Principal = Admin) -> str:
    gw = _gateway(request)
    return await gw.lanes.generate(gw.admin.unload_adapter, body)


# -- operations ----------------------------------------------------------------------------------
@ops_router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@ops_router.get("/ready")
async def ready(request: Request) -> JSONResponse:
    gw = _gateway(request)
    ok, body = await gw.lanes.store(gw.health.ready)
    return JSONResponse(body, status_code=200 if ok else 503)


@ops_router.get("/metrics")
async def metrics(request: Request) -> Response:
    m = _gateway(request).metrics
    return Response(m.render(), media_type=m.content_type)


# -- errors --------------------------------------------------------------------------------------
def error_response(status: int, message: str, type: str, param: str | None = None, code: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = p.ErrorResponse(error=p.ErrorInfo(message=message, type=type, param=param, code=code))
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


async def _llmloop_error(_: Request, e: Exception) -> JSONResponse:
    assert isinstance(e, LlmloopError)
    return http_error(e)


async def _validation_error(_: Request, e: Exception) -> JSONResponse:
    """FastAPI's 422 in OpenAI's shape; a body that is not JSON at all is a 400."""
    assert isinstance(e, RequestValidationError)
    errors = list(e.errors())
    if any(err.get("type") == "json_invalid" for err in errors):
        detail = next(err for err in errors if err.get("type") == "json_invalid")
        return error_response(400, f"the request body is not valid JSON: {detail.get('ctx', {}).get('error', '')} "
                                   f"at position {detail['loc'][-1]}", "invalid_request_error", code="json_invalid")
    parts, params = [], []
    for err in errors:
        loc = [str(x) for x in err.get("loc", ()) if x != "body"]
        params.append(".".join(loc) or None)
        got = f" (got {err['input']!r:.80})" if "input" in err and not isinstance(err["input"], dict) else ""
        parts.append(f"{'.'.join(loc) or 'body'}: {err.get('msg')}{got}")
    return error_response(422, "; ".join(parts), "invalid_request_error", param=params[0] if params else None,
                          code=errors[0].get("type") if errors else None)


async def _http_error(_: Request, e: Exception) -> JSONResponse:
    assert isinstance(e, StarletteHTTPException)
    type = "not_found_error" if e.status_code == 404 else "invalid_request_error"
    return error_response(e.status_code, str(e.detail), type, headers=dict(e.headers or {}) or None)


async def _unexpected(request: Request, e: Exception) -> JSONResponse:
    """A bug: its traceback in the log, a 500 to the caller (never a 4xx that blames the request)."""
    log.error("%s %s failed", request.method, request.url.path, exc_info=e)
    return error_response(500, f"internal error: {e.__class__.__name__}: {e}", "server_error")


def add_routes(app: FastAPI) -> None:
    for router in (openai_router, feedback_router, admin_router, ops_router):
        app.include_router(router)
    app.add_exception_handler(LlmloopError, _llmloop_error)  # ServingError, UpstreamError, the library's errors
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
