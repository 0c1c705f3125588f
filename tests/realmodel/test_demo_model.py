"""``llmloop demo --model``: every step of the real-model demo on a shortened schedule.

The full run's numbers (about 12 minutes on two cores) are in docs/demo.md; this checks the plumbing:
the catalog model is fetched, LoRA SFT makes v1.0, users vote in English through a real gateway, the
round goes through gate (and canary when it passes), and the drill's flipped candidate is judged.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from llmloop.demo import users
from llmloop.demo.demo_loop import DemoConfig, run_demo
from llmloop.store import feedback, registry

NAME = "smollm2-135m-instruct"


def test_real_model_demo_runs_every_step(db, smollm2_dir: Path) -> None:
    shutil.copytree(smollm2_dir, db.workspace.models_dir / NAME)  # as after `llmloop models get` (tested apart)
    cfg = DemoConfig.for_model(
        NAME, sft_rows=8, battles=24, users=8, min_pairs=3, max_tokens=16, heldout_limit=10, drill_battles=12,
        canary_requests=3, sft={"finetuning": "lora", "learning_rate": 1e-3, "max_steps": 2,
                                "per_device_train_batch_size": 4, "max_length": 128, "plot_loss": False},
        dpo={"max_steps": 2, "per_device_train_batch_size": 4, "max_length": 128},
        drill_train={"max_steps": 2},
    )
    report = run_demo(db, cfg)
    data = json.loads(Path(report.facts["report_path"]).read_text(encoding="utf-8"))

    assert set(data["step_seconds"]) == {"get", "sft", "serve", "arena", "loop", "check", "arena3", "drill"}
    assert data["model"] == NAME and data["completion_model"] is None
    v10 = registry.get(db, "v1.0")
    assert v10.parent == NAME and v10.adapter_path  # LoRA SFT on the registered real model
    assert sum(data["votes"].values()) == 24 and feedback.count_votes(db) == 24 + 12
    assert data["eval"]["n"] == 10 and "en" in data["eval"]["prompts"]
    assert data["rounds"][0]["served_after_round"] == data["production_after"]
    if data["outcome"] == "promoted":  # round 1 passed the gate: it went through the canary first
        assert data["rounds"][0]["canary"][0]["weights"] == {"production": 50.0, "candidate": 50.0}
    assert data["rounds"][-1]["drill"] == "flipped preferences"
    assert data["final_production"] == data["rounds"][-1]["served_after_round"]
    # English only: SmolLM2 is an English model, so the demo's Chinese rows stay out
    sft_rows = [json.loads(x) for x in (db.workspace.home / "demo-data" / "sft.jsonl").read_text().splitlines()]
    assert len(sft_rows) == 8 and not any(users.has_cjk(r["messages"][0]["content"]) for r in sft_rows)
    for ex in data["examples"]:
        assert not users.has_cjk(ex["prompt"])
        assert all("<|im_end|>" not in a for k, a in ex.items() if k != "prompt")
