"""The one error base of llmloop, and what each kind of error means to a caller.

Every error llmloop raises on purpose derives from `LlmloopError`. A `UserError` is the caller's to
fix (bad input, an unknown name, a refused action): the CLI exits with its `exit_code` and prints the
message, the HTTP API answers its `http_status` with an OpenAI-shaped body whose `code` is `code`.
`Unavailable` is the environment's (a registry or an upstream server that cannot be reached).
Anything else — a `TypeError`, a `KeyError`, an `AttributeError` — is a bug: the CLI shows the
traceback, the API answers 500. Nothing maps a bare `ValueError` or `LookupError` to a user error.

Domain classes keep their old built-in base as a second parent (`class ConfigError(UserError,
ValueError)`) so that code catching the built-in keeps working.
"""

from __future__ import annotations


class LlmloopError(Exception):
    """Raised on purpose by llmloop; the subclasses say whose fault it is."""

    exit_code = 1
    http_status = 500
    code = "internal_error"


class UserError(LlmloopError):
    """The caller's to fix: the message names what was wrong and how to fix it."""

    exit_code = 2
    http_status = 400
    code = "invalid_request"


class NotFound(UserError):
    """A name (version, dataset, job, battle …) that does not exist."""

    http_status = 404
    code = "not_found"


class Conflict(UserError):
    """A valid request that the current state refuses (already voted, a raced update …)."""

    http_status = 409
    code = "conflict"


class Forbidden(UserError):
    """The caller may not do this (a key's role, another user's session)."""

    http_status = 403
    code = "forbidden"


class Unavailable(LlmloopError):
    """Something outside llmloop could not be reached: a package registry, an upstream server."""

    exit_code = 3
    http_status = 502
    code = "unavailable"


def exit_code_for(error: BaseException) -> int | None:
    """The CLI exit code of a deliberate error, or None for a bug (which must keep its traceback)."""
    return error.exit_code if isinstance(error, LlmloopError) else None
