"""Jobs as processes (T10): each job its own process and log; kill -9 then resume reaches the same
final step; cancel stops at a step with a checkpoint; claims are atomic across workers (SQLite's
guarded update, PostgreSQL's SKIP LOCKED when LLMLOOP_TEST_POSTGRES_URL is set)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmloop.store import job_queue
from llmloop.train.config import SFTConfig
from llmloop.train.worker import cancel, resume, run_claimed, start_process, submit, wait, work

STEPS = 16


def _config(tiny_model_dir: Path, **extra) -> SFTConfig:
    return SFTConfig(model=str(tiny_model_dir), dataset="faq", finetuning="full", learning_rate=1e-3,
                     max_steps=STEPS, per_device_train_batch_size=8, max_length=64, logging_steps=1,
                     save_strategy="steps", save_steps=2, save_total_limit=None, plot_loss=False,
                     register={"enabled": False}, **extra)


def _wait_for(predicate, timeout: float = 180.0) -> None:  # noqa: ANN001
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise TimeoutError("condition not reached")
        time.sleep(0.05)


def _logged_steps(job) -> list[int]:  # noqa: ANN001
    path = Path(job.output_dir) / "trainer_log.jsonl"
    return [json.loads(line)["current_steps"] for line in path.read_text().splitlines()] if path.is_file() else []


@pytest.mark.slow
def test_kill_9_then_resume_reaches_the_same_final_step(db, datasets, tiny_model_dir):
    job = submit(db, "sft", _config(tiny_model_dir))
    assert job.status == "queued"
    assert job_queue.claim(db, job.id, "test-worker") and not job_queue.claim(db, job.id, "other")
    proc = start_process(db, job_queue.get_job(db, job.id))
    assert proc.pid != os.getpid() and job_queue.get_run(db, job.id).pid == proc.pid
    checkpoints = Path(job.output_dir) / "checkpoints"
    _wait_for(lambda: (checkpoints / "checkpoint-4").is_dir() or proc.poll() is not None)
    os.kill(proc.pid, signal.SIGKILL)
    killed = wait(db, job, proc)
    assert killed.status == "failed" and "SIGKILL" in killed.error and "llmloop jobs resume" in killed.error
    steps_before = _logged_steps(killed)
    assert 4 <= max(steps_before) < STEPS, steps_before

    again = resume(db, job.id)
    assert again.status == "queued" and job_queue.get_run(db, job.id).resume
    assert job_queue.claim_next(db, "test-worker").id == job.id
    done = run_claimed(db, job_queue.get_job(db, job.id))
    assert done.status == "succeeded", done.error
    assert done.result["metrics"]["steps"] == STEPS
    assert _logged_steps(done) == list(range(1, STEPS + 1))  # steps after the checkpoint logged once
    assert [m["step"] for m in job_queue.get_metrics(db, job.id)] == list(range(1, STEPS + 1))
    log = Path(done.log_path).read_text()
    assert "resuming from" in log and "checkpoint-" in log
    assert job_queue.get_run(db, job.id).attempts == 2


@pytest.mark.slow
def test_cancel_stops_a_running_job_with_a_checkpoint_and_a_queued_one_at_once(db, datasets, tiny_model_dir):
    queued = submit(db, "sft", _config(tiny_model_dir))
    assert cancel(db, queued.id).status == "cancelled"
    assert job_queue.claim_next(db, "w") is None  # nothing left to run

    # Many steps: the cancel request is read at most once a second, and a GPU runs tiny steps fast.
    job = submit(db, "sft", _config(tiny_model_dir).model_copy(update={"max_steps": 2000}))
    job_queue.claim(db, job.id, "w")
    proc = start_process(db, job_queue.get_job(db, job.id))
    _wait_for(lambda: len(_logged_steps(job)) >= 3 or proc.poll() is not None)
    cancel(db, job.id)
    final = wait(db, job, proc)
    assert final.status == "cancelled", final.error
    assert proc.returncode == 130
    assert any((Path(job.output_dir) / "checkpoints").glob("checkpoint-*"))
    assert max(_logged_steps(final)) < 2000


@pytest.mark.parametrize("workers", [4])
def test_claims_are_atomic_across_workers(db, workers):
    ids = {job_queue.create_job(db, stage="sft", config={"n": i}).id for i in range(12)}
    claimed: list[tuple[str, str]] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        while (job := job_queue.claim_next(db, name)) is not None:
            with lock:
                claimed.append((job.id, name))

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(j for j, _ in claimed) == sorted(ids)  # every job once, none twice
    assert {job_queue.get_job(db, j).status for j in ids} == {"running"}
    assert {job_queue.get_run(db, j).worker for j, _ in claimed} <= {f"w{i}" for i in range(workers)}


@pytest.mark.slow
def test_cli_detach_worker_list_logs_plot(db, datasets, tiny_model_dir):
    from llmloop.cli.main import app

    runner = CliRunner()
    args = ["train", "sft", "--detach", "--set", f"model={tiny_model_dir}", "--set", "dataset=faq",
            "--set", "finetuning=full", "--set", "max_steps=3", "--set", "max_length=64", "--set", "logging_steps=1",
            "--set", "register.enabled=false"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    job_id = result.output.split("queued job ")[1].split(";")[0]
    assert job_queue.get_job(db, job_id).status == "queued"
    result = runner.invoke(app, ["jobs", "worker", "--once"])
    assert result.exit_code == 0 and f"job {job_id}: succeeded" in result.output, result.output
    result = runner.invoke(app, ["jobs", "list"])
    assert job_id in result.output and "succeeded" in result.output
    result = runner.invoke(app, ["jobs", "logs", "-f", job_id])
    assert result.exit_code == 0 and "Running training" in result.output
    result = runner.invoke(app, ["jobs", "plot", job_id])
    assert result.exit_code == 0 and (Path(job_queue.get_job(db, job_id).output_dir) / "training_loss.png").is_file()
    result = runner.invoke(app, ["jobs", "resume", job_id])
    assert result.exit_code == 2 and "only failed or cancelled jobs can be resumed" in result.output
    assert [j.id for j in work(db, once=True)] == []
