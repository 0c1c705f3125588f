"""The gateway: OpenAI-compatible API, routing, sessions, auth, feedback capture.

Layers (as in vLLM's entrypoints): ``protocol`` pydantic models · service classes (``serving``,
``capture``, ``sessions``, ``admin``, ``auth``, ``pool``), no web framework · ``routes`` thin FastAPI
routers · ``gateway.create_gateway_app()`` · ``config.ServeConfig``. Engines live below, in
``llmloop.inference``; the process (gateway + admin API + loop metrics + UI, ``run_gateway``) is
put together above, in ``llmloop.app``. See ``docs/gateway.md`` and ``docs/architecture.md``.
"""
