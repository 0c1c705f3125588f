"""``ServeConfig``: every setting of ``llmloop serve`` in one pydantic model. ``create_app`` takes it;
the CLI generates one flag per field from it (``cli/config_flags.py``), so a field added here is a
flag at once: ``--kebab-name`` of the field, its type, its default, its description as the help,
and an env var ``LLMLOOP_SERVE_<NAME>``. ``json_schema_extra`` keeps older spellings working:
``cli_aliases`` (more flags) and ``env`` (more env vars, after the generated one)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

VLLM_COMMAND = ("vllm serve {model} --host 127.0.0.1 --port {port} --enable-lora --max-lora-rank {max_lora_rank} "
                "--max-loras {max_loras} --served-model-name {served_model_name}")


class ServeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", description="Interface to listen on")
    port: int = Field(8000, ge=0, le=65535, description="TCP port to listen on")
    split: str = Field("production=100", description="Default split of model='llmloop' by user hash (NAME=WEIGHT,…); "
                       "a split set in the store (`llmloop serve split`, the rollout) takes precedence; e.g. production=90,candidate=10")
    engine: Literal["embedded", "upstream", "vllm", "echo"] = Field(
        "embedded", description="embedded: transformers+peft in this process; upstream: any OpenAI-compatible "
        "server at --upstream-url; vllm: launch `vllm serve` with LoRA enabled and use it as the upstream; "
        "echo: no model, answers echo the prompt (load tests of the gateway itself)")
    device: str | None = Field(None, description="Torch device for the embedded engine (default: cuda if available)")
    threads: int | None = Field(None, ge=1, description="Torch intra-op threads for the embedded engine (CPU)")
    base_model: str | None = Field(None, description="Also serve this model directory (no registry entry needed) "
                                   "under --served-model-name; adapters loaded at run time attach to it")
    served_model_name: str = Field("base", max_length=60, description="The name --base-model is served under")
    upstream_url: str | None = Field(None, description="Base URL of the upstream server (…/v1 is added if missing)")
    upstream_api_key: str | None = Field(None, description="Bearer key for the upstream, if it wants one",
                                         json_schema_extra={"env": ["LLMLOOP_UPSTREAM_API_KEY"]})
    upstream_model: str | None = Field(None, description="The upstream's name for the base model (versions without "
                                       "an adapter are sent there); default: the version's base_model path, as vLLM names it")
    vllm_command: str = Field(VLLM_COMMAND, description="Command that starts the upstream for --engine vllm; "
                              "{model} {port} {max_lora_rank} {max_loras} {served_model_name} are filled in")
    vllm_model: str | None = Field(None, description="--engine vllm: the base model to serve (default: production's base)")
    vllm_port: int = Field(0, ge=0, le=65535, description="--engine vllm: the upstream's port (0: a free one)")
    max_lora_rank: int = Field(64, ge=1, description="--engine vllm: the largest LoRA rank it must accept")
    max_loras: int = Field(4, ge=1, description="--engine vllm: adapters resident at once")
    require_keys: bool = Field(False, description="Refuse requests without a valid API key even when no key exists "
                               "(otherwise auth is on as soon as one active key exists)")
    rate_limit_per_minute: int | None = Field(None, ge=1, description="Default requests per minute per key (or per "
                                              "user when auth is off); a key's own limit wins; unset: unlimited",
                                              json_schema_extra={"cli_aliases": ["--rate-limit"]})
    max_tokens_limit: int = Field(4096, ge=1, description="Largest max_tokens a request may ask for (a key's own limit wins)")
    max_prompt_tokens: int = Field(8192, ge=1, description="Largest prompt (after adding session history), in tokens")
    max_body_bytes: int = Field(1_000_000, ge=1024, description="Largest request body; more is refused with 413")
    cors_origins: list[str] = Field(default_factory=list, description="Origins allowed by CORS ('*' for any); empty: "
                                    "CORS off", json_schema_extra={"cli_aliases": ["--cors-origin"]})
    session_max_tokens: int = Field(2048, ge=16, description="A session's history is trimmed (oldest turns first) to this many tokens")
    session_ttl_seconds: float = Field(3600, gt=0, description="A session expires this long after its last turn",
                                       json_schema_extra={"cli_aliases": ["--session-ttl"]})
    unload_idle_seconds: float = Field(600, gt=0, description="Unload a version nothing routes to after this long unused")
    reconcile_seconds: float = Field(5, gt=0, description="How often the gateway loads what aliases/splits name now "
                                     "and unloads what they no longer name")
    registry_cache_seconds: float = Field(
        1.0, ge=0, description="How long the split and alias → version answers read from the store are reused "
        "(changes through this gateway apply at once; the loop's or another process's within this time); 0: read "
        "the store on every request")
    record_answers: Literal["sync", "async"] = Field(
        "sync", description="sync: a served answer is durable before its response completes; async: it is "
        "queued (lower latency; feedback stays consistent, a crash may lose the last group of answers)")
    ui: bool = Field(False, description="Also serve the web UI (Gradio, the `ui` extra) at /ui on this port; it "
                     "talks to this gateway over loopback with --ui-api-key")
    ui_api_key: str | None = Field(None, description="--ui: the API key the UI uses (its role decides what the page "
                                   "shows); unset: no key (with auth off, the user role)",
                                   json_schema_extra={"env": ["LLMLOOP_API_KEY"]})
    ui_language: Literal["en", "zh"] = Field("en", description="--ui: the page's starting language")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level")
    json_logs: bool = Field(False, description="One JSON object per log line (with request ids)")
