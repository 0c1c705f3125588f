"""Every failure after the serving version is known carries ``x-llmloop-version`` and is counted in
``/metrics`` against that version — the loop's canary reads those series to roll a version back.

The upstream here is a REAL second process: ``python -m llmloop.demo.faults`` (the ordinary gateway
whose engine fails every generation of its production version with a 502), then the same process
killed with SIGKILL (nothing listens any more). Neither error may leave as ``version="none"``.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from llmloop.app import create_app
from llmloop.inference.upstream import UpstreamEngine
from llmloop.serve.config import ServeConfig
from llmloop.serve.process import GatewayProcess
from llmloop.store import open_database, registry
from llmloop.workspace import Workspace

HI = [{"role": "user", "content": "Where is my order?"}]


def _errors(url: str) -> dict[tuple[str, str, str], float]:
    """``llmloop_request_errors_total`` by (endpoint, status, version)."""
    out = {}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        for s in family.samples:
            if s.name == "llmloop_request_errors_total":
                out[(s.labels["endpoint"], s.labels["status"], s.labels["version"])] = s.value
    return out


def _faulty_upstream(home: Path, tiny_model_dir: Path, log_path: Path) -> GatewayProcess:
    """A gateway process whose production version (``up1``, the tiny base model) fails every chat."""
    home.mkdir()
    url = f"sqlite:///{home / 'llmloop.db'}"
    db = open_database(Workspace(home=home, database_url=url).ensure())
    registry.register(db, name="up1", kind="chat", base_model=str(tiny_model_dir))
    registry.set_alias(db, "production", "up1")
    db.dispose()
    return GatewayProcess(home, log_path=log_path, module_args=("llmloop.demo.faults",),
                          extra_args=("--rate", "1", "--target", "production"),
                          env={"OMP_NUM_THREADS": "1", "LLMLOOP_DATABASE_URL": url})


@pytest.mark.slow
def test_real_upstream_5xx_and_crash_are_attributed_to_the_serving_version(
        db, tiny_model_dir: Path, tmp_path: Path, serve_app) -> None:
    registry.register(db, name="v2.0", kind="chat", base_model=str(tiny_model_dir))
    registry.set_alias(db, "production", "v2.0")
    upstream = _faulty_upstream(tmp_path / "upstream-home", tiny_model_dir, tmp_path / "upstream.log")
    upstream.start(timeout=180)
    try:
        remote = UpstreamEngine(f"{upstream.url}/v1", base_model_name="up1", timeout=30)
        with serve_app(create_app(db=db, engine=remote, config=ServeConfig(reconcile_seconds=3600))) as url:
            body = {"model": "production", "messages": HI, "max_tokens": 4}
            # the upstream answers 502 to the non-streamed request …
            r = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60)
            assert r.status_code == 502, r.text
            assert r.json()["error"]["code"] == "upstream_error" and "injected upstream failure" in r.text
            assert r.headers["x-llmloop-version"] == "v2.0" and r.headers["x-request-id"]
            # … and to the streamed one, before any token: an error response, not a 200 carrying the error
            r = httpx.post(f"{url}/v1/chat/completions", json={**body, "stream": True}, timeout=60)
            assert r.status_code == 502, r.text
            assert r.headers["x-llmloop-version"] == "v2.0" and r.json()["error"]["code"] == "upstream_error"
            assert _errors(url) == {("/v1/chat/completions", "502", "v2.0"): 2}

            upstream.kill()  # the upstream crashes: nothing listens on its port any more
            for stream in (False, True):
                r = httpx.post(f"{url}/v1/chat/completions", json={**body, "stream": stream}, timeout=60)
                assert r.status_code == 502 and "unreachable" in r.json()["error"]["message"], r.text
                assert r.headers["x-llmloop-version"] == "v2.0"
            assert _errors(url) == {("/v1/chat/completions", "502", "v2.0"): 4}
            assert not [k for k in _errors(url) if k[2] == "none"]
    finally:
        upstream.stop()


def test_an_unexpected_engine_error_is_a_500_with_version_and_request_id(db, serve_app) -> None:
    """A bug (any exception, not an upstream error) leaves as an OpenAI-shaped 500 that still carries
    the version and the request id — Starlette's own 500 would carry neither."""
    from llmloop.demo.faults import FlakyEngine
    from llmloop.inference.echo import EchoEngine

    registry.register(db, name="v3.0", kind="chat", base_model="echo")
    registry.set_alias(db, "production", "v3.0")
    broken = FlakyEngine(EchoEngine(), db, rate=1.0, target="production")  # raises a plain RuntimeError
    with serve_app(create_app(db=db, engine=broken, config=ServeConfig(reconcile_seconds=3600))) as url:
        for stream in (False, True):
            r = httpx.post(f"{url}/v1/chat/completions", headers={"x-request-id": f"bug-{stream}"},
                           json={"model": "production", "messages": HI, "stream": stream})
            assert r.status_code == 500, r.text
            assert r.json()["error"]["type"] == "server_error" and "InjectedFault" in r.json()["error"]["message"]
            assert r.headers["x-llmloop-version"] == "v3.0" and r.headers["x-request-id"] == f"bug-{stream}"
        # a request that fails before any version is known is still counted, under "none"
        r = httpx.post(f"{url}/v1/chat/completions", json={"model": "nope", "messages": HI})
        assert r.status_code == 404 and "x-llmloop-version" not in r.headers
        assert _errors(url) == {("/v1/chat/completions", "500", "v3.0"): 2,
                                ("/v1/chat/completions", "404", "none"): 1}
        # the gateway still serves after the failures
        broken.rate = 0.0
        ok = httpx.post(f"{url}/v1/chat/completions", json={"model": "production", "messages": HI})
        assert ok.status_code == 200 and ok.headers["x-llmloop-version"] == "v3.0"


@pytest.mark.parametrize("client", ["aiohttp", "httpx"])
def test_both_upstream_clients_serve_and_attribute_a_crash(db, tmp_path: Path, serve_app, client: str) -> None:
    """The request path's HTTP client (aiohttp when installed, else httpx) against a real echo gateway
    process: same answers, and after a SIGKILL the same attributed 502."""
    if client == "aiohttp":
        pytest.importorskip("aiohttp")
    home = tmp_path / "echo-home"
    home.mkdir()
    url = f"sqlite:///{home / 'llmloop.db'}"
    up_db = open_database(Workspace(home=home, database_url=url).ensure())
    registry.register(up_db, name="e1", kind="chat", base_model="echo")
    registry.set_alias(up_db, "production", "e1")
    up_db.dispose()
    upstream = GatewayProcess(home, log_path=tmp_path / "echo.log", env={"LLMLOOP_DATABASE_URL": url},
                              extra_args=("--engine", "echo"))
    registry.register(db, name="v4.0", kind="chat", base_model="echo")
    registry.set_alias(db, "production", "v4.0")
    with upstream:
        remote = UpstreamEngine(f"{upstream.url}/v1", base_model_name="e1", timeout=30, async_client=client)
        with serve_app(create_app(db=db, engine=remote, config=ServeConfig(reconcile_seconds=3600))) as gw:
            body = {"model": "production", "messages": [{"role": "user", "content": "ship it today"}], "n": 2}
            r = httpx.post(f"{gw}/v1/chat/completions", json=body, timeout=30)
            assert r.status_code == 200 and [c["message"]["content"] for c in r.json()["choices"]] == ["ship it today"] * 2
            assert remote._aclient is not None and remote._aclient.name == client
            upstream.kill()
            r = httpx.post(f"{gw}/v1/chat/completions", json=body, timeout=30)
            assert r.status_code == 502 and "unreachable" in r.json()["error"]["message"]
            assert r.headers["x-llmloop-version"] == "v4.0"
