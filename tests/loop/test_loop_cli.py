"""The loop's commands as a user runs them, and the loop's Prometheus series."""

import json

import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from llmloop.cli.main import app
from llmloop.loop.loop_metrics import LoopCollector
from llmloop.store import loop_events, open_database, registry, rounds, traffic

from test_round import _votes, make_policy

runner = CliRunner()


def _samples(db):
    reg = CollectorRegistry()
    LoopCollector(db).register(reg)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(generate_latest(reg).decode()) for s in fam.samples}


def test_run_once_status_history_explain_and_admin_commands(tiny_model_dir, tmp_path):
    db = open_database()
    registry.register(db, name="v1.0", kind="chat", base_model=str(tiny_model_dir))
    assert runner.invoke(app, ["models", "alias", "production", "v1.0"]).exit_code == 0
    _votes(db, 6)
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(make_policy(tmp_path).model_dump(mode="json")))

    m = _samples(db)
    assert m[("llmloop_loop_pairs_pending", (("source", "votes"),))] == 6
    assert m[("llmloop_loop_rollout_share", (("version", "v1.0"),))] == 1.0

    r = runner.invoke(app, ["loop", "status", "-c", str(policy), "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    assert s["phase"] == "idle" and s["pending_pairs"] == 6 and s["next_trigger"].startswith("now")

    r = runner.invoke(app, ["loop", "pause", "--reason", "holiday"])
    assert r.exit_code == 0 and loop_events.get_state(db).paused
    r = runner.invoke(app, ["loop", "run", "-c", str(policy), "--now", "--once"])
    assert r.exit_code == 0 and "paused" in r.output and rounds.list_rounds(db) == []
    assert runner.invoke(app, ["loop", "resume"]).exit_code == 0

    r = runner.invoke(app, ["loop", "run-once", "-c", str(policy)])
    assert r.exit_code == 0, r.output
    assert "promoted" in r.output and registry.get(db, "production").name == "v1.1"

    # the gate's judged battles are kept through eval's save_comparison: the leaderboard counts them
    board = tmp_path / "board.json"
    r = runner.invoke(app, ["eval", "leaderboard", "--bootstrap", "0", "--out", str(board)])
    assert r.exit_code == 0, r.output
    b = json.loads(board.read_text())
    assert b["sources"] == {"arena": 0, "judge": 6}  # the arena's votes were v1.0 vs v1.0: no rating evidence
    assert {x["model"]: x["battles"] for x in b["ratings"]} == {"v1.1": 6, "v1.0": 6}
    gate_ev = loop_events.list_events(db, 1, kinds=("gate_passed",))[0].evidence
    assert gate_ev["comparison"].endswith("_v1.1_vs_v1.0.json")

    r = runner.invoke(app, ["loop", "history"])
    assert r.exit_code == 0 and "promoted" in r.output and "v1.1" in r.output
    r = runner.invoke(app, ["loop", "history", "--round", "1"])
    assert r.exit_code == 0 and "gate_passed" in r.output

    r = runner.invoke(app, ["loop", "explain", "v1.1", "--json"])
    assert r.exit_code == 0, r.output
    x = json.loads(r.output)
    assert x["round"]["status"] == "promoted" and len(x["trained_on"]) == 6
    assert sorted(int(c["id"]) for c in x["trained_on"]) == [1, 2, 3, 4, 5, 6]  # vote ids: the tie (7) was dropped
    assert all(c["user"].startswith("u") and len(c["request_ids"]) == 2 and c["versions"] == ["v1.0", "v1.0"]
               for c in x["trained_on"])
    assert list(x["dropped"]) == ["no preference (tie or both bad)"]
    assert [e["kind"] for e in x["events"]][-1] == "promoted"
    r = runner.invoke(app, ["loop", "explain", "v1.0"])
    assert r.exit_code == 0 and "not trained by the loop" in r.output

    m = _samples(db)
    assert m[("llmloop_loop_rounds", (("status", "promoted"),))] == 1
    assert m[("llmloop_loop_pairs_pending", (("source", "votes"),))] == 0
    assert m[("llmloop_loop_rollout_share", (("version", "v1.1"),))] == 1.0
    assert m[("llmloop_loop_feedback_to_rollout_seconds", (("stat", "oldest"),))] >= \
        m[("llmloop_loop_feedback_to_rollout_seconds", (("stat", "newest"),))] > 0

    # an admin undoes the promotion: production goes back, the round says so, an event records who
    r = runner.invoke(app, ["loop", "rollback", "--reason", "complaints from support"])
    assert r.exit_code == 0, r.output
    assert registry.get(db, "production").name == "v1.0" and rounds.list_rounds(db)[0].status == "rolled_back"
    ev = loop_events.list_events(db, 1, kinds=("rolled_back",))[-1]
    assert ev.actor.startswith("admin:") and "complaints" in ev.message
    assert traffic.get_split(db).weights == {"production": 100.0}
    assert _samples(db)[("llmloop_loop_rollbacks", ())] == 1

    r = runner.invoke(app, ["loop", "promote", "--reason", "x"])
    assert r.exit_code == 2 and "no round is in progress" in r.output


def test_bad_policy_and_unknown_version_are_clear_errors(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("gate: {judge: x}\ntrigger: {min_new_pairs: 0}\n")
    r = runner.invoke(app, ["loop", "run", "-c", str(p)])
    assert r.exit_code == 2 and "trigger.min_new_pairs" in r.output and "got 0" in r.output
    r = runner.invoke(app, ["loop", "explain", "v9.9"])
    assert r.exit_code == 2 and "v9.9" in r.output


def test_admin_promote_during_a_canary_skips_the_remaining_stages(db, tiny_model_dir, tmp_path):
    """A canary can be decided by a person from another process: the controller's next move sees it."""
    from llmloop.loop.controller import Controller, admin

    registry.register(db, name="v1.0", kind="chat", base_model=str(tiny_model_dir))
    registry.set_alias(db, "production", "v1.0")
    _votes(db, 6)
    pol = make_policy(tmp_path, rollout={"gateways": ["http://127.0.0.1:9"], "stages": [{"percent": 10, "min_requests": 10**6}]})
    ctl = Controller(db, pol)
    while loop_events.get_state(db).phase != "canary":
        ctl.tick(force=True)
    assert traffic.get_split(db).weights == {"production": 90.0, "candidate": 10.0}
    assert ctl.tick().action == "canary"  # no gateway answers: no evidence, no decision, the stage holds
    msg = admin(db, "promote", reason="looks great", actor="admin:test")
    assert "promoted" in msg and registry.get(db, "production").name == "v1.1"
    assert ctl.tick().action == "waiting" and loop_events.get_state(db).phase == "idle"
    assert rounds.list_rounds(db)[0].status == "promoted"
