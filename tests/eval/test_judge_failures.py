"""A judge endpoint that returns garbage, times out, 500s or sends a non-OpenAI body — a real server
process (uvicorn, started here) — fails those samples only; the run completes; the report says how
many failed and why. Both for `eval run --judge` (pointwise) and `eval compare --judge openai:…` (pairwise)."""

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from typer.testing import CliRunner

from llmloop.cli.main import app

runner = CliRunner()
PROMPTS = ["ok1", "ok2", "garbage", "five-hundred", "slow", "broken-body"]


@pytest.fixture(scope="module")
def judge_url():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "misbehaving_judge:app", "--app-dir",
                             str(Path(__file__).parent / "servers"), "--port", str(port), "--log-level", "warning"])
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, "the judge server did not start"
            time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/v1"
    proc.terminate()
    proc.wait(timeout=30)


def model_app() -> FastAPI:
    """Models under test: each answers '<model name> says <prompt>'."""
    api = FastAPI()

    @api.post("/v1/chat/completions")
    async def chat(req: Request):
        body = await req.json()
        text = f"{body['model']} says {body['messages'][-1]['content']}"
        return {"choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 2, "completion_tokens": 3}}

    return api


def _prompts(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    return f


CAUSES = {"unusable judge reply (not the JSON asked for)": 1, "HTTP 5xx": 1, "timeout": 1, "not an OpenAI response": 1}


def test_eval_run_with_a_misbehaving_pointwise_judge(serve_app, judge_url, tmp_path):
    out = tmp_path / "rep"
    with serve_app(model_app()) as url:
        r = runner.invoke(app, ["eval", "run", "good", "bad", "--data", str(_prompts(tmp_path)), "--endpoint", f"{url}/v1",
                                "--out-dir", str(out), "--judge", f"openai:j@{judge_url}", "--judge-timeout", "0.4",
                                "--judge-attempts", "2"])
    assert r.exit_code == 0, r.output
    rep = json.loads((out / "report.json").read_text())
    good, bad = rep["versions"]
    assert (good["failed"], good["judge_failed"], bad["judge_failed"]) == (0, 4, 4)
    assert good["judge_failures"] == CAUSES and rep["failures"]["bad"]["judge"]["by_cause"] == CAUSES
    assert good["metrics"]["judge_overall"] == 4.0 and bad["metrics"]["judge_overall"] == 2.0
    reasons = {s["index"]: s["judge_error"] for s in rep["samples"] if s["version"] == "good"}
    assert reasons[0] == "" and "2 attempts failed" in reasons[2] and "timeout after 0.4 s" in reasons[4]
    assert "good: judge 4 failed: " in r.output.replace("\n", " ")
    page = (out / "report.html").read_text()
    assert "judge failed: 2 attempts failed: HTTP 500" in page and "4 failed: 1 unusable judge reply" in page


def test_eval_compare_with_a_misbehaving_pairwise_judge(serve_app, judge_url, tmp_path):
    out = tmp_path / "cmp.json"
    with serve_app(model_app()) as url:
        r = runner.invoke(app, ["eval", "compare", "good", "bad", "--prompts", str(_prompts(tmp_path)), "--endpoint",
                                f"{url}/v1", "--judge", f"openai:j@{judge_url}", "--judge-timeout", "0.4",
                                "--judge-attempts", "1", "--out", str(out)])
    assert r.exit_code == 0, r.output
    rep = json.loads(out.read_text())
    assert (rep["n"], rep["wins"], rep["failed"], rep["win_rate"]) == (2, 2, 4, 1.0)
    assert rep["failures"] == CAUSES
    assert "4 of 6 samples could not be judged — 4 failed:" in r.output.replace("\n", " ")
    # the comparison was kept: the leaderboard counts its two judged battles
    r = runner.invoke(app, ["eval", "leaderboard", "--bootstrap", "0"])
    assert r.exit_code == 0 and "judge 2" in r.output, r.output
