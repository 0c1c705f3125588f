"""``llmloop loop …``: the controller (run, run-once), what it is doing (status, history, explain) and
the admin's levers (promote, rollback, pause, resume)."""

from __future__ import annotations

import json
import os
import signal

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(no_args_is_help=True, help="The closed loop: learn from feedback, gate, roll out, roll back.")
console = Console()
err = Console(stderr=True)

POLICY_HELP = "Loop policy YAML (see configs/loop/weekly.yaml), or 'demo' for the one the demo uses"


def _actor() -> str:
    return f"admin:{os.environ.get('USER') or os.environ.get('USERNAME') or 'unknown'}"


@app.command("run")
def run(
    policy: str = typer.Option(..., "-c", "--policy", help=POLICY_HELP),
    now: bool = typer.Option(False, "--now", help="Start a round now if there are enough pairs (ignores "
                             "trigger.min_days_since_last_round and trigger.manual)"),
    once: bool = typer.Option(False, "--once", help="Return once a round has been decided (or none can start)"),
) -> None:
    """The long-running controller: waits for the trigger, runs rounds, steps the canary, rolls back.

    Safe to stop and restart at any moment: it resumes the round and rollout stage it was in."""
    from llmloop.data.database import open_workspace_database
    from llmloop.loop.controller import Controller
    from llmloop.loop.policy import load_policy
    from llmloop.models import registry

    # PolicyError, VersionNotFound, a failed round's error: printed by cli/main.py (exit 2, or 1)
    pol = load_policy(policy)
    db = open_workspace_database()
    registry.get(db, pol.train.from_alias)
    stopping = {"now": False}

    def stop(*_: object) -> None:
        stopping["now"] = True
        console.print("stopping after this step (the state is in the store; `loop run` resumes it)")

    signal.signal(signal.SIGTERM, stop)
    ctl = Controller(db, pol, say=lambda k, m: console.print(f"[bold]{k}[/bold]: {m}", highlight=False), actor="loop")
    console.print(f"loop controller: policy {policy}; Ctrl-C or SIGTERM stops it")
    try:
        r = ctl.run(force_first=now, until_idle=once, should_stop=lambda: stopping["now"], keep_going=not once)
    except KeyboardInterrupt:
        console.print("interrupted; `llmloop loop run` resumes where it stopped")
        raise typer.Exit(130) from None
    console.print(f"{r.action}: {r.message}", highlight=False)


@app.command("run-once")
def run_once(policy: str = typer.Option(..., "-c", "--policy", help=POLICY_HELP)) -> None:
    """One round now: feedback → dataset → training → gate → canary (if the policy has stages) → decision."""
    from llmloop.data.database import open_workspace_database
    from llmloop.loop.controller import run_once as once
    from llmloop.loop.policy import load_policy
    from llmloop.train.job_runner import JobFailed

    pol = load_policy(policy)
    db = open_workspace_database()
    try:
        with console.status("loop round") as status:
            out = once(db, pol, say=lambda s, m: (status.update(f"{s}: {m}"), console.print(f"  {s}: {m}", highlight=False)))
    except JobFailed as e:  # cli/main.py prints the error and exits (1; 2 for the input's fault); where its log is:
        err.print(f"log: llmloop jobs logs {e.job.id}", highlight=False)
        raise
    if out.status == "skipped":
        console.print(f"no round: {out.reason}")
        return
    console.print(f"[bold]{out.status}[/bold]: production is {out.production_after} ({out.reason})", highlight=False)


@app.command("status")
def status(
    policy: str | None = typer.Option(None, "-c", "--policy", help=POLICY_HELP + " (for exact pending pairs and the next trigger)"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON"),
) -> None:
    """Current round, phase and rollout stage, traffic split, pending pairs, next trigger."""
    from llmloop.data.database import open_workspace_database
    from llmloop.loop.status import loop_status
    from llmloop.loop.policy import load_policy

    pol = load_policy(policy) if policy else None
    s = loop_status(open_workspace_database(), pol)
    if as_json:
        console.print_json(json.dumps(s, default=str))
        return
    t = Table(title="loop status", show_header=False)
    for k, v in s.items():
        t.add_row(k, v if isinstance(v, str) else json.dumps(v, default=str))
    console.print(t)


@app.command("history")
def history(
    round_id: int | None = typer.Option(None, "--round", help="Show this round's events with their evidence"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON"),
) -> None:
    """Every round: feedback used, candidate, win rate and decision (or one round's events)."""
    from llmloop.data.database import open_workspace_database
    from llmloop.loop.status import round_events, round_history

    db = open_workspace_database()
    if round_id is not None:
        evs = round_events(db, round_id)
        if as_json:
            console.print_json(json.dumps([e.__dict__ for e in evs], default=str))
            return
        t = Table(title=f"round {round_id}: events")
        for col in ("time", "event", "actor", "message"):
            t.add_column(col)
        for e in evs:
            t.add_row(e.created_at.strftime("%H:%M:%S"), e.kind, e.actor, e.message)
        console.print(t)
        return
    rs = round_history(db)
    if as_json:
        console.print_json(json.dumps([r.__dict__ for r in rs], default=str))
        return
    t = Table(title="loop rounds")
    for col in ("round", "status", "production", "candidate", "votes", "win rate", "decision", "started"):
        t.add_column(col)
    for r in rs:
        wr = r.evidence.get("win_rate") or {}
        rate = f"{wr['win_rate']:.3f} [{wr['ci_low']:.3f}, {wr['ci_high']:.3f}]" if wr.get("n") else ""
        t.add_row(str(r.id), r.status, r.production_version, r.candidate_version or "",
                  f"{r.first_vote_id}..{r.last_vote_id}", rate, str(r.evidence.get("decision", r.evidence.get("error", ""))),
                  r.started_at.strftime("%Y-%m-%d %H:%M"))
    console.print(t)


def _admin(action: str, reason: str) -> None:
    from llmloop.data.database import open_workspace_database
    from llmloop.loop.controller import admin

    # AdminError, StaleState: printed by cli/main.py, exit 2
    console.print(admin(open_workspace_database(), action, reason=reason, actor=_actor()), highlight=False)


@app.command("promote")
def promote(reason: str = typer.Option(..., "--reason", help="Why (stored with the decision)")) -> None:
    """Promote the candidate in rollout now (skipping the remaining canary stages)."""
    _admin("promote", reason)


@app.command("rollback")
def rollback(reason: str = typer.Option(..., "--reason", help="Why (stored with the decision)")) -> None:
    """Roll the candidate in rollout back now; with no round in progress, undo the last promotion."""
    _admin("rollback", reason)


@app.command("pause")
def pause(reason: str = typer.Option("", "--reason", help="Why (stored as an event)")) -> None:
    """No new rounds and no canary stage advances until `loop resume` (rollbacks still happen)."""
    from llmloop.data.database import open_workspace_database
    from llmloop.loop.controller import set_paused

    set_paused(open_workspace_database(), True, reason=reason, actor=_actor())
    console.print("paused")


@app.command("resume")
def resume(reason: str = typer.Option("", "--reason", help="Why (stored as an event)")) -> None:
    """Undo `loop pause`."""
    from llmloop.data.database import open_workspace_database
    from llmloop.loop.controller import set_paused

    set_paused(open_workspace_database(), False, reason=reason, actor=_actor())
    console.print("resumed")


@app.command("explain")
def explain(
    version: str = typer.Argument(..., help="A version (v1.2) or alias (production)"),
    limit: int = typer.Option(20, help="Training pairs to list (all with --json)"),
    as_json: bool = typer.Option(False, "--json", help="Print everything as JSON"),
) -> None:
    """Which feedback trained VERSION (request, versions, user, time), and every decision about it."""
    from llmloop.data.database import open_workspace_database
    from llmloop.loop.explain import explain as why

    x = why(open_workspace_database(), version)
    if as_json:
        console.print_json(json.dumps(x.as_json(), default=str, ensure_ascii=False))
        return
    v = x.version
    console.print(f"[bold]{v.name}[/bold] ({v.kind}, {v.stage}{', ' + ', '.join(v.aliases) if v.aliases else ''}): "
                  f"parent {v.parent or '-'}, job {v.job_id or '-'}, dataset versions {v.dataset_versions}", highlight=False)
    if x.round is None:
        console.print("not trained by the loop (no round made it); see `llmloop models lineage`")
        return
    r = x.round
    console.print(f"round {r.id}: {r.status} — {r.evidence.get('decision', '')}", highlight=False)
    console.print(f"trained on {len(x.trained_on)} pairs; {len(x.held_out)} held out; dropped: "
                  f"{json.dumps(x.dropped, ensure_ascii=False) if x.dropped else 'none'}", highlight=False)
    t = Table(title=f"feedback that trained {v.name} (first {min(limit, len(x.trained_on))})")
    for col in ("row", "source", "id", "user", "answered by", "request ids", "time"):
        t.add_column(col)
    for c in x.trained_on[:limit]:
        t.add_row(str(c.row_index), c.source, str(c.source_id), c.user_id, ", ".join(c.versions),
                  ", ".join(c.request_ids), c.feedback_at.strftime("%Y-%m-%d %H:%M:%S"))
    console.print(t)
    t = Table(title="decisions")
    for col in ("time", "event", "actor", "message"):
        t.add_column(col)
    for e in x.events:
        t.add_row(e.created_at.strftime("%H:%M:%S"), e.kind, e.actor, e.message)
    console.print(t)
