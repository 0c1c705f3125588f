"""The Evaluate tab: judged comparisons (win rate with its 95% interval) and evaluation runs of N
models as background tasks, the leaderboard, per-sample drill-down, report downloads, and the
human-review sheet round trip — each a call to ``/api/v1/eval`` or ``/api/v1/tasks``."""

from __future__ import annotations

from typing import Any

import gradio as gr  # module level: event-data type hints (gr.LikeData, gr.SelectData) must resolve

from llmloop.ui.client import GatewayError
from llmloop.ui.widgets import Ctx, empty_table, progress_html, table
from llmloop.ui.error_text import error_text
from llmloop.ui.i18n import t


def board_rows(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ratings rounded to whole points, the 95% interval beside them (never out of view)."""
    out = []
    for r in found:
        lo, hi = r.get("ci_low"), r.get("ci_high")
        out.append({**r, "rating": round(r["rating"]) if r.get("rating") is not None else None,
                    "ci": f"{round(lo)} – {round(hi)}" if lo is not None and hi is not None else "—"})
    return out


def comparison_rows(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in found:
        lo, hi = r.get("ci_low"), r.get("ci_high")
        rate = r.get("win_rate")
        out.append({**r, "win_rate": f"{100 * rate:.0f}%" if rate is not None else "—",
                    "ci": f"{100 * lo:.0f}% – {100 * hi:.0f}%" if lo is not None and hi is not None else "—"})
    return out

COMPARISON_COLUMNS = ["id", "version_x", "version_y", "win_rate", "ci", "n", "wins", "losses", "ties", "judge"]
BOARD_COLUMNS = ["rank", "model", "rating", "ci", "battles", "wins"]
SAMPLE_COLUMNS = ["prompt", "answer_x", "answer_y", "winner", "reason"]


def build(ctx: Ctx, lang: Any):  # noqa: ANN201 - returns the tab's loader
    import gradio as gr

    L, c = ctx.label, ctx.client
    with gr.Accordion(ctx.t("eval_new"), open=True, visible=ctx.admin) as new_box:
        L(new_box, "eval_new")
        with gr.Row():
            challenger = L(gr.Textbox("candidate", label=ctx.t("eval_challenger")), "eval_challenger")
            incumbent = L(gr.Textbox("production", label=ctx.t("eval_incumbent")), "eval_incumbent")
            prompts = L(gr.Textbox(label=ctx.t("eval_prompts")), "eval_prompts")
            judge = L(gr.Textbox("python:llmloop.demo.users:preference_score", label=ctx.t("eval_judge")), "eval_judge")
            compare = L(gr.Button(ctx.t("eval_compare"), variant="primary"), "eval_compare", "value")
        with gr.Row():
            versions = L(gr.Textbox("production, candidate", label=ctx.t("eval_versions")), "eval_versions")
            data = L(gr.Textbox(label=ctx.t("eval_data")), "eval_data")
            run = L(gr.Button(ctx.t("eval_run")), "eval_run", "value")
    task_id = gr.State(None)
    progress = gr.HTML(elem_id="eval-progress")
    status = gr.Markdown(elem_id="eval-status")
    timer = gr.Timer(1.5, active=False)
    board = ctx.frame(BOARD_COLUMNS, "eval_leaderboard", elem_id="eval-leaderboard")
    board_note = gr.Markdown(elem_id="eval-leaderboard-note")
    L(gr.Markdown(ctx.t("eval_pick_help")), "eval_pick_help", "value")
    comparisons = ctx.frame(COMPARISON_COLUMNS, "eval_comparisons", elem_id="eval-comparisons", wrap=True)
    refresh = L(gr.Button(ctx.t("refresh"), elem_id="eval-refresh"), "refresh", "value")
    with gr.Row():
        pick = L(gr.Textbox(label=ctx.t("eval_pick")), "eval_pick")
        drill = L(gr.Button(ctx.t("eval_drill")), "eval_drill", "value")
        sheet = L(gr.Button(ctx.t("eval_review_export")), "eval_review_export", "value")
    samples = ctx.frame(SAMPLE_COLUMNS, "eval_samples", wrap=True, elem_id="eval-samples")
    with gr.Row():
        review_id = L(gr.Textbox(label=ctx.t("eval_review_id")), "eval_review_id")
        filled_button = L(gr.UploadButton(ctx.t("eval_review_file"), file_types=[".csv", ".xlsx"],
                                          elem_id="eval-review-file"), "eval_review_file", "label")
        filled = gr.State(None)  # the filled sheet's path (an upload button: its label is ours, in both languages)
        review_import = L(gr.Button(ctx.t("eval_review_import")), "eval_review_import", "value")
    with gr.Row():
        run_id = L(gr.Textbox(label=ctx.t("eval_run_id")), "eval_run_id")
        fmt = L(gr.Dropdown(["html", "json", "csv"], value="html", label=ctx.t("eval_report_format")), "eval_report_format")
        report = L(gr.Button(ctx.t("eval_report")), "eval_report", "value")
    download = L(gr.File(label=ctx.t("download"), interactive=False, elem_id="eval-download"), "download")

    def load(lng: str | None = None) -> tuple:
        lng = lng or ctx.lang0
        try:
            comps = table(comparison_rows(c.get("/eval/comparisons")), COMPARISON_COLUMNS, lng)
        except GatewayError:
            comps = empty_table(COMPARISON_COLUMNS, lng)
        note = ""
        try:
            board_ = c.get("/eval/leaderboard", bootstrap=100)
            ranks = table(board_rows(board_["rows"]), BOARD_COLUMNS, lng, numbers=1)
            src = board_.get("sources") or {}
            note = t("eval_board_sources", lng, arena=src.get("arena", 0), judge=src.get("judge", 0))
        except GatewayError as e:  # no battle between two versions yet is said so; anything else is an error
            ranks = empty_table(BOARD_COLUMNS, lng)
            note = t("eval_no_battles", lng) if e.code == "no_battles" else error_text(e, lng)
        return comps, ranks, note

    def started(task: dict[str, Any], lng: str) -> tuple:
        return task["id"], gr.Timer(active=True), progress_html(task, lng), ""

    def on_compare(x: str, y: str, p: str, j: str, lng: str) -> tuple:
        try:
            return started(c.post("/eval/comparisons", {"config": {"challenger": x, "incumbent": y, "prompts": p,
                                                                  "judge": j}}), lng)
        except GatewayError as e:
            return None, gr.Timer(active=False), "", error_text(e, lng)

    def on_run(vs: str, d: str, lng: str) -> tuple:
        names = [v.strip() for v in vs.replace("，", ",").split(",") if v.strip()]
        try:
            return started(c.post("/eval/runs", {"config": {"versions": names, "data": d}}), lng)
        except GatewayError as e:
            return None, gr.Timer(active=False), "", error_text(e, lng)

    def on_tick(tid: str | None, lng: str) -> tuple:
        skip4 = [gr.skip()] * 4
        if not tid:
            return gr.Timer(active=False), gr.skip(), *skip4, gr.skip()
        try:
            task = c.get(f"/tasks/{tid}")
        except GatewayError as e:
            return gr.Timer(active=False), error_text(e, lng), *skip4, gr.skip()
        if task["status"] in ("queued", "running"):
            return gr.Timer(active=True), progress_html(task, lng), *skip4, gr.skip()
        result = task.get("result") or {}
        note = t("eval_done", lng, id=result.get("comparison_id") or result.get("run_id") or "?") \
            if task["status"] == "succeeded" else ""
        comps, ranks, _ = load(lng)
        # the new comparison's / run's id goes where the next step needs it (no copying by hand)
        return (gr.Timer(active=False), progress_html(task, lng), comps, ranks,
                result.get("comparison_id") or gr.skip(), result.get("run_id") or gr.skip(), note)

    def on_drill(cid: str, lng: str) -> tuple:
        try:
            found = c.get(f"/eval/comparisons/{cid.strip()}")
        except GatewayError as e:
            return gr.skip(), error_text(e, lng)
        for s in found["samples"]:
            s["prompt"] = " / ".join(m.get("content", "") for m in s["prompt"])
        return table(found["samples"], SAMPLE_COLUMNS, lng), ""

    def on_sheet(cid: str, lng: str) -> tuple:
        try:
            path = c.download(f"/eval/comparisons/{cid.strip()}/review-sheet", method="POST")
        except GatewayError as e:
            return gr.skip(), gr.skip(), error_text(e, lng)
        return str(path), path.stem, t("eval_sheet_ready", lng, id=path.stem)

    def on_import(rid: str, path: str | None, lng: str) -> str:
        if not path:
            return t("data_no_file", lng)
        try:
            r = c.upload(f"/eval/reviews/{rid.strip()}", path)
        except GatewayError as e:
            return error_text(e, lng)
        return t("eval_review_saved", lng, id=r["comparison_id"], rate=f"{r['win_rate']:.2f}")

    def on_report(rid: str, f: str, lng: str) -> tuple:
        try:
            return str(c.download(f"/eval/runs/{rid.strip()}/download", fmt=f)), ""
        except GatewayError as e:
            return gr.skip(), error_text(e, lng)

    compare.click(on_compare, [challenger, incumbent, prompts, judge, lang], [task_id, timer, progress, status])
    run.click(on_run, [versions, data, lang], [task_id, timer, progress, status])
    timer.tick(on_tick, [task_id, lang], [timer, progress, comparisons, board, pick, run_id, status])
    refresh.click(load, lang, [comparisons, board, board_note])

    def on_pick(lng: str, evt: gr.SelectData) -> tuple:
        """A click on a comparison: its id in the box and its samples shown (no id copied by hand)."""
        row = evt.row_value or []
        cid = str(row[0]) if row else ""
        return (cid, *on_drill(cid, lng)) if cid else (gr.skip(), gr.skip(), gr.skip())

    comparisons.select(on_pick, lang, [pick, samples, status])
    drill.click(on_drill, [pick, lang], [samples, status])
    sheet.click(on_sheet, [pick, lang], [download, review_id, status])
    filled_button.upload(lambda path: path, filled_button, filled)
    review_import.click(on_import, [review_id, filled, lang], status)
    report.click(on_report, [run_id, fmt, lang], [download, status])
    return ctx.on_switch(load, [comparisons, board, board_note])
