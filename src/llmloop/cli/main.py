"""``llmloop`` entry point: mounts each domain's Typer app.

Every command parses its arguments into a config model, calls one library function and renders
the result; none of them holds logic of its own.
"""

from __future__ import annotations

import typer

from llmloop.cli import data, demo, evaluate, jobs, loop, model, models, serve, train, ui
from llmloop.cli import pipeline

app = typer.Typer(
    name="llmloop",
    help="Build a domain LLM, serve it, learn from its users, ship the next version.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(model.app, name="model")
app.add_typer(data.app, name="data")
app.add_typer(train.app, name="train")
app.add_typer(jobs.app, name="jobs")
app.add_typer(models.app, name="models")
app.add_typer(serve.app, name="serve")
app.add_typer(evaluate.app, name="eval")
app.add_typer(loop.app, name="loop")
app.add_typer(pipeline.app, name="pipeline")
app.add_typer(demo.app, name="demo")
app.add_typer(ui.app, name="ui")

if __name__ == "__main__":
    app()
