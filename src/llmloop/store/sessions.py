"""Server-side chat sessions: the history of one conversation, owned by one user, expiring.

One row per session holds the whole (already trimmed) history as JSON; the gateway trims by tokens
before it saves, so a row stays small. An expired session reads as empty and is overwritten by the
next save; ``purge_expired`` deletes the leftovers.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from llmloop.errors import Forbidden
from llmloop.store.db import Database, as_utc, utcnow
from llmloop.store.tables import chat_sessions


class SessionForbidden(Forbidden, PermissionError):
    """The session id belongs to another user."""


def _live_row(conn: sa.Connection, session_id: str, now: dt.datetime) -> sa.Row | None:
    r = conn.execute(sa.select(chat_sessions).where(chat_sessions.c.id == session_id)).first()
    if r is None or as_utc(r.expires_at) <= now:
        return None
    return r


def load(db: Database, session_id: str, user_id: str) -> list[dict[str, Any]]:
    """The history so far ([] for a new or expired session); another user's live session raises."""
    with db.begin() as conn:
        r = _live_row(conn, session_id, utcnow())
    if r is None:
        return []
    if r.user_id != user_id:
        raise SessionForbidden(f"session {session_id!r} belongs to another user")
    return list(r.messages)


def save(db: Database, session_id: str, user_id: str, messages: list[dict[str, Any]], *, ttl_seconds: float) -> None:
    """Replace the session's history and push its expiry ``ttl_seconds`` from now."""
    now = utcnow()
    expires = now + dt.timedelta(seconds=ttl_seconds)
    for attempt in range(2):
        try:
            with db.begin() as conn:
                r = conn.execute(sa.select(chat_sessions).where(chat_sessions.c.id == session_id)).first()
                if r is not None and r.user_id != user_id and as_utc(r.expires_at) > now:
                    raise SessionForbidden(f"session {session_id!r} belongs to another user")
                if r is None:
                    conn.execute(chat_sessions.insert().values(
                        id=session_id, user_id=user_id, messages=messages, created_at=now, updated_at=now,
                        expires_at=expires))
                else:
                    conn.execute(chat_sessions.update().where(chat_sessions.c.id == session_id).values(
                        user_id=user_id, messages=messages, updated_at=now, expires_at=expires,
                        **({} if as_utc(r.expires_at) > now else {"created_at": now})))
            return
        except sa.exc.IntegrityError:  # another request created it between our read and insert
            if attempt:
                raise


def delete(db: Database, session_id: str, user_id: str) -> bool:
    """Clear a session; False when there was none (or it had expired)."""
    with db.begin() as conn:
        r = _live_row(conn, session_id, utcnow())
        if r is None:
            conn.execute(chat_sessions.delete().where(chat_sessions.c.id == session_id))
            return False
        if r.user_id != user_id:
            raise SessionForbidden(f"session {session_id!r} belongs to another user")
        conn.execute(chat_sessions.delete().where(chat_sessions.c.id == session_id))
    return True


def purge_expired(db: Database) -> int:
    with db.begin() as conn:
        return conn.execute(chat_sessions.delete().where(chat_sessions.c.expires_at <= utcnow())).rowcount
