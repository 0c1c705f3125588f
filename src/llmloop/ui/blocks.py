"""The Gradio UI: ``build_ui(client)`` → ``gr.Blocks``.

Each callback is a thin adapter: read the widgets, make one ``GatewayClient`` call, render. The UI
holds no logic of its own and never touches the database: roles, validation and storage are the
gateway's, so the UI is exactly as trustworthy as any other API client. Labels come from
``ui/i18n.py``; the language radio re-labels every registered widget in place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmloop.ui import tab_chat, tab_data, tab_eval, tab_ops, tab_train
from llmloop.ui.client import GatewayClient
from llmloop.ui.widgets import Ctx, relabel_frame
from llmloop.ui.i18n import LANGUAGES, t


def build_ui(client: GatewayClient, *, default_language: str = "en", role: str | None = None):  # noqa: ANN201 - gr.Blocks
    """The whole UI over ``client``. ``role`` (user | annotator | admin) decides which controls are
    shown; by default it is asked from the gateway (``GET /api/v1/whoami``) — pass it when the
    gateway is not answering yet (the UI mounted on the gateway's own app). The gateway enforces
    roles either way."""
    import gradio as gr

    labelled: list[tuple[Any, str, str, dict[str, Any]]] = []  # (component, i18n key, attribute, placeholders)

    def L(component: Any, key: str, attr: str = "label") -> Any:  # noqa: N802 - reads as a marker
        labelled.append((component, key, attr, {}))
        return component

    lang0 = default_language
    who = client.whoami() if role is None else {"role": role, "user": None}
    role = who["role"] if who else None
    tables: list[tuple[Any, list[str]]] = []
    reloads: list[tuple[Callable[[str], Any], list[Any]]] = []
    ctx = Ctx(client=client, lang0=lang0, role=role, label=L, tables=tables, reloads=reloads)
    loaders: list[tuple[Callable[[], Any], list[Any]]] = []
    with gr.Blocks(title="llmloop") as ui:
        gr.HTML(f"<style>{CSS}</style>", padding=False)  # here, not Blocks(css=…): the mounted UI gets it too
        lang = gr.State(lang0)
        user = gr.State(tab_chat.session_user(ctx))
        header = L(gr.Markdown(f"## {t('title', lang0)}\n{t('subtitle', lang0)}", elem_id="header"),
                   "subtitle", "value")
        with gr.Row():
            language = L(gr.Radio(choices=[(v, k) for k, v in LANGUAGES.items()], value=lang0,
                                  label=t("language", lang0), elem_id="language"), "language")
            role_key = f"role_{ctx.role}" if ctx.role else "role_none"
            if ctx.role == "user" and not client.api_key:
                role_key = "role_anonymous"  # auth off: the gateway takes anyone as a user
            me = (who or {}).get("user") or "—"
            role_line = gr.Markdown(t(role_key, lang0, user=me), elem_id="role")
            labelled.append((role_line, role_key, "value", {"user": me}))

        with gr.Tabs():
            with L(gr.Tab(t("tab_chat", lang0), id="chat", elem_id="tab-chat"), "tab_chat"):
                loaders.append(tab_chat.build_chat(ctx, lang, user))
            with L(gr.Tab(t("tab_arena", lang0), id="arena", elem_id="tab-arena"), "tab_arena"):
                loaders.append(tab_chat.build_arena(ctx, lang, user))

            # -- Data, Train, Evaluate, Surgery (annotator/admin keys) -------------------------------
            with L(gr.Tab(t("tab_data", lang0), id="data", elem_id="tab-data"), "tab_data"):
                if ctx.annotator:
                    loaders.append(tab_data.build(ctx, lang))
                else:
                    L(gr.Markdown(t("needs_key", lang0)), "needs_key", "value")
            with L(gr.Tab(t("tab_train", lang0), id="train", elem_id="tab-train"), "tab_train"):
                if ctx.annotator:
                    loaders.append(tab_train.build(ctx, lang))
                else:
                    L(gr.Markdown(t("needs_key", lang0)), "needs_key", "value")
            with L(gr.Tab(t("tab_eval", lang0), id="eval", elem_id="tab-eval"), "tab_eval"):
                if ctx.annotator:
                    loaders.append(tab_eval.build(ctx, lang))
                else:
                    L(gr.Markdown(t("needs_key", lang0)), "needs_key", "value")
            with L(gr.Tab(t("tab_surgery", lang0), id="surgery", elem_id="tab-surgery"), "tab_surgery"):
                tab_ops.build_surgery(ctx, lang)
            # -- Models & rollout, Monitor ----------------------------------------------------------
            with L(gr.Tab(t("tab_models", lang0), id="models", elem_id="tab-models"), "tab_models"):
                loaders.append(tab_ops.build_models(ctx, lang))
            with L(gr.Tab(t("tab_monitor", lang0), id="monitor", elem_id="tab-monitor"), "tab_monitor"):
                if ctx.annotator:
                    loaders.append(tab_ops.build_monitor(ctx, lang))
                else:
                    L(gr.Markdown(t("needs_key", lang0)), "needs_key", "value")

        for load, outputs in loaders:
            if outputs:
                ui.load(load, None, outputs)

        # -- language: re-label every registered widget, and every table's headers ------------------
        components = [c for c, _, _, _ in labelled]
        frames = [c for c, _ in tables]

        def on_language(lng: str, *values: Any) -> list:
            updates = []
            for _component, key, attr, fmt in labelled:
                text = t(key, lng, **fmt)
                if key == "subtitle":
                    text = f"## {t('title', lng)}\n{text}"
                updates.append(gr.update(**{attr: text}))
            relabelled = [relabel_frame(v, cols, lng) for v, (_, cols) in zip(values, tables, strict=True)]
            return [lng, *updates, *relabelled]

        switched = language.change(on_language, [language, *frames], [lang, *components, *frames])
        for reload, outputs in reloads:  # what is drawn from the gateway's data (status tables …), redrawn
            switched = switched.then(reload, lang, outputs)
        del header
    return ui


# Tables: headers wrap at word boundaries (never one letter a line) and wide tables scroll sideways
CSS = """
.gradio-container table th, .gradio-container table td { word-break: normal; overflow-wrap: anywhere; }
.gradio-container table th { white-space: nowrap; }
.llmloop-confirm { border: 2px solid var(--error-border-color, #ef4444); border-radius: 8px; padding: 8px; }
"""
