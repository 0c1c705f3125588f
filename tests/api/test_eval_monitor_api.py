"""Evaluation over HTTP (a judged comparison with its CI and samples, an eval run with reports, the
leaderboard, the human-review round trip) and the monitor's series from the /metrics counters."""

from __future__ import annotations

import csv
import io
import json

import pytest
from api_helpers import error, wait_task

PROMPTS = ["How do I reset my router?", "Where is my order?", "Can I change my address?"]


@pytest.fixture
def prompts_file(tmp_path):  # noqa: ANN001, ANN201
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": p, "reference": "Hold the button."}) + "\n" for p in PROMPTS))
    return path


@pytest.mark.slow
def test_compare_drill_down_leaderboard_and_human_review(api, prompts_file) -> None:
    cfg = {"challenger": "candidate", "incumbent": "production", "prompts": str(prompts_file),
           "judge": "python:builtins:len", "max_tokens": 8, "bootstrap": 20}
    error(api.annotator.post("/api/v1/eval/comparisons", json={"config": cfg}), 403)
    error(api.admin.post("/api/v1/eval/comparisons", json={"config": {**cfg, "judje": "x"}}), 422)
    task = wait_task(api.annotator, api.admin.post("/api/v1/eval/comparisons", json={"config": cfg}).json()["id"])
    assert task["status"] == "succeeded", task["error"]
    assert task["done"] == task["total"] > 0
    result = task["result"]
    assert result["n"] == 3 and result["ci_low"] <= result["win_rate"] <= result["ci_high"]

    listed = api.annotator.get("/api/v1/eval/comparisons").json()
    assert [c["id"] for c in listed] == [result["comparison_id"]] and "samples" not in listed[0]
    one = api.annotator.get(f"/api/v1/eval/comparisons/{result['comparison_id']}").json()
    assert len(one["samples"]) == 3 and one["samples"][0]["prompt"][0]["content"] == PROMPTS[0]
    board = api.annotator.get("/api/v1/eval/leaderboard", params={"bootstrap": 10}).json()
    assert {r["model"] for r in board["rows"]} == {"v1.0", "v1.1"} and board["sources"]["judge"] == 3

    sheet = api.annotator.post(f"/api/v1/eval/comparisons/{result['comparison_id']}/review-sheet")
    assert sheet.status_code == 200, sheet.text
    review_id = sheet.headers["x-llmloop-review-id"]
    rows = list(csv.DictReader(io.StringIO(sheet.content.decode("utf-8-sig"))))
    assert len(rows) == 3 and "answer_x" not in rows[0]  # blind: no version names
    for r in rows:
        r["preferred"] = "tie"
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    imported = api.annotator.post(f"/api/v1/eval/reviews/{review_id}", data={"reviewer": "alice"},
                                  files={"file": ("filled.csv", out.getvalue().encode("utf-8"))}).json()
    assert imported["judge"] == "alice" and imported["ties"] == 3 and imported["win_rate"] == 0.5
    assert len(api.annotator.get("/api/v1/eval/comparisons").json()) == 2
    assert "no review" in error(api.annotator.post("/api/v1/eval/reviews/review-nope",
                                                   files={"file": ("f.csv", b"id,preferred\n")}), 404)["message"]


@pytest.mark.slow
def test_eval_run_reports_and_samples(api, prompts_file) -> None:
    cfg = {"versions": ["production"], "data": str(prompts_file), "max_tokens": 8}
    error(api.admin.post("/api/v1/eval/runs", json={"config": {**cfg, "out_dir": "/tmp/x"}}), 422)
    task = wait_task(api.annotator, api.admin.post("/api/v1/eval/runs", json={"config": cfg}).json()["id"])
    assert task["status"] == "succeeded", task["error"]
    run_id = task["result"]["run_id"]
    report = api.annotator.get(f"/api/v1/eval/runs/{run_id}").json()
    assert len(report["samples"]) == 3
    html = api.annotator.get(f"/api/v1/eval/runs/{run_id}/download", params={"fmt": "html"})
    assert html.status_code == 200 and "<html" in html.text.lower()
    error(api.annotator.get("/api/v1/eval/runs/nope/download"), 404)


def test_monitor_series_follow_the_metrics_counters(api) -> None:
    before = api.annotator.get("/api/v1/monitor").json()
    r = api.user.post("/v1/chat/completions", json={"model": "production", "max_tokens": 4,
                                                    "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200, r.text
    api.user.post("/v1/feedback/thumbs", json={"request_id": r.headers["x-llmloop-request-id"], "rating": 1})
    series = api.annotator.get("/api/v1/monitor").json()
    assert series["interval_s"] > 0
    points = series["versions"]["v1.0"]
    assert points[-1]["requests_total"] >= 1 and points[-1]["thumbs_up_ratio"] == 1.0
    assert sum(p["requests_per_s"] for p in points) > 0
    assert "v1.0" not in before["versions"] or before["versions"]["v1.0"][-1]["requests_total"] == 0
    text = api.anonymous.get("/metrics").text  # the same numbers
    assert 'llmloop_requests_total{endpoint="/v1/chat/completions",status="200",version="v1.0"} 1.0' in text
