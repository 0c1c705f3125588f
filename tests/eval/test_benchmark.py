from pathlib import Path

import pytest

pytest.importorskip("lm_eval")

from llmloop.eval.benchmark import run_benchmark  # noqa: E402

TASKS = Path(__file__).parent / "bench_task"


def test_a_local_task_runs_offline_on_the_tiny_model(tiny_model_dir, monkeypatch):
    monkeypatch.chdir(Path(__file__).parents[2])  # the task's data_files path is relative to the repo
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    (res,) = run_benchmark(tiny_model_dir, ["llmloop_tiny_mc"], include_path=TASKS, batch_size=4)
    assert res.task == "llmloop_tiny_mc" and res.n == 4
    assert res.metrics["acc"] in (0.0, 0.25, 0.5, 0.75, 1.0) and "acc_stderr" in res.metrics


def test_unknown_task_is_a_clear_error(tiny_model_dir):
    with pytest.raises(ValueError, match="unknown benchmark task"):
        run_benchmark(tiny_model_dir, ["no_such_task_xyz"], include_path=TASKS)


def test_eval_benchmark_cli(db, tiny_model_dir, monkeypatch):
    from typer.testing import CliRunner

    from llmloop.cli.main import app
    from llmloop.store import registry

    monkeypatch.chdir(Path(__file__).parents[2])
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    registry.register(db, name="v1.0", kind="chat", base_model=str(tiny_model_dir))
    r = CliRunner().invoke(app, ["eval", "benchmark", "v1.0", "--task", "llmloop_tiny_mc", "--include-path", str(TASKS),
                                 "--limit", "2"])
    assert r.exit_code == 0, r.output
    assert "llmloop_tiny_mc (n=2): acc" in r.output
    assert CliRunner().invoke(app, ["eval", "benchmark", "v9", "--task", "x"]).exit_code == 2
