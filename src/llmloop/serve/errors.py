"""``ServingError``: a request that cannot be served, rendered by the routes as OpenAI's error body.
No web framework here; every serving class raises it."""

from __future__ import annotations

from llmloop.serve import protocol as p


class ServingError(Exception):
    """A request that cannot be served; rendered as OpenAI's error body with ``status``."""

    def __init__(self, message: str, *, status: int = 400, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.type, self.param, self.code = status, type, param, code
        self.headers = headers or {}

    def body(self) -> p.ErrorResponse:
        return p.ErrorResponse(error=p.ErrorInfo(message=str(self), type=self.type, param=self.param, code=self.code))
