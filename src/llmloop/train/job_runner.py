"""Run one training stage as a durable job (T10): ``submit`` then a worker runs it.

The one job path: ``submit(db, stage, config)`` records a queued job (the CLI, the REST API, the
loop's rounds and pipeline steps all start training this way); a worker claims it and runs it — in a
process of its own (``train.worker.run_here``, ``llmloop jobs worker``) or in the caller's process
(``run_submitted``; ``run_training`` is ``submit`` + ``run_submitted``). A failure is classified by
the exception's type when it happens (``failed_on_input``: a ``UserError`` is the input's fault, any
other exception a crash whose traceback is stored with the job), so a caller reading the job later —
the CLI, the API — needs no guessing from the error text (``job_failed_on_input``).

The store's job reads (``get_job``, ``list_jobs``, ``get_metrics``, ``get_run``, their errors) are
re-exported here: ``llmloop train`` and ``llmloop jobs`` reach jobs through
this module, not the store.

The runner owns everything around a recipe: the job row (queued → running → succeeded, failed
with the error, or cancelled on Ctrl-C), the job's log file, live metrics, the loss curve and the
registration of the trained model with its lineage. Recipes (``pt``, ``sft``, ``dpo``) only train.

The library prints nothing: library loggers and warnings go to ``<job>/job.log`` while the run
lasts, Hugging Face progress bars are off, and progress reaches the caller through ``progress``.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmloop.data.versions import read_rows, resolve
from llmloop.errors import LlmloopError, UserError
from llmloop.store import Database, registry
from llmloop.store import job_queue
from llmloop.store.job_queue import JobNotFound, JobNotResumable, get_job, get_metrics, get_run, list_jobs  # noqa: F401
from llmloop.store.records import DatasetVersion, Job, ModelVersion
from llmloop.models.sources import resolve as resolve_source
from llmloop.train.recipe_base import MERGED_BASE, RecipeOutput, StartingModel, TrainingInputError
from llmloop.train.config import CONFIGS, STAGE_BY_NAME, STAGE_TABLE, StageConfig
from llmloop.train.live_metrics import MetricsRecorder, ProgressFn, plot_loss

log = logging.getLogger("llmloop.train")

Recipe = Callable[[Any, StartingModel, list[dict[str, Any]], Path, list], RecipeOutput]


class _Recipes(Mapping[str, Recipe]):
    """stage -> its recipe, imported on first use (``Stage.recipe`` is a lazy "module:function"): reading
    a job, or running one stage, imports no other stage's recipe (nor TRL's trainers for them)."""

    def __getitem__(self, stage: str) -> Recipe:
        return STAGE_BY_NAME[stage].recipe_function()

    def __iter__(self) -> Iterator[str]:
        return iter(STAGE_BY_NAME)

    def __len__(self) -> int:
        return len(STAGE_BY_NAME)


# Read from train.config.STAGE_TABLE, the one list of stages.
RECIPES: Mapping[str, Recipe] = _Recipes()
DATASET_KIND: dict[str, str] = {s.name: s.dataset_kind for s in STAGE_TABLE}
MODEL_KIND: dict[str, str] = {s.name: s.model_kind for s in STAGE_TABLE if s.model_kind is not None}
# rm trains a scorer, not a generator: its output is recorded with the job, not registered
VERSION_PREFIX = {"completion": "c", "chat": "v"}
# Loggers whose records belong in the job log rather than on the console.
_CAPTURED = ("llmloop", "transformers", "trl", "peft", "accelerate", "datasets", "torch", "py.warnings")


@dataclass(frozen=True)
class TrainResult:
    job: Job
    output_dir: Path  # the trained adapter (LoRA) or full model directory
    model_version: ModelVersion | None  # the registered version, when the config asked for one
    train_loss: float | None  # the last logged training loss
    metrics: dict[str, Any]


class JobCancelled(KeyboardInterrupt):
    """A cancel request (``llmloop jobs cancel``) stopped the run at a step boundary."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id} cancelled on request")


class JobFailed(LlmloopError, RuntimeError):
    """A training job ended ``failed``; ``job`` is its final record, ``user_error`` whether the
    cause was the input (unknown dataset, wrong kind, bad model) rather than the training itself."""

    def __init__(self, job: Job, cause: BaseException) -> None:
        self.job = job
        self.user_error = failed_on_input(cause)
        if self.user_error:  # the CLI exits 2, the API answers 400: the input is the user's to fix
            self.exit_code, self.http_status, self.code = UserError.exit_code, UserError.http_status, UserError.code
        super().__init__(f"job {job.id} failed: {cause}")


def failed_on_input(error: BaseException) -> bool:
    """Whether ``error`` is the input's fault (a ``UserError``: unknown dataset or model, wrong kind,
    a refused setting) rather than a crash of the training itself (anything else: a bug)."""
    return isinstance(error, UserError)


def record_failure(db: Database, job_id: str, error: BaseException) -> Job:
    """Mark the job failed with ``error``; the stored result says whether it failed on its input and,
    for a crash, keeps the traceback."""
    on_input = failed_on_input(error)
    return job_queue.set_status(db, job_id, "failed", error=f"{type(error).__name__}: {error}", result={
        "failed_on_input": on_input,
        "traceback": None if on_input else "".join(traceback.format_exception(error)),
    })


def job_failed_on_input(job: Job) -> bool:
    """Whether a finished job failed on its input (as ``record_failure`` stored it); False for a job
    that succeeded, was cancelled, crashed, or whose process died."""
    return job.status == "failed" and bool((job.result or {}).get("failed_on_input"))


def submit(db: Database, stage: str, config: StageConfig, *, backend: str = "trl", gpus: int = 1) -> Job:
    """Record a queued job for ``config`` (already validated: ``train.config.load_config``); a worker runs it."""
    _check_config(stage, config)
    if backend not in ("trl", "llamafactory"):
        raise TrainingInputError(f"--backend {backend!r}: use trl or llamafactory")
    if config.accelerate_config:  # the job's process may start elsewhere: keep an absolute path
        path = Path(config.accelerate_config).expanduser().resolve()
        if not path.is_file():
            raise TrainingInputError(f"accelerate_config {config.accelerate_config!r}: no such file; "
                                     "use one of configs/accelerate/*.yaml")
        config = config.model_copy(update={"accelerate_config": str(path)})
    return job_queue.create_job(db, stage=stage, config=config.model_dump(mode="json", by_alias=True),
                                 backend=backend, gpus=gpus)


class JobNotClaimable(UserError):
    """Another worker claimed the job first (or it is no longer queued)."""


def run_submitted(db: Database, job_id: str, progress: ProgressFn | None = None) -> TrainResult:
    """Be the worker of the queued job ``job_id`` in this process: claim it and run it to its end.
    Raises ``JobFailed`` when the run fails (the job is marked failed first)."""
    if not job_queue.claim(db, job_id, worker=f"in-process:{os.getpid()}"):
        raise JobNotClaimable(f"job {job_id} is {job_queue.get_job(db, job_id).status}, not queued: "
                              "another worker runs it (see `llmloop jobs show`)")
    job = job_queue.get_job(db, job_id)
    return execute_job(db, job, CONFIGS[job.stage].model_validate(job.config), progress)


def run_training(db: Database, stage: str, config: StageConfig, progress: ProgressFn | None = None) -> TrainResult:
    """Train ``config`` as stage ``stage`` in a new job, in this process; raises ``JobFailed`` when
    the run fails. (``llmloop train`` runs jobs as processes of their own: ``train.worker``.)"""
    return run_submitted(db, submit(db, stage, config).id, progress)


def registered_version(db: Database, job: Job) -> ModelVersion | None:
    """The model version a succeeded job registered, if any."""
    name = (job.result or {}).get("model_version")
    return registry.get(db, name) if name else None


def _check_config(stage: str, config: StageConfig) -> None:
    expected = CONFIGS.get(stage)
    if expected is None or not isinstance(config, expected):
        raise TypeError(f"stage {stage!r} needs a {expected.__name__ if expected else 'known stage'} config, got {type(config).__name__}")


def execute_job(db: Database, job: Job, config: StageConfig, progress: ProgressFn | None = None,
                resume: bool = False) -> TrainResult:
    """Run a claimed (running) job to its end: succeeded, failed (``JobFailed``) or cancelled
    (``KeyboardInterrupt`` re-raised, or ``JobCancelled`` when a cancel request stopped it)."""
    stage = job.stage
    _check_config(stage, config)
    out = Path(job.output_dir)
    with _job_log(Path(job.log_path)):
        log.info("job %s: %s from %s on %s%s", job.id, stage, config.model, config.dataset,
                 " (resuming)" if resume else "")
        try:
            result = _run(db, job, stage, config, out, progress, resume)
        except KeyboardInterrupt:
            log.warning("job %s cancelled", job.id)
            job_queue.set_status(db, job.id, "cancelled", error="interrupted")
            raise
        except Exception as e:
            log.exception("job %s failed", job.id)
            raise JobFailed(record_failure(db, job.id, e), e) from e
    return result


def follow_job(db: Database, job: Job, config: StageConfig, resume: bool = False) -> None:
    """A non-main process of a multi-GPU job: the same recipe (the trainer synchronises the
    processes), no store writes; the main process records everything."""
    start = resolve_source(db, config.model, hub_ids=True)
    dataset = stage_dataset(db, config.dataset, job.stage)
    eval_rows = read_rows(stage_dataset(db, config.evaluation.dataset, job.stage)) if config.evaluation.dataset else None
    extra = {"reference": resolve_source(db, config.ref_model, hub_ids=True)} if getattr(config, "ref_model", None) else {}
    RECIPES[job.stage](config, start, read_rows(dataset), Path(job.output_dir), [], resume=resume,
                       eval_rows=eval_rows, **extra)


def _run(db: Database, job: Job, stage: str, config: StageConfig, out: Path, progress: ProgressFn | None,
         resume: bool) -> TrainResult:
    start = resolve_source(db, config.model, hub_ids=True)
    dataset = stage_dataset(db, config.dataset, stage)
    kind = MODEL_KIND.get(stage)
    if config.registration.enabled and config.registration.name:
        _check_name_free(db, config.registration.name)
    log.info(
        "starting model: base %s, adapter %s, version %s",
        start.base_model, start.adapter_path, start.version.name if start.version else None,
    )
    log.info("dataset %s@%s: %d rows (id %d)", dataset.dataset, dataset.version, dataset.row_count, dataset.id)

    eval_rows = None
    if config.evaluation.dataset:
        eval_version = stage_dataset(db, config.evaluation.dataset, stage)
        eval_rows = read_rows(eval_version)
        log.info("eval dataset %s@%s: %d rows", eval_version.dataset, eval_version.version, eval_version.row_count)
    recorder = MetricsRecorder(db, job.id, out, progress, resume=resume)
    began = time.monotonic()
    extra = {"reference": resolve_source(db, config.ref_model, hub_ids=True)} if getattr(config, "ref_model", None) else {}
    output = RECIPES[stage](config, start, read_rows(dataset), out, [recorder], resume=resume, eval_rows=eval_rows,
                            **extra)
    if recorder.cancelled:
        raise JobCancelled(job.id)
    metrics = _metrics(output, recorder, time.monotonic() - began)
    log.info("trained: %s", metrics)
    if config.plot_loss and recorder.steps:
        plot_loss(recorder.log_file, out / "training_loss.png")

    version = None
    if config.registration.enabled and kind is not None:
        version = _register(db, job, config, kind, start, dataset, output.path, metrics)
        log.info("registered model version %s", version.name)
    done = job_queue.set_status(
        db,
        job.id,
        "succeeded",
        result={
            "output": str(output.path),
            "model_version": version.name if version else None,
            "dataset_version_id": dataset.id,
            "starting_model": {"base_model": start.base_model, "adapter_path": start.adapter_path,
                               "version": start.version.name if start.version else None},
            "metrics": metrics,
        },
    )
    return TrainResult(done, output.path, version, metrics.get("loss_final"), metrics)


def stage_dataset(db: Database, ref: str, stage: str) -> DatasetVersion:
    """The dataset version ``ref`` names, checked to hold the rows ``stage`` trains on."""
    version = resolve(db, ref)
    want = DATASET_KIND[stage]
    if version.kind != want:
        raise TrainingInputError(
            f"dataset {ref!r} holds {version.kind} rows, but `train {stage}` needs {want} rows; "
            f"pick a {want} dataset (see `llmloop data list`)"
        )
    return version


def _check_name_free(db: Database, name: str) -> None:
    try:
        registry.get(db, name)
    except registry.VersionNotFound:
        return
    raise TrainingInputError(
        f"register.name {name!r} is taken (versions are immutable); choose another name or leave it out for the next free one"
    )


def _metrics(output: RecipeOutput, recorder: MetricsRecorder, seconds: float) -> dict[str, Any]:
    m = output.metrics
    out: dict[str, Any] = {
        "loss_mean": m.get("train_loss"),
        "steps": m.get("global_step", 0),
        "runtime_s": round(seconds, 2),
    }
    if m.get("num_input_tokens_seen"):
        out["tokens"] = m["num_input_tokens_seen"]
    out.update(recorder.summary())
    return out


def _register(
    db: Database,
    job: Job,
    config: StageConfig,
    kind: str,
    start: StartingModel,
    dataset: DatasetVersion,
    path: Path,
    metrics: dict[str, Any],
) -> ModelVersion:
    parent = start.version.name if start.version else None
    name = config.registration.name or registry.next_version_name(db, parent, prefix=VERSION_PREFIX[kind])
    lora = config.finetuning != "full"
    note = config.registration.note or f"{job.stage} ({config.finetuning}) from {config.model} on {dataset.dataset}@{dataset.version}"
    return registry.register(
        db,
        name=name,
        kind=kind,
        # A LoRA version is its base plus the new adapter; a full fine-tune is a model of its own.
        base_model=_base_of(start, path) if lora else str(path),
        adapter_path=str(path) if lora else None,
        parent=parent,
        job_id=job.id,
        dataset_versions=[dataset.id],
        metrics=metrics,
        stage="candidate",
        note=note,
    )


def _base_of(start: StartingModel, adapter: Path) -> str:
    """The full weights an adapter applies to: the job's merged base (adapter_start: merge) or the start's."""
    merged = adapter.parent / MERGED_BASE
    return str(merged) if merged.is_dir() else start.base_model


@contextmanager
def _job_log(path: Path) -> Iterator[None]:
    """Send library logs and warnings to ``path`` and silence console output for the block."""
    import datasets
    from transformers.utils import logging as hf_logging

    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    saved = []
    for name in _CAPTURED:
        logger = logging.getLogger(name)
        saved.append((logger, logger.handlers[:], logger.level, logger.propagate))
        logger.handlers = [handler]
        logger.propagate = False
        logger.setLevel(logging.INFO if name in ("llmloop", "transformers", "trl", "peft") else logging.WARNING)
    hf_bars, ds_bars = hf_logging.is_progress_bar_enabled(), datasets.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            logging.captureWarnings(True)
            try:
                yield
            finally:
                logging.captureWarnings(False)
    finally:
        for logger, handlers, level, propagate in saved:
            logger.handlers = handlers
            logger.setLevel(level)
            logger.propagate = propagate
        if hf_bars:
            hf_logging.enable_progress_bar()
        if ds_bars:
            datasets.enable_progress_bars()
        handler.close()
