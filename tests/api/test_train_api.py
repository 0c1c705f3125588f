"""Training over HTTP: presets, validation with every problem, a real (tiny) SFT job launched in the
background whose progress, per-step loss, log and registered version come back through the API."""

from __future__ import annotations

import json

import pytest
from api_helpers import error

ROWS = [{"instruction": f"How do I reset device {i}?", "output": f"Hold the button on device {i} for ten seconds."}
        for i in range(8)]
CONFIG = ("model: v1.0\ndataset: faq\nfinetuning: full\nlearning_rate: 1.0e-3\nmax_steps: 4\nlogging_steps: 1\n"
          "per_device_train_batch_size: 4\nmax_length: 64\nplot_loss: false\n")


def test_presets_and_validation(api) -> None:
    presets = api.annotator.get("/api/v1/train/presets").json()
    assert {"pt", "sft", "dpo"} <= {p["stage"] for p in presets}
    assert all(p["yaml"].startswith("# llmloop train") for p in presets)
    unknown = api.annotator.post("/api/v1/train/validate", json={"stage": "sft", "yaml": CONFIG}).json()
    assert not unknown["ok"] and "faq" in unknown["problems"][0]  # the dataset is not stored (yet): refused
    e = error(api.admin.post("/api/v1/train/jobs", json={"stage": "sft", "yaml": CONFIG}), 400)
    assert "dataset" in e["message"] and "faq" in e["message"]  # and no job is queued for it
    assert api.annotator.get("/api/v1/train/jobs").json() == []
    _upload(api)
    ok = api.annotator.post("/api/v1/train/validate", json={"stage": "sft", "yaml": CONFIG}).json()
    assert ok["ok"] and ok["config"]["max_steps"] == 4 and ok["config"]["lora"]["r"] > 0
    wrong_kind = api.annotator.post("/api/v1/train/validate", json={"stage": "dpo", "yaml": CONFIG}).json()
    assert not wrong_kind["ok"] and "preference" in wrong_kind["problems"][0]  # sft rows for a dpo stage
    bad = api.annotator.post("/api/v1/train/validate", json={"stage": "sft", "yaml": "model: v1.0\nlearning_rat: 1\n",
                                                             "overrides": ["max_steps=lots"]}).json()
    assert not bad["ok"] and len(bad["problems"]) == 3  # dataset missing, unknown key, bad number
    assert any("learning_rat" in p for p in bad["problems"]) and any("max_steps" in p for p in bad["problems"])
    e = error(api.admin.post("/api/v1/train/jobs", json={"stage": "sft", "yaml": "model: v1.0\n"}), 400)
    assert "dataset" in e["message"]  # refused before anything is queued


def test_every_shipped_stage_is_offered_with_its_fields(api) -> None:
    from llmloop.train.config import STAGES

    stages = api.annotator.get("/api/v1/train/stages").json()
    assert tuple(s["stage"] for s in stages) == STAGES and len(STAGES) == 8
    dpo = next(s for s in stages if s["stage"] == "dpo")
    assert dpo["fields"]["beta"]["default"] == 0.1 and dpo["fields"]["dataset"]["required"]
    for stage in STAGES:  # the request model takes each one (was pt | sft | dpo only)
        r = api.annotator.post("/api/v1/train/validate", json={"stage": stage, "yaml": "model: v1.0\n"})
        assert r.status_code == 200 and not r.json()["ok"], (stage, r.text)


def wait_job(client, job_id: str, statuses: tuple[str, ...] = ("succeeded", "failed", "cancelled"),  # noqa: ANN001
             timeout: float = 300) -> dict:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = client.get(f"/api/v1/train/jobs/{job_id}").json()
        ended = view["job"]["status"] not in ("queued", "running")
        # an ended job is returned once its waiter thread has recorded the process's end (pid cleared)
        if view["job"]["status"] in statuses and (not ended or view["run"]["pid"] is None):
            return view
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} still {view['job']['status']}")


def _upload(api) -> None:  # noqa: ANN001
    data = "".join(json.dumps(r) + "\n" for r in ROWS).encode()
    assert api.annotator.post("/api/v1/data/upload", files={"file": ("faq.jsonl", data)},
                              data={"name": "faq"}).status_code == 201


@pytest.mark.slow
def test_launch_sft_job_and_follow_it(api) -> None:
    _upload(api)
    launched = api.admin.post("/api/v1/train/jobs", json={"stage": "sft", "yaml": CONFIG})
    assert launched.status_code == 202, launched.text
    job_id = launched.json()["job"]["id"]
    assert launched.json()["job"]["status"] in ("queued", "running")
    view = wait_job(api.annotator, job_id)
    assert view["job"]["status"] == "succeeded", view["job"]["error"]
    assert view["progress"]["step"] == view["progress"]["total_steps"] == 4 and view["progress"]["eta_s"] == 0
    assert view["job"]["result"]["model_version"] == "v1.2"  # v1.1 exists

    steps = api.annotator.get(f"/api/v1/train/jobs/{job_id}/metrics").json()
    assert [s["step"] for s in steps if "loss" in s] == [1, 2, 3, 4]
    losses = [s["loss"] for s in steps if "loss" in s]
    assert losses[-1] < losses[0]  # it learned
    assert api.annotator.get(f"/api/v1/train/jobs/{job_id}/logs").json()["log"]
    assert [j["id"] for j in api.annotator.get("/api/v1/train/jobs").json()] == [job_id]
    assert api.annotator.get("/api/v1/models/v1.2").json()["job_id"] == job_id
    e = error(api.admin.post(f"/api/v1/train/jobs/{job_id}/resume"), 400)
    assert "only failed or cancelled jobs can be resumed" in e["message"]
    error(api.annotator.post(f"/api/v1/train/jobs/{job_id}/cancel"), 403)
    error(api.annotator.get("/api/v1/train/jobs/sft-nope/metrics"), 404)


@pytest.mark.slow
def test_cancel_then_resume_continues_from_the_checkpoint(api) -> None:
    _upload(api)
    long = CONFIG.replace("max_steps: 4", "max_steps: 400") + "save_strategy: steps\nsave_steps: 2\n"
    job_id = api.admin.post("/api/v1/train/jobs", json={"stage": "sft", "yaml": long}).json()["job"]["id"]
    import time

    deadline = time.monotonic() + 120
    while not api.annotator.get(f"/api/v1/train/jobs/{job_id}").json()["progress"] and time.monotonic() < deadline:
        time.sleep(0.3)
    api.admin.post(f"/api/v1/train/jobs/{job_id}/cancel")
    view = wait_job(api.annotator, job_id)
    assert view["job"]["status"] == "cancelled", view["job"]
    stopped_at = view["progress"]["step"]
    assert stopped_at < 400
    assert view["run"]["cancel_requested"] and view["run"]["attempts"] == 1
    deadline = time.monotonic() + 60
    while view["run"]["pid"] is not None and time.monotonic() < deadline:  # its waiter has recorded the end
        time.sleep(0.2)
        view = api.annotator.get(f"/api/v1/train/jobs/{job_id}").json()
    resumed = api.admin.post(f"/api/v1/train/jobs/{job_id}/resume")
    assert resumed.status_code == 202 and resumed.json()["job"]["status"] in ("queued", "running")
    assert resumed.json()["run"]["resume"] and not resumed.json()["run"]["cancel_requested"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # the resumed process trains past where the first one stopped
        view = api.annotator.get(f"/api/v1/train/jobs/{job_id}").json()
        if view["job"]["status"] != "running" or (view["progress"] or {}).get("step", 0) > stopped_at:
            break
        time.sleep(0.3)
    assert view["job"]["status"] == "running" and view["progress"]["step"] > stopped_at, view["job"]["error"]
    assert view["run"]["attempts"] == 2
    api.admin.post(f"/api/v1/train/jobs/{job_id}/cancel")  # no need to train 400 steps
    assert wait_job(api.annotator, job_id)["job"]["status"] == "cancelled"
