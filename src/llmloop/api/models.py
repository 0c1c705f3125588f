"""``/api/v1/models``: versions with lineage and aliases (M1), and model surgery — LoRA merge (M2)
merges (M3), averaging (M4), quantization (M7) as background tasks,
and checkpoint selection (M6) — each route calls one ``llmloop.models`` / registry function.

Output folders are the workspace's (``models/<name>``): ``out`` is not accepted over HTTP.
The merge-ratio scan (M5) runs as a task whose result carries the (t, score) points.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from llmloop.api.common import Admin, Annotator, actor, blocking, gateway, plain, tasks
from llmloop.api.tasks import Task, TaskView
from llmloop.serve.auth import Principal
from llmloop.serve.serving import ServingError

router = APIRouter(prefix="/api/v1/models", tags=["models"])


class AliasRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str = Field(description="Version the alias points at, e.g. v1.2")
    reason: str = Field("", description="Why (kept in the alias history)")


class SurgeryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    config: dict[str, Any] = Field(description="MergeLoraConfig / MergeConfig fields (without out)")


@router.get("")
async def versions(request: Request, principal: Principal = Annotator) -> list[dict[str, Any]]:
    """Every version: kind, base, adapter, parent, training job, datasets, metrics, stage, aliases."""
    from llmloop.store.registry import list_versions

    return plain(await blocking(request, list_versions, gateway(request).db))


@router.get("/aliases/history")
async def alias_history(request: Request, alias: str | None = None, principal: Principal = Annotator) -> list[dict[str, Any]]:
    from llmloop.store.registry import alias_history as run

    return plain(await blocking(request, run, gateway(request).db, alias))


@router.get("/{name}")
async def version(name: str, request: Request, principal: Principal = Annotator) -> dict[str, Any]:
    from llmloop.store.registry import get

    return plain(await blocking(request, get, gateway(request).db, name))


def _lineage(db: Any, name: str) -> dict[str, Any]:
    """The version's ancestry (parent chain) and, for surgery output, its operation and parents."""
    from llmloop.store.registry import get, get_lineage

    chain, seen = [], set()
    current: str | None = get(db, name).name
    while current and current not in seen:
        seen.add(current)
        v = get(db, current)
        chain.append(plain(v))
        current = v.parent
    surgery = get_lineage(db, chain[0]["name"])
    return {"version": chain[0]["name"], "ancestry": chain, "surgery": plain(surgery) if surgery else None}


@router.get("/{name}/lineage")
async def lineage(name: str, request: Request, principal: Principal = Annotator) -> dict[str, Any]:
    return await blocking(request, _lineage, gateway(request).db, name)


@router.put("/aliases/{alias}")
async def set_alias(alias: str, body: AliasRequest, request: Request, principal: Principal = Admin) -> dict[str, Any]:
    """Point an alias at a version (``production`` = promote; see also /api/v1/loop/promote)."""
    from llmloop.store.registry import get, set_alias as run

    db = gateway(request).db
    await blocking(request, run, db, alias, body.version, reason=body.reason or f"set by {actor(principal)} (REST)")
    return plain(await blocking(request, get, db, alias))


@router.delete("/aliases/{alias}", status_code=204)
async def remove_alias(alias: str, request: Request, principal: Principal = Admin) -> None:
    from llmloop.store.registry import remove_alias as run

    if alias == "production":
        raise ServingError("the production alias cannot be removed, only moved (PUT it, or roll back)", status=409,
                           param="alias", code="production_alias")
    await blocking(request, run, gateway(request).db, alias, reason=f"removed by {actor(principal)} (REST)")


# kind → (config class, runner returning (path, version or None, report)), as "module:name"
SURGERY = {
    "merge-lora": ("llmloop.models.lora_merge:MergeLoraConfig", "llmloop.models.lora_merge:merge_lora"),
    "merge": ("llmloop.models.merge:MergeConfig", "llmloop.models.merge:run_merge"),
    "quantize": ("llmloop.models.quantize:QuantizeConfig", "llmloop.models.quantize:run_quantize"),
    "average": ("llmloop.models.average:AverageConfig", "llmloop.models.average:run_average"),
}


def _load(spec: str) -> Any:
    import importlib

    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def _surgery(kind: str, raw: dict[str, Any]) -> Any:
    if "out" in raw:
        raise ServingError("config.out is chosen by the server (the workspace's models/<name>); leave it out",
                           status=422, param="config.out")
    return _load(SURGERY[kind][0]).model_validate(raw)


def _run_surgery(db: Any, kind: str, config: Any, task: Task) -> dict[str, Any]:
    path, version, report = _load(SURGERY[kind][1])(db, config, lambda done, total: task.progress(done, total))
    return {"path": str(path), "version": plain(version) if version else None, "report": plain(report)}


async def _launch(kind: str, body: SurgeryRequest, request: Request) -> TaskView:
    config = await blocking(request, _surgery, kind, body.config)
    db = gateway(request).db
    return tasks(request).submit(kind, lambda t: _run_surgery(db, kind, config, t)).view()


@router.post("/merge-lora", status_code=202, response_model=TaskView)
async def merge_lora(body: SurgeryRequest, request: Request, principal: Principal = Admin) -> TaskView:
    """Fold a version's LoRA adapter into its base (M2); registers the result as a candidate version."""
    return await _launch("merge-lora", body, request)


@router.post("/merge", status_code=202, response_model=TaskView)
async def merge(body: SurgeryRequest, request: Request, principal: Principal = Admin) -> TaskView:
    """linear | slerp | ties | dare_linear | dare_ties over two or more models or adapters (M3)."""
    return await _launch("merge", body, request)


@router.post("/quantize", status_code=202, response_model=TaskView)
async def quantize(body: SurgeryRequest, request: Request, principal: Principal = Admin) -> TaskView:
    """fp16 / bf16 cast, int8 / int4 (bitsandbytes, GPU) or GGUF, with the size and perplexity delta (M7)."""
    return await _launch("quantize", body, request)


@router.post("/average", status_code=202, response_model=TaskView)
async def average(body: SurgeryRequest, request: Request, principal: Principal = Admin) -> TaskView:
    """SWA / EMA over a training job's saved checkpoints (M4)."""
    return await _launch("average", body, request)


def _scan_config(raw: dict[str, Any]) -> Any:
    from llmloop.models.scan import ScanConfig

    if "report_dir" in raw:
        raise ServingError("config.report_dir is chosen by the server (the workspace's reports/); leave it out",
                           status=422, param="config.report_dir")
    return ScanConfig.model_validate(raw)


def _run_scan(db: Any, config: Any, task: Task) -> dict[str, Any]:
    from llmloop.models.scan import run_scan

    result = run_scan(db, config, lambda done, total: task.progress(done, total))
    return plain(result)


@router.post("/merge-scan", status_code=202, response_model=TaskView)
async def merge_scan(body: SurgeryRequest, request: Request, principal: Principal = Admin) -> TaskView:
    """Merge two models at evenly spaced ratios, score each on an eval set, register the best (M5);
    the result's ``points`` (t, score) are the scan's chart."""
    config = await blocking(request, _scan_config, body.config)
    db = gateway(request).db
    return tasks(request).submit("merge-scan", lambda t: _run_scan(db, config, t)).view()


def _select(db: Any, raw: dict[str, Any]) -> Any:
    from llmloop.models.checkpoint_select import SelectConfig, select_checkpoint

    return select_checkpoint(db, SelectConfig.model_validate(raw))


@router.post("/select-checkpoint")
async def select_checkpoint(body: SurgeryRequest, request: Request, principal: Principal = Admin) -> dict[str, Any]:
    """Best checkpoint of a job by a validation metric, with overfitting detection (M6)."""
    return plain(await blocking(request, _select, gateway(request).db, body.config))
