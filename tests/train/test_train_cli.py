"""``llmloop train …`` and ``llmloop jobs …`` through Typer's CliRunner."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from typer.testing import CliRunner

from llmloop.cli.main import app
from llmloop.store import job_queue

runner = CliRunner()


def _yaml(tmp_path: Path, model: Path, dataset: str) -> Path:
    path = tmp_path / "pt.yaml"
    path.write_text(
        f"model: {model}\ndataset: {dataset}\nfinetuning: full\nlearning_rate: 1.0e-3\nmax_steps: 2\n"
        "per_device_train_batch_size: 8\nmax_length: 64\nlogging_steps: 1\n"
    )
    return path


def test_train_then_inspect_the_job(db, datasets, tiny_model_dir, tmp_path):
    result = runner.invoke(app, ["train", "pt", "-c", str(_yaml(tmp_path, tiny_model_dir, "corpus")),
                                 "--set", "register.note=from the cli"])
    assert result.exit_code == 0, result.output
    (job,) = job_queue.list_jobs(db)
    assert job.status == "succeeded" and job.config["register"]["note"] == "from the cli"
    assert "train pt: succeeded" in result.output and job.id in result.output
    assert "c1.0 (completion, candidate" in result.output and "→" in result.output
    if importlib.util.find_spec("matplotlib"):  # the loss curve is optional, like matplotlib
        assert (Path(job.output_dir) / "training_loss.png").stat().st_size > 0

    listed = runner.invoke(app, ["jobs", "list"])
    assert listed.exit_code == 0 and job.id in listed.output and "succeeded" in listed.output

    shown = runner.invoke(app, ["jobs", "show", job.id])
    assert shown.exit_code == 0, shown.output
    assert "learning_rate: 0.001" in shown.output and "model version" in shown.output
    assert "2 logged steps of 2" in shown.output

    logs = runner.invoke(app, ["jobs", "logs", job.id, "--tail", "3"])
    assert logs.exit_code == 0 and "registered model version c1.0" in logs.output


def test_user_errors_exit_2_with_one_message_and_no_traceback(db, datasets, tiny_model_dir, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: x\ndataset: corpus\nlerning_rate: 1\n")
    result = runner.invoke(app, ["train", "sft", "-c", str(bad)])
    assert result.exit_code == 2
    assert "lerning_rate: unknown key; did you mean 'learning_rate'?" in result.output
    assert "Traceback" not in result.output

    config = _yaml(tmp_path, tiny_model_dir, "corpus")
    result = runner.invoke(app, ["train", "pt", "-c", str(config), "--set", "dataset=nope"])
    assert result.exit_code == 2
    assert "no dataset version 'nope'" in result.output and "llmloop jobs logs" in result.output
    assert "Traceback" not in result.output

    result = runner.invoke(app, ["train", "dpo", "-c", str(config), "--set", "model=v7.7", "--set", "dataset=prefs"])
    assert result.exit_code == 2 and "'v7.7' is not a registered version or alias" in result.output

    result = runner.invoke(app, ["jobs", "show", "pt-nosuchjob"])
    assert result.exit_code == 2 and "no job 'pt-nosuchjob'" in result.output


def test_help_lists_the_config_keys():
    result = runner.invoke(app, ["train", "dpo", "--help"])
    assert result.exit_code == 0
    for key in ("beta", "loss_type", "lora.r", "register.name", "max_steps"):
        assert key in result.output
