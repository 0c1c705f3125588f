"""A loop round on the tiny model: feedback → claims → dataset → DPO job → candidate → gate → decision."""

import json

import feedback_seed as seed
import pytest

from llmloop.data.versions import read_rows
from llmloop.eval.leaderboard import saved_comparisons
from llmloop.inference.embedded import EmbeddedEngine
from llmloop.loop.controller import Controller, run_once, trigger_status
from llmloop.loop.policy import LoopPolicy, PolicyError, load_policy, read_prompts
from llmloop.store import datasets as store_datasets
from llmloop.store import loop_events, registry, rounds

HELPFUL = "You can track it under My Orders. Is there anything else I can help you with?"
CURT = "Check My Orders."


def _votes(db, n, start=0):
    for i in range(start, start + n):
        msgs = [{"role": "user", "content": f"Where is my parcel number {i}?"}]
        a, b = (HELPFUL + f" ({i})", CURT) if i % 2 else (CURT, HELPFUL + f" ({i})")
        seed.battle(db, battle_id=f"b{i}", user_id=f"u{i % 3}", messages=msgs,
                    answers=[(f"r{i}a", "v1.0", a), (f"r{i}b", "v1.0", b)])
        seed.vote(db, battle_id=f"b{i}", user_id=f"u{i % 3}", choice="a" if i % 2 else "b")
    # a tie carries no preference and must not become a pair
    seed.battle(db, battle_id=f"t{start}", user_id="u9", messages=[{"role": "user", "content": "hi"}],
                answers=[(f"t{start}a", "v1.0", "x"), (f"t{start}b", "v1.0", "y")])
    seed.vote(db, battle_id=f"t{start}", user_id="u9", choice="tie")


def make_policy(tmp_path, **over):
    prompts = tmp_path / "heldout.jsonl"
    prompts.write_text("\n".join(json.dumps({"prompt": f"Has my lamp {i} shipped?"}) for i in range(6)))
    data = {
        "trigger": {"min_new_pairs": 4, "poll_seconds": 0.05},
        "train": {"config": {"finetuning": "lora", "learning_rate": 5e-3, "max_steps": 3, "per_device_train_batch_size": 4,
                             "max_length": 64, "logging_steps": 1, "plot_loss": False}},
        "gate": {"prompts": str(prompts), "judge": "python:llmloop.demo.users:preference_score", "max_tokens": 8,
                 "min_win_rate": 0.0, "min_ci_low": 0.0},
        "rollout": {"stages": []},
    }
    for k, v in over.items():
        data[k] = {**data.get(k, {}), **v} if isinstance(v, dict) else v
    return LoopPolicy.model_validate(data)


@pytest.fixture
def policy(tmp_path):
    return make_policy(tmp_path)


def production(db, tiny_model_dir):
    registry.register(db, name="v1.0", kind="chat", base_model=str(tiny_model_dir))
    registry.set_alias(db, "production", "v1.0")


def test_round_trains_from_production_promotes_and_records_every_step(db, tiny_model_dir, policy):
    production(db, tiny_model_dir)
    _votes(db, 6)
    said = []
    out = run_once(db, policy, EmbeddedEngine(device="cpu"), say=lambda k, m: said.append(k))
    assert out.status == "promoted" and out.pairs == 6, out
    assert said == ["started", "trained", "promoted"]
    assert registry.get(db, "production").name == out.candidate == "v1.1"
    assert registry.resolve_alias(db, "candidate") is None  # cleared once decided

    v11 = registry.get(db, "v1.1")
    dv = store_datasets.get_version(db, "feedback-pairs")
    assert (v11.parent, v11.job_id) == ("v1.0", out.job_id) and v11.dataset_versions == [dv.id]
    assert v11.metrics["win_rate_vs_v1.0"]["n"] == 6
    (kept,) = saved_comparisons(db)  # the gate's comparison, as `eval compare` keeps its own
    assert (kept.version_x, kept.version_y, kept.n, kept.win_rate) == ("v1.1", "v1.0", 6, out.gate.report.win_rate)
    assert out.gate.comparison and out.gate.evidence()["comparison"] == out.gate.comparison
    rows = read_rows(dv)
    assert len(rows) == 6 and all(r["chosen"][0]["content"].startswith(HELPFUL) for r in rows)

    (rnd,) = rounds.list_rounds(db)
    assert rnd.status == "promoted" and rnd.candidate_version == "v1.1" and rnd.evidence["win_rate"]["n"] == 6
    kinds = [e.kind for e in loop_events.list_events(db, rnd.id)]
    assert kinds == ["round_started", "trained", "gate_passed", "promoted"]
    # every feedback item is accounted for: six pairs trained, the tie dropped with its reason
    claims = loop_events.claims_of(db, rnd.id)
    assert sorted(c.outcome for c in claims) == ["dropped"] + ["train"] * 6
    assert next(c for c in claims if c.outcome == "dropped").reason.startswith("no preference")
    assert sorted(c.row_index for c in claims if c.outcome == "train") == list(range(6))
    assert loop_events.get_state(db).phase == "idle"

    # the same feedback is never used twice: without new votes there is no round
    again = run_once(db, policy, EmbeddedEngine(device="cpu"))
    assert again.status == "skipped" and again.pairs == 0 and len(rounds.list_rounds(db)) == 1


def test_a_candidate_that_fails_the_gate_is_rejected_and_production_stays(db, tiny_model_dir, tmp_path):
    production(db, tiny_model_dir)
    _votes(db, 5)
    strict = make_policy(tmp_path, gate={"min_win_rate": 1.0, "min_ci_low": 0.99})
    out = run_once(db, strict, EmbeddedEngine(device="cpu"))
    assert out.status == "rejected" and out.candidate == "v1.1"
    assert registry.get(db, "production").name == "v1.0" and registry.resolve_alias(db, "candidate") is None
    ev = loop_events.list_events(db, out.round_id, kinds=("gate_failed",))[0]
    assert ev.evidence["win_rate"]["n"] == 6 and ev.evidence["passed"] is False and "CI low" in ev.message


def test_triggers_count_pairs_and_days_and_respect_manual_mode(db, tiny_model_dir, tmp_path):
    production(db, tiny_model_dir)
    _votes(db, 2)
    p = make_policy(tmp_path)
    t = trigger_status(db, p)
    assert not t.ready and t.pairs == 2 and "min_new_pairs 4" in t.reason
    out = run_once(db, p, EmbeddedEngine(device="cpu"))
    assert out.status == "skipped" and rounds.list_rounds(db) == []
    _votes(db, 4, start=10)
    manual = make_policy(tmp_path, trigger={"manual": True})
    assert not trigger_status(db, manual).ready and "manual" in trigger_status(db, manual).reason
    assert Controller(db, manual).tick().action == "waiting"
    assert trigger_status(db, manual, force=True).ready


def test_a_failed_round_releases_its_feedback_for_the_next_round(db, tiny_model_dir, policy, tmp_path):
    production(db, tiny_model_dir)
    _votes(db, 6)
    broken = make_policy(tmp_path, train={"config": {"no_such_field": 1}})
    with pytest.raises(Exception, match="no_such_field"):
        run_once(db, broken, EmbeddedEngine(device="cpu"))
    (rnd,) = rounds.list_rounds(db)
    assert rnd.status == "failed" and loop_events.claims_of(db, rnd.id) == []
    assert loop_events.get_state(db).phase == "idle"
    assert trigger_status(db, policy).pairs == 6  # nothing was consumed


def test_data_policy_filters_dedups_holds_out_flips_and_refuses_contaminated_prompts(db, tmp_path):
    from llmloop.loop.round_data import collect

    _votes(db, 12)
    heldout = tmp_path / "eval.jsonl"
    heldout.write_text(json.dumps({"prompt": "Where is my parcel number 3?"}) + "\n")
    p = make_policy(tmp_path, data={"holdout_share": 0.3, "contamination_sets": [str(heldout)], "flip_preferences": True})
    d = collect(db, p)
    outcomes = {c.source_id: (c.outcome, c.reason) for c in d.claims}
    assert outcomes["4"][1].startswith("contaminated")  # vote 4 is "parcel number 3"
    assert {o for o, _ in outcomes.values()} == {"train", "holdout", "dropped"}
    assert len(d.holdout_prompts) == sum(o == "holdout" for o, _ in outcomes.values()) > 0
    assert all(r["rejected"][0]["content"].startswith(HELPFUL) and r["provenance"]["flipped"] for r in d.train_rows)


def test_policy_files_are_validated_with_every_error_named(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("trigger: {min_new_pairs: -1}\ngate: {judge: 'python:a:b'}\nbogus: 1\n"
                 "rollout: {stages: [{percent: 5}]}\n")
    with pytest.raises(PolicyError) as e:
        load_policy(p)
    msg = str(e.value)
    assert "trigger.min_new_pairs" in msg and "bogus" in msg and str(p) in msg and "rollout.gateways" in msg
    p.write_text("gate: {judge: 'python:a:b'}\n")
    with pytest.raises(PolicyError, match="gate.prompts"):
        load_policy(p)
    shipped = load_policy("demo")
    assert len(read_prompts(shipped.gate.prompts)) > 50
    bad = tmp_path / "prompts.jsonl"
    bad.write_text('{"prompt": "ok"}\n{not json}\n')
    with pytest.raises(PolicyError, match="row 2"):
        read_prompts(bad)


def test_every_shipped_loop_policy_validates():
    from pathlib import Path

    shipped = sorted(Path(__file__).parents[2].joinpath("configs", "loop").glob("*.yaml"))
    assert shipped, "configs/loop/ ships at least one policy"
    for f in shipped:
        first = f.read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("# llmloop loop run"), f"{f}: the first line is the command that runs it"
        load_policy(f)


def test_docs_describe_every_policy_key_and_command():
    from pathlib import Path

    from llmloop.loop.policy import (
        DataPolicy,
        GatePolicy,
        GuardPolicy,
        RollbackPolicy,
        RolloutPolicy,
        RolloutStage,
        TrainPolicy,
        TriggerPolicy,
    )

    doc = Path(__file__).parents[2].joinpath("docs", "loop.md").read_text(encoding="utf-8")
    sections = {"trigger": TriggerPolicy, "data": DataPolicy, "train": TrainPolicy, "gate": GatePolicy,
                "gate.guard": GuardPolicy, "rollout": RolloutPolicy, "rollout.stages[]": RolloutStage, "rollback": RollbackPolicy}
    missing = [f"{s}.{f}" for s, cls in sections.items() for f in cls.model_fields if f"`{s}.{f}`" not in doc]
    assert not missing, f"docs/loop.md does not describe {missing}"
    for cmd in ("loop run", "loop status", "loop history", "loop explain", "loop promote", "loop pause", "pipeline run"):
        assert cmd in doc, cmd


def _served(db, rid, prompt, output, version="v1.0"):
    seed.completion(db, request_id=rid, user_id="shopper", version=version,
                    messages=[{"role": "user", "content": prompt}], output=output)


def test_corrections_edits_judge_and_thumbs_sources_each_account_for_every_item(db, tmp_path):
    import sqlalchemy as sa

    from llmloop.loop.round_data import collect, training_rows
    from llmloop.store.db import utcnow
    from llmloop.store.tables import feedback_events

    _served(db, "c1", "Where is my lamp?", CURT)
    _served(db, "c2", "Where is my kettle?", CURT)
    _served(db, "c3", "Where is my towel?", HELPFUL)
    seed.thumb(db, request_id="c1", user_id="u1", rating=-1, correction=HELPFUL)
    seed.thumb(db, request_id="c2", user_id="u2", rating=-1)  # no correction: no pair
    seed.thumb(db, request_id="c3", user_id="u3", rating=1)
    with db.begin() as conn:
        conn.execute(sa.insert(feedback_events).values(kind="edit", request_id="c2", version="v1.0", user_id="u2",
                                                       payload={"text": HELPFUL + " (edited)"}, created_at=utcnow()))
    # an arena battle nobody voted on, for the judge
    seed.battle(db, battle_id="quiet", user_id="u5", messages=[{"role": "user", "content": "Do you ship to Oslo?"}],
                answers=[("qa", "v1.0", CURT), ("qb", "v1.0", HELPFUL)])

    from llmloop.loop.loop_metrics import render

    pending = render(db).decode()  # /metrics counts the thumbs-down with a correction as a pending pair
    assert 'llmloop_loop_pairs_pending{source="thumbs"} 1.0' in pending
    p = make_policy(tmp_path, data={"sources": ["votes", "corrections", "judge"], "judge_min_age_minutes": 0,
                                    "judge": "python:llmloop.demo.users:preference_score"})
    d = collect(db, p, label=True)
    by = {(c.source, c.source_id): c for c in d.claims}
    assert by[("thumb", "1")].outcome == "train" and by[("edit", "1")].outcome == "train"
    assert by[("thumb", "2")].outcome == "dropped" and "without a correction" in by[("thumb", "2")].reason
    assert by[("battle", "quiet")].outcome == "train" and by[("battle", "quiet")].request_ids == ["qa", "qb"]
    assert len(d.train_rows) == 3 and all(r["chosen"][0]["content"].startswith(HELPFUL) for r in d.train_rows)
    assert {r["provenance"]["source"] for r in d.train_rows} == {"thumb_correction", "edit", "ai_judge"}
    # the trigger does not call the judge: it counts the battle as a candidate pair
    assert collect(db, p).pairs == 3  # the battle counted, not judged

    kto = make_policy(tmp_path, data={"sources": ["thumbs"]}, train={"stage": "kto"})
    k = collect(db, kto)
    assert sorted(r["label"] for r in k.train_rows) == [False, False, True]
    rows, kind = training_rows(kto, d.train_rows)
    assert kind == "kto" and len(rows) == 6 and {r["label"] for r in rows} == {True, False}
    with pytest.raises(Exception, match="train.stage kto"):
        make_policy(tmp_path, data={"sources": ["thumbs"]})
    with pytest.raises(Exception, match="data.judge"):
        make_policy(tmp_path, data={"sources": ["judge"]})


def test_a_kto_round_trains_on_thumbs(db, tiny_model_dir, tmp_path):
    production(db, tiny_model_dir)
    for i in range(6):
        _served(db, f"k{i}", f"Where is order {i}?", HELPFUL if i % 2 else CURT)
        seed.thumb(db, request_id=f"k{i}", user_id=f"u{i}", rating=1 if i % 2 else -1)
    p = make_policy(tmp_path, data={"sources": ["thumbs"]}, train={"stage": "kto"})
    out = run_once(db, p, EmbeddedEngine(device="cpu"))
    assert out.status == "promoted" and out.pairs == 6, out
    dv = store_datasets.get_version(db, "feedback-pairs")
    assert dv.kind == "kto" and dv.row_count == 6


def test_the_guard_set_rejects_a_candidate_that_regresses_and_holdout_prompts_join_the_gate(db, tiny_model_dir, tmp_path):
    """The guard's references are production's own greedy answers, so production scores 1.0 exact
    match and a differently initialised model ~0: a regression far beyond the tolerance."""
    from llmloop.inference.base import SamplingParams
    from llmloop.loop.round_steps import evaluate
    from llmloop.models.tiny import TinyModelConfig, build_tiny_model

    production(db, tiny_model_dir)
    other = build_tiny_model(tmp_path / "other", TinyModelConfig(seed=7))
    registry.register(db, name="v9.0", kind="chat", base_model=str(other))
    engine = EmbeddedEngine(device="cpu")
    engine.load(registry.get(db, "v1.0"))
    convs = [[{"role": "user", "content": f"Where is my order {i}?"}] for i in range(4)]
    refs = [g.text for g in engine.chat_batch("v1.0", convs, SamplingParams(max_tokens=8, temperature=0.0))]
    guard = tmp_path / "guard.jsonl"
    guard.write_text("\n".join(json.dumps({"messages": c, "reference": r}) for c, r in zip(convs, refs)))
    p = make_policy(tmp_path, gate={"guard": {"prompts": str(guard), "metric": "exact_match", "max_regression": 0.02,
                                              "max_tokens": 8}})
    held = [[{"role": "user", "content": "Is my parcel insured?"}]]
    res = evaluate(db, engine, p, 1, "v9.0", "v1.0", held)
    assert res.guard["production"] == 1.0 and res.guard["regression"] > 0.02 and not res.guard["passed"]
    assert not res.passed and "guard exact_match" in res.reason  # the win-rate part alone would pass (thresholds 0)
    assert res.prompts == {"file": 6, "holdout": 1} and res.report.n == 7


def test_min_days_since_the_last_round_holds_the_trigger(db, tiny_model_dir, tmp_path):
    production(db, tiny_model_dir)
    _votes(db, 6)
    assert run_once(db, make_policy(tmp_path), EmbeddedEngine(device="cpu")).status == "promoted"
    _votes(db, 6, start=20)
    weekly = make_policy(tmp_path, trigger={"min_days_since_last_round": 7})
    t = trigger_status(db, weekly)
    assert not t.ready and t.pairs == 6 and "not before" in t.reason and t.next_check is not None
    assert trigger_status(db, weekly, force=True).ready  # `loop run --now`


def test_an_orpo_round_trains_the_candidate_with_stage_orpo(db, tiny_model_dir, tmp_path):
    """train.stage orpo: the round's pairs train an ORPO job from production's adapter; no reference model."""
    from llmloop.store import job_queue

    production(db, tiny_model_dir)
    _votes(db, 6)
    assert run_once(db, make_policy(tmp_path), EmbeddedEngine(device="cpu")).status == "promoted"  # v1.1: an adapter
    _votes(db, 6, start=30)
    p = make_policy(tmp_path, train={"stage": "orpo"})
    out = run_once(db, p, EmbeddedEngine(device="cpu"))
    assert out.status == "promoted" and out.pairs == 6, out
    job = job_queue.get_job(db, out.job_id)
    assert job.stage == "orpo" and job.status == "succeeded" and job.config["beta"] == 0.1
    v12 = registry.get(db, "v1.2")
    assert (v12.parent, v12.job_id, registry.get(db, "production").name) == ("v1.1", out.job_id, "v1.2")
    trained = loop_events.list_events(db, out.round_id, kinds=("trained",))[0]
    assert trained.evidence["stage"] == "orpo" and trained.evidence["train_loss"] is not None
