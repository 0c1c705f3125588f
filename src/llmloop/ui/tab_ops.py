"""The Surgery, Models & rollout and Monitor tabs — each control a call to ``/api/v1/models``,
``/api/v1/loop``, ``/api/v1/monitor`` or ``/api/v1/tasks``. Admin-only controls are not shown to
other roles (and the gateway refuses them anyway)."""

from __future__ import annotations

import time
from typing import Any

from llmloop.ui.client import GatewayError
from llmloop.ui.common import Ctx, progress_html, rows
from llmloop.ui.i18n import t

VERSION_COLUMNS = ["name", "kind", "stage", "aliases", "parent", "job_id", "adapter_path", "created_at", "note"]
ROUND_COLUMNS = ["id", "status", "production_version", "candidate_version", "started_at", "finished_at"]
EVENT_COLUMNS = ["created_at", "round_id", "kind", "message", "actor"]
MONITOR_SECONDS = 5.0
SERIES = (("requests_per_s", "monitor_rate"), ("mean_latency_s", "monitor_latency"),
          ("error_ratio", "monitor_errors"), ("thumbs_up_ratio", "monitor_thumbs"))


def _task_poller(ctx: Ctx):  # noqa: ANN202
    """Poll a surgery task; when it ends show its result, and a merge-ratio scan's points as a chart."""
    import gradio as gr
    import pandas as pd

    def tick(tid: str | None, lng: str) -> tuple:
        if not tid:
            return gr.Timer(active=False), gr.skip(), gr.skip(), gr.skip()
        try:
            task = ctx.client.get(f"/tasks/{tid}")
        except GatewayError as e:
            return gr.Timer(active=False), t("error", lng, msg=e), gr.skip(), gr.skip()
        if task["status"] in ("queued", "running"):
            return gr.Timer(active=True), progress_html(task, lng), gr.skip(), gr.skip()
        result = task.get("result")
        points = (result or {}).get("points") if isinstance(result, dict) else None
        chart = pd.DataFrame({"t": [p["t"] for p in points], "score": [p["score"] for p in points]}) if points \
            else gr.skip()
        return gr.Timer(active=False), progress_html(task, lng), result, chart
    return tick


def build_surgery(ctx: Ctx, lang: Any) -> None:
    import gradio as gr
    import pandas as pd

    L, c = ctx.label, ctx.client
    if not ctx.admin:
        L(gr.Markdown(ctx.t("admin_only")), "admin_only", "value")
        return
    task_id = gr.State(None)
    timer = gr.Timer(1.5, active=False)
    with gr.Accordion(ctx.t("surgery_merge_lora"), open=True) as box:
        L(box, "surgery_merge_lora")
        with gr.Row():
            ml_version = L(gr.Textbox("candidate", label=ctx.t("surgery_version")), "surgery_version")
            ml_name = L(gr.Textbox(label=ctx.t("surgery_name")), "surgery_name")
            ml_go = L(gr.Button(ctx.t("surgery_run"), variant="primary"), "surgery_run", "value")
    with gr.Accordion(ctx.t("surgery_merge"), open=False) as box:
        L(box, "surgery_merge")
        with gr.Row():
            m_models = L(gr.Textbox("production, candidate", label=ctx.t("surgery_models")), "surgery_models")
            m_method = L(gr.Dropdown(["linear", "slerp", "ties", "dare_linear", "dare_ties"], value="linear",
                                     label=ctx.t("surgery_method")), "surgery_method")
            m_weights = L(gr.Textbox(label=ctx.t("surgery_weights")), "surgery_weights")
            m_t = L(gr.Slider(0, 1, value=0.5, step=0.05, label=ctx.t("surgery_t")), "surgery_t")
            m_density = L(gr.Slider(0.05, 1, value=0.5, step=0.05, label=ctx.t("surgery_density")), "surgery_density")
            m_go = L(gr.Button(ctx.t("surgery_run")), "surgery_run", "value")
    with gr.Accordion(ctx.t("surgery_scan"), open=False) as box:
        L(box, "surgery_scan")
        with gr.Row():
            sc_a = L(gr.Textbox("production", label=ctx.t("surgery_scan_a")), "surgery_scan_a")
            sc_b = L(gr.Textbox(label=ctx.t("surgery_scan_b")), "surgery_scan_b")
            sc_set = L(gr.Textbox(label=ctx.t("eval_data")), "eval_data")
            sc_points = L(gr.Slider(2, 21, value=5, step=1, label=ctx.t("surgery_scan_points")), "surgery_scan_points")
            sc_go = L(gr.Button(ctx.t("surgery_run")), "surgery_run", "value")
    with gr.Accordion(ctx.t("surgery_quantize"), open=False) as box:
        L(box, "surgery_quantize")
        with gr.Row():
            q_version = L(gr.Textbox("production", label=ctx.t("surgery_version")), "surgery_version")
            q_method = L(gr.Dropdown(["fp16", "bf16", "int8", "int4", "gguf"], value="bf16",
                                     label=ctx.t("surgery_method")), "surgery_method")
            q_go = L(gr.Button(ctx.t("surgery_run")), "surgery_run", "value")
    with gr.Accordion(ctx.t("surgery_select"), open=False) as box:
        L(box, "surgery_select")
        with gr.Row():
            s_job = L(gr.Textbox(label=ctx.t("surgery_job")), "surgery_job")
            s_metric = L(gr.Textbox("eval_loss", label=ctx.t("surgery_metric")), "surgery_metric")
            s_go = L(gr.Button(ctx.t("surgery_run")), "surgery_run", "value")
    progress = gr.HTML(elem_id="surgery-progress")
    with gr.Row():
        result = L(gr.JSON(label=ctx.t("result"), elem_id="surgery-result"), "result")
        chart = L(gr.LinePlot(pd.DataFrame({"t": [], "score": []}), x="t", y="score", label=ctx.t("surgery_scan_chart"),
                              height=240, elem_id="surgery-scan-chart"), "surgery_scan_chart")

    def launch(path: str, config: dict[str, Any], lng: str) -> tuple:
        try:
            task = c.post(path, {"config": config})
        except GatewayError as e:
            return None, gr.Timer(active=False), t("error", lng, msg=e)
        return task["id"], gr.Timer(active=True), progress_html(task, lng)

    def on_merge_lora(version: str, name: str, lng: str) -> tuple:
        return launch("/models/merge-lora", {"version": version, **({"name": name} if name else {})}, lng)

    def on_merge(models: str, method: str, weights: str, t_: float, density: float, lng: str) -> tuple:
        config: dict[str, Any] = {"models": [m.strip() for m in models.split(",") if m.strip()], "method": method,
                                  "t": t_, "density": density}
        if weights.strip():
            try:
                config["weights"] = [float(w) for w in weights.split(",")]
            except ValueError:
                return None, gr.Timer(active=False), t("surgery_bad_weights", lng, value=weights)
        return launch("/models/merge", config, lng)

    def on_scan(a: str, b: str, evalset: str, points: float, lng: str) -> tuple:
        return launch("/models/merge-scan", {"a": a, "b": b, "eval_set": evalset, "points": int(points)}, lng)

    def on_quantize(version: str, method: str, lng: str) -> tuple:
        return launch("/models/quantize", {"version": version, "method": method}, lng)

    def on_select(job: str, metric: str, lng: str) -> tuple:
        try:
            return c.post("/models/select-checkpoint", {"config": {"job": job, "metric": metric}}), ""
        except GatewayError as e:
            return gr.skip(), t("error", lng, msg=e)

    ml_go.click(on_merge_lora, [ml_version, ml_name, lang], [task_id, timer, progress])
    m_go.click(on_merge, [m_models, m_method, m_weights, m_t, m_density, lang], [task_id, timer, progress])
    sc_go.click(on_scan, [sc_a, sc_b, sc_set, sc_points, lang], [task_id, timer, progress])
    q_go.click(on_quantize, [q_version, q_method, lang], [task_id, timer, progress])
    s_go.click(on_select, [s_job, s_metric, lang], [result, progress])
    timer.tick(_task_poller(ctx), [task_id, lang], [timer, progress, result, chart])


def build_models(ctx: Ctx, lang: Any):  # noqa: ANN201 - returns the tab's loader and its outputs
    import gradio as gr

    L, c = ctx.label, ctx.client
    versions = L(gr.Dataframe(headers=VERSION_COLUMNS, label=ctx.t("models_table"), interactive=False,
                              elem_id="models-table"), "models_table")
    refresh = L(gr.Button(ctx.t("refresh"), elem_id="models-refresh"), "refresh", "value")
    with gr.Row():
        loop_status = L(gr.JSON(label=ctx.t("loop_status"), elem_id="loop-status"), "loop_status")
        split = L(gr.JSON(label=ctx.t("traffic_split"), elem_id="traffic-split"), "traffic_split")
    with gr.Row():
        pick = L(gr.Textbox(label=ctx.t("surgery_version"), scale=2), "surgery_version")
        show_lineage = L(gr.Button(ctx.t("models_lineage")), "models_lineage", "value")
    lineage = L(gr.JSON(label=ctx.t("models_lineage")), "models_lineage")
    with gr.Group(visible=ctx.admin, elem_id="rollout-actions"):
        reason = L(gr.Textbox(label=ctx.t("rollout_reason"), elem_id="rollout-reason"), "rollout_reason")
        with gr.Row():
            promote = L(gr.Button(ctx.t("rollout_promote"), variant="primary", elem_id="rollout-promote"),
                        "rollout_promote", "value")
            rollback = L(gr.Button(ctx.t("rollout_rollback"), variant="stop", elem_id="rollout-rollback"),
                         "rollout_rollback", "value")
            pause = L(gr.Button(ctx.t("rollout_pause"), elem_id="rollout-pause"), "rollout_pause", "value")
            resume = L(gr.Button(ctx.t("rollout_resume"), elem_id="rollout-resume"), "rollout_resume", "value")
        with gr.Row():
            alias = L(gr.Textbox("production", label=ctx.t("alias_name")), "alias_name")
            target = L(gr.Textbox(label=ctx.t("alias_version")), "alias_version")
            set_alias = L(gr.Button(ctx.t("alias_set"), elem_id="alias-set"), "alias_set", "value")
    if not ctx.admin:
        L(gr.Markdown(ctx.t("rollout_admin_only"), elem_id="rollout-admin-only"), "rollout_admin_only", "value")
    status = gr.Markdown(elem_id="rollout-status")
    rounds = L(gr.Dataframe(headers=ROUND_COLUMNS, label=ctx.t("loop_rounds"), interactive=False), "loop_rounds")
    events = L(gr.Dataframe(headers=EVENT_COLUMNS, label=ctx.t("loop_events"), interactive=False, wrap=True),
               "loop_events")

    def piece(fn: Any, default: Any) -> Any:
        try:
            return fn()
        except GatewayError as e:
            return default if default is not None else {"error": str(e)}

    def load() -> tuple:
        if not ctx.annotator:  # the versions the OpenAI API lists, no more
            found = [{"name": m["id"], "kind": m.get("kind"), "aliases": m.get("aliases"), "parent": m.get("parent")}
                     for m in c.models() if m.get("kind")]
            return rows(found, VERSION_COLUMNS), None, None, [], []
        hist = piece(lambda: c.get("/loop/history", limit=50), {"rounds": [], "events": []})
        return (rows(piece(lambda: c.get("/models"), []), VERSION_COLUMNS), piece(lambda: c.get("/loop/status"), None),
                piece(lambda: c.get("/loop/split"), None), rows(hist["rounds"], ROUND_COLUMNS),
                rows(hist["events"], EVENT_COLUMNS))

    outputs = [versions, loop_status, split, rounds, events]

    def act(path: str, payload: Any) -> Any:
        def run(why: str, lng: str) -> tuple:
            try:
                r = c.post(path, payload(why))
            except GatewayError as e:
                return (*[gr.skip()] * len(outputs), t("error", lng, msg=e))
            message = r.get("message") if isinstance(r, dict) and r.get("message") else t("done", lng)
            return (*load(), message)
        return run

    def on_alias(name: str, version: str, why: str, lng: str) -> tuple:
        try:
            c.put(f"/models/aliases/{name.strip()}", {"version": version.strip(), "reason": why})
        except GatewayError as e:
            return (*[gr.skip()] * len(outputs), t("error", lng, msg=e))
        return (*load(), t("alias_moved", lng, alias=name, version=version))

    def on_lineage(name: str, lng: str) -> Any:
        try:
            return c.get(f"/models/{name.strip()}/lineage")
        except GatewayError as e:
            return {"error": str(e)}

    refresh.click(load, None, outputs)
    show_lineage.click(on_lineage, [pick, lang], lineage)
    promote.click(act("/loop/promote", lambda why: {"reason": why}), [reason, lang], [*outputs, status])
    rollback.click(act("/loop/rollback", lambda why: {"reason": why}), [reason, lang], [*outputs, status])
    pause.click(act("/loop/pause", lambda why: {"reason": why}), [reason, lang], [*outputs, status])
    resume.click(act("/loop/resume", lambda why: {"reason": why}), [reason, lang], [*outputs, status])
    set_alias.click(on_alias, [alias, target, reason, lang], [*outputs, status])
    return load, outputs


def build_monitor(ctx: Ctx, lang: Any):  # noqa: ANN201 - returns the timer's loader and outputs
    import gradio as gr
    import pandas as pd

    L, c = ctx.label, ctx.client
    x = "seconds"  # seconds before now (the newest point is at 0)
    empty = pd.DataFrame({x: [], "value": [], "version": []})
    plots = []
    with gr.Row():
        for i, (_field, key) in enumerate(SERIES):
            if i == 2:
                break
            plots.append(L(gr.LinePlot(empty, x=x, y="value", color="version", label=ctx.t(key), height=220,
                                       elem_id=f"monitor-{_field}"), key))
    with gr.Row():
        for _field, key in SERIES[2:]:
            plots.append(L(gr.LinePlot(empty, x=x, y="value", color="version", label=ctx.t(key), height=220,
                                       elem_id=f"monitor-{_field}"), key))
    totals = L(gr.Dataframe(headers=["version", "requests_total", "thumbs_total"], label=ctx.t("monitor_totals"),
                            interactive=False, elem_id="monitor-totals"), "monitor_totals")
    timer = gr.Timer(MONITOR_SECONDS, active=True)

    def load() -> tuple:
        try:
            series = c.get("/monitor")["versions"]
        except GatewayError:
            return (*[empty] * len(SERIES), [])
        frames, now = [], time.time()
        for field, _key in SERIES:
            data = [(round(p["time"] - now, 1), p[field], v) for v, pts in series.items() for p in pts
                    if p[field] is not None]
            frames.append(pd.DataFrame(data, columns=[x, "value", "version"]) if data else empty)
        last = [[v, pts[-1]["requests_total"], pts[-1]["thumbs_total"]] for v, pts in series.items() if pts]
        return (*frames, last)

    timer.tick(load, None, [*plots, totals])
    return load, [*plots, totals]
