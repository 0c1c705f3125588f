"""The gateway: OpenAI-compatible API, engines, routing, sessions, auth, feedback capture.

Layers (as in vLLM's entrypoints): ``protocol`` pydantic models · engines (``engine`` embedded,
``upstream`` any OpenAI-compatible server, ``vllm`` launcher, ``echo``), no web framework ·
service classes (``serving``, ``capture``, ``sessions``, ``admin``, ``auth``), no web framework ·
``routes`` thin FastAPI routers · ``app.create_app()`` · ``config.ServeConfig`` · ``run.run_gateway``.
See ``docs/gateway.md``.
"""
