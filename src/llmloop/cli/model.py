"""``llmloop model …``: build models offline."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

app = typer.Typer(no_args_is_help=True, help="Build models (a tiny offline model for demos and tests).")
console = Console()


@app.command("tiny")
def tiny(
    out: Path = typer.Option(..., "--out", help="Directory to write the model and tokenizer to"),
    seed: int = typer.Option(0, help="Seed for the random weights; same seed, same files"),
    hidden_size: int = typer.Option(128, help="Width of the residual stream"),
    layers: int = typer.Option(4, help="Number of transformer blocks"),
    vocab_size: int = typer.Option(4096, help="BPE vocabulary size"),
) -> None:
    """Build a tiny Llama-architecture causal LM with a byte-level BPE tokenizer, offline."""
    from llmloop.models.tiny import TinyModelConfig, build_tiny_model

    cfg = TinyModelConfig(seed=seed, hidden_size=hidden_size, num_hidden_layers=layers, vocab_size=vocab_size)
    path = build_tiny_model(out, cfg)
    console.print(f"[green]tiny model written to[/green] {path}")
