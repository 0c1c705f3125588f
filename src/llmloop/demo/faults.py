"""Fault drills for the loop: a real gateway process whose engine fails a share of one version's requests.

    python -m llmloop.demo.faults --port 8010 --rate 0.1 --target candidate

runs the ordinary gateway (``llmloop.app.create_app``, same routes, routing, metrics and store)
over a ``FlakyEngine``: the embedded engine, except that each generation for ``target`` (an alias,
resolved through the store on every request, or a version name) fails with probability ``rate``,
as an upstream that answers 5xx would. The failure leaves as a 502 carrying the serving version in
``x-llmloop-version``, so ``/metrics`` counts it against that version — what the canary reads.
Used by the rollback tests and ``llmloop demo``'s drill; never by ``llmloop serve``.
"""

from __future__ import annotations

import argparse
import random
import threading
from pathlib import Path
from typing import Any

from llmloop.serve.process import GatewayProcess


class InjectedFault(RuntimeError):
    """The drill's stand-in for an engine that fails unexpectedly: deliberately not an ``LlmloopError``
    (a plain gateway answers it as the bug it imitates, 500; this drill's app as an upstream's 502)."""

    def __init__(self, version: str) -> None:
        super().__init__(f"injected upstream failure for {version} (fault drill)")
        self.version = version


class FlakyEngine:
    """Delegates to ``inner``; generations for ``target`` fail with probability ``rate``."""

    def __init__(self, inner: Any, db: Any, rate: float, target: str, seed: int = 0) -> None:
        self.inner, self.db, self.rate, self.target = inner, db, rate, target
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.injected = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _maybe_fail(self, version: str) -> None:
        from llmloop.store import registry

        target = registry.resolve_alias(self.db, self.target) or self.target
        if version != target:
            return
        with self._lock:
            fail = self._rng.random() < self.rate
            self.injected += fail
        if fail:
            raise InjectedFault(version)

    def chat(self, version: str, *args: Any, **kwargs: Any) -> Any:
        self._maybe_fail(version)
        return self.inner.chat(version, *args, **kwargs)

    def chat_stream(self, version: str, *args: Any, **kwargs: Any) -> Any:
        self._maybe_fail(version)
        return self.inner.chat_stream(version, *args, **kwargs)


def create_app(rate: float, target: str, seed: int = 0, **config: Any):  # noqa: ANN201 - a FastAPI app
    from fastapi import Request
    from fastapi.responses import JSONResponse

    from llmloop.app import create_app as gateway_app
    from llmloop.inference.embedded import EmbeddedEngine
    from llmloop.serve.config import ServeConfig
    from llmloop.serve.routes import VERSION_HEADER
    from llmloop.store import open_database

    db = open_database()
    cfg = ServeConfig(**config)
    app = gateway_app(db=db, engine=FlakyEngine(EmbeddedEngine(device=cfg.device), db, rate, target, seed), config=cfg)

    async def _fault(_: Request, e: Exception) -> JSONResponse:
        assert isinstance(e, InjectedFault)
        body = {"error": {"message": str(e), "type": "server_error", "param": None, "code": "upstream_error"}}
        return JSONResponse(body, status_code=502, headers={VERSION_HEADER: e.version})

    app.add_exception_handler(InjectedFault, _fault)
    return app


def FaultyGateway(home: Path, rate: float, target: str = "candidate", seed: int = 0,  # noqa: N802 - reads as a type
                  log_path: Path | None = None) -> GatewayProcess:
    """``python -m llmloop.demo.faults`` as a child process on a free loopback port (start/stop/kill
    and the readiness wait are ``GatewayProcess``'s)."""
    home = Path(home)
    return GatewayProcess(home, log_path=log_path or home / "faulty-gateway.log",
                          module_args=("llmloop.demo.faults",),
                          extra_args=("--rate", str(rate), "--target", target, "--seed", str(seed)))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m llmloop.demo.faults", description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1")
    ap.add_argument("--rate", type=float, required=True, help="Share of the target's generations that fail (0–1)")
    ap.add_argument("--target", default="candidate", help="Alias or version whose requests fail")
    ap.add_argument("--seed", type=int, default=0, help="Seed of the failure draws")
    a = ap.parse_args(argv)
    if not 0 <= a.rate <= 1:
        ap.error(f"--rate must be between 0 and 1, got {a.rate}")
    import torch
    import uvicorn

    torch.set_num_threads(1)
    app = create_app(a.rate, a.target, a.seed, port=a.port, log_level="warning", reconcile_seconds=0.5)
    uvicorn.run(app, host="127.0.0.1", port=a.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
