"""Datasets over HTTP: upload with row-level errors (nothing written), then the catalogue, preview,
stats, quality, dedup, filter, diff and export of what was stored."""

from __future__ import annotations

import json

from api_helpers import error

GOOD = [{"instruction": f"Question {i}?", "output": f"Answer number {i}."} for i in range(4)]
GOOD.append(dict(GOOD[0]))  # one exact duplicate


def _jsonl(rows: list) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


def test_bad_upload_lists_every_bad_row_and_writes_nothing(api) -> None:
    bad = _jsonl([GOOD[0], {"instruction": "", "output": "x"}, GOOD[1], {"instruction": "q", "output": 5}])
    e = error(api.annotator.post("/api/v1/data/upload", files={"file": ("faq.jsonl", bad)},
                                 data={"name": "faq", "format": "alpaca"}), 422)
    assert "faq.jsonl, row 2" in e["message"] and "faq.jsonl, row 4" in e["message"] and "nothing was written" in e["message"]
    assert api.annotator.get("/api/v1/data").json() == []
    v = api.annotator.post("/api/v1/data/validate", files={"file": ("faq.jsonl", bad)}, data={"format": "alpaca"}).json()
    assert v["rows_read"] == 4 and v["rows_valid"] == 2 and {p["row"] for p in v["problems"]} == {2, 4}
    assert all(p["fix"] for p in v["problems"])


def test_upload_then_curate_and_export(api) -> None:
    up = api.annotator.post("/api/v1/data/upload", files={"file": ("faq.jsonl", _jsonl(GOOD))}, data={"name": "faq"})
    assert up.status_code == 201, up.text
    assert up.json()["version"]["version"] == "v1.0" and up.json()["rows_kept"] == 5 and up.json()["format"] == "alpaca"
    listed = api.annotator.get("/api/v1/data").json()
    assert [(d["name"], d["kind"], d["versions"]) for d in listed] == [("faq", "sft", 1)]
    rows = api.annotator.get("/api/v1/data/faq/rows", params={"n": 2}).json()
    assert len(rows) == 2 and rows[0]["messages"][0]["content"] == "Question 0?"
    assert api.annotator.get("/api/v1/data/faq/stats").json()["duplicates"] == 1
    assert api.annotator.get("/api/v1/data/faq@v1.0/quality").json()["rows"] == 5

    dd = api.annotator.post("/api/v1/data/faq/dedup", json={"method": "exact"}).json()
    assert dd["rows_in"] == 5 and dd["rows_kept"] == 4 and dd["version"]["version"] == "v1.1"
    flt = api.annotator.post("/api/v1/data/faq/filter", json={"rules": {"sensitive_words": ["number 3"]}}).json()
    assert flt["rows_kept"] == 3 and flt["version"]["version"] == "v1.2"
    assert [v["version"] for v in api.annotator.get("/api/v1/data/faq/versions").json()] == ["v1.0", "v1.1", "v1.2"]
    diff = api.annotator.get("/api/v1/data/diff", params={"old": "faq@v1.0", "new": "faq@v1.2"}).json()
    assert len(diff["removed"]) == 2 and diff["added"] == [] and diff["unchanged"] == 3

    r = api.annotator.get("/api/v1/data/faq@v1.2/export", params={"to": "openai"})
    assert r.status_code == 200 and r.headers["content-disposition"].endswith('faq-v1.2.openai.jsonl"')
    exported = [json.loads(line) for line in r.text.splitlines()]
    assert len(exported) == 3 and exported[0]["messages"][-1]["role"] == "assistant"


def test_unknown_dataset_and_bad_rules_are_clear_errors(api) -> None:
    assert "no dataset" in error(api.annotator.get("/api/v1/data/nope/versions"), 404)["message"]
    api.annotator.post("/api/v1/data/upload", files={"file": ("faq.jsonl", _jsonl(GOOD))}, data={"name": "faq"})
    e = error(api.annotator.post("/api/v1/data/faq/filter", json={"rules": {"min_chars": -1}}), 422)
    assert "min_chars" in e["message"]
    error(api.annotator.delete("/api/v1/data/faq"), 403)  # deleting is the admin's
    assert api.admin.delete("/api/v1/data/faq").json()["name"] == "faq"


def test_synthetic_generation_is_a_task_with_progress(api, tmp_path) -> None:
    from api_helpers import wait_task

    seeds = tmp_path / "seeds.txt"
    seeds.write_text("How do I reset my router?\nSummarise the delivery policy.\nClassify this complaint.\n")
    body = {"config": {"method": "self-instruct", "seeds": str(seeds), "name": "synth", "num": 5},
            "generator": {"kind": "template"}}
    error(api.annotator.post("/api/v1/data/generate", json=body), 403)
    error(api.admin.post("/api/v1/data/generate", json={**body, "config": {**body["config"], "method": "mutate"}}), 422)
    task = wait_task(api.annotator, api.admin.post("/api/v1/data/generate", json=body).json()["id"])
    assert task["status"] == "succeeded", task["error"]
    assert task["done"] > 0 and task["total"] and task["result"]["kept"] == 5
    assert task["result"]["version"]["dataset"] == "synth"
    assert len(api.annotator.get("/api/v1/data/synth/rows", params={"n": 100}).json()) == 5
