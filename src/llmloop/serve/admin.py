"""Admin operations behind ``/v1/admin/*`` and vLLM's ``/v1/load_lora_adapter`` API: the traffic
split, API keys, and adapters loaded at run time. No web framework here; blocking calls."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from pydantic import ValidationError

from llmloop.inference.base import Engine
from llmloop.serve import protocol as p
from llmloop.serve.auth import AuthService
from llmloop.serve.routing import RoutingConfig
from llmloop.serve.serving import ModelPool, ServingError
from llmloop.store import apikeys, registry, traffic
from llmloop.store.db import Database, utcnow
from llmloop.store.records import ModelVersion


def runtime_version(name: str, *, base_model: str, adapter_path: str | None = None) -> ModelVersion:
    """A servable version that lives only in this process (``--base-model``, ``load_lora_adapter``)."""
    return ModelVersion(name=name, kind="chat", base_model=base_model, adapter_path=adapter_path, parent=None,
                        job_id=None, dataset_versions=[], metrics={}, stage="runtime", note="loaded at run time",
                        created_at=utcnow())


def _iso(t: dt.datetime | None) -> str | None:
    return t.isoformat() if t else None


class AdminService:
    def __init__(self, db: Database, engine: Engine, pool: ModelPool, auth: AuthService,
                 base_model: str | None = None) -> None:
        self.db, self.engine, self.pool, self.auth, self.base_model = db, engine, pool, auth, base_model

    # -- split -------------------------------------------------------------------------------------
    def split(self) -> p.SplitView:
        current = traffic.get_split(self.db)
        if current is None:
            return p.SplitView(weights=self.pool.routing.weights, shares=self.pool.routing.normalised(), source="default")
        return self._view(current)

    @staticmethod
    def _view(s: traffic.TrafficSplit) -> p.SplitView:
        total = sum(s.weights.values())
        return p.SplitView(weights=s.weights, shares={k: w / total for k, w in s.weights.items()}, source="store",
                           id=s.id, reason=s.reason, actor=s.actor, created_at=_iso(s.created_at))

    def set_split(self, req: p.SplitRequest, actor: str) -> p.SplitView:
        try:
            RoutingConfig(weights=req.weights)  # the same checks the router applies
        except ValidationError as e:
            raise ServingError(f"bad split: {e}", status=422, param="weights", code="invalid_split") from None
        unknown = [name for name in req.weights if not self.pool._resolves(name)]
        if unknown:
            raise ServingError(f"bad split: {unknown} name no version, alias or run-time model; GET /v1/models "
                               f"lists them", status=422, param="weights", code="unknown_name")
        view = self._view(traffic.set_split(self.db, req.weights, reason=req.reason, actor=actor))
        self.pool.invalidate()  # the next request routes by the new split
        return view

    def split_history(self, limit: int = 100) -> list[p.SplitView]:
        return [self._view(s) for s in traffic.split_history(self.db, limit=limit)]

    # -- keys --------------------------------------------------------------------------------------
    @staticmethod
    def _key_view(k: apikeys.ApiKey, secret: str | None = None) -> p.KeyView:
        return p.KeyView(id=k.id, name=k.name, prefix=k.prefix, role=k.role, user=k.user_id,
                         rate_limit_per_minute=k.rate_limit_per_minute, max_tokens=k.max_tokens,
                         created_at=_iso(k.created_at) or "", revoked_at=_iso(k.revoked_at), key=secret)

    def create_key(self, req: p.KeyCreateRequest) -> p.KeyView:
        secret, key = apikeys.create_key(self.db, name=req.name, role=req.role, user_id=req.user,
                                         rate_limit_per_minute=req.rate_limit_per_minute, max_tokens=req.max_tokens)
        self.auth.invalidate()
        return self._key_view(key, secret)

    def list_keys(self) -> list[p.KeyView]:
        return [self._key_view(k) for k in apikeys.list_keys(self.db)]

    def revoke_key(self, key_id: int) -> p.KeyView:
        try:
            key = apikeys.revoke_key(self.db, key_id)
        except apikeys.ApiKeyError as e:
            raise ServingError(str(e), status=404, param="key_id", code="key_not_found") from None
        self.auth.invalidate()
        return self._key_view(key)

    # -- adapters (vLLM's run-time LoRA API) -------------------------------------------------------
    def load_adapter(self, req: p.LoadLoraAdapterRequest) -> str:
        """Serve ``lora_path`` as model ``lora_name`` on top of the base it was trained on (or --base-model)."""
        if req.lora_name in self.pool.runtime or req.lora_name in self.engine.loaded():
            raise ServingError(f"The lora adapter '{req.lora_name}' has already been loaded.", param="lora_name",
                               code="already_loaded")
        try:
            registry.get(self.db, req.lora_name)
            raise ServingError(f"{req.lora_name!r} names a registry version; load adapters under another name",
                               param="lora_name", code="name_taken")
        except registry.VersionNotFound:
            pass
        config = Path(req.lora_path) / "adapter_config.json"
        try:
            base = self.base_model or json.loads(config.read_text())["base_model_name_or_path"]
        except (OSError, ValueError, KeyError) as e:
            raise ServingError(f"lora_path {req.lora_path!r}: cannot read {config.name} ({e}); give a directory "
                               f"written by peft's save_pretrained", status=404, param="lora_path",
                               code="adapter_not_found") from None
        version = runtime_version(req.lora_name, base_model=base, adapter_path=req.lora_path)
        self.pool.ensure_loaded(version)
        self.pool.runtime[req.lora_name] = version
        return f"Success: LoRA adapter '{req.lora_name}' added successfully."

    def unload_adapter(self, req: p.UnloadLoraAdapterRequest) -> str:
        if req.lora_name not in self.pool.runtime:
            raise ServingError(f"The lora adapter '{req.lora_name}' cannot be found.", status=404,
                               param="lora_name", code="adapter_not_found")
        version = self.pool.runtime[req.lora_name]
        if not version.adapter_path:
            raise ServingError(f"{req.lora_name!r} is the base model, not an adapter", param="lora_name",
                               code="not_an_adapter")
        del self.pool.runtime[req.lora_name]
        self.engine.unload(req.lora_name)
        return f"Success: LoRA adapter '{req.lora_name}' removed successfully."
