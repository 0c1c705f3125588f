"""The loop end to end on the tiny model, with simulated users, through real gateway processes:
a good round promotes through every canary stage, 10% upstream errors during the canary roll the
candidate back, and a controller killed with SIGKILL mid-rollout resumes in the same stage.
No acknowledged feedback is lost and none is used twice."""

import os
import random
import signal
import subprocess
import sys
import time

import httpx
import pytest
import yaml
from test_round import make_policy, production

from llmloop.demo import users
from llmloop.demo.faults import FaultyGateway
from llmloop.demo.simulated_traffic import UserTraffic
from llmloop.inference.embedded import EmbeddedEngine
from llmloop.loop.controller import run_once
from llmloop.serve.process import GatewayProcess
from llmloop.store import (
    feedback,
    loop_events,
    open_database,
    registry,
    rounds,
    traffic,
)

pytestmark = pytest.mark.slow
FAST_TRAIN = {"finetuning": "lora", "learning_rate": 5e-3, "max_steps": 3, "per_device_train_batch_size": 8,
              "max_length": 96, "logging_steps": 1, "plot_loss": False}


def arena_votes(url: str, n: int, seed: int = 0) -> list[int]:
    """Simulated users vote in the arena over HTTP; returns the acknowledged vote ids."""
    rng = random.Random(seed)
    prompts = ["Where is my desk lamp order?", "How do I return a kettle?", "Can I change my address?",
               "My parcel is late, what now?", "Do you ship to Norway?", "我的订单到哪里了？"]
    acked = []
    with httpx.Client(timeout=120) as c:
        for i in range(n):
            user = f"voter-{i % 7}"
            b = c.post(f"{url}/v1/arena", json={"messages": [{"role": "user", "content": f"{rng.choice(prompts)} ({i})"}],
                                                "user": user, "max_tokens": 12})
            b.raise_for_status()
            ans = {a["slot"]: a["content"] for a in b.json()["answers"]}
            choice = users.vote(ans["a"], ans["b"], rng, noise=0.0)
            if choice not in ("a", "b"):
                choice = rng.choice("ab")  # the test wants pairs; a real user may also tie
            v = c.post(f"{url}/v1/feedback/vote", json={"battle_id": b.json()["battle_id"], "choice": choice, "user": user})
            assert v.status_code == 201, v.text
            acked.append(v.json()["id"])
    return acked


def assert_each_vote_claimed_once(db, acked):
    counts = loop_events.claim_counts(db)
    assert all(counts.get(("vote", str(vid))) == 1 for vid in acked), "an acknowledged vote was lost or used twice"
    assert feedback.count_votes(db) == len(acked)


def test_a_good_round_promotes_through_every_canary_stage(tiny_model_dir, tmp_path, llmloop_home):
    db = open_database()
    production(db, tiny_model_dir)
    with GatewayProcess(llmloop_home) as gw:
        acked = arena_votes(gw.url, 16)
        policy = make_policy(tmp_path, train={"config": FAST_TRAIN},
                             rollout={"gateways": [gw.url], "stages": [{"percent": 50, "min_requests": 12},
                                                                       {"percent": 100, "min_requests": 12}]},
                             rollback={"latency_seconds": 30.0})
        with UserTraffic(gw.url, max_tokens=4) as t:
            out = run_once(db, policy, EmbeddedEngine(device="cpu"), poll_seconds=0.3)
        counts = t.counts
        scraped = httpx.get(f"{gw.url}/metrics").text  # the loop's series on the gateway's /metrics
    assert 'llmloop_loop_rollout_share{version="v1.1"} 1.0' in scraped
    assert 'llmloop_loop_rounds{status="promoted"} 1.0' in scraped and "llmloop_loop_feedback_to_rollout_seconds" in scraped
    assert out.status == "promoted", out
    assert registry.get(db, "production").name == out.candidate == "v1.1"
    kinds = [e.kind for e in loop_events.list_events(db, out.round_id)]
    assert kinds == ["round_started", "trained", "gate_passed", "stage_started", "stage_passed",
                     "stage_started", "promoted"]
    splits = [s.weights for s in reversed(traffic.split_history(db))]
    assert splits == [{"production": 50.0, "candidate": 50.0}, {"candidate": 100.0}, {"production": 100.0}]
    assert counts.answered["v1.1"] >= 24 and counts.answered["v1.0"] > 0  # the split really moved users
    promoted = loop_events.list_events(db, out.round_id, kinds=("promoted",))[0].evidence
    assert promoted["signals"]["error_rate"]["rollback"] is False
    assert_each_vote_claimed_once(db, acked)
    # every acknowledged thumb is in the store
    assert len(feedback.list_thumbs(db)) == sum(counts.thumbs.values())


def test_upstream_errors_during_the_canary_roll_the_candidate_back_in_its_first_stage(tiny_model_dir, tmp_path, llmloop_home):
    db = open_database()
    production(db, tiny_model_dir)
    with FaultyGateway(llmloop_home, rate=0.10, target="candidate") as gw:
        acked = arena_votes(gw.url, 10)  # production is healthy: no fault before there is a candidate
        first = {"percent": 50, "min_requests": 400}
        policy = make_policy(tmp_path, train={"config": FAST_TRAIN},
                             rollout={"gateways": [gw.url], "stages": [first, {"percent": 100, "min_requests": 50}]},
                             rollback={"p99_latency": False, "thumbs": False})
        with UserTraffic(gw.url, max_tokens=2, workers=6, thumbs_share=0.0) as t:
            out = run_once(db, policy, EmbeddedEngine(device="cpu"), poll_seconds=0.3)
        counts = t.counts
    assert out.status == "rolled_back", out
    assert registry.get(db, "production").name == "v1.0" and registry.resolve_alias(db, "candidate") is None
    assert traffic.get_split(db).weights == {"production": 100.0}
    ev = loop_events.list_events(db, out.round_id, kinds=("rolled_back",))[0]
    err = ev.evidence["signals"]["error_rate"]
    assert err["rollback"] and err["p_always_valid"] <= 0.05
    assert 0.03 <= err["candidate"]["rate"] <= 0.25 and err["production"]["rate"] == 0
    # within the policy's window: decided in stage 1, before it had seen its 400 candidate requests
    assert ev.evidence["stage"] == 0 and ev.evidence["candidate_requests"] < first["min_requests"]
    assert counts.errors["v1.1"] > 0 and counts.errors.get("v1.0", 0) == 0
    assert_each_vote_claimed_once(db, acked)


def _controller(home, policy_path, log):
    env = {**os.environ, "LLMLOOP_HOME": str(home), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "llmloop.cli.main", "loop", "run", "-c", str(policy_path), "--now",
                             "--once"], env=env, stdout=log, stderr=subprocess.STDOUT)


def _wait(pred, timeout, proc=None, log_path=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"controller exited {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s" + (f":\n{log_path.read_text()[-3000:]}" if log_path else ""))


def test_a_controller_killed_mid_rollout_resumes_in_the_same_stage(tiny_model_dir, tmp_path, llmloop_home):
    db = open_database()
    production(db, tiny_model_dir)
    with GatewayProcess(llmloop_home) as gw:
        acked = arena_votes(gw.url, 12)
        policy = make_policy(tmp_path, train={"config": FAST_TRAIN},
                             rollout={"gateways": [gw.url], "stages": [{"percent": 30, "min_requests": 3},
                                                                       {"percent": 60, "min_requests": 40},
                                                                       {"percent": 100, "min_requests": 5}]},
                             rollback={"latency_seconds": 30.0}, trigger={"poll_seconds": 0.3})
        path = tmp_path / "policy.yaml"
        path.write_text(yaml.safe_dump(policy.model_dump(mode="json")))
        log_path = tmp_path / "controller.log"
        with UserTraffic(gw.url, max_tokens=4) as t, log_path.open("ab") as log:
            first = _controller(llmloop_home, path, log)
            state = lambda: loop_events.get_state(db)  # noqa: E731
            _wait(lambda: state().phase == "canary" and state().stage_index == 1, 240, first, log_path)
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=30)
            killed_in = state()
            assert (killed_in.phase, killed_in.stage_index) == ("canary", 1)
            second = _controller(llmloop_home, path, log)
            assert second.wait(timeout=300) == 0, log_path.read_text()[-3000:]
        counts = t.counts
    (rnd,) = rounds.list_rounds(db)
    assert rnd.id == killed_in.round_id and rnd.status == "promoted"
    kinds = [e.kind for e in loop_events.list_events(db, rnd.id)]
    # one round, each stage started once: the restart resumed stage 2 rather than starting anything again
    assert kinds.count("round_started") == 1 and kinds.count("stage_started") == 3 and kinds[-1] == "promoted"
    assert [e.evidence["weights"] for e in loop_events.list_events(db, rnd.id, kinds=("stage_started",))] == [
        {"production": 70.0, "candidate": 30.0}, {"production": 40.0, "candidate": 60.0}, {"candidate": 100.0}]
    assert registry.get(db, "production").name == "v1.1"
    assert_each_vote_claimed_once(db, acked)
    assert len(feedback.list_thumbs(db)) == sum(counts.thumbs.values())
