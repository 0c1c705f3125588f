"""L3 pipelines on the tiny model: every step a job, ${step.key} references, resume after a failure,
a final report; every shipped pipeline file validates."""

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from llmloop.cli.main import app
from llmloop.data.versions import write_version
from llmloop.loop.pipeline import PipelineError, load_pipeline
from llmloop.store import job_queue, loop_events, open_database, registry

from test_round import CURT, HELPFUL

pytestmark = pytest.mark.slow
runner = CliRunner()
TRAIN = {"learning_rate": 5e-3, "max_steps": 2, "per_device_train_batch_size": 4, "max_length": 64,
         "logging_steps": 1, "plot_loss": False}


def _pairs(n):
    return [{"prompt": [{"role": "user", "content": f"Where is parcel {i}?"}],
             "chosen": [{"role": "assistant", "content": HELPFUL}], "rejected": [{"role": "assistant", "content": CURT}]}
            for i in range(n)]


def test_a_pipeline_runs_each_step_as_a_job_and_resumes_after_a_failure(tiny_model_dir, tmp_path):
    db = open_database()
    registry.register(db, name="v1.0", kind="chat", base_model=str(tiny_model_dir))
    registry.set_alias(db, "production", "v1.0")
    write_version(db, [{"messages": [{"role": "user", "content": f"Where is parcel {i}?"},
                                     {"role": "assistant", "content": HELPFUL}]} for i in range(8)],
                  name="sft-rows", kind="sft", source_format="openai")
    (tmp_path / "prompts.jsonl").write_text("\n".join(json.dumps({"prompt": f"Has lamp {i} shipped?"}) for i in range(3)))
    (tmp_path / "guard.jsonl").write_text(json.dumps({"prompt": "Where is my lamp?", "reference": HELPFUL}) + "\n")
    judge = "python:llmloop.demo.users:preference_score"
    spec = {"name": "t", "steps": [
        {"id": "sft", "kind": "train", "stage": "sft", "config": {**TRAIN, "model": "v1.0", "dataset": "sft-rows", "finetuning": "lora"}},
        {"id": "eval-sft", "kind": "eval", "model": "${sft.version}", "against": "v1.0", "prompts": "prompts.jsonl",
         "judge": judge, "max_tokens": 4},
        {"id": "dpo", "kind": "train", "stage": "dpo", "config": {**TRAIN, "model": "${sft.version}", "dataset": "pairs"}},
        {"id": "eval-dpo", "kind": "eval", "model": "${dpo.version}", "against": "${sft.version}", "prompts": "prompts.jsonl",
         "judge": judge, "max_tokens": 4},
        {"id": "scan", "kind": "merge_scan", "config": {"a": "v1.0", "b": str(tiny_model_dir), "method": "linear", "points": 2,
                                                         "eval_set": "guard.jsonl", "metric": "perplexity", "register_version": False}},
        {"id": "gate", "kind": "gate", "eval": "eval-dpo", "min_win_rate": 0.0, "min_ci_low": 0.0, "promote": True},
    ]}
    path = tmp_path / "pipe.yaml"
    path.write_text(yaml.safe_dump(spec))

    r = runner.invoke(app, ["pipeline", "run", str(path)])  # no dataset "pairs" yet: the dpo step fails
    assert r.exit_code == 1 and "dpo" in r.output, r.output
    (run,) = loop_events.list_pipelines(db)
    steps = loop_events.pipeline_steps_of(db, run.id)
    assert [(k, s.status) for k, s in steps.items()] == [("sft", "succeeded"), ("eval-sft", "succeeded"), ("dpo", "failed")]
    assert "pairs" in steps["dpo"].error
    sft_job = steps["sft"].job_id

    write_version(db, _pairs(8), name="pairs", kind="preference", source_format="trl")
    r = runner.invoke(app, ["pipeline", "run", str(path)])
    assert r.exit_code == 0, r.output
    assert "resumed" in r.output and "done in an earlier attempt" in r.output
    (run,) = loop_events.list_pipelines(db)  # the same run, resumed
    steps = loop_events.pipeline_steps_of(db, run.id)
    assert run.status == "succeeded" and all(s.status == "succeeded" for s in steps.values())
    assert steps["sft"].job_id == sft_job  # not trained again
    v_sft, v_dpo = steps["sft"].outputs["version"], steps["dpo"].outputs["version"]
    assert registry.get(db, v_dpo).parent == v_sft and steps["eval-dpo"].outputs["model"] == v_dpo
    # both eval steps' judged battles are kept for `eval leaderboard`
    from llmloop.eval.leaderboard import saved_comparisons

    assert {(c.version_x, c.version_y) for c in saved_comparisons(db)} == {(v_sft, "v1.0"), (v_dpo, v_sft)}
    assert len(steps["scan"].outputs["points"]) == 2
    assert registry.get(db, "production").name == v_dpo  # the gate promoted it
    kinds = {job_queue.get_job(db, s.job_id).stage for s in steps.values()}
    assert kinds == {"sft", "dpo", "eval", "merge_scan", "gate"}
    report = json.loads(Path(run.report_path).read_text())
    assert report["status"] == "succeeded" and [s["id"] for s in report["steps"]] == [s["id"] for s in spec["steps"]]
    assert (Path(run.report_path).parent / "report.md").exists()


def test_pipeline_files_are_validated_and_every_shipped_one_loads(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"name": "x", "steps": [
        {"id": "a", "kind": "eval", "model": "${nope.version}", "against": "v1.0", "prompts": "p", "judge": "j"},
        {"id": "g", "kind": "gate", "eval": "a2"}, {"id": "z", "kind": "bake"}]}))
    with pytest.raises(PipelineError) as e:
        load_pipeline(bad)
    assert "steps.2" in str(e.value) and str(bad) in str(e.value)
    bad.write_text(yaml.safe_dump({"name": "x", "steps": [
        {"id": "a", "kind": "eval", "model": "${nope.version}", "against": "v1.0", "prompts": "p", "judge": "j"},
        {"id": "g", "kind": "gate", "eval": "a2"}]}))
    with pytest.raises(PipelineError) as e:
        load_pipeline(bad)
    assert "${nope" in str(e.value) and "a2" in str(e.value)
    shipped = sorted(Path(__file__).parents[2].joinpath("configs", "pipelines").glob("*.yaml"))
    assert shipped
    for f in shipped:
        assert f.read_text().startswith("# llmloop pipeline run"), f
        load_pipeline(f)
