"""``llmloop`` entry point: mounts each domain's Typer app.

Every command parses its arguments into a config model, calls one library function and renders
the result; none of them holds logic of its own. Errors are mapped here, once (``LlmloopGroup``):
an ``LlmloopError`` prints its message and exits with its ``exit_code`` (2: the user's to fix,
3: something outside llmloop is unavailable, 1: llmloop's own failure); anything else is a bug and
keeps its traceback (exit 1).
"""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from llmloop.cli import data, demo, evaluate, jobs, loop, models, serve, train, ui
from llmloop.cli import pipeline
from llmloop.errors import LlmloopError


class LlmloopGroup(TyperGroup):
    """The root command: every ``LlmloopError`` a command raises becomes one red ``error:`` line on
    stderr and the error's exit code; other exceptions propagate with their traceback."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LlmloopError as e:
            # unwrapped (soft_wrap): paths and fixes in the message stay copyable
            Console(stderr=True).print(f"[red]error:[/red] {escape(str(e))}", highlight=False, soft_wrap=True)
            raise typer.Exit(e.exit_code) from None


app = typer.Typer(
    name="llmloop",
    cls=LlmloopGroup,
    help="Build a domain LLM, serve it, learn from its users, ship the next version.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
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

# The old spelling of `llmloop models tiny` (one `models` group, issue 14), kept for scripts; hidden.
_old_model = typer.Typer(no_args_is_help=True, hidden=True, help="Old name: use `llmloop models tiny`.")
_old_model.command("tiny", help="Old name of `llmloop models tiny`.")(models.tiny)
app.add_typer(_old_model, name="model", hidden=True)

if __name__ == "__main__":
    app()
