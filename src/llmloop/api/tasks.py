"""Background work started over HTTP (an evaluation, a comparison, a merge, synthetic data): one
worker thread per gateway runs them in order, and ``/api/v1/tasks/{id}`` reports status, progress
and ETA. (Training is not a task: it is a ``train.worker`` job in a process of its own.)

Why not the store: the durable record of long work is the library's own (an evaluation's report
folder, a registered version); a task is only this process's handle on a call in flight — its
progress counter, its result or its error — and is lost on restart like any in-flight request.
Why one worker: each task loads models; two at once on one machine would compete for its memory.
Cancel sets a flag the task's progress callback checks: ``Cancelled`` is raised from inside the
library's own loop, so the library's clean-up (``finally`` blocks, staged folders) runs.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from llmloop.api.common import as_error, plain

log = logging.getLogger("llmloop.api")

MAX_KEPT = 200  # finished tasks remembered


class Cancelled(KeyboardInterrupt):
    """Raised inside a task's progress callback after a cancel request. A ``KeyboardInterrupt``
    on purpose: library code treats it as an interruption (Ctrl-C), not as a failure to report."""


class TaskView(BaseModel):
    id: str = Field(description="Task id (task-…)")
    kind: str = Field(description="What runs: eval-run, eval-compare, merge-lora, merge, merge-scan, quantize, "
                                   "average, data-generate")
    status: str = Field(description="queued | running | succeeded | failed | cancelled")
    done: int = Field(description="Units done (steps, samples, tensors)")
    total: int | None = Field(description="Units in all, when known")
    elapsed_s: float | None = Field(description="Seconds since the task started")
    eta_s: float | None = Field(description="Estimated seconds left, from the progress so far")
    message: str = Field(description="Latest progress note (e.g. the loss)")
    detail: dict[str, Any] = Field(description="Task-specific live facts (e.g. the training job's id)")
    result: Any = Field(description="The library call's result, once succeeded")
    error: str | None = Field(description="Why it failed")
    created_at: str


@dataclass
class Task:
    id: str
    kind: str
    status: str = "queued"
    done: int = 0
    total: int | None = None
    eta_s: float | None = None
    message: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    result: Any = None
    error: str | None = None
    created_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    started: float | None = None
    finished: float | None = None
    cancel_requested: bool = False

    def progress(self, done: int, total: int | None = None, *, message: str | None = None,
                 eta_s: float | None = None, **detail: Any) -> None:
        """The library's progress callback lands here; raises ``Cancelled`` after a cancel request."""
        if self.cancel_requested:
            raise Cancelled(f"task {self.id} cancelled")
        self.done, self.total = int(done), total
        if message is not None:
            self.message = message
        self.detail.update(detail)
        if eta_s is not None:
            self.eta_s = eta_s
        elif total and done and self.started is not None:
            self.eta_s = (time.monotonic() - self.started) * (total - done) / done

    def view(self) -> TaskView:
        end = self.finished or time.monotonic()
        return TaskView(id=self.id, kind=self.kind, status=self.status, done=self.done, total=self.total,
                        elapsed_s=round(end - self.started, 3) if self.started else None,
                        eta_s=None if self.status != "running" or self.eta_s is None else round(self.eta_s, 1),
                        message=self.message, detail=plain(self.detail), result=self.result, error=self.error,
                        created_at=self.created_at.isoformat())


class TaskRunner:
    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="llmloop-task")
        self._tasks: dict[str, Task] = {}
        self._lock = threading.Lock()

    def submit(self, kind: str, fn: Callable[[Task], Any]) -> Task:
        """Queue ``fn(task)``; its return value (made JSON-ready) becomes the task's result."""
        task = Task(id=f"task-{uuid.uuid4().hex[:12]}", kind=kind)
        with self._lock:
            self._tasks[task.id] = task
            done = [t for t in self._tasks.values() if t.finished is not None]
            for old in sorted(done, key=lambda t: t.finished or 0)[: max(0, len(done) - MAX_KEPT)]:
                del self._tasks[old.id]
        self._pool.submit(self._run, task, fn)
        return task

    @staticmethod
    def _run(task: Task, fn: Callable[[Task], Any]) -> None:
        if task.cancel_requested:
            task.status, task.finished, task.started = "cancelled", time.monotonic(), time.monotonic()
            return
        task.status, task.started = "running", time.monotonic()
        try:
            task.result = plain(fn(task))
            task.status = "succeeded"
        except KeyboardInterrupt:  # Cancelled (the library may re-raise it as the base class)
            task.status, task.error = "cancelled", "cancelled on request"
        except Exception as e:  # noqa: BLE001 - the task reports it; the worker must live on
            mapped = as_error(e)
            task.status = "failed"
            task.error = str(mapped) if mapped is not None else f"{type(e).__name__}: {e}"
            if mapped is None:  # a bug: its traceback belongs in the gateway's log
                log.error("task %s (%s) failed", task.id, task.kind, exc_info=e)
        finally:
            task.finished = time.monotonic()

    def get(self, task_id: str) -> Task | None:
        return self._tasks.get(task_id)

    def list(self) -> list[Task]:
        return sorted(self._tasks.values(), key=lambda t: t.created_at, reverse=True)

    def cancel(self, task_id: str) -> Task | None:
        task = self._tasks.get(task_id)
        if task is not None and task.finished is None:
            task.cancel_requested = True
        return task

    def shutdown(self) -> None:
        for t in self._tasks.values():
            t.cancel_requested = True
        self._pool.shutdown(wait=False, cancel_futures=True)
