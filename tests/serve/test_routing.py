"""Sticky split by user hash: pure routing, then through the gateway with real aliases."""

from __future__ import annotations

import time

import httpx
import pytest

from llmloop.serve.config import ServeConfig
from llmloop.serve.routing import RoutingConfig, bucket, pick
from llmloop.store import registry

HI = [{"role": "user", "content": "hello"}]


def test_buckets_are_stable_uniform_and_salted() -> None:
    assert bucket("alice") == bucket("alice") and 0 <= bucket("alice") < 1
    assert bucket("alice") != bucket("alice", salt="round-2")
    bs = [bucket(f"user-{i}") for i in range(20_000)]
    assert abs(sum(b < 0.25 for b in bs) / len(bs) - 0.25) < 0.015


def test_split_matches_weights_and_is_sticky() -> None:
    cfg = RoutingConfig(weights={"production": 90, "candidate": 10})
    users = [f"user-{i}" for i in range(10_000)]
    picks = [pick(cfg, u) for u in users]
    share = picks.count("candidate") / len(picks)
    assert 0.085 < share < 0.115
    assert picks == [pick(cfg, u) for u in users]  # sticky
    # growing the candidate's share only moves users towards it: nobody flips back
    wider = RoutingConfig(weights={"production": 80, "candidate": 20})
    assert all(pick(wider, u) == "candidate" for u, was in zip(users, picks) if was == "candidate")
    # an unset alias hands its share to the first name; zero weight gets nothing
    assert {pick(cfg, u, resolves=lambda n: n != "candidate") for u in users[:500]} == {"production"}
    assert {pick(RoutingConfig(weights={"production": 1, "candidate": 0}), u) for u in users[:500]} == {"production"}


def test_split_flag_parsing_names_the_flag() -> None:
    cfg = RoutingConfig.from_split("production=90, candidate=10")
    assert cfg.normalised() == {"production": 0.9, "candidate": 0.1}
    for bad in ("production", "production=abc", "=5", "production=-1", "production=0", ""):
        with pytest.raises(ValueError, match="--split"):
            RoutingConfig.from_split(bad)
    with pytest.raises(ValueError):
        RoutingConfig(weights={"production": 1}, unknown=1)


def _version(server: str, user: str, **headers: str) -> str:
    body = {"model": "llmloop", "messages": HI, "max_tokens": 2, "temperature": 0}
    if user:
        body["user"] = user
    r = httpx.post(f"{server}/v1/chat/completions", json=body, headers=headers, timeout=60)
    assert r.status_code == 200, r.text
    assert r.headers["x-llmloop-version"] == r.json()["model"]
    return r.json()["model"]


def test_gateway_routes_users_stickily_and_follows_alias_moves(server: str, versions) -> None:
    cfg = RoutingConfig(weights={"production": 1, "candidate": 1})
    users = [f"u{i}" for i in range(16)]
    expected = {u: {"production": "v1.0", "candidate": "v1.1"}[pick(cfg, u)] for u in users}
    assert set(expected.values()) == {"v1.0", "v1.1"}
    got = {u: _version(server, u) for u in users}
    assert got == expected
    assert all(_version(server, u) == expected[u] for u in users[:4])  # again: same answerer
    # the header names the user when the body does not
    assert _version(server, "", **{"X-LLMLoop-User": users[0]}) == expected[users[0]]
    # move production (in the store, as the loop's controller does) to a version nobody loaded yet: its
    # users switch within the gateway's registry cache time, and the version is loaded lazily
    registry.register(versions, name="v1.2", kind="chat", base_model=registry.get(versions, "v1.1").base_model,
                      adapter_path=registry.get(versions, "v1.1").adapter_path, parent="v1.1")
    registry.set_alias(versions, "production", "v1.2")
    time.sleep(ServeConfig().registry_cache_seconds)
    prod_users = [u for u in users if expected[u] == "v1.0"]
    assert {_version(server, u) for u in prod_users} == {"v1.2"}
    # no candidate alias: its share falls back to production
    registry.remove_alias(versions, "candidate")
    time.sleep(ServeConfig().registry_cache_seconds)
    assert {_version(server, u) for u in users} == {"v1.2"}


def test_concurrent_chats_are_generated_as_batches(tiny_model_dir):
    """Requests that arrive while the engine is busy are generated together, each getting its own answers."""
    import datetime as dt
    from concurrent.futures import ThreadPoolExecutor

    from llmloop.inference.base import SamplingParams
    from llmloop.inference.embedded import EmbeddedEngine
    from llmloop.store.records import ModelVersion

    engine = EmbeddedEngine(device="cpu")
    engine.load(ModelVersion(name="v", kind="chat", base_model=str(tiny_model_dir), adapter_path=None, parent=None,
                             job_id=None, dataset_versions=[], metrics={}, stage="candidate", note="",
                             created_at=dt.datetime.now(dt.timezone.utc)))
    params = SamplingParams(max_tokens=24, temperature=1.0)
    prompts = [[{"role": "user", "content": f"question {i} " + "x" * i}] for i in range(12)]
    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(lambda m: engine.chat("v", m, params, n=2), prompts))
    assert all(len(r) == 2 and all(g.completion_tokens > 0 for g in r) for r in results)
    # prompt token counts are per request, so answers went back to the request that asked
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    expected = [len(tok.apply_chat_template(m, add_generation_prompt=True, tokenize=True)["input_ids"]) for m in prompts]
    assert [r[0].prompt_tokens for r in results] == expected and len(set(expected)) > 1
    assert engine.stats["chat_requests"] == 12
    assert engine.stats["chat_batches"] < 12


def _engine_with_version(tiny_model_dir, **kwargs):  # noqa: ANN001, ANN202
    import datetime as dt

    from llmloop.inference.embedded import EmbeddedEngine
    from llmloop.store.records import ModelVersion

    engine = EmbeddedEngine(device="cpu", **kwargs)
    engine.load(ModelVersion(name="v", kind="chat", base_model=str(tiny_model_dir), adapter_path=None, parent=None,
                             job_id=None, dataset_versions=[], metrics={}, stage="candidate", note="",
                             created_at=dt.datetime.now(dt.timezone.utc)))
    return engine


def test_callers_that_keep_asking_stay_batched(tiny_model_dir):
    """Eight users who each ask again as soon as they are answered (the arena's pattern) keep being
    batched together wave after wave, not served one request per generate (a lock convoy did that)."""
    from concurrent.futures import ThreadPoolExecutor

    from llmloop.inference.base import SamplingParams

    engine = _engine_with_version(tiny_model_dir)
    sizes = []
    rows = engine._chat_versions
    engine._chat_versions = lambda batch, params: sizes.append(sum(p.n for p in batch)) or rows(batch, params)
    params = SamplingParams(max_tokens=16, temperature=1.0)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: engine.chat("v", [{"role": "user", "content": f"q{i}"}], params, n=2), range(48)))
    assert sum(sizes) == 96 and engine.stats["chat_requests"] == 48
    assert len(sizes) <= 16, sizes  # about two generates per wave of eight; a convoy makes ~48


def test_batches_hold_at_most_max_batch_rows(tiny_model_dir):
    from concurrent.futures import ThreadPoolExecutor

    from llmloop.inference.base import SamplingParams

    engine = _engine_with_version(tiny_model_dir, max_batch_rows=4)
    sizes = []
    rows = engine._chat_versions
    engine._chat_versions = lambda batch, params: sizes.append(sum(p.n for p in batch)) or rows(batch, params)
    params = SamplingParams(max_tokens=8, temperature=1.0)
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda i: engine.chat("v", [{"role": "user", "content": f"q{i}"}], params, n=2), range(12)))
    assert all(len(a) == 2 for a in answers) and sum(sizes) == 24
    assert max(sizes) <= 4 and len(sizes) >= 6, sizes


def test_counting_tokens_while_a_batch_is_encoded_is_safe(tiny_model_dir):
    """Request threads count prompt tokens (unpadded) while the batcher encodes padded batches with
    the same fast tokenizer; its padding state must not leak between them."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from llmloop.inference.base import SamplingParams

    engine = _engine_with_version(tiny_model_dir)
    stop = threading.Event()
    counted = []

    def count() -> None:
        while not stop.is_set():
            counted.append(engine.count_tokens("v", [{"role": "user", "content": "hi " * (len(counted) % 7)}]))

    counters = [threading.Thread(target=count) for _ in range(2)]
    for t in counters:
        t.start()
    try:
        params = SamplingParams(max_tokens=2, temperature=1.0)
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda i: engine.chat("v", [{"role": "user", "content": "word " * (i % 9)}], params),
                                    range(64)))
    finally:
        stop.set()
        for t in counters:
            t.join()
    assert len(answers) == 64 and len(counted) > 0


def test_split_from_the_store_wins_and_moves_users_at_once(versions, engine, serve_app, llmloop_home) -> None:
    """The split the rollout/admin writes (store.traffic) overrides --split, on the next request."""
    from typer.testing import CliRunner

    from llmloop.app import create_app
    from llmloop.cli.main import app as cli
    from llmloop.store import apikeys, traffic

    users = [f"u{i}" for i in range(24)]
    with serve_app(create_app(db=versions, engine=engine)) as server:  # --split default: production=100
        assert {_version(server, u) for u in users} == {"v1.0"}
        out = CliRunner().invoke(cli, ["serve", "split", "production=50,candidate=50", "--reason", "A/B"])
        assert out.exit_code == 0 and "production 50.0%" in out.output, out.output
        time.sleep(ServeConfig().registry_cache_seconds)  # another process's change: seen within the cache time
        cfg = RoutingConfig(weights={"production": 50, "candidate": 50})
        expected = {u: {"production": "v1.0", "candidate": "v1.1"}[pick(cfg, u)] for u in users}
        assert {u: _version(server, u) for u in users} == expected
        models = httpx.get(f"{server}/v1/models").json()["data"]
        assert next(m for m in models if m["id"] == "llmloop")["routing"] == {"production": 0.5, "candidate": 0.5}
        # the admin REST endpoint writes the same history
        admin, _ = apikeys.create_key(versions, name="ops", role="admin", user_id="ops-team")
        h = {"Authorization": f"Bearer {admin}"}
        time.sleep(5.1)  # auth switches on once the key cache sees the new key
        bad = httpx.put(f"{server}/v1/admin/split", headers=h, json={"weights": {"production": -1}})
        assert bad.status_code == 422 and bad.json()["error"]["param"].startswith("weights")
        unknown = httpx.put(f"{server}/v1/admin/split", headers=h, json={"weights": {"nobody": 1}})
        assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "unknown_name"
        r = httpx.put(f"{server}/v1/admin/split", headers=h, json={"weights": {"candidate": 1}, "reason": "all in"})
        assert r.status_code == 200 and r.json()["shares"] == {"candidate": 1.0} and r.json()["actor"] == "ops-team"
        # a change through this gateway applies at once (its cache is cleared), no waiting
        body = {"model": "llmloop", "messages": HI, "max_tokens": 2, "temperature": 0, "user": users[0]}
        assert httpx.post(f"{server}/v1/chat/completions", json=body, headers=h, timeout=60).json()["model"] == "v1.1"
        history = httpx.get(f"{server}/v1/admin/split/history", headers=h).json()
        assert [(s["reason"], s["actor"]) for s in history] == [("all in", "ops-team"), ("A/B", "cli")]
        assert [s.id for s in traffic.split_history(versions)] == [s["id"] for s in history]


def test_promotion_is_loaded_before_its_first_request_and_idle_versions_unload(versions, tiny_model_dir) -> None:
    from llmloop.inference.embedded import EmbeddedEngine
    from llmloop.serve.pool import ModelPool

    engine = EmbeddedEngine(device="cpu")
    pool = ModelPool(versions, engine, RoutingConfig(), unload_idle_seconds=0.0)
    pool.preload()
    assert engine.loaded() == ["v1.0", "v1.1"]  # production and candidate
    registry.set_alias(versions, "production", "v1.1")
    registry.remove_alias(versions, "candidate")
    report = pool.reconcile()
    assert report == {"loaded": [], "unloaded": ["v1.0"]} and engine.loaded() == ["v1.1"]
    registry.set_alias(versions, "candidate", "v1.0")  # a new candidate: loaded by the reconcile, not by a user
    assert pool.reconcile()["loaded"] == ["v1.0"] and engine.loaded() == ["v1.0", "v1.1"]


def test_model_pool_cache_answers_on_the_loop_and_follows_invalidation(db) -> None:
    """Cached answers resolve without the store (``inline``); a store change is seen after the cache
    time or at once after ``invalidate``; a name found missing never hides a just-registered version."""
    from llmloop.inference.echo import EchoEngine
    from llmloop.serve.pool import ModelPool, _Stale

    registry.register(db, name="v1.0", kind="chat", base_model="echo")
    registry.register(db, name="v1.1", kind="chat", base_model="echo", parent="v1.0")
    registry.set_alias(db, "production", "v1.0")
    pool = ModelPool(db, EchoEngine(), RoutingConfig(weights={"production": 1, "candidate": 1}), cache_seconds=60)
    with pytest.raises(_Stale):  # nothing cached yet: the caller must go to the store lane
        pool.lookup("llmloop", "u1", inline=True)
    assert pool.lookup("llmloop", "u1").name == "v1.0"  # no candidate alias: its share goes to production
    assert pool.lookup("llmloop", "u1", inline=True).name == "v1.0"  # now from the cache, split included
    registry.set_alias(db, "production", "v1.1")  # as another process would
    assert pool.lookup("production", "u1", inline=True).name == "v1.0"  # within the cache time
    pool.invalidate()
    with pytest.raises(_Stale):
        pool.lookup("production", "u1", inline=True)
    assert pool.lookup("production", "u1").name == "v1.1"
    # a version missing when first asked is found once registered (missing names are not trusted for it)
    with pytest.raises(Exception, match="does not exist"):
        pool.lookup("v2.0", "u1")
    registry.register(db, name="v2.0", kind="chat", base_model="echo")
    assert pool.lookup("v2.0", "u1").name == "v2.0"
    # cache_seconds=0 reads the store every time
    fresh = ModelPool(db, EchoEngine(), RoutingConfig())
    assert fresh.lookup("production", "u1").name == "v1.1"
    registry.set_alias(db, "production", "v1.0")
    assert fresh.lookup("production", "u1").name == "v1.0"
