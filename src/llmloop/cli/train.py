"""``llmloop train pt|sft|dpo|kto|rm|grpo|ppo``: YAML + ``--set`` overrides → config → a queued job run
in its own process (``train.worker``) with a progress bar → summary; ``export-llamafactory``.

Each command's help lists its config keys, generated from the config model's field descriptions.
User errors (bad YAML, unknown key, unknown dataset or model) print one message and exit 2.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from llmloop.train.config import CONFIGS

app = typer.Typer(
    no_args_is_help=True,
    help="Train a model: pt, sft, dpo (also orpo/simpo), kto, rm, grpo, ppo. Each run is a job in its own process.",
)
console = Console()
err = Console(stderr=True)

CONFIG_OPTION = typer.Option(
    None, "-c", "--config", metavar="YAML", help="Config file (see configs/<stage>/); keys below", show_default=False
)
SET_OPTION = typer.Option(
    [], "--set", metavar="KEY=VALUE", show_default=False,
    help="Override one config key, repeatable: --set max_steps=5 --set lora.r=16",
)


def _keys_help(stage: str) -> str:
    """The config keys of ``stage`` with their descriptions: the rest of the command's help."""
    from rich.markup import escape

    def line(key: str, field) -> str:  # noqa: ANN001
        default = "required" if field.is_required() else f"default {field.get_default(call_default_factory=True)!r}"
        return f"  [bold]{key}[/bold] ({escape(default)}): {escape(field.description or '')}"

    lines = ["[bold]Config keys[/bold] (in the YAML file or as --set key=value):"]
    for name, field in CONFIGS[stage].model_fields.items():
        key = field.alias or name
        block = getattr(field.annotation, "model_fields", None)
        if block:
            lines.extend(line(f"{key}.{sub}", sub_field) for sub, sub_field in block.items())
        else:
            lines.append(line(key, field))
    return "\n".join(lines)


GPUS_OPTION = typer.Option(
    1, "--gpus", min=1, help="GPUs for this job: more than 1 launches it through `accelerate launch` "
    "(DDP, or DeepSpeed ZeRO with --set accelerate_config=configs/accelerate/zero2.yaml)",
)
DETACH_OPTION = typer.Option(
    False, "--detach", help="Only queue the job and print its id; `llmloop jobs worker` runs it"
)
BACKEND_OPTION = typer.Option(
    "trl", "--backend", help="'trl' (this engine) or 'llamafactory' (runs your llamafactory-cli as the job's "
    "process; path from $LLMLOOP_LLAMAFACTORY_CLI or --set llamafactory_cli=…)",
)


def _train(stage: str, config: Path | None, overrides: list[str], gpus: int = 1, detach: bool = False,
           backend: str = "trl") -> None:
    from llmloop.store import open_database
    from llmloop.store import jobs as store_jobs
    from llmloop.train.config import load_config
    from llmloop.train.worker import cancel, run_claimed, submit, worker_name

    cfg = load_config(stage, config, overrides)  # a ConfigError: printed by cli/main.py, exit 2
    if backend not in ("trl", "llamafactory"):
        err.print(f"[red]error:[/red] --backend {backend!r}: use trl or llamafactory", highlight=False)
        raise typer.Exit(2)
    db = open_database()
    job = submit(db, stage, cfg, backend=backend, gpus=gpus)
    if detach:
        console.print(f"queued job {job.id}; run it with `llmloop jobs worker`, follow it with "
                      f"`llmloop jobs logs -f {job.id}`", highlight=False, soft_wrap=True)
        return
    store_jobs.claim(db, job.id, worker_name())  # this command is the job's worker
    outcome: dict = {}

    import threading

    thread = threading.Thread(target=lambda: outcome.setdefault("job", run_claimed(db, job)), daemon=True)
    thread.start()
    try:
        _follow(db, job.id, stage, thread)
    except KeyboardInterrupt:
        err.print(f"cancelling job {job.id} (it saves a checkpoint; `llmloop jobs resume {job.id}` continues it)")
        cancel(db, job.id)
        thread.join()
    final = store_jobs.get_job(db, job.id)
    if final.status != "succeeded":
        err.print(f"[red]error:[/red] job {final.id} {final.status}: {final.error}", highlight=False, soft_wrap=True)
        err.print(f"log: llmloop jobs logs {final.id}", highlight=False, soft_wrap=True)
        user_error = final.status == "failed" and (final.error or "").startswith(("TrainingInputError", "DatasetNotFound"))
        raise typer.Exit(2 if user_error else 1)
    _summary(stage, final)


def _follow(db, job_id: str, stage: str, thread) -> None:  # noqa: ANN001
    """A Rich progress bar fed by the job's logged steps until its process ends."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from llmloop.store.jobs import get_metrics

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[loss]}"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(f"train {stage} ({job_id})", total=None, loss="")
        while thread.is_alive():
            thread.join(0.5)
            rows = [r for r in get_metrics(db, job_id) if "loss" in r]
            if rows:
                last = rows[-1]
                bar.update(task, total=last.get("total_steps") or None, completed=last["step"],
                           loss=f"loss {last['loss']:.4f}")
            time.sleep(0)


def _summary(stage: str, job) -> None:  # noqa: ANN001
    result = job.result or {}
    m = result.get("metrics") or {}
    table = Table(title=f"train {stage}: succeeded", show_header=False)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row("job", job.id)
    if m.get("loss_first") is not None:
        table.add_row("loss", f"{m['loss_first']:.4f} → {m['loss_final']:.4f} ({m.get('steps')} steps, {m.get('runtime_s')} s)")
    if "rewards/accuracies" in m:
        table.add_row("reward accuracy / margin", f"{m['rewards/accuracies']:.2f} / {m['rewards/margins']:.4f}")
    if m.get("best_checkpoint"):
        table.add_row("best checkpoint", f"{m['best_checkpoint']} ({m.get('metric')} {m.get('best_metric')})")
    table.add_row("output", str(result.get("output")))
    name = result.get("model_version")
    if name:
        from llmloop.store import open_database, registry

        v = registry.get(open_database(), name)
        table.add_row("registered", f"{v.name} ({v.kind}, {v.stage}, parent {v.parent})")
    else:
        table.add_row("registered", "no")
    console.print(table)


@app.command("pt", epilog=_keys_help("pt"))
def pt(config: Path | None = CONFIG_OPTION, set_: list[str] = SET_OPTION, gpus: int = GPUS_OPTION,
        detach: bool = DETACH_OPTION, backend: str = BACKEND_OPTION) -> None:
    """Continued pre-training on {"text"} rows: gives a completion model (c1.0, c1.1 …)."""
    _train("pt", config, set_, gpus, detach, backend)


@app.command("sft", epilog=_keys_help("sft"))
def sft(config: Path | None = CONFIG_OPTION, set_: list[str] = SET_OPTION, gpus: int = GPUS_OPTION,
        detach: bool = DETACH_OPTION, backend: str = BACKEND_OPTION) -> None:
    """Supervised fine-tuning on {"messages"} rows: gives a chat model (v1.0 …)."""
    _train("sft", config, set_, gpus, detach, backend)


@app.command("dpo", epilog=_keys_help("dpo"))
def dpo(config: Path | None = CONFIG_OPTION, set_: list[str] = SET_OPTION, gpus: int = GPUS_OPTION,
        detach: bool = DETACH_OPTION, backend: str = BACKEND_OPTION) -> None:
    """DPO (or ORPO/SimPO: --set method=orpo|simpo) on prompt/chosen/rejected rows: the next chat version."""
    _train("dpo", config, set_, gpus, detach, backend)


@app.command("orpo", epilog=_keys_help("orpo"))
def orpo(config: Path | None = CONFIG_OPTION, set_: list[str] = SET_OPTION, gpus: int = GPUS_OPTION,
         detach: bool = DETACH_OPTION, backend: str = BACKEND_OPTION) -> None:
    """ORPO on prompt/chosen/rejected rows (SFT loss + odds-ratio penalty, no reference model): the next chat version."""
    _train("orpo", config, set_, gpus, detach, backend)


@app.command("kto", epilog=_keys_help("kto"))
def kto(config: Path | None = CONFIG_OPTION, set_: list[str] = SET_OPTION, gpus: int = GPUS_OPTION,
        detach: bool = DETACH_OPTION, backend: str = BACKEND_OPTION) -> None:
    """KTO on unpaired prompt/completion/label rows (thumbs up/down): the next chat version."""
    _train("kto", config, set_, gpus, detach, backend)


@app.command("rm", epilog=_keys_help("rm"))
def rm(config: Path | None = CONFIG_OPTION, set_: list[str] = SET_OPTION, gpus: int = GPUS_OPTION,
       detach: bool = DETACH_OPTION, backend: str = BACKEND_OPTION) -> None:
    """Reward model on prompt/chosen/rejected rows (pairwise loss): a scorer, recorded with the job."""
    _train("rm", config, set_, gpus, detach, backend)


@app.command("grpo", epilog=_keys_help("grpo"))
def grpo(config: Path | None = CONFIG_OPTION, set_: list[str] = SET_OPTION, gpus: int = GPUS_OPTION,
         detach: bool = DETACH_OPTION, backend: str = BACKEND_OPTION) -> None:
    """GRPO on prompt rows with reward functions (answer match, format, length, or yours)."""
    _train("grpo", config, set_, gpus, detach, backend)


@app.command("ppo", epilog=_keys_help("ppo"))
def ppo(config: Path | None = CONFIG_OPTION, set_: list[str] = SET_OPTION, gpus: int = GPUS_OPTION,
        detach: bool = DETACH_OPTION, backend: str = BACKEND_OPTION) -> None:
    """PPO against a reward model: only with --backend llamafactory (TRL 1.16 has no PPO trainer)."""
    _train("ppo", config, set_, gpus, detach, backend)


@app.command("export-llamafactory")
def export_llamafactory(
    out: Path = typer.Argument(..., help="Directory to write llamafactory.yaml and data/ into"),
    config: Path = typer.Option(..., "-c", "--config", metavar="YAML", help="Our stage config (configs/<stage>/…)"),
    set_: list[str] = SET_OPTION,
    stage: str = typer.Option(None, "--stage", help="Stage of the config; default: from its `# llmloop train <stage>` "
                              "header line, else its folder name (configs/<stage>/)"),
) -> None:
    """Write LLaMA-Factory's train YAML + dataset_info.json + data files equivalent to a config."""
    from llmloop.store import open_database
    from llmloop.train.config import STAGES, load_config
    from llmloop.train.llamafactory import export

    if stage is None:
        first = config.read_text(encoding="utf-8").splitlines()[:1] if config.is_file() else []
        words = first[0].split() if first else []
        if len(words) >= 4 and words[1:3] == ["llmloop", "train"] and words[3] in STAGES:
            stage = words[3]
        elif config.parent.name in STAGES:
            stage = config.parent.name
        else:
            err.print(f"[red]error:[/red] cannot tell the stage of {config}; pass --stage ({', '.join(STAGES)})",
                      highlight=False)
            raise typer.Exit(2)
    # ConfigError, TrainingInputError, DatasetNotFound, VersionNotFound: printed by cli/main.py, exit 2
    cfg = load_config(stage, config, set_)
    result = export(open_database(), stage, cfg, out)
    console.print(f"wrote {result.yaml_path}, {result.dataset_info} and {len(result.data_files)} data file(s); "
                  f"run: cd {out} && llamafactory-cli train {result.yaml_path.name}", highlight=False, soft_wrap=True)
