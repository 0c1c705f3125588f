"""``/api/v1/data``: datasets (D7–D11) and synthetic generation (D2, D3) — each route calls one
``llmloop.data`` function."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.background import BackgroundTask

from llmloop.api.common import Admin, Annotator, blocking, gateway, plain, saved_upload, tasks
from llmloop.api.tasks import Task, TaskView
from llmloop.serve.auth import Principal

router = APIRouter(prefix="/api/v1/data", tags=["data"])


class ProblemView(BaseModel):
    file: str
    row: int | None = Field(description="1-based record number; null when the whole file is at fault")
    line: int | None
    field: str
    problem: str
    seen: str
    fix: str
    text: str = Field(description="The problem as one sentence, row and fix included")


class ValidationView(BaseModel):
    file: str
    format: str = Field(description="The format the file was read as (resolved from 'auto'); '' if it could not be told")
    kind: str = Field(description="pt | sft | preference | kto | grpo …; '' if it could not be told")
    rows_read: int
    rows_valid: int
    problems: list[ProblemView] = Field(description="Every problem, by row")


def _problem(p: Any) -> ProblemView:
    return ProblemView(file=p.file, row=p.row, line=p.line, field=p.field, problem=p.problem, seen=p.seen, fix=p.fix,
                       text=str(p))


class DedupRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    method: Literal["exact", "minhash", "semantic"] = Field("exact", description="exact | minhash | semantic")
    threshold: float = Field(1.0, gt=0, le=1, description="minhash: Jaccard; semantic: cosine similarity")
    note: str = Field("", description="Note on the new version")


class FilterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rules: dict[str, Any] = Field(description="llmloop.data.quality.FilterRules fields, e.g. {\"min_chars\": 5}")
    note: str = Field("", description="Note on the new version")


@router.get("")
async def list_datasets(request: Request, principal: Principal = Annotator) -> list[dict[str, Any]]:
    from llmloop.data.catalog import list_datasets as run

    return plain(await blocking(request, run, gateway(request).db))


@router.post("/validate", response_model=ValidationView)
async def validate(request: Request, file: UploadFile = File(..., description="jsonl, json, csv, txt or parquet"),
                   format: str = Form("auto", description="alpaca, sharegpt, openai, trl, pt … or auto"),
                   principal: Principal = Annotator) -> ValidationView:
    """Every problem of the file, by row, without storing anything."""
    from llmloop.data.validate import parse_file

    with saved_upload(file) as path:
        parsed = await blocking(request, parse_file, path, format)
    return ValidationView(file=path.name, format=parsed.format, kind=parsed.kind, rows_read=parsed.rows_read,
                          rows_valid=len(parsed.rows), problems=[_problem(p) for p in parsed.problems])


@router.post("/upload", status_code=201)
async def upload(request: Request, file: UploadFile = File(..., description="jsonl, json, csv, txt or parquet"),
                 name: str = Form(..., description="Dataset name; the file becomes its next version"),
                 format: str = Form("auto", description="alpaca, sharegpt, openai, trl, pt … or auto"),
                 note: str = Form("", description="Note on the version"),
                 skip_invalid: bool = Form(False, description="Import the valid rows and leave out the rest"),
                 principal: Principal = Annotator) -> dict[str, Any]:
    """Import all or nothing: a bad row → 422 naming every bad row and its fix; nothing is written."""
    from llmloop.data.importer import import_file

    with saved_upload(file) as path:
        report = await blocking(request, import_file, gateway(request).db, path, name=name, format=format, note=note,
                                skip_invalid=skip_invalid)
    out = plain(report)
    out["skipped"] = [_problem(p).model_dump() for p in report.skipped]
    return out


@router.get("/diff")
async def diff(request: Request, old: str = Query(..., description="NAME@v1.0"),
               new: str = Query(..., description="NAME@v1.1"), principal: Principal = Annotator) -> dict[str, Any]:
    from llmloop.data.manage import diff as run

    return plain(await blocking(request, run, gateway(request).db, old, new))


@router.get("/{name}/versions")
async def versions(name: str, request: Request, principal: Principal = Annotator) -> list[dict[str, Any]]:
    from llmloop.data.catalog import history

    return plain(await blocking(request, history, gateway(request).db, name))


def _head(db: Any, ref: str, n: int, offset: int) -> list[dict[str, Any]]:
    from llmloop.data.catalog import head
    from llmloop.data.versions import resolve

    return head(resolve(db, ref), offset + n)[offset:]


@router.get("/{ref}/rows")
async def rows(ref: str, request: Request, n: int = Query(5, ge=0, le=1000, description="How many rows"),
               offset: int = Query(0, ge=0, le=1_000_000, description="Rows to skip first (paging)"),
               principal: Principal = Annotator) -> list[dict[str, Any]]:
    """``n`` rows of NAME or NAME@version from row ``offset`` (0-based) on."""
    return await blocking(request, _head, gateway(request).db, ref, n, offset)


@router.get("/{ref}/stats")
async def stats(ref: str, request: Request, tokenizer: str | None = Query(None, description="Model folder whose tokenizer counts tokens"),
                max_length: int | None = Query(None, ge=1), principal: Principal = Annotator) -> dict[str, Any]:
    from llmloop.data.stats import dataset_stats

    return plain(await blocking(request, dataset_stats, gateway(request).db, ref, tokenizer=tokenizer,
                                max_length=max_length))


@router.get("/{ref}/quality")
async def quality(ref: str, request: Request, principal: Principal = Annotator) -> dict[str, Any]:
    from llmloop.data.quality import quality_report

    return plain(await blocking(request, quality_report, gateway(request).db, ref))


@router.post("/{ref}/dedup")
async def dedup(ref: str, body: DedupRequest, request: Request, principal: Principal = Annotator) -> dict[str, Any]:
    """Drop duplicates into a new version (none when nothing was dropped)."""
    from llmloop.data.dedup import dedup as run

    return plain(await blocking(request, run, gateway(request).db, ref, body.method, body.threshold, note=body.note))


def _filter(db: Any, ref: str, rules: dict[str, Any], note: str) -> Any:
    from llmloop.data.quality import FilterRules, filter_version

    return filter_version(db, ref, FilterRules.model_validate(rules), note=note)


@router.post("/{ref}/filter")
async def filter_(ref: str, body: FilterRequest, request: Request, principal: Principal = Annotator) -> dict[str, Any]:
    """Quality filters into a new version (none when no row was dropped)."""
    return plain(await blocking(request, _filter, gateway(request).db, ref, body.rules, body.note))


def _export(db: Any, ref: str, to: str, style: str) -> Path:
    """One file to send: the export's file, or a zip of the export's folder (hf, llamafactory)."""
    from llmloop.data.export import export_version
    from llmloop.data.versions import resolve

    folder = Path(tempfile.mkdtemp(prefix="llmloop-export-"))
    result = export_version(resolve(db, ref), to, folder / "out", style=style)
    if len(result.files) == 1 and result.files[0].is_file():
        return result.files[0]
    return Path(shutil.make_archive(str(folder / f"{result.version.dataset}-{result.version.version}-{to}"), "zip",
                                    folder / "out"))


@router.get("/{ref}/export")
async def export(ref: str, request: Request,
                 to: Literal["jsonl", "llamafactory", "trl", "openai", "hf"] = Query("jsonl"),
                 style: Literal["conversational", "plain"] = Query("conversational", description="trl only"),
                 principal: Principal = Annotator) -> FileResponse:
    """Download NAME[@version] as ``to`` (one file, or a zip for folder formats)."""
    path = await blocking(request, _export, gateway(request).db, ref, to, style)
    top = next(p for p in path.parents if p.name.startswith("llmloop-export-"))
    return FileResponse(path, filename=path.name, background=BackgroundTask(shutil.rmtree, top, True))


@router.delete("/{name}")
async def delete(name: str, request: Request, purge: bool = False, principal: Principal = Admin) -> dict[str, Any]:
    from llmloop.data.manage import delete as run

    return plain(await blocking(request, run, gateway(request).db, name, purge=purge))


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    config: dict[str, Any] = Field(description="llmloop.data.generate.GenerateConfig fields: method, seeds, name, num …")
    generator: dict[str, Any] = Field(default_factory=lambda: {"kind": "template"},
                                      description="llmloop.data.generators.GeneratorConfig fields: kind (openai | "
                                                  "template), base_url, model, api_key_env …")


def _generate_configs(body: GenerateRequest) -> tuple[Any, Any]:
    from llmloop.data.generate import GenerateConfig
    from llmloop.data.generators import GeneratorConfig

    return GenerateConfig.model_validate(body.config), GeneratorConfig.model_validate(body.generator)


@router.post("/generate", status_code=202, response_model=TaskView)
async def generate(body: GenerateRequest, request: Request, principal: Principal = Admin) -> TaskView:
    """Synthetic SFT data (self-instruct, evol-instruct, paraphrase) as a background task with progress;
    the kept rows become the next version of ``config.name``."""
    from llmloop.data.generate import generate as run

    config, gen_config = await blocking(request, _generate_configs, body)
    db = gateway(request).db

    def work(task: Task) -> Any:
        result = run(db, config, gen_config.build(), progress=lambda done, total: task.progress(done, total))
        return {"version": plain(result.version) if result.version else None, "kept": result.kept,
                "dropped": result.dropped, "errors": result.errors, "resumed": result.resumed}

    return tasks(request).submit("data-generate", work).view()
