"""``/api/v1/train``: presets, config validation, launching a training job (T10), its status,
progress, per-step metrics and log, cancel and resume — each route calls one ``llmloop.train.worker``,
``train.config`` or ``store.job_queue`` function.

Jobs are ``train.job_runner``'/``train.worker``'s: ``submit`` records a queued job; unless ``detach`` is
set, the gateway is that job's worker, exactly as ``llmloop train`` is (``worker.claim_here`` then
``worker.run_claimed`` in a thread: the job runs in a process of its own, so training never shares
the gateway's memory or GIL). With ``detach`` a ``llmloop jobs worker`` elsewhere runs it. Cancel
and resume are ``worker.cancel`` / ``worker.resume`` (a cancelled job saves a checkpoint; resumed,
it continues from it).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

import llmloop
from llmloop.api.common import Admin, Annotator, blocking, gateway, plain
from llmloop.errors import UserError
from llmloop.serve.auth import Principal
from llmloop.train.config import STAGES

router = APIRouter(prefix="/api/v1/train", tags=["train"])
# The stages of train.config.STAGE_TABLE, as a Literal: an unknown stage is a 422 naming the known ones.
Stage = Literal[STAGES]  # type: ignore[valid-type]


def presets_dirs() -> list[Path]:
    """Where shipped presets live: $LLMLOOP_CONFIGS, ./configs, and the source checkout's configs/."""
    found = []
    for d in (os.environ.get("LLMLOOP_CONFIGS"), Path.cwd() / "configs", Path(llmloop.__file__).resolve().parents[2] / "configs"):
        if d and Path(d).is_dir() and Path(d).resolve() not in found:
            found.append(Path(d).resolve())
    return found


class Preset(BaseModel):
    stage: str
    name: str = Field(description="File name without .yaml, e.g. tiny")
    path: str
    yaml: str = Field(description="The preset's text (its first line is the command that runs it)")


class TrainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    stage: Stage = Field(description=" | ".join(STAGES))
    yaml: str = Field("", description="The config as YAML text (a preset, edited); empty = defaults")
    overrides: list[str] = Field(default_factory=list, description="key=value overrides, as `--set` takes them")


class ValidateResponse(BaseModel):
    ok: bool
    problems: list[str] = Field(description="Every problem, each naming the key, the value seen and the fix")
    config: dict[str, Any] | None = Field(description="The validated config, defaults filled in")


class LaunchRequest(TrainRequest):
    detach: bool = Field(False, description="Only queue the job; a `llmloop jobs worker` runs it")


class JobView(BaseModel):
    job: dict[str, Any] = Field(description="The job row: id, stage, status, config, output_dir, error, result …")
    progress: dict[str, Any] | None = Field(
        description="From the latest logged step: step, total_steps, percentage, loss, elapsed_s, eta_s")
    run: dict[str, Any] = Field(description="How it runs: backend, worker, pid (null once its process ended), "
                                            "attempts, resume, cancel_requested, gpus")


def _presets() -> list[Preset]:
    out = []
    for root in presets_dirs():
        for stage in STAGES:
            for p in sorted((root / stage).glob("*.yaml")):
                out.append(Preset(stage=stage, name=p.stem, path=str(p), yaml=p.read_text(encoding="utf-8")))
    return out


def load(body: TrainRequest) -> Any:
    """The request's YAML text + overrides through ``train.config.load_config`` (the CLI's path)."""
    from llmloop.train.config import ConfigError, load_config

    folder = Path(tempfile.mkdtemp(prefix="llmloop-config-"))
    path = folder / f"{body.stage}.yaml"
    try:
        path.write_text(body.yaml or "{}", encoding="utf-8")
        return load_config(body.stage, path, body.overrides)
    except ConfigError as e:  # name the request's field, not the temp file
        raise ConfigError("the config (yaml + overrides)", e.problems) from None
    finally:
        path.unlink(missing_ok=True)
        folder.rmdir()


def _inputs(db: Any, stage: str, cfg: Any) -> list[str]:
    """What the config names that the store must hold: the training (and evaluation) dataset, of the
    kind the stage trains on — the checks a launch would fail on, made before it."""
    from llmloop.data.catalog import list_datasets
    from llmloop.train.job_runner import stage_dataset

    problems = []
    refs = [("dataset", cfg.dataset)]
    if getattr(cfg.evaluation, "dataset", None):
        refs.append(("eval.dataset", cfg.evaluation.dataset))
    for key, ref in refs:
        try:
            stage_dataset(db, ref, stage) if key == "dataset" else _check_exists(db, ref)
        except UserError as e:  # DatasetNotFound, TrainingInputError: the user's to fix (a bug: 500)
            known = ", ".join(d["name"] if isinstance(d, dict) else d.name for d in list_datasets(db)) or "none yet"
            problems.append(f"{key}: {str(e).strip(chr(39) + chr(34))} (stored datasets: {known})")
    return problems


def _check_exists(db: Any, ref: str) -> None:
    from llmloop.data.versions import resolve

    resolve(db, ref)


def _validate(db: Any, body: TrainRequest) -> ValidateResponse:
    from llmloop.train.config import ConfigError

    try:
        cfg = load(body)
    except ConfigError as e:
        return ValidateResponse(ok=False, problems=e.problems, config=None)
    problems = _inputs(db, body.stage, cfg)
    return ValidateResponse(ok=not problems, problems=problems, config=cfg.model_dump(mode="json", by_alias=True))


@router.get("/presets", response_model=list[Preset])
async def presets(request: Request, principal: Principal = Annotator) -> list[Preset]:
    return await blocking(request, _presets)


@router.post("/validate", response_model=ValidateResponse)
async def validate(body: TrainRequest, request: Request, principal: Principal = Annotator) -> ValidateResponse:
    """Validate a config without training: every problem at once, the datasets it names included."""
    return await blocking(request, _validate, gateway(request).db, body)


def _stages() -> list[dict[str, Any]]:
    from llmloop.train.config import STAGE_TABLE

    out = []
    for row in STAGE_TABLE:
        stage, cls = row.name, row.config
        fields = {}
        for name, f in cls.model_fields.items():
            default = None if f.is_required() else f.get_default(call_default_factory=True)
            fields[f.alias or name] = {"description": f.description or "", "required": f.is_required(),
                                       "default": plain(default) if not isinstance(default, BaseModel)
                                       else default.model_dump(mode="json", by_alias=True)}
        out.append({"stage": stage, "description": (cls.__doc__ or "").strip().split("\n")[0], "fields": fields})
    return out


@router.get("/stages")
async def stages(request: Request, principal: Principal = Annotator) -> list[dict[str, Any]]:
    """Every training stage with its config's fields (default, description): what a form can offer."""
    return await blocking(request, _stages)


def _seconds(hms: str | None) -> float | None:
    """``trainer_log.jsonl``'s "0:01:05" → 65.0."""
    try:
        h, m, sec = (float(x) for x in str(hms).split(":"))
    except (TypeError, ValueError):
        return None
    return h * 3600 + m * 60 + sec


def _job_view(db: Any, job_id: str) -> JobView:
    from llmloop.store.job_queue import get_job, get_metrics, get_run

    job = get_job(db, job_id)
    steps = [r for r in get_metrics(db, job_id) if r.get("loss") is not None]
    progress = None
    if steps:
        last = steps[-1]
        progress = {"step": last["step"], "total_steps": last.get("total_steps"), "percentage": last.get("percentage"),
                    "loss": last["loss"], "elapsed_s": _seconds(last.get("elapsed_time")),
                    "eta_s": _seconds(last.get("remaining_time"))}
    return JobView(job=plain(job), progress=progress, run=plain(get_run(db, job_id)))


def _run_here(db: Any, job_id: str) -> None:
    """Be the worker of ``job_id``: claim it and run its process in a daemon thread (the CLI's way)."""
    import threading

    from llmloop.train.worker import claim_here, run_claimed

    job = claim_here(db, job_id)
    if job is None:
        return  # another worker took it first: it runs there
    threading.Thread(target=run_claimed, args=(db, job), name=f"llmloop-job-{job_id}", daemon=True).start()


def _launch(db: Any, body: LaunchRequest) -> JobView:
    from llmloop.train.config import ConfigError
    from llmloop.train.job_runner import submit

    cfg = load(body)
    problems = _inputs(db, body.stage, cfg)
    if problems:
        raise ConfigError("the config (yaml + overrides)", problems)
    job = submit(db, body.stage, cfg)
    if not body.detach:
        _run_here(db, job.id)
    return _job_view(db, job.id)


@router.post("/jobs", status_code=202, response_model=JobView)
async def launch(body: LaunchRequest, request: Request, principal: Principal = Admin) -> JobView:
    """Validate (400/422 with every problem), queue the job and — unless ``detach`` — run it now in a
    process of its own; follow it with ``GET /api/v1/train/jobs/{id}`` and ``…/metrics``."""
    return await blocking(request, _launch, gateway(request).db, body)


@router.get("/jobs")
async def jobs(request: Request, principal: Principal = Annotator) -> list[dict[str, Any]]:
    from llmloop.store.job_queue import list_jobs

    return plain(list(reversed(await blocking(request, list_jobs, gateway(request).db))))


@router.get("/jobs/{job_id}", response_model=JobView)
async def job(job_id: str, request: Request, principal: Principal = Annotator) -> JobView:
    """The job row and its progress (step of total, loss, ETA) from the latest logged step."""
    return await blocking(request, _job_view, gateway(request).db, job_id)


@router.get("/jobs/{job_id}/metrics")
async def metrics(job_id: str, request: Request, principal: Principal = Annotator) -> list[dict[str, Any]]:
    """Every logged step: step, loss, lr, grad_norm, epoch, percentage, remaining_time …"""
    from llmloop.store.job_queue import get_job, get_metrics

    db = gateway(request).db
    await blocking(request, get_job, db, job_id)  # 404 for an unknown job, not an empty list
    return plain(await blocking(request, get_metrics, db, job_id))


def _log_tail(db: Any, job_id: str, lines: int) -> str:
    from llmloop.store.job_queue import get_job

    path = Path(get_job(db, job_id).log_path)
    if not path.is_file():
        return ""
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


@router.get("/jobs/{job_id}/logs")
async def logs(job_id: str, request: Request, lines: int = Query(200, ge=1, le=10_000),
               principal: Principal = Annotator) -> dict[str, str]:
    return {"job_id": job_id, "log": await blocking(request, _log_tail, gateway(request).db, job_id, lines)}


@router.post("/jobs/{job_id}/cancel", response_model=JobView)
async def cancel(job_id: str, request: Request, principal: Principal = Admin) -> JobView:
    """A queued job is cancelled at once; a running one saves a checkpoint at its next step and stops."""
    from llmloop.train.worker import cancel as run

    db = gateway(request).db
    await blocking(request, run, db, job_id)
    return await blocking(request, _job_view, db, job_id)


def _resume(db: Any, job_id: str, detach: bool) -> JobView:
    from llmloop.train.worker import resume

    resume(db, job_id)
    if not detach:
        _run_here(db, job_id)
    return _job_view(db, job_id)


@router.post("/jobs/{job_id}/resume", status_code=202, response_model=JobView)
async def resume(job_id: str, request: Request, detach: bool = Query(False), principal: Principal = Admin) -> JobView:
    """A failed or cancelled job continues from its last checkpoint (400 for any other status)."""
    return await blocking(request, _resume, gateway(request).db, job_id, detach)
