"""``UpstreamEngine``: any OpenAI-compatible server (vLLM, another llmloop gateway, …) as the engine.

A version with a LoRA adapter is served upstream as a model of the version's own name, loaded with
vLLM's run-time LoRA API (``POST /v1/load_lora_adapter {"lora_name", "lora_path"}``; vLLM needs
``--enable-lora`` and ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``) and removed with
``/v1/unload_lora_adapter``. A version without an adapter is sent to the upstream's base model name.
An upstream that restarted has forgotten its adapters: a request that gets 404 for an adapter
version re-applies every adapter and retries once, and ``sync`` (called by the gateway's reconcile
loop) compares the upstream's ``/v1/models`` with what should be there and re-applies the missing,
restarting a launched vLLM first if its process died.

Knows nothing about the gateway's HTTP layer: failures raise ``UpstreamError``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import orjson

from llmloop.errors import Unavailable
from llmloop.inference.base import (
    Generation,
    SamplingParams,
    StreamResult,
    UnknownVersion,
)
from llmloop.store.records import ModelVersion

log = logging.getLogger("llmloop.inference.upstream")
_JSON = {"content-type": "application/json"}


class UpstreamError(Unavailable, RuntimeError):
    """The upstream refused or could not be reached; ``status`` is its HTTP status (502 if none),
    which the gateway answers with (``code`` upstream_error)."""

    code = "upstream_error"
    type = "server_error"

    def __init__(self, message: str, status: int = 502) -> None:
        super().__init__(message)
        self.status = self.http_status = status


class UpstreamEngine:
    def __init__(self, url: str, *, api_key: str | None = None, base_model_name: str | None = None,
                 timeout: float = 600, launcher: Any = None, async_client: str = "auto") -> None:
        """``async_client``: the HTTP client of the request path (``achat``): ``aiohttp`` (about a fifth
        of httpx's CPU per request, measured in ``benchmarks/gateway_overhead.py``'s notes), ``httpx``,
        or ``auto`` (aiohttp when installed)."""
        url = url.rstrip("/")
        self.root = url[:-3] if url.endswith("/v1") else url
        self.base_model_name = base_model_name
        self.launcher = launcher  # a VllmLauncher when llmloop started the upstream itself
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(base_url=self.root, headers=headers, timeout=timeout,
                                   limits=httpx.Limits(max_connections=64, max_keepalive_connections=64))
        self.timeout, self.async_client = timeout, async_client
        if async_client in ("auto", "aiohttp"):  # import now, not inside the first request
            try:
                import aiohttp  # noqa: F401
            except ImportError:
                if async_client == "aiohttp":
                    raise
        self._aclient: _AsyncPoster | None = None  # made on first use, on the serving event loop
        self._versions: dict[str, ModelVersion] = {}
        self._lock = threading.Lock()
        self.reapplied = 0  # how many times adapters were re-applied after an upstream restart

    # -- versions and adapters ---------------------------------------------------------------------
    def load(self, version: ModelVersion) -> None:
        if version.adapter_path:
            self._apply(version)
        self._versions[version.name] = version

    def unload(self, name: str) -> None:
        version = self._versions.pop(name, None)
        if version is not None and version.adapter_path:
            r = self._request("POST", "/v1/unload_lora_adapter", {"lora_name": name})
            if r.status_code >= 400 and r.status_code != 404:
                log.warning("upstream refused to unload %s: %s", name, r.text[:200])

    def loaded(self) -> list[str]:
        return sorted(self._versions)

    def _apply(self, version: ModelVersion) -> None:
        r = self._request("POST", "/v1/load_lora_adapter", {"lora_name": version.name, "lora_path": version.adapter_path})
        if r.status_code >= 400 and "already" not in r.text:
            raise UpstreamError(f"upstream {self.root} refused to load adapter {version.name!r} from "
                                f"{version.adapter_path}: {r.status_code} {r.text[:300]}", status=502)

    def reapply(self) -> list[str]:
        """Load every adapter version again (after an upstream restart)."""
        with self._lock:
            names = []
            for v in list(self._versions.values()):
                if v.adapter_path:
                    self._apply(v)
                    names.append(v.name)
            self.reapplied += 1
            log.info("re-applied adapters %s to %s", names, self.root)
            return names

    def healthy(self) -> bool:
        try:
            return self.client.get("/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def sync(self) -> list[str]:
        """Restart a launched upstream that died; re-apply adapters the upstream does not list."""
        if self.launcher is not None and not self.launcher.alive():
            log.warning("the upstream process exited; restarting it")
            self.launcher.start()
        try:
            r = self.client.get("/v1/models", timeout=10)
            listed = {m["id"] for m in r.json().get("data", [])} if r.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return []
        wanted = {v.name for v in self._versions.values() if v.adapter_path}
        if listed is None or wanted <= listed:
            return []
        return self.reapply()

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"url": self.root, "reapplied": self.reapplied}
        if self.launcher is not None:
            out["pid"] = self.launcher.pid
        return out

    def close(self) -> None:
        self.client.close()
        if self.launcher is not None:
            self.launcher.stop()

    # -- HTTP ----------------------------------------------------------------------------------------
    def _request(self, method: str, path: str, body: dict[str, Any]) -> httpx.Response:
        try:
            return self.client.request(method, path, json=body)
        except httpx.HTTPError as e:
            raise UpstreamError(f"upstream {self.root} unreachable: {e.__class__.__name__}: {e}", status=502) from e

    def _model(self, name: str) -> tuple[ModelVersion, str]:
        try:
            v = self._versions[name]
        except KeyError:
            raise UnknownVersion(f"model version {name!r} is not loaded; loaded: {self.loaded()}") from None
        return v, (v.name if v.adapter_path else (self.base_model_name or v.base_model))

    def _post(self, name: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        version, model = self._model(name)
        body = {**body, "model": model}
        r = self._request("POST", path, body)
        if r.status_code == 404 and version.adapter_path:  # the upstream restarted and forgot the adapter
            self.reapply()
            r = self._request("POST", path, body)
        if r.status_code >= 400:
            raise UpstreamError(f"upstream {self.root} answered {r.status_code}: {r.text[:300]}", status=502)
        return r.json()

    @staticmethod
    def _sampling(params: SamplingParams) -> dict[str, Any]:
        out: dict[str, Any] = {"max_tokens": params.max_tokens, "temperature": params.temperature, "top_p": params.top_p}
        if params.seed is not None:
            out["seed"] = params.seed
        if params.stop:
            out["stop"] = list(params.stop)
        return out

    # -- generation ----------------------------------------------------------------------------------
    def chat(self, version: str, messages: list[dict[str, Any]], params: SamplingParams, n: int = 1) -> list[Generation]:
        data = self._post(version, "/v1/chat/completions", {"messages": messages, "n": n, **self._sampling(params)})
        return self._generations(data)

    async def achat(self, version: str, messages: list[dict[str, Any]], params: SamplingParams,
                    n: int = 1) -> list[Generation]:
        """``chat`` on the caller's event loop (no worker thread): the gateway uses it when present, since
        every thread hand-off costs a scheduler wait on a busy machine."""
        import asyncio

        v, model = self._model(version)
        payload = orjson.dumps({"messages": messages, "n": n, **self._sampling(params), "model": model})
        if self._aclient is None:
            self._aclient = _AsyncPoster.make(self.root, dict(self.client.headers), self.timeout, self.async_client)
        for attempt in range(2):
            status, content = await self._aclient.post("/v1/chat/completions", payload)
            if status == 404 and v.adapter_path and attempt == 0:  # restarted upstream: re-apply, retry
                await asyncio.to_thread(self.reapply)
                continue
            break
        text = content[:300].decode(errors="replace")
        if status >= 400:
            raise UpstreamError(f"upstream {self.root} answered {status}: {text}", status=502)
        try:
            return self._generations(orjson.loads(content))
        except (orjson.JSONDecodeError, KeyError, TypeError) as e:
            raise UpstreamError(f"upstream {self.root} answered 200 with no chat completion in it "
                                f"({e.__class__.__name__}: {e}): {text}", status=502) from e

    async def aclose(self) -> None:
        if self._aclient is not None:
            await self._aclient.close()
            self._aclient = None

    @staticmethod
    def _generations(data: dict[str, Any]) -> list[Generation]:
        usage = data.get("usage") or {}
        per = max(1, int(usage.get("completion_tokens", 0)) // max(1, len(data["choices"])))
        return [Generation(text=c["message"].get("content") or "", prompt_tokens=int(usage.get("prompt_tokens", 0)),
                           completion_tokens=per, finish_reason="length" if c.get("finish_reason") == "length" else "stop")
                for c in sorted(data["choices"], key=lambda c: c["index"])]

    def chat_batch(self, version: str, conversations: list[list[dict[str, Any]]], params: SamplingParams) -> list[Generation]:
        # The upstream batches concurrent requests itself (vLLM: continuous batching).
        return [self.chat(version, c, params)[0] for c in conversations]

    def chat_stream(self, version: str, messages: list[dict[str, Any]], params: SamplingParams,
                    result: StreamResult) -> Iterator[str]:
        v, model = self._model(version)
        body = {"model": model, "messages": messages, "stream": True, "stream_options": {"include_usage": True},
                **self._sampling(params)}
        for attempt in range(2):
            try:
                with self.client.stream("POST", "/v1/chat/completions", json=body) as r:
                    if r.status_code == 404 and v.adapter_path and attempt == 0:
                        r.read()
                        self.reapply()
                        continue
                    if r.status_code >= 400:
                        r.read()
                        raise UpstreamError(f"upstream {self.root} answered {r.status_code}: {r.text[:300]}")
                    text = []
                    for line in r.iter_lines():
                        if not line.startswith("data: ") or line == "data: [DONE]":
                            continue
                        chunk = json.loads(line[6:])
                        if "error" in chunk:
                            raise UpstreamError(f"upstream stream failed: {chunk['error']}")
                        if chunk.get("usage"):
                            result.prompt_tokens = int(chunk["usage"].get("prompt_tokens", 0))
                            result.completion_tokens = int(chunk["usage"].get("completion_tokens", 0))
                        for c in chunk.get("choices", []):
                            piece = (c.get("delta") or {}).get("content")
                            if piece:
                                text.append(piece)
                                yield piece
                            if c.get("finish_reason"):
                                result.finish_reason = "length" if c["finish_reason"] == "length" else "stop"
                    result.text = "".join(text)
                    return
            except httpx.HTTPError as e:
                raise UpstreamError(f"upstream {self.root} unreachable: {e.__class__.__name__}: {e}") from e

    def complete(self, version: str, prompt: str, params: SamplingParams) -> Generation:
        data = self._post(version, "/v1/completions", {"prompt": prompt, **self._sampling(params)})
        usage = data.get("usage") or {}
        c = data["choices"][0]
        return Generation(text=c.get("text") or "", prompt_tokens=int(usage.get("prompt_tokens", 0)),
                          completion_tokens=int(usage.get("completion_tokens", 0)),
                          finish_reason="length" if c.get("finish_reason") == "length" else "stop")


class _AsyncPoster:
    """POST JSON bytes, get (status, body bytes) back — over aiohttp or httpx. The request path's only
    HTTP call; errors of either library become ``UpstreamError`` (502)."""

    def __init__(self, root: str, post: Any, close: Any, name: str) -> None:
        self.root, self._post, self._close, self.name = root, post, close, name

    @classmethod
    def make(cls, root: str, headers: dict[str, str], timeout: float, which: str = "auto") -> _AsyncPoster:
        if which not in ("auto", "aiohttp", "httpx"):
            raise ValueError(f"async_client must be auto, aiohttp or httpx, got {which!r}")
        if which in ("auto", "aiohttp"):
            try:
                import aiohttp
            except ImportError:
                if which == "aiohttp":
                    raise
            else:
                session = aiohttp.ClientSession(  # full URLs: a root with a path prefix keeps it
                    headers={**headers, **_JSON}, timeout=aiohttp.ClientTimeout(total=timeout),
                    connector=aiohttp.TCPConnector(limit=256, ttl_dns_cache=None))

                async def post(path: str, payload: bytes) -> tuple[int, bytes]:
                    try:
                        async with session.post(root + path, data=payload) as r:
                            return r.status, await r.read()
                    except (aiohttp.ClientError, TimeoutError) as e:
                        raise UpstreamError(f"upstream {root} unreachable: {e.__class__.__name__}: {e}") from e

                return cls(root, post, session.close, "aiohttp")
        client = httpx.AsyncClient(base_url=root, headers={**headers, **_JSON}, timeout=timeout,
                                   limits=httpx.Limits(max_connections=256, max_keepalive_connections=256))

        async def hpost(path: str, payload: bytes) -> tuple[int, bytes]:
            try:
                r = await client.post(path, content=payload)
            except httpx.HTTPError as e:
                raise UpstreamError(f"upstream {root} unreachable: {e.__class__.__name__}: {e}") from e
            return r.status_code, r.content

        return cls(root, hpost, client.aclose, "httpx")

    async def post(self, path: str, payload: bytes) -> tuple[int, bytes]:
        return await self._post(path, payload)

    async def close(self) -> None:
        await self._close()
