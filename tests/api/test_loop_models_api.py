"""Loop state, history and admin actions; versions, lineage, aliases and a real LoRA merge."""

from __future__ import annotations

import pytest
from api_helpers import error, wait_task

from llmloop.store import loop_events, registry


def test_status_pause_resume_and_history(api) -> None:
    st = api.annotator.get("/api/v1/loop/status").json()
    assert st["production"] == "v1.0" and st["candidate"] == "v1.1" and st["phase"] == "idle"
    assert st["votes_this_week"] == 0 and st["pending_feedback"] == {"votes": 0, "thumbs": 0}
    assert st["paused"] is False and "next_trigger" in st

    assert api.admin.post("/api/v1/loop/pause", json={"reason": "holiday"}).json()["paused"] is True
    assert loop_events.get_state(api.db).paused
    assert api.admin.post("/api/v1/loop/resume", json={}).json()["paused"] is False
    events = api.annotator.get("/api/v1/loop/history").json()["events"]
    assert [e["kind"] for e in events[:2]] == ["resumed", "paused"] and events[1]["message"] == "holiday"
    assert events[1]["actor"] == "key:test-admin"
    assert api.annotator.get("/api/v1/loop/status").json()["paused"] is False
    split = api.annotator.get("/api/v1/loop/split").json()
    assert split["shares"] and split["source"] in ("default", "store")


def test_votes_this_week_and_pending_pairs_count_arena_votes(api) -> None:
    battle = api.user.post("/v1/arena", json={"messages": [{"role": "user", "content": "Where is my order?"}],
                                              "max_tokens": 4})
    assert battle.status_code == 200, battle.text
    vote = api.user.post("/v1/feedback/vote", json={"battle_id": battle.json()["battle_id"], "choice": "a"})
    assert vote.status_code == 201, vote.text
    st = api.annotator.get("/api/v1/loop/status").json()
    assert st["votes_this_week"] == 1 and st["pending_feedback"]["votes"] == 1


def test_rollback_with_nothing_promoted_is_a_clear_400(api) -> None:
    e = error(api.admin.post("/api/v1/loop/rollback", json={"reason": "bad"}), 400)
    assert "nothing to roll back" in e["message"]


def test_versions_lineage_and_aliases(api) -> None:
    names = {v["name"]: v for v in api.annotator.get("/api/v1/models").json()}
    assert set(names) == {"v1.0", "v1.1"} and names["v1.0"]["aliases"] == ["production"]
    lineage = api.annotator.get("/api/v1/models/candidate/lineage").json()
    assert [v["name"] for v in lineage["ancestry"]] == ["v1.1", "v1.0"] and lineage["surgery"] is None
    assert api.admin.put("/api/v1/models/aliases/canary", json={"version": "v1.1"}).status_code == 200
    assert registry.resolve_alias(api.db, "canary") == "v1.1"
    assert api.admin.delete("/api/v1/models/aliases/canary").status_code == 204
    error(api.admin.delete("/api/v1/models/aliases/production"), 409)
    hist = api.annotator.get("/api/v1/models/aliases/history", params={"alias": "canary"}).json()
    assert [h["new_version"] for h in hist] == ["v1.1", ""] or len(hist) == 2
    assert "no model version" in error(api.annotator.get("/api/v1/models/v9.9"), 404)["message"]


@pytest.mark.slow
def test_merge_lora_runs_as_a_task_and_registers_with_lineage(api) -> None:
    error(api.admin.post("/api/v1/models/merge-lora", json={"config": {"version": "v1.1", "out": "/tmp/x"}}), 422)
    error(api.admin.post("/api/v1/models/merge-lora", json={"config": {"versoin": "v1.1"}}), 422)
    error(api.annotator.post("/api/v1/models/merge-lora", json={"config": {"version": "v1.1"}}), 403)
    r = api.admin.post("/api/v1/models/merge-lora", json={"config": {"version": "candidate", "name": "v1.1-merged"}})
    assert r.status_code == 202, r.text
    task = wait_task(api.annotator, r.json()["id"])
    assert task["status"] == "succeeded", task["error"]
    assert task["result"]["version"]["name"] == "v1.1-merged" and task["total"]
    lineage = api.annotator.get("/api/v1/models/v1.1-merged/lineage").json()
    assert lineage["surgery"]["operation"] == "merge-lora" and lineage["surgery"]["parents"] == ["v1.1"]
    # the merge-ratio scan between the full-weight v1.0 and the merged candidate: its chart's points
    evalset = api.db.workspace.home / "scan.jsonl"
    evalset.write_text('{"prompt": "Where is my order?", "reference": "It ships today."}\n')
    error(api.admin.post("/api/v1/models/merge-scan", json={"config": {"a": "v1.0", "b": "v1.1-merged",
                                                                       "eval_set": str(evalset), "report_dir": "/tmp"}}), 422)
    scan = wait_task(api.annotator, api.admin.post("/api/v1/models/merge-scan", json={"config": {
        "a": "v1.0", "b": "v1.1-merged", "eval_set": str(evalset), "points": 3, "name": "v1.3"}}).json()["id"])
    assert scan["status"] == "succeeded", scan["error"]
    assert [p["t"] for p in scan["result"]["points"]] == [0.0, 0.5, 1.0] and scan["result"]["version"] == "v1.3"
    # a failing task reports the library's message
    bad = wait_task(api.annotator, api.admin.post("/api/v1/models/merge-lora", json={"config": {"version": "v1.0"}}).json()["id"])
    assert bad["status"] == "failed" and "no LoRA adapter" in bad["error"]
