"""``llmloop ui``: the web UI (Gradio) against a running gateway (its OpenAI API and ``/api/v1``)."""

from __future__ import annotations

import os

import typer

from llmloop.ui.i18n import LANGUAGES

app = typer.Typer(help="Web UI: chat, arena, data, training, evaluation, surgery, models & rollout, monitoring — talks to a gateway over HTTP.",
                  invoke_without_command=True, no_args_is_help=False)


@app.callback(invoke_without_command=True)
def ui(
    gateway: str = typer.Option("http://127.0.0.1:8000", help="Base URL of a running `llmloop serve`"),
    api_key: str | None = typer.Option(
        None, envvar="LLMLOOP_API_KEY",
        help="API key the UI uses; its role decides what the page shows and the gateway allows (user: chat and "
             "arena as the key's own user; annotator: also data, evaluation, reviews; admin: also training, surgery, "
             "rollout); env LLMLOOP_API_KEY"
    ),
    host: str = typer.Option("127.0.0.1", help="Interface the UI listens on"),
    port: int = typer.Option(7860, help="TCP port the UI listens on"),
    language: str = typer.Option("en", help=f"Starting language: {' | '.join(LANGUAGES)} (switchable in the page)"),
) -> None:
    """Start the UI on HOST:PORT; every action goes to GATEWAY's API."""
    if language not in LANGUAGES:
        raise typer.BadParameter(f"--language {language!r}: choose one of {', '.join(LANGUAGES)}")
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise typer.BadParameter('the UI needs Gradio: pip install "llmloop[ui]"') from None
    from llmloop.ui.blocks import build_ui
    from llmloop.ui.client import GatewayClient

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    blocks = build_ui(GatewayClient(gateway, api_key), default_language=language)
    blocks.queue().launch(server_name=host, server_port=port, footer_links=[])
