"""The UI's only door to llmloop: the gateway's HTTP API, never the library's store.

OpenAI-compatible calls go through the ``openai`` client (streaming included); llmloop's own
endpoints (arena, feedback, and the admin/annotator REST API under ``/api/v1``) through ``httpx``. Every call carries the UI user's id and, when the UI
was started with one, its API key, so the gateway enforces roles exactly as for any other client.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from llmloop.errors import LlmloopError


class GatewayError(LlmloopError, RuntimeError):
    """The gateway refused or failed a call; the message is the gateway's own error text, ``code`` and
    ``status`` its error code and HTTP status (``ui/error_text.py`` turns them into the page's words)."""

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,
                 param: str | None = None) -> None:
        super().__init__(message)
        self.code, self.status, self.param = code, status, param


def _error(response: httpx.Response) -> GatewayError:
    try:
        err = response.json()["error"]
        return GatewayError(str(err["message"]), code=err.get("code"), status=response.status_code,
                            param=err.get("param"))
    except Exception:  # noqa: BLE001 - any non-OpenAI-shaped body: show the raw text
        return GatewayError(f"HTTP {response.status_code}: {response.text[:300]}", status=response.status_code)


@dataclass
class StreamedAnswer:
    """Filled while a chat answer streams: the text so far and, once known, its request id/version."""

    text: str = ""
    request_id: str | None = None
    version: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class GatewayClient:
    def __init__(self, base_url: str, api_key: str | None = None, *, timeout: float = 120.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        # No keep-alive: uvicorn closes idle connections after 5 s, and a request racing that close
        # fails with "connection reset" (the UI polls every few seconds, right at that edge).
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout,
                                  limits=httpx.Limits(max_keepalive_connections=0))

    # -- OpenAI-compatible -----------------------------------------------------------------------
    def _openai(self):  # noqa: ANN202 - imported lazily: the UI extra brings it
        from openai import OpenAI

        return OpenAI(base_url=f"{self.base_url}/v1", api_key=self.api_key or "llmloop-ui", max_retries=0)

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.TransportError as e:
            raise GatewayError(f"cannot reach the gateway at {self.base_url} ({type(e).__name__}: {e})",
                               code="unreachable") from None

    def models(self) -> list[dict[str, Any]]:
        r = self._send("GET", "/v1/models")
        if r.status_code != 200:
            raise _error(r)
        return list(r.json()["data"])

    def chat_stream(self, messages: list[dict[str, str]], *, user: str | None, model: str = "production",
                    max_tokens: int = 256, temperature: float = 0.7) -> Iterator[StreamedAnswer]:
        """Yield the growing answer after every streamed chunk; the last one is complete."""
        from openai import APIError

        answer = StreamedAnswer()
        try:
            with self._openai().chat.completions.with_streaming_response.create(
                model=model, messages=messages, stream=True, **({"user": user} if user else {}),
                max_tokens=max_tokens, temperature=temperature,
            ) as response:
                answer.request_id = response.headers.get("x-llmloop-request-id")
                answer.version = response.headers.get("x-llmloop-version")
                for chunk in response.parse():
                    if chunk.choices and chunk.choices[0].delta.content:
                        answer.text += chunk.choices[0].delta.content
                        yield answer
        except APIError as e:
            body = getattr(e, "body", None)
            err = body.get("error", body) if isinstance(body, dict) else {}
            raise GatewayError(str(err.get("message") or getattr(e, "message", e)), code=err.get("code"),
                               status=getattr(e, "status_code", None)) from e
        yield answer

    # -- llmloop's own endpoints -----------------------------------------------------------------
    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("user") is None:  # a user key acts as the key's own user: name nobody else
            body = {k: v for k, v in body.items() if k != "user"}
        r = self._send("POST", path, json=body)
        if r.status_code >= 400:
            raise _error(r)
        return dict(r.json())

    def arena(self, prompt: str, *, user: str | None, max_tokens: int = 128,
              battle_id: str | None = None) -> dict[str, Any]:
        """Two anonymous answers to ``prompt``; with ``battle_id``, that battle's next turn (a follow-up)."""
        body: dict[str, Any] = {"messages": [{"role": "user", "content": prompt}], "user": user, "max_tokens": max_tokens}
        if battle_id:
            body["battle_id"] = battle_id
        return self._post("/v1/arena", body)

    def vote(self, battle_id: str, choice: str, *, user: str | None) -> dict[str, Any]:
        return self._post("/v1/feedback/vote", {"battle_id": battle_id, "choice": choice, "user": user})

    def thumbs(self, request_id: str, rating: int, *, user: str | None, comment: str = "",
               correction: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"request_id": request_id, "rating": rating, "user": user, "comment": comment}
        if correction:
            body["correction"] = correction
        return self._post("/v1/feedback/thumbs", body)

    # -- the admin/annotator REST API (/api/v1, llmloop.api) -------------------------------------
    def api(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
            files: dict[str, Any] | None = None, data: dict[str, Any] | None = None) -> Any:
        """One call to ``/api/v1{path}``; the gateway's error message becomes a ``GatewayError``."""
        r = self._send(method, f"/api/v1{path}", json=json, params=params, files=files, data=data)
        if r.status_code >= 400:
            raise _error(r)
        return None if r.status_code == 204 else r.json()

    def get(self, path: str, **params: Any) -> Any:
        return self.api("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.api("POST", path, json=body or {})

    def put(self, path: str, body: dict[str, Any]) -> Any:
        return self.api("PUT", path, json=body)

    def upload(self, path: str, file: str | Path, **form: Any) -> Any:
        """POST ``file`` (multipart, under its own name) with form fields."""
        file = Path(file)
        with file.open("rb") as f:
            return self.api("POST", path, files={"file": (file.name, f)},
                            data={k: str(v) for k, v in form.items() if v is not None})

    def download(self, path: str, *, method: str = "GET", **params: Any) -> Path:
        """Fetch a file the API sends (an export, a report, a review sheet) into a fresh temp folder."""
        r = self._send(method, f"/api/v1{path}", params={k: v for k, v in params.items() if v is not None})
        if r.status_code >= 400:
            raise _error(r)
        disposition = r.headers.get("content-disposition", "")
        name = disposition.split("filename=")[-1].strip('"; ') if "filename=" in disposition else "download"
        out = Path(tempfile.mkdtemp(prefix="llmloop-ui-")) / Path(name).name
        out.write_bytes(r.content)
        return out

    def whoami(self) -> dict[str, Any] | None:
        """The key's role and user (any valid key, user keys included), or None without a usable key."""
        try:
            return dict(self.get("/whoami"))
        except GatewayError:
            return None

    def ready(self) -> tuple[bool, dict[str, Any]]:
        r = self._http.get("/ready")
        return r.status_code == 200, dict(r.json())

    def close(self) -> None:
        self._http.close()
