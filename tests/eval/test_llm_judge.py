"""LLM-as-judge over real HTTP: a small FastAPI judge with scripted behaviours, and the real gateway."""

import json
import time

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from llmloop.eval.llm_judge import (
    JudgeEndpoint,
    JudgeTemplates,
    LLMJudge,
    extract_json,
    render,
)
from llmloop.eval.winrate import PairSample, summarize


def _reply(text: str) -> dict:
    return {"id": "x", "object": "chat.completion", "model": "j",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}


def fake_judge_app() -> FastAPI:
    """Behaviour by model name: 'fair' prefers the answer that says 'helpful' in either order;
    'first' always says A (pure position bias); 'repair' answers garbage until told it was unusable;
    'broken' answers 500; 'slow' sleeps past the client's timeout; 'rubric' scores by content."""
    app = FastAPI()
    app.state.calls = []

    @app.post("/v1/chat/completions")
    async def chat(req: Request):
        body = await req.json()
        app.state.calls.append(body)
        model, prompt = body["model"], body["messages"][0]["content"]
        if model == "fair":
            a = prompt.split("Answer A:")[1].split("Answer B:")[0]
            return _reply('Sure! ```json\n' + json.dumps({"winner": "A" if "helpful" in a else "B", "reason": "more helpful"}) + "\n```")
        if model == "first":
            return _reply('{"winner": "A", "reason": "A came first"}')
        if model == "repair":
            if len(body["messages"]) == 1:
                return _reply('{"accuracy": 9, "relevance": "high"')
            assert "could not be used" in body["messages"][-1]["content"]
            return _reply('{"accuracy": 4, "relevance": 5, "fluency": 3, "professionalism": 4, "reason": "ok"}')
        if model == "rubric":
            good = "helpful" in prompt.split("Answer:")[1]
            s = 5 if good else 2
            return _reply(json.dumps({"accuracy": s, "relevance": s, "fluency": s, "professionalism": s, "reason": "r"}))
        if model == "broken":
            return JSONResponse({"error": {"message": "boom"}}, status_code=500)
        if model == "slow":
            time.sleep(1.0)
            return _reply('{"winner": "A", "reason": "late"}')
        return _reply("not json at all")

    return app


def _judge(url: str, model: str, **kw) -> LLMJudge:
    return LLMJudge(JudgeEndpoint(base_url=f"{url}/v1", model=model, **kw))


Q = [{"role": "user", "content": "Where is my order?"}]
GOOD, BAD = "A helpful answer: see My Orders.", "No."


def test_pairwise_swaps_positions_and_ties_when_orders_disagree(serve_app):
    app = fake_judge_app()
    with serve_app(app) as url:
        fair = _judge(url, "fair")
        assert fair.judge(Q, GOOD, BAD).winner == "x"
        assert fair.judge(Q, BAD, GOOD).winner == "y"
        # every judgement asks twice, in both orders
        a_sides = [c["messages"][0]["content"].split("Answer A:")[1].split("Answer B:")[0].strip() for c in app.state.calls]
        assert a_sides == [GOOD, BAD, BAD, GOOD]
        biased = _judge(url, "first").judge(Q, GOOD, BAD)
        assert biased.winner == "tie" and "orders disagree" in biased.reason
        # end to end into the win-rate report: 3 clear wins, 1 position-biased tie
        verdicts = fair.judge_batch([(Q, GOOD, BAD)] * 3) + [biased]
        report = summarize("v1.1", "v1.0", fair.name, [PairSample(Q, GOOD, BAD, v.winner, v.reason) for v in verdicts])
        assert (report.wins, report.ties, report.failed, report.win_rate) == (3, 1, 0, 0.875)


def test_pointwise_rubric_with_repair_and_a_replaceable_template(serve_app, tmp_path):
    app = fake_judge_app()
    with serve_app(app) as url:
        rep = _judge(url, "repair").score([(Q, GOOD)])
        assert rep.failed == 0 and rep.results[0].scores.accuracy == 4 and rep.means["overall"] == 4.0
        rub = _judge(url, "rubric").score([(Q, GOOD), (Q, BAD)], references=["See My Orders.", None])
        assert [r.scores.fluency for r in rub.results] == [5, 2] and rub.means["accuracy"] == 3.5
        assert "Reference answer:\nSee My Orders." in app.state.calls[-2]["messages"][0]["content"] or \
               "Reference answer:\nSee My Orders." in app.state.calls[-1]["messages"][0]["content"]
        custom = tmp_path / "t.yaml"
        custom.write_text("pairwise: 'Q={{question}} Answer A: {{answer_a}} Answer B: {{answer_b}} JSON please'\n")
        j = LLMJudge(JudgeEndpoint(base_url=f"{url}/v1", model="fair"), JudgeTemplates.from_file(custom))
        assert j.judge(Q, GOOD, BAD).winner == "x"
        assert app.state.calls[-1]["messages"][0]["content"].startswith("Q=Where is my order? Answer A:")
    bad = tmp_path / "bad.yaml"
    bad.write_text("pairwise: 'no placeholders'\n")
    with pytest.raises(ValueError, match="answer_a"):
        JudgeTemplates.from_file(bad)


def test_500s_timeouts_and_garbage_fail_samples_and_the_run_completes(serve_app):
    with serve_app(fake_judge_app()) as url:
        verdicts = (_judge(url, "broken", attempts=2).judge_batch([(Q, GOOD, BAD)] * 2)
                    + [_judge(url, "slow", timeout_s=0.2, attempts=1).judge(Q, GOOD, BAD)]
                    + [_judge(url, "garbage", attempts=2).judge(Q, GOOD, BAD)]
                    + [_judge(url, "fair").judge(Q, GOOD, BAD)])
        scored = _judge(url, "garbage", attempts=2).score([(Q, GOOD)])
    assert [v.winner for v in verdicts] == ["failed"] * 4 + ["x"]
    assert "HTTP 500" in verdicts[0].reason and "2 attempts failed" in verdicts[0].reason
    assert "timeout" in verdicts[2].reason
    assert "unusable reply" in verdicts[3].reason and "no JSON object" in verdicts[3].reason
    report = summarize("v1.1", "v1.0", "j", [PairSample(Q, GOOD, BAD, v.winner, v.reason) for v in verdicts])
    assert (report.n, report.failed, report.wins) == (1, 4, 1)
    assert scored.failed == 1 and scored.means == {} and "unusable" in scored.failure_reasons[0]
    # nothing judged at all: the report still comes back, and says nothing passed
    none = summarize("a", "b", "j", [PairSample(Q, "", "", "failed", "x")])
    assert none.n == 0 and none.failed == 1 and none.ci_low == 0.0


def test_the_real_gateway_as_judge_gives_failed_samples_with_reasons(db, tiny_model_dir, serve_app):
    import torch

    from llmloop.app import create_app
    from llmloop.inference.embedded import EmbeddedEngine
    from llmloop.store import registry

    registry.register(db, name="v1.0", kind="chat", base_model=str(tiny_model_dir))
    registry.set_alias(db, "production", "v1.0")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the tiny model is fastest on one thread on a busy 2-core box
    try:
        with serve_app(create_app(db=db, engine=EmbeddedEngine(device="cpu"))) as url:
            judge = _judge(url, "production", attempts=2, max_tokens=8, timeout_s=60)
            v = judge.judge(Q, GOOD, BAD)
            s = judge.score([(Q, GOOD)])
    finally:
        torch.set_num_threads(threads)
    # the untrained tiny model writes no JSON: a failed sample with the reason, not an exception
    assert v.winner == "failed" and "unusable reply" in v.reason
    assert s.failed == 1 and "2 attempts failed" in s.failure_reasons[0]


def test_helpers():
    assert extract_json('blah {"a": {"b": 1}} trailing {') == {"a": {"b": 1}}
    with pytest.raises(ValueError):
        extract_json("{not json")
    assert render('{"k": {{x}}} {{y}}', x="1") == '{"k": 1} {{y}}'


def test_eval_judge_cli_scores_and_counts_failures(serve_app, tmp_path):
    from typer.testing import CliRunner

    from llmloop.cli.main import app

    data = tmp_path / "a.jsonl"
    data.write_text(json.dumps({"prompt": "Where is my order?", "answer": GOOD}) + "\n"
                    + json.dumps({"prompt": "Where is my order?", "answer": BAD, "reference": "My Orders"}) + "\n")
    out = tmp_path / "scores.jsonl"
    with serve_app(fake_judge_app()) as url:
        r = CliRunner().invoke(app, ["eval", "judge", str(data), "--judge-url", f"{url}/v1", "--judge-model", "rubric",
                                     "--out", str(out)])
        assert r.exit_code == 0, r.output
        assert '"overall": 3.5' in r.output
        assert [json.loads(x)["scores"]["accuracy"] for x in out.read_text().splitlines()] == [5, 2]
        r = CliRunner().invoke(app, ["eval", "judge", str(data), "--judge-url", f"{url}/v1", "--judge-model", "broken"])
        assert r.exit_code == 0 and '"failed": 2' in r.output and "HTTP 500" in r.output
    data.write_text('{"prompt": "x"}\n')
    r = CliRunner().invoke(app, ["eval", "judge", str(data), "--judge-url", "http://x/v1", "--judge-model", "m"])
    assert r.exit_code == 2 and "answer" in r.output
