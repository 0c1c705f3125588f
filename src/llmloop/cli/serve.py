"""``llmloop serve``: run the gateway; ``serve split`` sets the traffic split; ``serve keys`` manages
API keys. Thin: flags → ``ServeConfig`` → one library call → render."""

from __future__ import annotations

from typing import Any

import typer
from pydantic import ValidationError

from llmloop.cli.config_flags import flag_errors, with_config_flags
from llmloop.serve.config import ServeConfig

app = typer.Typer(
    help="Serve the registry's versions: OpenAI-compatible API, sticky A/B split, arena and feedback.",
    invoke_without_command=True,
    no_args_is_help=False,
)
keys_app = typer.Typer(help="API keys (roles user | annotator | admin), stored hashed.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
ENV_PREFIX = "LLMLOOP_SERVE_"


@app.callback(invoke_without_command=True)
@with_config_flags(ServeConfig, envvar_prefix=ENV_PREFIX)
def serve(ctx: typer.Context, **values: Any) -> None:
    """Start the gateway on HOST:PORT against the workspace ($LLMLOOP_HOME) database.

    Every option is a field of ``ServeConfig`` (``serve/config.py``), also read from the env var
    LLMLOOP_SERVE_<FIELD> (e.g. LLMLOOP_SERVE_PORT=8001)."""
    if ctx.invoked_subcommand is not None:
        return
    from llmloop.serve.routing import RoutingConfig, SplitError

    try:
        RoutingConfig.from_split(values["split"])
    except SplitError as e:
        raise typer.BadParameter(str(e)) from None
    try:
        config = ServeConfig(**values)
    except ValidationError as e:
        raise typer.BadParameter("; ".join(flag_errors(e))) from None
    from llmloop.app import run_gateway

    run_gateway(config)  # a UserError (an engine without its URL …): printed by cli/main.py, exit 2


@app.command("split")
def split_cmd(
    weights: str = typer.Argument(..., help="NAME=WEIGHT pairs of aliases or versions, e.g. production=95,candidate=5"),
    reason: str = typer.Option("", help="Why (kept in the split history)"),
) -> None:
    """Set the traffic split every gateway on this store routes model='llmloop' by (takes effect at once)."""
    from llmloop.data.database import open_workspace_database
    from llmloop.serve import offline_admin
    from llmloop.serve.routing import RoutingConfig, SplitError

    try:
        cfg = RoutingConfig.from_split(weights)
    except SplitError as e:
        raise typer.BadParameter(str(e).replace("--split", "WEIGHTS")) from None
    try:
        s = offline_admin.set_split(open_workspace_database(), cfg.weights, reason=reason, actor="cli")
    except offline_admin.SplitError as e:  # a name that is no version or alias
        raise typer.BadParameter(str(e)) from None
    shares = ", ".join(f"{k} {v:.1%}" for k, v in cfg.normalised().items())
    typer.echo(f"split #{s.id} in force: {shares}")


@keys_app.command("create")
def keys_create(
    name: str = typer.Option(..., help="Who or what uses the key, e.g. ui-server"),
    role: str = typer.Option("user", help="user | annotator | admin"),
    user: str | None = typer.Option(None, help="The user id its requests carry (default key:<name>)"),
    rate_limit: int | None = typer.Option(None, help="Requests per minute (default: the server's --rate-limit)"),
    max_tokens: int | None = typer.Option(None, help="Largest max_tokens per request (default: the server's)"),
) -> None:
    """Create a key; it is printed once and stored only as a hash."""
    from llmloop.data.database import open_workspace_database
    from llmloop.serve import offline_admin

    try:
        secret, key = offline_admin.create_key(open_workspace_database(), name=name, role=role, user_id=user,
                                               rate_limit_per_minute=rate_limit, max_tokens=max_tokens)
    except offline_admin.ApiKeyError as e:
        raise typer.BadParameter(str(e)) from None
    typer.echo(f"key #{key.id} ({key.role}, user {key.user_id}) — shown once, store it now:\n{secret}")


@keys_app.command("list")
def keys_list() -> None:
    """All keys (never the keys themselves): id, prefix, role, user, limits, revoked."""
    from rich.console import Console
    from rich.table import Table

    from llmloop.data.database import open_workspace_database
    from llmloop.serve import offline_admin

    table = Table("id", "name", "prefix", "role", "user", "rate/min", "max_tokens", "created", "revoked")
    for k in offline_admin.list_keys(open_workspace_database()):
        table.add_row(str(k.id), k.name, k.prefix, k.role, k.user_id, str(k.rate_limit_per_minute or "-"),
                      str(k.max_tokens or "-"), f"{k.created_at:%Y-%m-%d %H:%M}",
                      f"{k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "")
    Console().print(table)


@keys_app.command("revoke")
def keys_revoke(key: str = typer.Argument(..., help="The key's id or prefix (from `keys list`)")) -> None:
    """Revoke a key (running gateways notice within 5 s)."""
    from llmloop.data.database import open_workspace_database
    from llmloop.serve import offline_admin

    try:
        k = offline_admin.revoke_key(open_workspace_database(), key)
    except offline_admin.ApiKeyError as e:
        raise typer.BadParameter(str(e)) from None
    typer.echo(f"key #{k.id} ({k.prefix}…) revoked")
