"""API keys with roles, stored hashed.

A key is ``llk_`` + 43 random URL-safe characters (256 bits) and is shown once, when created. The
store keeps only its SHA-256: for a random 256-bit secret a fast hash is as safe as a slow one
(nothing to brute-force), and a slow password hash (argon2, bcrypt) would add milliseconds to every
request. ``prefix`` (the first 12 characters) lets people tell keys apart in listings.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

import sqlalchemy as sa

from llmloop.errors import UserError
from llmloop.store.db import Database, as_utc, utcnow
from llmloop.store.tables import api_keys

ROLES = ("user", "annotator", "admin")
KEY_PREFIX = "llk_"


class ApiKeyError(UserError, ValueError):
    """A bad role, an unknown key id: the caller's mistake."""


@dataclass(frozen=True)
class ApiKey:
    id: int
    name: str
    prefix: str
    role: str
    user_id: str
    rate_limit_per_minute: int | None
    max_tokens: int | None
    created_at: dt.datetime
    revoked_at: dt.datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _record(r: sa.Row) -> ApiKey:
    return ApiKey(id=r.id, name=r.name, prefix=r.prefix, role=r.role, user_id=r.user_id,
                  rate_limit_per_minute=r.rate_limit_per_minute, max_tokens=r.max_tokens,
                  created_at=as_utc(r.created_at), revoked_at=as_utc(r.revoked_at))


def create_key(db: Database, *, name: str, role: str = "user", user_id: str | None = None,
               rate_limit_per_minute: int | None = None, max_tokens: int | None = None) -> tuple[str, ApiKey]:
    """A new key: returns (the key in clear — show it once —, its record)."""
    if role not in ROLES:
        raise ApiKeyError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if not name.strip():
        raise ApiKeyError("a key needs a name (who or what uses it), e.g. --name ui-server")
    for flag, value in (("rate_limit_per_minute", rate_limit_per_minute), ("max_tokens", max_tokens)):
        if value is not None and value < 1:
            raise ApiKeyError(f"{flag} must be >= 1 (or unset for the server's default), got {value}")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    row = dict(name=name.strip(), prefix=key[:12], key_hash=hash_key(key), role=role,
               user_id=user_id or f"key:{name.strip()}", rate_limit_per_minute=rate_limit_per_minute,
               max_tokens=max_tokens, created_at=now, revoked_at=None)
    with db.begin() as conn:
        new_id = conn.execute(api_keys.insert().values(**row)).inserted_primary_key[0]
    row.pop("key_hash")
    return key, ApiKey(id=int(new_id), **row)


def authenticate(db: Database, key: str) -> ApiKey | None:
    """The active key whose hash matches, else None (unknown or revoked)."""
    if not key.startswith(KEY_PREFIX):
        return None
    with db.begin() as conn:
        r = conn.execute(sa.select(api_keys).where(api_keys.c.key_hash == hash_key(key))).first()
    if r is None or r.revoked_at is not None:
        return None
    return _record(r)


def list_keys(db: Database, *, include_revoked: bool = True) -> list[ApiKey]:
    q = sa.select(api_keys).order_by(api_keys.c.id)
    if not include_revoked:
        q = q.where(api_keys.c.revoked_at.is_(None))
    with db.begin() as conn:
        return [_record(r) for r in conn.execute(q)]


def any_active(db: Database) -> bool:
    with db.begin() as conn:
        return conn.execute(sa.select(api_keys.c.id).where(api_keys.c.revoked_at.is_(None)).limit(1)).first() is not None


def revoke_key(db: Database, key: str | int) -> ApiKey:
    """Revoke by id, by prefix (``llk_AbCdEfGh``) or by the key itself. Revoking twice is a no-op."""
    if isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
        cond = api_keys.c.id == int(key)
    elif len(key) > 12:
        cond = api_keys.c.key_hash == hash_key(key)
    else:
        cond = api_keys.c.prefix == key
    with db.begin() as conn:
        rows = conn.execute(sa.select(api_keys).where(cond)).all()
        if not rows:
            raise ApiKeyError(f"no API key {key!r}: give an id or a prefix from `llmloop serve keys list`")
        if len(rows) > 1:
            raise ApiKeyError(f"{key!r} matches {len(rows)} keys; give the key's id instead")
        if rows[0].revoked_at is None:
            conn.execute(api_keys.update().where(api_keys.c.id == rows[0].id).values(revoked_at=utcnow()))
        r = conn.execute(sa.select(api_keys).where(api_keys.c.id == rows[0].id)).one()
    return _record(r)
