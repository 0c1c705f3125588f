"""The Surgery, Models & rollout and Monitor tabs — each control a call to ``/api/v1/models``,
``/api/v1/loop``, ``/api/v1/monitor`` or ``/api/v1/tasks``. Admin-only controls are not shown to
other roles (and the gateway refuses them anyway)."""

from __future__ import annotations

import time
from typing import Any

from llmloop.ui.client import GatewayError
from llmloop.ui.widgets import Ctx, empty_table, facts, progress_html, short_times, table
from llmloop.ui.error_text import error_text
from llmloop.ui.i18n import t

VERSION_COLUMNS = ["name", "kind", "stage", "aliases", "parent", "job_id", "created_at", "note"]
USER_VERSION_COLUMNS = ["name", "kind", "stage", "aliases", "parent"]
ROUND_COLUMNS = ["id", "status", "production_version", "candidate_version", "started_at", "finished_at"]
EVENT_COLUMNS = ["created_at", "round_id", "kind", "message", "actor"]
TOTAL_COLUMNS = ["version", "requests_total", "thumbs_total"]
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
            return gr.Timer(active=False), error_text(e, lng), gr.skip(), gr.skip()
        if task["status"] in ("queued", "running"):
            return gr.Timer(active=True), progress_html(task, lng), gr.skip(), gr.skip()
        result = task.get("result")
        points = (result or {}).get("points") if isinstance(result, dict) else None
        chart = pd.DataFrame({"t": [p["t"] for p in points], "score": [p["score"] for p in points]}) if points \
            else gr.skip()
        return gr.Timer(active=False), progress_html(task, lng), surgery_text(result, lng), chart
    return tick


def surgery_text(result: Any, lang: str) -> str:
    """A surgery task's result for a person: the version it registered and its report as a table
    (the server's output folder is left out — it names a path on another machine)."""
    if not isinstance(result, dict):
        return ""
    pairs: list[tuple[str, Any]] = []
    version = result.get("version") or result.get("best_version")
    if isinstance(version, dict):
        version = version.get("name")
    lines = [t("surgery_made", lang, version=version)] if version else []
    report = result.get("report") if isinstance(result.get("report"), dict) else \
        {k: v for k, v in result.items() if k not in ("points", "path", "version")}
    for k, v in (report or {}).items():
        if isinstance(v, (str, int, float, bool)) and not (isinstance(v, str) and v.startswith("/")):
            pairs.append((k, v))
    if pairs:
        lines.append("\n".join([f"| {t('facts_what', lang)} | {t('facts_value', lang)} |", "|---|---|",
                                *(f"| {k.replace('_', ' ')} | {v:.4g} |" if isinstance(v, float) else
                                  f"| {k.replace('_', ' ')} | {v} |" for k, v in pairs)]))
    return "\n\n".join(lines)


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
        result = gr.Markdown(elem_id="surgery-result")
        chart = L(gr.LinePlot(pd.DataFrame({"t": [], "score": []}), x="t", y="score", label=ctx.t("surgery_scan_chart"),
                              height=240, elem_id="surgery-scan-chart"), "surgery_scan_chart")

    def launch(path: str, config: dict[str, Any], lng: str) -> tuple:
        try:
            task = c.post(path, {"config": config})
        except GatewayError as e:
            return None, gr.Timer(active=False), error_text(e, lng)
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
            return surgery_text(c.post("/models/select-checkpoint", {"config": {"job": job, "metric": metric}}), lng), ""
        except GatewayError as e:
            return gr.skip(), error_text(e, lng)

    ml_go.click(on_merge_lora, [ml_version, ml_name, lang], [task_id, timer, progress])
    m_go.click(on_merge, [m_models, m_method, m_weights, m_t, m_density, lang], [task_id, timer, progress])
    sc_go.click(on_scan, [sc_a, sc_b, sc_set, sc_points, lang], [task_id, timer, progress])
    q_go.click(on_quantize, [q_version, q_method, lang], [task_id, timer, progress])
    s_go.click(on_select, [s_job, s_metric, lang], [result, progress])
    timer.tick(_task_poller(ctx), [task_id, lang], [timer, progress, result, chart])


STATUS_FACTS = (("phase", "key_phase"), ("production", "key_production"), ("candidate", "key_candidate"),
                ("round", "key_round"), ("paused", "key_paused"), ("votes_this_week", "key_votes_this_week"),
                ("pending_pairs", "key_pending_pairs"), ("pending_feedback", "key_pending_feedback"),
                ("next_trigger", "key_next_trigger"), ("rollout_stage", "key_rollout_stage"),
                ("last_round", "key_last_round"))


def status_facts(st: dict[str, Any] | None, lang: str) -> str:
    if not st:
        return ""
    pairs = [(key, st.get(field)) for field, key in STATUS_FACTS if field in st]
    for i, (key, v) in enumerate(pairs):
        if key == "key_paused":
            pairs[i] = (key, t("yes", lang) if v else t("no", lang))
        elif key == "key_round" and isinstance(v, dict):
            pairs[i] = (key, f"{v.get('id')}: {v.get('production')} → {v.get('candidate') or '—'}")
    return facts(pairs, lang)


def split_facts(split: dict[str, Any] | None, lang: str) -> str:
    if not split:
        return ""
    shares = split.get("shares") or {}
    lines = [f"| {t('col_name', lang)} | {t('col_share', lang)} |", "|---|---|"]
    lines += [f"| {name} | {100 * share:.0f}% |" for name, share in shares.items()]
    who = split.get("actor") or t("split_default", lang)
    note = t("split_set_by", lang, who=who, reason=split.get("reason") or "—", when=split.get("created_at") or "—")
    return "\n".join(lines) + "\n\n" + short_times(note)


def split_text(split: dict[str, Any] | None) -> str:
    weights = (split or {}).get("weights") or {}
    return ", ".join(f"{k}={v:g}" for k, v in weights.items())


def parse_split(text: str) -> dict[str, float]:
    """"production=90, candidate=10" → weights; ValueError naming the part it cannot read."""
    from llmloop.serve.routing import parse_weights

    weights = parse_weights(text)
    if not weights:
        raise ValueError(text)
    return weights


def build_models(ctx: Ctx, lang: Any):  # noqa: ANN201 - returns the tab's loader and its outputs
    """Versions and aliases, the loop and the split; an admin's rollout actions, each one confirmed
    with its consequence spelled out and a reason required (it lands in the loop's events, the alias
    history or the split history — the audit log)."""
    import gradio as gr

    L, c = ctx.label, ctx.client
    columns = VERSION_COLUMNS if ctx.annotator else USER_VERSION_COLUMNS
    versions = ctx.frame(columns, "models_table", elem_id="models-table", wrap=True)
    refresh = L(gr.Button(ctx.t("refresh"), elem_id="models-refresh"), "refresh", "value")
    with gr.Row():
        with gr.Column():
            L(gr.Markdown(f"### {ctx.t('loop_status')}"), "loop_status_title", "value")
            loop_status = gr.Markdown(elem_id="loop-status")
        with gr.Column():
            L(gr.Markdown(f"### {ctx.t('traffic_split')}"), "traffic_split_title", "value")
            split = gr.Markdown(elem_id="traffic-split")
    with gr.Row(visible=ctx.annotator):
        pick = L(gr.Textbox(label=ctx.t("surgery_version"), scale=2, elem_id="lineage-version"), "surgery_version")
        show_lineage = L(gr.Button(ctx.t("models_lineage"), elem_id="lineage-show"), "models_lineage", "value")
    lineage = gr.Markdown(elem_id="lineage")
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
            alias = L(gr.Textbox("production", label=ctx.t("alias_name"), elem_id="alias-name"), "alias_name")
            target = L(gr.Textbox(label=ctx.t("alias_version"), elem_id="alias-version"), "alias_version")
            set_alias = L(gr.Button(ctx.t("alias_set"), elem_id="alias-set"), "alias_set", "value")
        with gr.Row():
            split_edit = L(gr.Textbox(label=ctx.t("split_edit"), elem_id="split-edit", scale=3,
                                      placeholder="production=90, candidate=10"), "split_edit")
            set_split = L(gr.Button(ctx.t("split_set"), elem_id="split-set"), "split_set", "value")
    with gr.Group(visible=False, elem_id="confirm-box", elem_classes=["llmloop-confirm"]) as confirm_box:
        confirm_text = gr.Markdown(elem_id="confirm-text")
        with gr.Row():
            yes = L(gr.Button(ctx.t("confirm_yes"), variant="stop", elem_id="confirm-yes"), "confirm_yes", "value")
            no = L(gr.Button(ctx.t("confirm_no"), elem_id="confirm-no"), "confirm_no", "value")
    pending = gr.State(None)  # the action waiting for its confirmation
    if not ctx.admin:
        L(gr.Markdown(ctx.t("rollout_admin_only"), elem_id="rollout-admin-only"), "rollout_admin_only", "value")
    status = gr.Markdown(elem_id="rollout-status")
    rounds = ctx.frame(ROUND_COLUMNS, "loop_rounds", elem_id="loop-rounds", visible=ctx.annotator)
    events = ctx.frame(EVENT_COLUMNS, "loop_events", elem_id="loop-events", wrap=True, visible=ctx.annotator)

    def piece(fn: Any, default: Any) -> Any:
        try:
            return fn()
        except GatewayError:
            return default

    def load(lng: str | None = None) -> tuple:
        lng = lng or ctx.lang0
        if not ctx.annotator:  # what the OpenAI API lists: versions (an alias is shown on its version)
            cards = piece(c.models, [])
            found = [{"name": m["id"], "kind": m.get("kind"), "stage": m.get("stage"), "aliases": m.get("aliases"),
                      "parent": m.get("parent")} for m in cards
                     if m.get("kind") and (not m.get("root") or m.get("root") == m["id"])]
            return (table(found, columns, lng), "", "", "", empty_table(ROUND_COLUMNS, lng),
                    empty_table(EVENT_COLUMNS, lng))
        hist = piece(lambda: c.get("/loop/history", limit=50), {"rounds": [], "events": []})
        current = piece(lambda: c.get("/loop/split"), None)
        return (table(piece(lambda: c.get("/models"), []), columns, lng),
                status_facts(piece(lambda: c.get("/loop/status"), None), lng), split_facts(current, lng),
                split_text(current), table(hist["rounds"], ROUND_COLUMNS, lng), table(hist["events"], EVENT_COLUMNS, lng))

    outputs = [versions, loop_status, split, split_edit, rounds, events]
    hide = gr.update(visible=False)

    def ask(action: str) -> Any:
        """First click: check the request, then spell out what it will do and wait for the second."""
        def run(why: str, name: str, version: str, weights: str, lng: str) -> tuple:
            if not (why or "").strip():
                return None, hide, "", t("reason_needed", lng)
            st = piece(lambda: c.get("/loop/status"), {}) or {}
            prod, cand = st.get("production") or "—", st.get("candidate") or "—"
            payload: dict[str, Any] = {"reason": why.strip()}
            if action == "alias":
                if not name.strip() or not version.strip():
                    return None, hide, "", t("alias_needed", lng)
                payload.update(alias=name.strip(), version=version.strip())
                text = t("confirm_alias", lng, alias=name.strip(), version=version.strip())
            elif action == "split":
                try:
                    payload["weights"] = parse_split(weights or "")
                except ValueError as e:
                    return None, hide, "", t("split_bad", lng, part=str(e))
                text = t("confirm_split", lng, split=", ".join(f"{k}={v:g}" for k, v in payload["weights"].items()))
            else:
                text = t(f"confirm_{action}", lng, production=prod, candidate=cand)
            return ({"action": action, "payload": payload}, gr.update(visible=True),
                    text + "\n\n" + t("confirm_reason", lng, reason=why.strip()), "")
        return run

    def on_yes(todo: dict | None, lng: str) -> tuple:
        if not todo:
            return (None, hide, *[gr.skip()] * len(outputs), gr.skip(), t("confirm_nothing", lng))
        action, payload = todo["action"], todo["payload"]
        try:
            if action == "alias":
                c.put(f"/models/aliases/{payload['alias']}", {"version": payload["version"], "reason": payload["reason"]})
                note = t("alias_moved", lng, alias=payload["alias"], version=payload["version"])
            elif action == "split":
                view = c.put("/loop/split", {"weights": payload["weights"], "reason": payload["reason"]})
                note = t("split_changed", lng, split=split_text(view))
            else:
                r = c.post(f"/loop/{action}", {"reason": payload["reason"]})
                note = t(f"done_{action}", lng, production=(r or {}).get("production") or "—")
        except GatewayError as e:
            return (None, hide, *[gr.skip()] * len(outputs), gr.skip(), error_text(e, lng))
        return (None, hide, *load(lng), "", note)

    refresh.click(load, lang, outputs)
    show_lineage.click(lambda name, lng: lineage_text(c, name, lng), [pick, lang], lineage)
    ask_inputs = [reason, alias, target, split_edit, lang]
    for button, action in ((promote, "promote"), (rollback, "rollback"), (pause, "pause"), (resume, "resume"),
                           (set_alias, "alias"), (set_split, "split")):
        button.click(ask(action), ask_inputs, [pending, confirm_box, confirm_text, status])
    yes.click(on_yes, [pending, lang], [pending, confirm_box, *outputs, reason, status])
    no.click(lambda lng: (None, hide, t("confirm_cancelled", lng)), lang, [pending, confirm_box, status])
    return ctx.on_switch(load, outputs)


def lineage_text(c: Any, name: str, lng: str) -> str:
    try:
        found = c.get(f"/models/{name.strip()}/lineage")
    except GatewayError as e:
        return error_text(e, lng)
    chain = " ← ".join(f"{v['name']} ({v.get('stage') or v.get('kind')})" for v in found["ancestry"])
    surgery = found.get("surgery")
    if surgery:
        chain += "\n\n" + t("lineage_surgery", lng, op=surgery.get("operation", "?"),
                             parents=", ".join(surgery.get("parents") or []))
    return chain


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
    totals = ctx.frame(TOTAL_COLUMNS, "monitor_totals", elem_id="monitor-totals")
    timer = gr.Timer(MONITOR_SECONDS, active=True)

    def load(lng: str | None = None) -> tuple:
        lng = lng or ctx.lang0
        try:
            series = c.get("/monitor")["versions"]
        except GatewayError:
            return (*[empty] * len(SERIES), empty_table(TOTAL_COLUMNS, lng))
        frames, now = [], time.time()
        for field, _key in SERIES:
            data = [(round(p["time"] - now, 1), p[field], v) for v, pts in series.items() for p in pts
                    if p[field] is not None]
            frames.append(pd.DataFrame(data, columns=[x, "value", "version"]) if data else empty)
        last = [{"version": v, "requests_total": pts[-1]["requests_total"], "thumbs_total": pts[-1]["thumbs_total"]}
                for v, pts in series.items() if pts]
        return (*frames, table(last, TOTAL_COLUMNS, lng))

    timer.tick(load, lang, [*plots, totals])
    return (lambda: load(ctx.lang0)), [*plots, totals]
