"""M5: merge-ratio scan — merge A and B at N ratios, score each on an eval set, keep the best.

Each point is a full streamed merge (``merge.py``) into a scratch folder, scored, and deleted
unless it is the best so far; the best one is renamed into place and registered as a candidate
with the whole scan (every ratio and score) in its lineage. Scores come from the eval package:
- ``perplexity`` (default; lower is better): ``eval.text_metrics.perplexity`` of each eval row's
  conversation with its reference answer — needs ``reference`` in the rows, no generation;
- any metric of ``eval.report.score`` (``exact_match``, ``bleu``, ``rougeL``, ``accuracy`` …; higher
  is better): the merged model answers every row through the embedded engine (``eval.report.run_eval``).
The table is printed by the CLI and written as CSV + JSON, the curve as a PNG.
"""

from __future__ import annotations

import csv
import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from llmloop.models.merge import MergeConfig, merge_full
from llmloop.models.sources import (
    SurgeryError,
    default_out,
    pick_name,
    publish,
    resolve,
)
from llmloop.models.weights import staged_dir

ProgressFn = Callable[[int, int], None]


class ScanConfig(BaseModel):
    """`llmloop models merge-scan`: score merges of two models at evenly spaced ratios; register the best."""

    model_config = ConfigDict(extra="forbid")

    a: str = Field(description="First model (t=0): version, alias or folder")
    b: str = Field(description="Second model (t=1): version, alias or folder")
    method: Literal["slerp", "linear"] = Field("slerp", description="slerp (t along the arc) or linear ((1-t)·A + t·B)")
    points: int = Field(11, ge=2, le=101, description="Number of ratios from 0 to 1 inclusive")
    eval_set: str = Field(description="Eval set as `llmloop eval run` reads it: a JSONL file (prompt/messages + reference/label) or a stored dataset NAME[@v1.2]")
    metric: str = Field("perplexity", description="perplexity (lower is better) or an eval metric: exact_match, bleu, rougeL, accuracy …")
    max_rows: int = Field(64, ge=1, description="Score at most this many eval rows per point")
    max_tokens: int = Field(64, ge=1, description="Generation metrics: longest answer")
    name: str | None = Field(None, description="Name of the registered best merge (default: next free after A)")
    register_version: bool = Field(True, description="Register the best merge as a candidate version")
    alias: str | None = Field(None, description="Also point this alias (e.g. candidate) at the registered best merge")
    report_dir: Path | None = Field(None, description="Where the PNG/CSV/JSON go (default: the workspace's reports/)")


@dataclass(frozen=True)
class ScanPoint:
    t: float
    score: float


@dataclass(frozen=True)
class ScanResult:
    points: list[ScanPoint]
    best: ScanPoint
    lower_is_better: bool
    model_dir: Path
    version: str | None
    png: Path
    csv: Path


def _score(model_dir: Path, rows, metric: str, max_tokens: int) -> float:  # noqa: ANN001
    if metric == "perplexity":
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from llmloop.eval.text_metrics import perplexity

        tok = AutoTokenizer.from_pretrained(str(model_dir))
        model = AutoModelForCausalLM.from_pretrained(str(model_dir)).eval()
        texts = [tok.apply_chat_template([*r.messages, {"role": "assistant", "content": r.reference}], tokenize=False)
                 for r in rows]
        return perplexity(model, tok, texts, max_length=1024)
    from llmloop.eval.report import run_eval
    from llmloop.eval.subjects import checkpoint_version
    from llmloop.inference.base import SamplingParams
    from llmloop.inference.embedded import EmbeddedEngine

    engine = EmbeddedEngine(device="cpu")
    point = checkpoint_version(model_dir)  # an unregistered version for the engine
    engine.load(point)
    report = run_eval(engine, [point.name], rows, SamplingParams(max_tokens=max_tokens, temperature=0.0, seed=0))
    got = report.versions[0].metrics
    if metric not in got:
        raise SurgeryError(f"--metric {metric!r} is not computed for this eval set; it gives {sorted(got)} (or use perplexity)")
    return float(got[metric])


def _plot(points: list[ScanPoint], best: ScanPoint, metric: str, title: str, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([p.t for p in points], [p.score for p in points], marker="o")
    ax.scatter([best.t], [best.score], color="red", zorder=3, label=f"best t={best.t:.2f}")
    ax.set_xlabel("t (0 = A, 1 = B)")
    ax.set_ylabel(metric)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def _full(src, scratch: Path) -> Path:  # noqa: ANN001 - sources.Source
    """Full weights of a source: its folder, or its adapter folded into its base (streamed)."""
    if not src.adapter_path:
        return Path(src.base_model)
    from llmloop.models.lora_merge import merge_lora_stream

    scratch.mkdir()
    merge_lora_stream(Path(src.base_model), Path(src.adapter_path), scratch)
    return scratch


def run_scan(db, config: ScanConfig, progress: ProgressFn | None = None) -> ScanResult:  # noqa: ANN001
    from llmloop.eval.evalset import load_eval_set
    from llmloop.store import registry

    src_a, src_b = resolve(db, config.a), resolve(db, config.b)
    from llmloop.models.merge import check_compatible

    check_compatible([Path(src_a.base_model), Path(src_b.base_model)], [src_a.name, src_b.name])  # before any work
    rows, described = load_eval_set(config.eval_set, db)
    rows = rows[: config.max_rows]
    if config.metric == "perplexity":
        missing = [i for i, r in enumerate(rows, 1) if r.reference is None]
        if missing:
            raise SurgeryError(f"{config.eval_set}: rows {missing[:5]} have no \"reference\"; --metric perplexity scores the reference answers")
    lower = config.metric == "perplexity"
    name = pick_name(db, config.name, src_a, src_a.kind) if config.register_version else (config.name or "merge-scan")
    out = default_out(db, name)
    report_dir = Path(config.report_dir or db.workspace.reports_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    ts = [round(i / (config.points - 1), 6) for i in range(config.points)]
    points: list[ScanPoint] = []
    best: ScanPoint | None = None
    with tempfile.TemporaryDirectory(dir=db.workspace.models_dir, prefix=".scan-") as scratch:
        ends = [_full(s, Path(scratch) / f"end{i}") for i, s in enumerate((src_a, src_b))]  # adapters folded once
        best_dir = None
        for k, t in enumerate(ts):
            d = Path(scratch) / f"t{k}"
            d.mkdir()
            mcfg = MergeConfig(models=[str(e) for e in ends], method=config.method, t=t,
                               weights=[1 - t, t], register_version=False)
            merge_full(ends, d, mcfg, labels=[src_a.name, src_b.name])
            p = ScanPoint(t, _score(d, rows, config.metric, config.max_tokens))
            points.append(p)
            if best is None or (p.score < best.score if lower else p.score > best.score):
                if best_dir is not None:
                    shutil.rmtree(best_dir)
                best, best_dir = p, d
            else:
                shutil.rmtree(d)
            if progress:
                progress(k + 1, len(ts))
        assert best is not None and best_dir is not None
        with staged_dir(out) as tmp:
            for f in best_dir.iterdir():
                shutil.move(str(f), tmp / f.name)
    stem = f"merge-scan-{name}"
    png, csv_path = report_dir / f"{stem}.png", report_dir / f"{stem}.csv"
    _plot(points, best, config.metric, f"{config.method} {src_a.name} → {src_b.name}", png)
    with csv_path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["t", config.metric])
        w.writerows([[p.t, p.score] for p in points])
    report = {"metric": config.metric, "eval_set": described, "rows": len(rows), "lower_is_better": lower, "best_t": best.t, "best_score": best.score,
              "points": [asdict(p) for p in points], "png": str(png)}
    (report_dir / f"{stem}.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    version = None
    if config.register_version:
        recipe = {**config.model_dump(mode="json"), "chosen_t": best.t}
        version = publish(db, name=name, kind=src_a.kind, base_model=str(out.resolve()), adapter_path=None,
                          operation="merge-scan", parents=[src_a, src_b], recipe=recipe, report=report,
                          note=f"best {config.method} of {src_a.name}/{src_b.name} at t={best.t:.2f} by {config.metric}")
        if config.alias:
            registry.set_alias(db, config.alias, version.name, reason=f"merge-scan best t={best.t:.2f}")
    return ScanResult(points, best, lower, out, version.name if version else None, png, csv_path)
