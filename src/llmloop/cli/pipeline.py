"""``llmloop pipeline …``: run a declared chain of steps (L3), list runs, show a run's steps."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(no_args_is_help=True, help="Pipelines: sft → eval → dpo → eval → merge-scan → gate, one command.")
console = Console()
err = Console(stderr=True)


@app.command("run")
def run(
    file: Path = typer.Argument(..., help="Pipeline YAML (see configs/pipelines/)"),
    new: bool = typer.Option(False, "--new", help="Start a fresh run even if an unfinished run of this file exists"),
) -> None:
    """Run FILE's steps in order, each as a job; resumes the file's unfinished run at its first unfinished step."""
    from llmloop.loop.pipeline import load_pipeline, run_pipeline
    from llmloop.data.database import open_workspace_database as open_database

    spec = load_pipeline(file)  # a PipelineError: printed by cli/main.py, exit 2
    marks = {"start": "…", "done": "[green]✓[/green]", "skip": "[dim]↷[/dim]", "fail": "[red]✗[/red]"}
    with console.status(f"pipeline {spec.name}") as status:
        def say(step: str, event: str, msg: str) -> None:
            if event == "start":
                status.update(f"{step}: {msg}")
                return
            console.print(f"{marks[event]} {step}: {msg}", highlight=False)

        result = run_pipeline(open_database(), spec, new=new, say=say)
    console.print(f"[bold]{result.status}[/bold] (run {result.run_id}{', resumed' if result.resumed else ''}); "
                  f"report: {result.report_path}", highlight=False)
    if result.status != "succeeded":
        raise typer.Exit(1)


@app.command("list")
def list_runs() -> None:
    """Every pipeline run: name, status, report."""
    from llmloop.loop.pipeline import list_runs
    from llmloop.data.database import open_workspace_database as open_database

    t = Table(title="pipeline runs")
    for col in ("run", "name", "status", "started", "report"):
        t.add_column(col)
    for r in list_runs(open_database()):
        t.add_row(str(r.id), r.name, r.status, r.created_at.strftime("%Y-%m-%d %H:%M"), r.report_path or "")
    console.print(t)


@app.command("show")
def show(run_id: int = typer.Argument(..., help="Run id (`pipeline list`)"),
         as_json: bool = typer.Option(False, "--json", help="Print JSON")) -> None:
    """One run's steps: status, job, outputs."""
    from llmloop.loop.pipeline import get_run
    from llmloop.data.database import open_workspace_database as open_database

    run, steps = get_run(open_database(), run_id)  # PipelineRunNotFound: printed by cli/main.py, exit 2
    if as_json:
        console.print_json(json.dumps({"run": run.__dict__, "steps": {k: v.__dict__ for k, v in steps.items()}}, default=str))
        return
    t = Table(title=f"pipeline {run.name} (run {run.id}): {run.status}")
    for col in ("step", "status", "job", "outputs / error"):
        t.add_column(col)
    for s in steps.values():
        t.add_row(s.step, s.status, s.job_id or "", s.error or json.dumps(s.outputs, default=str)[:120])
    console.print(t)
