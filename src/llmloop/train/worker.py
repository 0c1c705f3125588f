"""Jobs as processes (T10): claim, run each job in a process of its own, cancel, resume.

The contract:
- ``submit(db, stage, config)`` (``train.job_runner``, re-exported here) records a queued job.
- A worker (``llmloop jobs worker``, or ``run_here`` for the job a caller just submitted: ``llmloop
  train``, ``jobs resume``, the REST API) claims jobs atomically (``store.job_queue.claim_next``: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, a
  guarded update on SQLite), so several workers on several machines can share one PostgreSQL store
  and one ``LLMLOOP_HOME`` (shared filesystem) without running a job twice.
- Each job runs as ``python -m llmloop.train.worker run JOB_ID`` in a new process session; its
  stdout/stderr go to the job's log file. With ``gpus > 1`` the same command is started through
  ``accelerate launch --num_processes N`` (configs under configs/accelerate/ pick DDP or DeepSpeed).
- The job process sets the final status itself. If it dies without doing so (``kill -9``, OOM
  killer, power loss), the worker that waited on it marks the job failed with the exit signal.
- ``resume`` puts a failed/cancelled job back in the queue; its next process continues from the last
  checkpoint under ``<job>/checkpoints`` (transformers restores weights, optimizer, scheduler,
  RNG and step) and so reaches the same final step count.
- ``cancel`` cancels a queued job at once; a running job's process sees the request at the next
  step, saves a checkpoint and stops (cancelled, resumable). SIGTERM to the process does the same.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from llmloop.store import Database
from llmloop.store import job_queue
from llmloop.store.records import Job
from llmloop.train.config import CONFIGS
from llmloop.train.job_runner import submit  # noqa: F401 - the job path's first step, re-exported for workers' callers
from llmloop.train.speed import JOB_PROCESS_ENV

log = logging.getLogger("llmloop.train")

ACCELERATE_CONFIG_DIR = Path(__file__).resolve().parents[3] / "configs" / "accelerate"


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def job_command(job: Job, gpus: int, accelerate_config: str | None = None) -> list[str]:
    """The command line of a job's process: python, or ``accelerate launch`` for several GPUs or an
    accelerate config (DeepSpeed ZeRO-3 with offload is how one GPU trains a model larger than it holds)."""
    inner = ["-m", "llmloop.train.worker", "run", job.id]
    if gpus <= 1 and not accelerate_config:
        return [sys.executable, *inner]
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(gpus)]
    if accelerate_config:
        launch += ["--config_file", accelerate_config]
    return [*launch, *inner]


def start_process(db: Database, job: Job) -> subprocess.Popen:
    """Start the claimed ``job`` in a new process session, output appended to its log file."""
    run = job_queue.get_run(db, job.id)
    accelerate_config = (job.config.get("accelerate_config") if isinstance(job.config, dict) else None)
    cmd = job_command(job, run.gpus, accelerate_config)
    log_file = open(job.log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
    try:
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1", JOB_PROCESS_ENV: "1"})
    finally:
        log_file.close()
    job_queue.set_pid(db, job.id, proc.pid)
    return proc


def wait(db: Database, job: Job, proc: subprocess.Popen) -> Job:
    """Wait for the job's process; record a death the process could not record itself."""
    code = proc.wait()
    final = job_queue.get_job(db, job.id)
    if final.status == "running":  # killed before it could write its own end
        how = f"signal {-code} ({signal.Signals(-code).name})" if code < 0 else f"exit code {code}"
        final = job_queue.set_status(
            db, job.id, "failed",
            error=f"the job's process (pid {proc.pid}) died with {how}; `llmloop jobs resume {job.id}` "
            "continues from its last checkpoint",
        )
    job_queue.set_pid(db, job.id, None)
    return final


def run_claimed(db: Database, job: Job) -> Job:
    return wait(db, job, start_process(db, job))


def claim_here(db: Database, job_id: str) -> Job | None:
    """Claim the queued ``job_id`` for this worker; None when another worker took it first."""
    return job_queue.get_job(db, job_id) if job_queue.claim(db, job_id, worker_name()) else None


def run_here(db: Database, job_id: str) -> Job:
    """Be the worker of ``job_id`` (one a caller just submitted or resumed): claim it, run it in a
    process of its own and wait; the final job. A job another worker claimed first is returned as it is."""
    job = claim_here(db, job_id)
    return run_claimed(db, job) if job is not None else job_queue.get_job(db, job_id)


def work(db: Database, *, once: bool = False, poll_s: float = 2.0, max_jobs: int | None = None) -> list[Job]:
    """Claim and run queued jobs one at a time; ``once``: stop when the queue is empty."""
    name, done = worker_name(), []
    while max_jobs is None or len(done) < max_jobs:
        job = job_queue.claim_next(db, name)
        if job is None:
            if once:
                break
            time.sleep(poll_s)
            continue
        log.info("worker %s runs job %s", name, job.id)
        done.append(run_claimed(db, job))
    return done


def cancel(db: Database, job_id: str) -> Job:
    """Cancel a queued job now; ask a running one to stop (and signal its process when it is here)."""
    job = job_queue.request_cancel(db, job_id)
    run = job_queue.get_run(db, job_id)
    if job.status == "running" and run.pid and run.worker and run.worker.split(":")[0] == socket.gethostname():
        try:
            os.kill(run.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    return job


def resume(db: Database, job_id: str) -> Job:
    """Queue a failed or cancelled job again; its next run continues from its last checkpoint."""
    return job_queue.requeue_for_resume(db, job_id)


# -- the job's own process ------------------------------------------------------------------------


def _run_job(job_id: str) -> int:
    from llmloop.store import open_database
    from llmloop.train.job_runner import JobFailed, execute_job

    db = open_database()
    job = job_queue.get_job(db, job_id)
    run = job_queue.get_run(db, job_id)
    if job.status != "running":
        print(f"job {job_id} is {job.status}, not claimed for running; nothing to do", file=sys.stderr)
        return 2

    def stop(signum, frame):  # noqa: ANN001, ARG001
        raise KeyboardInterrupt  # the runner marks the job cancelled

    signal.signal(signal.SIGTERM, stop)
    if run.backend == "llamafactory":
        from llmloop.train.llamafactory import run_backend

        return run_backend(db, job, resume=run.resume)
    config = CONFIGS[job.stage].model_validate(job.config)
    if int(os.environ.get("RANK", "0")) != 0:  # another process of an `accelerate launch`: train only
        from llmloop.train.job_runner import follow_job

        follow_job(db, job, config, resume=run.resume)
        return 0
    try:
        execute_job(db, job, config, resume=run.resume)
    except JobFailed as e:
        print(str(e), file=sys.stderr)
        return 2 if e.user_error else 1
    except KeyboardInterrupt:
        return 130
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "run":
        print("usage: python -m llmloop.train.worker run JOB_ID", file=sys.stderr)
        return 2
    return _run_job(args[1])


if __name__ == "__main__":
    sys.exit(main())
