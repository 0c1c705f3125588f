"""The Data tab: upload (row-level errors), validate, datasets and versions, preview, stats and
quality, dedup, filter, diff, export — each a call to ``/api/v1/data``."""

from __future__ import annotations

from typing import Any

import gradio as gr  # module level: gr.SelectData hints must resolve

from llmloop.ui.client import GatewayError
from llmloop.ui.widgets import Ctx, fail, progress_html, table
from llmloop.ui.error_text import error_text
from llmloop.ui.i18n import t

DATASET_COLUMNS = ["name", "kind", "versions", "latest", "rows"]
VERSION_COLUMNS = ["version", "kind", "row_count", "source_format", "note", "created_by", "created_at"]
PROBLEM_COLUMNS = ["row", "field", "problem", "seen", "fix"]
FORMATS = ["auto", "alpaca", "sharegpt", "openai", "trl", "pt", "kto", "grpo"]


PAGE_ROWS = 10


def cell_text(value: Any) -> str:
    """A row's field as one readable cell: chat turns as "role: text" lines, not a JSON tree."""
    if isinstance(value, list) and value and all(isinstance(m, dict) and "content" in m for m in value):
        return "\n".join(f"{m.get('role', '?')}: {m.get('content', '')}" for m in value)
    if isinstance(value, (list, dict)):
        import json

        return json.dumps(value, ensure_ascii=False)
    return "" if value is None else str(value)


def curated(r: dict[str, Any], lang: str) -> str:
    """A dedup or filter result as a sentence: what it kept, and the new version (if any)."""
    src = f"{r['source']['dataset']}@{r['source']['version']}"
    if not r.get("version"):
        text = t("data_nothing_dropped", lang, source=src, rows=r["rows_in"])
    else:
        text = t("data_curated", lang, source=src, version=r["version"]["version"], kept=r["rows_kept"], rows=r["rows_in"])
    if r.get("per_rule"):
        text += " " + ", ".join(f"{rule}: {n}" for rule, n in r["per_rule"].items() if n)
    return text


def stats_facts(stats: dict[str, Any], quality: dict[str, Any], lang: str) -> str:
    """Stats and the quality report as one table in ``lang`` (no server paths, rounded)."""
    from llmloop.ui.widgets import facts

    lengths = stats.get("lengths") or {}
    unit = t("unit_tokens", lang) if stats.get("unit") == "tokens" else t("unit_words", lang)
    pairs: list[tuple[str, Any]] = [
        ("stat_rows", stats.get("rows")),
        ("stat_lengths", ", ".join(f"{k} {v:g}" for k, v in lengths.items()) + f" ({unit})" if lengths else None),
        ("stat_histogram", ", ".join(f"{b}: {n}" for b, n in stats.get("histogram") or [] if n)),
        ("stat_duplicates", f"{stats.get('duplicates', 0)} ({100 * (stats.get('duplicate_rate') or 0):.1f}%)"),
        ("stat_chars", ", ".join(f"{k} {v:g}" for k, v in (quality.get("chars") or {}).items())),
        ("stat_distinct", ", ".join(f"{k}-gram {v:.2f}" for k, v in (quality.get("distinct") or {}).items())),
        ("stat_languages", ", ".join(f"{k}: {v}" for k, v in (quality.get("languages") or {}).items())),
        ("stat_top_ngrams", ", ".join(f"{g} ({n})" for g, n in (quality.get("top_ngrams") or [])[:5])),
    ]
    warnings = [*(stats.get("warnings") or []), *(quality.get("warnings") or [])]
    if warnings:
        from llmloop.ui.error_text import for_page

        pairs.append(("stat_warnings", "; ".join(for_page(w, lang) for w in warnings)))
    return facts(pairs, lang)


def build(ctx: Ctx, lang: Any) -> None:
    import gradio as gr

    L, c = ctx.label, ctx.client
    chosen = gr.State(None)  # the uploaded file's path on the UI's machine
    with gr.Row():
        with gr.Column(scale=1):
            file = L(gr.UploadButton(ctx.t("data_pick_file"), file_types=[".jsonl", ".json", ".csv", ".txt", ".parquet"],
                                     elem_id="data-file"), "data_pick_file", "label")
            file_name = L(gr.Markdown(ctx.t("data_no_file_yet"), elem_id="data-file-name"), "data_no_file_yet", "value")
            name = L(gr.Textbox(label=ctx.t("data_name"), elem_id="data-name"), "data_name")
            fmt = L(gr.Dropdown(FORMATS, value="auto", label=ctx.t("data_format"), elem_id="data-format"), "data_format")
            skip = L(gr.Checkbox(False, label=ctx.t("data_skip_invalid"), elem_id="data-skip-invalid"), "data_skip_invalid")
            with gr.Row():
                validate = L(gr.Button(ctx.t("data_validate"), elem_id="data-validate"), "data_validate", "value")
                upload = L(gr.Button(ctx.t("data_upload"), variant="primary", elem_id="data-upload"), "data_upload", "value")
        with gr.Column(scale=2):
            status = gr.Markdown(elem_id="data-status")
            problems = ctx.frame(PROBLEM_COLUMNS, "data_problems", wrap=True, elem_id="data-problems",
                                 column_widths=["8%", "14%", "30%", "18%", "30%"])
    datasets = ctx.frame(DATASET_COLUMNS, "data_list", elem_id="data-list")
    with gr.Row():
        ref = L(gr.Dropdown([], label=ctx.t("data_ref"), elem_id="data-ref", scale=2, allow_custom_value=True),
                "data_ref")
        refresh = L(gr.Button(ctx.t("refresh"), elem_id="data-refresh"), "refresh", "value")
        show = L(gr.Button(ctx.t("data_show"), elem_id="data-show"), "data_show", "value")
    versions = ctx.frame(VERSION_COLUMNS, "data_versions", elem_id="data-versions", wrap=True)
    with gr.Row():
        prev_page = L(gr.Button(ctx.t("data_prev"), elem_id="data-prev", size="sm"), "data_prev", "value")
        page = L(gr.Number(1, precision=0, minimum=1, label=ctx.t("data_page"), elem_id="data-page"), "data_page")
        next_page = L(gr.Button(ctx.t("data_next"), elem_id="data-next", size="sm"), "data_next", "value")
        page_note = gr.Markdown(elem_id="data-page-note")
    preview = L(gr.Dataframe(label=ctx.t("data_preview"), interactive=False, wrap=True, elem_id="data-preview",
                             visible=False), "data_preview")  # shown with the first page of a dataset
    L(gr.Markdown(f"### {ctx.t('data_stats')}"), "data_stats_title", "value")
    report = gr.Markdown(elem_id="data-stats")
    with gr.Accordion(ctx.t("data_curate"), open=False) as curate:
        L(curate, "data_curate")
        with gr.Row():
            method = L(gr.Dropdown(["exact", "minhash", "semantic"], value="exact", label=ctx.t("data_dedup_method")),
                       "data_dedup_method")
            threshold = L(gr.Slider(0.5, 1.0, value=0.9, step=0.01, label=ctx.t("data_threshold")), "data_threshold")
            dedup = L(gr.Button(ctx.t("data_dedup"), elem_id="data-dedup"), "data_dedup", "value")
        with gr.Row():
            min_chars = L(gr.Number(label=ctx.t("data_min_chars"), precision=0), "data_min_chars")
            max_chars = L(gr.Number(label=ctx.t("data_max_chars"), precision=0), "data_max_chars")
            words = L(gr.Textbox(label=ctx.t("data_sensitive")), "data_sensitive")
            filt = L(gr.Button(ctx.t("data_filter"), elem_id="data-filter"), "data_filter", "value")
        with gr.Row():
            old = L(gr.Textbox(label=ctx.t("data_diff_old")), "data_diff_old")
            new = L(gr.Textbox(label=ctx.t("data_diff_new")), "data_diff_new")
            diff = L(gr.Button(ctx.t("data_diff")), "data_diff", "value")
        with gr.Row():
            target = L(gr.Dropdown(["jsonl", "openai", "trl", "llamafactory", "hf"], value="jsonl",
                                   label=ctx.t("data_export_to")), "data_export_to")
            export = L(gr.Button(ctx.t("data_export"), elem_id="data-export"), "data_export", "value")
            exported = L(gr.File(label=ctx.t("download"), interactive=False, elem_id="data-download"), "download")
        result = gr.Markdown(elem_id="data-result")
    with gr.Accordion(ctx.t("data_generate"), open=False, visible=ctx.admin) as gen_box:
        L(gen_box, "data_generate")
        with gr.Row():
            gen_method = L(gr.Dropdown(["self-instruct", "evol-instruct", "paraphrase"], value="self-instruct",
                                       label=ctx.t("data_gen_method")), "data_gen_method")
            gen_seeds = L(gr.Textbox(label=ctx.t("data_gen_seeds"), elem_id="gen-seeds"), "data_gen_seeds")
            gen_name = L(gr.Textbox(label=ctx.t("data_gen_name"), elem_id="gen-name"), "data_gen_name")
            gen_num = L(gr.Number(20, label=ctx.t("data_gen_num"), precision=0), "data_gen_num")
        with gr.Row():
            gen_kind = L(gr.Dropdown(["template", "openai"], value="template", label=ctx.t("data_gen_generator")),
                         "data_gen_generator")
            gen_url = L(gr.Textbox(label=ctx.t("data_gen_url")), "data_gen_url")
            gen_model = L(gr.Textbox(label=ctx.t("data_gen_model")), "data_gen_model")
            gen_go = L(gr.Button(ctx.t("data_gen_go"), variant="primary", elem_id="gen-go"), "data_gen_go", "value")
        gen_task = gr.State(None)
        gen_progress = gr.HTML(elem_id="gen-progress")
        gen_timer = gr.Timer(1.0, active=False)

    def summaries() -> list[dict[str, Any]]:
        try:
            return list(c.get("/data"))
        except GatewayError:
            return []

    def list_all(lng: str | None = None) -> tuple:
        found = summaries()
        flat = [{"name": d["name"], "kind": d["kind"], "versions": d["versions"], "latest": d["latest"]["version"],
                 "rows": d["latest"].get("row_count")} for d in found]
        refs = [d["name"] for d in found]
        return table(flat, DATASET_COLUMNS, lng or ctx.lang0), gr.update(choices=refs)

    def on_file(path: str | None, lng: str) -> tuple:
        from pathlib import Path

        return path, t("data_file_chosen", lng, name=Path(path).name) if path else t("data_no_file_yet", lng)

    def problem_table(found: list[dict[str, Any]], lng: str) -> Any:
        from llmloop.ui.error_text import for_page

        for p in found:
            p["fix"] = for_page(str(p.get("fix", "")), lng)
            p["row"] = p.get("row") if p.get("row") is not None else t("data_whole_file", lng)
        return table(found, PROBLEM_COLUMNS, lng)

    def on_validate(path: str | None, fmt_: str, lng: str) -> tuple:
        if not path:
            return gr.skip(), ctx_t("data_no_file", lng)
        try:
            v = c.upload("/data/validate", path, format=fmt_)
        except GatewayError as e:
            return fail(e, lng, 2)
        if not v["format"]:
            return problem_table(v["problems"], lng), ctx_t("data_format_unknown", lng, rows=v["rows_read"])
        key = "data_valid" if not v["problems"] else "data_invalid"
        return problem_table(v["problems"], lng), ctx_t(key, lng, rows=v["rows_read"], valid=v["rows_valid"],
                                                        format=v["format"], kind=v["kind"] or "?")

    def on_upload(path: str | None, name_: str, fmt_: str, skip_: bool, lng: str) -> tuple:
        if not path:
            return gr.skip(), gr.skip(), gr.skip(), ctx_t("data_no_file", lng)
        if not (name_ or "").strip():
            return gr.skip(), gr.skip(), gr.skip(), ctx_t("data_name_needed", lng)
        try:
            r = c.upload("/data/upload", path, name=name_.strip(), format=fmt_, skip_invalid=str(bool(skip_)).lower())
        except GatewayError as e:
            try:  # the rows, as a table, next to the gateway's refusal
                found = problem_table(c.upload("/data/validate", path, format=fmt_)["problems"], lng)
            except GatewayError:
                found = gr.skip()
            return (found, gr.skip(), gr.skip(), error_text(e, lng))
        v = r["version"]
        note = ctx_t("data_uploaded", lng, name=v["dataset"], version=v["version"], rows=r["rows_kept"])
        if r.get("skipped"):
            note += " " + ctx_t("data_skipped", lng, n=len(r["skipped"]))
        return (problem_table(r.get("skipped") or [], lng), *list_all(lng), note)

    def rows_page(ref_: str, number: float | None, lng: str) -> tuple:
        number = max(1, int(number or 1))
        found = c.get(f"/data/{ref_}/rows", n=PAGE_ROWS, offset=(number - 1) * PAGE_ROWS)
        import pandas as pd

        columns = list(dict.fromkeys(k for r in found for k in r))
        frame = pd.DataFrame([[cell_text(r.get(k)) for k in columns] for r in found], columns=columns)
        return frame, number

    def on_show(ref_: str | None, lng: str) -> tuple:
        if not ref_:
            return (*[gr.skip()] * 5, ctx_t("data_pick_dataset", lng))
        try:
            name_ = ref_.split("@")[0]
            vs = list(reversed(c.get(f"/data/{name_}/versions")))
            frame, number = rows_page(ref_, 1, lng)
            shown = next((v for v in vs if v["version"] == ref_.partition("@")[2]), vs[0] if vs else {})
            total = shown.get("row_count") or 0
            return (table(vs, VERSION_COLUMNS, lng), gr.update(value=frame, visible=True), number,
                    page_text(number, total, lng),
                    stats_facts(c.get(f"/data/{ref_}/stats"), c.get(f"/data/{ref_}/quality"), lng), "")
        except GatewayError as e:
            return fail(e, lng, 6)

    def page_text(number: int, total: int, lng: str) -> str:
        pages = max(1, -(-total // PAGE_ROWS))
        return t("data_page_of", lng, page=number, pages=pages, rows=total)

    def on_page(ref_: str | None, number: float | None, step: int, lng: str) -> tuple:
        if not ref_:
            return gr.skip(), gr.skip(), gr.skip(), ctx_t("data_pick_dataset", lng)
        try:
            name_, _, version = ref_.partition("@")
            vs = c.get(f"/data/{name_}/versions")
            shown = next((v for v in vs if v["version"] == version), vs[-1] if vs else {})
            total = shown.get("row_count") or 0
            pages = max(1, -(-total // PAGE_ROWS))
            target = min(pages, max(1, int(number or 1) + step))
            frame, target = rows_page(ref_, target, lng)
            return frame, target, page_text(target, total, lng), ""
        except GatewayError as e:
            return fail(e, lng, 4)

    def on_dedup(ref_: str, m: str, th: float, lng: str) -> tuple:
        try:
            return curated(c.post(f"/data/{ref_}/dedup", {"method": m, "threshold": th}), lng), list_all(lng)[0], ""
        except GatewayError as e:
            return fail(e, lng, 3)

    def on_filter(ref_: str, lo: float | None, hi: float | None, w: str, lng: str) -> tuple:
        rules: dict[str, Any] = {}
        if lo:
            rules["min_chars"] = int(lo)
        if hi:
            rules["max_chars"] = int(hi)
        if w.strip():
            rules["sensitive_words"] = [x.strip() for x in w.replace("，", ",").split(",") if x.strip()]
        try:
            return curated(c.post(f"/data/{ref_}/filter", {"rules": rules}), lng), list_all(lng)[0], ""
        except GatewayError as e:
            return fail(e, lng, 3)

    def on_diff(a: str, b: str, lng: str) -> tuple:
        try:
            d = c.get("/data/diff", old=a, new=b)
            text = t("data_diff_result", lng, old=f"{d['old']['dataset']}@{d['old']['version']}",
                     new=f"{d['new']['dataset']}@{d['new']['version']}", added=len(d["added"]),
                     removed=len(d["removed"]), same=d["unchanged"])
            samples = [f"+ {cell_text(r)[:160]}" for r in d["added"][:5]] + [f"− {cell_text(r)[:160]}" for r in d["removed"][:5]]
            return text + ("\n\n" + "\n".join(f"    {x}" for x in samples) if samples else ""), ""
        except GatewayError as e:
            return fail(e, lng, 2)

    def on_export(ref_: str, to: str, lng: str) -> tuple:
        try:
            return str(c.download(f"/data/{ref_}/export", to=to)), ""
        except GatewayError as e:
            return fail(e, lng, 2)

    def on_generate(method_: str, seeds: str, name_: str, num: float | None, kind: str, url: str, model: str,
                    lng: str) -> tuple:
        generator: dict[str, Any] = {"kind": kind}
        if kind == "openai":
            generator.update(base_url=url or None, model=model or None)
        try:
            task = c.post("/data/generate", {"config": {"method": method_, "seeds": seeds, "name": name_,
                                                        "num": int(num or 20)}, "generator": generator})
        except GatewayError as e:
            return None, gr.Timer(active=False), error_text(e, lng)
        return task["id"], gr.Timer(active=True), progress_html(task, lng)

    def on_gen_tick(task_id: str | None, lng: str) -> tuple:
        if not task_id:
            return gr.Timer(active=False), gr.skip(), gr.skip()
        try:
            task = c.get(f"/tasks/{task_id}")
        except GatewayError as e:
            return gr.Timer(active=False), error_text(e, lng), gr.skip()
        running = task["status"] in ("queued", "running")
        return gr.Timer(active=running), progress_html(task, lng), gr.skip() if running else list_all(lng)[0]

    gen_go.click(on_generate, [gen_method, gen_seeds, gen_name, gen_num, gen_kind, gen_url, gen_model, lang],
                 [gen_task, gen_timer, gen_progress])
    gen_timer.tick(on_gen_tick, [gen_task, lang], [gen_timer, gen_progress, datasets])
    file.upload(on_file, [file, lang], [chosen, file_name])
    validate.click(on_validate, [chosen, fmt, lang], [problems, status])
    upload.click(on_upload, [chosen, name, fmt, skip, lang], [problems, datasets, ref, status])
    refresh.click(list_all, lang, [datasets, ref])
    show.click(on_show, [ref, lang], [versions, preview, page, page_note, report, status])
    ref.input(on_show, [ref, lang], [versions, preview, page, page_note, report, status])

    def on_version(ref_: str | None, lng: str, evt: gr.SelectData) -> tuple:
        """A click on a version: that version shown (name@version), no typing."""
        row = evt.row_value or []
        if not row or not ref_:
            return (gr.skip(), *[gr.skip()] * 6)
        chosen_ref = f"{ref_.split('@')[0]}@{row[0]}"
        return (gr.update(value=chosen_ref), *on_show(chosen_ref, lng))

    versions.select(on_version, [ref, lang], [ref, versions, preview, page, page_note, report, status])
    prev_page.click(lambda r, n, lng: on_page(r, n, -1, lng), [ref, page, lang], [preview, page, page_note, status])
    next_page.click(lambda r, n, lng: on_page(r, n, 1, lng), [ref, page, lang], [preview, page, page_note, status])
    page.submit(lambda r, n, lng: on_page(r, n, 0, lng), [ref, page, lang], [preview, page, page_note, status])
    dedup.click(on_dedup, [ref, method, threshold, lang], [result, datasets, status])
    filt.click(on_filter, [ref, min_chars, max_chars, words, lang], [result, datasets, status])
    diff.click(on_diff, [old, new, lang], [result, status])
    export.click(on_export, [ref, target, lang], [exported, status])
    return ctx.on_switch(list_all, [datasets, ref])


def ctx_t(key: str, lang: str, **fmt: Any) -> str:
    from llmloop.ui.i18n import t

    return t(key, lang, **fmt)
