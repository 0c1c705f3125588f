"""``llmloop train <stage>``: YAML + ``--set`` overrides → config → a queued job run in its own
process (``train.worker.run_here``) with a progress bar → summary; ``export-llamafactory``.

One command per row of ``train.config.STAGE_TABLE``, generated below; each command's help lists its
config keys, generated from the config model's field descriptions. User errors (bad YAML, unknown
key, unknown dataset or model) print one message and exit 2.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from llmloop.errors import UserError
from llmloop.train.config import CONFIGS, STAGE_TABLE, STAGES, Stage

app = typer.Typer(
    no_args_is_help=True,
    help=f"Train a model: {', '.join(STAGES)}. Each run is a job in its own process.",
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
    from llmloop.train.config import load_config
    from llmloop.train.job_runner import get_job, job_failed_on_input, submit
    from llmloop.data.database import open_workspace_database as open_database
    from llmloop.train.worker import cancel, run_here

    # a ConfigError, an unknown --backend (TrainingInputError): printed by cli/main.py, exit 2
    cfg = load_config(stage, config, overrides)
    db = open_database()
    job = submit(db, stage, cfg, backend=backend, gpus=gpus)
    if detach:
        console.print(f"queued job {job.id}; run it with `llmloop jobs worker`, follow it with "
                      f"`llmloop jobs logs -f {job.id}`", highlight=False, soft_wrap=True)
        return

    import threading

    # this command is the job's worker; the thread waits on the job's process while the bar follows it
    thread = threading.Thread(target=run_here, args=(db, job.id), daemon=True)
    thread.start()
    try:
        _follow(db, job.id, stage, thread)
    except KeyboardInterrupt:
        err.print(f"cancelling job {job.id} (it saves a checkpoint; `llmloop jobs resume {job.id}` continues it)")
        cancel(db, job.id)
        thread.join()
    final = get_job(db, job.id)
    if final.status != "succeeded":
        err.print(f"[red]error:[/red] job {final.id} {final.status}: {final.error}", highlight=False, soft_wrap=True)
        err.print(f"log: llmloop jobs logs {final.id}", highlight=False, soft_wrap=True)
        raise typer.Exit(2 if job_failed_on_input(final) else 1)
    _summary(db, stage, final)


def _follow(db, job_id: str, stage: str, thread) -> None:  # noqa: ANN001
    """A Rich progress bar fed by the job's logged steps until its process ends."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from llmloop.train.job_runner import get_metrics

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


def _summary(db, stage: str, job) -> None:  # noqa: ANN001
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
    from llmloop.train.job_runner import registered_version

    v = registered_version(db, job)
    if v is not None:
        table.add_row("registered", f"{v.name} ({v.kind}, {v.stage}, parent {v.parent})")
    else:
        table.add_row("registered", "no")
    console.print(table)


def _stage_command(stage: Stage):  # noqa: ANN202 - a Typer command
    def command(config: Path | None = CONFIG_OPTION, set_: list[str] = SET_OPTION, gpus: int = GPUS_OPTION,
                detach: bool = DETACH_OPTION, backend: str = BACKEND_OPTION) -> None:
        _train(stage.name, config, set_, gpus, detach, backend)

    command.__name__ = command.__qualname__ = stage.name
    command.__doc__ = stage.help
    return command


for _stage in STAGE_TABLE:  # `llmloop train pt`, `… sft`, …: one command per stage, in the table's order
    app.command(_stage.name, epilog=_keys_help(_stage.name))(_stage_command(_stage))


@app.command("export-llamafactory")
def export_llamafactory(
    out: Path = typer.Argument(..., help="Directory to write llamafactory.yaml and data/ into"),
    config: Path = typer.Option(..., "-c", "--config", metavar="YAML", help="Our stage config (configs/<stage>/…)"),
    set_: list[str] = SET_OPTION,
    stage: str = typer.Option(None, "--stage", help="Stage of the config; default: from its `# llmloop train <stage>` "
                              "header line, else its folder name (configs/<stage>/)"),
) -> None:
    """Write LLaMA-Factory's train YAML + dataset_info.json + data files equivalent to a config."""
    from llmloop.train.config import load_config
    from llmloop.data.database import open_workspace_database as open_database
    from llmloop.train.llamafactory import export

    if stage is None:
        first = config.read_text(encoding="utf-8").splitlines()[:1] if config.is_file() else []
        words = first[0].split() if first else []
        if len(words) >= 4 and words[1:3] == ["llmloop", "train"] and words[3] in STAGES:
            stage = words[3]
        elif config.parent.name in STAGES:
            stage = config.parent.name
        else:
            raise UserError(f"cannot tell the stage of {config}; pass --stage ({', '.join(STAGES)})")
    # ConfigError, TrainingInputError, DatasetNotFound, VersionNotFound: printed by cli/main.py, exit 2
    cfg = load_config(stage, config, set_)
    result = export(open_database(), stage, cfg, out)
    console.print(f"wrote {result.yaml_path}, {result.dataset_info} and {len(result.data_files)} data file(s); "
                  f"run: cd {out} && llamafactory-cli train {result.yaml_path.name}", highlight=False, soft_wrap=True)
