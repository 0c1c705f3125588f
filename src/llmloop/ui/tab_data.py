"""The Data tab: upload (row-level errors), validate, datasets and versions, preview, stats and
quality, dedup, filter, diff, export — each a call to ``/api/v1/data``."""

from __future__ import annotations

from typing import Any

from llmloop.ui.client import GatewayError
from llmloop.ui.common import Ctx, fail, progress_html, rows

DATASET_COLUMNS = ["name", "kind", "versions", "latest"]
VERSION_COLUMNS = ["version", "kind", "row_count", "source_format", "note", "created_by", "created_at"]
PROBLEM_COLUMNS = ["row", "field", "problem", "seen", "fix"]
FORMATS = ["auto", "alpaca", "sharegpt", "openai", "trl", "pt", "kto", "grpo"]


def build(ctx: Ctx, lang: Any) -> None:
    import gradio as gr

    L, c = ctx.label, ctx.client
    with gr.Row():
        with gr.Column(scale=1):
            file = L(gr.File(label=ctx.t("data_file"), file_types=[".jsonl", ".json", ".csv", ".txt", ".parquet"],
                             elem_id="data-file"), "data_file")
            name = L(gr.Textbox(label=ctx.t("data_name"), elem_id="data-name"), "data_name")
            fmt = L(gr.Dropdown(FORMATS, value="auto", label=ctx.t("data_format"), elem_id="data-format"), "data_format")
            with gr.Row():
                validate = L(gr.Button(ctx.t("data_validate"), elem_id="data-validate"), "data_validate", "value")
                upload = L(gr.Button(ctx.t("data_upload"), variant="primary", elem_id="data-upload"), "data_upload", "value")
        with gr.Column(scale=2):
            status = gr.Markdown(elem_id="data-status")
            problems = L(gr.Dataframe(headers=PROBLEM_COLUMNS, label=ctx.t("data_problems"), interactive=False,
                                      wrap=True, elem_id="data-problems"), "data_problems")
    datasets = L(gr.Dataframe(headers=DATASET_COLUMNS, label=ctx.t("data_list"), interactive=False,
                              elem_id="data-list"), "data_list")
    with gr.Row():
        ref = L(gr.Textbox(label=ctx.t("data_ref"), elem_id="data-ref", scale=2), "data_ref")
        refresh = L(gr.Button(ctx.t("refresh"), elem_id="data-refresh"), "refresh", "value")
        show = L(gr.Button(ctx.t("data_show"), elem_id="data-show"), "data_show", "value")
    versions = L(gr.Dataframe(headers=VERSION_COLUMNS, label=ctx.t("data_versions"), interactive=False,
                              elem_id="data-versions"), "data_versions")
    with gr.Row():
        preview = L(gr.JSON(label=ctx.t("data_preview"), elem_id="data-preview"), "data_preview")
        report = L(gr.JSON(label=ctx.t("data_stats"), elem_id="data-stats"), "data_stats")
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
            exported = L(gr.File(label=ctx.t("download"), elem_id="data-download"), "download")
        result = L(gr.JSON(label=ctx.t("result")), "result")
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

    def list_all() -> list[list[Any]]:
        try:
            found = c.get("/data")
        except GatewayError:
            return []
        return [[d["name"], d["kind"], d["versions"], d["latest"]["version"]] for d in found]

    def problem_rows(found: list[dict[str, Any]]) -> list[list[Any]]:
        return rows(found, PROBLEM_COLUMNS)

    def on_validate(path: str | None, fmt_: str, lng: str) -> tuple:
        if not path:
            return [], ctx_t("data_no_file", lng)
        try:
            v = c.upload("/data/validate", path, format=fmt_)
        except GatewayError as e:
            return fail(e, lng, 2)
        key = "data_valid" if not v["problems"] else "data_invalid"
        return problem_rows(v["problems"]), ctx_t(key, lng, rows=v["rows_read"], valid=v["rows_valid"],
                                                  format=v["format"] or "?", kind=v["kind"] or "?")

    def on_upload(path: str | None, name_: str, fmt_: str, lng: str) -> tuple:
        if not path:
            return [], gr.skip(), ctx_t("data_no_file", lng)
        try:
            r = c.upload("/data/upload", path, name=name_, format=fmt_)
        except GatewayError as e:
            try:  # the rows, as a table, next to the gateway's refusal
                found = problem_rows(c.upload("/data/validate", path, format=fmt_)["problems"])
            except GatewayError:
                found = []
            return found, gr.skip(), ctx_t("error", lng, msg=e)
        v = r["version"]
        return [], list_all(), ctx_t("data_uploaded", lng, name=v["dataset"], version=v["version"], rows=r["rows_kept"])

    def on_show(ref_: str, lng: str) -> tuple:
        try:
            name_ = ref_.split("@")[0]
            vs = c.get(f"/data/{name_}/versions")
            return rows(list(reversed(vs)), VERSION_COLUMNS), c.get(f"/data/{ref_}/rows", n=5), \
                {"stats": c.get(f"/data/{ref_}/stats"), "quality": c.get(f"/data/{ref_}/quality")}, ""
        except GatewayError as e:
            return fail(e, lng, 4)

    def on_dedup(ref_: str, m: str, th: float, lng: str) -> tuple:
        try:
            return c.post(f"/data/{ref_}/dedup", {"method": m, "threshold": th}), list_all(), ""
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
            return c.post(f"/data/{ref_}/filter", {"rules": rules}), list_all(), ""
        except GatewayError as e:
            return fail(e, lng, 3)

    def on_diff(a: str, b: str, lng: str) -> tuple:
        try:
            return c.get("/data/diff", old=a, new=b), ""
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
            return None, gr.Timer(active=False), ctx_t("error", lng, msg=e)
        return task["id"], gr.Timer(active=True), progress_html(task, lng)

    def on_gen_tick(task_id: str | None, lng: str) -> tuple:
        if not task_id:
            return gr.Timer(active=False), gr.skip(), gr.skip()
        try:
            task = c.get(f"/tasks/{task_id}")
        except GatewayError as e:
            return gr.Timer(active=False), ctx_t("error", lng, msg=e), gr.skip()
        running = task["status"] in ("queued", "running")
        return gr.Timer(active=running), progress_html(task, lng), gr.skip() if running else list_all()

    gen_go.click(on_generate, [gen_method, gen_seeds, gen_name, gen_num, gen_kind, gen_url, gen_model, lang],
                 [gen_task, gen_timer, gen_progress])
    gen_timer.tick(on_gen_tick, [gen_task, lang], [gen_timer, gen_progress, datasets])
    validate.click(on_validate, [file, fmt, lang], [problems, status])
    upload.click(on_upload, [file, name, fmt, lang], [problems, datasets, status])
    refresh.click(list_all, None, datasets)
    show.click(on_show, [ref, lang], [versions, preview, report, status])
    dedup.click(on_dedup, [ref, method, threshold, lang], [result, datasets, status])
    filt.click(on_filter, [ref, min_chars, max_chars, words, lang], [result, datasets, status])
    diff.click(on_diff, [old, new, lang], [result, status])
    export.click(on_export, [ref, target, lang], [exported, status])
    return list_all, [datasets]


def ctx_t(key: str, lang: str, **fmt: Any) -> str:
    from llmloop.ui.i18n import t

    return t(key, lang, **fmt)
