"""Probes and Prometheus metrics."""

from __future__ import annotations

import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from llmloop.app import create_app


def _samples(server: str) -> dict[tuple[str, frozenset], float]:
    r = httpx.get(f"{server}/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for fam in text_string_to_metric_families(r.text) for s in fam.samples}


def test_ready_needs_a_loaded_production_version(db, register, serve_app, engine) -> None:
    with serve_app(create_app(db=db, engine=engine)) as server:
        assert httpx.get(f"{server}/health").json() == {"status": "ok"}
        r = httpx.get(f"{server}/ready")
        assert r.status_code == 503 and "production" in r.json()["reasons"][0]
        register(db)  # production now names a version; the probe itself gets it loaded
        deadline = time.monotonic() + 60
        while (r := httpx.get(f"{server}/ready")).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert r.status_code == 200 and r.json()["production"] == "v1.0" and "v1.0" in r.json()["loaded"]


def test_metrics_count_requests_tokens_and_feedback_per_version(versions, engine, serve_app) -> None:
    # two apps in one process: each has its own registry, nothing clashes
    with serve_app(create_app(db=versions, engine=engine)) as one, serve_app(create_app(db=versions, engine=engine)) as two:
        chat = httpx.post(f"{one}/v1/chat/completions", timeout=60, json={
            "model": "production", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}).json()
        httpx.post(f"{one}/v1/chat/completions", json={"model": "v7", "messages": [{"role": "user", "content": "x"}]})
        httpx.post(f"{one}/v1/feedback/thumbs", json={"request_id": chat["id"], "rating": "down"})
        with httpx.stream("POST", f"{one}/v1/chat/completions", timeout=60, json={
                "model": "candidate", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3,
                "stream": True}) as r:
            assert list(r.iter_lines())[-2:] == ["data: [DONE]", ""]
        s = _samples(one)
        chat_ok = ("llmloop_requests_total", frozenset({"endpoint": "/v1/chat/completions", "status": "200", "version": "v1.0"}.items()))
        assert s[chat_ok] == 1
        assert s[("llmloop_requests_total", frozenset({"endpoint": "/v1/chat/completions", "status": "404", "version": "none"}.items()))] == 1
        assert s[("llmloop_requests_total", frozenset({"endpoint": "/v1/chat/completions", "status": "200", "version": "v1.1"}.items()))] == 1
        assert s[("llmloop_generation_tokens_total", frozenset({"version": "v1.0", "adapter": "v1.0"}.items()))] >= 1
        assert s[("llmloop_thumbs_up_ratio", frozenset({"version": "v1.0"}.items()))] == 0.0
        assert s[("llmloop_request_errors_total", frozenset({"endpoint": "/v1/chat/completions", "status": "404", "version": "none"}.items()))] == 1
        assert s[("llmloop_feedback_events_total", frozenset({"type": "thumbs_down", "version": "v1.0"}.items()))] == 1
        assert s[("llmloop_request_latency_seconds_count", frozenset({"endpoint": "/v1/chat/completions", "version": "v1.0"}.items()))] == 1
        assert s[("llmloop_time_to_first_token_seconds_count", frozenset({"version": "v1.1", "adapter": "v1.1"}.items()))] == 1
        assert chat_ok not in _samples(two)


def test_json_logs_carry_the_request_id_of_each_response(versions, engine, serve_app) -> None:
    import io
    import json
    import logging

    from llmloop.serve.logs import JsonFormatter, RequestIdFilter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("llmloop.serve")
    logger.addHandler(handler)
    level, logger.level = logger.level, logging.INFO
    try:
        with serve_app(create_app(db=versions, engine=engine)) as server:
            r = httpx.post(f"{server}/v1/chat/completions", timeout=60, json={
                "model": "production", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
            mine = httpx.get(f"{server}/v1/models", headers={"X-Request-Id": "client-chosen-1"})
            bad = httpx.get(f"{server}/v1/models", headers={"X-Request-Id": "bad id; drop table"})
    finally:
        logger.removeHandler(handler)
        logger.level = level
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    access = {line["request_id"]: line for line in lines if line["logger"] == "llmloop.serve.access"}
    chat = access[r.headers["x-request-id"]]
    assert chat["status"] == 200 and chat["path"] == "/v1/chat/completions" and chat["version"] == "v1.0"
    assert chat["answer_id"] == r.json()["id"] and chat["duration_ms"] > 0
    assert mine.headers["x-request-id"] == "client-chosen-1" and "client-chosen-1" in access
    assert bad.headers["x-request-id"].startswith("req-")  # an unsafe client id is replaced
    assert all({"time", "level", "message", "request_id"} <= set(line) for line in lines)
