"""``ModelPool``: a request's ``model`` → a loaded ``ModelVersion`` (version name, alias, run-time
adapter, or routing name → sticky split read from the store), with the store's answers cached; and
the per-request attribution of the serving version that the app's error paths read. No web
framework here.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llmloop.errors import LlmloopError
from llmloop.inference.base import Engine
from llmloop.serve.http_errors import ServingError
from llmloop.serve.routing import RoutingConfig, pick
from llmloop.store import registry, traffic
from llmloop.store.db import Database
from llmloop.store.records import ModelVersion

if TYPE_CHECKING:
    from llmloop.serve.serving import ThreadLanes

log = logging.getLogger("llmloop.serve")

PRODUCTION, CANDIDATE = "production", "candidate"


@dataclass
class Attribution:
    """The request in flight, as its error paths need it: the version serving it, once resolved.

    The app's middleware puts a fresh one in ``attribution_var`` for every request; ``ModelPool.resolve``
    fills in ``version``. Whatever then fails — an upstream's 5xx or timeout, a version that does not
    load, any unexpected exception — leaves with ``x-llmloop-version`` and is counted in ``/metrics``
    against that version, which is what the loop's canary reads (a mutable holder, not the variable's
    value, so a value set in a callee is seen by the middleware whatever context copies happen between)."""

    version: str | None = None


attribution_var: contextvars.ContextVar[Attribution | None] = contextvars.ContextVar("llmloop_attribution",
                                                                                     default=None)


def attribute(version: str) -> None:
    """Record ``version`` as the one serving the request in flight (no-op outside a request)."""
    holder = attribution_var.get()
    if holder is not None:
        holder.version = version


class _Stale(LlmloopError):  # noqa: N818 - a signal, not an error
    """``ModelPool.lookup(inline=True)`` would need the store: call it again on the store lane."""


class ModelPool:
    """Request ``model`` → a loaded ``ModelVersion``. Aliases and the split resolve per request;
    loads are lazy, and ``reconcile`` keeps what aliases/splits name loaded and drops the rest.

    What the store says (the split in force, name/alias → version) is cached for ``cache_seconds``,
    so a request whose answers are cached resolves on the event loop without a database round trip or
    a thread hand-off (the gateway's overhead is a measured goal). A change made through this gateway
    (admin split, ``/api/v1`` actions) clears the cache at once; one made elsewhere (the loop's
    controller, ``llmloop serve split``, another replica) is seen within ``cache_seconds``.
    ``cache_seconds=0`` reads the store on every request. Names found missing are cached only for the
    router's "is there a candidate?" question: a request naming a version that was just registered
    always looks again."""

    def __init__(self, db: Database, engine: Engine, routing: RoutingConfig, *, unload_idle_seconds: float = 600,
                 cache_seconds: float = 0.0) -> None:
        self.db, self.engine, self.routing = db, engine, routing
        self.unload_idle_seconds = unload_idle_seconds
        self.cache_seconds = cache_seconds
        self.runtime: dict[str, ModelVersion] = {}  # served without a registry entry (--base-model, load_lora_adapter)
        self.last_used: dict[str, float] = {}
        self._load_lock = threading.Lock()
        # replaced whole (never mutated across an await), so readers on the loop and writers on the
        # store lane need no lock: a reader sees the old dict or the new one
        self._names: dict[str, tuple[float, ModelVersion | None]] = {}
        self._split: tuple[float, tuple[RoutingConfig, str]] | None = None
        self._generation = 0  # bumped by invalidate: a read that began before it is not cached

    def invalidate(self) -> None:
        """Forget what was read from the store (after a change made through this gateway)."""
        self._generation += 1
        self._names = {}
        self._split = None

    def _fresh(self, stamp: float) -> bool:
        return time.monotonic() - stamp < self.cache_seconds

    def current_routing(self, *, inline: bool = False) -> tuple[RoutingConfig, str]:
        """The split in force: the store's newest (set by an admin or the rollout), else ``--split``."""
        cached = self._split
        if cached is not None and self._fresh(cached[0]):
            return cached[1]
        if inline:
            raise _Stale
        stamp, generation = time.monotonic(), self._generation
        split = traffic.get_split(self.db)
        if split is None:
            value = (self.routing, "default")
        else:
            value = (self.routing.model_copy(update={"weights": split.weights}), "store")
        if self.cache_seconds > 0 and generation == self._generation:
            self._split = (stamp, value)
        return value

    def _lookup_name(self, name: str, *, inline: bool, trust_missing: bool) -> ModelVersion | None:
        """The version ``name`` (a version or an alias) names, or None when it names none."""
        if name in self.runtime:
            return self.runtime[name]
        hit = self._names.get(name)
        if hit is not None and self._fresh(hit[0]) and (hit[1] is not None or trust_missing or inline):
            return hit[1]
        if inline:
            raise _Stale
        stamp, generation = time.monotonic(), self._generation
        try:
            version: ModelVersion | None = registry.get(self.db, name)
        except registry.VersionNotFound:
            version = None
        if self.cache_seconds > 0 and generation == self._generation:
            self._names = {**self._names, name: (stamp, version)} if len(self._names) < 10_000 else {name: (stamp, version)}
        return version

    def _get(self, name: str, *, inline: bool = False) -> ModelVersion:
        version = self._lookup_name(name, inline=inline, trust_missing=False)
        if version is None:
            if inline:  # the error path reads the store again (and lists what exists)
                raise _Stale
            raise registry.VersionNotFound(f"no model version or alias {name!r}; see `llmloop models list`")
        return version

    def lookup(self, model: str, user_id: str, *, inline: bool = False) -> ModelVersion:
        """Which version answers ``model`` for ``user_id`` (not loaded yet, maybe). Blocking, unless
        ``inline``: then only cached answers are used, and ``_Stale`` says the store is needed."""
        name = model
        if model in self.routing.route_names:
            routing, _ = self.current_routing(inline=inline)
            name = pick(routing, user_id, resolves=lambda n: self._resolves(n, inline=inline))
        try:
            return self._get(name, inline=inline)
        except registry.VersionNotFound:
            if model in self.routing.route_names and name != PRODUCTION and self._resolves(PRODUCTION):
                log.warning("the split names %r, which is no version or alias; routing to production", name)
                return self._get(PRODUCTION)
            if model in self.routing.route_names:
                raise ServingError(
                    f"routing name {model!r} sent this user to {name!r}, which names no version or alias; "
                    f"set that alias or change the split (`llmloop serve split`)", status=503, type="server_error",
                    code="no_version",
                ) from None
            known = [*(v.name for v in registry.list_versions(self.db)), *self.runtime, *self.routing.route_names]
            raise ServingError(
                f"The model {model!r} does not exist: use a version, an alias or a routing name "
                f"(GET /v1/models lists them; e.g. {', '.join(known[:8])})",
                status=404, param="model", code="model_not_found",
            ) from None

    def _resolves(self, name: str, *, inline: bool = False) -> bool:
        return self._lookup_name(name, inline=inline, trust_missing=True) is not None

    def ensure_loaded(self, version: ModelVersion) -> None:
        """Blocking: load ``version`` into the engine unless it is there already."""
        self.last_used[version.name] = time.monotonic()
        if version.name in self.engine.loaded():
            return
        with self._load_lock:
            if version.name in self.engine.loaded():
                return
            try:
                log.info("loading model version %s (base %s, adapter %s)", version.name, version.base_model,
                         version.adapter_path)
                self.engine.load(version)
            except Exception as e:
                raise ServingError(f"model version {version.name!r} could not be loaded: {e}", status=503,
                                   type="server_error", code="load_failed") from e

    def wanted(self) -> list[ModelVersion]:
        """Blocking: what production, candidate and the split in force name now, plus run-time models."""
        routing, _ = self.current_routing()
        out: dict[str, ModelVersion] = {}
        for name in dict.fromkeys([PRODUCTION, CANDIDATE, *routing.weights]):
            try:
                v = self._get(name)
            except registry.VersionNotFound:
                continue
            out[v.name] = v
        for v in self.runtime.values():
            out[v.name] = v
        return list(out.values())

    def preload(self) -> list[str]:
        """Blocking: load what is wanted now. A production version that does not load is an error (the
        gateway would serve nothing); any other is logged and left to load, or fail, on first use."""
        loaded = []
        try:
            production = registry.get(self.db, PRODUCTION).name
        except registry.VersionNotFound:
            production = None
        for version in self.wanted():
            try:
                self.ensure_loaded(version)
            except ServingError:
                if version.name == production:
                    raise
                log.warning("could not preload %r", version.name, exc_info=True)
                continue
            loaded.append(version.name)
        return loaded

    def reconcile(self) -> dict[str, list[str]]:
        """Blocking: load newly wanted versions (a promotion), unload idle unwanted ones."""
        self.invalidate()  # decide on what the store says now
        sync = getattr(self.engine, "sync", None)
        if sync is not None:  # an upstream engine: restart/re-apply adapters if the upstream forgot them
            sync()
        wanted = self.wanted()
        loaded, unloaded = [], []
        for version in wanted:
            if version.name not in self.engine.loaded():
                try:
                    self.ensure_loaded(version)
                    loaded.append(version.name)
                except ServingError:
                    log.warning("could not load %r", version.name, exc_info=True)
        keep = {v.name for v in wanted}
        now = time.monotonic()
        for name in self.engine.loaded():
            idle = now - self.last_used.get(name, 0.0)
            if name not in keep and idle > self.unload_idle_seconds:
                with self._load_lock:
                    self.engine.unload(name)
                self.last_used.pop(name, None)
                unloaded.append(name)
        if loaded or unloaded:
            log.info("reconciled engine: loaded %s, unloaded %s", loaded, unloaded)
        return {"loaded": loaded, "unloaded": unloaded}

    async def resolve(self, lanes: ThreadLanes, model: str, user_id: str, kind: str) -> ModelVersion:
        try:
            version = self.lookup(model, user_id, inline=True)  # the cache's answer, on the loop
        except _Stale:
            version = await lanes.store(self.lookup, model, user_id)
        attribute(version.name)  # from here on, any failure is this version's (a load failure too)
        if version.kind != kind and version.stage != "runtime":  # a run-time model serves both, as vLLM's
            use = "/v1/chat/completions" if version.kind == "chat" else "/v1/completions"
            raise ServingError(f"model {model!r} is version {version.name!r}, a {version.kind} model; call {use}",
                               param="model", code="wrong_endpoint")
        if version.name not in self.engine.loaded():
            await lanes.generate(self.ensure_loaded, version)
        else:
            self.last_used[version.name] = time.monotonic()
        return version
