"""``llmloop serve``: run the gateway; ``serve split`` sets the traffic split; ``serve keys`` manages
API keys. Thin: flags → ``ServeConfig`` → one library call → render."""

from __future__ import annotations

import typer
from pydantic import ValidationError

from llmloop.serve.config import ServeConfig

app = typer.Typer(
    help="Serve the registry's versions: OpenAI-compatible API, sticky A/B split, arena and feedback.",
    invoke_without_command=True,
    no_args_is_help=False,
)
keys_app = typer.Typer(help="API keys (roles user | annotator | admin), stored hashed.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
_D = ServeConfig.model_fields


def _help(name: str) -> str:
    return _D[name].description or ""


@app.callback(invoke_without_command=True)
def serve(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", help=_help("host")),
    port: int = typer.Option(8000, help=_help("port")),
    split: str = typer.Option("production=100", help=_help("split") + ", e.g. production=90,candidate=10"),
    engine: str = typer.Option("embedded", help=_help("engine")),
    device: str | None = typer.Option(None, help=_help("device")),
    threads: int | None = typer.Option(None, min=1, help=_help("threads")),
    base_model: str | None = typer.Option(None, help=_help("base_model")),
    served_model_name: str = typer.Option("base", help=_help("served_model_name")),
    upstream_url: str | None = typer.Option(None, help=_help("upstream_url")),
    upstream_api_key: str | None = typer.Option(None, envvar="LLMLOOP_UPSTREAM_API_KEY", help=_help("upstream_api_key")),
    upstream_model: str | None = typer.Option(None, help=_help("upstream_model")),
    vllm_command: str | None = typer.Option(None, help=_help("vllm_command")),
    vllm_model: str | None = typer.Option(None, help=_help("vllm_model")),
    vllm_port: int = typer.Option(0, help=_help("vllm_port")),
    max_lora_rank: int = typer.Option(64, help=_help("max_lora_rank")),
    max_loras: int = typer.Option(4, help=_help("max_loras")),
    require_keys: bool = typer.Option(False, "--require-keys", help=_help("require_keys")),
    rate_limit: int | None = typer.Option(None, help=_help("rate_limit_per_minute")),
    max_tokens_limit: int = typer.Option(4096, help=_help("max_tokens_limit")),
    max_prompt_tokens: int = typer.Option(8192, help=_help("max_prompt_tokens")),
    max_body_bytes: int = typer.Option(1_000_000, help=_help("max_body_bytes")),
    cors_origin: list[str] = typer.Option([], help=_help("cors_origins") + " (repeat the flag)"),
    session_max_tokens: int = typer.Option(2048, help=_help("session_max_tokens")),
    session_ttl: float = typer.Option(3600, help=_help("session_ttl_seconds")),
    record_answers: str = typer.Option("sync", help=_help("record_answers")),
    registry_cache_seconds: float = typer.Option(1.0, help=_help("registry_cache_seconds")),
    ui: bool = typer.Option(False, "--ui", help=_help("ui")),
    ui_api_key: str | None = typer.Option(None, envvar="LLMLOOP_API_KEY", help=_help("ui_api_key") + "; env LLMLOOP_API_KEY"),
    ui_language: str = typer.Option("en", help=_help("ui_language") + ": en | zh"),
    log_level: str = typer.Option("info", help=_help("log_level")),
    json_logs: bool = typer.Option(False, "--json-logs", help=_help("json_logs")),
) -> None:
    """Start the gateway on HOST:PORT against the workspace ($LLMLOOP_HOME) database."""
    if ctx.invoked_subcommand is not None:
        return
    from llmloop.serve.routing import RoutingConfig, SplitError

    try:
        RoutingConfig.from_split(split)
    except SplitError as e:
        raise typer.BadParameter(str(e)) from None
    values = dict(host=host, port=port, split=split, engine=engine, device=device, threads=threads,
                  base_model=base_model, served_model_name=served_model_name, upstream_url=upstream_url,
                  upstream_api_key=upstream_api_key, upstream_model=upstream_model, vllm_model=vllm_model,
                  vllm_port=vllm_port, max_lora_rank=max_lora_rank, max_loras=max_loras, require_keys=require_keys,
                  rate_limit_per_minute=rate_limit, max_tokens_limit=max_tokens_limit,
                  max_prompt_tokens=max_prompt_tokens, max_body_bytes=max_body_bytes, cors_origins=cors_origin,
                  session_max_tokens=session_max_tokens, session_ttl_seconds=session_ttl, log_level=log_level,
                  record_answers=record_answers, registry_cache_seconds=registry_cache_seconds,
                  ui=ui, ui_api_key=ui_api_key, ui_language=ui_language, json_logs=json_logs)
    if vllm_command is not None:
        values["vllm_command"] = vllm_command
    try:
        config = ServeConfig(**values)
    except ValidationError as e:
        raise typer.BadParameter("; ".join(f"--{'-'.join(str(x) for x in err['loc']).replace('_', '-')}: {err['msg']}"
                                           for err in e.errors())) from None
    from llmloop.app import run_gateway

    run_gateway(config)  # a UserError (an engine without its URL …): printed by cli/main.py, exit 2


@app.command("split")
def split_cmd(
    weights: str = typer.Argument(..., help="NAME=WEIGHT pairs of aliases or versions, e.g. production=95,candidate=5"),
    reason: str = typer.Option("", help="Why (kept in the split history)"),
) -> None:
    """Set the traffic split every gateway on this store routes model='llmloop' by (takes effect at once)."""
    from llmloop.serve.routing import RoutingConfig, SplitError
    from llmloop.store import open_database, traffic

    try:
        cfg = RoutingConfig.from_split(weights)
    except SplitError as e:
        raise typer.BadParameter(str(e).replace("--split", "WEIGHTS")) from None
    from llmloop.store import registry

    db = open_database()
    unknown = []
    for name in cfg.weights:
        try:
            registry.get(db, name)
        except registry.VersionNotFound:
            unknown.append(name)
    if unknown:
        raise typer.BadParameter(f"{unknown} name no version or alias (see `llmloop models list`)")
    s = traffic.set_split(db, cfg.weights, reason=reason, actor="cli")
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
    from llmloop.store import apikeys, open_database

    try:
        secret, key = apikeys.create_key(open_database(), name=name, role=role, user_id=user,
                                         rate_limit_per_minute=rate_limit, max_tokens=max_tokens)
    except apikeys.ApiKeyError as e:
        raise typer.BadParameter(str(e)) from None
    typer.echo(f"key #{key.id} ({key.role}, user {key.user_id}) — shown once, store it now:\n{secret}")


@keys_app.command("list")
def keys_list() -> None:
    """All keys (never the keys themselves): id, prefix, role, user, limits, revoked."""
    from rich.console import Console
    from rich.table import Table

    from llmloop.store import apikeys, open_database

    table = Table("id", "name", "prefix", "role", "user", "rate/min", "max_tokens", "created", "revoked")
    for k in apikeys.list_keys(open_database()):
        table.add_row(str(k.id), k.name, k.prefix, k.role, k.user_id, str(k.rate_limit_per_minute or "-"),
                      str(k.max_tokens or "-"), f"{k.created_at:%Y-%m-%d %H:%M}",
                      f"{k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "")
    Console().print(table)


@keys_app.command("revoke")
def keys_revoke(key: str = typer.Argument(..., help="The key's id or prefix (from `keys list`)")) -> None:
    """Revoke a key (running gateways notice within 5 s)."""
    from llmloop.store import apikeys, open_database

    try:
        k = apikeys.revoke_key(open_database(), key)
    except apikeys.ApiKeyError as e:
        raise typer.BadParameter(str(e)) from None
    typer.echo(f"key #{k.id} ({k.prefix}…) revoked")
