"""``create_gateway_app()``: the OpenAI-compatible gateway as a FastAPI app — where serve's parts meet.

It knows only the gateway (``/v1/…``, ``/health``, ``/metrics``); what else one process serves (the
admin API, the loop's metrics, the UI) is added by the composition root, ``llmloop.app.create_app``:

    uvicorn --factory llmloop.app:create_app      # or: llmloop serve --port 8000

At startup what the aliases and the split name is loaded; other versions load on first use, and a
background task reconciles every ``reconcile_seconds`` (loads a newly promoted version before its
first request, unloads idle versions nothing names). One pure-ASGI middleware gives every request an
id (``x-request-id``), refuses bodies over ``max_body_bytes`` (413), counts and times every request
for ``/metrics`` (streams to their last byte) and writes one access-log line per request.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmloop.inference.base import Engine
from llmloop.serve.admin import AdminService, runtime_version
from llmloop.serve.auth import AuthService
from llmloop.serve.capture import ArenaService, FeedbackService
from llmloop.serve.config import ServeConfig
from llmloop.serve.logs import request_id_var
from llmloop.serve.request_metrics import ServeMetrics
from llmloop.serve.pool import Attribution, ModelPool, attribution_var
from llmloop.serve.routes import (
    REQUEST_ID_HEADER,
    VERSION_HEADER,
    add_routes,
    error_response,
)
from llmloop.serve.routing import RoutingConfig
from llmloop.serve.serving import (
    HealthService,
    Limits,
    OpenAIServingChat,
    OpenAIServingCompletion,
    OpenAIServingModels,
    ThreadLanes,
)
from llmloop.serve.sessions import SessionService
from llmloop.store.db import Database
from llmloop.store.ingest import GroupCommitWriter

log = logging.getLogger("llmloop.serve")
access_log = logging.getLogger("llmloop.serve.access")


@dataclass(frozen=True)
class Gateway:
    """The serving objects one app uses; routes reach them through ``app.state.gateway``."""

    db: Database
    engine: Engine
    config: ServeConfig
    routing: RoutingConfig
    lanes: ThreadLanes
    metrics: ServeMetrics
    writer: GroupCommitWriter
    auth: AuthService
    pool: ModelPool
    sessions: SessionService
    chat: OpenAIServingChat
    completions: OpenAIServingCompletion
    models: OpenAIServingModels
    arena: ArenaService
    feedback: FeedbackService
    admin: AdminService
    health: HealthService

    @classmethod
    def build(cls, db: Database, engine: Engine, routing: RoutingConfig, config: ServeConfig) -> Gateway:
        lanes, metrics, writer = ThreadLanes(), ServeMetrics(), GroupCommitWriter(db)
        auth = AuthService(db, require_keys=config.require_keys, default_rate_limit=config.rate_limit_per_minute)
        pool = ModelPool(db, engine, routing, unload_idle_seconds=config.unload_idle_seconds,
                         cache_seconds=config.registry_cache_seconds)
        if config.base_model:
            pool.runtime[config.served_model_name] = runtime_version(config.served_model_name, base_model=config.base_model)
        sessions = SessionService(db, engine, max_tokens=config.session_max_tokens, ttl_seconds=config.session_ttl_seconds)
        limits = Limits(max_tokens=config.max_tokens_limit, max_prompt_tokens=config.max_prompt_tokens,
                        record_answers=config.record_answers)
        return cls(
            db=db, engine=engine, config=config, routing=routing, lanes=lanes, metrics=metrics, writer=writer,
            auth=auth, pool=pool, sessions=sessions,
            chat=OpenAIServingChat(db, engine, pool, lanes, metrics, writer, sessions, limits),
            completions=OpenAIServingCompletion(db, engine, pool, lanes, metrics, writer, limits),
            models=OpenAIServingModels(db, pool),
            arena=ArenaService(db, engine, pool, lanes, metrics, writer),
            feedback=FeedbackService(db, lanes, metrics, writer),
            admin=AdminService(db, engine, pool, auth, base_model=config.base_model),
            health=HealthService(db, engine, pool, lanes),
        )


class _TooLarge(BaseException):  # noqa: N818
    """A body past the limit. BaseException, so that FastAPI's body parser (which turns any Exception
    into a 400) and the app's handlers let it through to the middleware that answers 413."""


_VERSION_HEADER_BYTES = VERSION_HEADER.encode("latin-1")
_READS = frozenset({"GET", "HEAD", "OPTIONS"})
_ADMIN_PATHS = ("/api/", "/v1/admin/", "/v1/load_lora_adapter", "/v1/unload_lora_adapter")
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class GatewayMiddleware:
    """Request id, body-size limit, metrics and the access log, in one pass (one layer is cheaper
    than four: the gateway's own overhead is a measured goal)."""

    def __init__(self, app: ASGIApp, metrics: ServeMetrics, max_body_bytes: int,
                 on_admin_write: Callable[[], None] = lambda: None) -> None:
        self.app, self.metrics, self.max_body_bytes = app, metrics, max_body_bytes
        self.on_admin_write = on_admin_write

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope.get("headers") or [])
        client_id = headers.get(b"x-request-id", b"").decode("latin-1")
        rid = client_id if _CLIENT_ID.match(client_id) else f"req-{uuid.uuid4().hex}"
        token = request_id_var.set(rid)
        attribution = Attribution()
        attribution_token = attribution_var.set(attribution)
        seen: dict[str, object] = {"status": 500, "version": None, "answer": None, "done": False, "started": False}
        limit = self.max_body_bytes
        try:
            declared = int(headers.get(b"content-length", b"0") or 0)
        except ValueError:
            declared = 0
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge
            return message

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"], seen["started"] = message["status"], True
                if scope["method"] not in _READS and scope["path"].startswith(_ADMIN_PATHS):
                    self.on_admin_write()  # an alias, split or adapter may have moved: route by the store now
                for k, v in message.get("headers", []):
                    name = k.decode("latin-1").lower()
                    if name == VERSION_HEADER:
                        seen["version"] = v.decode("latin-1")
                    elif name == REQUEST_ID_HEADER:
                        seen["answer"] = v.decode("latin-1")
                extra = [(b"x-request-id", rid.encode())]
                if seen["version"] is None and attribution.version is not None:
                    # an error after the version was resolved (an upstream 5xx, a load failure, a bug):
                    # it carries the version, so /metrics and the canary count it against that version
                    seen["version"] = attribution.version
                    extra.append((_VERSION_HEADER_BYTES, attribution.version.encode("latin-1")))
                message["headers"] = [*message.get("headers", []), *extra]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                seen["done"] = True
                self._observe(scope, seen, started, rid)
            await send(message)

        try:
            if declared > limit:
                raise _TooLarge
            await self.app(scope, counted, wrapped)
        except _TooLarge:
            if not seen["started"]:
                response = error_response(413, f"the request body is larger than {limit} bytes; send less "
                                               f"(the server's --max-body-bytes)", "invalid_request_error",
                                          code="body_too_large")
                await response(scope, receive, wrapped)
        except Exception as e:
            # Starlette answers an unhandled exception outside this middleware (ServerErrorMiddleware), so
            # without this the 500 would carry neither the request id nor the serving version.
            if seen["started"]:
                raise
            log.exception("%s %s failed", scope.get("method"), scope.get("path"))
            await error_response(500, f"internal error: {e.__class__.__name__}: {e}", "server_error")(
                scope, receive, wrapped)
        finally:
            if not seen["done"]:  # failed or disconnected before the last byte
                self._observe(scope, seen, started, rid)
            attribution_var.reset(attribution_token)
            request_id_var.reset(token)

    def _observe(self, scope: Scope, seen: dict[str, object], started: float, rid: str) -> None:
        route = scope.get("route")
        endpoint = getattr(route, "path", None) or "unmatched"
        seconds = time.perf_counter() - started
        self.metrics.observe_request(endpoint, int(seen["status"]), seen["version"], seconds)  # type: ignore[arg-type]
        if access_log.isEnabledFor(logging.INFO):
            access_log.info("%s %s %s", scope.get("method"), scope.get("path"), seen["status"], extra={
                "request_id": rid, "method": scope.get("method"), "path": scope.get("path"),
                "status": seen["status"], "duration_ms": round(seconds * 1000, 3), "version": seen["version"],
                "answer_id": seen["answer"]})


def create_gateway_app(db: Database, engine: Engine, routing: RoutingConfig | None = None,
                       config: ServeConfig | None = None, *, owns_db: bool = False,
                       extensions: Sequence[Callable[[FastAPI, Gateway], None]] = ()) -> FastAPI:
    """The gateway app over ``db`` and ``engine``. ``routing`` defaults to the config's ``split`` (used
    while the store holds no split). Each of ``extensions`` is called with the app and its gateway
    once the gateway's routes are on it and before its middleware wraps it (more routes, more metric
    collectors). ``owns_db``: dispose of ``db`` when the app shuts down."""
    config = config or ServeConfig()
    gateway = Gateway.build(db, engine, routing or RoutingConfig.from_split(config.split), config)

    async def reconcile_forever() -> None:
        while True:
            await asyncio.sleep(config.reconcile_seconds)
            try:
                await gateway.lanes.generate(gateway.pool.reconcile)
            except Exception:  # noqa: BLE001 - logged; the next round tries again
                log.exception("reconciling loaded versions failed")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        loaded = await gateway.lanes.generate(gateway.pool.preload)
        routing_now, source = await gateway.lanes.store(gateway.pool.current_routing)
        log.info("serving %s; routing %s (%s)", loaded or "nothing yet (no production alias)",
                 routing_now.normalised(), source)
        task = asyncio.create_task(reconcile_forever())
        try:
            yield
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
            gateway.lanes.shutdown()
            gateway.writer.close()
            aclose = getattr(gateway.engine, "aclose", None)
            if aclose is not None:
                await aclose()
            close = getattr(gateway.engine, "close", None)
            if close is not None:
                close()
            if owns_db:
                gateway.db.dispose()

    app = FastAPI(title="llmloop gateway", version="1", lifespan=lifespan)
    app.state.gateway = gateway
    add_routes(app)
    for extend in extensions:
        extend(app, gateway)
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=config.cors_origins, allow_methods=["*"],
                           allow_headers=["*"], expose_headers=["x-request-id", REQUEST_ID_HEADER, VERSION_HEADER])
    app.add_middleware(GatewayMiddleware, metrics=gateway.metrics, max_body_bytes=config.max_body_bytes,
                       on_admin_write=gateway.pool.invalidate)
    return app
