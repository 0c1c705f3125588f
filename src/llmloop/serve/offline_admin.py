"""The gateway's admin actions without a gateway: what ``llmloop serve split`` and ``serve keys`` do.

They write the store as the admin API does (``serve/admin.py``), so every gateway on that store sees
them: a new split on its next request (within ``--registry-cache-seconds``), a revoked key within 5 s.
No web framework here.
"""

from __future__ import annotations

from collections.abc import Iterable

from llmloop.store import Database, apikeys, registry, traffic
from llmloop.store.apikeys import ApiKey, ApiKeyError
from llmloop.store.traffic import SplitError, TrafficSplit

__all__ = ["ApiKey", "ApiKeyError", "SplitError", "TrafficSplit", "create_key", "list_keys", "revoke_key",
           "set_split"]


def _unknown_names(db: Database, names: Iterable[str]) -> list[str]:
    """The ``names`` that are neither a version nor an alias (a split may route only to those)."""
    unknown = []
    for name in names:
        try:
            registry.get(db, name)
        except registry.VersionNotFound:
            unknown.append(name)
    return unknown


def set_split(db: Database, weights: dict[str, float], *, reason: str = "", actor: str = "") -> TrafficSplit:
    """Record the split every gateway on this store routes ``model='llmloop'`` by (kept in its history);
    ``SplitError`` when a name is neither a version nor an alias, and nothing is recorded."""
    unknown = _unknown_names(db, weights)
    if unknown:
        raise SplitError(f"{unknown} name no version or alias (see `llmloop models list`)")
    return traffic.set_split(db, weights, reason=reason, actor=actor)


def create_key(db: Database, *, name: str, role: str = "user", user_id: str | None = None,
               rate_limit_per_minute: int | None = None, max_tokens: int | None = None) -> tuple[str, ApiKey]:
    """A new key: (the key in clear — shown once, stored only as a hash —, its record); ``ApiKeyError``
    for a bad role or an empty name."""
    return apikeys.create_key(db, name=name, role=role, user_id=user_id,
                              rate_limit_per_minute=rate_limit_per_minute, max_tokens=max_tokens)


def list_keys(db: Database) -> list[ApiKey]:
    """Every key, revoked ones too (records only: the keys themselves are not stored)."""
    return apikeys.list_keys(db)


def revoke_key(db: Database, key: str | int) -> ApiKey:
    """Revoke by id, prefix or the key itself; ``ApiKeyError`` if none matches."""
    return apikeys.revoke_key(db, key)
