"""What the gateway adds: latency and throughput through llmloop vs calling the same upstream directly.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/gateway_overhead.py --requests 2000 --concurrency 16

Three processes on loopback: a stub OpenAI-compatible upstream (a bare ASGI app under uvicorn that
answers every chat completion with the same short reply, optionally after ``--upstream-ms`` of
simulated generation), ``llmloop serve --engine upstream`` in front of it (a registered version
``v1.0`` without adapter → the upstream's ``base``; auth off; every answer recorded durably in
SQLite before the response, as in production), and this load generator (httpx, keep-alive).

1. latency: one request at a time, ``--requests`` each way → p50/p99 direct, through, and added;
2. throughput: ``--concurrency`` clients for ``--seconds`` each way against an upstream that takes
   ``--upstream-ms`` per request (a model's generation time) → requests/s through / direct, with
   the gateway's CPU time per request. Each side is warmed up first, and direct/through alternate
   for ``--rounds`` rounds (the ratio is of the sums), so a shared machine's changing load falls on
   both sides alike. The load average is printed with the numbers.

A stub rather than a model keeps generation from hiding the gateway's own cost (measure 1), and
a fixed service time models an upstream that is the bottleneck, as a GPU server is (measure 2).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx

STUB = textwrap.dedent('''
    import asyncio, json, sys
    import uvicorn
    DELAY = float(sys.argv[2]) / 1000
    REPLY = json.dumps({"id": "chatcmpl-stub", "object": "chat.completion", "created": 0, "model": "base",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Your order ships today."},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}}).encode()
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        path = scope["path"]
        if path == "/v1/chat/completions" and DELAY:
            await asyncio.sleep(DELAY)
        body = REPLY if path == "/v1/chat/completions" else b'{"object":"list","data":[]}'
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
''')
BODY = {"model": "v1.0", "messages": [{"role": "user", "content": "Where is my order?"}], "max_tokens": 16}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


class Stack:
    """The stub upstream and a gateway in front of it, as child processes."""

    def __init__(self, upstream_ms: float, home: Path, record_answers: str = "sync") -> None:
        env = {**os.environ, "LLMLOOP_HOME": str(home), "OMP_NUM_THREADS": "1"}
        env.pop("LLMLOOP_DATABASE_URL", None)
        self.up_port, self.gw_port = _port(), _port()
        self.upstream = subprocess.Popen([sys.executable, "-c", STUB, str(self.up_port), str(upstream_ms)], env=env)
        from llmloop.store import open_database, registry
        from llmloop.workspace import get_workspace

        db = open_database(get_workspace(home))
        registry.register(db, name="v1.0", kind="chat", base_model="stub")
        registry.set_alias(db, "production", "v1.0")
        db.dispose()
        self.gateway = subprocess.Popen(
            [sys.executable, "-m", "llmloop.cli.main", "serve", "--port", str(self.gw_port), "--engine", "upstream",
             "--upstream-url", f"http://127.0.0.1:{self.up_port}/v1", "--upstream-model", "base",
             "--log-level", "warning", "--record-answers", record_answers], env=env)
        _wait(f"http://127.0.0.1:{self.up_port}/health", self.upstream)
        _wait(f"http://127.0.0.1:{self.gw_port}/ready", self.gateway)
        self.direct = f"http://127.0.0.1:{self.up_port}"
        self.through = f"http://127.0.0.1:{self.gw_port}"

    def close(self) -> None:
        for p in (self.gateway, self.upstream):
            p.terminate()
            p.wait(timeout=30)


def latency(url: str, n: int) -> list[float]:
    out = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(min(50, n)):  # warm-up
            client.post("/v1/chat/completions", json=BODY)
        for _ in range(n):
            t0 = time.perf_counter()
            r = client.post("/v1/chat/completions", json=BODY)
            out.append(time.perf_counter() - t0)
            assert r.status_code == 200, r.text
    return out


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _throughput(url: str, concurrency: int, seconds: float, warmup: float = 1.0) -> float:
    if warmup:  # connections opened, code paths warm (the gateway's first requests import its HTTP client)
        await _throughput(url, concurrency, warmup, warmup=0)
    done = 0
    stop_at = time.perf_counter() + seconds

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            r = await client.post("/v1/chat/completions", json=BODY)
            assert r.status_code == 200, r.text
            done += 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        return done / (time.perf_counter() - started)


def q(xs: list[float], p: int) -> float:
    return statistics.quantiles(xs, n=100)[p - 1] * 1000


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) + f" on {os.cpu_count()} CPUs"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=2000, help="sequential requests per side (latency)")
    ap.add_argument("--concurrency", type=int, default=16, help="concurrent clients (throughput)")
    ap.add_argument("--seconds", type=float, default=5, help="duration per side and round (throughput)")
    ap.add_argument("--rounds", type=int, default=3, help="direct/through alternations (throughput)")
    ap.add_argument("--upstream-ms", type=float, default=50, help="simulated generation time (throughput run)")
    args = ap.parse_args()
    import importlib.util

    fast = [m for m in ("uvloop", "httptools", "aiohttp") if importlib.util.find_spec(m)]
    print(f"load average at start: {_load()}; installed: {', '.join(fast) or 'none of uvloop, httptools, aiohttp'}")
    with tempfile.TemporaryDirectory() as tmp:
        lat: dict[str, list[float]] = {}
        for mode in ("sync", "async"):
            stack = Stack(0, Path(tmp) / f"lat-{mode}", record_answers=mode)
            try:
                lat.setdefault("direct", []).extend(latency(stack.direct, args.requests))
                lat[f"through ({mode})"] = latency(stack.through, args.requests)
            finally:
                stack.close()
        direct = lat.pop("direct")
        print(f"\nlatency, one request at a time, {args.requests} per gateway run (ms); load average {_load()}")
        print(f"{'':22} {'p50':>8} {'p99':>8} {'added p50':>10} {'added p99':>10}")
        print(f"{'direct':22} {q(direct, 50):>8.2f} {q(direct, 99):>8.2f}")
        for name, xs in lat.items():
            print(f"{name:22} {q(xs, 50):>8.2f} {q(xs, 99):>8.2f} {q(xs, 50) - q(direct, 50):>10.2f} "
                  f"{q(xs, 99) - q(direct, 99):>10.2f}")
        print("goal: p50 added <= 1 ms  (sync: the answer is durable before the response; async: queued)")
        print(f"\nthroughput, {args.concurrency} clients, upstream {args.upstream_ms:.0f} ms per request, "
              f"{args.rounds} rounds of {args.seconds:.0f} s per side")
        for mode in ("sync", "async"):
            stack = Stack(args.upstream_ms, Path(tmp) / f"tp-{mode}", record_answers=mode)
            rd, rt, cpu = [], [], 0.0
            try:
                for _ in range(args.rounds):
                    rd.append(asyncio.run(_throughput(stack.direct, args.concurrency, args.seconds)))
                    asyncio.run(_throughput(stack.through, args.concurrency, 0.5, warmup=0))
                    before = _cpu_seconds(stack.gateway.pid)
                    rt.append(asyncio.run(_throughput(stack.through, args.concurrency, args.seconds, warmup=0)))
                    cpu += _cpu_seconds(stack.gateway.pid) - before
            finally:
                stack.close()
            d, t = statistics.mean(rd), statistics.mean(rt)
            per_req = cpu / (sum(rt) * args.seconds) * 1000 if cpu else float("nan")
            print(f"record {mode:5}: direct {d:.1f} req/s · through {t:.1f} req/s · ratio {t / d:.1%}   (goal >= 95%); "
                  f"rounds {' '.join(f'{b / a:.0%}' for a, b in zip(rd, rt))}; gateway CPU {per_req:.2f} ms/request; "
                  f"load average {_load()}")


if __name__ == "__main__":
    main()
