"""The admin/annotator REST API under ``/api/v1`` (U4): everything the web UI does, for any client.

Thin routers in the shape of ``serve/routes.py``: check the caller's role (the gateway's own API
keys), parse a pydantic request, call ONE library function, return its result; every error is
OpenAI's ``{"error": {...}}`` body. Long work (training, evaluation, merges) runs as a background
task with progress (``/api/v1/tasks``). ``add_admin_routes(app)`` mounts it all on a gateway app
made by ``llmloop.app.create_app``. See ``docs/api.md``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request

from llmloop.api.common import Admin, Annotator, User, blocking, gateway
from llmloop.api.common import (
    tasks as runner,  # not `tasks`: the submodule llmloop.api.tasks takes that name
)
from llmloop.api.tasks import TaskRunner, TaskView
from llmloop.serve.auth import Principal
from llmloop.serve.serving import ServingError

tasks_router = APIRouter(prefix="/api/v1", tags=["tasks"])


@tasks_router.get("/whoami")
async def whoami(request: Request, principal: Principal = User) -> dict[str, Any]:
    """The caller's role and user — any valid key, a user key too (its requests act as that user) —
    so a client (the UI) can show only what the key may do."""
    if not principal.authenticated:  # auth off: loopback callers are the local admin, as on every admin route
        try:
            principal = await blocking(request, gateway(request).auth.principal, None, "admin",
                                       request.client.host if request.client else None)
        except ServingError:
            pass
    return {"role": principal.role, "user": principal.user_id, "admin": principal.at_least("admin"),
            "authenticated": principal.authenticated}


@tasks_router.get("/tasks", response_model=list[TaskView])
async def list_tasks(request: Request, principal: Principal = Annotator) -> list[TaskView]:
    return [t.view() for t in runner(request).list()]


def _task(request: Request, task_id: str) -> Any:
    task = runner(request).get(task_id)
    if task is None:
        raise ServingError(f"no task {task_id!r} in this gateway (tasks live as long as the process); "
                           f"see GET /api/v1/tasks", status=404, type="not_found_error", code="task_not_found")
    return task


@tasks_router.get("/tasks/{task_id}", response_model=TaskView)
async def get_task(task_id: str, request: Request, principal: Principal = Annotator) -> TaskView:
    return _task(request, task_id).view()


@tasks_router.post("/tasks/{task_id}/cancel", response_model=TaskView)
async def cancel_task(task_id: str, request: Request, principal: Principal = Admin) -> TaskView:
    """Queued: never starts. Running: stops at its next progress report (training jobs: POST ./train/jobs/{id}/cancel)."""
    _task(request, task_id)
    return runner(request).cancel(task_id).view()  # type: ignore[union-attr]


def add_admin_routes(app: FastAPI) -> None:
    """Mount ``/api/v1/…`` on a gateway app (``app.state.gateway`` must be set, as ``create_app`` does)."""
    from llmloop.api import data, evaluate, loop, models, monitor, train

    app.state.admin_tasks = TaskRunner()
    monitor.install(app)
    for router in (tasks_router, data.router, train.router, evaluate.router, models.router, loop.router, monitor.router):
        app.include_router(router)
