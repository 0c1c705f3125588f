"""One table of stages drives everything that lists them; one job path classifies a failure by the
exception's type (an input error or a crash with its traceback kept)."""

from __future__ import annotations

import sys

import pytest
from typer.testing import CliRunner

from llmloop.cli.main import app
from llmloop.train import job_runner
from llmloop.train.config import CONFIGS, STAGE_TABLE, STAGES, GRPOConfig, SFTConfig, load_config

runner = CliRunner()


def test_the_stage_table_is_the_one_list():
    assert STAGES == ("pt", "sft", "dpo", "orpo", "kto", "rm", "grpo", "ppo")
    assert CONFIGS == {s.name: s.config for s in STAGE_TABLE}
    assert job_runner.DATASET_KIND == {s.name: s.dataset_kind for s in STAGE_TABLE}
    assert job_runner.MODEL_KIND == {s.name: s.model_kind for s in STAGE_TABLE if s.model_kind}
    assert "rm" not in job_runner.MODEL_KIND  # a scorer, not registered as a version
    for s in STAGE_TABLE:  # every recipe imports and is the module's run()
        assert job_runner.RECIPES[s.name] is s.recipe_function() and s.recipe_function().__name__ == "run"


def test_every_stage_is_a_train_command_with_its_help_and_keys():
    listed = runner.invoke(app, ["train", "--help"])
    assert listed.exit_code == 0
    first_words = [line.strip("│ ").split()[0] for line in listed.output.splitlines() if line.strip("│ ")]
    assert [w for w in first_words if w in (*STAGES, "export-llamafactory")] == [*STAGES, "export-llamafactory"]
    for s in STAGE_TABLE:
        r = runner.invoke(app, ["train", s.name, "--help"])
        text = " ".join(r.output.replace("│", " ").split())  # the help as one line, however rich wrapped it
        assert r.exit_code == 0 and s.help.split(":")[0] in text and "--detach" in text
        assert all(key in text for key in ("max_steps", "lora.r", "register.name"))


def test_values_lay_over_the_preset_and_name_their_origin(tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text("model: base\ndataset: faq\nlearning_rate: 1.0e-4\nlora:\n  r: 4\n")
    c = load_config("sft", preset, ["max_steps=3"], values={"model": "production", "learning_rate": 2e-4})
    assert isinstance(c, SFTConfig) and (c.model, c.learning_rate, c.lora.r, c.max_steps) == ("production", 2e-4, 4, 3)
    with pytest.raises(Exception, match=r"lerning_rate \(from the policy\): unknown key") as e:
        load_config("sft", preset, values={"lerning_rate": 1}, values_from="the policy")
    assert str(preset) in str(e.value)


def test_an_input_error_is_classified_as_such_and_a_crash_keeps_its_traceback(db, datasets, tiny_model_dir,
                                                                               tmp_path, monkeypatch):
    with pytest.raises(job_runner.JobFailed) as info:
        job_runner.run_training(db, "sft", SFTConfig(model=str(tiny_model_dir), dataset="nope", max_steps=1))
    failed = info.value.job
    assert info.value.user_error and job_runner.job_failed_on_input(failed)
    assert failed.result == {"failed_on_input": True, "traceback": None}

    # a user reward function that crashes: a bug in the run, not the input
    (tmp_path / "crashing_reward.py").write_text("def boom(completions, **kwargs):\n    raise ZeroDivisionError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    config = GRPOConfig(model=str(tiny_model_dir), dataset="math", max_steps=1, per_device_train_batch_size=2,
                        num_generations=2, max_completion_length=4, rewards=["crashing_reward:boom"],
                        plot_loss=False, register={"enabled": False})
    with pytest.raises(job_runner.JobFailed) as info:
        job_runner.run_training(db, "grpo", config)
    crashed = job_runner.get_job(db, info.value.job.id)
    assert not info.value.user_error and not job_runner.job_failed_on_input(crashed) and crashed.status == "failed"
    assert "ZeroDivisionError: boom" in crashed.result["traceback"] and "Traceback" in crashed.result["traceback"]
    assert [j.id for j in job_runner.list_jobs(db)] == [failed.id, crashed.id]  # both went through submit
    sys.modules.pop("crashing_reward", None)
