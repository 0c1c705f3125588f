"""The Train tab: stage and preset, the config edited as YAML and validated by the server, launch
(admin), a live loss curve and a progress bar with ETA (a ``gr.Timer`` polls the job and its metrics),
the log, cancel and resume, and the job history — each a call to ``/api/v1/train``."""

from __future__ import annotations

from typing import Any

from llmloop.ui.client import GatewayError
from llmloop.ui.common import Ctx, progress_html, rows
from llmloop.ui.i18n import t

JOB_COLUMNS = ["id", "stage", "status", "created_at", "finished_at", "error"]
POLL_SECONDS = 1.5


def build(ctx: Ctx, lang: Any):  # noqa: ANN201 - returns the tab's loader
    import gradio as gr
    import pandas as pd

    L, c = ctx.label, ctx.client
    try:
        presets = c.get("/train/presets") if ctx.annotator else []
    except GatewayError:
        presets = []
    by_stage: dict[str, dict[str, str]] = {}
    for p in presets:
        by_stage.setdefault(p["stage"], {})[p["name"]] = p["yaml"]
    def default(stage: str) -> str | None:  # the tiny preset runs anywhere in minutes: the demo's choice
        names = list(by_stage.get(stage, {}))
        return "tiny" if "tiny" in names else (names[0] if names else None)

    first = default("sft")

    with gr.Row():
        stage = L(gr.Dropdown(["pt", "sft", "dpo"], value="sft", label=ctx.t("train_stage"), elem_id="train-stage"),
                  "train_stage")
        preset = L(gr.Dropdown(list(by_stage.get("sft", {})), value=first, label=ctx.t("train_preset"),
                               elem_id="train-preset"), "train_preset")
    config = L(gr.Code(value=by_stage.get("sft", {}).get(first or "", ""), language="yaml", label=ctx.t("train_config"),
                       elem_id="train-config"), "train_config")
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
    log = L(gr.Textbox(label=ctx.t("train_log"), lines=8, max_lines=8, interactive=False, elem_id="train-log"),
            "train_log")
    jobs = L(gr.Dataframe(headers=JOB_COLUMNS, label=ctx.t("train_jobs"), interactive=False, elem_id="train-jobs"),
             "train_jobs")
    with gr.Row():
        pick = L(gr.Textbox(label=ctx.t("train_job_id"), elem_id="train-job-id", scale=2), "train_job_id")
        follow = L(gr.Button(ctx.t("train_follow"), elem_id="train-follow"), "train_follow", "value")
        resume = L(gr.Button(ctx.t("train_resume"), elem_id="train-resume", visible=ctx.admin), "train_resume", "value")
        refresh = L(gr.Button(ctx.t("refresh")), "refresh", "value")
    timer = gr.Timer(POLL_SECONDS, active=False)

    def list_jobs() -> list[list[Any]]:
        try:
            return rows(c.get("/train/jobs"), JOB_COLUMNS)
        except GatewayError:
            return []

    def on_stage(st: str) -> tuple:
        name = default(st)
        return gr.update(choices=list(by_stage.get(st, {})), value=name), by_stage.get(st, {}).get(name or "", "")

    def body(st: str, text: str, extra: str) -> dict[str, Any]:
        return {"stage": st, "yaml": text or "", "overrides": [x.strip() for x in (extra or "").splitlines() if x.strip()]}

    def on_validate(st: str, text: str, extra: str, lng: str) -> str:
        try:
            v = c.post("/train/validate", body(st, text, extra))
        except GatewayError as e:
            return t("error", lng, msg=e)
        if v["ok"]:
            return t("train_valid", lng)
        return t("train_invalid", lng) + "\n" + "\n".join(f"- {p}" for p in v["problems"])

    def as_task(view: dict[str, Any]) -> dict[str, Any]:
        """The job and its latest step in the shape the progress bar draws."""
        job, p = view["job"], view.get("progress") or {}
        return {"status": job["status"], "done": p.get("step", 0), "total": p.get("total_steps"),
                "eta_s": p.get("eta_s"), "elapsed_s": p.get("elapsed_s"), "error": job.get("error"),
                "message": f"{job['id']} · loss {p['loss']:.4f}" if p.get("loss") is not None else job["id"]}

    def on_launch(st: str, text: str, extra: str, lng: str) -> tuple:
        try:
            view = c.post("/train/jobs", body(st, text, extra))
        except GatewayError as e:
            return None, gr.Timer(active=False), t("error", lng, msg=e), gr.skip()
        job_id = view["job"]["id"]
        return job_id, gr.Timer(active=True), t("train_launched", lng, id=job_id), progress_html(as_task(view), lng)

    def on_tick(job_id: str | None, lng: str) -> tuple:
        if not job_id:
            return gr.Timer(active=False), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        try:
            view = c.get(f"/train/jobs/{job_id}")
            points = c.get(f"/train/jobs/{job_id}/metrics")
            text = c.get(f"/train/jobs/{job_id}/logs", lines=40)["log"]
        except GatewayError as e:
            return gr.Timer(active=False), t("error", lng, msg=e), gr.skip(), gr.skip(), gr.skip()
        running = view["job"]["status"] in ("queued", "running")
        points = [p for p in points if p.get("loss") is not None]  # eval-only rows carry eval_loss instead
        frame = pd.DataFrame({"step": [p["step"] for p in points], "loss": [p["loss"] for p in points]})
        return (gr.Timer(active=running), progress_html(as_task(view), lng), frame, text,
                gr.skip() if running else list_jobs())

    def on_cancel(job_id: str | None, lng: str) -> str:
        if not job_id:
            return t("train_nothing_running", lng)
        try:
            c.post(f"/train/jobs/{job_id}/cancel")
        except GatewayError as e:
            return t("error", lng, msg=e)
        return t("train_cancel_sent", lng)

    def on_follow(job_id: str) -> tuple:
        return (job_id.strip() or None), gr.Timer(active=bool(job_id.strip()))

    def on_resume(job_id: str, lng: str) -> tuple:
        try:
            view = c.post(f"/train/jobs/{job_id.strip()}/resume")
        except GatewayError as e:
            return gr.skip(), gr.Timer(active=False), t("error", lng, msg=e)
        return view["job"]["id"], gr.Timer(active=True), t("train_resumed", lng, id=view["job"]["id"])

    stage.change(on_stage, stage, [preset, config])
    preset.change(lambda st, name: by_stage.get(st, {}).get(name or "", ""), [stage, preset], config)
    validate.click(on_validate, [stage, config, overrides, lang], status)
    launch.click(on_launch, [stage, config, overrides, lang], [task_id, timer, status, progress])
    timer.tick(on_tick, [task_id, lang], [timer, progress, curve, log, jobs])
    cancel.click(on_cancel, [task_id, lang], status)
    follow.click(on_follow, pick, [task_id, timer])
    resume.click(on_resume, [pick, lang], [task_id, timer, status])
    refresh.click(list_jobs, None, jobs)
    return list_jobs, [jobs]
