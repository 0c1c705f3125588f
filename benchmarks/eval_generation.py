"""How fast `eval run` gets answers, against the obvious alternative, measured in the same run.

    OMP_NUM_THREADS=1 python benchmarks/eval_generation.py            # ~1 minute on 2 CPU cores
    OMP_NUM_THREADS=1 python benchmarks/eval_generation.py --rows 200 --latency-ms 200

(a) Endpoint: an OpenAI-compatible model server (uvicorn, started here) that answers after
    ``--latency-ms`` (a remote model's time to answer; the server is not the bottleneck). Alternative:
    the official ``openai`` client asking one prompt after another. llmloop: ``run_eval`` through
    ``EndpointEngine`` with 8 requests in flight (the default), retries and timeouts on.
(b) Local model: the tiny model on CPU, greedy, 32 new tokens. Alternative: one prompt per
    ``generate`` call (batch size 1). llmloop: ``run_eval`` with batch size 8 (the default).
Printed: answers/s of each and the ratio llmloop / alternative.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

from fastapi import (
    Request,  # module level: the route's annotation must resolve (postponed annotations)
)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def _server(latency_s: float):  # noqa: ANN202
    import uvicorn
    from fastapi import FastAPI

    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(req: Request):  # noqa: ANN202
        body = await req.json()
        await asyncio.sleep(latency_s)
        return {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    return f"http://127.0.0.1:{sock.getsockname()[1]}/v1", server


def bench_endpoint(rows: int, latency_ms: float) -> tuple[float, float]:
    from openai import OpenAI

    from llmloop.eval.endpoint import EndpointEngine
    from llmloop.eval.evalset import EvalRow
    from llmloop.eval.report import run_eval

    url, server = _server(latency_ms / 1000)
    prompts = [f"question {i}" for i in range(rows)]
    client = OpenAI(base_url=url, api_key="unused")
    t = time.perf_counter()
    for p in prompts:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": p}], max_tokens=8)
    sequential = rows / (time.perf_counter() - t)
    engine = EndpointEngine(url)
    t = time.perf_counter()
    rep = run_eval(engine, ["m"], [EvalRow([{"role": "user", "content": p}]) for p in prompts], batch_size=8,
                   measure_memory=False)
    ours = rows / (time.perf_counter() - t)
    assert rep.versions[0].failed == 0
    server.should_exit = True
    return sequential, ours


def bench_local(rows: int) -> tuple[float, float]:
    import datetime as dt

    from llmloop.eval.evalset import EvalRow
    from llmloop.eval.report import run_eval
    from llmloop.inference.base import SamplingParams
    from llmloop.inference.embedded import EmbeddedEngine
    from llmloop.models.tiny import build_tiny_model
    from llmloop.store.records import ModelVersion

    path = build_tiny_model(Path(tempfile.mkdtemp()) / "tiny")
    engine = EmbeddedEngine(device="cpu")
    engine.load(ModelVersion("v", "chat", str(path), None, None, None, [], {}, "candidate", "",
                             dt.datetime.now(dt.timezone.utc)))
    data = [EvalRow([{"role": "user", "content": f"Where is my order number {i}?"}]) for i in range(rows)]
    params = SamplingParams(max_tokens=32, temperature=0.0)
    run_eval(engine, ["v"], data[:2], params, batch_size=2)  # warm-up
    out = []
    for bs in (1, 8):
        t = time.perf_counter()
        run_eval(engine, ["v"], data, params, batch_size=bs)
        out.append(rows / (time.perf_counter() - t))
    return out[0], out[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=64)
    ap.add_argument("--latency-ms", type=float, default=100.0)
    ap.add_argument("--local-rows", type=int, default=32)
    args = ap.parse_args()
    seq, ours = bench_endpoint(args.rows, args.latency_ms)
    print(f"endpoint ({args.rows} prompts, {args.latency_ms:g} ms per answer): openai client one by one "
          f"{seq:.1f} answers/s; llmloop EndpointEngine (8 in flight) {ours:.1f} answers/s; ratio {ours / seq:.2f}x")
    one, eight = bench_local(args.local_rows)
    print(f"local tiny model on CPU ({args.local_rows} prompts, 32 tokens): batch 1 {one:.2f} answers/s; "
          f"llmloop batch 8 {eight:.2f} answers/s; ratio {eight / one:.2f}x")


if __name__ == "__main__":
    main()
