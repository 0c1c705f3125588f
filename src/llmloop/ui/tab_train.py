"""The Train tab: any of the eight stages and its presets, the main hyperparameters as form widgets
(the YAML stays editable beside them, and ``key=value`` overrides win over both), validation by the
server (unknown datasets included), launch (admin), a live loss curve and a progress bar with ETA (a
``gr.Timer`` polls the job and its metrics), the log without config dumps, cancel and resume, and
the job history — a click on a job follows it. Each action is one call to ``/api/v1/train``."""

from __future__ import annotations

import re
from typing import Any

import yaml

import gradio as gr  # module level: event-data type hints (gr.LikeData, gr.SelectData) must resolve

from llmloop.train.config import STAGES  # the stage menu when the gateway is silent: train.config.STAGE_TABLE
from llmloop.ui.client import GatewayError
from llmloop.ui.widgets import Ctx, progress_html, table
from llmloop.ui.error_text import error_text, for_page
from llmloop.ui.i18n import t

JOB_COLUMNS = ["id", "stage", "status", "created_at", "finished_at", "error"]
POLL_SECONDS = 1.5
# the form: config key → (i18n key, widget kind); shown for the stages whose config has the key
FORM = (
    ("model", "form_model", "model"), ("dataset", "form_dataset", "dataset"),
    ("finetuning", "form_finetuning", ("lora", "qlora", "full")),
    ("learning_rate", "form_learning_rate", "float"), ("num_train_epochs", "form_epochs", "float"),
    ("max_steps", "form_max_steps", "int"), ("per_device_train_batch_size", "form_batch_size", "int"),
    ("gradient_accumulation_steps", "form_grad_accum", "int"), ("max_length", "form_max_length", "int"),
    ("lora.r", "form_lora_r", "int"), ("lora.alpha", "form_lora_alpha", "int"),
    ("beta", "form_beta", "float"), ("logging_steps", "form_logging_steps", "int"),
)
_LOG_RECORD = re.compile(r"^\d{4}-\d\d-\d\d[ T][\d:,.]+ .*\b(INFO|WARNING|ERROR|CRITICAL)\b")


def readable_log(text: str, limit: int = 240) -> str:
    """The job log's own records (and any traceback), without the config and metric dumps that
    libraries print (the curve shows the metrics; the config is the form above); long lines cut."""
    out, in_traceback = [], False
    for line in text.splitlines():
        if line.startswith("Traceback"):
            in_traceback = True
        record = _LOG_RECORD.match(line)
        if in_traceback or record:
            if not in_traceback and (re.search(r"\{['\"]\w+['\"]: ", line) or line.rstrip().endswith("{")
                                     or (record.group(1) == "INFO" and " INFO transformers." in line)):
                continue  # a dict dump, the head of a config dump, transformers' loading chatter
            out.append(line if len(line) <= limit else line[: limit - 1] + "…")
    return "\n".join(out)


def _get(config: dict[str, Any], dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def build(ctx: Ctx, lang: Any):  # noqa: ANN201 - returns the tab's loader
    import gradio as gr
    import pandas as pd

    L, c = ctx.label, ctx.client
    try:
        presets = c.get("/train/presets")
    except GatewayError:
        presets = []
    try:
        stages = {s["stage"]: s for s in c.get("/train/stages")}
    except GatewayError:
        stages = {}
    by_stage: dict[str, dict[str, str]] = {}
    for p in presets:
        by_stage.setdefault(p["stage"], {})[p["name"]] = p["yaml"]
    stage_names = list(stages) or list(STAGES)

    def default(stage: str) -> str | None:  # the tiny preset runs anywhere in minutes: the demo's choice
        names = list(by_stage.get(stage, {}))
        return "tiny" if "tiny" in names else (names[0] if names else None)

    def has(stage: str, key: str) -> bool:
        fields = (stages.get(stage) or {}).get("fields")
        return True if fields is None else key.split(".")[0] in fields

    def defaults(stage: str) -> dict[str, Any]:
        fields = (stages.get(stage) or {}).get("fields") or {}
        return {k: f.get("default") for k, f in fields.items()}

    def choices(path: str, label: str) -> list[str]:
        try:
            found = c.get(path)
        except GatewayError:
            return []
        return [x[label] if isinstance(x, dict) else str(x) for x in found]

    def raw_values(st: str, text: str) -> list[Any]:
        """The form's values: the YAML's, the stage's defaults beneath them."""
        try:
            data = yaml.safe_load(text or "") or {}
        except yaml.YAMLError:
            data = {}
        base = defaults(st)
        out = []
        for key, _, _ in FORM:
            value = _get(data, key) if isinstance(data, dict) else None
            out.append(_get(base, key) if value is None else value)
        return out

    def form_values(st: str, text: str) -> list[Any]:
        """The form filled from the YAML; hidden where the stage lacks the key."""
        return [gr.update(value=v, visible=has(st, k)) for (k, _, _), v in zip(FORM, raw_values(st, text), strict=True)]

    first = default("sft")
    start = raw_values("sft", by_stage.get("sft", {}).get(first or "", ""))
    with gr.Row():
        stage = L(gr.Dropdown([(f"{s} — {t(f'stage_{s}', ctx.lang0)}", s) for s in stage_names], value="sft",
                              label=ctx.t("train_stage"), elem_id="train-stage"), "train_stage")
        preset = L(gr.Dropdown(list(by_stage.get("sft", {})), value=first, label=ctx.t("train_preset"),
                               elem_id="train-preset"), "train_preset")
    with gr.Accordion(ctx.t("train_form"), open=True, elem_id="train-form") as form_box:
        L(form_box, "train_form")
        widgets: dict[str, Any] = {}
        with gr.Row():
            for (key, label, kind), value in zip(FORM, start, strict=True):
                elem = "form-" + key.replace(".", "-").replace("_", "-")
                shown = has("sft", key)
                if kind == "model":
                    w = gr.Dropdown(choices("/models", "name") + ["production", "candidate"], value=value,
                                    label=ctx.t(label), allow_custom_value=True, elem_id=elem, min_width=200,
                                    visible=shown)
                elif kind == "dataset":
                    w = gr.Dropdown(choices("/data", "name"), value=value, label=ctx.t(label),
                                    allow_custom_value=True, elem_id=elem, min_width=200, visible=shown)
                elif isinstance(kind, tuple):
                    w = gr.Dropdown(list(kind), value=value, label=ctx.t(label), elem_id=elem, min_width=140,
                                    visible=shown)
                else:
                    w = gr.Number(value, label=ctx.t(label), precision=0 if kind == "int" else None, elem_id=elem,
                                  min_width=140, visible=shown)
                widgets[key] = L(w, label)
    with gr.Accordion(ctx.t("train_yaml"), open=False, elem_id="train-yaml") as yaml_box:
        L(yaml_box, "train_yaml")
        config = L(gr.Code(value=by_stage.get("sft", {}).get(first or "", ""), language="yaml",
                           label=ctx.t("train_config"), elem_id="train-config"), "train_config")
    overrides = L(gr.Textbox(label=ctx.t("train_overrides"), lines=2, elem_id="train-overrides",
                             placeholder="max_steps=5\nlora.r=16"), "train_overrides")
    with gr.Row():
        validate = L(gr.Button(ctx.t("train_validate"), elem_id="train-validate"), "train_validate", "value")
        launch = L(gr.Button(ctx.t("train_launch"), variant="primary", elem_id="train-launch", visible=ctx.admin),
                   "train_launch", "value")
        cancel = L(gr.Button(ctx.t("train_cancel"), variant="stop", elem_id="train-cancel", visible=ctx.admin),
                   "train_cancel", "value")
    status = gr.Markdown(elem_id="train-status")
    task_id = gr.State(None)  # the job being followed
    progress = gr.HTML(elem_id="train-progress")
    curve = L(gr.LinePlot(pd.DataFrame({"step": [], "loss": []}), x="step", y="loss", label=ctx.t("train_curve"),
                          elem_id="train-curve", height=260), "train_curve")
    with gr.Row():
        full_log = L(gr.Checkbox(False, label=ctx.t("train_full_log"), elem_id="train-full-log"), "train_full_log")
    log = L(gr.Textbox(label=ctx.t("train_log"), lines=8, max_lines=12, interactive=False, elem_id="train-log"),
            "train_log")
    L(gr.Markdown(ctx.t("train_jobs_help")), "train_jobs_help", "value")
    jobs = ctx.frame(JOB_COLUMNS, "train_jobs", elem_id="train-jobs", wrap=True)
    with gr.Row():
        pick = L(gr.Textbox(label=ctx.t("train_job_id"), elem_id="train-job-id", scale=2), "train_job_id")
        follow = L(gr.Button(ctx.t("train_follow"), elem_id="train-follow"), "train_follow", "value")
        resume = L(gr.Button(ctx.t("train_resume"), elem_id="train-resume", visible=ctx.admin), "train_resume", "value")
        refresh = L(gr.Button(ctx.t("refresh")), "refresh", "value")
    timer = gr.Timer(POLL_SECONDS, active=False)
    keys = [k for k, _, _ in FORM]
    form = [widgets[k] for k in keys]

    def list_jobs(lng: str | None = None) -> Any:
        lng = lng or ctx.lang0
        try:
            found = c.get("/train/jobs")
        except GatewayError:
            found = []
        for j in found:
            if j.get("error"):
                j["error"] = for_page(str(j["error"]), lng)[:200]
        return table(found, JOB_COLUMNS, lng)


    def on_stage(st: str) -> tuple:
        name = default(st)
        text = by_stage.get(st, {}).get(name or "", "")
        return (gr.update(choices=list(by_stage.get(st, {})), value=name), text, *form_values(st, text))

    def on_preset(st: str, name: str | None) -> tuple:
        text = by_stage.get(st, {}).get(name or "", "")
        return (text, *form_values(st, text))

    def body(st: str, text: str, extra: str, values: tuple) -> dict[str, Any]:
        """YAML, then the form's changes, then the typed overrides (the last word)."""
        try:
            data = yaml.safe_load(text or "") or {}
        except yaml.YAMLError:
            data = {}
        base = defaults(st)
        from_form = []
        for key, value in zip(keys, values, strict=True):
            if value is None or value == "" or not has(st, key):
                continue
            if isinstance(value, float) and value.is_integer() and dict(((k, kd) for k, _, kd in FORM))[key] == "int":
                value = int(value)
            now = _get(data, key) if isinstance(data, dict) else None
            if now is None:
                now = _get(base, key)
            if now != value:
                from_form.append(f"{key}={value}")
        typed = [x.strip() for x in (extra or "").splitlines() if x.strip()]
        return {"stage": st, "yaml": text or "", "overrides": from_form + typed}

    def on_validate(st: str, text: str, extra: str, lng: str, *values: Any) -> str:
        try:
            v = c.post("/train/validate", body(st, text, extra, values))
        except GatewayError as e:
            return error_text(e, lng)
        if v["ok"]:
            return t("train_valid", lng)
        return t("train_invalid", lng) + "\n" + "\n".join(f"- {for_page(p, lng)}" for p in v["problems"])

    def as_task(view: dict[str, Any]) -> dict[str, Any]:
        """The job and its latest step in the shape the progress bar draws."""
        job, p = view["job"], view.get("progress") or {}
        return {"status": job["status"], "done": p.get("step", 0), "total": p.get("total_steps"),
                "eta_s": p.get("eta_s"), "elapsed_s": p.get("elapsed_s"), "error": job.get("error"),
                "message": f"{job['id']} · loss {p['loss']:.4f}" if p.get("loss") is not None else job["id"]}

    def on_launch(st: str, text: str, extra: str, lng: str, *values: Any) -> tuple:
        try:
            view = c.post("/train/jobs", body(st, text, extra, values))
        except GatewayError as e:
            return None, gr.Timer(active=False), error_text(e, lng), gr.skip(), gr.skip()
        job_id = view["job"]["id"]
        return (job_id, gr.Timer(active=True), t("train_launched", lng, id=job_id), progress_html(as_task(view), lng),
                job_id)

    def on_tick(job_id: str | None, everything: bool, lng: str) -> tuple:
        if not job_id:
            return gr.Timer(active=False), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        try:
            view = c.get(f"/train/jobs/{job_id}")
            points = c.get(f"/train/jobs/{job_id}/metrics")
            text = c.get(f"/train/jobs/{job_id}/logs", lines=400)["log"]
        except GatewayError as e:
            return gr.Timer(active=False), error_text(e, lng), gr.skip(), gr.skip(), gr.skip()
        running = view["job"]["status"] in ("queued", "running")
        points = [p for p in points if p.get("loss") is not None]  # eval-only rows carry eval_loss instead
        frame = pd.DataFrame({"step": [p["step"] for p in points], "loss": [p["loss"] for p in points]})
        shown = text if everything else readable_log(text)
        return (gr.Timer(active=running), progress_html(as_task(view), lng), frame, "\n".join(shown.splitlines()[-60:]),
                gr.skip() if running else list_jobs(lng))

    def on_cancel(job_id: str | None, lng: str) -> str:
        if not job_id:
            return t("train_nothing_running", lng)
        try:
            c.post(f"/train/jobs/{job_id}/cancel")
        except GatewayError as e:
            return error_text(e, lng)
        return t("train_cancel_sent", lng)

    def on_follow(job_id: str, lng: str) -> tuple:
        job_id = (job_id or "").strip()
        return (job_id or None), gr.Timer(active=bool(job_id)), t("train_following", lng, id=job_id) if job_id else ""

    def on_pick(lng: str, evt: gr.SelectData) -> tuple:
        """A click on a job in the history: follow it (no id copied by hand)."""
        row = evt.row_value or []
        job_id = str(row[0]) if row else ""
        return (job_id, *on_follow(job_id, lng))

    def on_resume(job_id: str, lng: str) -> tuple:
        try:
            view = c.post(f"/train/jobs/{job_id.strip()}/resume")
        except GatewayError as e:
            return gr.skip(), gr.Timer(active=False), error_text(e, lng)
        return view["job"]["id"], gr.Timer(active=True), t("train_resumed", lng, id=view["job"]["id"])

    stage.change(on_stage, stage, [preset, config, *form])
    preset.input(on_preset, [stage, preset], [config, *form])
    validate.click(on_validate, [stage, config, overrides, lang, *form], status)
    launch.click(on_launch, [stage, config, overrides, lang, *form], [task_id, timer, status, progress, pick])
    timer.tick(on_tick, [task_id, full_log, lang], [timer, progress, curve, log, jobs])
    cancel.click(on_cancel, [task_id, lang], status)
    follow.click(on_follow, [pick, lang], [task_id, timer, status])
    jobs.select(on_pick, lang, [pick, task_id, timer, status])
    resume.click(on_resume, [pick, lang], [task_id, timer, status])
    refresh.click(list_jobs, lang, jobs)

    return ctx.on_switch(list_jobs, [jobs])
