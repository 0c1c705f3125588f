"""``llmloop models …`` end to end through Typer's CliRunner: registry commands and surgery."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from llmloop.cli.main import app
from llmloop.store import job_queue
from llmloop.store import registry

runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    """Rich wraps tables at 80 columns under the runner; the assertions read whole cells."""
    from rich.console import Console

    import llmloop.cli.models as cli

    monkeypatch.setattr(cli, "console", Console(width=250))
    monkeypatch.setattr(cli, "err", Console(width=250, stderr=True))


def _ok(args: list[str]) -> str:
    r = runner.invoke(app, ["models", *args], terminal_width=200)
    assert r.exit_code == 0, r.output
    return r.output


def test_registry_commands(db, tiny_model_dir, adapters):
    from llmloop.data.versions import write_version

    ds = write_version(db, [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}],
                       name="faq", kind="sft", source_format="messages")
    job = job_queue.create_job(db, stage="dpo", config={"model": "v1.0", "dataset": "faq", "beta": 0.1, "learning_rate": 5e-6})
    registry.register(db, name="v1.0", kind="chat", base_model=str(tiny_model_dir), dataset_versions=[ds.id])
    registry.register(db, name="v1.1", kind="chat", base_model=str(tiny_model_dir), adapter_path=str(adapters[0]),
                      parent="v1.0", job_id=job.id, dataset_versions=[ds.id])
    registry.register(db, name="v1.2", kind="chat", base_model=str(tiny_model_dir), adapter_path=str(adapters[1]), parent="v1.1")
    _ok(["alias", "production", "v1.1", "--reason", "won the eval"])
    _ok(["alias", "canary", "v1.2"])
    _ok(["alias", "my-test", "v1.2"])
    out = _ok(["list"])
    assert "production" in out and "my-test" in out and "base + adapter" in out
    # merged weights become a version whose lineage goes back through the adapters to the base
    _ok(["merge-lora", "v1.2", "--name", "v1.3"])
    out = _ok(["lineage", "v1.3"])
    assert "chain: v1.3 ← v1.2 ← v1.1 ← v1.0" in out
    assert "merge-lora" in out and "faq@v1.0" in out and '"beta": 0.1' in out and f"dpo job {job.id}" in out
    out = _ok(["show", "v1.3"])
    assert '"operation": "merge-lora"' in out
    # archiving is refused while an alias points at the version, then allowed once it moved
    r = runner.invoke(app, ["models", "archive", "v1.2"])
    assert r.exit_code == 2 and "canary" in r.output and "my-test" in r.output
    _ok(["alias", "canary", "v1.3", "--reason", "merged build"])
    _ok(["alias", "my-test", "--remove"])
    _ok(["archive", "v1.2", "--reason", "superseded"])
    assert registry.get(db, "v1.2").stage == "archived"
    out = _ok(["aliases", "--history"])
    assert "won the eval" in out and "merged build" in out
    assert [e["new_version"] for e in registry.alias_history(db, "canary")] == ["v1.2", "v1.3"]
    # a bad alias name or target: clear error, nothing moved
    r = runner.invoke(app, ["models", "alias", "v1.0", "v1.1"])
    assert r.exit_code == 2 and "name of a model version" in r.output
    r = runner.invoke(app, ["models", "alias", "production", "v9.9"])
    assert r.exit_code == 2 and "v9.9" in r.output
    assert registry.get(db, "production").name == "v1.1"


def test_surgery_commands(db, tiny_model_dir, tiny_b_dir, tmp_path):
    registry.register(db, name="v1.0", kind="chat", base_model=str(tiny_model_dir))
    registry.register(db, name="v2.0", kind="chat", base_model=str(tiny_b_dir))
    out = _ok(["merge", "--models", "v1.0,v2.0", "--method", "slerp", "--t", "0.3", "--name", "m1"])
    assert "registered m1" in out
    out = _ok(["lineage", "m1"])  # a merge has two parents: both appear, with the recipe
    assert "v1.0 chat" in out and "v2.0 chat" in out and '"method": "slerp"' in out and '"t": 0.3' in out
    _ok(["merge", "--models", "v1.0", "--models", "v2.0", "--weights", "0.2,0.8", "--no-register", "--out", str(tmp_path / "lin")])
    assert (tmp_path / "lin" / "model.safetensors").exists()
    r = runner.invoke(app, ["models", "merge", "--models", "v1.0,v2.0", "--weights", "1"])
    assert r.exit_code == 2 and "--weights" in r.output
    r = runner.invoke(app, ["models", "merge", "--models", "v1.0,v2.0", "--method", "ties"])
    assert r.exit_code == 2 and "--base" in r.output
    out = _ok(["quantize", "m1", "--method", "bf16", "--max-texts", "2"])
    assert "perplexity_delta" in out and "size_ratio" in out
    out = _ok(["prune", "v1.0", "--amount", "0.5", "--max-texts", "2"])
    assert "sparsity_pruned_layers" in out
    r = runner.invoke(app, ["models", "quantize", "v1.0", "--method", "int3"])
    assert r.exit_code == 2 and "--method" in r.output and "int4" in r.output


def test_select_and_average_commands(db, tiny_model_dir):
    import shutil

    job = job_queue.create_job(db, stage="sft", config={})
    for step, (loss, ev) in zip((10, 20, 30), ((1.0, 1.1), (0.8, 1.0), (0.6, 1.2))):
        shutil.copytree(tiny_model_dir, f"{job.output_dir}/checkpoints/checkpoint-{step}")
        job_queue.add_metrics(db, job.id, step, {"loss": loss})
        job_queue.add_metrics(db, job.id, step, {"eval_loss": ev})
    out = _ok(["select-checkpoint", job.id, "--patience", "1"])
    assert "best: step 20" in out and "overfitting: from step 30" in out
    out = _ok(["average", job.id, "--method", "ema", "--decay", "0.7", "--steps", "20,30"])
    assert "registered" in out
    r = runner.invoke(app, ["models", "average", job.id, "--steps", "99,100"])
    assert r.exit_code == 2 and "saved: [10, 20, 30]" in r.output


def test_register_a_folder(db, tiny_model_dir, adapters, tmp_path):
    out = _ok(["register", str(tiny_model_dir)])
    assert "registered v1.0" in out
    out = _ok(["register", str(adapters[0]), "--parent", "v1.0", "--note", "from elsewhere"])
    v = registry.get(db, "v1.1")
    assert v.adapter_path == str(adapters[0].resolve()) and v.parent == "v1.0" and v.note == "from elsewhere"
    _ok(["register", str(tiny_model_dir), "--kind", "completion"])
    assert registry.get(db, "c1.0").kind == "completion"
    for bad, msg in (([str(tmp_path)], "is this a model folder"), ([str(tiny_model_dir), "--parent", "v7.0"], "--parent"),
                     ([str(tiny_model_dir), "--kind", "base"], "--kind"), ([str(tiny_model_dir), "--name", "v1.0"], "taken")):
        r = runner.invoke(app, ["models", "register", *bad])
        assert r.exit_code == 2 and msg in r.output, r.output


@pytest.mark.parametrize("cmd", ["register", "merge-lora", "merge", "average", "merge-scan", "select-checkpoint", "quantize", "prune", "distill",
                                 "list", "show", "lineage", "alias", "aliases", "archive"])
def test_every_command_has_help(cmd):
    r = runner.invoke(app, ["models", cmd, "--help"])
    assert r.exit_code == 0 and "Usage" in r.output


def test_merge_scan_command_prints_the_table_and_writes_the_plot(db, tiny_model_dir, tiny_b_dir, tmp_path):
    import json

    registry.register(db, name="v1.0", kind="chat", base_model=str(tiny_model_dir))
    registry.register(db, name="v2.0", kind="chat", base_model=str(tiny_b_dir))
    es = tmp_path / "eval.jsonl"
    es.write_text("\n".join(json.dumps({"prompt": f"q{i}", "reference": "a short answer"}) for i in range(2)), encoding="utf-8")
    out = _ok(["merge-scan", "v1.0", "v2.0", "--eval", str(es), "--points", "3", "--alias", "candidate"])
    assert "0.00" in out and "0.50" in out and "1.00" in out and "◀ best" in out
    png = next(db.workspace.reports_dir.glob("merge-scan-*.png"))
    assert png.stat().st_size > 1000
    assert registry.get(db, "candidate").name in out
    r = runner.invoke(app, ["models", "merge-scan", "v1.0", "v2.0", "--eval", str(tmp_path / "missing.jsonl")])
    assert r.exit_code == 2 and "missing.jsonl" in r.output
