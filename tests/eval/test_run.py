"""`eval run` end to end: checkpoints as models under test, resume after kill -9, changed inputs refused."""

import json
import os
import subprocess
import sys
import time

from fastapi import FastAPI, Request
from typer.testing import CliRunner

from llmloop.cli.main import app

runner = CliRunner()


def counting_app(delay_s: float = 0.0) -> FastAPI:
    """An OpenAI-compatible model that counts how often each prompt was asked."""
    import asyncio

    api = FastAPI()
    api.state.asked = {}

    @api.post("/v1/chat/completions")
    async def chat(req: Request):
        body = await req.json()
        text = body["messages"][-1]["content"]
        api.state.asked[text] = api.state.asked.get(text, 0) + 1
        await asyncio.sleep(delay_s)
        return {"choices": [{"message": {"role": "assistant", "content": f"answer {text}"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 2, "completion_tokens": 2}}

    return api


def _eval_set(path, n):
    path.write_text("".join(json.dumps({"prompt": f"q{i}", "reference": f"answer q{i}"}) + "\n" for i in range(n)))
    return path


def test_a_killed_run_resumes_where_it_stopped(serve_app, tmp_path):
    data, out = _eval_set(tmp_path / "e.jsonl", 10), tmp_path / "rep"
    api = counting_app(delay_s=0.25)
    with serve_app(api) as url:
        cmd = [sys.executable, "-m", "llmloop.cli.main", "eval", "run", "m", "--data", str(data), "--endpoint",
               f"{url}/v1", "--out-dir", str(out), "--batch-size", "1", "--concurrency", "1"]
        proc = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        ckpt = out / "generations.jsonl"
        deadline = time.monotonic() + 120
        while not (ckpt.exists() and len(ckpt.read_text().splitlines()) >= 3):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the run never wrote answers"
            time.sleep(0.05)
        proc.kill()  # SIGKILL: no cleanup, no flush beyond what was already fsynced
        proc.wait()
        proc.stderr.close()
        saved = len(ckpt.read_text().splitlines())
        assert saved < 10
        r = runner.invoke(app, cmd[3:])
    assert r.exit_code == 0, r.output
    assert f"resumed: {saved} answers reused" in r.output
    # nothing answered before the kill was asked again; at most the one request in flight at the kill was
    assert sum(api.state.asked.values()) <= 10 + 1 and set(api.state.asked) == {f"q{i}" for i in range(10)}
    rep = json.loads((out / "report.json").read_text())
    assert len(rep["samples"]) == 10 and rep["versions"][0]["metrics"]["exact_match"] == 1.0
    assert rep["versions"][0]["peak_memory_mb"] is None  # an endpoint's memory is not ours to measure


def test_changed_inputs_are_not_silently_resumed(serve_app, tmp_path):
    data, out = _eval_set(tmp_path / "e.jsonl", 2), tmp_path / "rep"
    with serve_app(counting_app()) as url:
        base = ["eval", "run", "m", "--data", str(data), "--endpoint", f"{url}/v1", "--out-dir", str(out)]
        assert runner.invoke(app, base).exit_code == 0
        r = runner.invoke(app, [*base, "--max-tokens", "7"])
        assert r.exit_code == 2 and "changed: max_tokens" in r.output and "--fresh" in r.output
        r = runner.invoke(app, [*base, "--max-tokens", "7", "--fresh"])
        assert r.exit_code == 0 and "resumed" not in r.output
        r = runner.invoke(app, [*base, "--max-tokens", "7", "n2"])  # one more model: the earlier answers are kept
    assert r.exit_code == 0 and "resumed: 2 answers" in r.output


def _lora_checkpoint(tiny_model_dir, folder):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                           LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)  # an untrained adapter changes nothing; this one does
    model.save_pretrained(folder)
    return folder


def test_checkpoint_folders_are_models_under_test(db, tiny_model_dir, tmp_path):
    from llmloop.store import registry

    registry.register(db, name="v1.0", kind="chat", base_model=str(tiny_model_dir))
    ckpt = _lora_checkpoint(tiny_model_dir, tmp_path / "dpo-run" / "checkpoint-20")
    data = tmp_path / "e.jsonl"
    data.write_text('{"prompt": "Where is my order?", "reference": "My Orders"}\n{"prompt": "退款？"}\n')
    out = tmp_path / "rep"
    r = runner.invoke(app, ["eval", "run", "v1.0", str(ckpt), str(tiny_model_dir), "--data", str(data),
                            "--out-dir", str(out), "--max-tokens", "8"])
    assert r.exit_code == 0, r.output
    rep = json.loads((out / "report.json").read_text())
    full = "_".join(tiny_model_dir.parts[-2:])  # a folder is named after its last two path components
    names = [v["version"] for v in rep["versions"]]
    assert names == ["v1.0", "dpo-run_checkpoint-20", full]
    assert all(v["failed"] == 0 and v["peak_memory_mb"] > 0 and v["tokens_per_s"] > 0 for v in rep["versions"])
    out_of = {(s["version"], s["index"]): s["output"] for s in rep["samples"]}
    # the full-model folder is the same weights as v1.0 (greedy: the same answers); the adapter changes them
    assert out_of[(full, 0)] == out_of[("v1.0", 0)]
    assert [out_of[("dpo-run_checkpoint-20", i)] for i in (0, 1)] != [out_of[("v1.0", i)] for i in (0, 1)]
    r = runner.invoke(app, ["eval", "run", "v9", "--data", str(data), "--out-dir", str(out)])
    assert r.exit_code == 2 and "v9" in r.output and "checkpoint folder" in r.output
    r = runner.invoke(app, ["eval", "run", str(tmp_path), "--data", str(data), "--out-dir", str(out)])
    assert r.exit_code == 2 and "neither adapter_config.json" in r.output


def test_compare_takes_a_checkpoint_folder_and_a_stored_prompt_set(db, tiny_model_dir, tmp_path):
    from llmloop.eval.evalset import import_eval_set
    from llmloop.store import registry

    registry.register(db, name="v1.0", kind="chat", base_model=str(tiny_model_dir))
    _eval_set(tmp_path / "p.jsonl", 3)
    import_eval_set(db, tmp_path / "p.jsonl", "gate-prompts")
    out = tmp_path / "cmp.json"
    r = runner.invoke(app, ["eval", "compare", str(tiny_model_dir), "v1.0", "--prompts", "gate-prompts@v1.0",
                            "--judge", "python:builtins:len", "--max-tokens", "6", "--out", str(out)])
    assert r.exit_code == 0, r.output
    rep = json.loads(out.read_text())
    # the folder holds v1.0's weights and both sample with the same seed: every pair ties
    assert (rep["n"], rep["ties"], rep["win_rate"], rep["failed"]) == (3, 3, 0.5, 0)
    assert rep["version_x"] == "_".join(tiny_model_dir.parts[-2:]) and rep["failures"] == {}


def test_a_killed_compare_resumes_where_it_stopped(serve_app, tmp_path, llmloop_home):
    import asyncio

    api = FastAPI()
    api.state.asked = {}

    @api.post("/v1/chat/completions")
    async def chat(req: Request):
        body = await req.json()
        key = (body["model"], body["messages"][-1]["content"])
        api.state.asked[key] = api.state.asked.get(key, 0) + 1
        await asyncio.sleep(1.0 if body["model"] == "slow-incumbent" else 0.0)
        return {"choices": [{"message": {"role": "assistant", "content": f"{body['model']}: {key[1]}"},
                             "finish_reason": "stop"}], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}

    prompts = _eval_set(tmp_path / "p.jsonl", 10)
    with serve_app(api) as url:
        cmd = [sys.executable, "-m", "llmloop.cli.main", "eval", "compare", "challenger-long-name", "slow-incumbent",
               "--prompts", str(prompts), "--endpoint", f"{url}/v1", "--judge", "python:builtins:len",
               "--out", str(tmp_path / "cmp.json")]
        proc = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while not any(len(f.read_text().splitlines()) >= 10 for f in llmloop_home.glob("reports/compare-work/*/answers.jsonl")):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the comparison never wrote answers"
            time.sleep(0.05)
        proc.kill()  # the challenger's answers are kept; the incumbent's are in flight
        proc.wait()
        proc.stderr.close()
        r = runner.invoke(app, cmd[3:])
    assert r.exit_code == 0, r.output
    assert "resumed: 10 answers and verdicts reused" in r.output
    assert all(api.state.asked[("challenger-long-name", f"q{i}")] == 1 for i in range(10))
    rep = json.loads((tmp_path / "cmp.json").read_text())
    assert (rep["n"], rep["wins"]) == (10, 10)  # the longer answer wins under the len judge
    assert not list(llmloop_home.glob("reports/compare-work/*"))  # the work folder goes once finished


def test_run_and_compare_read_a_yaml_config_that_options_override(serve_app, tmp_path):
    data = _eval_set(tmp_path / "e.jsonl", 2)
    with serve_app(counting_app()) as url:
        cfg = tmp_path / "run.yaml"
        cfg.write_text(f"versions: [m]\ndata: {data}\nendpoint: {url}/v1\nout_dir: {tmp_path / 'rep'}\nmax_tokens: 5\n")
        r = runner.invoke(app, ["eval", "run", "-c", str(cfg), "--max-tokens", "7"])
        assert r.exit_code == 0, r.output
        assert json.loads((tmp_path / "rep" / "run.json").read_text())["fingerprint"]["max_tokens"] == 7
        r = runner.invoke(app, ["eval", "run", "-c", str(cfg), "n"])  # a positional list replaces the YAML's
        assert r.exit_code == 2 and "changed: max_tokens" in r.output  # 5 again: the YAML's value is back
        cmp = tmp_path / "cmp.yaml"
        cmp.write_text(f"challenger: a\nincumbent: b\nprompts: {data}\nendpoint: {url}/v1\njudge: python:builtins:len\n")
        r = runner.invoke(app, ["eval", "compare", "-c", str(cmp), "--out", str(tmp_path / "c.json")])
        assert r.exit_code == 0, r.output
        assert json.loads((tmp_path / "c.json").read_text())["n"] == 2
    cfg.write_text("versions: [m]\ndata: x.jsonl\nbogus: 1\n")
    r = runner.invoke(app, ["eval", "run", "-c", str(cfg)])
    assert r.exit_code == 2 and "bogus: Extra inputs are not permitted" in r.output and str(cfg) in r.output
    r = runner.invoke(app, ["eval", "run"])
    assert r.exit_code == 2 and "versions: Field required" in r.output and "data: Field required" in r.output
