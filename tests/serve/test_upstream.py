"""The upstream engine against a REAL second llmloop server process, and ``--engine vllm`` with the
launched command swapped for an llmloop gateway (vLLM needs CUDA; our gateway speaks vLLM's run-time
LoRA API). Restarting the upstream must not lose the adapters: the gateway re-applies them."""

from __future__ import annotations

import os
import shlex
import signal
import sys
import time
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from llmloop.app import create_app
from llmloop.inference.base import SamplingParams
from llmloop.inference.upstream import UpstreamEngine
from llmloop.inference.vllm import VllmLauncher
from llmloop.serve.config import VLLM_COMMAND, ServeConfig
from llmloop.serve.process import GatewayProcess
from llmloop.store import registry

HI = [{"role": "user", "content": "Where is my order?"}]


def _listed(url: str) -> set[str]:
    return {m["id"] for m in httpx.get(f"{url}/v1/models").json()["data"]}


@pytest.mark.slow
def test_upstream_engine_serves_adapters_and_reapplies_them_after_a_restart(
        versions, engine, tiny_model_dir: Path, tmp_path: Path, serve_app) -> None:
    home = tmp_path / "upstream-home"  # its own store (not the test's PostgreSQL database, if any)
    home.mkdir()
    upstream = GatewayProcess(home, log_path=tmp_path / "upstream.log",
                              extra_args=("--base-model", str(tiny_model_dir), "--threads", "1"),
                              env={"OMP_NUM_THREADS": "1", "LLMLOOP_DATABASE_URL": f"sqlite:///{home / 'llmloop.db'}"})
    upstream.start(timeout=120)
    try:
        remote = UpstreamEngine(f"{upstream.url}/v1", base_model_name="base")
        # no background reconcile here: the re-apply must come from the request path (the vLLM test covers sync)
        with serve_app(create_app(db=versions, engine=remote, config=ServeConfig(reconcile_seconds=3600))) as url:
            assert {"v1.0", "v1.1"} <= _listed(upstream.url)  # preloaded: production and candidate adapters
            client = OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=60)
            greedy = dict(messages=HI, max_tokens=8, temperature=0)
            got = {m: client.chat.completions.create(model=m, **greedy).choices[0].message.content
                   for m in ("production", "v1.1")}
            # the same answers the embedded engine gives with the same base and adapters
            for name in ("v1.0", "v1.1", "c1.0"):
                engine.load(registry.get(versions, name))
            params = SamplingParams(max_tokens=8, temperature=0)
            assert got["production"] == engine.chat("v1.0", HI, params)[0].text
            assert got["v1.1"] == engine.chat("v1.1", HI, params)[0].text != got["production"]
            # base-only versions go to the upstream's base model (both endpoints, as vLLM's)
            done = client.completions.create(model="c1.0", prompt="Orders ship", max_tokens=4, temperature=0)
            assert done.choices[0].text == engine.complete("c1.0", "Orders ship", SamplingParams(max_tokens=4, temperature=0)).text
            streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
                model="v1.1", stream=True, **greedy) if c.choices)
            assert streamed == got["v1.1"]

            # restart the upstream on the same port: it forgets its adapters; the next request re-applies
            upstream.stop()
            upstream.start(timeout=120)
            assert not ({"v1.0", "v1.1"} & _listed(upstream.url))
            again = client.chat.completions.create(model="v1.1", **greedy).choices[0].message.content
            assert again == got["v1.1"] and remote.reapplied == 1
            assert {"v1.0", "v1.1"} <= _listed(upstream.url)
            # unloading goes through vLLM's unload API
            remote.unload("v1.1")
            assert "v1.1" not in _listed(upstream.url)
            r = httpx.post(f"{upstream.url}/v1/unload_lora_adapter", json={"lora_name": "v1.1"})
            assert r.status_code == 404 and r.json()["error"]["code"] == "adapter_not_found"
    finally:
        upstream.stop()


def test_vllm_command_has_lora_enabled() -> None:
    launcher = VllmLauncher(VLLM_COMMAND, model="/models/qwen 7b", max_lora_rank=32, max_loras=3)
    argv = launcher.argv
    assert argv[:3] == ["vllm", "serve", "/models/qwen 7b"]
    assert "--enable-lora" in argv and argv[argv.index("--max-lora-rank") + 1] == "32"
    assert argv[argv.index("--max-loras") + 1] == "3" and argv[argv.index("--port") + 1] == str(launcher.port)
    assert argv[argv.index("--served-model-name") + 1] == "base"


@pytest.mark.slow
def test_engine_vllm_launches_the_upstream_and_survives_its_crash(register, llmloop_home: Path, tmp_path: Path,
                                                                  tiny_model_dir: Path) -> None:
    from llmloop.store import open_database

    db = open_database()
    register(db)
    fake_vllm = (f"env -u LLMLOOP_DATABASE_URL LLMLOOP_HOME={shlex.quote(str(tmp_path / 'vllm-home'))} {shlex.quote(sys.executable)} "
                 "-m llmloop.cli.main serve --port {port} --base-model {model} --served-model-name {served_model_name} "
                 "--threads 1 --log-level warning")
    gateway = GatewayProcess(llmloop_home, log_path=tmp_path / "gateway.log", env={"OMP_NUM_THREADS": "1"},
                             extra_args=("--engine", "vllm", "--vllm-command", fake_vllm, "--threads", "1"))
    gateway.start(timeout=180)
    try:
        ready = httpx.get(f"{gateway.url}/ready").json()
        upstream_url, pid = ready["engine"]["url"], ready["engine"]["pid"]
        assert {"v1.0", "v1.1"} <= _listed(upstream_url)
        client = OpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0, timeout=60)
        before = client.chat.completions.create(model="v1.1", messages=HI, max_tokens=6, temperature=0)
        os.kill(pid, signal.SIGKILL)  # the upstream crashes
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # the reconcile loop restarts it and re-applies the adapters
            ready = httpx.get(f"{gateway.url}/ready").json()
            if ready.get("engine", {}).get("reapplied", 0) >= 1 and ready["engine"]["pid"] != pid:
                break
            time.sleep(0.5)
        assert ready["engine"]["pid"] != pid and ready["engine"]["reapplied"] >= 1, ready
        after = client.chat.completions.create(model="v1.1", messages=HI, max_tokens=6, temperature=0)
        assert after.choices[0].message.content == before.choices[0].message.content
        assert {"v1.0", "v1.1"} <= _listed(upstream_url)
    finally:
        gateway.stop()


def test_an_upstream_failure_is_a_502_counted_against_its_version(db, tiny_model_dir, serve_app) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    registry.register(db, name="c1.0", kind="completion", base_model=str(tiny_model_dir))
    versions = db
    dead = UpstreamEngine("http://127.0.0.1:9/v1", base_model_name="base", timeout=2)  # nothing listens on port 9
    with serve_app(create_app(db=versions, engine=dead, config=ServeConfig(reconcile_seconds=3600))) as url:
        r = httpx.post(f"{url}/v1/completions", json={"model": "c1.0", "prompt": "x", "max_tokens": 2})
        assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_error"
        assert r.headers["x-llmloop-version"] == "c1.0"
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for f in text_string_to_metric_families(httpx.get(f"{url}/metrics").text) for s in f.samples}
        assert samples[("llmloop_request_errors_total", (("endpoint", "/v1/completions"), ("status", "502"),
                                                         ("version", "c1.0")))] == 1
        assert httpx.get(f"{url}/ready").status_code == 503  # the upstream does not answer
