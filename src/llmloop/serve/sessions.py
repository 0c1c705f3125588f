"""Server-side sessions: a client sends ``session_id`` and only its new turn(s); the gateway adds the
history it kept, and after the answer saves history + new turns + answer, trimmed by tokens (oldest
turns first, system messages kept) and expiring ``ttl_seconds`` after the last turn.

No web framework here; blocking calls (run them on the store lane).
"""

from __future__ import annotations

from typing import Any

from llmloop.inference.base import Engine, count_tokens
from llmloop.store import sessions
from llmloop.store.db import Database


class SessionService:
    def __init__(self, db: Database, engine: Engine, *, max_tokens: int = 2048, ttl_seconds: float = 3600) -> None:
        self.db, self.engine, self.max_tokens, self.ttl_seconds = db, engine, max_tokens, ttl_seconds

    def load(self, session_id: str, user_id: str) -> list[dict[str, Any]]:
        from llmloop.serve.serving import ServingError

        try:
            return sessions.load(self.db, session_id, user_id)
        except sessions.SessionForbidden:
            raise ServingError(f"session {session_id!r} belongs to another user: use your own session id",
                               status=403, type="permission_error", param="session_id",
                               code="session_forbidden") from None

    def trim(self, version: str, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Drop the oldest non-system messages until the history fits ``max_tokens``; the newest
        exchange is always kept."""
        system = [m for m in messages if m["role"] == "system"]
        turns = [m for m in messages if m["role"] != "system"]
        while len(turns) > 2 and count_tokens(self.engine, version, [*system, *turns]) > self.max_tokens:
            turns = turns[1:]
            while turns and turns[0]["role"] != "user" and len(turns) > 2:
                turns = turns[1:]  # never start on an assistant turn
        return [*system, *turns]

    def append(self, session_id: str, user_id: str, version: str, messages: list[dict[str, Any]], answer: str) -> None:
        history = self.trim(version, [*messages, {"role": "assistant", "content": answer}])
        sessions.save(self.db, session_id, user_id, history, ttl_seconds=self.ttl_seconds)

    def view(self, session_id: str, user_id: str) -> list[dict[str, Any]]:
        from llmloop.serve.serving import ServingError

        history = self.load(session_id, user_id)
        if not history:
            raise ServingError(f"no session {session_id!r} (never started, cleared or expired)", status=404,
                               param="session_id", code="session_not_found")
        return history

    def delete(self, session_id: str, user_id: str) -> None:
        from llmloop.serve.serving import ServingError

        try:
            found = sessions.delete(self.db, session_id, user_id)
        except sessions.SessionForbidden:
            raise ServingError(f"session {session_id!r} belongs to another user", status=403,
                               type="permission_error", param="session_id", code="session_forbidden") from None
        if not found:
            raise ServingError(f"no session {session_id!r} (never started, cleared or expired)", status=404,
                               param="session_id", code="session_not_found")
