"""``/api/v1/eval``: evaluation runs and pairwise comparisons as background tasks, saved
comparisons with their samples (drill-down), the leaderboard, report downloads, and the
human-review sheet round trip (E3) — each route calls one ``llmloop.eval`` function.

Output locations are the workspace's, never the caller's: a run writes to
``reports/eval-runs/<task id>/``, review sheets live in ``reports/reviews/<review id>/``.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from llmloop.api.common import Admin, Annotator, blocking, gateway, plain, saved_upload, tasks
from llmloop.api.tasks import Task, TaskView
from llmloop.errors import NotFound, UserError
from llmloop.serve.auth import Principal
from llmloop.serve.serving import ServingError

router = APIRouter(prefix="/api/v1/eval", tags=["evaluate"])
_SAFE = re.compile(r"^[A-Za-z0-9._-]{1,200}$")


def _check_name(value: str, what: str) -> str:
    if not _SAFE.match(value):
        raise ServingError(f"{what} {value!r} is not a valid id (letters, digits, . _ -)", status=400, param=what)
    return value


class RunRequest(BaseModel):
    """``llmloop.eval.eval_run.EvalRunConfig`` without ``out_dir`` (the workspace chooses it)."""

    model_config = ConfigDict(extra="forbid")
    config: dict[str, Any] = Field(description="EvalRunConfig fields: versions, data, max_tokens, temperature …")


class CompareRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    config: dict[str, Any] = Field(description="CompareConfig fields: challenger, incumbent, prompts, judge …")


def _runs_dir(db: Any) -> Path:
    return db.workspace.reports_dir / "eval-runs"


def _run(db: Any, raw: dict[str, Any], task: Task) -> dict[str, Any]:
    from llmloop.eval.eval_run import EvalRunConfig, evaluate

    config = EvalRunConfig.model_validate({**raw, "out_dir": str(_runs_dir(db) / task.id)})
    outcome = evaluate(config, db, on_progress=lambda done, total: task.progress(done, total))
    return {"run_id": task.id, "versions": plain(outcome.report.versions), "files": sorted(outcome.files),
            "resumed": outcome.resumed}


def _compare(db: Any, raw: dict[str, Any], task: Task) -> dict[str, Any]:
    from llmloop.eval.comparison import CompareConfig, run_compare

    outcome = run_compare(CompareConfig.model_validate({**raw, "save": True}), db,
                          on_progress=lambda done, total: task.progress(done, total))
    out = outcome.as_json()
    out["comparison_id"] = outcome.saved.stem if outcome.saved else None
    return out


def _checked(cls_path: str, raw: dict[str, Any], extra: dict[str, Any]) -> None:
    """Validate before queueing, so a bad request is a 422 now, not a failed task later."""
    module, _, name = cls_path.rpartition(".")
    import importlib

    getattr(importlib.import_module(module), name).model_validate({**raw, **extra})


@router.post("/runs", status_code=202, response_model=TaskView)
async def run(body: RunRequest, request: Request, principal: Principal = Admin) -> TaskView:
    """Evaluate N models on an eval set (metrics, latency, memory, optional judge) in the background."""
    if "out_dir" in body.config:
        raise ServingError("config.out_dir is chosen by the server (reports/eval-runs/<run id>); leave it out",
                           status=422, param="config.out_dir")
    await blocking(request, _checked, "llmloop.eval.eval_run.EvalRunConfig", body.config, {})
    db = gateway(request).db
    return tasks(request).submit("eval-run", lambda t: _run(db, body.config, t)).view()


def _report_json(db: Any, run_id: str) -> dict[str, Any]:
    path = _runs_dir(db) / run_id / "report.json"
    if not path.is_file():
        raise NotFound(f"no finished evaluation run {run_id!r} (no {path.name} yet); see /api/v1/tasks")
    return json.loads(path.read_text(encoding="utf-8"))


@router.get("/runs/{run_id}")
async def run_report(run_id: str, request: Request, principal: Principal = Annotator) -> dict[str, Any]:
    """The run's report.json: scores per version and every sample (the drill-down)."""
    return await blocking(request, _report_json, gateway(request).db, _check_name(run_id, "run_id"))


@router.get("/runs/{run_id}/download")
async def run_download(run_id: str, request: Request, fmt: Literal["html", "json", "csv"] = Query("html"),
                       principal: Principal = Annotator) -> FileResponse:
    path = _runs_dir(gateway(request).db) / _check_name(run_id, "run_id") / f"report.{fmt}"
    if not path.is_file():
        raise ServingError(f"run {run_id!r} has no report.{fmt} (not finished, or failed)", status=404,
                           type="not_found_error", code="not_found")
    return FileResponse(path, filename=f"{run_id}-report.{fmt}")


@router.post("/comparisons", status_code=202, response_model=TaskView)
async def compare(body: CompareRequest, request: Request, principal: Principal = Admin) -> TaskView:
    """Win rate of a challenger against an incumbent, judged, with a Wilson 95% interval; saved so the
    leaderboard counts it."""
    await blocking(request, _checked, "llmloop.eval.comparison.CompareConfig", body.config, {})
    db = gateway(request).db
    return tasks(request).submit("eval-compare", lambda t: _compare(db, body.config, t)).view()


def _comparisons(db: Any) -> list[dict[str, Any]]:
    from llmloop.eval.leaderboard import comparisons_dir
    from llmloop.eval.winrate import report_from_json

    folder = comparisons_dir(db)
    out = []
    for path in sorted(folder.glob("*.json"), reverse=True) if folder.exists() else []:
        report = report_from_json(json.loads(path.read_text(encoding="utf-8")))
        out.append({"id": path.stem, **report.summary()})
    return out


def _comparison(db: Any, comparison_id: str) -> Any:
    from llmloop.eval.leaderboard import comparisons_dir
    from llmloop.eval.winrate import report_from_json

    path = comparisons_dir(db) / f"{comparison_id}.json"
    if not path.is_file():
        raise NotFound(f"no saved comparison {comparison_id!r}; see GET /api/v1/eval/comparisons")
    return report_from_json(json.loads(path.read_text(encoding="utf-8")))


@router.get("/comparisons")
async def comparisons(request: Request, principal: Principal = Annotator) -> list[dict[str, Any]]:
    """Every saved comparison, newest first: win rate with its 95% interval, wins/losses/ties."""
    return await blocking(request, _comparisons, gateway(request).db)


@router.get("/comparisons/{comparison_id}")
async def comparison(comparison_id: str, request: Request, principal: Principal = Annotator) -> dict[str, Any]:
    """One comparison with every sample: prompt, both answers, the winner and the judge's reason."""
    return plain(await blocking(request, _comparison, gateway(request).db, _check_name(comparison_id, "comparison_id")))


@router.get("/leaderboard")
async def leaderboard(request: Request, bootstrap: int = Query(200, ge=0, le=2000),
                      include_saved: bool = Query(True, description="Count saved judged comparisons too"),
                      principal: Principal = Annotator) -> dict[str, Any]:
    """Arena votes (+ judged comparisons) → Bradley–Terry ratings on the Elo scale with bootstrap CIs."""
    from llmloop.eval.leaderboard import leaderboard_from_store

    # no battles yet: NoBattles, code no_battles (the UI shows "no leaderboard yet", not an error)
    board = await blocking(request, leaderboard_from_store, gateway(request).db, bootstrap=bootstrap,
                           include_saved=include_saved)
    return {**plain(board), "rows": plain(board.rows())}


# -- human review (E3) -----------------------------------------------------------------------------
def _reviews_dir(db: Any) -> Path:
    return db.workspace.reports_dir / "reviews"


def _export_review(db: Any, comparison_id: str, fmt: str) -> Path:
    from llmloop.eval.review import export_review

    report = _comparison(db, comparison_id)
    review_id = f"review-{uuid.uuid4().hex[:10]}"
    sheet = _reviews_dir(db) / review_id / f"{review_id}.{fmt}"
    sheet.parent.mkdir(parents=True, exist_ok=True)
    export_review(report, sheet)
    return sheet


@router.post("/comparisons/{comparison_id}/review-sheet")
async def review_export(comparison_id: str, request: Request, fmt: Literal["csv", "xlsx"] = Query("csv"),
                        principal: Principal = Annotator) -> FileResponse:
    """A blind review sheet of the comparison's samples (A/B order shuffled; the key stays on the
    server). Fill the ``choice`` column and upload it to ``/api/v1/eval/reviews/{review_id}``; the
    review id is the sheet's file name."""
    sheet = await blocking(request, _export_review, gateway(request).db, _check_name(comparison_id, "comparison_id"), fmt)
    return FileResponse(sheet, filename=sheet.name, headers={"x-llmloop-review-id": sheet.parent.name})


def _import_review(db: Any, review_id: str, upload: Path, reviewer: str) -> dict[str, Any]:
    from llmloop.eval.leaderboard import save_comparison
    from llmloop.eval.review import import_review

    folder = _reviews_dir(db) / review_id
    exported = [p for p in folder.glob(f"{review_id}.*") if p.suffix in (".csv", ".xlsx")] if folder.is_dir() else []
    if not exported:
        raise NotFound(f"no review {review_id!r}; export a sheet first (POST .../review-sheet)")
    suffix = upload.suffix if upload.suffix in (".csv", ".xlsx") else exported[0].suffix
    if suffix != exported[0].suffix:
        raise UserError(f"review {review_id} was exported as {exported[0].suffix}; upload the filled {exported[0].suffix} sheet")
    filled = folder / f"{review_id}{suffix}"
    shutil.copyfile(upload, filled)
    report = import_review(filled, reviewer=reviewer)
    saved = save_comparison(db, report)
    return {"comparison_id": saved.stem, **report.summary()}


@router.post("/reviews/{review_id}")
async def review_import(review_id: str, request: Request, file: UploadFile = File(..., description="The filled sheet"),
                        reviewer: str = Form("human", description="Who reviewed (the report's judge name)"),
                        principal: Principal = Annotator) -> dict[str, Any]:
    """The filled sheet → a human-judged win-rate report, saved as a comparison (the leaderboard counts it)."""
    with saved_upload(file) as path:
        return await blocking(request, _import_review, gateway(request).db, _check_name(review_id, "review_id"), path,
                              reviewer)
