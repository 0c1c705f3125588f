"""``run_gateway(config)``: what ``llmloop serve`` does — pick the engine, build the app, run uvicorn."""

from __future__ import annotations

import gc
import logging
from typing import Any

from llmloop.serve.config import ServeConfig
from llmloop.serve.engine import Engine
from llmloop.serve.logs import configure_logging

log = logging.getLogger("llmloop.serve")


def build_engine(config: ServeConfig) -> Engine:
    if config.engine == "embedded":
        from llmloop.serve.engine import EmbeddedEngine

        if config.threads:
            import torch

            torch.set_num_threads(config.threads)
        return EmbeddedEngine(device=config.device)
    if config.engine == "echo":
        from llmloop.serve.echo import EchoEngine

        return EchoEngine()
    from llmloop.serve.upstream import UpstreamEngine

    if config.engine == "upstream":
        if not config.upstream_url:
            raise ValueError("--engine upstream needs --upstream-url, e.g. http://127.0.0.1:8001/v1")
        return UpstreamEngine(config.upstream_url, api_key=config.upstream_api_key,
                              base_model_name=config.upstream_model)
    from llmloop.serve.vllm import VllmLauncher

    model = config.vllm_model
    if model is None:
        from llmloop.store import open_database, registry

        try:
            model = registry.get(open_database(), "production").base_model
        except registry.VersionNotFound:
            raise ValueError("--engine vllm: no production version to take the base model from; give --vllm-model") from None
    from llmloop.workspace import get_workspace

    launcher = VllmLauncher(config.vllm_command, model=model, port=config.vllm_port, max_lora_rank=config.max_lora_rank,
                            max_loras=config.max_loras, served_model_name=config.served_model_name,
                            log_path=get_workspace().home / "vllm.log")
    log.info("starting the upstream: %s", " ".join(launcher.argv))
    launcher.start()
    return UpstreamEngine(launcher.url, base_model_name=config.served_model_name, launcher=launcher)


def mount_ui(app: Any, config: ServeConfig) -> Any:
    """``--ui``: the Gradio UI at ``/ui`` on the gateway's own app (``llmloop.ui.mount``). The UI calls
    the gateway's API over loopback with ``ui_api_key``; the key's role (read from the store: the
    gateway cannot answer ``/whoami`` before it serves) decides what the page shows."""
    if config.port == 0:
        raise ValueError("--ui needs a fixed --port: the UI calls the gateway at its own address")
    try:
        from llmloop.ui import mount
    except ImportError:  # pragma: no cover - gradio missing
        raise ValueError('--ui needs Gradio: pip install "llmloop[ui]"') from None
    role = "user"
    if config.ui_api_key:
        from llmloop.store import apikeys, open_database

        key = apikeys.authenticate(open_database(), config.ui_api_key)
        if key is None:
            raise ValueError("--ui-api-key is not an active key of this store: create one with "
                             "`llmloop serve keys create --name ui --role admin` (or annotator)")
        role = key.role
    host = "127.0.0.1" if config.host in ("0.0.0.0", "::", "") else config.host
    host = f"[{host}]" if ":" in host else host
    return mount(app, gateway_url=f"http://{host}:{config.port}", api_key=config.ui_api_key, role=role,
                 language=config.ui_language)


def run_gateway(config: ServeConfig) -> None:
    import uvicorn

    from llmloop.serve.app import create_app

    configure_logging(config.log_level, config.json_logs)
    app = create_app(engine=build_engine(config), config=config)
    if config.ui:
        app = mount_ui(app, config)
    # Everything imported and built so far (torch, transformers, FastAPI, …) lives as long as the
    # process: move it out of the cyclic collector's sight, so a full collection no longer walks it in
    # the middle of a request (benchmarks/feedback_ingest.py: p99 42–54 → 28–31 ms with this alone).
    gc.collect()
    gc.freeze()
    uvicorn.run(app, host=config.host, port=config.port, log_level=config.log_level,
                log_config=None, access_log=False)  # our middleware writes the access log (with request ids)
