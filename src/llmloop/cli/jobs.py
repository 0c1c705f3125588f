"""``llmloop jobs list|show|logs|cancel|resume|worker|plot``: training jobs as the store records them,
and the worker that runs queued ones (each in a process of its own, see ``llmloop.train.worker``)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer
import yaml
from rich.console import Console
from rich.table import Table

from llmloop.errors import Conflict, UserError

app = typer.Typer(no_args_is_help=True, help="Training jobs: status, config, metrics, logs, cancel, resume, worker.")
console = Console()
err = Console(stderr=True)

_STATUS_STYLE = {"succeeded": "green", "failed": "red", "running": "yellow", "queued": "cyan", "cancelled": "magenta"}


def _job(job_id: str):  # noqa: ANN202
    from llmloop.train.job_runner import get_job
    from llmloop.data.database import open_workspace_database as open_database

    db = open_database()
    return db, get_job(db, job_id)  # JobNotFound: printed by cli/main.py, exit 2


def _duration(job) -> str:  # noqa: ANN001
    if job.started_at is None:
        return ""
    end = job.finished_at or dt.datetime.now(dt.timezone.utc)
    return f"{(end - job.started_at).total_seconds():.0f} s"


def _status(job) -> str:  # noqa: ANN001
    return f"[{_STATUS_STYLE.get(job.status, 'white')}]{job.status}[/]"


@app.command("list")
def list_() -> None:
    """All jobs, oldest first: stage, status, start (UTC), duration, final loss, registered version."""
    from llmloop.train.job_runner import list_jobs
    from llmloop.data.database import open_workspace_database as open_database

    jobs = list_jobs(open_database())
    if not jobs:
        console.print("no jobs yet; start one with `llmloop train sft -c configs/sft/tiny.yaml`")
        return
    table = Table()
    table.add_column("job", no_wrap=True, min_width=max(len(j.id) for j in jobs))
    for name in ("stage", "status", "created", "took", "loss", "version"):
        table.add_column(name, no_wrap=True)
    for job in jobs:
        result = job.result or {}
        loss = (result.get("metrics") or {}).get("loss_final")
        table.add_row(
            job.id, job.stage, _status(job), job.created_at.strftime("%m-%d %H:%M"), _duration(job),
            "" if loss is None else f"{loss:.4f}", result.get("model_version") or "",
        )
    console.print(table)


@app.command("show")
def show(job_id: str = typer.Argument(..., help="Job id, as `llmloop jobs list` shows it")) -> None:
    """One job: status, error, result, its config (as YAML) and a summary of its logged metrics."""
    from llmloop.train.job_runner import get_metrics, get_run

    db, job = _job(job_id)
    head = Table(show_header=False, title=f"job {job.id}")
    head.add_column(no_wrap=True)
    head.add_column(overflow="fold")  # paths in full, folded rather than cut
    head.add_row("stage", job.stage)
    head.add_row("status", _status(job))
    head.add_row("created", job.created_at.isoformat(timespec="seconds"))
    head.add_row("duration", _duration(job))
    head.add_row("output dir", job.output_dir)
    run = get_run(db, job.id)
    head.add_row("process", f"backend {run.backend}, attempt {run.attempts}, worker {run.worker or '-'}, "
                 f"pid {run.pid or '-'}, gpus {run.gpus}" + (", cancel requested" if run.cancel_requested else ""))
    if job.error:
        head.add_row("error", f"[red]{job.error}[/red]")
    result = job.result or {}
    if "output" in result:
        head.add_row("output", str(result.get("output")))
        head.add_row("model version", str(result.get("model_version")))
    console.print(head)
    console.print("[bold]config[/bold]")
    console.print(yaml.safe_dump(job.config, sort_keys=False, allow_unicode=True).rstrip(), highlight=False)
    steps = get_metrics(db, job.id)
    console.print("[bold]metrics[/bold]")
    if not steps:
        console.print("no steps logged")
        return
    steps = [r for r in steps if "loss" in r] or steps
    first, last = steps[0], steps[-1]
    table = Table("", "step", "loss", "lr", "epoch")
    for label, row in (("first", first), ("last", last)):
        table.add_row(label, str(row["step"]), f"{row.get('loss', float('nan')):.4f}", f"{row.get('lr') or 0:.2e}", f"{row.get('epoch') or 0:.2f}")
    console.print(table)
    console.print(f"{len(steps)} logged steps of {last.get('total_steps')}; per-step rows in "
                  f"{Path(job.output_dir) / 'trainer_log.jsonl'}", highlight=False, soft_wrap=True)
    extra = {k: v for k, v in (result.get("metrics") or {}).items() if k not in ("loss_first", "loss_final")}
    if extra:
        console.print(", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in extra.items()),
                      highlight=False, soft_wrap=True)


@app.command("logs")
def logs(
    job_id: str = typer.Argument(..., help="Job id, as `llmloop jobs list` shows it"),
    tail: int = typer.Option(0, "--tail", "-n", help="Only the last N lines (0: all)"),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines until the job ends"),
) -> None:
    """Print the job's log file (library logs, warnings and the process's output)."""
    import time

    from llmloop.train.job_runner import get_job

    db, job = _job(job_id)
    path = Path(job.log_path)
    if not path.is_file() and not follow:
        raise UserError(f"job {job.id} has no log file at {path} (did it start?)")
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines() if path.is_file() else []
    if lines:
        typer.echo("\n".join(lines[-tail:] if tail > 0 else lines))
    if not follow:
        return
    position = path.stat().st_size if path.is_file() else 0
    while True:
        done = get_job(db, job.id).status not in ("queued", "running")
        if path.is_file() and path.stat().st_size > position:
            with path.open("rb") as f:
                f.seek(position)
                chunk = f.read()
            position += len(chunk)
            typer.echo(chunk.decode("utf-8", errors="replace"), nl=False)
        if done:
            break
        time.sleep(0.5)


@app.command("cancel")
def cancel(job_id: str = typer.Argument(..., help="Job id")) -> None:
    """Cancel a queued job now; a running one saves a checkpoint and stops at its next step."""
    from llmloop.train.worker import cancel as cancel_job

    db, job = _job(job_id)
    if job.status not in ("queued", "running"):
        raise Conflict(f"job {job.id} is already {job.status}")
    job = cancel_job(db, job.id)
    console.print(f"job {job.id}: {'cancelled' if job.status == 'cancelled' else 'asked to stop'}", highlight=False)


@app.command("resume")
def resume(
    job_id: str = typer.Argument(..., help="Job id of a failed or cancelled job"),
    detach: bool = typer.Option(False, "--detach", help="Only queue it again; `llmloop jobs worker` runs it"),
) -> None:
    """Queue a failed or cancelled job again and (unless --detach) run it here: it continues from
    its last checkpoint (weights, optimizer, scheduler, step) to the same final step."""
    from llmloop.train.worker import resume as resume_job
    from llmloop.train.worker import run_here

    db, job = _job(job_id)
    job = resume_job(db, job.id)  # JobNotResumable: printed by cli/main.py, exit 2
    if detach:
        console.print(f"job {job.id} queued to resume", highlight=False)
        return
    final = run_here(db, job.id)
    console.print(f"job {final.id}: {_status(final)}" + (f" ({final.error})" if final.error else ""), highlight=False)
    if final.status != "succeeded":
        raise typer.Exit(1)


@app.command("worker")
def worker(
    once: bool = typer.Option(False, "--once", help="Exit when the queue is empty instead of waiting for jobs"),
    poll: float = typer.Option(2.0, "--poll", min=0.1, help="Seconds between looks at an empty queue"),
) -> None:
    """Run queued jobs one after another, each in its own process. Several workers (on several
    machines with one PostgreSQL store and a shared LLMLOOP_HOME) never run the same job twice."""
    from llmloop.data.database import open_workspace_database as open_database
    from llmloop.train.worker import work, worker_name

    console.print(f"worker {worker_name()} waiting for queued jobs (Ctrl-C stops)", highlight=False)
    try:
        for job in work(open_database(), once=once, poll_s=poll):
            console.print(f"job {job.id}: {_status(job)}", highlight=False)
    except KeyboardInterrupt:
        console.print("worker stopped")


@app.command("plot")
def plot(
    job_id: str = typer.Argument(..., help="Job id"),
    out: Path = typer.Option(None, "--out", "-o", help="PNG file to write (default: <job dir>/training_loss.png)"),
) -> None:
    """Draw the job's training (and evaluation) loss curve as a PNG."""
    from llmloop.train.live_metrics import LOG_FILE, plot_loss

    _, job = _job(job_id)
    log_file = Path(job.output_dir) / LOG_FILE
    if not log_file.is_file():
        raise UserError(f"job {job.id} logged no steps yet ({log_file} is missing)")
    png = plot_loss(log_file, out or Path(job.output_dir) / "training_loss.png")
    if png is None:
        err.print("[red]error:[/red] nothing to plot, or matplotlib is missing (pip install matplotlib)")
        raise typer.Exit(2)
    console.print(f"wrote {png}", highlight=False)
