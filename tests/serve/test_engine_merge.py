"""Serving adapters merged into per-version copies of the base answers exactly what the attached,
switch-per-request way answers, and leaves the shared base untouched."""

from __future__ import annotations

import pytest

from llmloop.inference.base import SamplingParams
from llmloop.inference.embedded import EmbeddedEngine
from llmloop.store import registry

PROMPTS = [[{"role": "user", "content": "Where is my order?"}], [{"role": "user", "content": "Can I return a lamp?"}]]
GREEDY = SamplingParams(max_tokens=12, temperature=0)


def _lora_layers(model) -> int:  # noqa: ANN001
    return sum(1 for name, _ in model.named_modules() if name.endswith("lora_A"))


def test_merged_and_attached_adapters_answer_alike(versions):
    merged, attached = EmbeddedEngine(device="cpu", merge_adapters="always"), EmbeddedEngine(device="cpu", merge_adapters="never")
    for engine in (merged, attached):
        for name in ("v1.0", "v1.1", "c1.0"):
            engine.load(registry.get(versions, name))
    answers = {}
    for engine in (merged, attached):
        answers[engine.merge_adapters] = {
            name: [g.text for g in engine.chat_batch(name, PROMPTS, GREEDY)] for name in ("v1.0", "v1.1", "c1.0")}
    assert answers["always"] == answers["never"]
    assert answers["always"]["v1.0"] != answers["always"]["v1.1"]  # the adapters do change the answers

    base = merged._bases[registry.get(versions, "v1.0").base_model].model
    assert _lora_layers(base) == 0 and _lora_layers(merged._merged["v1.0"].model) == 0
    assert _lora_layers(attached._bases[registry.get(versions, "v1.0").base_model].model) > 0

    merged.unload("v1.0")  # the merged copy goes with its version
    assert "v1.0" not in merged._merged and merged.loaded() == ["c1.0", "v1.1"]


def test_auto_merges_small_bases_on_cpu_only(versions):
    auto = EmbeddedEngine(device="cpu")
    auto.load(registry.get(versions, "v1.0"))
    assert "v1.0" in auto._merged
    big = EmbeddedEngine(device="cpu")
    big.MERGE_AUTO_MAX_PARAMS = 10  # a base "too big" to copy per version: adapters attach to it
    big.load(registry.get(versions, "v1.0"))
    assert "v1.0" not in big._merged and _lora_layers(big._bases[registry.get(versions, "v1.0").base_model].model) > 0
    with pytest.raises(ValueError, match="auto, always or never"):
        EmbeddedEngine(device="cpu", merge_adapters="sometimes")  # type: ignore[arg-type]


def test_adapter_versions_of_one_base_share_a_batch(versions):
    """Concurrent chat requests for several versions attached to one shared base (two adapters and the
    plain base) are generated as one mixed-adapter batch, and each answers what its version answers
    alone."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    engine = EmbeddedEngine(device="cpu", merge_adapters="never")
    names = ("v1.0", "v1.1", "c1.0")
    for name in names:
        engine.load(registry.get(versions, name))
    assert len({engine.version(n).base_model for n in names}) == 1
    alone = {name: [g.text for g in engine.chat_batch(name, PROMPTS, GREEDY)] for name in names}
    requests = [(name, m) for name in names for m in PROMPTS]

    def queued() -> int:
        return sum(len(q) for q in list(engine._queue.values()))

    def wait_for(condition) -> None:  # noqa: ANN001
        deadline = time.monotonic() + 30
        while not condition():
            assert time.monotonic() < deadline, "requests did not queue"
            time.sleep(0.01)

    with ThreadPoolExecutor(len(requests)) as pool:
        with engine._lock:  # the batcher takes the first request, then waits here while the rest queue
            first = pool.submit(engine.chat, *requests[0], GREEDY)
            wait_for(lambda: engine._batcher is not None and queued() == 0)
            rest = [pool.submit(engine.chat, name, m, GREEDY) for name, m in requests[1:]]
            wait_for(lambda: queued() == len(requests) - 1)
        answers = [f.result()[0].text for f in [first, *rest]]
    assert answers == [alone[name][PROMPTS.index(m)] for name, m in requests]
    assert engine.stats["chat_batches"] == 2 and engine.stats["mixed_batches"] == 1
    assert len(set(answers)) > 2  # the versions do answer differently
