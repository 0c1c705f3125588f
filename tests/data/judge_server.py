"""A rule-based OpenAI-compatible endpoint for the data tests (FastAPI under a real uvicorn).

It is not a stand-in for the code under test: ``llmloop.eval``'s real ``LLMJudge`` and the data
generators' real ``openai`` client talk to it over HTTP. Rules: ``"longer"`` judges pairs by length
(a consistent judge), ``"first"`` always picks answer A (a position-biased judge, whose two orders
disagree), ``"reword"`` answers "Reworded: <last line of the prompt>" (a generator). ``fail_first``
answers that many requests with 503 first (an overloaded server).
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Iterator


def make_app(rule: str, fail_first: int = 0, hits: list | None = None):  # noqa: ANN201
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    app = FastAPI()
    hits = hits if hits is not None else []

    @app.post("/v1/chat/completions")
    def chat(body: dict):  # noqa: ANN202
        hits.append(body)
        if len(hits) <= fail_first:  # an overloaded server: the client must retry
            return JSONResponse({"error": {"message": "overloaded", "type": "server_error"}}, status_code=503)
        prompt = body["messages"][0]["content"]
        if rule == "reword":  # a generator: "Reworded: " + the prompt's last line
            content = "Reworded: " + prompt.strip().splitlines()[-1].removeprefix("Instruction: ")
            return {"id": "x", "object": "chat.completion", "created": 0, "model": body.get("model", "gen"),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": content}}]}
        a = re.search(r"Answer A:\n(.*?)\n\nAnswer B:", prompt, re.S)
        b = re.search(r"Answer B:\n(.*?)\n\nReply with", prompt, re.S)
        if rule == "first":
            winner = "A"
        else:
            la, lb = len(a.group(1)) if a else 0, len(b.group(1)) if b else 0
            winner = "A" if la > lb else "B" if lb > la else "tie"
        content = json.dumps({"winner": winner, "reason": f"rule {rule}"})
        return {"id": "x", "object": "chat.completion", "created": 0, "model": body.get("model", "judge"),
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}]}

    return app


@contextlib.contextmanager
def serving(rule: str, fail_first: int = 0, hits: list | None = None) -> Iterator[str]:
    """Yields the base URL (with /v1) of an endpoint following ``rule``; requests are appended to ``hits``."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(make_app(rule, fail_first, hits), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
