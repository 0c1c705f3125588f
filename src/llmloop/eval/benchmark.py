"""Standard benchmarks (E6) through EleutherAI's lm-evaluation-harness (optional extra ``lm-eval``).

``run_benchmark`` evaluates a local model path (optionally with a LoRA adapter, i.e. any registered
version) on harness tasks by name (``mmlu``, ``gsm8k``, ``ceval-valid`` … when their data can be
downloaded or is cached) or on a team's own task YAMLs in ``include_path`` (a local JSONL dataset
works offline). The harness does the prompting, scoring and aggregation; we only map its result.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from llmloop.eval import EvalInputError, MissingEvalDependency


@dataclass(frozen=True)
class BenchmarkResult:
    task: str
    metrics: dict[str, float]  # e.g. {"acc": 0.61, "acc_stderr": 0.02}
    n: int | None


@lru_cache(maxsize=4)
def _task_manager(include_path: str | None):  # noqa: ANN202 - indexing every harness task takes seconds
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=include_path)


def run_benchmark(model_path: str | Path, tasks: list[str], adapter_path: str | Path | None = None,
                  include_path: str | Path | None = None, limit: int | None = None, device: str = "cpu",
                  batch_size: int = 8, num_fewshot: int | None = None) -> list[BenchmarkResult]:
    try:
        import lm_eval
    except ImportError as e:
        raise MissingEvalDependency("standard benchmarks need lm-evaluation-harness: pip install lm-eval") from e
    if not tasks:
        raise EvalInputError("name at least one benchmark task, e.g. --task gsm8k")
    args = f"pretrained={model_path}" + (f",peft={adapter_path}" if adapter_path else "")
    manager = _task_manager(str(include_path) if include_path else None)
    unknown = [t for t in tasks if t not in manager.all_tasks]
    if unknown:
        raise EvalInputError(f"unknown benchmark task(s) {unknown}; see `lm-eval ls tasks`, or pass --include-path "
                         "with your own task YAMLs")
    out: dict[str, Any] = lm_eval.simple_evaluate(model="hf", model_args=args, tasks=tasks, limit=limit, device=device,
                                                  batch_size=batch_size, num_fewshot=num_fewshot, task_manager=manager)
    results = []
    for task, vals in out["results"].items():
        metrics = {k.split(",")[0] + ("_stderr" if "_stderr" in k else ""): float(v) for k, v in vals.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "alias"}
        metrics = {k.replace("_stderr_stderr", "_stderr"): v for k, v in metrics.items()}
        n = out.get("n-samples", {}).get(task, {}).get("effective")
        results.append(BenchmarkResult(task, metrics, n))
    return results
