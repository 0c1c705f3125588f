"""The Gradio UI: ``build_ui(client)`` → ``gr.Blocks``.

Each callback is a thin adapter: read the widgets, make one ``GatewayClient`` call, render. The UI
holds no logic of its own and never touches the database: roles, validation and storage are the
gateway's, so the UI is exactly as trustworthy as any other API client. Labels come from
``ui/i18n.py``; the language radio re-labels every registered widget in place.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

from llmloop.ui import tab_data, tab_eval, tab_ops, tab_train
from llmloop.ui.client import GatewayClient, GatewayError
from llmloop.ui.common import Ctx
from llmloop.ui.i18n import LANGUAGES, t


def _arena_counts(client: GatewayClient, lang: str) -> str:
    """Votes collected this week against the loop's trigger (needs an annotator key)."""
    try:
        st = client.get("/loop/status")
    except GatewayError:
        return ""
    trigger = st.get("trigger") or {}
    pending = st.get("pending_pairs", sum((st.get("pending_feedback") or {}).values()))
    return t("arena_counts", lang, week=st["votes_this_week"], pairs=pending, need=trigger.get("min_new_pairs", "?"))


def build_ui(client: GatewayClient, *, default_language: str = "en", role: str | None = None):  # noqa: ANN201 - gr.Blocks
    """The whole UI over ``client``. ``role`` (user | annotator | admin) decides which controls are
    shown; by default it is asked from the gateway (``GET /api/v1/whoami``) — pass it when the
    gateway is not answering yet (the UI mounted on the gateway's own app). The gateway enforces
    roles either way."""
    import gradio as gr

    labelled: list[tuple[Any, str, str]] = []  # (component, i18n key, attribute to set)

    def L(component: Any, key: str, attr: str = "label") -> Any:  # noqa: N802 - reads as a marker
        labelled.append((component, key, attr))
        return component

    lang0 = default_language
    if role is None:
        who = client.whoami()
        role = who["role"] if who else None
    ctx = Ctx(client=client, lang0=lang0, role=role, label=L)
    loaders: list[tuple[Callable[[], Any], list[Any]]] = []
    with gr.Blocks(title="llmloop") as ui:
        lang = gr.State(lang0)
        user = gr.State(lambda: f"ui-{uuid.uuid4().hex[:12]}")
        header = L(gr.Markdown(f"## {t('title', lang0)}\n{t('subtitle', lang0)}", elem_id="header"),
                   "subtitle", "value")
        with gr.Row():
            language = L(gr.Radio(choices=[(v, k) for k, v in LANGUAGES.items()], value=lang0,
                                  label=t("language", lang0), elem_id="language"), "language")
            role_key = f"role_{ctx.role}" if ctx.role else "role_none"
            L(gr.Markdown(t(role_key, lang0), elem_id="role"), role_key, "value")

        with gr.Tabs():
            # -- Chat ------------------------------------------------------------------------------
            with L(gr.Tab(t("tab_chat", lang0), id="chat", elem_id="tab-chat"), "tab_chat"):
                last_request = gr.State(None)
                chatbot = L(gr.Chatbot(label=t("chat_box", lang0), elem_id="chatbot", height=320), "chat_box")
                msg = L(gr.Textbox(label=t("chat_input", lang0), elem_id="chat-input"), "chat_input")
                with gr.Row():
                    send = L(gr.Button(t("send", lang0), variant="primary", elem_id="chat-send"), "send", "value")
                    reset = L(gr.Button(t("reset", lang0), elem_id="chat-reset"), "reset", "value")
                comment = L(gr.Textbox(label=t("comment", lang0), elem_id="chat-comment"), "comment")
                with gr.Row():
                    up = L(gr.Button(t("thumbs_up", lang0), elem_id="thumbs-up"), "thumbs_up", "value")
                    down = L(gr.Button(t("thumbs_down", lang0), elem_id="thumbs-down"), "thumbs_down", "value")
                correction = L(gr.Textbox(label=t("correction", lang0), lines=3, elem_id="chat-correction"),
                               "correction")
                send_fix = L(gr.Button(t("send_correction", lang0), elem_id="chat-send-correction"),
                             "send_correction", "value")
                chat_status = gr.Markdown(elem_id="chat-status")

            def on_send(text: str, history: list[dict], uid: str, lng: str) -> Iterator[tuple]:
                history = list(history or []) + [{"role": "user", "content": text}]
                messages = [{"role": m["role"], "content": _plain(m["content"])} for m in history]
                answer = None
                try:
                    for answer in client.chat_stream(messages, user=uid):
                        yield history + [{"role": "assistant", "content": answer.text}], "", None, ""
                except GatewayError as e:
                    yield history, text, None, t("error", lng, msg=e)
                    return
                if answer is not None:  # done: now it can be rated, and the page says who answered
                    yield (history + [{"role": "assistant", "content": answer.text}], "", answer.request_id,
                           t("answered_by", lng, version=answer.version or "?", id=answer.request_id or "?"))

            def rate(rating: int) -> Callable[..., str]:
                def on_rate(request_id: str | None, uid: str, note: str, fix: str, lng: str) -> str:
                    if not request_id:
                        return t("nothing_to_rate", lng)
                    try:
                        saved = client.thumbs(request_id, rating, user=uid, comment=note or "",
                                              correction=(fix or None) if rating < 0 else None)
                    except GatewayError as e:
                        return t("error", lng, msg=e)
                    return t("feedback_saved", lng, id=saved["id"])
                return on_rate

            send.click(on_send, [msg, chatbot, user, lang], [chatbot, msg, last_request, chat_status])
            msg.submit(on_send, [msg, chatbot, user, lang], [chatbot, msg, last_request, chat_status])
            reset.click(lambda: ([], None, "", "", ""), None, [chatbot, last_request, comment, correction, chat_status])
            up.click(rate(1), [last_request, user, comment, correction, lang], chat_status)
            down.click(rate(-1), [last_request, user, comment, correction, lang], chat_status)
            send_fix.click(rate(-1), [last_request, user, comment, correction, lang], chat_status)

            # -- Arena -----------------------------------------------------------------------------
            with L(gr.Tab(t("tab_arena", lang0), id="arena", elem_id="tab-arena"), "tab_arena"):
                battle = gr.State(None)
                prompt = L(gr.Textbox(label=t("arena_prompt", lang0), elem_id="arena-prompt"), "arena_prompt")
                go = L(gr.Button(t("arena_go", lang0), variant="primary", elem_id="arena-go"), "arena_go", "value")
                with gr.Row():
                    ans_a = L(gr.Textbox(label=t("answer_a", lang0), lines=6, interactive=False,
                                         elem_id="answer-a"), "answer_a")
                    ans_b = L(gr.Textbox(label=t("answer_b", lang0), lines=6, interactive=False,
                                         elem_id="answer-b"), "answer_b")
                with gr.Row():
                    vote_buttons = {
                        choice: L(gr.Button(t(f"vote_{choice}", lang0), elem_id=f"vote-{choice}"),
                                  f"vote_{choice}", "value")
                        for choice in ("a", "b", "tie", "both_bad")
                    }
                arena_status = gr.Markdown(elem_id="arena-status")
                arena_counts = gr.Markdown(elem_id="arena-counts")

            def on_battle(text: str, uid: str, lng: str) -> tuple:
                try:
                    b = client.arena(text, user=uid)
                except GatewayError as e:
                    return None, "", "", t("error", lng, msg=e)
                by_slot = {a["slot"]: a["content"] for a in b["answers"]}
                return b["battle_id"], by_slot["a"], by_slot["b"], ""

            def voter(choice: str) -> Callable[..., tuple]:
                def on_vote(battle_id: str | None, uid: str, lng: str) -> tuple:
                    if not battle_id:
                        return battle_id, t("no_battle", lng), gr.skip()
                    try:
                        v = client.vote(battle_id, choice, user=uid)
                    except GatewayError as e:
                        return battle_id, t("error", lng, msg=e), gr.skip()
                    return (None, t("vote_saved", lng, id=v["id"], a=v["versions"]["a"], b=v["versions"]["b"]),
                            _arena_counts(client, lng))
                return on_vote

            go.click(on_battle, [prompt, user, lang], [battle, ans_a, ans_b, arena_status])
            for choice, button in vote_buttons.items():
                button.click(voter(choice), [battle, user, lang], [battle, arena_status, arena_counts])
            loaders.append((lambda: _arena_counts(client, lang0), [arena_counts]))

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

        # -- language: re-label every registered widget --------------------------------------------
        components = [c for c, _, _ in labelled]

        def on_language(lng: str) -> list:
            updates = []
            for _component, key, attr in labelled:
                text = t(key, lng)
                if key == "subtitle":
                    text = f"## {t('title', lng)}\n{text}"
                updates.append(gr.update(**{attr: text}))
            return [lng, *updates]

        language.change(on_language, language, [lang, *components])
        del header
    return ui


def _plain(content: Any) -> str:
    """Gradio 6 chat messages may hold a list of parts; the gateway wants text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    if isinstance(content, dict):
        return str(content.get("text", ""))
    return str(content)
