"""Streams batched continuously (inference/continuous.py) answer what the serialised path answers, run side
by side, honour stop strings, and leave adapter versions on the serialised path."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor

import pytest

from llmloop.inference.base import SamplingParams, StreamResult
from llmloop.inference.embedded import EmbeddedEngine
from llmloop.store.records import ModelVersion

GREEDY = SamplingParams(max_tokens=16, temperature=0)
PROMPTS = [[{"role": "user", "content": f"Where is my order {i}?" + " please" * i}] for i in range(6)]


def _version(base: str, name: str = "v", adapter: str | None = None) -> ModelVersion:
    return ModelVersion(name=name, kind="chat", base_model=base, adapter_path=adapter, parent=None, job_id=None,
                        dataset_versions=[], metrics={}, stage="candidate", note="",
                        created_at=dt.datetime.now(dt.timezone.utc))


def _stream(engine: EmbeddedEngine, messages, params=GREEDY) -> tuple[str, StreamResult]:  # noqa: ANN001
    result = StreamResult()
    text = "".join(engine.chat_stream("v", messages, params, result))
    return text, result


@pytest.fixture(scope="module")
def engines(tiny_model_dir):  # noqa: ANN001, ANN201
    serial = EmbeddedEngine(device="cpu", continuous_batching="off")
    batched = EmbeddedEngine(device="cpu", continuous_batching="on")
    for engine in (serial, batched):
        engine.load(_version(str(tiny_model_dir)))
    yield serial, batched
    for streams in batched._streams.values():
        streams.close()


def test_continuous_streams_answer_as_the_serialised_path(engines):
    serial, batched = engines
    for messages in PROMPTS[:3]:
        (a, ra), (b, rb) = _stream(serial, messages), _stream(batched, messages)
        assert a == b and ra.text == rb.text
        assert (ra.prompt_tokens, ra.completion_tokens, ra.finish_reason) == (rb.prompt_tokens, rb.completion_tokens, rb.finish_reason)
    assert batched._streams, "the batched engine did not take the continuous path"
    assert not serial._streams


def test_concurrent_streams_all_finish_and_stop_strings_hold(engines):
    serial, batched = engines
    expected = [_stream(serial, m)[0] for m in PROMPTS]
    with ThreadPoolExecutor(len(PROMPTS)) as pool:
        got = list(pool.map(lambda m: _stream(batched, m)[0], PROMPTS))
    assert got == expected
    text = expected[0]
    if len(text) > 4:
        stop = text[2:4]
        cut, result = _stream(batched, PROMPTS[0], SamplingParams(max_tokens=16, temperature=0, stop=(stop,)))
        assert cut == text[: text.find(stop)] and result.finish_reason == "stop"


def test_seeded_and_adapter_versions_keep_the_serialised_path(engines):
    _, batched = engines
    assert batched._continuous("v", SamplingParams(seed=1)) is None
    assert batched._continuous("v", GREEDY) is not None
    with pytest.raises(ValueError, match="continuous_batching"):
        EmbeddedEngine(device="cpu", continuous_batching="sometimes")  # type: ignore[arg-type]
