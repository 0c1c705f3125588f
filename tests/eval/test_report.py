import csv
import datetime as dt
import json

import pytest

from llmloop.eval.render import write_csv, write_html, write_json
from llmloop.eval.report import EvalRow, read_eval_set, run_eval
from llmloop.inference.base import Generation, SamplingParams
from llmloop.inference.embedded import EmbeddedEngine
from llmloop.store.records import ModelVersion


class ScriptedEngine:
    """Answers from a table; 'boom' in a prompt raises, so batches fall back to single rows."""

    def __init__(self, answers):
        self.answers = answers

    def chat(self, version, messages, params, n=1):
        text = messages[-1]["content"]
        if "boom" in text:
            raise RuntimeError("engine fell over")
        return [Generation(self.answers[version](text), 1, 3, "stop")]

    def chat_batch(self, version, conversations, params):
        return [self.chat(version, c, params)[0] for c in conversations]


ROWS = [EvalRow([{"role": "user", "content": "2+2?"}], reference="4"),
        EvalRow([{"role": "user", "content": "capital of France?"}], reference="Paris"),
        EvalRow([{"role": "user", "content": "sentiment: great"}], label="pos"),
        EvalRow([{"role": "user", "content": "boom"}], reference="x")]


def test_run_scores_versions_side_by_side_and_records_failures(tmp_path):
    engine = ScriptedEngine({
        "good": lambda t: {"2+2?": "The answer is 4", "capital of France?": "Paris", "sentiment: great": "pos"}[t],
        "bad": lambda t: "I don't know",
    })
    seen = []
    rep = run_eval(engine, ["good", "bad"], ROWS, batch_size=2, on_progress=lambda d, t: seen.append((d, t)))
    good, bad = rep.versions
    assert (good.n, good.failed, bad.failed) == (4, 1, 1)
    assert good.metrics["accuracy"] == 1.0 and bad.metrics["accuracy"] == 0.0
    assert good.metrics["exact_match"] == pytest.approx(1 / 3)  # "The answer is 4" ≠ "4"; failed row scores ""
    assert good.metrics["math_accuracy"] == 1.0 and bad.metrics["math_accuracy"] == 0.0
    assert good.metrics["rouge1"] > bad.metrics["rouge1"]
    assert seen[-1] == (8, 8)
    failed = [s for s in rep.samples if s.error]
    assert len(failed) == 2 and "engine fell over" in failed[0].error

    write_json(rep, tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())["versions"][0]["version"] == "good"
    per = write_csv(rep, tmp_path / "r.csv")
    table = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert [r["version"] for r in table] == ["good", "bad"] and "tokens_per_s" in table[0]
    samples = list(csv.reader(per.open()))
    assert samples[0] == ["index", "prompt", "reference", "label", "metadata", "good", "bad"] and samples[2][5] == "Paris"
    assert samples[4][5].startswith("[failed]")
    write_html(rep, tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text()
    assert "data:image/png;base64," in page and "The answer is 4" in page and "[failed]" in page


def test_read_eval_set_errors_name_the_line(tmp_path):
    f = tmp_path / "e.jsonl"
    f.write_text('{"prompt": "a", "reference": 4}\n{"messages": [{"role": "user", "content": "b"}], "label": "x"}\n')
    rows = read_eval_set(f)
    assert rows[0].reference == "4" and rows[1].label == "x"
    f.write_text('{"prompt": "a"}\n{"text": "b"}\n')
    with pytest.raises(ValueError, match="line 2"):
        read_eval_set(f)


def test_run_with_the_real_engine(tiny_model_dir):
    engine = EmbeddedEngine(device="cpu")
    engine.load(ModelVersion(name="v", kind="chat", base_model=str(tiny_model_dir), adapter_path=None, parent=None,
                             job_id=None, dataset_versions=[], metrics={}, stage="candidate", note="",
                             created_at=dt.datetime.now(dt.timezone.utc)))
    rep = run_eval(engine, ["v"], ROWS[:2], SamplingParams(max_tokens=6, temperature=0.0))
    v = rep.versions[0]
    assert v.failed == 0 and v.tokens_per_s > 0 and v.peak_memory_mb > 0 and "bleu" in v.metrics


def test_a_checkpoint_resumes_without_regenerating(tmp_path):
    calls = []
    engine = ScriptedEngine({"v": lambda t: calls.append(t) or f"answer to {t}"})
    ckpt = tmp_path / "ckpt.jsonl"
    first = run_eval(engine, ["v"], ROWS, batch_size=2, checkpoint=ckpt)
    # 4 calls: the batch with the failing row is retried row by row
    assert len(calls) == 4 and len(ckpt.read_text().splitlines()) == 4
    with ckpt.open("a") as f:
        f.write('{"index": 9, "vers')  # a crash mid-write leaves a torn line
    calls.clear()
    again = run_eval(engine, ["v"], ROWS, batch_size=2, checkpoint=ckpt)
    # only the failed row is tried again (it fails again, so it never reaches the answer table)
    assert calls == []
    assert [s.error != "" for s in again.samples] == [False, False, False, True]
    assert [s.output for s in again.samples] == [s.output for s in first.samples]


def test_judgements_are_checkpointed_and_only_failed_ones_are_asked_again(tmp_path):
    from llmloop.eval.llm_judge import PointwiseResult, RubricScores

    class FlakyRubric:
        """A deterministic pointwise judge: 'Paris' scores 5, anything else 2; fails each answer once
        when ``fail_first`` (the first run), so the second run must re-judge exactly those."""

        name = "flaky"

        def __init__(self, fail_first):
            self.fail_first, self.asked = fail_first, []

        def score_one(self, messages, answer, reference=None):
            self.asked.append(answer)
            if self.fail_first and "4" in answer:
                return PointwiseResult("q", answer, None, "1 attempts failed: timeout after 1 s")
            s = 5 if answer == "Paris" else 2
            return PointwiseResult("q", answer, RubricScores(accuracy=s, relevance=s, fluency=s, professionalism=s))

    engine = ScriptedEngine({"v": lambda t: {"2+2?": "The answer is 4", "capital of France?": "Paris",
                                             "sentiment: great": "pos"}[t]})
    ckpt = tmp_path / "ckpt.jsonl"
    first = FlakyRubric(fail_first=True)
    rep = run_eval(engine, ["v"], ROWS, checkpoint=ckpt, judge=first)
    v = rep.versions[0]
    assert (v.failed, v.judge_failed, v.judge_failures) == (1, 1, {"timeout": 1})
    assert sorted(first.asked) == ["Paris", "The answer is 4", "pos"]  # the failed generation is not judged
    assert v.metrics["judge_overall"] == pytest.approx(3.5)
    again = FlakyRubric(fail_first=False)
    rep = run_eval(engine, ["v"], ROWS, checkpoint=ckpt, judge=again)
    assert again.asked == ["The answer is 4"] and rep.versions[0].judge_failed == 0
    assert rep.versions[0].metrics["judge_overall"] == pytest.approx(3.0)


def test_scores_per_metadata_group(tmp_path):
    from dataclasses import replace

    from llmloop.eval.report import grouped_scores

    rows = [EvalRow([{"role": "user", "content": "2+2?"}], reference="4", metadata={"lang": "en"}),
            EvalRow([{"role": "user", "content": "capital of France?"}], reference="Paris", metadata={"lang": "en"}),
            EvalRow([{"role": "user", "content": "sentiment: great"}], label="pos", metadata={"lang": "zh"}),
            EvalRow([{"role": "user", "content": "boom"}], reference="x")]
    engine = ScriptedEngine({"v": lambda t: {"2+2?": "4", "capital of France?": "Rome", "sentiment: great": "pos"}[t]})
    rep = replace(run_eval(engine, ["v"], rows), group_by="lang")
    g = grouped_scores(rep, "lang")
    assert set(g) == {"en", "zh", "(none)"}
    assert g["en"]["v"]["n"] == 2 and g["en"]["v"]["exact_match"] == 0.5 and "accuracy" not in g["en"]["v"]
    assert g["zh"]["v"]["accuracy"] == 1.0 and g["(none)"]["v"]["exact_match"] == 0.0  # the failed row is a miss
    write_json(rep, tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())["groups"]["zh"]["v"]["n"] == 1
    write_html(rep, tmp_path / "r.html")
    assert "<h2>By lang</h2>" in (tmp_path / "r.html").read_text()
