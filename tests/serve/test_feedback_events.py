"""Edit/regenerate events and buffered batches through a real server; what the store holds after."""

from __future__ import annotations

import httpx

from llmloop.store import feedback

HI = [{"role": "user", "content": "My lamp arrived broken."}]


def _chat(server: str, user: str = "u1") -> dict:
    r = httpx.post(f"{server}/v1/chat/completions", timeout=60,
                   json={"model": "production", "messages": HI, "max_tokens": 3, "user": user})
    assert r.status_code == 200, r.text
    return r.json()


def test_edit_and_regenerate_events_are_tied_to_answer_version_user_time(server: str, versions) -> None:
    first, second = _chat(server), _chat(server)
    edit = httpx.post(f"{server}/v1/feedback/event", json={
        "request_id": first["id"], "kind": "edit", "text": "Sorry! A new lamp ships today.", "user": "u1"})
    regen = httpx.post(f"{server}/v1/feedback/event", json={
        "request_id": first["id"], "kind": "regenerate", "new_request_id": second["id"], "user": "u1"})
    assert (edit.status_code, regen.status_code) == (201, 201), (edit.text, regen.text)
    assert edit.json()["version"] == "v1.0" and edit.json()["kind"] == "edit"
    rows = feedback.list_events(versions)
    assert [(e["kind"], e["request_id"], e["version"], e["user_id"]) for e in rows] == [
        ("edit", first["id"], "v1.0", "u1"), ("regenerate", first["id"], "v1.0", "u1")]
    assert rows[0]["payload"] == {"text": "Sorry! A new lamp ships today."}
    assert rows[1]["payload"] == {"new_request_id": second["id"]} and rows[1]["created_at"].tzinfo is not None
    # bad events: clean 4xx, nothing stored
    for body, status in [({"request_id": first["id"], "kind": "edit"}, 422),  # an edit needs text
                         ({"request_id": first["id"], "kind": "delete"}, 422),
                         ({"request_id": "chatcmpl-nope", "kind": "regenerate"}, 404)]:
        r = httpx.post(f"{server}/v1/feedback/event", json=body)
        assert r.status_code == status and set(r.json()["error"]) == {"message", "type", "param", "code"}, r.text
    assert len(feedback.list_events(versions)) == 2


def test_batch_is_all_or_nothing(server: str, versions) -> None:
    answer = _chat(server)
    battle = httpx.post(f"{server}/v1/arena", timeout=60, json={"messages": HI, "user": "u1", "max_tokens": 3}).json()
    good = [
        {"type": "thumbs", "request_id": answer["id"], "rating": "up", "user": "u1"},
        {"type": "vote", "battle_id": battle["battle_id"], "choice": "tie", "user": "u1"},
        {"type": "event", "request_id": answer["id"], "kind": "edit", "text": "better", "user": "u1"},
    ]
    # one bad event (a second vote of the same user on the same battle) refuses the whole batch
    bad = [*good, {"type": "vote", "battle_id": battle["battle_id"], "choice": "a", "user": "u1"}]
    r = httpx.post(f"{server}/v1/feedback/batch", json={"events": bad})
    assert r.status_code == 409 and r.json()["error"]["param"] == "events.3", r.text
    assert "nothing of the batch was stored" in r.json()["error"]["message"]
    assert (feedback.count_votes(versions), len(feedback.list_thumbs(versions)), len(feedback.list_events(versions))) == (0, 0, 0)
    r = httpx.post(f"{server}/v1/feedback/batch", json={"events": [*good[:1], {"type": "thumbs", "request_id": "nope",
                                                                               "rating": 1}]})
    assert r.status_code == 404 and r.json()["error"]["param"] == "events.1"
    r = httpx.post(f"{server}/v1/feedback/batch", json={"events": [{"type": "wave", "request_id": "x"}]})
    assert r.status_code == 422
    # the good batch: stored together, ids back in order
    r = httpx.post(f"{server}/v1/feedback/batch", json={"events": good})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["stored"] == 3 and [x["type"] for x in body["results"]] == ["thumbs", "vote", "event"]
    assert feedback.list_thumbs(versions)[0].id == body["results"][0]["id"]
    assert feedback.voted_battles(versions)[0].vote_id == body["results"][1]["id"]
    assert feedback.list_events(versions)[0]["id"] == body["results"][2]["id"]


def test_async_answer_records_keep_feedback_consistent(versions, engine, serve_app) -> None:
    """--record-answers async: the answer is queued, not awaited; feedback sent right after it still
    finds it (the writer is FIFO), and the answer is in the store once the writer drained."""
    from llmloop.app import create_app
    from llmloop.serve.config import ServeConfig

    app = create_app(db=versions, engine=engine, config=ServeConfig(record_answers="async"))
    with serve_app(app) as server:
        ids = [_chat(server, user="fast")["id"] for _ in range(3)]
        for rid in ids:
            r = httpx.post(f"{server}/v1/feedback/thumbs", json={"request_id": rid, "rating": 1, "user": "fast"})
            assert r.status_code == 201, r.text
    assert [feedback.get_completion(versions, rid).user_id for rid in ids] == ["fast"] * 3
