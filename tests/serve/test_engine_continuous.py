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


def test_a_stream_that_falls_behind_takes_the_newest_tokens(engines):
    """Outputs queued for a consumer that lags are skipped to the newest (each holds every token so far):
    fewer wake-ups than tokens, the same tokens as a consumer that keeps up."""
    import time

    _, batched = engines
    _stream(batched, PROMPTS[0])  # creates the streams of this base
    (base_path, streams), = batched._streams.items()
    tok = batched._bases[base_path].tokenizer
    ids = tok(tok.apply_chat_template(PROMPTS[5], tokenize=False, add_generation_prompt=True),
              add_special_tokens=False)["input_ids"]
    keeping_up = [list(t) for t, _ in streams.stream(ids, 24, 0.0, 1.0)]
    lagging = []
    for tokens, _finished in streams.stream(ids, 24, 0.0, 1.0):
        lagging.append(list(tokens))
        if len(lagging) == 1:
            time.sleep(1.5)  # the tiny model generates the rest meanwhile
    assert len(keeping_up[-1]) >= 4, "the tiny model stopped too early for this test"
    assert lagging[-1] == keeping_up[-1]
    assert len(lagging) < len(lagging[-1]), (len(lagging), len(lagging[-1]))


def test_incremental_detokenizer_matches_full_decode(tiny_model_dir):
    """Text decoded a few new ids at a time (tokenizers' DecodeStream) is at every step a prefix of the
    full decode (or None: nothing new to show yet), and the final text is the full decode."""
    import random

    from transformers import AutoTokenizer

    from llmloop.inference.embedded import _clean, _Detokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    rng = random.Random(0)
    for _ in range(200):
        ids = [rng.randrange(len(tok)) for _ in range(rng.randrange(1, 40))]
        detok, n = _Detokenizer(tok), 0
        assert detok.backend is not None  # the fast path is the one under test
        while n < len(ids):
            n = min(len(ids), n + rng.choice([1, 1, 2, 3]))
            text = detok.text(ids[:n], final=False)
            full = _clean(tok.decode(ids[:n], skip_special_tokens=True))
            assert text is None or full.startswith(text), (ids[:n], text, full)
        assert detok.text(ids, final=True) == _clean(tok.decode(ids, skip_special_tokens=True))
