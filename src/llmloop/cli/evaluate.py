"""``llmloop eval …``: thin adapters over llmloop.eval (see docs/evaluation.md)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from llmloop.eval import EvalInputError

app = typer.Typer(no_args_is_help=True, help="Evaluate model versions: metrics, judges, win rates, leaderboards, A/B tests, reports, benchmarks.")
console = Console()
err = Console(stderr=True)


# Errors: the library raises EvalInputError (and NotFound …) for what the user must fix; the root
# command (cli/main.py) prints them and exits 2. Nothing here catches a bare ValueError or KeyError.


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):  # None, a list, "abc": not a score
        return None


def _load_report(path: Path):  # noqa: ANN202
    """A report saved by ``eval compare --out`` (or ``review-import --out``) → WinRateReport."""
    from llmloop.eval.user_files import read_text
    from llmloop.eval.winrate import report_from_json

    try:
        return report_from_json(json.loads(read_text(path)))
    except ValueError as e:  # not JSON (JSONDecodeError), or not a report (EvalInputError)
        raise EvalInputError(f"{path} is not a report written by `llmloop eval compare --out` ({e})") from None


def _config(ctx: typer.Context, cls, path: Path | None, values: dict, rename: dict[str, str]):  # noqa: ANN001, ANN202
    """YAML (``-c``) → ``cls``; options given on the command line override it. Without a YAML every
    option counts (defaults included). Errors name the file and the field."""
    from pydantic import ValidationError

    base: dict = {}
    if path is not None:
        import yaml

        try:
            base = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as e:
            raise EvalInputError(f"config {path}: cannot read ({e})") from None
        if not isinstance(base, dict):
            raise EvalInputError(f"config {path}: expected a mapping of {cls.__name__} fields")
    for k, v in values.items():
        source = ctx.get_parameter_source(k)  # by name: typer may carry its own copy of click's enum
        explicit = source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")
        if v is not None and v != [] and (path is None or explicit):
            base[rename.get(k, k)] = v
    try:
        return cls.model_validate(base)
    except ValidationError as e:
        where = f"config {path}" if path else "options"
        raise EvalInputError(f"{where}: " + "; ".join(f"{'.'.join(map(str, x['loc'])) or '(top)'}: {x['msg']}"
                                                   for x in e.errors())) from None


CONFIG_HELP = "YAML of the command's config fields (see docs/evaluation.md); options given here override it"


@app.command("compare")
def compare(
    ctx: typer.Context,
    challenger: str | None = typer.Argument(None, help="Version (or alias, or checkpoint folder) under test, e.g. v1.1 or candidate"),
    incumbent: str | None = typer.Argument(None, help="Version (or alias, or checkpoint folder) it is compared against, e.g. production"),
    config: Path | None = typer.Option(None, "--config", "-c", help=CONFIG_HELP),
    prompts: str | None = typer.Option(None, help="Held-out prompts: JSONL ({\"prompt\"} or {\"messages\"}) or a stored dataset NAME or NAME@v1.2"),
    judge: str | None = typer.Option(None, help="Pairwise judge: 'python:package.module:score_function', 'rm:/path/to/reward_model', "
                              "or an LLM judge 'openai:MODEL@BASE_URL' (any OpenAI-compatible endpoint, e.g. openai:production@http://127.0.0.1:8000/v1)"),
    judge_key_env: str | None = typer.Option(None, help="Environment variable holding the LLM judge's API key"),
    judge_templates: Path | None = typer.Option(None, help="YAML with 'pairwise'/'pointwise' judge prompt templates"),
    judge_timeout: float = typer.Option(60.0, help="Per-request timeout for an LLM judge, seconds"),
    judge_attempts: int = typer.Option(3, help="Tries per LLM judgement (transport errors and unusable JSON count)"),
    temperature: float = typer.Option(0.7, help="Sampling temperature for both versions"),
    max_tokens: int = typer.Option(96, help="Longest answer generated per prompt"),
    seed: int = typer.Option(1234, help="Sampling seed (the same for both)"),
    out: Path | None = typer.Option(None, help="Write the report (every sample, failures by cause, length-controlled rate) as JSON here"),
    endpoint: str | None = typer.Option(None, help="Generate through this OpenAI-compatible endpoint (e.g. "
                                        "http://127.0.0.1:8000/v1); CHALLENGER and INCUMBENT are then its model names"),
    endpoint_key_env: str | None = typer.Option(None, help="Environment variable holding the endpoint's API key"),
    timeout: float = typer.Option(60.0, help="Per-request timeout for --endpoint, seconds"),
    save: bool = typer.Option(True, help="Keep the comparison in the workspace for `eval leaderboard`"),
    resume: bool = typer.Option(True, help="Keep answers and verdicts as they come, so rerunning the same comparison "
                                "after a crash continues where it stopped"),
) -> None:
    """Win rate of CHALLENGER against INCUMBENT (ties count half), 95% Wilson CI, length-controlled rate."""
    from rich.progress import Progress

    from llmloop.eval.comparison import CompareConfig, run_compare
    from llmloop.eval.failures import describe

    cfg = _config(ctx, CompareConfig, config, dict(
        challenger=challenger, incumbent=incumbent, prompts=prompts, judge=judge, judge_key_env=judge_key_env,
        judge_templates=judge_templates, judge_timeout=judge_timeout, judge_attempts=judge_attempts,
        temperature=temperature, max_tokens=max_tokens, seed=seed, endpoint=endpoint, endpoint_key_env=endpoint_key_env,
        timeout=timeout, save=save, resume=resume), {"judge_timeout": "judge_timeout_s", "timeout": "timeout_s"})
    with Progress(console=err, transient=True) as bar:
        task = bar.add_task(f"{cfg.challenger} vs {cfg.incumbent}: generating, then judging", total=None)
        outcome = run_compare(cfg, on_progress=lambda d, t: bar.update(task, completed=d, total=t))
    report, lc = outcome.report, outcome.length_controlled
    if outcome.resumed:
        console.print(f"resumed: {outcome.resumed} answers and verdicts reused from an interrupted run")
    console.print(f"{report.version_x} vs {report.version_y}: win rate [bold]{report.win_rate:.3f}[/bold] "
                  f"(95% CI {report.ci_low:.3f}–{report.ci_high:.3f}; {report.wins} wins, {report.losses} losses, "
                  f"{report.ties} ties; judge {report.judge})")
    if report.failed:
        reasons = sorted({s.reason for s in report.samples if s.winner == "failed"})
        err.print(f"{report.failed} of {report.failed + report.n} samples could not be judged — "
                  f"{describe(outcome.failures)}; e.g. {reasons[0]}", highlight=False)
    if lc is not None:
        console.print(f"length-controlled win rate {lc.win_rate:.3f} (95% CI {lc.ci_low:.3f}–{lc.ci_high:.3f}; "
                      f"judge's length coefficient {lc.length_coef:+.2f})")
    if out:
        outcome.write(out)
        if lc is not None:  # kept for readers of the first version of this command
            from dataclasses import asdict

            out.with_name(out.stem + ".lc.json").write_text(json.dumps(asdict(lc), indent=2), encoding="utf-8")
        console.print(f"report: {out}")


@app.command("leaderboard")
def leaderboard(
    reports: list[Path] = typer.Option([], "--report", help="Also count the battles of a report file (`eval compare --out`, `eval review-import --out`; repeatable)"),
    saved: bool = typer.Option(True, help="Count every comparison `eval compare` kept in the workspace (all versions ever compared)"),
    bootstrap: int = typer.Option(200, min=0, help="Bootstrap resamples for the 95% intervals (0: none)"),
    seed: int = typer.Option(0, help="Seed of the bootstrap"),
    out: Path | None = typer.Option(None, help="Write the leaderboard as JSON here"),
) -> None:
    """Bradley–Terry ratings (Elo scale, bootstrap 95% CI) from arena votes and judged comparisons."""
    from rich.table import Table

    from llmloop.data.database import open_workspace_database
    from llmloop.eval.leaderboard import leaderboard_from_store

    loaded = [_load_report(path) for path in reports]
    board = leaderboard_from_store(open_workspace_database(), loaded, bootstrap=bootstrap, seed=seed, include_saved=saved)
    table = Table(title=f"{board.n_battles} battles (arena {board.sources.get('arena', 0)}, judge {board.sources.get('judge', 0)})")
    for col in ("rank", "version", "rating", "95% CI", "battles", "wins"):
        table.add_column(col)
    for i, r in enumerate(board.ratings, 1):
        table.add_row(str(i), r.model, f"{r.rating:.0f}", f"{r.ci_low:.0f}–{r.ci_high:.0f}", str(r.battles), f"{r.wins:g}")
    console.print(table)
    if out:
        out.write_text(json.dumps({"method": board.method, "n_battles": board.n_battles, "sources": board.sources,
                                   "ratings": board.rows()}, indent=2), encoding="utf-8")
        console.print(f"leaderboard: {out}")


@app.command("rm-quality")
def rm_quality(
    scores: Path | None = typer.Argument(None, help="JSONL of already-scored held-out pairs: {\"chosen_score\": float, \"rejected_score\": float}"),
    reward_model: Path | None = typer.Option(None, help="Score a held-out preference set with this reward model (T4 output or its LoRA adapter)"),
    data: str | None = typer.Option(None, help="With --reward-model: a stored preference dataset NAME or NAME@v1.2 or a JSONL of "
                                    "{\"prompt\", \"chosen\", \"rejected\"} (text or messages)"),
) -> None:
    """Reward-model quality (E9): pairwise accuracy, Kendall τ and Spearman ρ on a held-out preference set."""
    from llmloop.eval.rm_quality import read_preference_pairs, reward_model_quality, score_pairs

    if (scores is None) == (reward_model is None) or (reward_model is not None) != (data is not None):
        raise EvalInputError("pass either SCORES (a scored JSONL) or --reward-model PATH with --data PREFERENCES")
    if scores is not None:
        from llmloop.eval.user_files import read_jsonl

        chosen, rejected = [], []
        for where, row in read_jsonl(scores, "each line needs chosen_score and rejected_score"):
            pair = [_number(row.get(k)) if isinstance(row, dict) else None for k in ("chosen_score", "rejected_score")]
            if None in pair:
                raise EvalInputError(f"{where}: each line needs chosen_score and rejected_score (numbers)")
            chosen.append(pair[0])
            rejected.append(pair[1])
    else:
        from llmloop.data.database import open_workspace_database
        from llmloop.eval.rm_judge import RewardModelJudge

        pairs = read_preference_pairs(data, None if Path(data).exists() else open_workspace_database())
        with console.status(f"scoring {len(pairs)} pairs with {reward_model}"):
            chosen, rejected = score_pairs(RewardModelJudge(reward_model), pairs)
    q = reward_model_quality(chosen, rejected)
    console.print_json(json.dumps(q.__dict__))


@app.command("perplexity")
def perplexity(
    version: str = typer.Argument(..., help="Version, alias or checkpoint folder"),
    data: str = typer.Option(..., help="Texts: JSONL of {\"text\": str} or a stored pt dataset NAME or NAME@v1.2"),
    max_length: int = typer.Option(1024, help="Tokens per text (longer texts are truncated)"),
) -> None:
    """Perplexity of a model on a text set (token-weighted over the whole set)."""
    from llmloop.data.database import open_workspace_database
    from llmloop.eval.evalset import load_texts
    from llmloop.eval.text_metrics import version_perplexity
    from llmloop.eval.subjects import resolve_model

    db = open_workspace_database()
    v = resolve_model(db, version)
    texts, described = load_texts(data, db)
    with console.status(f"perplexity of {v.name} on {len(texts)} texts"):
        ppl = version_perplexity(v.base_model, texts, v.adapter_path, max_length=max_length)
    console.print(f"{v.name} on {described} ({len(texts)} texts): perplexity [bold]{ppl:.3f}[/bold]")


@app.command("ab")
def ab(
    candidate: str = typer.Argument(..., help="Version under test (or alias), e.g. v1.1 or candidate"),
    incumbent: str = typer.Argument(..., help="Version it is compared against (or alias), e.g. production"),
    alpha: float = typer.Option(0.05, help="Significance level; the p-values stay valid however often you look"),
    out: Path | None = typer.Option(None, help="Write the report as JSON here"),
) -> None:
    """Live A/B: thumbs-up ratio and vote share per version, with always-valid sequential p-values."""
    from dataclasses import asdict

    from rich.table import Table

    from llmloop.data.database import open_workspace_database
    from llmloop.eval.ab import ab_report
    from llmloop.models import registry

    db = open_workspace_database()
    x, y = registry.get(db, candidate).name, registry.get(db, incumbent).name
    r = ab_report(db, x, y, alpha=alpha)
    table = Table(title=f"{x} vs {y}")
    for col in ("version", "👍", "👎", "up ratio", "battles", "vote share"):
        table.add_column(col)
    for s in r.versions:
        table.add_row(s.version, str(s.thumbs_up), str(s.thumbs_down), "–" if s.up_ratio is None else f"{s.up_ratio:.3f}",
                      str(s.votes), "–" if s.vote_share is None else f"{s.vote_share:.3f}")
    console.print(table)
    verdict = lambda p: f"p = {p:.4f} ({'significant' if p <= alpha else 'not significant'} at {alpha})"  # noqa: E731
    console.print(f"thumbs-up ratio equal? {verdict(r.thumbs_p)}\nhead to head {r.head_to_head}: share ½? {verdict(r.votes_p)}")
    if out:
        out.write_text(json.dumps(asdict(r), indent=2), encoding="utf-8")


@app.command("run")
def run(
    ctx: typer.Context,
    versions: list[str] | None = typer.Argument(None, help="Models under test side by side: versions or aliases, checkpoint "
                                                "folders, or (with --endpoint) model names at that endpoint"),
    config: Path | None = typer.Option(None, "--config", "-c", help=CONFIG_HELP),
    data: str | None = typer.Option(None, help="Eval set: JSONL {\"prompt\"|\"messages\", \"reference\"?, \"label\"?, \"metadata\"?} "
                             "or a stored dataset NAME or NAME@v1.2 (kind prompt, sft or preference)"),
    out_dir: Path = typer.Option(Path("eval-report"), help="Folder for report.html, report.json, report.csv and generations.jsonl"),
    max_tokens: int = typer.Option(128, help="Longest answer per prompt"),
    temperature: float = typer.Option(0.0, help="Sampling temperature (0: greedy, reproducible)"),
    seed: int = typer.Option(1234, help="Sampling seed"),
    batch_size: int = typer.Option(8, min=1, help="Prompts generated together"),
    endpoint: str | None = typer.Option(None, help="Evaluate models of this OpenAI-compatible endpoint instead "
                                        "(e.g. http://127.0.0.1:8000/v1); VERSIONS are then its model names"),
    endpoint_key_env: str | None = typer.Option(None, help="Environment variable holding the endpoint's API key"),
    timeout: float = typer.Option(60.0, help="Per-request timeout for --endpoint, seconds"),
    attempts: int = typer.Option(3, help="Tries per --endpoint request (timeouts, 5xx and 429 are retried)"),
    concurrency: int = typer.Option(8, help="--endpoint requests in flight at once"),
    judge: str | None = typer.Option(None, help="Also score every answer: an LLM judge 'openai:MODEL@BASE_URL' (accuracy, "
                                     "relevance, fluency, professionalism 1–5) or a reward model 'rm:/path/to/reward_model'"),
    judge_key_env: str | None = typer.Option(None, help="Environment variable holding the judge's API key"),
    judge_templates: Path | None = typer.Option(None, help="YAML with a 'pointwise' judge prompt template"),
    judge_timeout: float = typer.Option(60.0, help="Per-request timeout for the judge, seconds"),
    judge_attempts: int = typer.Option(3, help="Tries per judgement (transport errors and unusable JSON both count)"),
    fresh: bool = typer.Option(False, help="Discard answers saved in OUT_DIR by an earlier run instead of resuming it"),
    device: str | None = typer.Option(None, help="Device for local models (cpu, cuda); default: cuda when available"),
    group_by: str | None = typer.Option(None, help="A metadata key (e.g. topic, lang): every score is also reported per value of it"),
) -> None:
    """Evaluate N models on one eval set: metrics, judge scores, latency, tokens/s, memory → HTML/JSON/CSV. Resumable."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.table import Table

    from llmloop.eval.failures import describe
    from llmloop.eval.render import table_rows
    from llmloop.eval.eval_run import EvalRunConfig, evaluate

    cfg = _config(ctx, EvalRunConfig, config, dict(
        versions=versions, data=data, out_dir=out_dir, max_tokens=max_tokens, temperature=temperature, seed=seed,
        batch_size=batch_size, endpoint=endpoint, endpoint_key_env=endpoint_key_env, timeout=timeout, attempts=attempts,
        concurrency=concurrency, judge=judge, judge_key_env=judge_key_env, judge_templates=judge_templates,
        judge_timeout=judge_timeout, judge_attempts=judge_attempts, fresh=fresh, device=device,
        group_by=group_by),
        {"judge_timeout": "judge_timeout_s", "timeout": "timeout_s"})
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err) as bar:
        task = bar.add_task("generating" + (" and judging" if cfg.judge else ""), total=None)
        outcome = evaluate(cfg, on_progress=lambda d, t: bar.update(task, completed=d, total=t))
    report = outcome.report
    if outcome.resumed:
        console.print(f"resumed: {outcome.resumed} answers reused from {cfg.out_dir / 'generations.jsonl'}")
    rows_out = table_rows(report)
    # one column per model, one row per measure: side by side, and readable however many metrics there are
    table = Table(title=f"{report.eval_set} · {len(report.rows)} rows")
    table.add_column("")
    for r in rows_out:
        table.add_column(str(r["version"]), justify="right", overflow="fold")
    for key in [k for k in rows_out[0] if k != "version"]:
        table.add_row(key, *["–" if r[key] is None or r[key] != r[key] else f"{r[key]:.4g}" if isinstance(r[key], float)
                             else str(r[key]) for r in rows_out])
    console.print(table)
    for v in report.versions:
        text = "; ".join(x for x in (describe(v.failures) and f"generation {describe(v.failures)}",
                                     describe(v.judge_failures) and f"judge {describe(v.judge_failures)}") if x)
        if text:
            err.print(f"{v.version}: {text} (reasons per sample in report.json)", highlight=False)
    console.print(f"report: {outcome.files['html']}")


@app.command("import")
def import_set(
    file: Path = typer.Argument(..., help="Eval set JSONL: {\"prompt\"|\"messages\", \"reference\"?, \"label\"?, \"metadata\"?} per line"),
    name: str = typer.Option(..., help="Dataset name; each import is its next immutable version (v1.0, v1.1 …)"),
    note: str = typer.Option("", help="Note kept with the version"),
) -> None:
    """Store an eval set in the data store (a prompt dataset), validated row by row; use it as --data NAME or NAME@v1.0."""
    from llmloop.data.database import open_workspace_database
    from llmloop.eval.evalset import import_eval_set

    v = import_eval_set(open_workspace_database(), file, name, note=note)
    console.print(f"{v.dataset}@{v.version}: {v.row_count} eval rows (sha256 {v.content_hash[:12]})")


@app.command("review-export")
def review_export(
    report: Path = typer.Argument(..., help="A report written by `llmloop eval compare --out`"),
    sheet: Path = typer.Option(..., help="Sheet to write: review.csv or review.xlsx (a .key.json is written beside it)"),
    seed: int = typer.Option(0, help="Seed of the per-row answer order"),
) -> None:
    """Blind side-by-side sheet for human reviewers (answers shuffled per row, versions hidden)."""
    from llmloop.eval.review import export_review

    key = export_review(_load_report(report), sheet, seed=seed)
    console.print(f"sheet: {sheet}\nkey (keep it from reviewers): {key}")


@app.command("review-import")
def review_import(
    sheet: Path = typer.Argument(..., help="The filled sheet (its .key.json must lie beside it)"),
    reviewer: str = typer.Option("human", help="Name recorded as the judge"),
    out: Path | None = typer.Option(None, help="Write the human win-rate report as JSON (usable by `eval leaderboard --report`)"),
    save: bool = typer.Option(True, help="Keep the human verdicts as a comparison in the workspace, so `eval leaderboard` counts them"),
) -> None:
    """Filled review sheet → win rate with 95% CI, validated row by row; mixed into the leaderboard."""
    from dataclasses import asdict

    from llmloop.eval.review import import_review

    r = import_review(sheet, reviewer=reviewer)
    if save:
        from llmloop.data.database import open_workspace_database
        from llmloop.eval.leaderboard import save_comparison

        save_comparison(open_workspace_database(), r)
    console.print(f"{r.version_x} vs {r.version_y} by {r.judge}: win rate [bold]{r.win_rate:.3f}[/bold] "
                  f"(95% CI {r.ci_low:.3f}–{r.ci_high:.3f}; {r.wins} wins, {r.losses} losses, {r.ties} ties)")
    from llmloop.eval.review import human_scores

    scored = {v: s for v, s in human_scores(sheet).items() if s["n"]}
    if scored:
        console.print("human scores (1–5): " + ", ".join(f"{v} {s['mean']:.2f} (n={s['n']})" for v, s in scored.items()))
    if out:
        out.write_text(json.dumps(asdict(r), indent=2, ensure_ascii=False, default=str), encoding="utf-8")


@app.command("judge")
def judge_answers(
    answers: Path = typer.Argument(..., help="JSONL: {\"prompt\"|\"messages\", \"answer\": str, \"reference\"?: str}"),
    judge_url: str = typer.Option(..., help="OpenAI-compatible base URL of the judge, e.g. http://127.0.0.1:8000/v1"),
    judge_model: str = typer.Option(..., help="Judge model name sent in each request"),
    judge_key_env: str | None = typer.Option(None, help="Environment variable holding the judge's API key"),
    judge_templates: Path | None = typer.Option(None, help="YAML with a 'pointwise' prompt template"),
    timeout: float = typer.Option(60.0, help="Per-request timeout in seconds"),
    out: Path | None = typer.Option(None, help="Write every sample's scores (or failure reason) as JSONL here"),
) -> None:
    """Pointwise LLM judge: accuracy, relevance, fluency, professionalism (1–5) with reasons."""
    from pydantic import ValidationError

    from llmloop.cli.config_flags import flag_errors
    from llmloop.eval.llm_judge import JudgeEndpoint, JudgeTemplates, LLMJudge
    from llmloop.eval.user_files import read_jsonl

    needs = "each line needs \"prompt\" or \"messages\", and \"answer\""
    items, refs = [], []
    for where, row in read_jsonl(answers, needs):
        if not isinstance(row, dict) or "answer" not in row or not (row.get("messages") or "prompt" in row):
            raise EvalInputError(f"{where}: {needs}")
        items.append((row.get("messages") or [{"role": "user", "content": row["prompt"]}], str(row["answer"])))
        refs.append(row.get("reference"))
    if not items:
        raise EvalInputError(f"{answers}: no rows ({needs})")
    try:
        endpoint = JudgeEndpoint(base_url=judge_url, model=judge_model, api_key_env=judge_key_env, timeout_s=timeout)
    except ValidationError as e:
        raise EvalInputError("; ".join(flag_errors(e, "judge_", {
            "base_url": "--judge-url", "api_key_env": "--judge-key-env", "timeout_s": "--timeout"}))) from None
    judge = LLMJudge(endpoint, JudgeTemplates.from_file(judge_templates) if judge_templates else None)
    try:
        report = judge.score(items, refs)
    finally:
        judge.close()
    console.print_json(json.dumps({"judge": report.judge, "n": report.n, "failed": report.failed, "means": report.means}))
    if report.failed:
        err.print(f"{report.failed} of {report.n} samples could not be judged; e.g. {report.failure_reasons[0]}", highlight=False)
    if out:
        with out.open("w", encoding="utf-8") as f:
            for r in report.results:
                f.write(json.dumps({"question": r.question, "answer": r.answer, "error": r.error,
                                    "scores": r.scores.model_dump() if r.scores else None}, ensure_ascii=False) + "\n")


@app.command("benchmark")
def benchmark(
    version: str = typer.Argument(..., help="Version, alias or checkpoint folder to benchmark"),
    task: list[str] = typer.Option(..., help="lm-evaluation-harness task (repeatable), e.g. gsm8k, mmlu, ceval-valid"),
    include_path: Path | None = typer.Option(None, help="Folder of your own harness task YAMLs"),
    limit: int | None = typer.Option(None, help="Evaluate only the first N examples per task"),
    num_fewshot: int | None = typer.Option(None, help="Few-shot examples (default: the task's own)"),
    batch_size: int = typer.Option(8, help="Harness batch size"),
) -> None:
    """Standard benchmarks through lm-evaluation-harness (optional extra: pip install lm-eval)."""
    from llmloop.data.database import open_workspace_database
    from llmloop.eval.benchmark import run_benchmark
    from llmloop.eval.subjects import resolve_model

    v = resolve_model(open_workspace_database(), version)
    results = run_benchmark(v.base_model, task, adapter_path=v.adapter_path, include_path=include_path,
                            limit=limit, batch_size=batch_size, num_fewshot=num_fewshot)
    for r in results:
        console.print(f"{v.name} {r.task} (n={r.n}): " + ", ".join(f"{k} {x:.4f}" for k, x in sorted(r.metrics.items())))
