"""D2/D3: synthetic data with the offline template generator (fast, deterministic)."""

from __future__ import annotations

import json
import re

import pytest
from data_helpers import files_under, write_jsonl
from typer.testing import CliRunner

from llmloop.cli.main import app
from llmloop.data.generate import GenerateConfig, NoveltyFilter, generate, partial_path
from llmloop.data.generators import TemplateGenerator
from llmloop.data.rows import DataError
from llmloop.data.versions import read_rows, resolve

runner = CliRunner()
SEEDS = ["Where is my order?", "How do I ask for a refund?", "Explain the warranty for laptops.",
         "Summarise the delivery policy.", "Classify this complaint about a late invoice."]


def _seeds(tmp_path):
    f = tmp_path / "seeds.txt"
    f.write_text("\n".join(SEEDS) + "\n", encoding="utf-8")
    return f


def test_self_instruct_keeps_novel_instructions_only(db, tmp_path):
    r = runner.invoke(app, ["data", "generate", "self-instruct", "--seeds", str(_seeds(tmp_path)), "--name", "si",
                            "--generator", "template", "--num", "12", "--concurrency", "3"])
    assert r.exit_code == 0, r.output
    rows = read_rows(resolve(db, "si"))
    assert len(rows) == 12 and "generated si v1.0: 12 sft rows" in r.output
    instructions = [x["messages"][0]["content"] for x in rows]
    novelty = NoveltyFilter(0.7, [])
    for text in instructions:  # pairwise below the threshold, and below it against every seed
        assert novelty.max_similarity(text) < 0.7
        novelty.add(text)
    assert all(NoveltyFilter(0.7, SEEDS).max_similarity(t) < 0.7 for t in instructions)
    assert {x["meta"]["task_type"] for x in rows} == {"classification", "generation", "summarization", "qa",
                                                       "rewrite", "reasoning"}
    assert all(x["messages"][1]["role"] == "assistant" and x["messages"][1]["content"] for x in rows)
    assert not files_under(db.workspace.datasets_dir / ".partial")  # removed once stored


def test_rouge_l_filter_handles_chinese():
    f = NoveltyFilter(0.7, ["我的订单在哪里"])
    assert not f.novel("我的订单在哪里？") and f.novel("如何申请退款")


def test_evol_instruct_chains_rounds_and_paraphrase_keeps_seed_answers(db, tmp_path):
    cfg = GenerateConfig(method="evol-instruct", seeds=str(_seeds(tmp_path)), name="evol", rounds=2)
    res = generate(db, cfg, TemplateGenerator())
    rows = read_rows(res.version)
    assert res.kept == 10 and {x["meta"]["op"] for x in rows} == {"deepen", "broaden", "concretize", "complexify"}
    by_seed = [x for x in rows if x["meta"]["seed"] == SEEDS[0]]
    first, second = (x["messages"][0]["content"] for x in by_seed)
    assert first.startswith(SEEDS[0]) and second.startswith(first)  # round 2 evolves round 1

    sft = write_jsonl(tmp_path / "sft.jsonl", [{"instruction": "Where is my order?", "output": "Track it online."}])
    res = generate(db, GenerateConfig(method="paraphrase", seeds=str(sft), name="para", variants=3, seed=1),
                   TemplateGenerator())
    rows = read_rows(res.version)
    assert len({x["messages"][0]["content"] for x in rows}) == res.kept == 3 - res.dropped.get("duplicate", 0)
    assert res.kept >= 2
    assert all("Where is my order?" in x["messages"][0]["content"] for x in rows)
    assert all(x["messages"][1]["content"] == "Track it online." and x["meta"]["answer_from"] == "seed" for x in rows)


def test_interrupted_run_resumes_without_redoing_finished_rows(db, tmp_path):
    seeds = _seeds(tmp_path)
    cfg = GenerateConfig(method="self-instruct", seeds=str(seeds), name="si", num=10, concurrency=1)

    class Counting(TemplateGenerator):
        calls = 0

        def new_instruction(self, *a):  # noqa: ANN002, ANN201
            Counting.calls += 1
            return super().new_instruction(*a)

    def interrupt(done: int, total: int) -> None:
        if done == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate(db, cfg, Counting(), progress=interrupt)
    partial = partial_path(db, cfg, "template")
    before = [json.loads(x) for x in partial.read_text(encoding="utf-8").splitlines()]
    assert len(before) == 4 and not list(db.workspace.datasets_dir.glob("si/*.jsonl"))  # nothing stored yet
    calls_before = Counting.calls
    res = generate(db, cfg, Counting())
    assert res.resumed == 4 and res.kept == 10
    rows = read_rows(res.version)
    kept_before = [x["instruction"] for x in before if x["status"] == "kept"]
    assert [x["messages"][0]["content"] for x in rows[: len(kept_before)]] == kept_before
    attempts = res.kept + sum(res.dropped.values())
    assert Counting.calls - calls_before == attempts - 4  # finished tasks were not asked again
    # the uninterrupted run gives the same rows: resuming changes nothing about the result
    fresh = generate(db, cfg.model_copy(update={"name": "si2"}), TemplateGenerator())
    assert read_rows(fresh.version) == rows


def test_bad_generate_requests(db, tmp_path):
    seeds = _seeds(tmp_path)
    r = runner.invoke(app, ["data", "generate", "self-instruct", "--seeds", str(seeds), "--name", "x"])
    assert r.exit_code == 2 and "needs --base-url and --model" in r.output
    r = runner.invoke(app, ["data", "generate", "mutate", "--seeds", str(seeds), "--name", "x", "--generator", "template"])
    assert r.exit_code == 2 and "METHOD" in r.output
    r = runner.invoke(app, ["data", "generate", "paraphrase", "--seeds", "nope", "--name", "x", "--generator", "template"])
    assert r.exit_code == 2 and "no such file or dataset" in r.output
    r = runner.invoke(app, ["data", "generate", "self-instruct", "--seeds", str(seeds), "--name", "x",
                            "--generator", "template", "--task-type", "poetry"])
    assert r.exit_code == 2 and "'poetry' is not one of" in r.output
    # an endpoint that refuses connections: a few fast failures, then a clear stop; nothing stored
    r = runner.invoke(app, ["data", "generate", "self-instruct", "--seeds", str(seeds), "--name", "x",
                            "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--max-retries", "0"])
    assert r.exit_code == 2 and re.search(r"failed \d+ times in a row", r.output) and "APIConnectionError" in r.output
    assert not list(db.workspace.datasets_dir.glob("x/*.jsonl"))
    with pytest.raises(DataError, match="not allowed"):
        generate(db, GenerateConfig(method="paraphrase", seeds=str(seeds), name="a/b"), TemplateGenerator())


def test_openai_client_retries_and_back_translation(db, tmp_path):
    """The real openai client over HTTP: 503s are retried with backoff; --pivot makes two calls per row."""
    from judge_server import serving

    seeds = write_jsonl(tmp_path / "s.jsonl", [{"instruction": "Where is my order?", "output": "Track it online."}])
    hits: list = []
    with serving("reword", fail_first=2, hits=hits) as url:
        r = runner.invoke(app, ["data", "generate", "paraphrase", "--seeds", str(seeds), "--name", "bt",
                                "--variants", "1", "--pivot", "Chinese", "--base-url", url, "--model", "gen",
                                "--concurrency", "1", "--max-retries", "3"])
    assert r.exit_code == 0, r.output
    (row,) = read_rows(resolve(db, "bt"))
    assert row["messages"][0]["content"] == "Reworded: Reworded: Where is my order?"  # there and back
    assert row["messages"][1]["content"] == "Track it online." and row["meta"]["method"] == "back-translation"
    assert len(hits) == 2 + 2  # two 503s retried, then the two translation calls
    assert "Translate into Chinese" in hits[2]["messages"][0]["content"] and hits[2]["model"] == "gen"


def test_partial_file_is_keyed_by_seed_content(db, tmp_path):
    seeds = _seeds(tmp_path)
    cfg = GenerateConfig(method="paraphrase", seeds=str(seeds), name="p")
    first = partial_path(db, cfg, "template")
    assert partial_path(db, cfg.model_copy(update={"num": 99, "concurrency": 8}), "template") == first
    seeds.write_text("A different seed.\n", encoding="utf-8")
    assert partial_path(db, cfg, "template") != first  # edited seeds: a new run, not a resume
