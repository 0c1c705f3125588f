"""Side-by-side evaluation of N versions on one eval set (E4); rendering lives in ``eval.render`` (E5).

Each version answers every row through the engine, batch by batch; a batch that raises is retried
row by row, and a row that still raises is recorded as failed with its error, never fatal (an
endpoint engine already retries, times out and returns failed rows itself). With a pointwise judge
every answer is then scored (rubric 1–5); a judgement that fails is recorded on its sample too.

Resumable: with ``checkpoint`` (a JSONL file) each answer, and later its judgement, is appended the
moment it exists (flushed and fsynced per batch); a rerun with the same file reuses them and only
generates/judges what is missing — failed answers and failed judgements are tried again.

Measured per version: mean wall time per answer (a batch's time divided over its rows), tokens/s
(completion tokens over generation time) and peak memory while that version loaded and generated —
``torch.cuda.max_memory_allocated`` on a GPU, else the process's peak resident set size sampled every
20 ms (so it includes models loaded earlier in the same process). For an endpoint it is None: the
memory is on another machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from llmloop.eval import text_metrics as M
from llmloop.eval import EvalInputError
from llmloop.eval.evalset import EvalRow, read_eval_set  # noqa: F401 - re-exported: the public names of E4
from llmloop.eval.failures import summarize_failures
from llmloop.inference.base import Engine, SamplingParams


@dataclass(frozen=True)
class SampleResult:
    index: int
    version: str
    output: str
    latency_s: float
    completion_tokens: int
    error: str = ""
    judge: dict[str, Any] | None = None  # rubric scores + reason, when a pointwise judge ran
    judge_error: str = ""


@dataclass(frozen=True)
class VersionScores:
    version: str
    n: int
    failed: int
    metrics: dict[str, float]
    mean_latency_s: float
    tokens_per_s: float
    peak_memory_mb: float | None
    failures: dict[str, int] = field(default_factory=dict)  # generation failures by cause
    judge_failed: int = 0
    judge_failures: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class EvalRunReport:
    versions: list[VersionScores]
    samples: list[SampleResult] = field(repr=False)
    rows: list[EvalRow] = field(repr=False)
    judge: str | None = None
    eval_set: str = ""
    group_by: str | None = None  # a metadata key: scores are also reported per value of it


def grouped_scores(report: EvalRunReport, key: str) -> dict[str, dict[str, dict[str, float]]]:
    """{metadata value: {version: metrics (+ "n")}} over the rows whose metadata has ``key``
    (rows without it are grouped under "(none)")."""
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(report.rows):
        groups.setdefault(str(r.metadata.get(key, "(none)")), []).append(i)
    by = {(s.version, s.index): s for s in report.samples}
    out: dict[str, dict[str, dict[str, float]]] = {}
    for value, idx in sorted(groups.items()):
        out[value] = {}
        for v in report.versions:
            picked = [by[(v.version, i)] for i in idx]
            out[value][v.version] = {"n": len(idx), **score([report.rows[i] for i in idx], [s.output for s in picked]),
                                     **judge_means(picked)}
    return out


class PeakMemory:
    """Peak memory (MiB) inside a ``with`` block: CUDA peak allocation, else sampled peak RSS."""

    def __init__(self, interval_s: float = 0.02) -> None:
        self.interval_s, self.mb = interval_s, 0.0
        self._stop = threading.Event()
        self._cuda = False

    def __enter__(self) -> "PeakMemory":
        try:
            import torch

            self._cuda = torch.cuda.is_available()
        except ImportError:
            pass
        if self._cuda:
            import torch

            torch.cuda.reset_peak_memory_stats()
            return self
        import psutil  # installed with accelerate, a core dependency

        proc = psutil.Process()
        self.mb = proc.memory_info().rss / 2**20

        def sample() -> None:
            while not self._stop.wait(self.interval_s):
                self.mb = max(self.mb, proc.memory_info().rss / 2**20)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._cuda:
            import torch

            self.mb = torch.cuda.max_memory_allocated() / 2**20
            return
        self._stop.set()
        self._thread.join()
        import psutil

        self.mb = max(self.mb, psutil.Process().memory_info().rss / 2**20)


def score(rows: Sequence[EvalRow], outputs: Sequence[str]) -> dict[str, float]:
    """Every metric the rows support; failed outputs score as empty strings (a failure is a miss)."""
    out: dict[str, float] = {}
    ref = [(o, r.reference) for o, r in zip(outputs, rows) if r.reference is not None]
    if ref:
        preds, refs = [o for o, _ in ref], [r for _, r in ref]
        out["exact_match"] = M.exact_match(preds, refs)
        out["bleu"] = M.bleu(preds, refs)
        out.update(M.rouge(preds, refs))
        numeric = [(p, r) for p, r in zip(preds, refs) if M.extract_number(r) is not None]
        if numeric:
            out["math_accuracy"] = M.math_accuracy([p for p, _ in numeric], [r for _, r in numeric])
    lab = [(o, r.label) for o, r in zip(outputs, rows) if r.label is not None]
    if lab:
        out["accuracy"] = M.accuracy([o for o, _ in lab], [g for _, g in lab])
        out["macro_f1"] = M.macro_f1([o for o, _ in lab], [g for _, g in lab])
    return out


def judge_means(samples: Sequence[SampleResult]) -> dict[str, float]:
    """``judge_<score>`` means over the samples the judge scored (rubric criteria, or ``reward`` for a
    reward model) and, for the rubric, ``judge_overall``."""
    from llmloop.eval.llm_judge import CRITERIA

    ok = [s.judge for s in samples if s.judge]
    if not ok:
        return {}
    keys = sorted({k for j in ok for k, v in j.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
    out = {f"judge_{k}": sum(j[k] for j in ok if k in j) / sum(k in j for j in ok) for k in keys}
    if all(c in j for j in ok for c in CRITERIA):
        out["judge_overall"] = sum(sum(j[c] for c in CRITERIA) / len(CRITERIA) for j in ok) / len(ok)
    return out


def _load_checkpoint(path: Path | None) -> dict[tuple[str, int], SampleResult]:
    """The last record per (version, row); failed answers are dropped so they are tried again."""
    if path is None or not path.exists():
        return {}
    done = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            s = SampleResult(**json.loads(line))
        except (json.JSONDecodeError, TypeError):
            continue  # a line cut short by a crash
        if s.error:
            done.pop((s.version, s.index), None)
        else:
            done[(s.version, s.index)] = s
    return done


def _append(path: Path | None, samples: Sequence[SampleResult]) -> None:
    if path is None or not samples:
        return
    with path.open("a", encoding="utf-8") as f:
        f.writelines(json.dumps(asdict(x), ensure_ascii=False) + "\n" for x in samples)
        f.flush()
        os.fsync(f.fileno())


def _generate(engine: Engine, version: str, rows: Sequence[EvalRow], idx: Sequence[int], params: SamplingParams) -> list[SampleResult]:
    batch = [rows[i] for i in idx]
    t0 = time.perf_counter()
    try:
        gens = engine.chat_batch(version, [r.messages for r in batch], params)
        each = (time.perf_counter() - t0) / len(batch)
        return [SampleResult(i, version, g.text, each, g.completion_tokens,
                             g.finish_reason if g.finish_reason.startswith("error") else "")
                for i, g in zip(idx, gens, strict=True)]
    except Exception:  # noqa: BLE001 - one bad row must not sink the batch: retry one by one
        out = []
        for i, r in zip(idx, batch):
            t1 = time.perf_counter()
            try:
                g = engine.chat(version, r.messages, params)[0]
                out.append(SampleResult(i, version, g.text, time.perf_counter() - t1, g.completion_tokens,
                                        g.finish_reason if g.finish_reason.startswith("error") else ""))
            except Exception as e:  # noqa: BLE001
                out.append(SampleResult(i, version, "", time.perf_counter() - t1, 0, f"{type(e).__name__}: {e}"))
        return out


def run_eval(engine: Engine, versions: Sequence[str], rows: Sequence[EvalRow], params: SamplingParams | None = None,
             batch_size: int = 8, on_progress: Callable[[int, int], None] | None = None,
             checkpoint: str | Path | None = None, judge: Any = None,
             prepare: Callable[[str], None] | None = None, measure_memory: bool = True,
             eval_set: str = "") -> EvalRunReport:
    """Every version answers every row (and, with ``judge``, an ``LLMJudge``, every answer is scored).

    ``prepare(version)`` runs just before a version generates (load it there, so its memory is
    measured with it); ``measure_memory=False`` reports None (an endpoint's memory is not ours).
    """
    if not versions or not rows:
        raise EvalInputError("run_eval needs at least one version and one eval row")
    params = params or SamplingParams(max_tokens=128, temperature=0.0, seed=1234)
    ckpt = Path(checkpoint) if checkpoint else None
    if ckpt is not None:
        ckpt.parent.mkdir(parents=True, exist_ok=True)
    cached = _load_checkpoint(ckpt)
    total = len(versions) * len(rows) * (2 if judge is not None else 1)
    done = 0

    def tick(k: int) -> None:
        nonlocal done
        done += k
        if on_progress:
            on_progress(done, total)

    samples: list[SampleResult] = []
    scores = []
    for version in versions:
        mine: dict[int, SampleResult] = {i: cached[(version, i)] for i in range(len(rows)) if (version, i) in cached}
        memory = PeakMemory() if measure_memory else None
        todo = [i for i in range(len(rows)) if i not in mine]
        tick(len(rows) - len(todo))
        if todo:
            with memory or contextlib.nullcontext():
                if prepare is not None:
                    prepare(version)
                for start in range(0, len(todo), batch_size):
                    got = _generate(engine, version, rows, todo[start : start + batch_size], params)
                    mine.update({s.index: s for s in got})
                    _append(ckpt, got)
                    tick(len(got))
        ordered = [mine[i] for i in range(len(rows))]
        if judge is not None:
            ordered = _judge_all(judge, version, rows, ordered, ckpt, tick)
        ok = [s for s in ordered if not s.error]
        gen_time = sum(s.latency_s for s in ok)
        scores.append(VersionScores(
            version, len(ordered), len(ordered) - len(ok),
            {**score(rows, [s.output for s in ordered]), **judge_means(ordered)},
            gen_time / len(ok) if ok else float("nan"),
            sum(s.completion_tokens for s in ok) / gen_time if gen_time > 0 else 0.0,
            (memory.mb if todo else None) if memory is not None else None,
            summarize_failures(s.error for s in ordered),
            sum(bool(s.judge_error) for s in ordered),
            summarize_failures(s.judge_error for s in ordered)))
        samples += ordered
    return EvalRunReport(scores, samples, list(rows), getattr(judge, "name", None), eval_set)


def _judge_all(judge: Any, version: str, rows: Sequence[EvalRow], samples: list[SampleResult], ckpt: Path | None,
               tick: Callable[[int], None]) -> list[SampleResult]:
    """Score every answer not scored yet, concurrently; failed generations are not judged (nothing to judge)."""
    out = list(samples)
    todo = [i for i, s in enumerate(samples) if not s.error and s.judge is None]
    tick(len(samples) - len(todo))
    # an endpoint judge has its own concurrency; a local one (a reward model) runs one answer at a time
    concurrency = getattr(getattr(judge, "endpoint", None), "concurrency", 1)
    lock = threading.Lock()
    with ThreadPoolExecutor(concurrency) as pool:
        futures = {pool.submit(judge.score_one, rows[i].messages, samples[i].output, rows[i].reference): i for i in todo}
        for fut in as_completed(futures):
            i = futures[fut]
            try:
                r = fut.result()
                s = replace(samples[i], judge=r.scores.model_dump() if r.scores else None, judge_error=r.error)
            except Exception as e:  # noqa: BLE001 - a judge bug fails this sample, not the run
                s = replace(samples[i], judge=None, judge_error=f"{type(e).__name__}: {e}")
            out[i] = s
            with lock:
                _append(ckpt, [s])
            tick(1)
    return out


# -- rendering (kept importable from here; the code is in eval.render) -----------------------------
