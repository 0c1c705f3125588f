"""``mount``: the web UI served on a FastAPI app (the gateway's own, ``llmloop serve --ui``)."""

from __future__ import annotations

from typing import Any


def mount(app: Any, *, gateway_url: str, api_key: str | None = None, role: str | None = None,
          path: str = "/ui", language: str = "en") -> Any:
    """Serve the UI at ``path`` on a FastAPI app (``llmloop serve --ui``) via ``gr.mount_gradio_app``.

    The UI still talks to the gateway over HTTP at ``gateway_url`` (its own address), with
    ``api_key``; give the key's ``role`` because the gateway cannot answer ``/whoami`` before it
    serves. Returns the app."""
    import os

    import gradio as gr

    from llmloop.ui.blocks import build_ui
    from llmloop.ui.client import GatewayClient

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    blocks = build_ui(GatewayClient(gateway_url, api_key), default_language=language, role=role or "user")
    return gr.mount_gradio_app(app, blocks.queue(), path=path, footer_links=[])
