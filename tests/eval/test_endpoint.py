import asyncio

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from llmloop.eval.endpoint import EndpointEngine
from llmloop.eval.report import EvalRow, run_eval
from llmloop.inference.base import SamplingParams


def flaky_app() -> FastAPI:
    app = FastAPI()
    app.state.tries = {}

    @app.post("/v1/chat/completions")
    async def chat(req: Request):
        body = await req.json()
        text = body["messages"][-1]["content"]
        n = app.state.tries[text] = app.state.tries.get(text, 0) + 1
        if text == "flaky" and n == 1:
            return JSONResponse({"error": "busy"}, status_code=503)
        if text == "dead":
            return JSONResponse({"error": "boom"}, status_code=500)
        if text == "slow":
            await asyncio.sleep(0.6)
        return {"choices": [{"message": {"role": "assistant", "content": f"{body['model']} says {text}"},
                             "finish_reason": "stop"}], "usage": {"prompt_tokens": 3, "completion_tokens": 3}}

    return app


def test_endpoint_as_model_under_test_retries_and_records_failures(serve_app):
    app = flaky_app()
    rows = [EvalRow([{"role": "user", "content": t}], reference=f"m says {t}") for t in ("ok", "flaky", "dead", "slow")]
    with serve_app(app) as url:
        engine = EndpointEngine(f"{url}/v1", timeout_s=0.3, attempts=2, backoff_s=0.01)
        rep = run_eval(engine, ["m"], rows, SamplingParams(max_tokens=8))
        engine.close()
    by = {s.index: s for s in rep.samples}
    assert by[0].output == "m says ok" and by[1].output == "m says flaky" and not by[1].error
    assert app.state.tries["flaky"] == 2  # the 503 was retried
    assert "HTTP 500" in by[2].error and "timeout" in by[3].error
    v = rep.versions[0]
    assert (v.n, v.failed) == (4, 2) and v.metrics["exact_match"] == 0.5 and v.tokens_per_s > 0


def test_eval_run_cli_against_an_endpoint(serve_app, tmp_path):
    import json

    from typer.testing import CliRunner

    from llmloop.cli.main import app

    data = tmp_path / "e.jsonl"
    data.write_text(json.dumps({"prompt": "ok", "reference": "a says ok"}) + "\n")
    with serve_app(flaky_app()) as url:
        r = CliRunner().invoke(app, ["eval", "run", "a", "b", "--data", str(data), "--endpoint", f"{url}/v1",
                                     "--out-dir", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.output
    versions = json.loads((tmp_path / "rep" / "report.json").read_text())["versions"]
    assert [(v["version"], v["metrics"]["exact_match"]) for v in versions] == [("a", 1.0), ("b", 0.0)]


def test_eval_compare_through_an_endpoint_marks_failed_generations(serve_app, tmp_path):
    import json

    from typer.testing import CliRunner

    from llmloop.cli.main import app

    prompts = tmp_path / "p.jsonl"
    prompts.write_text("\n".join(json.dumps({"prompt": p}) for p in ("ok", "flaky", "dead")) + "\n")
    out = tmp_path / "r.json"
    with serve_app(flaky_app()) as url:
        r = CliRunner().invoke(app, ["eval", "compare", "long-name", "b", "--prompts", str(prompts), "--endpoint", f"{url}/v1",
                                     "--judge", "python:builtins:len", "--out", str(out)])
    assert r.exit_code == 0, r.output
    rep = json.loads(out.read_text())
    # "long-name says …" is longer than "b says …": x wins both pairs that generated; the dead prompt fails
    assert (rep["n"], rep["wins"], rep["failed"]) == (2, 2, 1)
    assert "generation failed" in [s for s in rep["samples"] if s["winner"] == "failed"][0]["reason"]
