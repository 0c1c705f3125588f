"""The composition root: the one place a serving process is put together from its layers.

    uvicorn --factory llmloop.app:create_app      # or: llmloop serve --port 8000

``create_app`` builds the gateway (``llmloop.serve``: the OpenAI-compatible ``/v1`` routes, health,
metrics) and adds what the packages above or beside it own: the admin/annotator REST API
(``llmloop.api``, ``/api/v1/…``) and the loop's series on ``/metrics`` (``llmloop.loop``);
``run_gateway`` (what ``llmloop serve`` does) picks the engine from the config (``llmloop.inference``),
mounts the web UI (``llmloop.ui``) with ``--ui`` and runs uvicorn. No package below imports this one,
so the gateway never imports the API, the loop or the UI (``tests/test_layers.py``).
"""

from __future__ import annotations

import gc
import logging
from typing import Any

from fastapi import FastAPI

from llmloop.inference.base import Engine
from llmloop.serve.config import ServeConfig
from llmloop.serve.gateway import Gateway, create_gateway_app
from llmloop.serve.logs import configure_logging
from llmloop.serve.routing import RoutingConfig
from llmloop.store.db import Database

log = logging.getLogger("llmloop.serve")


def create_app(db: Database | None = None, engine: Engine | None = None,
               routing: RoutingConfig | None = None, config: ServeConfig | None = None) -> FastAPI:
    """The whole serving app: gateway + admin API + loop metrics. Defaults: the workspace database, an
    ``EmbeddedEngine`` on the config's device, ``ServeConfig()``; ``routing`` defaults to the config's
    ``split`` (used while the store holds no split)."""
    config = config or ServeConfig()
    owns_db = db is None
    if db is None:
        from llmloop.store import open_database

        db = open_database()
    if engine is None:
        from llmloop.inference.embedded import EmbeddedEngine

        engine = EmbeddedEngine(device=config.device)
    return create_gateway_app(db, engine, routing, config, owns_db=owns_db,
                              extensions=(_loop_metrics, _admin_api))


def _loop_metrics(app: FastAPI, gateway: Gateway) -> None:
    from llmloop.loop.loop_metrics import (
        LoopCollector,  # the loop's series (issue 8), read from the store per scrape
    )

    LoopCollector(gateway.db).register(gateway.metrics.registry)


def _admin_api(app: FastAPI, gateway: Gateway) -> None:
    from llmloop.api import (
        add_admin_routes,  # /api/v1/…: the admin/annotator REST API (docs/api.md)
    )

    add_admin_routes(app)


def build_engine(config: ServeConfig) -> Engine:
    """The engine ``config.engine`` names: embedded (this process), echo, upstream (a URL) or vllm
    (a server this process launches, then talks to as an upstream)."""
    from llmloop.errors import UserError

    if config.engine == "embedded":
        from llmloop.inference.embedded import EmbeddedEngine

        if config.threads:
            import torch

            torch.set_num_threads(config.threads)
        return EmbeddedEngine(device=config.device)
    if config.engine == "echo":
        from llmloop.inference.echo import EchoEngine

        return EchoEngine()
    from llmloop.inference.upstream import UpstreamEngine

    if config.engine == "upstream":
        if not config.upstream_url:
            raise UserError("--engine upstream needs --upstream-url, e.g. http://127.0.0.1:8001/v1")
        return UpstreamEngine(config.upstream_url, api_key=config.upstream_api_key,
                              base_model_name=config.upstream_model)
    from llmloop.inference.vllm import VllmLauncher

    model = config.vllm_model
    if model is None:
        from llmloop.store import open_database, registry

        try:
            model = registry.get(open_database(), "production").base_model
        except registry.VersionNotFound:
            raise UserError("--engine vllm: no production version to take the base model from; "
                            "give --vllm-model") from None
    from llmloop.workspace import get_workspace

    launcher = VllmLauncher(config.vllm_command, model=model, port=config.vllm_port, max_lora_rank=config.max_lora_rank,
                            max_loras=config.max_loras, served_model_name=config.served_model_name,
                            log_path=get_workspace().home / "vllm.log")
    log.info("starting the upstream: %s", " ".join(launcher.argv))
    launcher.start()
    return UpstreamEngine(launcher.url, base_model_name=config.served_model_name, launcher=launcher)


def mount_ui(app: Any, config: ServeConfig) -> Any:
    """``--ui``: the Gradio UI at ``/ui`` on the gateway's own app (``llmloop.ui.mount.mount``). The UI calls
    the gateway's API over loopback with ``ui_api_key``; the key's role (read from the store: the
    gateway cannot answer ``/whoami`` before it serves) decides what the page shows."""
    from llmloop.errors import UserError

    if config.port == 0:
        raise UserError("--ui needs a fixed --port: the UI calls the gateway at its own address")
    try:
        from llmloop.ui.mount import mount
    except ImportError:  # pragma: no cover - gradio missing
        raise UserError('--ui needs Gradio: pip install "llmloop[ui]"') from None
    role = "user"
    if config.ui_api_key:
        from llmloop.store import apikeys, open_database

        key = apikeys.authenticate(open_database(), config.ui_api_key)
        if key is None:
            raise UserError("--ui-api-key is not an active key of this store: create one with "
                            "`llmloop serve keys create --name ui --role admin` (or annotator)")
        role = key.role
    host = "127.0.0.1" if config.host in ("0.0.0.0", "::", "") else config.host
    host = f"[{host}]" if ":" in host else host
    return mount(app, gateway_url=f"http://{host}:{config.port}", api_key=config.ui_api_key, role=role,
                 language=config.ui_language)


def run_gateway(config: ServeConfig) -> None:
    """What ``llmloop serve`` does: pick the engine, build the app (and the UI), run uvicorn."""
    import uvicorn

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
