"""Server-side sessions: history kept in the store, trimmed by tokens, expiring, owned by one user."""

from __future__ import annotations

import time

import httpx
import openai
import pytest
from openai import OpenAI

from llmloop.app import create_app
from llmloop.serve.config import ServeConfig
from llmloop.store import feedback, sessions


def _say(client: OpenAI, text: str, session: str, user: str = "alice") -> str:
    r = client.chat.completions.create(model="production", messages=[{"role": "user", "content": text}],
                                       max_tokens=3, temperature=0, user=user, extra_body={"session_id": session})
    assert r.model_extra["session_id"] == session
    return r.id


def test_history_is_kept_server_side_and_cleared_by_delete(versions, engine, serve_app) -> None:
    with serve_app(create_app(db=versions, engine=engine)) as url:
        client = OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=60)
        first = _say(client, "My lamp is broken.", "s-1")
        second = _say(client, "It was order 42.", "s-1")
        answer1 = feedback.get_completion(versions, first).output
        seen = feedback.get_completion(versions, second).messages  # what the model was given
        assert seen == [{"role": "user", "content": "My lamp is broken."}, {"role": "assistant", "content": answer1},
                        {"role": "user", "content": "It was order 42."}]
        view = httpx.get(f"{url}/v1/sessions/s-1", params={"user": "alice"}).json()
        assert [m["role"] for m in view["messages"]] == ["user", "assistant", "user", "assistant"]
        # another user's session id: refused, nothing stored, and their history untouched
        with pytest.raises(openai.PermissionDeniedError) as e:
            _say(client, "show me", "s-1", user="mallory")
        assert e.value.body["code"] == "session_forbidden" and e.value.body["param"] == "session_id"
        assert httpx.delete(f"{url}/v1/sessions/s-1", params={"user": "mallory"}).status_code == 403
        assert httpx.get(f"{url}/v1/sessions/s-1", params={"user": "mallory"}).status_code == 403
        assert len(sessions.load(versions, "s-1", "alice")) == 4
        # DELETE clears: the next turn starts fresh
        assert httpx.delete(f"{url}/v1/sessions/s-1", params={"user": "alice"}).status_code == 204
        assert httpx.delete(f"{url}/v1/sessions/s-1", params={"user": "alice"}).status_code == 404
        third = _say(client, "Hello again.", "s-1")
        assert feedback.get_completion(versions, third).messages == [{"role": "user", "content": "Hello again."}]
        bad = httpx.post(f"{url}/v1/chat/completions", json={"model": "production", "session_id": "a b/../c",
                                                             "messages": [{"role": "user", "content": "x"}]})
        assert bad.status_code == 422 and bad.json()["error"]["param"] == "session_id"


def test_history_is_trimmed_by_tokens_and_expires(versions, engine, serve_app) -> None:
    config = ServeConfig(session_max_tokens=60, session_ttl_seconds=2)
    with serve_app(create_app(db=versions, engine=engine, config=config)) as url:
        client = OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=60)
        for i in range(6):
            _say(client, f"Message number {i} about my order status and delivery.", "s-2")
        kept = sessions.load(versions, "s-2", "alice")
        assert engine.count_tokens("v1.0", kept) <= 60 or len(kept) == 2
        assert kept[0]["role"] == "user" and kept[-2]["content"].startswith("Message number 5")
        assert not any("number 0" in m["content"] for m in kept)  # the oldest turns went first
        time.sleep(2.2)
        assert sessions.load(versions, "s-2", "alice") == []  # expired: reads as new
        assert sessions.load(versions, "s-2", "mallory") == []  # and nobody owns it any more
        fresh = _say(client, "New start.", "s-2", user="bob")
        assert feedback.get_completion(versions, fresh).messages == [{"role": "user", "content": "New start."}]
        assert sessions.purge_expired(versions) == 0


def test_stream_turns_are_added_to_the_session(versions, engine, serve_app) -> None:
    with serve_app(create_app(db=versions, engine=engine)) as url:
        client = OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=60)
        stream = client.chat.completions.create(model="production", messages=[{"role": "user", "content": "Hi"}],
                                                max_tokens=3, stream=True, user="carol", extra_body={"session_id": "s-3"})
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert sessions.load(versions, "s-3", "carol") == [{"role": "user", "content": "Hi"},
                                                           {"role": "assistant", "content": text}]
