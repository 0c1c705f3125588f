"""Errors as HTTP answers: ``ServingError`` (a request that cannot be served) and ``http_error``, the
one place an ``LlmloopError`` becomes OpenAI's error body.

``http_error`` answers any ``LlmloopError`` with its ``http_status`` and the body
``{"error": {"message", "type", "param", "code"}}``; a ``UserError`` raised by the library (a
``VersionNotFound``, a ``ConfigError`` …) and a ``ServingError`` raised by the gateway itself render
the same way. Anything that is not an ``LlmloopError`` is a bug and is answered 500 by the app's
last-resort handler (``serve/routes.py``), its traceback logged. The serving classes import
``ServingError`` from here and know no web framework.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmloop.errors import LlmloopError
from llmloop.serve import protocol as p

if TYPE_CHECKING:
    from starlette.responses import JSONResponse

# OpenAI's error ``type`` for each status (what its client libraries show); 5xx → server_error
_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "not_found_error", 409: "invalid_request_error", 413: "invalid_request_error",
          422: "invalid_request_error", 429: "rate_limit_error"}


class ServingError(LlmloopError):
    """A request that cannot be served; rendered as OpenAI's error body with ``status``."""

    def __init__(self, message: str, *, status: int = 400, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.type, self.param, self.code = status, type, param, code
        self.headers = headers or {}
        self.http_status = status
        self.exit_code = 2 if 400 <= status < 500 else 1

    def body(self) -> p.ErrorResponse:
        return p.ErrorResponse(error=p.ErrorInfo(message=str(self), type=self.type, param=self.param, code=self.code))


def error_body(error: LlmloopError) -> p.ErrorResponse:
    """OpenAI's error body for ``error``: its message, its ``code``, the ``type`` its status means."""
    status = error.http_status
    kind = getattr(error, "type", None) or _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    message = str(error)
    if isinstance(error, LookupError) and len(error.args) == 1:  # a KeyError's str() quotes its message
        message = str(error.args[0])
    return p.ErrorResponse(error=p.ErrorInfo(message=message, type=kind, param=getattr(error, "param", None),
                                             code=error.code))


def http_error(error: LlmloopError) -> JSONResponse:
    """``error`` as the HTTP answer: its ``http_status``, OpenAI's error body, its headers (if any)."""
    from starlette.responses import JSONResponse

    headers = getattr(error, "headers", None) or None
    return JSONResponse(error_body(error).model_dump(mode="json"), status_code=error.http_status, headers=headers)
