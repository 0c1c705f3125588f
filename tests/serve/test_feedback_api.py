"""Arena battles, votes and thumbs end to end through a real server, checked in the store."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from llmloop.app import create_app
from llmloop.store import feedback, registry

HI = [{"role": "user", "content": "My lamp arrived broken."}]


def _arena(server: str, user: str = "voter", **extra) -> httpx.Response:  # noqa: ANN003
    return httpx.post(f"{server}/v1/arena", json={"messages": HI, "user": user, "max_tokens": 6, **extra}, timeout=60)


def test_arena_hides_versions_until_the_vote(server: str, versions) -> None:
    battles = []
    for _ in range(12):
        r = _arena(server)
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"battle_id", "answers", "turn"} and body["turn"] == 1
        assert [a["slot"] for a in body["answers"]] == ["a", "b"]
        assert all(set(a) == {"slot", "content", "request_id"} for a in body["answers"])
        assert "x-llmloop-version" not in r.headers
        battles.append(body)
    stored = [feedback.get_battle(versions, b["battle_id"]) for b in battles]
    assert all({s.version_a, s.version_b} == {"v1.0", "v1.1"} for s in stored)  # production vs candidate
    assert {s.version_a for s in stored} == {"v1.0", "v1.1"}  # order is randomised
    first, battle = battles[0], stored[0]
    assert feedback.get_completion(versions, first["answers"][0]["request_id"]).output == first["answers"][0]["content"]

    r = httpx.post(f"{server}/v1/feedback/vote", json={"battle_id": first["battle_id"], "choice": "b", "user": "voter"})
    assert r.status_code == 201, r.text
    assert r.json()["versions"] == {"a": battle.version_a, "b": battle.version_b}
    (row,) = feedback.voted_battles(versions)
    assert (row.battle_id, row.choice, row.user_id, row.vote_id) == (first["battle_id"], "b", "voter", r.json()["id"])
    assert (row.output_a, row.output_b) == tuple(a["content"] for a in first["answers"])
    # the user can also come from the header
    r = httpx.post(f"{server}/v1/feedback/vote", json={"battle_id": battles[1]["battle_id"], "choice": "tie"},
                   headers={"X-LLMLoop-User": "header-user"})
    assert r.status_code == 201 and feedback.voted_battles(versions)[-1].user_id == "header-user"


def test_bad_votes_are_refused_and_nothing_is_stored(server: str, versions) -> None:
    battle_id = _arena(server).json()["battle_id"]
    url = f"{server}/v1/feedback/vote"
    assert httpx.post(url, json={"battle_id": battle_id, "choice": "a", "user": "u"}).status_code == 201
    before = feedback.count_votes(versions)
    dup = httpx.post(url, json={"battle_id": battle_id, "choice": "b", "user": "u"})
    assert dup.status_code == 409 and dup.json()["error"]["code"] == "duplicate_vote"
    missing = httpx.post(url, json={"battle_id": "battle-nope", "choice": "a", "user": "u"})
    assert missing.status_code == 404 and missing.json()["error"]["param"] == "battle_id"
    bad = httpx.post(url, json={"battle_id": battle_id, "choice": "c", "user": "u2"})
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "choice"
    assert httpx.post(url, json={"choice": "a"}).status_code == 422
    assert feedback.count_votes(versions) == before
    assert _arena(server, temperature=0).status_code == 422  # the arena always samples


def test_thumbs_on_served_answers(server: str, versions) -> None:
    chat = httpx.post(f"{server}/v1/chat/completions", timeout=60,
                      json={"model": "llmloop", "messages": HI, "max_tokens": 4, "user": "rater"}).json()
    url = f"{server}/v1/feedback/thumbs"
    up = httpx.post(url, json={"request_id": chat["id"], "rating": "up", "user": "rater"})
    down = httpx.post(url, json={"request_id": chat["id"], "rating": -1, "comment": "wrong",
                                 "correction": "Sorry! We will send a new lamp.", "user": "rater"})
    assert (up.status_code, down.status_code) == (201, 201)
    assert up.json() == {"id": up.json()["id"], "request_id": chat["id"], "rating": 1}
    rows = feedback.list_thumbs(versions)
    assert [(t.rating, t.comment, t.correction, t.user_id) for t in rows] == [
        (1, "", None, "rater"), (-1, "wrong", "Sorry! We will send a new lamp.", "rater")]
    for body, status in [({"request_id": "chatcmpl-nope", "rating": 1}, 404),
                         ({"request_id": chat["id"], "rating": 0}, 422),
                         ({"request_id": chat["id"], "rating": "meh"}, 422),
                         ({"request_id": chat["id"], "rating": True}, 422),
                         ({"request_id": chat["id"], "rating": 1, "comment": "nul\x00"}, 422)]:
        r = httpx.post(url, json=body)
        assert r.status_code == status, (body, r.text)
        assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    assert len(feedback.list_thumbs(versions)) == 2


def test_arena_without_candidate_samples_production_twice(db, register, serve_app, engine) -> None:
    with serve_app(create_app(db=db, engine=engine)) as server:
        assert _arena(server).status_code == 503  # no production version yet
        register(db, candidate=False)
        body = _arena(server).json()
        battle = feedback.get_battle(db, body["battle_id"])
        assert (battle.version_a, battle.version_b) == ("v1.0", "v1.0")
        assert body["answers"][0]["content"] != body["answers"][1]["content"]  # two samples, not one
        registry.set_alias(db, "candidate", "v1.0")  # an alias to the same version is no contest either
        battle = feedback.get_battle(db, _arena(server).json()["battle_id"])
        assert (battle.version_a, battle.version_b) == ("v1.0", "v1.0")


@pytest.mark.parametrize("path", ["/v1/feedback/vote", "/v1/feedback/thumbs", "/v1/arena"])
def test_feedback_endpoints_refuse_non_json(server: str, path: str) -> None:
    r = httpx.post(f"{server}{path}", content=b"choice=a", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "json_invalid"


def test_votes_do_not_wait_behind_generation(server: str, versions) -> None:
    # The tiny model may stop early at EOS and a fast machine may finish a reply before the vote is
    # sent: a try counts only when some generation is still running once the vote has been answered.
    body = {"model": "production", "messages": HI, "max_tokens": 200, "temperature": 0.9}
    overlapped = False
    for attempt in range(6):
        battle_id = _arena(server).json()["battle_id"]
        chats = [threading.Thread(target=httpx.post, args=(f"{server}/v1/chat/completions",),
                                  kwargs={"json": body, "timeout": 120}) for _ in range(4)]
        for t in chats:
            t.start()
        time.sleep(0.05 * (attempt + 1))
        r = httpx.post(f"{server}/v1/feedback/vote", json={"battle_id": battle_id, "choice": "a", "user": f"busy{attempt}"})
        assert r.status_code == 201
        overlapped = any(t.is_alive() for t in chats)
        for t in chats:
            t.join()
        if overlapped:
            break
    assert overlapped, "every generation finished before its vote in 6 tries: the test proves nothing"
