"""The unchanged ``openai`` client against a real uvicorn server: what an OpenAI user sees."""

from __future__ import annotations

import httpx
import openai
import pytest
from openai import OpenAI

from llmloop.store import feedback

HI = [{"role": "user", "content": "Where is my order?"}]


@pytest.fixture
def client(server: str) -> OpenAI:
    return OpenAI(base_url=f"{server}/v1", api_key="x", max_retries=0, timeout=60)


def test_chat_answer_is_stored_and_carries_id_and_version(client: OpenAI, versions) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="production", messages=HI, max_tokens=8, temperature=0, user="alice")
    resp = raw.parse()
    assert resp.id.startswith("chatcmpl-") and resp.model == "v1.0"
    assert raw.headers["x-llmloop-request-id"] == resp.id and raw.headers["x-llmloop-version"] == "v1.0"
    assert resp.usage.completion_tokens > 0 and resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    stored = feedback.get_completion(versions, resp.id)
    assert (stored.output, stored.version, stored.user_id) == (resp.choices[0].message.content, "v1.0", "alice")
    assert stored.messages == HI
    # a version name, and a different adapter answers differently (greedy, same prompt)
    other = client.chat.completions.create(model="v1.1", messages=HI, max_tokens=8, temperature=0)
    assert other.model == "v1.1" and other.choices[0].message.content != resp.choices[0].message.content


def test_stream_chunks_assemble_to_the_stored_answer(client: OpenAI, versions) -> None:
    stream = client.chat.completions.create(model="candidate", messages=HI, max_tokens=12, temperature=0.9,
                                            seed=7, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    ids = {c.id for c in chunks}
    assert len(ids) == 1 and {c.model for c in chunks} == {"v1.1"}
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes in (["length"], ["stop"])
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert text and feedback.get_completion(versions, ids.pop()).output == text


def test_sampling_options_seed_stop_and_n(client: OpenAI, versions) -> None:
    kw = dict(model="production", messages=HI, max_tokens=10, temperature=1.0, top_p=0.9)
    a = client.chat.completions.create(seed=123, **kw).choices[0].message.content
    b = client.chat.completions.create(seed=123, **kw).choices[0].message.content
    assert a == b  # same seed, same sample
    greedy = client.chat.completions.create(model="production", messages=HI, max_tokens=10, temperature=0)
    full = greedy.choices[0].message.content
    assert len(full) > 3
    cut = client.chat.completions.create(model="production", messages=HI, max_tokens=10, temperature=0, stop=[full[2:4]])
    assert cut.choices[0].message.content == full[: full.index(full[2:4])]
    assert cut.choices[0].finish_reason == "stop"
    two = client.chat.completions.create(n=2, seed=5, **kw)
    assert [c.index for c in two.choices] == [0, 1]
    assert feedback.get_completion(versions, f"{two.id}-1").output == two.choices[1].message.content


def test_models_list_and_completions(client: OpenAI, versions) -> None:
    cards = {m.id: m for m in client.models.list()}
    assert {"v1.0", "v1.1", "c1.0", "production", "candidate", "llmloop"} <= set(cards)
    assert cards["production"].model_extra["root"] == "v1.0"
    assert cards["llmloop"].model_extra["routing"] == {"production": 0.5, "candidate": 0.5}
    done = client.completions.create(model="c1.0", prompt="Orders ship", max_tokens=6, temperature=0)
    assert done.model == "c1.0" and done.id.startswith("cmpl-") and done.choices[0].text
    assert feedback.get_completion(versions, done.id).output == done.choices[0].text
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model="c1.0", prompt="Orders ship", max_tokens=6, temperature=0, stream=True) if c.choices)
    assert streamed == done.choices[0].text


def test_errors_are_openai_shaped(client: OpenAI, server: str) -> None:
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="v9.9", messages=HI)
    assert e.value.body["code"] == "model_not_found" and e.value.body["param"] == "model"
    with pytest.raises(openai.BadRequestError, match="completion model"):
        client.chat.completions.create(model="c1.0", messages=HI)
    with pytest.raises(openai.UnprocessableEntityError) as e:
        client.chat.completions.create(model="v1.0", messages=[{"role": "robot", "content": "hi"}])
    assert e.value.body["param"] == "messages.0.role" and "robot" in e.value.body["message"]
    r = httpx.post(f"{server}/v1/chat/completions", content=b'{"model": "v1.0", "messages": [',
                   headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "json_invalid"
    r = httpx.post(f"{server}/v1/chat/completions", json={"model": "v1.0", "messages": []})
    assert r.status_code == 422 and set(r.json()) == {"error"}
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    assert httpx.get(f"{server}/v1/nothing").json()["error"]["type"] == "not_found_error"


def test_edge_requests(client: OpenAI, server: str) -> None:
    greedy = client.chat.completions.create(model="v1.0", messages=HI, max_tokens=4, temperature=0, n=2)
    assert len(greedy.choices) == 2 and greedy.choices[0].message.content == greedy.choices[1].message.content
    history = [*HI, {"role": "assistant", "content": None}, {"role": "user", "content": [{"type": "text", "text": "and?"}]}]
    assert client.chat.completions.create(model="v1.0", messages=history, max_tokens=2).choices[0].message.content
    r = httpx.post(f"{server}/v1/chat/completions", headers={"X-LLMLoop-User": "u" * 201},
                   json={"model": "v1.0", "messages": HI, "max_tokens": 2})
    assert r.status_code == 400 and r.json()["error"]["param"] == "user"
    with pytest.raises(openai.BadRequestError, match="tools"):
        client.chat.completions.create(model="v1.0", messages=HI, tools=[{"type": "function", "function": {"name": "f"}}])
    assert httpx.get(f"{server}/openapi.json").status_code == 200
