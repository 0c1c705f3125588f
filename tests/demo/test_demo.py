"""The demo's plumbing on a shortened schedule, and the acceptance numbers of a full run."""

import json
import os
from pathlib import Path

import pytest

from llmloop.demo.demo_loop import DemoConfig, run_demo
from llmloop.store import feedback, registry, rounds


@pytest.mark.slow
def test_short_demo_runs_every_step_through_a_real_gateway(db):
    cfg = DemoConfig(
        battles=40, users=4, min_pairs=3, round2_battles=24, drill_battles=16, canary_requests=4,
        cpt={"finetuning": "full", "learning_rate": 3e-3, "max_steps": 4, "per_device_train_batch_size": 8,
             "max_length": 128, "plot_loss": False},
        sft={"finetuning": "full", "learning_rate": 2e-3, "max_steps": 12, "per_device_train_batch_size": 8,
             "max_length": 128, "plot_loss": False},
    )
    events = []
    report = run_demo(db, cfg, on_event=lambda kind, msg: events.append((kind, msg)))
    data = json.loads(Path(report.facts["report_path"]).read_text(encoding="utf-8"))

    assert sum(data["votes"].values()) == 40 and sum(data["votes_round2"].values()) == 24
    assert feedback.count_votes(db) == 40 + 24 + 16
    assert set(data["step_seconds"]) == {"build", "cpt", "sft", "serve", "arena", "loop", "check", "arena2", "loop2",
                                         "check2", "arena3", "drill"}
    assert data["outcome"] in ("promoted", "rejected")
    # whatever the gate decided, the running gateway served what the registry says is production
    assert data["rounds"][0]["served_after_round"] == data["production_after"]
    assert data["rounds"][-1]["served_after_round"] == data["final_production"] == registry.get(db, "production").name
    assert data["eval"]["n"] == 140 and 0 <= data["ci95"][0] <= data["win_rate"] <= data["ci95"][1] <= 1
    assert [r.status for r in rounds.list_rounds(db)] == [r["outcome"] for r in data["rounds"] if r["outcome"] != "skipped"]
    r2 = data["rounds"][1]
    if r2["outcome"] in ("promoted", "rolled_back"):  # it passed the gate: the canary ran on routed traffic
        assert r2["canary"][0]["weights"] == {"production": 50.0, "candidate": 50.0}, r2
    if r2["outcome"] == "promoted":
        assert r2["canary_traffic"]["answered"].get(r2["candidate"], 0) >= 4, r2
    if r2["outcome"] == "rolled_back":  # a rollback names the signal that caused it
        assert any(s["rollback"] for s in r2["canary"][-1]["signals"].values()), r2
    assert data["rounds"][2]["drill"] == "flipped preferences"
    # no vote was used twice: each round's claims are disjoint and cover every vote cast
    from llmloop.store import loop_events

    assert set(loop_events.claim_counts(db).values()) == {1}
    assert registry.get(db, "c1.0").kind == "completion" and registry.get(db, "v1.0").parent == "c1.0"
    assert ("start", "Simulated users vote in the arena") in events


DEMO_REPORT = Path(os.environ.get("LLMLOOP_DEMO_REPORT", ".llmloop/demo_report.json"))


@pytest.mark.skipif(not DEMO_REPORT.exists(), reason="no demo_report.json from `llmloop demo` in this checkout")
def test_the_full_demo_met_its_acceptance_numbers():
    """Checks the report the README's first command wrote (CI runs it right before the tests)."""
    r = json.loads(DEMO_REPORT.read_text(encoding="utf-8"))
    assert r["production_before"] == "v1.0" and r["candidate"] == "v1.1"
    assert r["win_rate"] >= 0.70, r
    assert r["ci95"][0] > 0.50, r
    assert r["outcome"] == "promoted" and r["served_after_round"] == "v1.1"
    assert r["total_seconds"] <= 300, r["step_seconds"]
    # round 2: v1.2 passed the gate, went through both canary stages on routed traffic, and is production
    r2 = r["rounds"][1]
    assert (r2["candidate"], r2["outcome"], r2["production_before"]) == ("v1.2", "promoted", "v1.1"), r2
    assert [c["weights"] for c in r2["canary"] if c["kind"] == "stage_started"] == [
        {"production": 50.0, "candidate": 50.0}, {"candidate": 100.0}]
    assert r2["canary_traffic"]["answered"]["v1.2"] >= 48 and r2["served_after_round"] == "v1.2"
    # the drill: a candidate trained on flipped preferences is caught before any user sees it
    d = r["rounds"][2]
    assert d["drill"] == "flipped preferences" and d["candidate"] == "v1.3" and d["outcome"] == "rejected", d
    assert d["win_rate"] < 0.4 and d["ci95"][0] <= 0.3
    assert r["final_production"] == d["served_after_round"] == "v1.2"


def test_demo_refuses_a_workspace_that_is_in_use(db, tiny_model_dir):
    from typer.testing import CliRunner

    from llmloop.cli.main import app

    registry.register(db, name="v1.0", kind="chat", base_model=str(tiny_model_dir))
    r = CliRunner().invoke(app, ["demo"])
    assert r.exit_code == 2 and "--home" in r.output
