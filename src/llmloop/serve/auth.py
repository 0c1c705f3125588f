"""Who is calling, what they may do, and how often: API keys, roles, rate and size limits.

No web framework here: ``AuthService.principal`` takes the ``Authorization`` header's value and
returns a ``Principal`` or raises ``ServingError`` (401/403/429), which routes render as OpenAI errors.

Auth is **off** while the store holds no active key and ``require_keys`` is false (the embedded demo,
a laptop): every caller is a ``user`` named by the body's ``user``, and admin endpoints answer
loopback clients only. It turns **on** as soon as one
active key exists, or always with ``--require-keys``. Key lookups are cached for ``cache_seconds``
(revoking through the REST API clears the cache at once; a revoke from another process is seen
within that time).

Roles are ordered: ``user`` < ``annotator`` < ``admin``. A user key's requests carry the key's user
id; an annotator or admin key may name the end user (``user`` in the body, ``X-LLMLoop-User``), as a
UI server acting for its users does.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from llmloop.errors import LlmloopError
from llmloop.store import apikeys
from llmloop.store.db import Database

ROLE_RANK = {"user": 0, "annotator": 1, "admin": 2}


@dataclass(frozen=True)
class Principal:
    user_id: str | None  # the key's user; None when auth is off (the request names its user)
    role: str
    key_id: int | None = None
    rate_limit_per_minute: int | None = None
    max_tokens: int | None = None

    @property
    def authenticated(self) -> bool:
        return self.key_id is not None

    def at_least(self, role: str) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


ANONYMOUS_PRINCIPAL = Principal(user_id=None, role="user")
LOCAL_ADMIN = Principal(user_id=None, role="admin")
LOOPBACK = {"127.0.0.1", "::1", "localhost"}


class TokenBucket:
    """Requests per minute, refilled continuously; ``take`` returns 0 or the seconds to wait."""

    def __init__(self, per_minute: int) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.tokens = self.capacity
        self.stamp = time.monotonic()

    def take(self) -> float:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class StoreNeeded(LlmloopError):  # noqa: N818 - a signal, not an error
    """``principal(inline=True)`` found nothing fresh in its cache: ask again off the event loop."""


class AuthService:
    def __init__(self, db: Database, *, require_keys: bool = False, default_rate_limit: int | None = None,
                 cache_seconds: float = 5.0) -> None:
        self.db, self.require_keys, self.default_rate_limit = db, require_keys, default_rate_limit
        self.cache_seconds = cache_seconds
        self._keys: dict[str, tuple[float, apikeys.ApiKey | None]] = {}
        self._enabled: tuple[float, bool] = (0.0, False)
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        with self._lock:
            self._keys.clear()
            self._enabled = (0.0, False)

    def enabled(self, *, inline: bool = False) -> bool:
        if self.require_keys:
            return True
        stamp, on = self._enabled
        if time.monotonic() - stamp < self.cache_seconds:
            return on
        if inline:
            raise StoreNeeded
        on = apikeys.any_active(self.db)
        self._enabled = (time.monotonic(), on)
        return on

    def _lookup(self, key: str, *, inline: bool = False) -> apikeys.ApiKey | None:
        hit = self._keys.get(key)
        if hit is not None and time.monotonic() - hit[0] < self.cache_seconds:
            return hit[1]
        if inline:
            raise StoreNeeded
        record = apikeys.authenticate(self.db, key)
        with self._lock:
            if len(self._keys) > 10_000:  # a flood of random keys must not grow memory without bound
                self._keys.clear()
            self._keys[key] = (time.monotonic(), record)
        return record

    def principal(self, authorization: str | None, role: str, client_host: str | None = None, *,
                  inline: bool = False) -> Principal:
        """Blocking (may query the store): the caller, checked against ``role``. ``inline``: answer from
        the cache only (no blocking call, for the event loop), else raise ``StoreNeeded``."""
        from llmloop.serve.serving import ServingError

        if not self.enabled(inline=inline):
            if role == "user":
                return ANONYMOUS_PRINCIPAL
            # Auth off is local trust: admin endpoints answer loopback callers only (the CLI, a
            # gateway using this one as its upstream on the same host); anyone else needs a key.
            if client_host in LOOPBACK:
                return LOCAL_ADMIN
            raise ServingError(f"this endpoint needs an API key with role {role!r} from a non-local client, and "
                               f"auth is off: create one with `llmloop serve keys create --role {role}`",
                               status=401, type="authentication_error", code="auth_disabled")
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ServingError("missing API key: send `Authorization: Bearer llk_…` (the OpenAI client's api_key)",
                               status=401, type="authentication_error", code="missing_api_key")
        key = self._lookup(token.strip(), inline=inline)
        if key is None:
            raise ServingError("invalid or revoked API key", status=401, type="authentication_error",
                               code="invalid_api_key")
        principal = Principal(user_id=key.user_id, role=key.role, key_id=key.id,
                              rate_limit_per_minute=key.rate_limit_per_minute, max_tokens=key.max_tokens)
        if not principal.at_least(role):
            raise ServingError(f"this endpoint needs role {role!r}; key {key.prefix}… has role {key.role!r}",
                               status=403, type="permission_error", code="insufficient_role")
        return principal

    def check_rate(self, principal: Principal, user_id: str) -> None:
        """429 with ``Retry-After`` when the caller's requests-per-minute are spent."""
        from llmloop.serve.serving import ServingError

        limit = principal.rate_limit_per_minute or self.default_rate_limit
        if not limit:
            return
        who = f"key:{principal.key_id}" if principal.authenticated else f"user:{user_id}"
        with self._lock:
            bucket = self._buckets.get(who)
            if bucket is None or bucket.capacity != limit:
                bucket = self._buckets[who] = TokenBucket(limit)
            wait = bucket.take()
        if wait > 0:
            retry = max(1, math.ceil(wait))
            raise ServingError(f"rate limit of {limit} requests per minute reached; retry in {retry} s",
                               status=429, type="rate_limit_error", code="rate_limit_exceeded",
                               headers={"Retry-After": str(retry)})
