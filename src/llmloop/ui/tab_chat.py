"""The Chat and Arena tabs: what every key may do (``/v1/chat/completions``, ``/v1/arena``,
``/v1/feedback/*``).

Chat talks to any version, alias or loaded adapter the gateway lists (production by default); every
answer carries its own 👍/👎 (the chatbot's thumb icons: SVG, no emoji font needed), rated once, with
the comment and better answer typed beside it — both boxes empty again after each rating. Arena shows
two anonymous answers; after the vote it says which versions answered (or that both came from one
version: an on-policy pair), clears the answers and waits for the next prompt.

Who the feedback is from: a *user* key always acts as the key's own user (the gateway refuses it
naming anyone else), so the page names nobody; annotator and admin keys (and no key, auth off) act
for each browser session's own id ``ui-…``, as a UI server acting for its people does.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr  # module level: event-data type hints (gr.LikeData, gr.SelectData) must resolve

from llmloop.ui.client import GatewayClient, GatewayError
from llmloop.ui.widgets import Ctx
from llmloop.ui.error_text import error_text
from llmloop.ui.i18n import t


def session_user(ctx: Ctx) -> Callable[[], str | None]:
    """Each browser session's user id, or None (a user key: the key's own user)."""
    if ctx.role == "user" and ctx.client.api_key:
        return lambda: None
    return lambda: f"ui-{uuid.uuid4().hex[:12]}"


def model_choices(client: GatewayClient) -> list[tuple[str, str]]:
    """(label, model) for every chat version, alias and run-time adapter the gateway serves."""
    try:
        cards = client.models()
    except GatewayError:
        return [("production", "production")]
    out: list[tuple[str, str]] = []
    for m in cards:
        if m.get("kind") not in (None, "chat") or m.get("routing"):
            continue
        root = m.get("root")
        label = m["id"] if not root or root == m["id"] else f"{m['id']} → {root}"
        if m.get("stage"):
            label += f" ({m['stage']})"
        out.append((label, m["id"]))
    out.sort(key=lambda c: (c[1] != "production", c[1] not in ("candidate",), c[1]))
    return out or [("production", "production")]


def _plain(content: Any) -> str:
    """Gradio 6 chat messages may hold a list of parts; the gateway wants text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    if isinstance(content, dict):
        return str(content.get("text", ""))
    return str(content)


def build_chat(ctx: Ctx, lang: Any, user: Any) -> tuple[Callable[[], Any], list[Any]]:
    import gradio as gr

    L, client = ctx.label, ctx.client
    answers = gr.State({})  # message index (str) → {"id": request id, "version": …, "rating": None | ±1}
    with gr.Row():
        model = L(gr.Dropdown(model_choices(client), value="production", label=ctx.t("chat_model"),
                              elem_id="chat-model", scale=3, allow_custom_value=True), "chat_model")
        refresh_models = L(gr.Button(ctx.t("refresh"), elem_id="chat-models-refresh", scale=1), "refresh", "value")
    chatbot = L(gr.Chatbot(label=ctx.t("chat_box"), elem_id="chatbot", height=340,
                           feedback_options=("Like", "Dislike")), "chat_box")
    msg = L(gr.Textbox(label=ctx.t("chat_input"), elem_id="chat-input"), "chat_input")
    with gr.Row():
        send = L(gr.Button(ctx.t("send"), variant="primary", elem_id="chat-send"), "send", "value")
        regenerate = L(gr.Button(ctx.t("regenerate"), elem_id="chat-regenerate"), "regenerate", "value")
        reset = L(gr.Button(ctx.t("reset"), elem_id="chat-reset"), "reset", "value")
    L(gr.Markdown(ctx.t("rate_help"), elem_id="chat-rate-help"), "rate_help", "value")
    with gr.Row():
        comment = L(gr.Textbox(label=ctx.t("comment"), elem_id="chat-comment"), "comment")
        correction = L(gr.Textbox(label=ctx.t("correction"), lines=3, elem_id="chat-correction"), "correction")
    send_fix = L(gr.Button(ctx.t("send_correction"), elem_id="chat-send-correction"), "send_correction", "value")
    status = gr.Markdown(elem_id="chat-status")

    def stream(history: list[dict], known: dict, uid: str | None, model_: str, lng: str) -> Iterator[tuple]:
        """Answer the conversation's last user turn; the answer joins ``known`` once complete."""
        messages = [{"role": m["role"], "content": _plain(m["content"])} for m in history]
        answer = None
        try:
            for answer in client.chat_stream(messages, user=uid, model=model_ or "production"):
                yield history + [{"role": "assistant", "content": answer.text}], known, "", True
        except GatewayError as e:
            yield history, known, error_text(e, lng), False
            return
        if answer is None:
            return
        done = history + [{"role": "assistant", "content": answer.text}]
        known = {**known, str(len(done) - 1): {"id": answer.request_id, "version": answer.version, "rating": None}}
        yield done, known, t("answered_by", lng, version=answer.version or "?", id=answer.request_id or "?"), True

    def on_send(text: str, history: list[dict], known: dict, uid: str | None, model_: str, lng: str) -> Iterator[tuple]:
        if not (text or "").strip():
            yield gr.skip(), gr.skip(), gr.skip(), t("chat_empty", lng)
            return
        history = list(history or []) + [{"role": "user", "content": text}]
        for h, k, note, ok in stream(history, dict(known or {}), uid, model_, lng):
            yield (h, k, "", note) if ok else (history[:-1], k, text, note)  # refused: the message stays in the box

    def on_regenerate(history: list[dict], known: dict, uid: str | None, model_: str, lng: str) -> Iterator[tuple]:
        history = list(history or [])
        while history and history[-1]["role"] == "assistant":
            history.pop()
        if not history:
            yield gr.skip(), gr.skip(), t("nothing_to_regenerate", lng)
            return
        known = {k: v for k, v in (known or {}).items() if int(k) < len(history)}
        for h, k, note, _ok in stream(history, known, uid, model_, lng):
            yield h, k, note

    def store(known: dict, index: str, rating: int, uid: str | None, note: str, fix: str, lng: str) -> tuple:
        """One thumbs row for the answer at ``index`` (never a second one)."""
        entry = known.get(index)
        if not entry or not entry.get("id"):
            return known, gr.skip(), gr.skip(), t("nothing_to_rate", lng)
        if entry.get("rating") is not None:
            return known, gr.skip(), gr.skip(), t("already_rated", lng, rating=t(f"rating_{entry['rating']}", lng))
        try:
            saved = client.thumbs(entry["id"], rating, user=uid, comment=note or "",
                                  correction=(fix or None) if rating < 0 else None)
        except GatewayError as e:
            return known, gr.skip(), gr.skip(), error_text(e, lng)
        known = {**known, index: {**entry, "rating": rating}}
        return known, "", "", t("feedback_saved", lng, id=saved["id"], rating=t(f"rating_{rating}", lng),
                                   version=entry.get("version") or "?")

    def on_like(known: dict, uid: str | None, note: str, fix: str, lng: str, data: gr.LikeData) -> tuple:
        index = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
        if data.liked not in (True, False):  # the icon clicked again: a stored rating stays
            return known, gr.skip(), gr.skip(), t("rating_kept", lng)
        return store(dict(known or {}), str(index), 1 if data.liked else -1, uid, note, fix, lng)

    def on_fix(known: dict, uid: str | None, note: str, fix: str, lng: str) -> tuple:
        known = dict(known or {})
        if not known:
            return known, gr.skip(), gr.skip(), t("nothing_to_rate", lng)
        if not (fix or "").strip():
            return known, gr.skip(), gr.skip(), t("correction_empty", lng)
        return store(known, max(known, key=int), -1, uid, note, fix, lng)

    inputs = [msg, chatbot, answers, user, model, lang]
    send.click(on_send, inputs, [chatbot, answers, msg, status])
    msg.submit(on_send, inputs, [chatbot, answers, msg, status])
    regenerate.click(on_regenerate, [chatbot, answers, user, model, lang], [chatbot, answers, status])
    reset.click(lambda: ([], {}, "", "", ""), None, [chatbot, answers, comment, correction, status])
    chatbot.like(on_like, [answers, user, comment, correction, lang], [answers, comment, correction, status])
    send_fix.click(on_fix, [answers, user, comment, correction, lang], [answers, comment, correction, status])
    refresh_models.click(lambda: gr.update(choices=model_choices(client)), None, model)
    return (lambda: gr.update(choices=model_choices(client))), [model]


def arena_counts(client: GatewayClient, lang: str) -> str:
    """Votes collected this week against the loop's trigger (needs an annotator key)."""
    try:
        st = client.get("/loop/status")
    except GatewayError:
        return ""
    trigger = st.get("trigger") or {}
    pending = st.get("pending_pairs", sum((st.get("pending_feedback") or {}).values()))
    return t("arena_counts", lang, week=st["votes_this_week"], pairs=pending, need=trigger.get("min_new_pairs", "?"))


def reveal(versions: dict[str, str], lang: str) -> str:
    a, b = versions.get("a", "?"), versions.get("b", "?")
    return t("reveal_same", lang, a=a) if a == b else t("reveal", lang, a=a, b=b)


def build_arena(ctx: Ctx, lang: Any, user: Any) -> tuple[Callable[[], Any], list[Any]]:
    import gradio as gr

    L, client = ctx.label, ctx.client
    battle = gr.State(None)  # {"id": battle id, "prompt": first prompt, "turn": n}
    L(gr.Markdown(ctx.t("arena_help"), elem_id="arena-help"), "arena_help", "value")
    prompt = L(gr.Textbox(label=ctx.t("arena_prompt"), elem_id="arena-prompt"), "arena_prompt")
    with gr.Row():
        go = L(gr.Button(ctx.t("arena_go"), variant="primary", elem_id="arena-go"), "arena_go", "value")
        again = L(gr.Button(ctx.t("arena_regenerate"), elem_id="arena-regenerate"), "arena_regenerate", "value")
        new_round = L(gr.Button(ctx.t("arena_new_round"), elem_id="arena-new-round"), "arena_new_round", "value")
    with gr.Row():
        ans_a = L(gr.Textbox(label=ctx.t("answer_a"), lines=6, interactive=False, elem_id="answer-a"), "answer_a")
        ans_b = L(gr.Textbox(label=ctx.t("answer_b"), lines=6, interactive=False, elem_id="answer-b"), "answer_b")
    with gr.Row():
        follow = L(gr.Textbox(label=ctx.t("arena_followup"), elem_id="arena-followup", scale=4), "arena_followup")
        follow_go = L(gr.Button(ctx.t("arena_followup_go"), elem_id="arena-followup-go", scale=1, interactive=False),
                      "arena_followup_go", "value")
    with gr.Row():
        vote_buttons = {
            choice: L(gr.Button(ctx.t(f"vote_{choice}"), elem_id=f"vote-{choice}", interactive=False),
                      f"vote_{choice}", "value")
            for choice in ("a", "b", "tie", "both_bad")
        }
    status = gr.Markdown(elem_id="arena-status")
    counts = gr.Markdown(elem_id="arena-counts")
    buttons = [*vote_buttons.values(), follow_go]

    def votable(on: bool) -> list[Any]:
        return [gr.update(interactive=on) for _ in buttons]

    def on_battle(text: str, uid: str | None, lng: str) -> tuple:
        if not (text or "").strip():
            return (gr.skip(), gr.skip(), gr.skip(), t("arena_empty", lng), *votable(False))
        try:
            b = client.arena(text, user=uid)
        except GatewayError as e:
            return (None, "", "", error_text(e, lng), *votable(False))
        by_slot = {a["slot"]: a["content"] for a in b["answers"]}
        ready = t("arena_ready", lng)  # whether both came from one version is told with the reveal
        return ({"id": b["battle_id"], "prompt": text, "turn": 1}, by_slot["a"], by_slot["b"], ready,
                *votable(True))

    def on_follow(current: dict | None, text: str, shown_a: str, shown_b: str, uid: str | None, lng: str) -> tuple:
        """The battle's next turn: each answer box shows its side's conversation, the newest answer last."""
        if not current:
            return (current, gr.skip(), gr.skip(), gr.skip(), t("arena_followup_first", lng), *votable(False))
        if not (text or "").strip():
            return (current, gr.skip(), gr.skip(), gr.skip(), t("arena_empty", lng), *[gr.skip()] * len(buttons))
        try:
            b = client.arena(text.strip(), user=uid, battle_id=current["id"])
        except GatewayError as e:
            return (current, gr.skip(), gr.skip(), gr.skip(), error_text(e, lng), *[gr.skip()] * len(buttons))
        by_slot = {a["slot"]: a["content"] for a in b["answers"]}
        asked = f"\n\n» {t('arena_you', lng)}: {text.strip()}\n\n"
        return ({**current, "turn": b["turn"]}, "", shown_a + asked + by_slot["a"], shown_b + asked + by_slot["b"],
                t("arena_turn", lng, turn=b["turn"]), *votable(True))

    def on_again(current: dict | None, text: str, uid: str | None, lng: str) -> tuple:
        return on_battle((text or "").strip() or (current or {}).get("prompt", ""), uid, lng)

    def voter(choice: str) -> Callable[..., tuple]:
        def on_vote(current: dict | None, uid: str | None, lng: str) -> tuple:
            if not current:
                return (current, gr.skip(), gr.skip(), gr.skip(), gr.skip(), t("no_battle", lng), gr.skip(), *votable(False))
            try:
                v = client.vote(current["id"], choice, user=uid)
            except GatewayError as e:
                return (current, gr.skip(), gr.skip(), gr.skip(), gr.skip(), error_text(e, lng), gr.skip(),
                        *[gr.skip()] * len(buttons))
            note = t("vote_saved", lng, id=v["id"], choice=t(f"vote_{choice}", lng)) + " " + reveal(v["versions"], lng)
            return (None, "", "", "", "", note, arena_counts(client, lng), *votable(False))
        return on_vote

    go.click(on_battle, [prompt, user, lang], [battle, ans_a, ans_b, status, *buttons])
    prompt.submit(on_battle, [prompt, user, lang], [battle, ans_a, ans_b, status, *buttons])
    again.click(on_again, [battle, prompt, user, lang], [battle, ans_a, ans_b, status, *buttons])
    follow_go.click(on_follow, [battle, follow, ans_a, ans_b, user, lang], [battle, follow, ans_a, ans_b, status, *buttons])
    follow.submit(on_follow, [battle, follow, ans_a, ans_b, user, lang], [battle, follow, ans_a, ans_b, status, *buttons])
    new_round.click(lambda: (None, "", "", "", "", "", *votable(False)), None,
                    [battle, prompt, follow, ans_a, ans_b, status, *buttons])
    for choice, button in vote_buttons.items():
        button.click(voter(choice), [battle, user, lang], [battle, prompt, follow, ans_a, ans_b, status, counts, *buttons])
    return (lambda: arena_counts(client, ctx.lang0)), [counts]
