"""Synthetic SFT data (D2, D3): Self-Instruct, Evol-Instruct and paraphrase / back-translation.

``generate(db, config, generator)`` turns seed instructions into a new sft dataset version:

* **self-instruct** — sample a few instructions (seeds and those already accepted) as examples, ask
  for a new one of a task type (classification, generation, summarization, qa, rewrite, reasoning,
  in turn), keep it only if its ROUGE-L F1 against every instruction in the pool is below
  ``rouge_threshold`` (novelty, as the Self-Instruct paper does), then ask for its answer;
* **evol-instruct** — evolve every seed ``rounds`` times, each round applying one operation
  (deepen, broaden, concretize, complexify, in turn), and answer every evolved instruction; an
  evolution that returns the instruction unchanged, or nothing, is dropped;
* **paraphrase** — ``variants`` rewordings (or back-translations through ``pivot``) of each seed;
  the seed's own answer is kept when it has one, else one is generated.

Work is split into tasks with stable ids; ``concurrency`` tasks run at once (threads: the work is
waiting on HTTP). Every finished task — kept or dropped, with the reason — is appended to a partial
file under ``$LLMLOOP_HOME/datasets/.partial/`` and fsynced before the next is counted, so an
interrupted run (Ctrl-C, kill, crash) keeps what it generated: the same command resumes, skipping
the tasks on file. The partial file is removed once the version is stored.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llmloop.data.generators import EVOL_OPS, TASK_TYPES, Generator
from llmloop.data.rows import DataError
from llmloop.store import Database
from llmloop.store.records import DatasetVersion

METHODS = ("self-instruct", "evol-instruct", "paraphrase")
_WORDS = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]|[A-Za-z0-9]+")


class GenerateConfig(BaseModel):
    """``llmloop data generate METHOD``: seed instructions → a new sft dataset version."""

    model_config = ConfigDict(extra="forbid")
    method: Literal["self-instruct", "evol-instruct", "paraphrase"] = Field(description="What to generate")
    seeds: str = Field(description="Seed instructions: a file (.txt one per line, or any importable data file) "
                       "or a dataset NAME[@vX.Y]")
    name: str = Field(description="Dataset to add the generated version to")
    num: int = Field(20, ge=1, description="self-instruct: how many new instructions to keep")
    max_attempts: int | None = Field(None, ge=1, description="self-instruct: stop after this many attempts "
                                     "(default 4 × --num), whatever the novelty filter kept")
    rounds: int = Field(1, ge=1, le=8, description="evol-instruct: evolutions per seed (each builds on the last)")
    variants: int = Field(2, ge=1, le=16, description="paraphrase: rewordings per seed")
    pivot: str | None = Field(None, description="paraphrase: back-translate through this language (e.g. Chinese)")
    task_types: list[str] = Field(list(TASK_TYPES), description="self-instruct: task types to cycle through")
    examples: int = Field(3, ge=1, le=16, description="self-instruct: example instructions shown per request")
    rouge_threshold: float = Field(0.7, gt=0, le=1, description="self-instruct: drop a new instruction whose "
                                   "ROUGE-L F1 with any instruction in the pool reaches this")
    concurrency: int = Field(4, ge=1, le=64, description="Requests in flight at once")
    seed: int = Field(0, description="Random seed (example sampling, task order, template choices)")
    note: str = Field("", description="Note kept with the new version")


@dataclass(frozen=True)
class GenerateResult:
    version: DatasetVersion | None
    kept: int
    dropped: dict[str, int]  # reason → count
    resumed: int  # tasks read back from the partial file instead of being run again
    partial: Path
    errors: list[str] = field(default_factory=list)  # first request failures (after the client's retries)


# --- seeds -------------------------------------------------------------------------------------

def _last_user(messages: list[dict[str, Any]]) -> str:
    return next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")


def load_seeds(db: Database, ref: str) -> list[tuple[str, str | None]]:
    """(instruction, answer or None) from a file or a stored dataset version."""
    from llmloop.data.validate import parse_file
    from llmloop.data.versions import read_rows, resolve

    path = Path(ref)
    if path.is_file():
        if path.suffix.lower() == ".txt":
            text = path.read_bytes().decode("utf-8", errors="strict") if path.stat().st_size else ""
            seeds = [(line.strip(), None) for line in text.splitlines() if line.strip()]
        else:
            parsed = parse_file(path)
            if parsed.problems:
                raise DataError(f"seeds {path}: {parsed.problems[0]}")
            seeds = _rows_to_seeds(parsed.kind, parsed.rows)
    else:
        try:
            v = resolve(db, ref)
        except LookupError:
            raise DataError(f"seeds {ref!r}: no such file or dataset; give a .txt/.jsonl file or NAME[@vX.Y]") from None
        seeds = _rows_to_seeds(v.kind, read_rows(v))
    seeds = [(q, a) for q, a in dict.fromkeys(seeds) if q]
    if not seeds:
        raise DataError(f"seeds {ref!r}: no instruction found; give at least one")
    return seeds


def _rows_to_seeds(kind: str, rows: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    if kind == "sft":
        out = []
        for r in rows:
            msgs = r["messages"]
            answer = msgs[-1]["content"] if msgs[-1]["role"] == "assistant" and len(msgs) <= 3 else None
            out.append((_last_user(msgs), answer))
        return out
    if kind == "pt":
        return [(r["text"].strip(), None) for r in rows]
    return [(_last_user(r["prompt"]), None) for r in rows]


# --- ROUGE-L novelty ---------------------------------------------------------------------------

class _Tokenizer:
    """Words and single CJK characters, lower-cased: rouge-score's default drops non-ASCII text."""

    def tokenize(self, text: str) -> list[str]:
        return [t.lower() for t in _WORDS.findall(text)]


class NoveltyFilter:
    """ROUGE-L F1 (rouge-score) of a candidate against every instruction in the pool."""

    def __init__(self, threshold: float, pool: list[str]) -> None:
        from rouge_score import rouge_scorer

        self.threshold = threshold
        self.scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=_Tokenizer())
        self.pool = list(pool)
        self.lock = threading.Lock()

    def max_similarity(self, text: str) -> float:
        with self.lock:
            pool = list(self.pool)
        return max((self.scorer.score(p, text)["rougeL"].fmeasure for p in pool), default=0.0)

    def novel(self, text: str) -> bool:
        return self.max_similarity(text) < self.threshold

    def add(self, text: str) -> None:
        with self.lock:
            self.pool.append(text)


# --- the run -----------------------------------------------------------------------------------

def partial_path(db: Database, config: GenerateConfig, generator_name: str) -> Path:
    """One partial file per (dataset, method, seed *content*, generator, the settings that shape the
    output): a seeds dataset that gained a version, or an edited seeds file, starts a new run."""
    shaping = config.model_dump(exclude={"concurrency", "note", "max_attempts", "num"})
    seeds = load_seeds(db, config.seeds)
    key = hashlib.sha256(json.dumps([shaping, generator_name, seeds], sort_keys=True).encode()).hexdigest()[:12]
    return db.workspace.datasets_dir / ".partial" / f"{config.name}.{config.method}.{key}.jsonl"


def _read_partial(path: Path) -> dict[str, dict[str, Any]]:
    done: dict[str, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash: that task runs again
            if rec.get("status") != "error":  # failed requests are tried again
                done[rec["task"]] = rec
    return done


def _row(instruction: str, answer: str, meta: dict[str, Any]) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": instruction}, {"role": "assistant", "content": answer}],
            "meta": meta}


def generate(db: Database, config: GenerateConfig, generator: Generator, *,
             progress: Callable[[int, int], None] | None = None) -> GenerateResult:
    """Run ``config.method`` with ``generator``; store the kept rows as the next version of ``config.name``.

    ``progress(done, total)`` is called after each task. Interrupting leaves the partial file; calling
    again with the same config resumes from it.
    """
    from llmloop.data.versions import check_name, write_version

    try:
        check_name(config.name)
    except ValueError as e:
        raise DataError(f"{e}; pass another --name") from None
    bad = [t for t in config.task_types if t not in TASK_TYPES]
    if bad:
        raise DataError(f"--task-type {bad[0]!r} is not one of {', '.join(TASK_TYPES)}")
    seeds = load_seeds(db, config.seeds)
    path = partial_path(db, config, generator.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    done = _read_partial(path)
    resumed = len(done)
    errors: list[str] = []
    runner = _Runner(config, generator, seeds, done)
    lock = threading.Lock()
    failures = [0]  # consecutive failed requests
    with path.open("a", encoding="utf-8") as out:
        def record(rec: dict[str, Any]) -> None:
            if rec.get("status") == "skipped":
                return
            with lock:
                out.write(json.dumps(rec, ensure_ascii=False) + "\n")
                out.flush()
                os.fsync(out.fileno())
                if rec["status"] == "error":
                    failures[0] += 1
                    if len(errors) < 5:
                        errors.append(rec["reason"])
                    if failures[0] >= max(3, config.concurrency):
                        runner.stop.set()
                    return
                failures[0] = 0
                done[rec["task"]] = rec
            if progress:
                progress(runner.progress_done(), runner.total)

        runner.run(record)
    if runner.stop.is_set():
        raise DataError(f"the generator failed {failures[0]} times in a row, last: {errors[-1]}; nothing stored. "
                        f"Check --base-url/--model/the API key; the {len(done)} finished task(s) are kept in "
                        f"{path} and the same command resumes from them")
    kept = [r for r in sorted(done.values(), key=lambda r: runner.order(r["task"])) if r["status"] == "kept"]
    dropped: dict[str, int] = {}
    for r in done.values():
        if r["status"] != "kept":
            dropped[r["reason"].split(":")[0]] = dropped.get(r["reason"].split(":")[0], 0) + 1
    unique = list({" ".join(r["instruction"].casefold().split()): r for r in reversed(kept)}.values())[::-1]
    if len(unique) < len(kept):  # e.g. two paraphrases that came out the same: keep the first
        dropped["duplicate"] = len(kept) - len(unique)
        kept = unique
    if config.method == "self-instruct":
        kept = kept[:config.num]  # a resumed file may hold more than a smaller --num asks for
    if not kept:
        return GenerateResult(None, 0, dropped, resumed, path, errors)
    rows = [_row(r["instruction"], r["answer"], r["meta"]) for r in kept]
    note = config.note or f"{config.method}: {len(rows)} rows from {len(seeds)} seed(s) by {generator.name}"
    try:
        version = write_version(db, rows, name=config.name, kind="sft", source_format=config.method, note=note,
                                created_by=f"generate:{config.method}:{generator.name}")
    except ValueError as e:
        raise DataError(str(e)) from None
    path.unlink()
    return GenerateResult(version, len(rows), dropped, resumed, path, errors)


class _Runner:
    """Schedules the method's tasks over a thread pool, skipping those already on file."""

    def __init__(self, config: GenerateConfig, gen: Generator, seeds: list[tuple[str, str | None]],
                 done: dict[str, dict[str, Any]]) -> None:
        self.c, self.gen, self.seeds, self.done = config, gen, seeds, done
        self.stop = threading.Event()  # set after repeated request failures: start nothing new
        if config.method == "self-instruct":
            self.total = config.max_attempts or 4 * config.num
            kept = [r["instruction"] for r in done.values() if r["status"] == "kept"]
            self.novelty = NoveltyFilter(config.rouge_threshold, [q for q, _ in seeds] + kept)
        elif config.method == "evol-instruct":
            self.total = len(seeds) * config.rounds
        else:
            self.total = len(seeds) * config.variants

    def order(self, task: str) -> tuple[int, ...]:
        return tuple(int(x) for x in task.split(":"))

    def progress_done(self) -> int:
        return min(len(self.done), self.total)

    def _rng(self, task: str) -> random.Random:
        return random.Random(f"{self.c.seed}:{self.c.method}:{task}")

    def _call(self, fn: Callable[[], dict[str, Any]], task: str) -> dict[str, Any]:
        if self.stop.is_set():
            return {"task": task, "status": "skipped"}
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - a request that failed after the client's retries
            return {"task": task, "status": "error", "reason": f"request failed: {type(e).__name__}: {e}"[:300]}

    def run(self, record: Callable[[dict[str, Any]], None]) -> None:
        with ThreadPoolExecutor(self.c.concurrency) as pool:
            if self.c.method == "self-instruct":
                self._self_instruct(pool, record)
            elif self.c.method == "evol-instruct":
                chains = [pool.submit(self._evol_chain, i, record) for i in range(len(self.seeds))]
                for f in chains:
                    f.result()
            else:
                tasks = [f"{i}:{k}" for i in range(len(self.seeds)) for k in range(self.c.variants)]
                futures = [pool.submit(self._call, lambda t=t: self._paraphrase(t), t) for t in tasks
                           if t not in self.done]
                for f in futures:
                    record(f.result())

    # self-instruct: keep `concurrency` attempts in flight until `num` are kept or attempts run out
    def _self_instruct(self, pool: ThreadPoolExecutor, record: Callable[[dict[str, Any]], None]) -> None:
        def kept() -> int:
            return sum(1 for r in self.done.values() if r["status"] == "kept")

        nxt = 0
        running: dict[Future, str] = {}
        while True:
            while (len(running) < self.c.concurrency and kept() + len(running) < self.c.num and nxt < self.total
                   and not self.stop.is_set()):
                task = str(nxt)
                nxt += 1
                if task not in self.done:
                    running[pool.submit(self._call, lambda t=task: self._instruct(t), task)] = task
            if not running:
                return
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for f in finished:
                running.pop(f)
                rec = f.result()
                if rec["status"] == "kept":  # re-check against what was accepted while it ran
                    if kept() >= self.c.num:
                        rec = {**rec, "status": "dropped", "reason": "over target: --num reached"}
                    elif not self.novelty.novel(rec["instruction"]):
                        rec = {**rec, "status": "dropped", "reason": "not novel: ROUGE-L with an instruction "
                               "accepted meanwhile"}
                    else:
                        self.novelty.add(rec["instruction"])
                record(rec)

    def _instruct(self, task: str) -> dict[str, Any]:
        rng = self._rng(task)
        task_type = self.c.task_types[int(task) % len(self.c.task_types)]
        with self.novelty.lock:
            pool = list(self.novelty.pool)
        examples = rng.sample(pool, min(self.c.examples, len(pool)))
        instruction = self.gen.new_instruction(examples, task_type, rng)
        base = {"task": task, "instruction": instruction}
        if not instruction.strip():
            return {**base, "status": "dropped", "reason": "empty instruction"}
        score = self.novelty.max_similarity(instruction)
        if score >= self.c.rouge_threshold:
            return {**base, "status": "dropped", "reason": f"not novel: ROUGE-L {score:.2f}"}
        answer = self.gen.answer(instruction, rng)
        if not answer.strip():
            return {**base, "status": "dropped", "reason": "empty answer"}
        return {**base, "status": "kept", "answer": answer,
                "meta": {"method": "self-instruct", "task_type": task_type, "generator": self.gen.name,
                         "rouge_l_max": round(score, 3)}}

    def _evol_chain(self, i: int, record: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        current = self.seeds[i][0]
        for r in range(self.c.rounds):
            task = f"{i}:{r}"
            if self.stop.is_set():
                break
            if task in self.done:
                prev = self.done[task]
                if prev["status"] == "kept":
                    current = prev["instruction"]
                continue
            rng = self._rng(task)
            op = EVOL_OPS[(i + r) % len(EVOL_OPS)]
            rec = self._call(lambda: self._evolve_one(task, current, op, rng, i), task)
            record(rec)
            if rec["status"] == "kept":
                current = rec["instruction"]
            elif rec["status"] in ("error", "skipped"):
                break  # the next round builds on this one: try the chain again on resume
        return {"status": "ok"}

    def _evolve_one(self, task: str, current: str, op: str, rng: random.Random, i: int) -> dict[str, Any]:
        evolved = self.gen.evolve(current, op, rng)
        base = {"task": task, "instruction": evolved}
        if not evolved.strip() or evolved.strip() == current.strip():
            return {**base, "status": "dropped", "reason": f"evolution failed: {op} returned it unchanged or empty"}
        answer = self.gen.answer(evolved, rng)
        if not answer.strip():
            return {**base, "status": "dropped", "reason": "empty answer"}
        return {**base, "status": "kept", "answer": answer,
                "meta": {"method": "evol-instruct", "op": op, "round": int(task.split(":")[1]) + 1,
                         "seed": self.seeds[i][0], "generator": self.gen.name}}

    def _paraphrase(self, task: str) -> dict[str, Any]:
        i = int(task.split(":")[0])
        seed, seed_answer = self.seeds[i]
        rng = self._rng(task)
        text = self.gen.paraphrase(seed, rng, self.c.pivot)
        base = {"task": task, "instruction": text}
        if not text.strip() or text.strip() == seed.strip():
            return {**base, "status": "dropped", "reason": "paraphrase failed: unchanged or empty"}
        answer = seed_answer or self.gen.answer(text, rng)
        if not answer.strip():
            return {**base, "status": "dropped", "reason": "empty answer"}
        return {**base, "status": "kept", "answer": answer,
                "meta": {"method": "back-translation" if self.c.pivot else "paraphrase", "seed": seed,
                         "pivot": self.c.pivot, "answer_from": "seed" if seed_answer else "generator",
                         "generator": self.gen.name}}
